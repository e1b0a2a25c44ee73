//! addr_relay: address gossip. Takes `addr`/`addrv2` into the address book under a per-peer token
//! bucket (0.1 address/s, burst 1,000, as Core), relays fresh self-announcements to two peers,
//! answers one `getaddr` per inbound connection from a node-wide cache (≤ 1,000, ≤ 23 % of the book,
//! refreshed about daily) so the answer never tells which address came from whom, and asks our
//! outbound full-relay peers for addresses once.

use crate::components::{AddrRelay, Direction, Negotiated, PeerState, Permissions, Received, SendQueue, Socket};
use crate::resources::{AddrBook, AddrInfo, AddrResponseCache, Clock, Config, Metrics, NetAddress, PeerAddr, Rng};
use crate::systems::is_routable;
use crate::wire::{AddrEntry, AddrV2Addr, AddrV2Entry, AddrV2List, Message, NetAddr, MAX_ADDR_ENTRIES};
use bevy_ecs::prelude::*;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Tokens added per second.
pub const ADDR_TOKENS_PER_S: f64 = 0.1;
/// Bucket capacity.
pub const ADDR_TOKENS_MAX: f64 = 1_000.0;
/// Share of the book a getaddr answer may reveal.
pub const GETADDR_MAX_PCT: usize = 23;
/// How long the getaddr answer cache lives.
pub const GETADDR_CACHE_MS: u64 = 24 * 3600 * 1000;
/// Penalty on the time of addresses heard from others (Core: 2 h).
const TIME_PENALTY_S: i64 = 2 * 3600;
/// Average time between address trickles to one peer.
const TRICKLE_MS: u64 = 30_000;

fn from_v2(a: &AddrV2Addr) -> NetAddress {
    match *a {
        AddrV2Addr::Ipv4(b) => NetAddress::Ipv4(b),
        AddrV2Addr::Ipv6(b) => NetAddress::from_ip(IpAddr::V6(Ipv6Addr::from(b))),
        AddrV2Addr::TorV3(b) => NetAddress::TorV3(b),
        AddrV2Addr::I2p(b) => NetAddress::I2p(b),
        AddrV2Addr::Cjdns(b) => NetAddress::Cjdns(b),
    }
}

fn to_v2(a: &NetAddress) -> AddrV2Addr {
    match *a {
        NetAddress::Ipv4(b) => AddrV2Addr::Ipv4(b),
        NetAddress::Ipv6(b) => AddrV2Addr::Ipv6(b),
        NetAddress::TorV3(b) => AddrV2Addr::TorV3(b),
        NetAddress::I2p(b) => AddrV2Addr::I2p(b),
        NetAddress::Cjdns(b) => AddrV2Addr::Cjdns(b),
    }
}

fn worth_keeping(a: &PeerAddr) -> bool {
    match a.socket() {
        Some(s) => is_routable(s) && a.port != 0,
        None => true,
    }
}

/// Encodes `infos` as addr or addrv2 for a peer, as it negotiated.
fn push_addresses(sq: &mut SendQueue, config: &Config, addrv2: bool, infos: &[AddrInfo]) {
    for chunk in infos.chunks(MAX_ADDR_ENTRIES) {
        let msg = if addrv2 {
            let entries = chunk
                .iter()
                .map(|i| AddrV2Entry {
                    time: i.time_s as u32,
                    services: i.services,
                    addr: to_v2(&i.addr.addr),
                    port: i.addr.port,
                })
                .collect();
            Message::AddrV2(AddrV2List { entries, skipped: 0 })
        } else {
            let entries: Vec<AddrEntry> = chunk
                .iter()
                .filter_map(|i| {
                    let s = i.addr.socket()?;
                    Some(AddrEntry { time: i.time_s as u32, addr: NetAddr::from_socket(s, i.services) })
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            Message::Addr(entries)
        };
        sq.push(config.network, &msg);
    }
}

/// The peer entity's parts address gossip uses.
type AddrPeer<'a> = (
    Entity,
    &'a Socket,
    &'a Direction,
    Ref<'a, PeerState>,
    &'a Negotiated,
    &'a Permissions,
    &'a mut AddrRelay,
    &'a mut Received,
    &'a mut SendQueue,
);

/// Node-wide inputs of address gossip.
#[derive(bevy_ecs::system::SystemParam)]
pub struct AddrCtx<'w> {
    book: ResMut<'w, AddrBook>,
    cache: ResMut<'w, AddrResponseCache>,
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    rng: ResMut<'w, Rng>,
    metrics: ResMut<'w, Metrics>,
}

