//! admission: the Peer Manager's door. A new inbound peer from a banned address is refused before
//! any handshake work; one from a discouraged address only while the slots are nearly full (else it
//! is admitted, marked to be evicted first, as Core); when every inbound slot is taken, an existing
//! inbound peer is evicted by Core's rule, or the newcomer is refused.

use super::eviction::{select_to_evict, EvictionCandidate};
use crate::components::{Direction, Disconnect, Negotiated, Permissions, PreferEvict, Socket, Stats};
use crate::resources::{AddrBook, BanList, Clock, Config, DisconnectReason, NetAddress, PeerPolicy};
use bevy_ecs::prelude::*;

/// The peer entity's parts admission uses.
type AdmissionPeer<'a> =
    (Entity, Ref<'a, Socket>, &'a Direction, &'a Stats, &'a Negotiated, &'a mut Permissions, Has<PreferEvict>);

/// Admits, refuses or makes room for this tick's new inbound peers.
pub fn admission(
    mut peers: Query<AdmissionPeer, Without<Disconnect>>,
    bans: Res<BanList>,
    book: Res<AddrBook>,
    policy: Res<PeerPolicy>,
    config: Res<Config>,
    clock: Res<Clock>,
    mut commands: Commands,
) {
    let now_s = clock.unix_s();
    let mut newcomers = Vec::new();
    let mut inbound = 0usize;
    let max = config.limits.max_inbound;
    let mut discouraged = Vec::new();
    for (entity, socket, direction, _, _, mut perms, _) in &mut peers {
        if *direction != Direction::Inbound {
            continue;
        }
        if !socket.is_added() {
            inbound += 1;
            continue;
        }
        let ip = socket.addr.ip();
        if policy.whitelist.iter().any(|s| s.contains(ip)) {
            perms.noban = true;
            perms.mempool = true;
        }
        if !perms.noban && bans.is_banned(ip, now_s) {
            tracing::debug!(peer = socket.conn.0, addr = %socket.addr, "refused: banned");
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::Banned });
            continue;
        }
        if !perms.noban && bans.is_discouraged(ip, now_s) {
            discouraged.push((entity, socket.conn, socket.addr));
            continue;
        }
        newcomers.push(entity);
    }
    // As Core: a discouraged address gets in only while the slots are not (nearly) full, and is
    // then the first to be evicted.
    // This tick's newcomers that got a slot: later ones in the same burst may evict them, as if
    // they had come one at a time (Core accepts one connection at a time).
    let mut admitted: Vec<Entity> = Vec::new();
    for (entity, conn, addr) in discouraged {
        if inbound + 1 < max {
            inbound += 1;
            admitted.push(entity);
            commands.entity(entity).insert(PreferEvict);
        } else {
            tracing::debug!(peer = conn.0, %addr, "refused: discouraged and the slots are full");
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::Discouraged });
        }
    }
    let mut evicted: Vec<Entity> = Vec::new();
    for newcomer in newcomers {
        if inbound < max {
            inbound += 1;
            admitted.push(newcomer);
            continue;
        }
        let candidates: Vec<EvictionCandidate> = peers
            .iter()
            .filter(|(e, s, d, _, _, p, _)| {
                **d == Direction::Inbound
                    && (!s.is_added() || admitted.contains(e))
                    && !p.noban
                    && *e != newcomer
                    && !evicted.contains(e)
            })
            .map(|(entity, socket, _, stats, neg, _, prefer_evict)| {
                let group = NetAddress::from_ip(socket.addr.ip()).group();
                EvictionCandidate {
                    entity,
                    connected_ms: socket.connected_ms,
                    min_ping_ms: stats.min_ping_ms.unwrap_or(u64::MAX),
                    last_tx_ms: stats.last_tx_ms.unwrap_or(0),
                    last_block_ms: stats.last_block_ms.unwrap_or(0),
                    relay_txs: neg.relay,
                    group,
                    keyed_group: book.keyed_group(&group),
                    is_local: socket.addr.ip().is_loopback(),
                    prefer_evict,
                }
            })
            .collect();
        match select_to_evict(candidates) {
            Some(victim) => {
                evicted.push(victim);
                admitted.push(newcomer);
                commands.entity(victim).insert(Disconnect { reason: DisconnectReason::Evicted });
                // The victim's slot goes to the newcomer; the count is unchanged.
            }
            None => {
                commands.entity(newcomer).insert(Disconnect { reason: DisconnectReason::NoSlot });
            }
        }
    }
}
