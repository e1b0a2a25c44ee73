//! decode: checks checksums and decodes buffered frames, at most a budget of messages and bytes per
//! peer per tick, so one busy peer cannot starve the rest (the per-message CPU budget). As Core, a
//! frame with a bad checksum or a payload that does not decode is dropped and counted (the peer's
//! score records it at no points), bytes after a message's fields are ignored, and only a list
//! really over its limit (`TooManyEntries`) is a violation that disconnects. See CONFORMANCE.md.
//!
//! A peer whose getdata for blocks still waits to be served (queued or read) is not read further, as Core processes
//! nothing more from a peer until its getdata requests are done: a peer that asks and never reads
//! fills its receive buffer (and the reader's credit stops its socket) instead of having every
//! later request decoded and thrown away.

use crate::chain::ServeQueue;
use crate::components::{ConnId, Disconnect, Received, RecvBuffer, SendQueue, Socket, Violations};
use crate::resources::{Config, IoCommand, Metrics, Misbehavior, Outbox};
use crate::wire::{checksum, Command, DecodeError, HeaderError, Message};
use bevy_ecs::prelude::*;

/// The peer entity's parts decoding uses.
type DecodePeer<'a> = (
    Entity,
    &'a Socket,
    &'a mut RecvBuffer,
    &'a SendQueue,
    &'a mut Received,
    &'a mut Violations,
    Option<&'a ServeQueue>,
);

/// Frames this small pass even when the tick's node-wide byte budget is spent (pings, pongs, the
/// handshake, announcements): they cost next to nothing and keep latency down under a flood.
pub const SMALL_FRAME_BYTES: usize = 4 * 1024;

/// Decodes up to the per-tick budgets — per peer, and node-wide for large frames — for every peer;
/// a peer whose send queue is over its soft bound is not served until it reads (backpressure), and
/// one whose block requests wait is not read until they are served; a getdata ends its peer's turn,
/// so the requests of one tick are queued before anything after them is decoded.
/// Peers are taken in connection order, starting after the last one that had a large frame decoded
/// when the budget ran out, so large frames take turns among the peers that send them.
pub fn decode(
    mut peers: Query<DecodePeer, Without<Disconnect>>,
    config: Res<Config>,
    mut metrics: ResMut<Metrics>,
    mut outbox: ResMut<Outbox>,
    mut resume_after: Local<Option<ConnId>>,
) {
    let limits = &config.limits;
    let mut order: Vec<(ConnId, Entity)> = peers
        .iter()
        .filter(|(_, _, rb, sq, _, _, serve)| {
            !rb.frames.is_empty()
                && sq.bytes() <= limits.send_queue_bytes_soft
                && serve.is_none_or(|s| s.pending.is_empty() && s.reads.is_empty())
        })
        .map(|(e, s, ..)| (s.conn, e))
        .collect();
    if order.is_empty() {
        return;
    }
    order.sort_unstable_by_key(|(c, _)| *c);
    let first = resume_after.map_or(0, |after| order.partition_point(|(c, _)| *c <= after));
    let mut total = 0usize;
    let mut last_large = None;
    let mut budget_spent = false;
    for &(conn, entity) in order[first..].iter().chain(&order[..first]) {
        let Ok((_, socket, mut rb, _, mut received, mut violations, _)) = peers.get_mut(entity) else { continue };
        let mut msgs = 0;
        let mut bytes = 0;
        let mut taken = 0;
        while msgs < limits.decode_msgs_per_tick && bytes < limits.decode_bytes_per_tick {
            let Some(next) = rb.frames.front() else { break };
            let large = next.work_len() > SMALL_FRAME_BYTES;
            // A large frame goes while it fits the tick's budget, or alone as the tick's first.
            if large && total > 0 && total + next.work_len() > limits.decode_bytes_per_tick_total {
                budget_spent = true;
                break;
            }
            if large {
                last_large = Some(conn);
            }
            let Some(frame) = rb.frames.pop_front() else { break };
            rb.bytes -= frame.held_len();
            taken += frame.held_len();
            msgs += 1;
            bytes += frame.work_len();
            total += frame.work_len();
            let getdata = frame.header.command == Command::GetData;
            decode_one(socket, frame, &mut received, &mut violations, &mut metrics);
            if getdata {
                break;
            }
        }
        // The shell's reader gets its credit back for what left the buffer.
        if taken > 0 {
            outbox.0.push(IoCommand::Consumed { conn: socket.conn, bytes: taken });
        }
        resume_if_drained(socket.conn, &mut rb, limits.recv_buffer_bytes_max, &mut outbox);
    }
    if budget_spent {
        // Large frames take turns: next tick starts after the last peer that had one decoded.
        *resume_after = last_large;
    }
}

/// Checks one frame's checksum and decodes it for the systems that own its message.
fn decode_one(
    socket: &Socket,
    frame: crate::wire::RawFrame,
    received: &mut Received,
    violations: &mut Violations,
    metrics: &mut Metrics,
) {
    if frame.header.bad_name {
        // Core drops a frame whose command name is not printable ASCII and reads on.
        tracing::debug!(peer = socket.conn.0, "frame with a malformed command name skipped");
        metrics.header_error(HeaderError::BadCommand);
        return;
    }
    if frame.skipped > 0 {
        // A BIP324 decoy: read and authenticated by the transport, nothing to decode.
        metrics.v2_decoys += 1;
        return;
    }
    if frame.header.command == Command::Unknown {
        metrics.unknown_commands += 1;
        return;
    }
    let command = frame.header.command;
    if !frame.header.authenticated && checksum(&frame.payload) != frame.header.checksum {
        // Core drops the frame and reads on (V1Transport: "Wrong checksum").
        tracing::debug!(peer = socket.conn.0, command = command.name(), "bad checksum: frame dropped");
        metrics.decode_error(DecodeError::BadChecksum);
        violations.0.push(Misbehavior::BadChecksum);
        return;
    }
    match Message::decode_owned(command, frame.payload) {
        Ok((m, ignored)) => {
            if ignored > 0 {
                // Core reads a message's fields and ignores what follows them: so do we.
                tracing::debug!(
                    peer = socket.conn.0,
                    command = command.name(),
                    ignored,
                    "bytes after the message ignored"
                );
                metrics.decode_error(DecodeError::TrailingBytes);
            }
            received.0.extend(m);
        }
        Err(e) => {
            tracing::debug!(
                peer = socket.conn.0,
                command = command.name(),
                reason = e.label(),
                "malformed payload dropped"
            );
            metrics.decode_error(e);
            violations.0.extend(Misbehavior::from_decode(e));
        }
    }
}

fn resume_if_drained(conn: ConnId, rb: &mut RecvBuffer, max: usize, outbox: &mut Outbox) {
    if rb.paused && rb.bytes <= max / 2 {
        rb.paused = false;
        outbox.0.push(IoCommand::ResumeRead { conn });
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
