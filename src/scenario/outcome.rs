//! What a simulated run hands to the judge: each instance, each connection, the peaks sampled after
//! every tick, the node state a leak would show in, and the node's world itself (for the dump).

use super::bots::PingLog;
use super::trace::ConnRecord;
use bevy_ecs::prelude::*;
use oni_systems::wire::Command;

/// What one instance was and what it saw, for the expectations.
#[derive(Clone, Debug)]
pub struct InstanceInfo {
    /// "Honest" or the bot kind's name.
    pub label: &'static str,
    /// Most messages of each command it received in one tick.
    pub max_per_tick: [u32; Command::COUNT],
    /// Messages of each command it received in all.
    pub recv_total: [u64; Command::COUNT],
    /// Honest instances' pings.
    pub ping_log: Option<PingLog>,
}

/// The node-side state at the end that a leak would show in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndState {
    /// Entries in the conn index.
    pub index_len: usize,
    /// Peer entities.
    pub peers: usize,
    /// Our version nonces still remembered.
    pub nonces: usize,
    /// Peers that were sent our version and have not completed the handshake (each owns one nonce).
    pub awaiting_verack: usize,
}

/// Everything a run produced.
pub struct Outcome {
    /// The node's world at the end (for the dump).
    pub world: World,
    /// Each instance.
    pub instances: Vec<InstanceInfo>,
    /// Each connection, by conn id - 1.
    pub conns: Vec<ConnRecord>,
    /// Virtual ms the run covered.
    pub end_ms: u64,
    /// Schedule runs.
    pub ticks: u64,
    /// Most peers after a tick.
    pub peak_peers: u64,
    /// Largest per-peer send backlog after a tick.
    pub peak_send_bytes: u64,
    /// Largest per-peer receive buffer after a tick.
    pub peak_recv_bytes: u64,
    /// Most transactions the request tracker held after a tick.
    pub peak_tx_tracked: u64,
    /// Leak-relevant state at the end.
    pub end: EndState,
    /// Frames from the node that a bot could not frame or decode (a node bug if ever non-zero).
    pub node_bad_frames: u64,
    /// Outbound dials the node asked for (the sim has no outbound targets yet).
    pub dials: u64,
    /// Hash over the whole event trace (0 in live mode: a live run does not replay).
    pub trace_hash: u64,
    /// Figures only a live run has; `None` in sim mode.
    pub live: Option<LiveFigures>,
}

/// What only a live run measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveFigures {
    /// Highest resident set of the whole process (node and runner), kB; `None` without /proc.
    pub peak_rss_kb: Option<u64>,
    /// Bot connects that failed or were refused by the runner's open-socket bound.
    pub connect_failures: u64,
}
