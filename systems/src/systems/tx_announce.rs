//! tx_announce: transaction announcements out, and our `feefilter`. Newly accepted transactions are
//! queued for every peer that wants them, from its `version` on (one between `version` and
//! `verack` gets them at its first trickle, as Core); each peer's queue is sent at random (exponential)
//! intervals — 2 s average for outbound peers, 5 s on one timer shared by all inbound peers so
//! their timing cannot tell who learnt a transaction first — parents before children and higher
//! feerates first, at most Core's broadcast bound per trickle, never a transaction the peer knows
//! or one below its `feefilter`. Under backpressure (checks lagging, validation queue full) the
//! intervals stretch four-fold and each peer's requests in flight drop to a quarter.

use crate::chain::{Ibd, SyncConfig, ValidationQueue};
use crate::components::{Direction, Negotiated, PeerState, SendQueue, TxInventory};
use crate::mempool::intake::TxIntake;
use crate::mempool::local::Unbroadcast;
use crate::mempool::pool::Mempool;
use crate::resources::rolling_filter::RollingFilter;
use crate::resources::tx_requests::{TxRequests, MAX_PEER_IN_FLIGHT};
use crate::resources::{Clock, Config, Metrics, Rng, TxAnnounceState};
use crate::systems::inv_filter::KNOWN_INVENTORY;
use crate::wire::{InvList, InvType, Message};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;

/// Average trickle interval to inbound peers (Core's INBOUND_INVENTORY_BROADCAST_INTERVAL).
pub const INBOUND_TRICKLE_MS: u64 = 5_000;
/// Average trickle interval to outbound peers.
pub const OUTBOUND_TRICKLE_MS: u64 = 2_000;
/// Announcements per trickle at the base rate (Core: 14 per second × 5 s).
pub const BROADCAST_TARGET: usize = 70;
/// Announcements per trickle at most, however long the queue.
pub const BROADCAST_MAX: usize = 1_000;
/// Transactions a peer's announcement queue keeps; beyond it the lowest feerates are dropped and
/// counted. Core's queue has no bound but the pool's count (32 bytes per pooled transaction per
/// peer: 125 peers × a 300k-transaction pool is 1.2 GB); at the broadcast rate a queue this long
/// takes over six minutes to drain, and what falls off is what miners would take last.
pub const TO_SEND_MAX: usize = 5_000;

/// Entries of a peer's recently-announced filter: what it may ask for (Core: 3,500).
pub const RECENTLY_ANNOUNCED: usize = 3_500;
/// Average interval between our `feefilter`s (Core: 10 min).
pub const FEEFILTER_INTERVAL_MS: u64 = 600_000;
/// A large change of our floor is sent within this (Core: 5 min).
pub const FEEFILTER_CHANGE_DELAY_MS: u64 = 300_000;
/// What `feefilter` says while in initial block download: send us nothing (Core: MAX_MONEY).
pub const FEEFILTER_IBD: i64 = 21_000_000 * 100_000_000;

/// Our own unrequested transactions are announced again after at least this...
pub const UNBROADCAST_MIN_MS: u64 = 10 * 60 * 1000;
/// ...plus up to this at random (Core: 10–15 min).
pub const UNBROADCAST_SPREAD_MS: u64 = 5 * 60 * 1000;

/// An exponential delay with the given mean, from the world's rng.
fn exp_delay(rng: &mut Rng, mean_ms: u64) -> u64 {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-(1.0 - u).ln() * mean_ms as f64) as u64
}

/// The values a sent `feefilter` may take: 0, then 50 sat/kvB up to 10^7 in steps of 10 %.
fn feefilter_buckets() -> &'static [u64] {
    static B: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let mut buckets = vec![0u64];
        let mut b = 50.0f64;
        while b < 1e7 {
            buckets.push(b as u64);
            b *= 1.1;
        }
        buckets
    })
}

/// Rounds our floor down to one of a coarse set of values (steps of 10 %), randomly one step lower
/// two times in three, so the value we send does not fingerprint our pool exactly.
pub fn round_feefilter(rate: u64, rng: &mut Rng) -> i64 {
    let buckets = feefilter_buckets();
    let mut i = buckets.partition_point(|&x| x < rate);
    if i == buckets.len() || (i > 0 && !rng.next_u64().is_multiple_of(3)) {
        i -= 1;
    }
    buckets[i] as i64
}

