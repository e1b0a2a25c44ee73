//! admission: the Peer Manager's door. A new inbound peer from a banned or discouraged address is
//! refused before any handshake work; when every inbound slot is taken, an existing inbound peer is
//! evicted by Core's rule, or the newcomer is refused.

use super::eviction::{select_to_evict, EvictionCandidate};
use crate::components::{Direction, Disconnect, Negotiated, Permissions, Socket, Stats};
use crate::resources::{AddrBook, BanList, Clock, Config, DisconnectReason, NetAddress, PeerPolicy};
use bevy_ecs::prelude::*;

/// Admits, refuses or makes room for this tick's new inbound peers.
pub fn admission(
    mut peers: Query<(Entity, Ref<Socket>, &Direction, &Stats, &Negotiated, &mut Permissions), Without<Disconnect>>,
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
    for (entity, socket, direction, _, _, mut perms) in &mut peers {
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
        if !perms.noban && (bans.is_banned(ip, now_s) || bans.is_discouraged(ip, now_s)) {
            tracing::debug!(peer = socket.conn.0, addr = %socket.addr, "refused: banned or discouraged");
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::Banned });
            continue;
        }
        newcomers.push(entity);
    }
    let max = config.limits.max_inbound;
    let mut evicted: Vec<Entity> = Vec::new();
    for newcomer in newcomers {
        if inbound < max {
            inbound += 1;
            continue;
        }
        let candidates: Vec<EvictionCandidate> = peers
            .iter()
            .filter(|(e, s, d, _, _, p)| {
                **d == Direction::Inbound && !s.is_added() && !p.noban && *e != newcomer && !evicted.contains(e)
            })
            .map(|(entity, socket, _, stats, neg, _)| {
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
                }
            })
            .collect();
        match select_to_evict(candidates) {
            Some(victim) => {
                evicted.push(victim);
                commands.entity(victim).insert(Disconnect { reason: DisconnectReason::Evicted });
                // The victim's slot goes to the newcomer; the count is unchanged.
            }
            None => {
                commands.entity(newcomer).insert(Disconnect { reason: DisconnectReason::NoSlot });
            }
        }
    }
}
