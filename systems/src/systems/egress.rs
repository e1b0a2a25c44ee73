//! egress: hands queued frames to the shell's writer, as much as the writer window allows, and
//! disconnects peers whose queue grew past the hard bound (they ask more than they read).

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
    for (entity, socket, mut sq, mut stats) in &mut peers {
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