/// Node-wide inputs of the announcer.
#[derive(bevy_ecs::system::SystemParam)]
pub struct AnnounceCtx<'w> {
    pool: ResMut<'w, Mempool>,
    intake: ResMut<'w, TxIntake>,
    tracker: ResMut<'w, TxRequests>,
    state: ResMut<'w, TxAnnounceState>,
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    rng: ResMut<'w, Rng>,
    metrics: ResMut<'w, Metrics>,
    ibd: Res<'w, Ibd>,
    queue: Res<'w, ValidationQueue>,
    sync: Res<'w, SyncConfig>,
    unbroadcast: ResMut<'w, Unbroadcast>,
}

/// Queues, trickles, filters.
pub fn tx_announce(
    mut peers: Query<(Entity, &Direction, &PeerState, &Negotiated, &mut TxInventory, &mut SendQueue)>,
    changed: Query<(), Changed<PeerState>>,
    mut ctx: AnnounceCtx,
) {
    let now = ctx.clock.now_ms;
    let slowed = ctx.intake.backlogged()
        || ctx.queue.pending_count() > ctx.sync.validation_pending_blocks_max
        || ctx.queue.pending_bytes > ctx.sync.validation_pending_bytes_max;
    if slowed != ctx.state.slowed {
        // Debug, not info: in IBD the validation queue sits at its bound and this flips every
        // few ticks (ten lines a second); `oni_tx_relay_slowed_ticks_total` keeps the count.
        tracing::debug!(slowed, intake = ctx.intake.len(), "tx relay pace changed");
    }
    ctx.state.slowed = slowed;
    ctx.state.slowed_ticks += slowed as u64;
    ctx.tracker.in_flight_cap = if slowed { MAX_PEER_IN_FLIGHT / 4 } else { MAX_PEER_IN_FLIGHT };
    let stretch = if slowed { 4 } else { 1 };
    let mut accepted = std::mem::take(&mut ctx.intake.accepted);
    if now >= ctx.unbroadcast.next_ms {
        ctx.unbroadcast.next_ms = now + UNBROADCAST_MIN_MS + ctx.rng.next_u64() % UNBROADCAST_SPREAD_MS;
        // Ours that left the pool are forgotten — unless a saved pool still waits to be checked
        // (after a restart they are not back in yet).
        if ctx.intake.restored.is_empty() {
            let pool = &ctx.pool;
            ctx.unbroadcast.txids.retain(|t| pool.get(t).is_some());
        }
        let pool = &ctx.pool;
        accepted.extend(ctx.unbroadcast.txids.iter().copied().filter(|t| pool.get(t).is_some()));
    }
    let inbound_due = now >= ctx.state.next_inbound_ms;
    if inbound_due {
        ctx.state.next_inbound_ms = now + exp_delay(&mut ctx.rng, INBOUND_TRICKLE_MS * stretch);
    }
    let floor = ctx.pool.min_feerate(now);
    let relay = ctx.config.relay;
    let current = if ctx.ibd.active { FEEFILTER_IBD } else { floor as i64 };
    let quiet = accepted.is_empty()
        && !inbound_due
        && now < ctx.state.earliest_due_ms
        && !big_change(current, ctx.state.scanned_floor)
        && changed.is_empty();
    if quiet {
        return;
    }
    ctx.state.scanned_floor = current;
    let mut earliest = u64::MAX;
    // A read-only pass picks the peers with something due; most idle peers have nothing.
    let due: Vec<Entity> = peers
        .iter()
        .filter(|(_, direction, state, neg, inv, _)| {
            if **direction == Direction::BlockRelayOnly || **direction == Direction::Feeler {
                return false;
            }
            if **state != PeerState::Ready {
                // Its version arrived: new transactions wait for it to finish the handshake.
                return handshaking_with_version(**state, neg) && neg.relay && !accepted.is_empty();
            }
            let filter_due = relay
                && (now >= inv.next_feefilter_ms
                    || inv.sent_feefilter.is_some_and(|sent| {
                        big_change(current, sent) && now + FEEFILTER_CHANGE_DELAY_MS < inv.next_feefilter_ms
                    }));
            let trickle_due = if direction.is_outbound() { now >= inv.next_inv_ms } else { inbound_due };
            if relay {
                earliest = earliest.min(inv.next_feefilter_ms);
            }
            if direction.is_outbound() {
                earliest = earliest.min(inv.next_inv_ms);
            }
            filter_due
                || (neg.relay && (!accepted.is_empty() || (trickle_due && !inv.to_send.is_empty())))
                || (neg.relay && direction.is_outbound() && trickle_due)
        })
        .map(|p| p.0)
        .collect();
    for entity in due {
        let Ok((_, direction, state, neg, mut inv, mut sq)) = peers.get_mut(entity) else { continue };
        if *state != PeerState::Ready {
            inv.to_send.extend_from_slice(&accepted);
            bound_queue(&mut inv, &ctx.pool, &mut ctx.metrics);
            continue;
        }
        // With --blocksonly we take no transactions, so we send no filter (as Core); our own
        // transactions (RPC) are still announced.
        if ctx.config.relay {
            send_feefilter(&mut inv, &mut sq, &mut ctx, floor, now);
        }
        if !neg.relay {
            continue;
        }
        if !accepted.is_empty() {
            inv.to_send.extend_from_slice(&accepted);
            bound_queue(&mut inv, &ctx.pool, &mut ctx.metrics);
        }
        let due = if direction.is_outbound() {
            let due = now >= inv.next_inv_ms;
            if due {
                inv.next_inv_ms = now + exp_delay(&mut ctx.rng, OUTBOUND_TRICKLE_MS * stretch);
            }
            due
        } else {
            inbound_due
        };
        if !due || inv.to_send.is_empty() {
            continue;
        }
        trickle(&mut inv, &mut sq, neg, &mut ctx, now);
    }
    // Peers handled this tick were rescheduled after `earliest` was read; any of their new times
    // is later than now, so the next tick scans again only if something else falls due.
    ctx.state.earliest_due_ms = if earliest <= now { now + 1 } else { earliest };
}

