//! One oni node of the simulated network: its own world (built by the one world builder, with the
//! scenario's limits), its own schedule, its own [`InstantValidator`] (a block is valid when its
//! parent is known: the world's header tree checks proof of work and timestamps, nothing checks
//! transactions), its view of the shared coins, and a quiet way to fill its pool.

use super::coins::{chain_connected, chain_disconnected, Ledger, NodeCoins};
use crate::scenario::sim::EPOCH_MS;
use bevy_ecs::prelude::*;
use bitcoin::{BlockHash, Transaction};
use oni_systems::chain::{
    BlockData, BlockReadInbox, BlockReads, ChainParams, HeaderTree, InstantValidator, ValidationEvent, ValidationInbox,
    ValidationQueue,
};
use oni_systems::mempool::accept::{accept, AcceptInputs};
use oni_systems::mempool::policy::PolicyConfig;
use oni_systems::mempool::pool::Mempool;
use oni_systems::mempool::{ChainCoins, Scripts};
use oni_systems::resources::{Clock, Config, Limits};
use oni_systems::schedule::{build_schedule, build_world, WorldSettings};
use oni_systems::wire::Network;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

/// The port every node listens on.
pub const PORT: u16 = 18_444;

/// Where the BIP152 switch of a network scenario reaches a node's configuration: the one place
/// compact blocks are turned on or off for the simulator (off: no `sendcmpct`, blocks move whole,
/// the baseline compact blocks are measured against).
pub fn apply_compact_blocks(config: &mut Config, on: bool) -> Result<(), String> {
    config.compact_blocks = on;
    Ok(())
}

/// The address node `i` listens on: one /16 per node (routable space from 11.0.0.0), so no two
/// nodes share a network group.
pub fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(11 + (i / 256) as u8, (i % 256) as u8, 0, 1).into(), PORT)
}

/// A chain change the node's validator reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainMove {
    /// The block joined its active chain.
    Connected(BlockHash, u32),
    /// The block left it.
    Disconnected(BlockHash, u32),
}

/// Block bytes, once for the whole network: every node's copy of a block is byte for byte the
/// same, so a node's validator keeps which blocks it stored and the bytes live here.
#[derive(Default)]
pub struct SharedBlocks(ahash::AHashMap<BlockHash, Vec<u8>>);

/// One node.
pub struct SimNode {
    /// Its world.
    pub world: World,
    schedule: Schedule,
    validator: InstantValidator,
    /// The blocks on its active chain, as its coin view reads them.
    chain: Arc<Mutex<Vec<BlockHash>>>,
}

impl SimNode {
    /// Node `i`: a fresh world at regtest genesis, out of initial block download (it relays
    /// transactions and announces blocks from the start), dialing nobody by itself (the topology
    /// is the simulator's), its coins a view of `ledger`.
    pub fn new(i: usize, seed: u64, limits: &Limits, compact_blocks: bool, ledger: Arc<RwLock<Ledger>>) -> SimNode {
        let network = Network::Regtest;
        let mut config = Config::new(network);
        config.limits = limits.clone();
        config.relay = true;
        config.services &= !oni_systems::wire::services::NODE_P2P_V2;
        // Checked by the scenario's validation; here it can only be off.
        let _ = apply_compact_blocks(&mut config, compact_blocks);
        let mut settings = WorldSettings::new(config, seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        settings.policy.auto_outbound = false;
        settings.out_of_ibd = true;
        settings.start_ms = EPOCH_MS;
        let mut world = build_world(settings);
        let (coins, chain) = NodeCoins::new(ledger);
        world.insert_resource(ChainCoins(Box::new(coins)));
        let genesis = ChainParams::for_network(network).genesis.block_hash();
        SimNode { world, schedule: build_schedule(), validator: InstantValidator::new(genesis), chain }
    }

    /// One run of its schedule at virtual time `now_ms` (from the simulation's start).
    pub fn tick(&mut self, now_ms: u64) {
        self.world.resource_mut::<Clock>().now_ms = EPOCH_MS + now_ms;
        self.schedule.run(&mut self.world);
        self.world.clear_trackers();
    }

    /// The validator's turn, as the shell's worker would take it; returns the chain changes (the
    /// world sees them next tick), after moving the node's coin view with them. Blocks it stored
    /// give their bytes to `blocks` (it keeps their hashes) and block reads are served from there.
    pub fn validate(&mut self, blocks: &mut SharedBlocks) -> Vec<ChainMove> {
        let validator = &mut self.validator;
        let mut moves = Vec::new();
        self.world.resource_scope(|world, mut queue: Mut<ValidationQueue>| {
            let mut inbox = world.resource_mut::<ValidationInbox>();
            let before = inbox.0.len();
            validator.run(&mut queue, &mut inbox);
            for ev in &inbox.0[before..] {
                match *ev {
                    ValidationEvent::Connected { hash, height } => moves.push(ChainMove::Connected(hash, height)),
                    ValidationEvent::Disconnected { hash, height } => moves.push(ChainMove::Disconnected(hash, height)),
                    _ => {}
                }
            }
        });
        for (hash, bytes) in validator.store.iter_mut().filter(|(_, b)| !b.is_empty()) {
            let bytes = std::mem::take(bytes);
            blocks.0.entry(*hash).or_insert(bytes);
        }
        self.world.resource_scope(|world, mut reads: Mut<BlockReads>| {
            let mut answers = world.resource_mut::<BlockReadInbox>();
            for r in reads.requests.drain(..) {
                let bytes = validator.store.contains_key(&r.hash).then(|| blocks.0.get(&r.hash).cloned()).flatten();
                answers.0.push(BlockData { conn: r.conn, hash: r.hash, bytes });
            }
        });
        for m in &moves {
            match *m {
                ChainMove::Connected(hash, _) => chain_connected(&self.chain, hash),
                ChainMove::Disconnected(hash, _) => chain_disconnected(&self.chain, hash),
            }
        }
        moves
    }

    /// Its validated tip: hash, height and the median time past a new block must exceed.
    pub fn tip(&self) -> (BlockHash, u32, i64) {
        let tree = self.world.resource::<HeaderTree>();
        let e = tree.entry(tree.validated_tip());
        (e.hash, e.height, tree.active_median_time_past(e.height))
    }

    /// Puts `txs` straight into its pool, through every pool check, as if they had been relayed to
    /// it earlier (no announcement follows: that relay is not simulated); returns how many entered.
    pub fn fill_pool(&mut self, txs: &[Arc<Transaction>]) -> usize {
        // The pool is taken out for the checks, which read other resources of the same world.
        let mut pool = std::mem::take(&mut *self.world.resource_mut::<Mempool>());
        let w = &self.world;
        let tree = w.resource::<HeaderTree>();
        let height = tree.entry(tree.validated_tip()).height;
        let mtp_of = |h: u32| tree.active_median_time_past(h);
        let policy: &PolicyConfig = w.resource::<PolicyConfig>();
        let inputs = AcceptInputs {
            coins: &*w.resource::<ChainCoins>().0,
            scripts: &*w.resource::<Scripts>().0,
            policy,
            tip_height: height,
            tip_mtp: tree.active_median_time_past(height),
            mtp_at: &mtp_of,
            now_ms: w.resource::<Clock>().now_ms,
        };
        let n = txs.iter().filter(|tx| accept(&mut pool, Arc::clone(tx), &inputs, false).is_ok()).count();
        *self.world.resource_mut::<Mempool>() = pool;
        n
    }
}
