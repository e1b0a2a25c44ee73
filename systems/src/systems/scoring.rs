//! scoring: applies the violations systems reported this tick. Each adds its score from the one
//! table; at the threshold the peer is disconnected for misbehavior — never a `noban` peer nor one
//! the operator connected (`--connect`, `addnode`): as Core's MaybeDiscourageAndDisconnect, they
//! are scored so operators see it, but kept.

use crate::components::{Direction, Disconnect, Permissions, Score, Socket, Violations};
use crate::resources::{DisconnectReason, Metrics, ScoreTable};
use bevy_ecs::prelude::*;

/// Adds this tick's violations to each peer's score.
pub fn scoring(
    mut peers: Query<(Entity, &Socket, &Direction, &mut Score, &mut Violations, &Permissions, Has<Disconnect>)>,
    table: Res<ScoreTable>,
    mut metrics: ResMut<Metrics>,
    mut commands: Commands,
) {
    for (entity, socket, direction, mut score, mut violations, permissions, disconnecting) in &mut peers {
        if violations.0.is_empty() {
            continue;
        }
        for m in violations.0.drain(..) {
            metrics.misbehavior[m as usize] += 1;
            let points = table.score(m);
            score.points = score.points.saturating_add(points);
            match score.events.iter_mut().find(|(k, _)| *k == m) {
                Some((_, n)) => *n += 1,
                None => score.events.push((m, 1)),
            }
            tracing::debug!(peer = socket.conn.0, addr = %socket.addr, violation = m.label(), points, total = score.points, "misbehavior");
        }
        if disconnecting || score.points < table.threshold {
            continue;
        }
        if permissions.noban || *direction == Direction::Manual {
            tracing::warn!(peer = socket.conn.0, addr = %socket.addr, total = score.points,
                "not punishing a noban or manually connected peer");
            continue;
        }
        commands.entity(entity).insert(Disconnect { reason: DisconnectReason::Misbehavior });
    }
}
