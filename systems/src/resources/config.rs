//! Node configuration and limits. Defaults are Bitcoin Core's (DESIGN.md §3); every one is
//! configurable so tests and scenarios can cross it.

use crate::wire::{Network, PROTOCOL_VERSION};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

/// Limits that bound per-peer and node-wide work and memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Messages decoded per peer per tick (the per-message CPU budget; round robin across peers).
    pub decode_msgs_per_tick: usize,
    /// Payload bytes decoded per peer per tick.
    pub decode_bytes_per_tick: usize,
    /// Payload bytes decoded per tick over all peers, so a tick stays short whatever many peers
    /// send (large frames wait for the next tick; small ones always pass, so pings stay prompt).
    /// 1 MB: Core handles one message per peer per turn, so a ping waits behind about one message
    /// of each other peer; a tick's budget is the same order. Frames over it go alone, one a tick.
    pub decode_bytes_per_tick_total: usize,
    /// Receive buffer per peer (and the reader's credit: frames handed over, not yet taken); over
    /// it the socket's reader is paused. A larger frame still passes alone. 1 MB, not Core's 5 MB:
    /// our one world thread decodes in turns, so a deeper backlog per peer only adds memory and
    /// latency under load (8 flooders of addr messages held 40 MB of it), never throughput.
    pub recv_buffer_bytes_max: usize,
    /// Send queue per peer; over it we stop processing that peer's messages.
    pub send_queue_bytes_soft: usize,
    /// Send queue per peer; over it the peer is disconnected.
    pub send_queue_bytes_hard: usize,
    /// Bytes handed to a peer's writer task and not yet written.
    pub writer_window_bytes: usize,
    /// Send queues and unwritten writer bytes of all peers together; over it the peer holding
    /// the most is disconnected (as if over its hard bound), until the total fits. Peers that
    /// never read would otherwise hold up to their hard bound each (125 × 8 MB) as
    /// announcements and pings pile up.
    pub send_bytes_total_max: usize,
    /// Time to complete version/verack.
    pub handshake_timeout_ms: u64,
    /// Interval between our pings.
    pub ping_interval_ms: u64,
    /// Time a ping may go unanswered.
    pub ping_timeout_ms: u64,
    /// Time with nothing received.
    pub inactivity_timeout_ms: u64,
    /// Inbound connections.
    pub max_inbound: usize,
    /// Outbound connections (all kinds but manual).
    pub max_outbound: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            decode_msgs_per_tick: 32,
            decode_bytes_per_tick: 4_000_000,
            decode_bytes_per_tick_total: 1_000_000,
            recv_buffer_bytes_max: 1_000_000,
            send_queue_bytes_soft: 1_000_000,
            send_queue_bytes_hard: 8_000_000,
            writer_window_bytes: 256 * 1024,
            send_bytes_total_max: 192 << 20,
            handshake_timeout_ms: 60_000,
            ping_interval_ms: 120_000,
            ping_timeout_ms: 20 * 60_000,
            inactivity_timeout_ms: 20 * 60_000,
            max_inbound: 114,
            max_outbound: 11,
        }
    }
}

/// Who we are on the network.
#[derive(Resource, Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    /// Which network.
    pub network: Network,
    /// Protocol version we announce.
    pub protocol_version: i32,
    /// Services we announce: only what we really serve. Blocks and witnesses from the start, as
    /// Core does: a peer that connects while we sync may fetch from us once we have caught up
    /// (Core picks download peers by the services in their version, never later).
    pub services: u64,
    /// BIP14 user agent.
    pub user_agent: String,
    /// Whether we want tx announcements (false with `--blocksonly`).
    pub relay: bool,
    /// BIP152 compact blocks: offered at the handshake, asked for and used (Core always does).
    /// Off, blocks move whole: the simulator's baseline for what compact blocks save.
    #[serde(default = "compact_blocks_on")]
    pub compact_blocks: bool,
    /// The limits.
    pub limits: Limits,
}

fn compact_blocks_on() -> bool {
    true
}

impl Config {
    /// Defaults for `network`.
    pub fn new(network: Network) -> Self {
        Config {
            network,
            protocol_version: PROTOCOL_VERSION,
            services: crate::wire::services::NODE_NETWORK
                | crate::wire::services::NODE_WITNESS
                | crate::wire::services::NODE_P2P_V2,
            user_agent: concat!("/oni:", env!("CARGO_PKG_VERSION"), "/").to_string(),
            relay: true,
            compact_blocks: true,
            limits: Limits::default(),
        }
    }

    /// Whether we speak BIP324 v2 (`--v2transport`): we advertise NODE_P2P_V2, answer v2 dials
    /// and dial v2 ourselves, as Core does with `-v2transport`.
    pub fn v2(&self) -> bool {
        self.services & crate::wire::services::NODE_P2P_V2 != 0
    }
}
