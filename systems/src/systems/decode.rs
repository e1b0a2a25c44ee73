//! decode: checks checksums and decodes buffered frames, at most a budget of messages and bytes per
//! peer per tick, so one busy peer cannot starve the rest (the per-message CPU budget).

use crate::components::{ConnId, Disconnect, Received, RecvBuffer, SendQueue, Socket, Violations};
use crate::resources::{Config, IoCommand, Metrics, Outbox};
use crate::wire::{checksum, Command, DecodeError, Message};
use bevy_ecs::prelude::*;

/// Decodes up to the per-tick budget for every peer; a peer whose send queue is over its soft bound
/// is not served until it reads (backpressure).
pub fn decode(
    mut peers: Query<(&Socket, &mut RecvBuffer, &SendQueue, &mut Received, &mut Violations), Without<Disconnect>>,
    config: Res<Config>,
    mut metrics: ResMut<Metrics>,
    mut outbox: ResMut<Outbox>,
) {
    let limits = &config.limits;
    for (socket, mut rb, sq, mut received, mut violations) in &mut peers {
        if rb.frames.is_empty() || sq.bytes() > limits.send_queue_bytes_soft {
            continue;
        }
        let mut msgs = 0;
        let mut bytes = 0;
        let mut taken = 0;
        while msgs < limits.decode_msgs_per_tick && bytes < limits.decode_bytes_per_tick {
            let Some(frame) = rb.frames.pop_front() else { break };
            rb.bytes -= frame.wire_len();
            taken += frame.wire_len();
            msgs += 1;
            bytes += frame.payload.len();
            if frame.header.command == Command::Unknown {
                metrics.unknown_commands += 1;
                continue;
            }
            if checksum(&frame.payload) != frame.header.checksum {
                metrics.decode_error(DecodeError::BadChecksum);
                violations.0.push(DecodeError::BadChecksum.into());
                continue;
            }
            match Message::decode_owned(frame.header.command, frame.payload) {
                Ok(Some(m)) => received.0.push(m),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(
                        peer = socket.conn.0,
                        command = frame.header.command.name(),
                        reason = e.label(),
                        "malformed payload"
                    );
                    metrics.decode_error(e);
                    violations.0.push(e.into());
                }
            }
        }
        // The shell's reader gets its credit back for what left the buffer.
        if taken > 0 {
            outbox.0.push(IoCommand::Consumed { conn: socket.conn, bytes: taken });
        }
        resume_if_drained(socket.conn, &mut rb, limits.recv_buffer_bytes_max, &mut outbox);
    }
}

fn resume_if_drained(conn: ConnId, rb: &mut RecvBuffer, max: usize, outbox: &mut Outbox) {
    if rb.paused && rb.bytes <= max / 2 {
        rb.paused = false;
        outbox.0.push(IoCommand::ResumeRead { conn });
    }
}
