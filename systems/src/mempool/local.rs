//! Transactions from the operator (RPC `sendrawtransaction`, `testmempoolaccept`): the same checks
//! as a peer's, run against the world between ticks. Accepted ones are announced like any other and
//! kept in the unbroadcast set, re-announced every 10–15 minutes (to every peer not known to have
//! it) until they confirm or otherwise leave the pool. Core stops at the first getdata; we keep
//! going until the block, as the issue asks: a getdata shows one peer heard of it, not that miners
//! did.

use crate::chain::HeaderTree;
use crate::mempool::accept::{accept, AcceptError, AcceptInputs, Accepted};
use crate::mempool::intake::TxIntake;
use crate::mempool::policy::PolicyConfig;
use crate::mempool::pool::Mempool;
use crate::mempool::{ChainCoins, Scripts};
use crate::resources::Clock;
use crate::resources::TxRelayState;
use ahash::AHashSet;
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::{Transaction, Txid};
use std::sync::Arc;

/// Our own transactions still unconfirmed, and when to announce them again.
#[derive(Resource, Debug, Default)]
pub struct Unbroadcast {
    /// Txids waiting for a peer's getdata.
    pub txids: AHashSet<Txid>,
    /// Next re-announcement (clock ms).
    pub next_ms: u64,
    /// Getdata requests served for them (how operators see the network heard).
    pub requested: u64,
}

/// Runs `tx` through the pool's checks on `world`; with `test_only` nothing changes.
pub fn submit_local(world: &mut World, tx: Transaction, test_only: bool) -> Result<Accepted, AcceptError> {
    let tx = Arc::new(tx);
    let now = world.resource::<Clock>().now_ms;
    let outcome = world.resource_scope(|world, mut pool: Mut<Mempool>| {
        let tree = world.resource::<HeaderTree>();
        let validated = tree.entry(tree.validated_tip()).height;
        let tip_height = world.resource::<crate::mempool::CoinsTip>().0.unwrap_or(validated).min(validated);
        let mtp_of = |h: u32| tree.active_median_time_past(h);
        let inputs = AcceptInputs {
            coins: &*world.resource::<ChainCoins>().0,
            scripts: &*world.resource::<Scripts>().0,
            policy: world.resource::<PolicyConfig>(),
            tip_height,
            tip_mtp: tree.active_median_time_past(tip_height),
            mtp_at: &mtp_of,
            now_ms: now,
        };
        accept(&mut pool, tx.clone(), &inputs, test_only)
    });
    if let (Err(AcceptError::Reject(reason)), false) = (&outcome, test_only) {
        world.resource_mut::<crate::resources::Metrics>().tx_rejected[*reason as usize] += 1;
    }
    if let (Ok(done), false) = (&outcome, test_only) {
        world.resource_mut::<TxIntake>().accepted.push(done.txid);
        let mut recent = world.resource_mut::<TxRelayState>();
        recent.seen.insert(done.txid.as_byte_array());
        recent.seen.insert(tx.compute_wtxid().as_byte_array());
        world.resource_mut::<Unbroadcast>().txids.insert(done.txid);
        world.resource_mut::<crate::resources::Metrics>().tx_accepted += 1;
    }
    outcome
}
