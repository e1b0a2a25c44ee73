//! The Peer Manager's policy knobs: how many of each outbound kind, how long discouragement and bans
//! last, who is exempt. Defaults are Bitcoin Core's.

use super::Subnet;
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Connection and discipline policy.
#[derive(Resource, Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerPolicy {
    /// Full-relay outbound connections to keep.
    pub outbound_full_relay: usize,
    /// Block-relay-only outbound connections to keep.
    pub outbound_block_relay: usize,
    /// Whether to open automatic outbound connections at all (off with `--connect`, as in Core).
    pub auto_outbound: bool,
    /// Time between feeler connections once outbound slots are full.
    pub feeler_interval_ms: u64,
    /// Minimum time between two automatic dials.
    pub dial_interval_ms: u64,
    /// How long a discouraged address stays refused.
    pub discourage_s: i64,
    /// Ban duration when discouragement escalates (and default for manual bans).
    pub ban_s: i64,
    /// Discourage loopback peers too (off by default so a local wallet is never locked out).
    pub discourage_local: bool,
    /// Subnets whose peers get `noban`.
    pub whitelist: Vec<Subnet>,
    /// Peers dialed by operator request, redialed whenever not connected.
    pub manual: Vec<SocketAddr>,
    /// Delay before redialing a manual peer after it dropped.
    pub manual_retry_ms: u64,
    /// Manual peers the operator asked to dial with v1 only (`addnode … v2transport=false`).
    pub manual_v1: Vec<SocketAddr>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        PeerPolicy {
            outbound_full_relay: 8,
            outbound_block_relay: 2,
            auto_outbound: true,
            feeler_interval_ms: 120_000,
            dial_interval_ms: 500,
            discourage_s: 24 * 3600,
            ban_s: 24 * 3600,
            discourage_local: false,
            whitelist: Vec::new(),
            manual: Vec::new(),
            manual_v1: Vec::new(),
            manual_retry_ms: 10_000,
        }
    }
}

/// The Peer Manager's own timers and bookkeeping.
#[derive(Resource, Clone, Debug, Default)]
pub struct PeerManagerState {
    /// Next automatic dial allowed at.
    pub next_dial_ms: u64,
    /// Next feeler due at.
    pub next_feeler_ms: u64,
    /// Next sweep of expired bans.
    pub next_sweep_ms: u64,
    /// When each manual peer may next be dialed.
    pub manual_next_ms: ahash::AHashMap<SocketAddr, u64>,
    /// Dials issued and not yet reported by the shell: address, kind, when.
    pub pending: Vec<(SocketAddr, crate::components::Direction, u64)>,
    /// v2 dials the peer hung up on before answering: each is dialed once more with v1.
    pub v1_retries: Vec<(SocketAddr, crate::components::Direction)>,
    /// Addresses dialed automatically since an outbound peer was last ready (at most
    /// [`UNREACHED_MAX`]): how many the node tried when it says it can reach no one.
    pub unreached: ahash::AHashSet<SocketAddr>,
    /// The node said it can reach no one (once, until an outbound peer is ready again).
    pub unreachable_said: bool,
}

/// Most addresses [`PeerManagerState::unreached`] counts.
pub const UNREACHED_MAX: usize = 10_000;
