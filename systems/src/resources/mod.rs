//! Node-wide state shared by the systems: configuration and limits, the clock and rng the shell
//! sets, metrics, the score table, and the IO boundary.

pub mod addr_cache;
pub mod addrman;
pub mod banlist;
mod clock;
mod config;
mod io;
mod metrics;
mod policy;
pub mod reasons;
pub mod rolling_filter;
pub mod tx_relay;
pub mod tx_requests;

pub use addr_cache::AddrResponseCache;
pub use addrman::{AddrBook, AddrInfo, NetAddress, PeerAddr};
pub use banlist::{BanChange, BanEntry, BanList, BanReason, Subnet};
pub use clock::{Clock, Rng};
pub use config::{Config, Limits};
pub use io::{carry_out, ConnIndex, Inbox, IoCarrier, IoCommand, NetEvent, Outbox};
pub use metrics::{Histogram, Metrics};
pub use policy::{PeerManagerState, PeerPolicy, UNREACHED_MAX};
pub use reasons::{AnnounceKind, DisconnectReason, Misbehavior, ScoreTable};
pub use tx_relay::{TxAnnounceState, TxRelayState, RECENT_CONFIRMED_TXS, RECENT_TXS};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

/// Our best chain as far as the P2P layer needs it (start height in `version`).
#[derive(Resource, Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChainTip {
    /// Height of our best block.
    pub height: i32,
}

/// Nonces of versions we sent on connections not yet past handshake: an inbound version carrying one
/// means we dialed ourselves.
#[derive(Resource, Debug, Default)]
pub struct LocalNonces(pub ahash::AHashSet<u64>);
