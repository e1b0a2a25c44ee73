//! handshake: version → (wtxidrelay, sendaddrv2) → verack, in both directions, and the feature
//! negotiation messages that follow it. Owns every message that changes `Negotiated`. Ordering
//! mistakes are Core's to judge: anything before `version`, a second `version` or `verack`, and
//! anything but the negotiation messages before `verack` are dropped and counted, never scored
//! (Core ignores them); `sendheaders` and `sendcmpct` count from `version` on, as in Core; a
//! feature negotiation after `verack` disconnects (Core's rule). See CONFORMANCE.md.

use crate::components::{
    Direction, Disconnect, Handshake, Negotiated, PeerState, Received, SendQueue, Socket, Stats, Violations,
};
use crate::resources::{
    ChainTip, Clock, Config, DisconnectReason, IoCommand, LocalNonces, Metrics, Misbehavior, Outbox, Rng,
};
use crate::wire::version::{
    CMPCTBLOCKS_VERSION, MIN_PEER_PROTO_VERSION, SENDHEADERS_VERSION, SHORT_IDS_BLOCKS_VERSION, WTXID_RELAY_VERSION,
};
use crate::wire::{Message, NetAddr, Version};
use bevy_ecs::prelude::*;
use std::net::{IpAddr, SocketAddr};

/// The peer entity's parts the handshake reads and writes.
type HandshakePeer<'a> = (
    Entity,
    &'a Socket,
    &'a Direction,
    &'a mut PeerState,
    &'a mut Handshake,
    &'a mut Negotiated,
    &'a mut Received,
    &'a mut SendQueue,
    &'a mut Stats,
    &'a mut Violations,
);

/// Node-wide inputs of the handshake.
#[derive(bevy_ecs::system::SystemParam)]
pub struct HandshakeCtx<'w> {
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    tip: Res<'w, ChainTip>,
    rng: ResMut<'w, Rng>,
    nonces: ResMut<'w, LocalNonces>,
    metrics: ResMut<'w, Metrics>,
    outbox: ResMut<'w, Outbox>,
}

