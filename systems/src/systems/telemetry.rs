//! telemetry: refreshes the node-wide gauges from the peer components once per tick.

use crate::components::{Direction, PeerState};
use crate::resources::Metrics;
use bevy_ecs::prelude::*;

/// Counts peers by direction and readiness.
pub fn telemetry(peers: Query<(&Direction, &PeerState)>, mut metrics: ResMut<Metrics>) {
    let mut by_dir = [0u64; Direction::ALL.len()];
    let mut ready = 0;
    for (d, s) in &peers {
        by_dir[*d as usize] += 1;
        ready += (*s == PeerState::Ready) as u64;
    }
    metrics.peers.copy_from_slice(&by_dir);
    metrics.peers_ready = ready;
    metrics.ticks += 1;
}
