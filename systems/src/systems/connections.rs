//! connections: the Peer Manager's outbound side. Keeps the configured mix of outbound peers (full
//! relay, block-relay-only, a periodic feeler), never two automatic outbounds in one network group,
//! redials manual peers, promotes addresses that answered to "tried", sweeps expired bans and
//! terrible addresses, and enforces new bans on connected peers. An address that failed waits
//! before it is dialed again, longer after each failure ([`AddrInfo::retry_at_s`]); when nothing is
//! left to dial and no outbound peer is up, the node says so once.

use crate::components::{Direction, Disconnect, Negotiated, PeerState, Permissions, Socket};
#[cfg(doc)]
use crate::resources::AddrInfo;
use crate::resources::UNREACHED_MAX;
use crate::resources::{
    AddrBook, BanList, Clock, Config, DisconnectReason, IoCommand, NetAddress, Outbox, PeerAddr, PeerManagerState,
    PeerPolicy, Rng,
};
use crate::wire::services::{NODE_NETWORK, NODE_NETWORK_LIMITED, NODE_P2P_V2, NODE_WITNESS};
use ahash::AHashSet;
use bevy_ecs::prelude::*;
use std::net::SocketAddr;

/// How long an issued dial counts against its slot before the shell reports it.
const DIAL_PENDING_MS: u64 = 10_000;
/// Addresses drawn from the book per dial before giving up for this round.
const SELECT_TRIES: usize = 100;

/// Services an automatic outbound peer must offer.
pub const REQUIRED_SERVICES: u64 = NODE_NETWORK | NODE_WITNESS;

/// Whether an outbound peer offering `services` is worth keeping: the full chain and witnesses, or,
/// once we are near the tip, the last 288 blocks and witnesses (Core's rule).
pub fn has_required_services(services: u64, in_ibd: bool) -> bool {
    let full = services & REQUIRED_SERVICES == REQUIRED_SERVICES;
    let limited = services & (NODE_NETWORK_LIMITED | NODE_WITNESS) == (NODE_NETWORK_LIMITED | NODE_WITNESS);
    full || (!in_ibd && limited)
}

/// Node-wide inputs of the connection manager.
#[derive(bevy_ecs::system::SystemParam)]
pub struct ConnCtx<'w> {
    book: ResMut<'w, AddrBook>,
    bans: ResMut<'w, BanList>,
    policy: Res<'w, PeerPolicy>,
    state: ResMut<'w, PeerManagerState>,
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    rng: ResMut<'w, Rng>,
    outbox: ResMut<'w, Outbox>,
    ibd: Res<'w, crate::chain::Ibd>,
}

