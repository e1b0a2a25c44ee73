//! What a simulated run hands to the judge: each instance, each connection, the peaks sampled after
//! every tick, the node state a leak would show in, and the node's world itself (for the dump).

use super::bots::{PingLog, TxLog};
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
    /// Transaction relayers' log.
    pub tx_log: Option<TxLog>,
}

/// The orphanage and the pool over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxFigures {
    /// Highest latency score after a tick.
    pub peak_latency_score: u64,
    /// Most orphans stored after a tick.
    pub peak_orphans: u64,
    /// Most announcements after a tick.
    pub peak_announcements: u64,
    /// Highest total orphan weight after a tick.
    pub peak_weight: u64,
    /// Highest total weight per peer holding orphans after a tick (the bound is per such peer).
    pub peak_weight_per_peer: u64,
    /// Most peers holding orphans after a tick.
    pub peak_orphan_peers: u64,
    /// Most orphans the TxRelayer instances held together after a tick: proof their orphans waited
    /// in the orphanage beside the flood.
    pub peak_relayer_orphans: u64,
    /// Orphans evicted by the bounds, in all.
    pub orphans_evicted: u64,
    /// Orphans stored at the end.
    pub end_orphans: u64,
    /// Transactions in the pool at the end.
    pub pool: Vec<bitcoin::Txid>,
}

impl TxFigures {
    /// Folds one sample of the orphanage into the peaks.
    pub fn sample(&mut self, o: &oni_systems::mempool::orphanage::Orphanage) {
        let peers = o.peer_count() as u64;
        self.peak_latency_score = self.peak_latency_score.max(o.latency_score());
        self.peak_orphans = self.peak_orphans.max(o.len() as u64);
        self.peak_announcements = self.peak_announcements.max(o.announcement_count());
        self.peak_weight = self.peak_weight.max(o.total_weight());
        self.peak_weight_per_peer = self.peak_weight_per_peer.max(o.total_weight() / peers.max(1));
        self.peak_orphan_peers = self.peak_orphan_peers.max(peers);
    }

    /// The end state: evictions, what is left, the pool's transactions (sorted).
    pub fn finish(
        &mut self,
        o: &oni_systems::mempool::orphanage::Orphanage,
        pool: &oni_systems::mempool::pool::Mempool,
    ) {
        self.orphans_evicted = o.evicted_total();
        self.end_orphans = o.len() as u64;
        self.pool = pool.iter().map(|e| e.txid).collect();
        self.pool.sort_unstable();
    }
}

/// The node's header tree at the end, as the chain expectations read it (live mode copies these
/// figures out of the node, not the tree).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainFigures {
    /// Height of the validated tip.
    pub validated_height: u32,
    /// Height of the best header.
    pub best_height: u32,
    /// Entries in the tree (it never shrinks, so this is its peak).
    pub headers: u64,
}

impl ChainFigures {
    /// Reads them from a node's tree.
    pub fn of(tree: &oni_systems::chain::HeaderTree) -> Self {
        ChainFigures {
            validated_height: tree.entry(tree.validated_tip()).height,
            best_height: tree.best_entry().height,
            headers: tree.len() as u64,
        }
    }
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

impl EndState {
    /// Reads it off the node's world (sim and live alike).
    pub fn of(world: &mut World) -> Self {
        use oni_systems::components::{Handshake, PeerState};
        use oni_systems::resources::{ConnIndex, LocalNonces};
        let mut q = world.query::<(&Handshake, &PeerState)>();
        let awaiting_verack = q.iter(world).filter(|(h, s)| h.version_sent && **s != PeerState::Ready).count();
        EndState {
            index_len: world.resource::<ConnIndex>().0.len(),
            peers: q.iter(world).count(),
            nonces: world.resource::<LocalNonces>().0.len(),
            awaiting_verack,
        }
    }
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
    /// Largest payload allocation the node's reader held for one frame in progress (sim only:
    /// live mode's reader is the bridge's, bounded by its credit, and not sampled).
    pub peak_reader_bytes: Option<u64>,
    /// Most transactions the request tracker held after a tick.
    pub peak_tx_tracked: u64,
    /// Leak-relevant state at the end.
    pub end: EndState,
    /// The orphanage and pool figures.
    pub tx: TxFigures,
    /// The header tree's figures at the end.
    pub chain: ChainFigures,
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
