//! teardown: ends marked peers (one log line and one counted reason each) and drops messages that
//! no system took this tick.

use crate::components::{Disconnect, Handshake, PeerState, Received, Socket};
use crate::resources::{ConnIndex, IoCommand, LocalNonces, Metrics, Outbox};
use bevy_ecs::prelude::*;

/// Closes and despawns peers marked with [`Disconnect`].
pub fn teardown(
    mut peers: Query<(Entity, &Socket, &mut PeerState, &Handshake, &mut Received, Option<&Disconnect>)>,
    mut index: ResMut<ConnIndex>,
    mut nonces: ResMut<LocalNonces>,
    mut metrics: ResMut<Metrics>,
    mut outbox: ResMut<Outbox>,
    mut compact: ResMut<crate::chain::CompactRelay>,
    mut commands: Commands,
) {
    for (entity, socket, mut state, hs, mut received, disconnect) in &mut peers {
        received.0.clear();
        let Some(d) = disconnect else { continue };
        *state = PeerState::Disconnecting;
        metrics.disconnects[d.reason as usize] += 1;
        nonces.0.remove(&hs.our_nonce);
        index.0.remove(&socket.conn);
        compact.peer_gone(socket.conn);
        tracing::info!(peer = socket.conn.0, addr = %socket.addr, reason = d.reason.label(), "disconnected");
        outbox.0.push(IoCommand::Close { conn: socket.conn, reason: d.reason });
        commands.entity(entity).despawn();
    }
}
