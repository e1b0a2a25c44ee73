//! serve_txs: answers `getdata` for transactions and the `mempool` request. A pooled transaction is
//! sent only to a peer we announced it to lately (or that asked for our whole pool with
//! permission), so no one can probe what our pool holds; everything else gets `notfound`. Entries
//! wait in a bounded per-peer queue and are answered while the peer's send queue has room, so a
//! peer that asks much and reads little only stalls itself. `mempool` without the permission
//! disconnects, as Core does when it offers no bloom filters (a noban peer's is ignored, as Core
//! ignores it); so does any BIP37 filter message (`filterload`, `filteradd`, `filterclear`), from
//! anyone: we offer no bloom filters.

use crate::components::{Disconnect, PeerState, Permissions, Received, SendQueue, TxInventory};
use crate::mempool::local::Unbroadcast;
use crate::mempool::pool::Mempool;
use crate::resources::{Config, DisconnectReason, Metrics};
use crate::wire::{InvList, InvType, Message, Tx};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::{Txid, Wtxid};

/// Transaction `getdata` entries a peer may have waiting; more are dropped and counted. Core keeps
/// a whole `getdata` (up to 50,000 entries) per peer, which is 1.8 MB each, 225 MB over 125 peers
/// that ask and never read. No honest peer has more than this many transaction requests out at
/// once: Core asks a peer for at most 100 (5,000 with relay permission, its tracker's bound on
/// what a peer may announce), so the cap costs honest peers nothing and bounds the queue at 180 KB.
pub const GETDATA_QUEUE_MAX: usize = crate::resources::tx_requests::MAX_PEER_ANNOUNCEMENTS;

/// Queues and answers.
pub fn serve_txs(
    mut peers: Query<(Entity, &PeerState, &Permissions, &mut Received, &mut SendQueue, &mut TxInventory)>,
    pool: Res<Mempool>,
    mut unbroadcast: ResMut<Unbroadcast>,
    config: Res<Config>,
    mut metrics: ResMut<Metrics>,
    mut commands: Commands,
) {
    for (entity, state, perms, mut received, mut sq, mut inv) in &mut peers {
        if *state != PeerState::Ready {
            continue;
        }
        // Look before taking anything mutably: most peers ask for nothing in most ticks.
        let asks = |m: &Message| {
            matches!(
                m,
                Message::GetData(_)
                    | Message::Mempool
                    | Message::FilterLoad
                    | Message::FilterAdd
                    | Message::FilterClear
            )
        };
        if inv.getdata.is_empty() && !received.0.iter().any(asks) {
            continue;
        }
        let mut disconnect = None;
        received.0.retain(|m| match m {
            Message::GetData(list) => {
                for e in list.iter() {
                    let base = e.kind.base();
                    if base != InvType::TX && base != InvType::WTX {
                        continue;
                    }
                    if inv.getdata.len() < GETDATA_QUEUE_MAX {
                        inv.getdata.push_back(e);
                    } else {
                        metrics.tx_getdata_dropped += 1;
                    }
                }
                false
            }
            Message::Mempool => {
                if perms.mempool {
                    // Everything pooled now may be asked for, and is queued for its next trickle.
                    inv.to_send.extend(pool.iter().map(|e| e.txid));
                    crate::systems::tx_announce::bound_queue(&mut inv, &pool, &mut metrics);
                    inv.mempool_request_seq = Some(pool.next_sequence());
                } else if perms.noban {
                    // Core ignores it from a noban peer rather than disconnect it.
                    tracing::debug!(peer = ?entity, "mempool request without permission ignored (noban)");
                } else {
                    disconnect = Some(DisconnectReason::MempoolRequest);
                }
                false
            }
            Message::FilterLoad | Message::FilterAdd | Message::FilterClear => {
                disconnect = Some(DisconnectReason::ServiceNotOffered);
                false
            }
            _ => true,
        });
        if let Some(reason) = disconnect {
            tracing::info!(peer = ?entity, reason = reason.label(), "asked for a service we do not offer");
            commands.entity(entity).insert(Disconnect { reason });
            continue;
        }
        if inv.getdata.is_empty() {
            continue;
        }
        let mut missing = InvList::default();
        while sq.bytes() <= config.limits.send_queue_bytes_soft {
            let Some(e) = inv.getdata.pop_front() else { break };
            let entry = if e.kind.base() == InvType::WTX {
                pool.get_by_wtxid(&Wtxid::from_byte_array(e.hash))
            } else {
                pool.get(&Txid::from_byte_array(e.hash))
            };
            let allowed = entry.filter(|p| {
                inv.announced.as_ref().is_some_and(|f| f.contains(&e.hash))
                    || inv.mempool_request_seq.is_some_and(|s| p.sequence < s)
            });
            let Some(p) = allowed else {
                missing.push(e.kind, e.hash);
                continue;
            };
            let tx = if e.kind.wants_witness() || e.kind.base() == InvType::WTX {
                Tx::from_bitcoin(&p.tx)
            } else {
                let mut stripped = (*p.tx).clone();
                stripped.input.iter_mut().for_each(|i| i.witness.clear());
                Tx::from_bitcoin(&stripped)
            };
            match tx {
                Ok(tx) => {
                    metrics.tx_served += 1;
                    if unbroadcast.txids.contains(&p.txid) {
                        unbroadcast.requested += 1;
                    }
                    sq.push(config.network, &Message::Tx(tx));
                }
                Err(_) => missing.push(e.kind, e.hash),
            }
        }
        if !missing.is_empty() {
            metrics.tx_notfound_sent += missing.len() as u64;
            sq.push(config.network, &Message::NotFound(missing));
        }
    }
}