/// Processes address messages and trickles relayed addresses out.
pub fn addr_relay(mut peers: Query<AddrPeer>, mut ctx: AddrCtx) {
    let now = ctx.clock.now_ms;
    let now_s = ctx.clock.unix_s();
    let mut relay: Vec<(Entity, AddrInfo)> = Vec::new();
    for (entity, socket, direction, state, neg, perms, mut ar, mut received, mut sq) in &mut peers {
        if *state != PeerState::Ready {
            continue;
        }
        let gossips = *direction != Direction::BlockRelayOnly;
        if state.is_changed() && *direction == Direction::OutboundFullRelay && !ar.getaddr_sent {
            ar.getaddr_sent = true;
            ar.tokens += ADDR_TOKENS_MAX; // a big answer is expected
            sq.push(ctx.config.network, &Message::GetAddr);
        }
        // Nothing to take in: the bucket is refilled lazily, when addresses come.
        if !received.0.iter().any(|m| matches!(m, Message::Addr(_) | Message::AddrV2(_) | Message::GetAddr)) {
            continue;
        }
        if ar.refilled_ms == 0 {
            ar.refilled_ms = now;
        }
        let elapsed_s = now.saturating_sub(ar.refilled_ms) as f64 / 1000.0;
        ar.refilled_ms = now;
        ar.tokens = (ar.tokens + elapsed_s * ADDR_TOKENS_PER_S).min(ADDR_TOKENS_MAX.max(ar.tokens));
        let source_group = NetAddress::from_ip(socket.addr.ip()).group();
        let mut incoming: Vec<(PeerAddr, u64, i64)> = Vec::new();
        received.0.retain(|msg| match msg {
            Message::Addr(entries) => {
                for e in entries {
                    let ip = IpAddr::V6(Ipv6Addr::from(e.addr.ip));
                    let addr = PeerAddr::from_socket(SocketAddr::new(ip, e.addr.port));
                    incoming.push((addr, e.addr.services, e.time as i64));
                }
                false
            }
            Message::AddrV2(list) => {
                for e in &list.entries {
                    incoming.push((PeerAddr { addr: from_v2(&e.addr), port: e.port }, e.services, e.time as i64));
                }
                false
            }
            Message::GetAddr => {
                if *direction == Direction::Inbound && !ar.getaddr_answered {
                    ar.getaddr_answered = true;
                    if now >= ctx.cache.expires_ms {
                        ctx.cache.entries = ctx.book.sample(&mut ctx.rng, MAX_ADDR_ENTRIES, GETADDR_MAX_PCT, now_s);
                        ctx.cache.expires_ms = now + GETADDR_CACHE_MS - ctx.rng.below(3 * 3600 * 1000);
                    }
                    ctx.metrics.getaddr_answered += 1;
                    push_addresses(&mut sq, &ctx.config, neg.sendaddrv2, &ctx.cache.entries);
                }
                false
            }
            _ => true,
        });
        if !gossips || incoming.is_empty() {
            continue;
        }
        let relay_ok = incoming.len() <= 10 && !ar.getaddr_sent;
        for (addr, services, time) in incoming {
            ctx.metrics.addr_received += 1;
            if !perms.noban {
                if ar.tokens < 1.0 {
                    ar.rate_limited += 1;
                    ctx.metrics.addr_rate_limited += 1;
                    continue;
                }
                ar.tokens -= 1.0;
            }
            ar.processed += 1;
            if !worth_keeping(&addr) {
                continue;
            }
            let time = if time <= 100_000_000 || time > now_s + 600 { now_s - 5 * 24 * 3600 } else { time };
            if ctx.book.add(addr, services, time - TIME_PENALTY_S, source_group, now_s) {
                ctx.metrics.addr_added += 1;
            }
            if relay_ok && time > now_s - 600 {
                let info = ctx.book.get(&addr).cloned();
                if let Some(mut info) = info {
                    info.time_s = time;
                    relay.push((entity, info));
                }
            }
        }
    }
    if !relay.is_empty() {
        queue_relays(&mut peers, relay, &mut ctx);
    }
    for (_, _, direction, state, neg, _, mut ar, _, mut sq) in &mut peers {
        if ar.queued.is_empty() || *state != PeerState::Ready || *direction == Direction::BlockRelayOnly {
            continue;
        }
        if now >= ar.next_send_ms {
            let out = std::mem::take(&mut ar.queued);
            push_addresses(&mut sq, &ctx.config, neg.sendaddrv2, &out);
            ar.next_send_ms = now + TRICKLE_MS / 2 + ctx.rng.below(TRICKLE_MS);
        }
    }
}

/// Each fresh address goes to two gossiping peers other than its source, chosen by a keyed hash of
/// the address so repeats of it go to the same two (Core's rule against relay amplification).
fn queue_relays(peers: &mut Query<AddrPeer>, relay: Vec<(Entity, AddrInfo)>, ctx: &mut AddrCtx) {
    let mut targets: Vec<(Entity, u64)> = peers
        .iter()
        .filter(|p| {
            *p.3 == PeerState::Ready
                && matches!(p.2, Direction::Inbound | Direction::OutboundFullRelay | Direction::Manual)
        })
        .map(|p| (p.0, p.1.conn.0))
        .collect();
    targets.sort_by_key(|t| t.1);
    for (source, info) in relay {
        let group = info.addr.addr.group();
        let mut ranked: Vec<(u64, Entity)> = targets
            .iter()
            .filter(|t| t.0 != source)
            .map(|t| (ctx.book.keyed_group(&[group[0], group[1], group[2], (t.1 >> 8) as u8, t.1 as u8]), t.0))
            .collect();
        ranked.sort_unstable();
        for (_, e) in ranked.into_iter().take(2) {
            if let Ok(mut p) = peers.get_mut(e) {
                if p.6.queued.len() < MAX_ADDR_ENTRIES {
                    p.6.queued.push(info.clone());
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "addr_relay_tests.rs"]
mod tests;