/// The outbound half of the Peer Manager.
pub fn connections(
    peers: Query<(Entity, &Socket, &Direction, &Permissions, Has<Disconnect>)>,
    changed: Query<(Entity, &PeerState, &Socket, &Direction, &Negotiated), (Changed<PeerState>, Without<Disconnect>)>,
    mut ctx: ConnCtx,
    mut commands: Commands,
) {
    let now = ctx.clock.now_ms;
    let now_s = ctx.clock.unix_s();
    if now >= ctx.state.next_sweep_ms {
        ctx.state.next_sweep_ms = now + 60_000;
        ctx.bans.sweep(now_s);
        let aged = ctx.book.age_out(now_s);
        if aged > 0 {
            tracing::debug!(aged, "terrible addresses aged out of the book");
        }
    }
    for (entity, state, socket, direction, neg) in &changed {
        if direction.is_outbound() && !ctx.state.pending.is_empty() {
            // The dial became a peer entity: it now counts as a connection, not as a pending dial.
            ctx.state.pending.retain(|(addr, _, _)| *addr != socket.addr);
        }
        if *state != PeerState::Ready || !direction.is_outbound() {
            continue;
        }
        ctx.book.good(&PeerAddr::from_socket(socket.addr), now_s);
        if *direction != Direction::Feeler {
            ctx.state.unreached.clear();
            ctx.state.unreachable_said = false;
        }
        let automatic = *direction != Direction::Manual;
        if automatic && !has_required_services(neg.services, ctx.ibd.active) {
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::MissingServices });
        } else if *direction == Direction::Feeler {
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::FeelerDone });
        }
    }
    // New bans reach the peers they cover: only those subnets are checked (read first, so an
    // idle tick does not mark the list changed).
    if ctx.bans.is_changed() && ctx.bans.has_fresh() {
        let fresh = ctx.bans.take_fresh();
        for (entity, socket, _, perms, disconnecting) in &peers {
            let ip = socket.addr.ip();
            let covered = fresh.iter().any(|s| s.contains(ip));
            if covered && !disconnecting && !perms.noban && ctx.bans.is_banned(ip, now_s) {
                commands.entity(entity).insert(Disconnect { reason: DisconnectReason::Banned });
            }
        }
    }
    for (addr, direction) in std::mem::take(&mut ctx.state.v1_retries) {
        // Once, with v1, at once: the peer hung up on our v2 key without a word (Core's
        // reconnection). Pending, it keeps its slot and is not dialed again as a manual peer.
        tracing::debug!(%addr, direction = direction.label(), "v2 refused: dialing again with v1");
        ctx.state.pending.push((addr, direction, now));
        ctx.outbox.0.push(IoCommand::Connect { addr, direction, v2: false });
    }
    // The full pass over every peer (addresses, netgroups, slot counts) only when a dial is due.
    let manual_due = ctx.policy.manual.iter().any(|a| ctx.state.manual_next_ms.get(a).is_none_or(|&t| now >= t));
    let auto_due = ctx.policy.auto_outbound && now >= ctx.state.next_dial_ms;
    if !manual_due && !auto_due {
        return;
    }
    let mut connected: AHashSet<SocketAddr> = AHashSet::new();
    let mut groups: AHashSet<[u8; 5]> = AHashSet::new();
    let (mut full, mut block, mut feelers) = (0usize, 0usize, 0usize);
    for (_, socket, direction, _, disconnecting) in &peers {
        if disconnecting {
            continue;
        }
        connected.insert(socket.addr);
        match direction {
            Direction::OutboundFullRelay => full += 1,
            Direction::BlockRelayOnly => block += 1,
            Direction::Feeler => feelers += 1,
            _ => continue,
        }
        groups.insert(NetAddress::from_ip(socket.addr.ip()).group());
    }
    // Dials issued but not yet reported by the shell hold their slot for a while.
    ctx.state.pending.retain(|(addr, _, at)| now < at + DIAL_PENDING_MS && !connected.contains(addr));
    for (addr, direction, _) in &ctx.state.pending {
        connected.insert(*addr);
        groups.insert(NetAddress::from_ip(addr.ip()).group());
        match direction {
            Direction::OutboundFullRelay => full += 1,
            Direction::BlockRelayOnly => block += 1,
            Direction::Feeler => feelers += 1,
            _ => {}
        }
    }
    redial_manual(&mut ctx, &connected, now);
    if !ctx.policy.auto_outbound || now < ctx.state.next_dial_ms {
        return;
    }
    // One look per interval whether or not a dial comes of it (an empty book, full slots).
    ctx.state.next_dial_ms = now + ctx.policy.dial_interval_ms;
    let max = ctx.config.limits.max_outbound;
    let want_full = ctx.policy.outbound_full_relay.min(max);
    let want_block = ctx.policy.outbound_block_relay.min(max - want_full);
    let direction = if full < want_full {
        Direction::OutboundFullRelay
    } else if block < want_block {
        Direction::BlockRelayOnly
    } else if feelers == 0 && max > want_full + want_block && now >= ctx.state.next_feeler_ms {
        let interval = ctx.policy.feeler_interval_ms.max(1);
        ctx.state.next_feeler_ms = now + interval / 2 + ctx.rng.below(interval);
        Direction::Feeler
    } else {
        return;
    };
    let picked = pick_address(&mut ctx, &connected, &groups, direction == Direction::Feeler);
    if picked.is_none() && full + block == 0 && !ctx.state.unreached.is_empty() && !ctx.state.unreachable_said {
        ctx.state.unreachable_said = true;
        let (tried, known) = (ctx.state.unreached.len(), ctx.book.len());
        tracing::warn!(
            tried,
            known,
            "no outbound peers: {tried} addresses tried, all failed — check the network connection (each is retried \
             later, waiting longer after each failure)"
        );
    }
    if let Some((addr, services)) = picked {
        if ctx.state.unreached.len() < UNREACHED_MAX {
            ctx.state.unreached.insert(addr);
        }
        ctx.book.attempt(&PeerAddr::from_socket(addr), now_s);
        ctx.state.pending.push((addr, direction, now));
        ctx.state.next_dial_ms = now + ctx.policy.dial_interval_ms;
        // v2 only to peers that say they speak it, as Core.
        let v2 = ctx.config.v2() && services & NODE_P2P_V2 != 0;
        tracing::debug!(%addr, direction = direction.label(), v2, "dialing");
        ctx.outbox.0.push(IoCommand::Connect { addr, direction, v2 });
    }
}