/// Drives every peer's handshake; times out the ones that do not finish.
pub fn handshake(mut peers: Query<HandshakePeer, Without<Disconnect>>, mut ctx: HandshakeCtx, mut commands: Commands) {
    for (entity, socket, direction, mut state, mut hs, mut neg, mut received, mut sq, mut stats, mut violations) in
        &mut peers
    {
        // Connecting peers have nothing yet; Ready peers with nothing received need nothing here
        // (checked through shared references, so idle peers are not marked changed).
        if *state == PeerState::Connecting || (*state == PeerState::Ready && received.0.is_empty()) {
            continue;
        }
        if direction.is_outbound() && !hs.version_sent {
            send_version(&mut ctx, socket, &neg, &mut hs, &mut sq);
        }
        let mut disconnect = None;
        received.0.retain_mut(|msg| {
            if disconnect.is_some() {
                return false;
            }
            match msg {
                Message::Version(v) => {
                    if hs.version_received {
                        // Core ignores a second version (counted here, never scored).
                        violations.0.push(Misbehavior::DuplicateVersion);
                        return false;
                    }
                    if *direction == Direction::Inbound && ctx.nonces.0.contains(&v.nonce) {
                        disconnect = Some(DisconnectReason::SelfConnection);
                        return false;
                    }
                    if v.version < MIN_PEER_PROTO_VERSION {
                        disconnect = Some(DisconnectReason::ObsoleteVersion);
                        return false;
                    }
                    accept_version(&mut neg, v, ctx.clock.unix_s());
                    hs.version_received = true;
                    if !hs.version_sent {
                        send_version(&mut ctx, socket, &neg, &mut hs, &mut sq);
                    }
                    let net = ctx.config.network;
                    if neg.version >= WTXID_RELAY_VERSION {
                        sq.push(net, &Message::WtxidRelay);
                    }
                    sq.push(net, &Message::SendAddrV2);
                    sq.push(net, &Message::Verack);
                    false
                }
                Message::Verack => {
                    // Core ignores a verack before version and a second one (counted, never scored).
                    if !hs.version_received {
                        violations.0.push(Misbehavior::MessageBeforeVersion);
                    } else if hs.verack_received {
                        violations.0.push(Misbehavior::DuplicateVerack);
                    } else {
                        hs.verack_received = true;
                        *state = PeerState::Ready;
                        ctx.nonces.0.remove(&hs.our_nonce);
                        let took = ctx.clock.now_ms.saturating_sub(stats.handshake_started_ms);
                        stats.handshake_done_ms = Some(ctx.clock.now_ms);
                        ctx.metrics.handshakes += 1;
                        ctx.metrics.handshake_ms.record(took);
                        tracing::info!(peer = socket.conn.0, addr = %socket.addr, direction = direction.label(),
                            version = neg.version, handshake_ms = took, "peer ready");
                        let net = ctx.config.network;
                        // As Core: we serve version 2 compact blocks, and ask for none unasked
                        // yet (compact_hb asks the peers that deliver new blocks first).
                        if neg.version >= SHORT_IDS_BLOCKS_VERSION && ctx.config.compact_blocks {
                            let m = Message::SendCmpct { announce: 0, version: CMPCTBLOCKS_VERSION };
                            sq.push(net, &m);
                        }
                        if neg.version >= SENDHEADERS_VERSION {
                            sq.push(net, &Message::SendHeaders);
                        }
                        let bytes = ctx.config.limits.recv_buffer_bytes_max;
                        ctx.outbox.0.push(IoCommand::RecvLimit { conn: socket.conn, bytes });
                    }
                    false
                }
                Message::WtxidRelay => {
                    if !hs.version_received {
                        violations.0.push(Misbehavior::MessageBeforeVersion);
                    } else if hs.verack_received {
                        disconnect = Some(DisconnectReason::NegotiationAfterVerack);
                    } else if neg.version >= WTXID_RELAY_VERSION {
                        neg.wtxidrelay = true;
                    }
                    false
                }
                Message::SendAddrV2 => {
                    if !hs.version_received {
                        violations.0.push(Misbehavior::MessageBeforeVersion);
                    } else if hs.verack_received {
                        disconnect = Some(DisconnectReason::NegotiationAfterVerack);
                    } else {
                        neg.sendaddrv2 = true;
                    }
                    false
                }
                // Protocol 70017's negotiation: we speak 70016, so Core's rule for a lower common
                // version applies — disconnect, whether before `verack` or after.
                Message::Feature if hs.version_received => {
                    disconnect = Some(DisconnectReason::UnsupportedFeature);
                    false
                }
                // Core ignores anything before `version` (counted here, never scored).
                _ if !hs.version_received => {
                    violations.0.push(Misbehavior::MessageBeforeVersion);
                    false
                }
                // Core takes these two once `version` is in, before `verack` as well as after.
                Message::SendHeaders => {
                    neg.sendheaders = true;
                    false
                }
                Message::SendCmpct { announce, version } => {
                    if *announce > 1 {
                        // BIP152: the flag MUST be 0 or 1; Core discourages at once.
                        violations.0.push(Misbehavior::InvalidSendCmpct);
                    } else if *version == CMPCTBLOCKS_VERSION {
                        neg.cmpct_version = Some(*version);
                        neg.cmpct_hb_from = *announce == 1;
                    }
                    false
                }
                // Core ignores the rest until `verack` (counted here, never scored).
                _ if !hs.verack_received => {
                    violations.0.push(Misbehavior::MessageBeforeVerack);
                    false
                }
                Message::FeeFilter(rate) => {
                    if (0..=21_000_000 * 100_000_000).contains(rate) {
                        neg.feefilter = Some(*rate);
                    }
                    false
                }
                _ => true,
            }
        });
        if disconnect.is_none()
            && *state == PeerState::Handshaking
            && ctx.clock.now_ms.saturating_sub(stats.handshake_started_ms) > ctx.config.limits.handshake_timeout_ms
        {
            disconnect = Some(DisconnectReason::HandshakeTimeout);
        }
        if let Some(reason) = disconnect {
            received.0.clear();
            commands.entity(entity).insert(Disconnect { reason });
        }
    }
}

fn accept_version(neg: &mut Negotiated, v: &Version, now_s: i64) {
    neg.version = v.version;
    neg.services = v.services;
    neg.user_agent = v.user_agent.clone();
    neg.start_height = v.start_height;
    neg.relay = v.relay;
    neg.time_offset_s = v.timestamp.saturating_sub(now_s);
}

fn send_version(ctx: &mut HandshakeCtx, socket: &Socket, neg: &Negotiated, hs: &mut Handshake, sq: &mut SendQueue) {
    let nonce = loop {
        let n = ctx.rng.next_u64();
        if n != 0 {
            break n;
        }
    };
    hs.our_nonce = nonce;
    hs.version_sent = true;
    ctx.nonces.0.insert(nonce);
    // Like Core: tell the peer its address only when it is publicly routable; our own is left empty.
    let receiver = if is_routable(socket.addr) {
        NetAddr::from_socket(socket.addr, neg.services)
    } else {
        NetAddr { services: neg.services, ..NetAddr::default() }
    };
    let version = Version {
        version: ctx.config.protocol_version,
        services: ctx.config.services,
        timestamp: ctx.clock.unix_s(),
        receiver,
        sender: NetAddr { services: ctx.config.services, ..NetAddr::default() },
        nonce,
        user_agent: ctx.config.user_agent.as_bytes().into(),
        start_height: ctx.tip.height,
        relay: ctx.config.relay,
    };
    sq.push(ctx.config.network, &Message::Version(version));
}

/// Whether an address is reachable from the public internet (not loopback, private, link-local...).
pub fn is_routable(addr: SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_routable(SocketAddr::new(IpAddr::V4(v4), addr.port()));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0xdb8)
        }
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
