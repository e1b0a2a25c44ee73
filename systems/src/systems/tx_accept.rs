//! tx_accept: the pool's one writer. Applies chain changes first (blocks take out what they
//! confirm or conflict with, a reorg's transactions return), then checks received transactions
//! within a per-tick budget of check work (inputs and weight): accepted ones go to the announcer and
//! release their waiting orphans; orphans wait in the orphanage while their parents are asked of
//! the peer that sent them; rejected ones are remembered, and only consensus failures score.

use crate::chain::{HeaderTree, Ibd};
use crate::components::{Direction, Stats, Violations};
use crate::mempool::accept::{accept, AcceptError, AcceptInputs};
use crate::mempool::intake::{check_units, recheck_units, TxIntake};
use crate::mempool::orphanage::Orphanage;
use crate::mempool::policy::{PolicyConfig, TxReject};
use crate::mempool::pool::{Mempool, Removal};
use crate::mempool::{BlockTxEvent, BlockTxInbox, ChainCoins, CoinsTip, Scripts, SkipScripts};
use crate::resources::tx_requests::TxRequests;
use crate::resources::TxRelayState;
use crate::resources::{Clock, Metrics, Misbehavior};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::Transaction;
use std::sync::Arc;

/// The pool and what surrounds it.
#[derive(bevy_ecs::system::SystemParam)]
pub struct PoolCtx<'w> {
    pool: ResMut<'w, Mempool>,
    orphans: ResMut<'w, Orphanage>,
    intake: ResMut<'w, TxIntake>,
    blocks: ResMut<'w, BlockTxInbox>,
    coins: Res<'w, ChainCoins>,
    scripts: Res<'w, Scripts>,
    policy: Res<'w, PolicyConfig>,
    tree: Res<'w, HeaderTree>,
    ibd: Res<'w, Ibd>,
    coins_tip: ResMut<'w, CoinsTip>,
}

/// Chain changes, then checks.
pub fn tx_accept(
    mut peers: Query<(&Direction, &mut Stats, &mut Violations)>,
    leaving: Query<Entity, Added<crate::components::Disconnect>>,
    mut gone: RemovedComponents<crate::components::TxInventory>,
    mut ctx: PoolCtx,
    mut recent: ResMut<TxRelayState>,
    mut tracker: ResMut<TxRequests>,
    clock: Res<Clock>,
    mut metrics: ResMut<Metrics>,
    mut extra: ResMut<crate::mempool::extra::ExtraTxns>,
) {
    let now = clock.now_ms;
    for peer in leaving.iter().chain(gone.read()) {
        ctx.orphans.peer_gone(peer);
    }
    if now >= ctx.intake.next_expiry_ms {
        ctx.intake.next_expiry_ms = now + 60_000;
        metrics.tx_expired += ctx.pool.expire(now) as u64;
        ctx.orphans.expire(now);
    }
    apply_chain_changes(&mut ctx, &mut recent, now);
    if ctx.intake.is_empty()
        && ctx.intake.retry.is_empty()
        && ctx.intake.reorged.is_empty()
        && ctx.intake.repool.is_empty()
        && ctx.intake.restored.is_empty()
    {
        return;
    }
    let validated = ctx.tree.entry(ctx.tree.validated_tip()).height;
    let tip_height = ctx.coins_tip.0.unwrap_or(validated);
    if tip_height < validated && !ctx.ibd.active {
        // The coins are catching up with the chain: hold arrivals until they stand at the tip.
        return;
    }
    let tree = &*ctx.tree;
    let mtp_of = |h: u32| tree.active_median_time_past(h);
    let inputs = AcceptInputs {
        coins: &*ctx.coins.0,
        scripts: &*ctx.scripts.0,
        policy: &ctx.policy,
        tip_height,
        tip_mtp: tree.active_median_time_past(tip_height),
        mtp_at: &mtp_of,
        now_ms: now,
    };
    let pool = &mut *ctx.pool;
    let intake = &mut *ctx.intake;
    let orphans = &mut *ctx.orphans;
    let mut budget = intake.check_units_per_tick;
    // A reorg's transactions come back quietly: failures are expected (conflicts, spent coins).
    // Then the pool's own entries are checked again. Both take the tick's budget, over as many
    // ticks as they need; new arrivals wait until they are done (links and coins must be right).
    while budget > 0 {
        let Some(tx) = intake.reorged.pop_front() else { break };
        budget = budget.saturating_sub(check_units(&tx));
        if accept(pool, tx, &inputs, false).is_ok() {
            metrics.tx_reorg_returned += 1;
        }
    }
    let rechecked = AcceptInputs { scripts: &SkipScripts, ..inputs };
    while budget > 0 && intake.reorged.is_empty() {
        let Some(tx) = intake.repool.pop_front() else { break };
        budget = budget.saturating_sub(recheck_units(&tx));
        if accept(pool, tx, &rechecked, false).is_err() {
            pool.count_removal(Removal::Reorg);
        }
    }
    if !intake.reorged.is_empty() || !intake.repool.is_empty() {
        return;
    }
    if ctx.ibd.active {
        intake.clear();
        intake.retry.clear();
        return;
    }
    // The pool saved at the last stop comes back next, quietly (the chain may have moved on:
    // failures are expected).
    while budget > 0 {
        let Some(tx) = intake.restored.pop_front() else { break };
        budget = budget.saturating_sub(check_units(&tx));
        // Not announced again (peers heard of them before the stop); our own unbroadcast ones
        // are, by the unbroadcast set.
        if accept(pool, tx, &inputs, false).is_ok() {
            metrics.tx_restored += 1;
        }
    }
    if !intake.restored.is_empty() {
        return;
    }
    while budget > 0 {
        let Some((from, tx)) = intake.retry.pop_front().or_else(|| intake.pop()) else { break };
        budget = budget.saturating_sub(check_units(&tx));
        let txid = tx.compute_txid();
        let wtxid = tx.compute_wtxid();
        if pool.get_by_wtxid(&wtxid).is_some() {
            metrics.tx_duplicate += 1;
            continue;
        }
        match accept(pool, tx.clone(), &inputs, false) {
            Ok(done) => {
                metrics.tx_accepted += 1;
                metrics.tx_replaced += done.replaced.len() as u64;
                metrics.tx_evicted += done.evicted.len() as u64;
                // Replaced ones may still be mined: kept for compact blocks (as Core).
                done.replaced.iter().for_each(|t| extra.add(t.clone()));
                tracker.forget(txid.as_byte_array());
                tracker.forget(wtxid.as_byte_array());
                recent.seen.insert(txid.as_byte_array());
                recent.seen.insert(wtxid.as_byte_array());
                intake.accepted.push(txid);
                orphans.remove(&wtxid);
                for child in orphans.children_of(&txid) {
                    intake.retry.push_back((child.announcers.first().copied(), child.tx));
                }
                if let Some(Ok((_, mut stats, _))) = from.map(|e| peers.get_mut(e)) {
                    stats.last_tx_ms = Some(now);
                }
                tracing::debug!(%txid, fee = done.fee_sat, vsize = done.vsize, "tx accepted");
            }
            Err(AcceptError::MissingInputs(parents)) => {
                let rejected_parent = parents.iter().any(|p| recent.rejected.contains(p.as_byte_array()));
                let Some(peer) = from.filter(|_| !rejected_parent) else {
                    reject(&mut recent, &mut metrics, &tx, TxReject::MissingInputs);
                    continue;
                };
                metrics.tx_orphaned += 1;
                orphans.add(tx.clone(), peer, now);
                let preferred = peers.get(peer).is_ok_and(|p| p.0.is_outbound());
                for p in parents {
                    if !recent.already_have(p.as_byte_array()) {
                        tracker.announce(peer, p.to_byte_array(), false, preferred, now, 0);
                    }
                }
                tracker.forget(txid.as_byte_array());
                tracker.forget(wtxid.as_byte_array());
            }
            Err(AcceptError::Reject(reason)) => {
                orphans.remove(&wtxid);
                // Another miner's policy may still confirm it: kept for compact blocks (as Core).
                extra.add(tx.clone());
                reject(&mut recent, &mut metrics, &tx, reason);
                tracker.forget(txid.as_byte_array());
                tracker.forget(wtxid.as_byte_array());
                if reason.is_consensus() {
                    if let Some(Ok((_, _, mut v))) = from.map(|e| peers.get_mut(e)) {
                        v.0.push(Misbehavior::InvalidTransaction);
                    }
                }
                tracing::debug!(%txid, reason = reason.label(), "tx rejected");
            }
        }
    }
}

