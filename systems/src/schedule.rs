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

/// A world with every resource the schedule needs.
pub fn build_world(config: Config, seed: u64) -> World {
    let mut world = World::new();
    let params = ChainParams::for_network(config.network);
    world.insert_resource(HeaderTree::new(&params));
    world.insert_resource(params);
    world.insert_resource(SyncConfig::default());
    world.insert_resource(SyncState::default());
    world.insert_resource(BlockRelay::default());
    world.insert_resource(crate::chain::CompactRelay::default());
    world.insert_resource(Ibd::default());
    world.insert_resource(ValidationQueue::default());
    world.insert_resource(ValidationInbox::default());
    world.insert_resource(BlockReads::default());
    world.insert_resource(BlockReadInbox::default());
    world.insert_resource(config);
    world.insert_resource(Clock::default());
    let mut rng = Rng::seeded(seed);
    world.insert_resource(AddrBook::random(&mut rng));
    world.insert_resource(crate::resources::TxRelayState::new(&mut rng));
    world.insert_resource(crate::resources::tx_requests::TxRequests::new(rng.next_u64()));
    world.insert_resource(rng);
    world.insert_resource(BanList::default());
    world.insert_resource(crate::resources::AddrResponseCache::default());
    world.insert_resource(PeerPolicy::default());
    world.insert_resource(PeerManagerState::default());
    world.insert_resource(Metrics::default());
    world.insert_resource(ScoreTable::default());
    world.insert_resource(ChainTip::default());
    world.insert_resource(crate::mempool::pool::Mempool::default());
    world.insert_resource(crate::mempool::orphanage::Orphanage::default());
    world.insert_resource(crate::mempool::extra::ExtraTxns::default());
    world.insert_resource(crate::mempool::intake::TxIntake::default());
    world.insert_resource(crate::mempool::local::Unbroadcast::default());
    world.insert_resource(crate::mempool::BlockTxInbox::default());
    world.insert_resource(crate::mempool::ChainCoins::default());
    world.insert_resource(crate::mempool::CoinsTip::default());
    world.insert_resource(crate::mempool::Scripts::default());
    world.insert_resource(crate::mempool::policy::PolicyConfig::default());
    world.insert_resource(crate::resources::TxAnnounceState::default());
    world.insert_resource(Inbox::default());
    world.insert_resource(Outbox::default());
    world.insert_resource(ConnIndex::default());
    world.insert_resource(LocalNonces::default());
    world
}