fn redial_manual(ctx: &mut ConnCtx, connected: &AHashSet<SocketAddr>, now: u64) {
    for i in 0..ctx.policy.manual.len() {
        let addr = ctx.policy.manual[i];
        let due = ctx.state.manual_next_ms.get(&addr).copied().unwrap_or(0);
        if connected.contains(&addr) {
            // Connected (or being dialed): look again after the retry delay, not every tick.
            if now >= due {
                ctx.state.manual_next_ms.insert(addr, now + ctx.policy.manual_retry_ms);
            }
            continue;
        }
        if now >= due {
            ctx.state.manual_next_ms.insert(addr, now + ctx.policy.manual_retry_ms);
            ctx.state.pending.push((addr, Direction::Manual, now));
            // Whatever the peer advertises (we may not know): the shell falls back to v1 once.
            // Unless the operator added it with `v2transport=false`.
            let v2 = ctx.config.v2() && !ctx.policy.manual_v1.contains(&addr);
            ctx.outbox.0.push(IoCommand::Connect { addr, direction: Direction::Manual, v2 });
        }
    }
}

fn pick_address(
    ctx: &mut ConnCtx,
    connected: &AHashSet<SocketAddr>,
    groups: &AHashSet<[u8; 5]>,
    feeler: bool,
) -> Option<(SocketAddr, u64)> {
    let now_s = ctx.clock.unix_s();
    for _ in 0..SELECT_TRIES {
        let info = ctx.book.select(&mut ctx.rng, feeler, now_s)?;
        let Some(addr) = info.addr.socket() else { continue };
        let known_lacking = info.services != 0 && !has_required_services(info.services, ctx.ibd.active);
        if connected.contains(&addr)
            || now_s < info.retry_at_s()
            || groups.contains(&info.addr.addr.group())
            || known_lacking
            || ctx.bans.is_banned(addr.ip(), now_s)
            || ctx.bans.is_discouraged(addr.ip(), now_s)
        {
            continue;
        }
        return Some((addr, info.services));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_peers_are_enough_only_near_the_tip() {
        let limited = NODE_NETWORK_LIMITED | NODE_WITNESS;
        assert!(has_required_services(NODE_NETWORK | NODE_WITNESS, true));
        assert!(!has_required_services(limited, true), "in IBD we need the whole chain");
        assert!(has_required_services(limited, false));
        assert!(!has_required_services(NODE_NETWORK, false), "witnesses are always needed");
    }
}
