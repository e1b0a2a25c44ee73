//! The node-wide `getaddr` answer, shared by every inbound peer until it expires (addr_relay).

use super::AddrInfo;
use bevy_ecs::prelude::*;

/// The shared getaddr answer.
#[derive(Resource, Debug, Default)]
pub struct AddrResponseCache {
    /// The addresses every getaddr gets until it expires.
    pub entries: Vec<AddrInfo>,
    /// When it must be rebuilt (clock ms).
    pub expires_ms: u64,
}