/// Whether the peer's relay state exists (Core: from its `version` on) without the handshake done.
fn handshaking_with_version(state: PeerState, neg: &Negotiated) -> bool {
    state == PeerState::Handshaking && neg.version != 0
}

/// Whether our floor moved by more than a third from what we last told a peer.
fn big_change(current: i64, sent: i64) -> bool {
    current < sent * 3 / 4 || current > sent * 4 / 3
}

fn send_feefilter(inv: &mut Mut<TxInventory>, sq: &mut Mut<SendQueue>, ctx: &mut AnnounceCtx, floor: u64, now: u64) {
    if now >= inv.next_feefilter_ms {
        let value = if ctx.ibd.active { FEEFILTER_IBD } else { round_feefilter(floor, &mut ctx.rng) };
        if inv.sent_feefilter != Some(value) {
            sq.push(ctx.config.network, &Message::FeeFilter(value));
            inv.sent_feefilter = Some(value);
        }
        inv.next_feefilter_ms = now + exp_delay(&mut ctx.rng, FEEFILTER_INTERVAL_MS);
    } else if let Some(sent) = inv.sent_feefilter {
        // A big move (over a third) is told sooner.
        let current = if ctx.ibd.active { FEEFILTER_IBD } else { floor as i64 };
        if big_change(current, sent) && now + FEEFILTER_CHANGE_DELAY_MS < inv.next_feefilter_ms {
            inv.next_feefilter_ms = now + ctx.rng.next_u64() % FEEFILTER_CHANGE_DELAY_MS;
        }
    }
}

/// Keeps a peer's queue within twice [`TO_SEND_MAX`] between trickles (amortized: it is cut back to
/// the bound, best feerates kept, only when it doubles): gone or duplicate entries go first.
pub fn bound_queue(inv: &mut TxInventory, pool: &Mempool, metrics: &mut Metrics) {
    if inv.to_send.len() > 2 * TO_SEND_MAX {
        cut_queue(inv, pool, metrics, TO_SEND_MAX);
    }
}

/// Cuts a peer's queue to the `max` best-paying pooled transactions, once each.
fn cut_queue(inv: &mut TxInventory, pool: &Mempool, metrics: &mut Metrics, max: usize) {
    let mut queue: Vec<(std::cmp::Reverse<u64>, u64, bitcoin::Txid)> = std::mem::take(&mut inv.to_send)
        .into_iter()
        .filter_map(|txid| pool.get(&txid).map(|e| (std::cmp::Reverse(e.feerate()), e.sequence, txid)))
        .collect();
    queue.sort_unstable();
    queue.dedup_by_key(|e| e.2);
    if queue.len() > max {
        metrics.tx_announce_dropped += (queue.len() - max) as u64;
        queue.truncate(max);
    }
    inv.to_send = queue.into_iter().map(|e| e.2).collect();
}

