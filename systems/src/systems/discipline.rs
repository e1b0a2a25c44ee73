//! discipline: the Peer Manager's response to a peer disconnected for misbehavior — its address is
//! discouraged (refused inbound, never dialed), and discouraged again while that stands, banned. A
//! loopback peer is only disconnected, so a local wallet or indexer is never locked out.

use crate::components::{Disconnect, Permissions, Socket};
use crate::resources::{BanList, Clock, DisconnectReason, Metrics, PeerPolicy};
use bevy_ecs::prelude::*;

/// Discourages (or bans) the addresses of peers just disconnected for misbehavior.
pub fn discipline(
    peers: Query<(&Socket, &Disconnect, &Permissions), Added<Disconnect>>,
    mut bans: ResMut<BanList>,
    policy: Res<PeerPolicy>,
    clock: Res<Clock>,
    mut metrics: ResMut<Metrics>,
) {
    for (socket, disconnect, perms) in &peers {
        if disconnect.reason != DisconnectReason::Misbehavior || perms.noban {
            continue;
        }
        let ip = socket.addr.ip();
        let local = ip.is_loopback() || ip.to_canonical().is_loopback();
        if local && !policy.discourage_local {
            tracing::info!(peer = socket.conn.0, addr = %socket.addr, "misbehaving local peer disconnected, not discouraged");
            continue;
        }
        metrics.discouraged += 1;
        if bans.discourage(ip, clock.now_ms, socket.connected_ms, policy.discourage_s, policy.ban_s) {
            metrics.bans_escalated += 1;
            tracing::info!(peer = socket.conn.0, addr = %socket.addr, ban_s = policy.ban_s, "banned: misbehaved again while discouraged");
        } else {
            tracing::info!(peer = socket.conn.0, addr = %socket.addr, "discouraged for misbehavior");
        }
    }
}
