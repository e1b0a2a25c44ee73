//! The one ordered chain of systems, and the world every node and simulation starts from. A tick
//! runs, in this order: intake (ingest, admission, decode, handshake), gossip and transactions
//! (addr_relay, inv_filter, tx_request, tx_accept, ping), blocks (headers_sync, compact_blocks,
//! block_download, compact_hb, block_announce, serve_blocks), then the way out (serve_txs,
//! tx_announce, scoring, discipline, connections, egress, teardown, telemetry). A new system goes
//! into this one chain, nowhere else.

use crate::chain::{
    BlockReadInbox, BlockReads, BlockRelay, ChainParams, HeaderTree, Ibd, SyncConfig, SyncState, ValidationInbox,
    ValidationQueue,
};
use crate::resources::{
    AddrBook, BanList, ChainTip, Clock, Config, ConnIndex, Inbox, LocalNonces, Metrics, Outbox, PeerManagerState,
    PeerPolicy, Rng, ScoreTable,
};
use crate::systems::*;
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::SingleThreadedExecutor;

/// Builds the schedule: ingest → admission → decode → handshake → addr_relay → inv_filter →
/// tx_request → tx_accept → ping → headers_sync → compact_blocks → block_download → compact_hb → block_announce → serve_blocks → serve_txs →
/// tx_announce → scoring → discipline → connections → egress → teardown → telemetry.
pub fn build_schedule() -> Schedule {
    let mut schedule = Schedule::default();
    schedule.set_executor(SingleThreadedExecutor::new());
    // Nested by stage only because a tuple of systems holds at most 20; the order is one chain.
    schedule.add_systems(
        (
            (ingest, admission, decode, handshake).chain(),
            (addr_relay, inv_filter, tx_request, tx_accept, ping).chain(),
            (headers_sync, compact_blocks, block_download, compact_hb, block_announce, serve_blocks).chain(),
            (serve_txs, tx_announce, scoring, discipline, connections, egress, teardown, telemetry).chain(),
        )
            .chain(),
    );
    schedule
}

/// Every knob a world starts with. The node's world loop, the scenario simulator, the network
/// simulator and the test harness each fill this one struct (from the command line, a scenario
/// file, a test) instead of patching resources after [`build_world`].
#[derive(Clone, Debug)]
pub struct WorldSettings {
    /// Network, protocol identity and limits.
    pub config: Config,
    /// Seed of the world's rng: filter and address-book keys, every random choice.
    pub seed: u64,
    /// Where the clock starts (unix ms); the host moves it on.
    pub start_ms: u64,
    /// The Peer Manager's policy (outbound mix, manual peers, bans, whitelist).
    pub policy: PeerPolicy,
    /// The pool's bounds (`--maxmempool`, `--minrelaytxfee`).
    pub pool: crate::mempool::pool::PoolLimits,
    /// Standardness and relay-fee policy.
    pub tx_policy: crate::mempool::policy::PolicyConfig,
    /// The orphanage's bounds.
    pub orphans: crate::mempool::orphanage::OrphanLimits,
    /// Block download: window, stalling timeouts, tip age, validation backlog.
    pub sync: SyncConfig,
    /// Overrides the network's minimum chain work (Core's -minimumchainwork).
    pub minimum_chain_work: Option<bitcoin::pow::Work>,
    /// Misbehavior points at which a peer is discouraged (`None`: Core's 100).
    pub score_threshold: Option<u32>,
    /// Start out of initial block download (a simulated node at the tip).
    pub out_of_ibd: bool,
}

impl WorldSettings {
    /// Defaults for `config` and `seed`: Core's bounds, the clock at 0.
    pub fn new(config: Config, seed: u64) -> WorldSettings {
        WorldSettings {
            config,
            seed,
            start_ms: 0,
            policy: PeerPolicy::default(),
            pool: Default::default(),
            tx_policy: Default::default(),
            orphans: Default::default(),
            sync: SyncConfig::default(),
            minimum_chain_work: None,
            score_threshold: None,
            out_of_ibd: false,
        }
    }
}

/// A world with every resource the schedule needs, set as `settings` say.
pub fn build_world(settings: WorldSettings) -> World {
    let WorldSettings {
        config,
        seed,
        start_ms,
        policy,
        pool,
        tx_policy,
        orphans,
        sync,
        minimum_chain_work,
        score_threshold,
        out_of_ibd,
    } = settings;
    let mut world = World::new();
    let mut params = ChainParams::for_network(config.network);
    world.insert_resource(HeaderTree::new(&params));
    if let Some(work) = minimum_chain_work {
        params.minimum_chain_work = work;
    }
    world.insert_resource(params);
    let state = SyncState { stalling_timeout_ms: sync.stalling_timeout_min_ms, ..SyncState::default() };
    world.insert_resource(sync);
    world.insert_resource(state);
    world.insert_resource(BlockRelay::default());
    world.insert_resource(crate::chain::CompactRelay::default());
    world.insert_resource(Ibd { active: !out_of_ibd });
    world.insert_resource(ValidationQueue::default());
    world.insert_resource(ValidationInbox::default());
    world.insert_resource(BlockReads::default());
    world.insert_resource(BlockReadInbox::default());
    world.insert_resource(config);
    world.insert_resource(Clock { now_ms: start_ms });
    let mut rng = Rng::seeded(seed);
    world.insert_resource(AddrBook::random(&mut rng));
    world.insert_resource(crate::resources::TxRelayState::new(&mut rng));
    world.insert_resource(crate::resources::tx_requests::TxRequests::new(rng.next_u64()));
    world.insert_resource(rng);
    world.insert_resource(BanList::default());
    world.insert_resource(crate::resources::AddrResponseCache::default());
    world.insert_resource(policy);
    world.insert_resource(PeerManagerState::default());
    world.insert_resource(Metrics::default());
    let mut scores = ScoreTable::default();
    if let Some(t) = score_threshold {
        scores.threshold = t;
    }
    world.insert_resource(scores);
    world.insert_resource(ChainTip::default());
    world.insert_resource(crate::mempool::pool::Mempool::new(pool));
    world.insert_resource(crate::mempool::orphanage::Orphanage::new(orphans));
    world.insert_resource(crate::mempool::extra::ExtraTxns::default());
    world.insert_resource(crate::mempool::intake::TxIntake::default());
    world.insert_resource(crate::mempool::local::Unbroadcast::default());
    world.insert_resource(crate::mempool::BlockTxInbox::default());
    world.insert_resource(crate::mempool::ChainCoins::default());
    world.insert_resource(crate::mempool::CoinsTip::default());
    world.insert_resource(crate::mempool::Scripts::default());
    world.insert_resource(tx_policy);
    world.insert_resource(crate::resources::TxAnnounceState::default());
    world.insert_resource(Inbox::default());
    world.insert_resource(Outbox::default());
    world.insert_resource(ConnIndex::default());
    world.insert_resource(LocalNonces::default());
    world
}
