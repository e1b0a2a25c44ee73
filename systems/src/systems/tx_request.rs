//! tx_request: the request side of transaction relay. Feeds answers (`tx`, `notfound`) and departed
//! peers to the tracker, then asks the peers it picks with one `getdata` per peer per tick.

use crate::components::{Disconnect, Negotiated, Received, SendQueue, TxInventory};
use crate::resources::tx_requests::TxRequests;
use crate::resources::{Clock, Config, Metrics};
use crate::systems::inv_filter::TxRelayState;
use crate::wire::{InvList, InvType, Message};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;

/// Answers in, requests out.
pub fn tx_request(
    mut peers: Query<(Entity, &Negotiated, &mut Received, &mut SendQueue)>,
    leaving: Query<Entity, Added<Disconnect>>,
    mut gone: RemovedComponents<TxInventory>,
    mut tracker: ResMut<TxRequests>,
    mut recent: ResMut<TxRelayState>,
    config: Res<Config>,
    clock: Res<Clock>,
    mut metrics: ResMut<Metrics>,
) {
    let now = clock.now_ms;
    // Peers marked this tick are released at once; the rest are caught when their entity is gone.
    for entity in leaving.iter().chain(gone.read()) {
        tracker.disconnected(entity, now);
    }
    for (entity, neg, mut received, _) in &mut peers {
        received.0.retain(|msg| match msg {
            Message::NotFound(list) => {
                for e in list.iter() {
                    tracker.response(entity, &e.hash, now);
                }
                true // block entries may matter to others
            }
            Message::Tx(tx) => {
                let txid = tx.txid().to_byte_array();
                let wtxid = tx.wtxid().to_byte_array();
                let asked = if neg.wtxidrelay { wtxid } else { txid };
                if let Some(first) = tracker.first_seen_ms(&asked) {
                    metrics.tx_relay_ms.record(now.saturating_sub(first));
                }
                if tracker.response(entity, &asked, now) {
                    metrics.tx_received += 1;
                } else {
                    metrics.tx_unrequested += 1;
                }
                // Without a mempool yet, a received transaction ends here: remembered, never asked again.
                recent.seen.insert(&txid);
                recent.seen.insert(&wtxid);
                tracker.forget(&txid);
                tracker.forget(&wtxid);
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
        let Ok((_, _, _, mut sq)) = peers.get_mut(group[0].peer) else { continue };
        let mut list = InvList::with_capacity(group.len());
        for r in group {
            list.push(if r.is_wtxid { InvType::WTX } else { InvType::WITNESS_TX }, r.hash);
        }
        metrics.tx_requests_sent += group.len() as u64;
        sq.push(config.network, &Message::GetData(list));
    }
}
