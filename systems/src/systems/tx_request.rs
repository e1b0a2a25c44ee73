//! tx_request: the request side of transaction relay. Feeds answers (`tx`, `notfound`) and departed
//! peers to the tracker, hands received transactions to the accept system's intake, then asks the
//! peers it picks with one `getdata` per peer per tick.

use crate::chain::Ibd;
use crate::components::{Direction, Disconnect, Negotiated, Received, SendQueue, TxInventory, Violations};
use crate::mempool::intake::TxIntake;
use crate::mempool::policy::{PolicyConfig, TxReject};
use crate::mempool::pool::Mempool;
use crate::resources::tx_requests::TxRequests;
use crate::resources::TxRelayState;
use crate::resources::{Clock, Config, DisconnectReason, Metrics};
use crate::systems::inv_filter::takes_txs_from;
use crate::wire::{InvList, InvType, Message, Tx};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;

/// What a received transaction meets before it is decoded.
#[derive(bevy_ecs::system::SystemParam)]
pub struct Gate<'w> {
    intake: ResMut<'w, TxIntake>,
    recent: Res<'w, TxRelayState>,
    pool: Res<'w, Mempool>,
    policy: Res<'w, PolicyConfig>,
    ibd: Res<'w, Ibd>,
}

/// The peer entity's parts the request side uses.
type RequestPeer<'a> = (
    Entity,
    &'a Direction,
    &'a Negotiated,
    &'a mut Received,
    &'a mut SendQueue,
    &'a mut Violations,
    &'a mut TxInventory,
);

/// Answers in, requests out.
pub fn tx_request(
    mut peers: Query<RequestPeer>,
    mut rng: ResMut<crate::resources::Rng>,
    leaving: Query<Entity, Added<Disconnect>>,
    mut gone: RemovedComponents<TxInventory>,
    mut tracker: ResMut<TxRequests>,
    mut gate: Gate,
    config: Res<Config>,
    clock: Res<Clock>,
    mut metrics: ResMut<Metrics>,
    mut commands: Commands,
) {
    let now = clock.now_ms;
    // Peers marked this tick are released at once; the rest are caught when their entity is gone.
    for entity in leaving.iter().chain(gone.read()) {
        tracker.disconnected(entity, now);
    }
    for (entity, direction, neg, mut received, _, mut violations, mut inv) in &mut peers {
        // Most peers have nothing for us in most ticks: look before taking anything mutably.
        if !received.0.iter().any(|m| matches!(m, Message::NotFound(_) | Message::Tx(_))) {
            continue;
        }
        let wants_txs = takes_txs_from(&config, *direction);
        if !wants_txs && received.0.iter().any(|m| matches!(m, Message::Tx(_))) {
            // We told it we take no transactions (block-relay-only, feeler, --blocksonly): Core
            // disconnects, without discouragement.
            tracing::info!(peer = ?entity, "transaction sent though we asked for none");
            received.0.clear();
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::TxRelayViolation });
            continue;
        }
        received.0.retain(|msg| match msg {
            Message::NotFound(list) => {
                for e in list.iter() {
                    tracker.response(entity, &e.hash, now);
                }
                true // block entries may matter to others
            }
            Message::Tx(tx) => {
                if oversized(&gate, &mut metrics, tx) {
                    return false;
                }
                let txid = tx.txid().to_byte_array();
                let wtxid = tx.wtxid().to_byte_array();
                let asked = if neg.wtxidrelay { wtxid } else { txid };
                if let Some(first) = tracker.first_seen_ms(&asked) {
                    metrics.tx_relay_ms.record(now.saturating_sub(first));
                }
                // Orphan parents are asked by txid whatever the peer negotiated.
                if tracker.response(entity, &asked, now) || tracker.response(entity, &txid, now) {
                    metrics.tx_received += 1;
                } else {
                    metrics.tx_unrequested += 1;
                }
                // It knows what it sent us: never announce it back.
                let known = inv.known.get_or_insert_with(|| {
                    let keys = [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()];
                    crate::resources::rolling_filter::RollingFilter::new(
                        crate::systems::inv_filter::KNOWN_INVENTORY,
                        1e-6,
                        keys,
                    )
                });
                known.insert(&txid);
                known.insert(&wtxid);
                if !pass_gate(&gate, &mut metrics, tx) {
                    return false;
                }
                match tx.to_bitcoin() {
                    Ok(tx) => {
                        if !gate.intake.push(Some(entity), std::sync::Arc::new(tx)) {
                            metrics.tx_intake_dropped += 1;
                        }
                    }
                    Err(_) => violations.0.push(crate::resources::Misbehavior::InvalidTransaction),
                }
                false
            }
            _ => true,
        });
    }
    let mut requests = tracker.step(now);
    if requests.is_empty() {
        return;
    }
    requests.sort_by_key(|r| r.peer);
    for group in requests.chunk_by(|a, b| a.peer == b.peer) {
        let Ok((_, _, _, _, mut sq, _, _)) = peers.get_mut(group[0].peer) else { continue };
        let mut list = InvList::with_capacity(group.len());
        for r in group {
            list.push(if r.is_wtxid { InvType::WTX } else { InvType::WITNESS_TX }, r.hash);
        }
        metrics.tx_requests_sent += group.len() as u64;
        sq.push(config.network, &Message::GetData(list));
    }
}

/// Whether a received transaction is worth decoding and checking. Dropped on its raw bytes: in IBD
/// (nothing can be checked, as Core), and one rejected lately or already pooled or confirmed (its
/// wtxid; a resent copy costs a hash, not a decode).
fn pass_gate(gate: &Gate, metrics: &mut Metrics, tx: &Tx) -> bool {
    if gate.ibd.active {
        return false;
    }
    let wtxid = tx.wtxid();
    if gate.recent.rejected.contains(wtxid.as_byte_array()) {
        metrics.tx_recently_rejected += 1;
        return false;
    }
    if gate.recent.confirmed.contains(wtxid.as_byte_array()) || gate.pool.get_by_wtxid(&wtxid).is_some() {
        metrics.tx_duplicate += 1;
        return false;
    }
    true
}

/// Whether a received transaction is over the standard weight (`tx-size`): refused on its span
/// alone, before it is hashed or decoded — it would fail the same check after a decode of up to
/// 4 MB, and a resent copy costs no more than its parse. Not remembered (that needs its hashes).
fn oversized(gate: &Gate, metrics: &mut Metrics, tx: &Tx) -> bool {
    let weight = tx.weight();
    if weight <= gate.policy.max_standard_tx_weight {
        return false;
    }
    metrics.tx_rejected[TxReject::TxSize as usize] += 1;
    tracing::debug!(weight, "tx rejected before decode: tx-size");
    true
}
