//! inv_filter: transaction announcements in. Each `inv` tx entry is checked against what the peer
//! negotiated (wtxid or txid), remembered in the peer's known-inventory filter, dropped when the
//! node saw, rejected or confirmed it lately, and otherwise handed to the request tracker within the
//! peer's announcement bound. Entries of the kind the peer did not negotiate are skipped first (as
//! Core); a peer we asked for no transactions (block-relay-only, feeler, our relay flag off) that
//! announces one is disconnected, not discouraged (Core's rule); during initial block download
//! announcements are ignored (nothing could be checked yet).

use crate::components::{Direction, Disconnect, Negotiated, PeerState, Received, TxInventory};
use crate::resources::rolling_filter::RollingFilter;
use crate::resources::tx_requests::{AnnounceOutcome, TxRequests, NONPREF_DELAY_MS, TXID_DELAY_MS};
use crate::resources::{Clock, Config, DisconnectReason, Metrics, Rng, TxAnnounceState, TxRelayState};
use crate::wire::{InvType, Message};
use bevy_ecs::prelude::*;

/// Entries a peer's known-inventory filter remembers (Core: 50,000 at 1e-6).
pub const KNOWN_INVENTORY: usize = 50_000;
fn in_pool(pool: &crate::mempool::pool::Mempool, hash: &[u8; 32], is_wtxid: bool) -> bool {
    use bitcoin::hashes::Hash;
    if pool.is_empty() {
        return false;
    }
    if is_wtxid {
        pool.get_by_wtxid(&bitcoin::Wtxid::from_byte_array(*hash)).is_some()
    } else {
        pool.get(&bitcoin::Txid::from_byte_array(*hash)).is_some()
    }
}

/// Node-wide inputs of the inv filter.
#[derive(bevy_ecs::system::SystemParam)]
pub struct InvCtx<'w> {
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    recent: Res<'w, TxRelayState>,
    tracker: ResMut<'w, TxRequests>,
    rng: ResMut<'w, Rng>,
    metrics: ResMut<'w, Metrics>,
    ibd: Res<'w, crate::chain::Ibd>,
    pool: Res<'w, crate::mempool::pool::Mempool>,
    pace: Res<'w, TxAnnounceState>,
}

/// Under backpressure, a peer with this many announcements outstanding is the noisy kind: its new
/// ones are shed first (counted), while quieter peers' still get through.
pub const NOISY_PEER_ANNOUNCEMENTS: usize = 1_000;

/// Whether a peer may send us transactions at all (Core's RejectIncomingTxs, but for the relay
/// permission oni does not have).
pub fn takes_txs_from(config: &Config, direction: Direction) -> bool {
    config.relay && !matches!(direction, Direction::BlockRelayOnly | Direction::Feeler)
}

/// Takes the tx entries of every `inv`; leaves messages with other entries for other systems.
pub fn inv_filter(
    mut peers: Query<(Entity, &Direction, &PeerState, &Negotiated, &mut TxInventory, &mut Received)>,
    mut ctx: InvCtx,
    mut commands: Commands,
) {
    let now = ctx.clock.now_ms;
    // Only peers with an `inv` waiting are touched mutably; most ticks have none.
    let with_inv: Vec<Entity> = peers
        .iter()
        .filter(|p| *p.2 == PeerState::Ready && p.5 .0.iter().any(|m| matches!(m, Message::Inv(_))))
        .map(|p| p.0)
        .collect();
    if with_inv.is_empty() {
        return;
    }
    let wtxid_peers_exist = peers.iter().any(|p| *p.2 == PeerState::Ready && p.3.wtxidrelay);
    for e in with_inv {
        let Ok((entity, direction, _, neg, mut inv, mut received)) = peers.get_mut(e) else { continue };
        let wants_txs = takes_txs_from(&ctx.config, *direction);
        let mut violation = false;
        received.0.retain(|msg| {
            let Message::Inv(list) = msg else { return true };
            if violation {
                return false;
            }
            let mut others = false;
            for entry in list.iter() {
                let kind = entry.kind.base();
                if kind != InvType::TX && kind != InvType::WTX {
                    others = true;
                    continue;
                }
                ctx.metrics.tx_inv_received += 1;
                // The kind it did not negotiate is skipped before anything else, as Core does.
                let is_wtxid = kind == InvType::WTX;
                if is_wtxid != neg.wtxidrelay {
                    ctx.metrics.tx_inv_wrong_kind += 1;
                    continue;
                }
                if !wants_txs {
                    violation = true;
                    return false;
                }
                // In initial block download we cannot check transactions: ignore them, as Core does.
                if ctx.ibd.active {
                    continue;
                }
                let known = inv.known.get_or_insert_with(|| {
                    let keys = [ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64()];
                    RollingFilter::new(KNOWN_INVENTORY, 1e-6, keys)
                });
                known.insert(&entry.hash);
                if ctx.recent.already_have(&entry.hash) || in_pool(&ctx.pool, &entry.hash, is_wtxid) {
                    continue;
                }
                if ctx.pace.slowed && ctx.tracker.announced_by(entity) >= NOISY_PEER_ANNOUNCEMENTS {
                    ctx.metrics.tx_announcements_shed += 1;
                    continue;
                }
                let preferred = direction.is_outbound();
                let mut delay = if preferred { 0 } else { NONPREF_DELAY_MS };
                if !is_wtxid && wtxid_peers_exist {
                    delay += TXID_DELAY_MS;
                }
                if ctx.tracker.announce(entity, entry.hash, is_wtxid, preferred, now, delay)
                    == AnnounceOutcome::OverLimit
                {
                    ctx.metrics.tx_announcements_dropped += 1;
                }
            }
            others
        });
        if violation {
            tracing::info!(peer = ?entity, "transaction announced though we asked for none");
            received.0.clear();
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::TxRelayViolation });
        }
    }
}