fn trickle(inv: &mut Mut<TxInventory>, sq: &mut Mut<SendQueue>, neg: &Negotiated, ctx: &mut AnnounceCtx, now: u64) {
    let inv: &mut TxInventory = inv;
    let filter = neg.feefilter.unwrap_or(0).max(0) as u64;
    let pool = &mut *ctx.pool;
    // Keep what is still pooled, pays the peer's filter and is new to it; parents first, then by feerate.
    let mut queue = std::mem::take(&mut inv.to_send);
    queue.sort_unstable();
    queue.dedup();
    let known = inv.known.get_or_insert_with(|| {
        let keys = [ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64()];
        RollingFilter::new(KNOWN_INVENTORY, 1e-6, keys)
    });
    let mut ready: Vec<(usize, std::cmp::Reverse<u64>, u64, bitcoin::Txid, [u8; 32])> = queue
        .into_iter()
        .filter_map(|txid| {
            let e = pool.get(&txid)?;
            let hash = if neg.wtxidrelay { e.wtxid.to_byte_array() } else { txid.to_byte_array() };
            if e.feerate() < filter || known.contains(&hash) {
                return None;
            }
            Some((pool.ancestor_count(&txid), std::cmp::Reverse(e.feerate()), e.sequence, txid, hash))
        })
        .collect();
    ready.sort_unstable();
    let max = (BROADCAST_TARGET + ready.len() / 1000 * 5).min(BROADCAST_MAX);
    if ready.len() > max {
        let mut rest: Vec<_> = ready.drain(max..).collect();
        if rest.len() > TO_SEND_MAX {
            rest.sort_unstable_by_key(|r| (r.1, r.2));
            ctx.metrics.tx_announce_dropped += (rest.len() - TO_SEND_MAX) as u64;
            rest.truncate(TO_SEND_MAX);
        }
        inv.to_send = rest.into_iter().map(|r| r.3).collect();
    }
    if ready.is_empty() {
        return;
    }
    let announced = inv.announced.get_or_insert_with(|| {
        let keys = [ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64()];
        RollingFilter::new(RECENTLY_ANNOUNCED, 1e-6, keys)
    });
    let kind = if neg.wtxidrelay { InvType::WTX } else { InvType::TX };
    let mut list = InvList::with_capacity(ready.len());
    for (_, _, _, txid, hash) in &ready {
        list.push(kind, *hash);
        known.insert(hash);
        announced.insert(hash);
        if let Some(waited) = pool.first_announce(txid, now) {
            ctx.metrics.tx_forward_ms.record(waited);
        }
    }
    ctx.metrics.tx_announced += ready.len() as u64;
    sq.push(ctx.config.network, &Message::Inv(list));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::TestNode;

    fn pooled(node: &TestNode) -> Vec<bitcoin::Txid> {
        node.world.resource::<Mempool>().iter().map(|e| e.txid).collect()
    }

    #[test]
    fn a_queue_cut_keeps_the_best_paying_pooled_transactions_once_each() {
        let node = crate::systems::mempool_relay_tests::fixture_pool_node();
        let txids = pooled(&node);
        assert!(txids.len() > 20, "the fixture pool holds {}", txids.len());
        let mut inv = TxInventory::default();
        for _ in 0..3 {
            inv.to_send.extend(&txids);
        }
        inv.to_send.push(bitcoin::Txid::from_byte_array([7; 32])); // not pooled
        let mut metrics = Metrics::default();
        let pool = node.world.resource::<Mempool>();
        cut_queue(&mut inv, pool, &mut metrics, 20);
        assert_eq!(inv.to_send.len(), 20);
        assert_eq!(metrics.tx_announce_dropped, txids.len() as u64 - 20);
        let worst_kept = inv.to_send.iter().map(|t| pool.get(t).map(|e| e.feerate())).min().flatten();
        let best_dropped =
            txids.iter().filter(|t| !inv.to_send.contains(t)).filter_map(|t| pool.get(t).map(|e| e.feerate())).max();
        assert!(worst_kept >= best_dropped, "kept down to {worst_kept:?}, dropped up to {best_dropped:?}");
    }

    #[test]
    fn a_peers_queue_stays_bounded_however_many_transactions_arrive_between_trickles() {
        let mut node = crate::systems::mempool_relay_tests::fixture_pool_node();
        let peer = node.ready_inbound("10.0.0.9:1");
        // Accepted lately but gone from the pool since (replaced, mined): still queued at once.
        let fake: Vec<bitcoin::Txid> =
            (0..2 * TO_SEND_MAX as u32 + 1).map(|i| bitcoin::Txid::from_byte_array(sha(i))).collect();
        node.world.resource_mut::<TxIntake>().accepted = fake;
        node.tick();
        let queued = node.get::<TxInventory>(peer).map(|i| i.to_send.len()).unwrap_or(usize::MAX);
        assert!(queued <= 2 * TO_SEND_MAX, "queue of {queued}");
    }

    fn sha(i: u32) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        b[31] = 1;
        b
    }
}
