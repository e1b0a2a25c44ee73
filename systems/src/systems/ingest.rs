//! ingest: turns the shell's events into entities and buffered frames. Exclusive, because a peer
//! spawned by one event must be found by the next event of the same batch.

use crate::components::{
    Direction, Disconnect, PeerBundle, PeerState, PingState, RecvBuffer, SendQueue, Socket, Stats, Transport,
};
use crate::resources::{
    Clock, Config, ConnIndex, DisconnectReason, Inbox, IoCommand, Metrics, NetEvent, Outbox, PeerManagerState,
};
use bevy_ecs::prelude::*;

/// Drains [`Inbox`]: spawns peers, buffers frames (pausing the reader over the receive bound), credits
/// the writer window, and marks closed sockets for teardown.
pub fn ingest(world: &mut World) {
    let events = std::mem::take(&mut world.resource_mut::<Inbox>().0);
    if events.is_empty() {
        return;
    }
    let now = world.resource::<Clock>().now_ms;
    let recv_max = world.resource::<Config>().limits.recv_buffer_bytes_max;
    for event in events {
        match event {
            NetEvent::Dialing { conn, addr, direction } => {
                let socket = Socket { conn, addr, local: None, connected_ms: now };
                let e = world.spawn(PeerBundle::new(socket, PeerState::Connecting, direction)).id();
                world.resource_mut::<ConnIndex>().0.insert(conn, e);
            }
            NetEvent::Connected { conn, addr, local, direction } => {
                world.resource_mut::<Metrics>().connections[direction as usize] += 1;
                let existing = world.resource::<ConnIndex>().0.get(&conn).copied();
                if let Some(e) = existing {
                    if let Ok(mut peer) = world.get_entity_mut(e) {
                        if let Some(mut s) = peer.get_mut::<Socket>() {
                            s.local = local;
                            s.connected_ms = now;
                        }
                        if let Some(mut st) = peer.get_mut::<Stats>() {
                            st.handshake_started_ms = now;
                        }
                        if let Some(mut ps) = peer.get_mut::<PingState>() {
                            ps.last_recv_ms = now;
                        }
                        if let Some(mut state) = peer.get_mut::<PeerState>() {
                            *state = PeerState::Handshaking;
                        }
                        tracing::info!(peer = conn.0, %addr, direction = direction.label(), "connected");
                    }
                } else {
                    let socket = Socket { conn, addr, local, connected_ms: now };
                    let e = world.spawn(PeerBundle::new(socket, PeerState::Handshaking, direction)).id();
                    world.resource_mut::<ConnIndex>().0.insert(conn, e);
                    tracing::info!(peer = conn.0, %addr, direction = direction.label(), "connected");
                }
            }
            NetEvent::Frame { conn, frame } => {
                let Some(e) = world.resource::<ConnIndex>().0.get(&conn).copied() else { continue };
                let len = frame.wire_len();
                let cmd = frame.header.command as usize;
                {
                    let mut m = world.resource_mut::<Metrics>();
                    m.msgs_in[cmd] += 1;
                    m.bytes_in[cmd] += len as u64;
                }
                let Ok(mut peer) = world.get_entity_mut(e) else { continue };
                if let Some(mut st) = peer.get_mut::<Stats>() {
                    st.bytes_in += len as u64;
                    st.msgs_in[cmd] = st.msgs_in[cmd].saturating_add(1);
                    st.bytes_in_by_cmd[cmd] += len as u64;
                }
                if let Some(mut ps) = peer.get_mut::<PingState>() {
                    ps.last_recv_ms = now;
                }
                let mut pause = false;
                if let Some(mut rb) = peer.get_mut::<RecvBuffer>() {
                    rb.bytes += frame.held_len();
                    rb.frames.push_back(frame);
                    if rb.bytes > recv_max && !rb.paused {
                        rb.paused = true;
                        pause = true;
                    }
                }
                if pause {
                    world.resource_mut::<Outbox>().0.push(IoCommand::PauseRead { conn });
                    world.resource_mut::<Metrics>().recv_pauses += 1;
                }
            }
            NetEvent::BadHeader { conn, error } => {
                world.resource_mut::<Metrics>().header_error(error);
                if let Some(reason) = DisconnectReason::from_header(error) {
                    mark(world, conn, reason);
                }
            }
            NetEvent::Transport { conn, transport } => {
                let Some(e) = world.resource::<ConnIndex>().0.get(&conn).copied() else { continue };
                if let Some(mut t) = world.get_mut::<Transport>(e) {
                    *t = transport;
                }
                if let (Transport::V2 { .. }, Some(mut q)) = (transport, world.get_mut::<SendQueue>(e)) {
                    q.authenticated = true;
                }
                let kind = usize::from(transport != Transport::V1);
                world.resource_mut::<Metrics>().transports[kind] += 1;
                tracing::debug!(peer = conn.0, transport = transport.label(), "transport settled");
            }
            NetEvent::V2Refused { conn } => {
                let Some(e) = world.resource::<ConnIndex>().0.get(&conn).copied() else { continue };
                let retry = world.get::<Socket>(e).map(|s| s.addr).zip(world.get::<Direction>(e).copied());
                if let Some(retry) = retry {
                    world.resource_mut::<PeerManagerState>().v1_retries.push(retry);
                }
                world.resource_mut::<Metrics>().v2_refused += 1;
                mark(world, conn, DisconnectReason::V2Refused);
            }
            NetEvent::TransportFailed { conn, error } => {
                world.resource_mut::<Metrics>().v2_failures[error as usize] += 1;
                tracing::debug!(peer = conn.0, error = error.label(), "v2 transport failed");
                mark(world, conn, DisconnectReason::from_v2(error));
            }
            NetEvent::Written { conn, bytes } => {
                let Some(e) = world.resource::<ConnIndex>().0.get(&conn).copied() else { continue };
                if let Some(mut q) = world.get_mut::<SendQueue>(e) {
                    q.in_writer_bytes = q.in_writer_bytes.saturating_sub(bytes);
                }
            }
            NetEvent::Refused { addr } => {
                tracing::debug!(%addr, "inbound connection refused at accept: socket cap reached");
                world.resource_mut::<Metrics>().inbound_refused_at_accept += 1;
            }
            NetEvent::Closed { conn, connect_failed } => {
                let reason =
                    if connect_failed { DisconnectReason::ConnectFailed } else { DisconnectReason::PeerClosed };
                mark(world, conn, reason);
            }
        }
    }
}

/// Marks a peer for teardown unless it already is.
fn mark(world: &mut World, conn: crate::components::ConnId, reason: DisconnectReason) {
    let Some(e) = world.resource::<ConnIndex>().0.get(&conn).copied() else { return };
    if let Ok(mut peer) = world.get_entity_mut(e) {
        if !peer.contains::<Disconnect>() {
            peer.insert(Disconnect { reason });
        }
    }
}
