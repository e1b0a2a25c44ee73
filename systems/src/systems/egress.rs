//! egress: hands queued frames to the shell's writer, as much as the writer window allows, and
//! disconnects peers whose queue grew past the hard bound (they ask more than they read) — and,
//! while all peers' queues and unwritten bytes together pass the node-wide bound, the peer
//! holding the most.

use crate::components::{Disconnect, SendQueue, Socket, Stats};
use crate::resources::{Clock, Config, DisconnectReason, IoCommand, Metrics, Outbox};
use bevy_ecs::prelude::*;

/// Moves frames from send queues to the outbox.
pub fn egress(
    mut peers: Query<(Entity, &Socket, &mut SendQueue, &mut Stats), Without<Disconnect>>,
    config: Res<Config>,
    clock: Res<Clock>,
    mut metrics: ResMut<Metrics>,
    mut outbox: ResMut<Outbox>,
    mut commands: Commands,
) {
    let limits = &config.limits;
    let mut dropped: smallvec::SmallVec<[Entity; 4]> = smallvec::SmallVec::new();
    let held = |sq: &SendQueue| sq.bytes() + sq.in_writer_bytes;
    let mut total: usize = peers.iter().map(|p| held(p.2)).sum();
    while total > limits.send_bytes_total_max {
        let Some((entity, socket, sq, _)) = peers.iter().filter(|p| !dropped.contains(&p.0)).max_by_key(|p| held(p.2))
        else {
            break;
        };
        tracing::info!(
            peer = socket.conn.0,
            held = held(sq),
            total,
            "node-wide send bound passed: dropping the largest"
        );
        metrics.send_total_overflows += 1;
        total -= held(sq);
        dropped.push(entity);
        commands.entity(entity).insert(Disconnect { reason: DisconnectReason::SendQueueOverflow });
    }
    for (entity, socket, mut sq, mut stats) in &mut peers {
        if dropped.contains(&entity) {
            continue;
        }
        if sq.bytes() > limits.send_queue_bytes_hard {
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::SendQueueOverflow });
            continue;
        }
        while sq.in_writer_bytes < limits.writer_window_bytes {
            let Some((cmd, frame)) = sq.pop() else { break };
            let len = frame.len();
            sq.in_writer_bytes += len;
            let i = cmd as usize;
            stats.bytes_out += len as u64;
            stats.msgs_out[i] = stats.msgs_out[i].saturating_add(1);
            stats.bytes_out_by_cmd[i] += len as u64;
            stats.last_send_ms = clock.now_ms;
            metrics.msgs_out[i] += 1;
            metrics.bytes_out[i] += len as u64;
            outbox.0.push(IoCommand::Send { conn: socket.conn, bytes: frame });
        }
    }
}