fn reject(recent: &mut TxRelayState, metrics: &mut Metrics, tx: &Transaction, reason: TxReject) {
    metrics.tx_rejected[reason as usize] += 1;
    recent.remember_rejected(tx.compute_txid().as_byte_array(), tx.compute_wtxid().as_byte_array(), reason);
}

fn apply_chain_changes(ctx: &mut PoolCtx, recent: &mut TxRelayState, now: u64) {
    if ctx.blocks.0.is_empty() {
        return;
    }
    let mut disconnected: Vec<Arc<Vec<Transaction>>> = Vec::new();
    for event in std::mem::take(&mut ctx.blocks.0) {
        match event {
            BlockTxEvent::Connected { txs, height, .. } => {
                if ctx.coins_tip.0.is_some() {
                    ctx.coins_tip.0 = Some(height);
                }
                ctx.pool.remove_for_block(&txs, now);
                ctx.orphans.remove_for_block(&txs);
                for tx in txs.iter() {
                    let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
                    recent.confirmed.insert(txid.as_byte_array());
                    // As Core: the wtxid too when it differs (one slot per legacy transaction).
                    if wtxid.as_byte_array() != txid.as_byte_array() {
                        recent.confirmed.insert(wtxid.as_byte_array());
                    }
                }
                // As Core: a new tip may make rejected transactions valid again.
                recent.rejected.clear();
            }
            BlockTxEvent::Disconnected { txs, height, .. } => {
                if ctx.coins_tip.0.is_some() {
                    ctx.coins_tip.0 = Some(height.saturating_sub(1));
                }
                disconnected.push(txs);
            }
        }
    }
    if disconnected.is_empty() {
        return;
    }
    // What the pool holds may spend what the reorg took away, or what now returns to the pool:
    // every entry is checked again after the disconnected blocks' transactions.
    let held = ctx.pool.take_all();
    ctx.intake.repool.extend(held);
    // Tip first came out; oldest first goes back, parents before children.
    for txs in disconnected.into_iter().rev() {
        ctx.intake.reorged.extend(txs.iter().skip(1).map(|t| Arc::new(t.clone())));
    }
}
