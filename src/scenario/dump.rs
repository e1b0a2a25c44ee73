//! `--dump`: the node's peers and metrics at the end of a run, as RON. Only components that derive
//! Serialize (Socket, PeerState, Direction, Stats, Score, Negotiated) and Metrics; a richer dump
//! comes with `oni dump`.

use bevy_ecs::prelude::*;
use oni_systems::components::{Direction, Negotiated, PeerState, Score, Socket, Stats};
use oni_systems::resources::{Clock, Metrics};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One peer, as dumped.
#[derive(Serialize, Deserialize)]
pub struct PeerDump {
    /// The link.
    pub socket: Socket,
    /// Lifecycle.
    pub state: PeerState,
    /// Role.
    pub direction: Direction,
    /// Counters.
    pub stats: Stats,
    /// Misbehavior.
    pub score: Score,
    /// Negotiated features.
    pub negotiated: Negotiated,
}

/// The whole dump.
#[derive(Serialize, Deserialize)]
pub struct WorldDump {
    /// The node's clock at the dump (unix ms).
    pub clock_ms: u64,
    /// Peers, by connection id.
    pub peers: Vec<PeerDump>,
    /// Node-wide metrics.
    pub metrics: Metrics,
}

/// Collects the dump from a world.
pub fn collect(world: &mut World) -> WorldDump {
    let mut q = world.query::<(&Socket, &PeerState, &Direction, &Stats, &Score, &Negotiated)>();
    let mut peers: Vec<PeerDump> = q
        .iter(world)
        .map(|(socket, state, direction, stats, score, negotiated)| PeerDump {
            socket: socket.clone(),
            state: *state,
            direction: *direction,
            stats: stats.clone(),
            score: score.clone(),
            negotiated: negotiated.clone(),
        })
        .collect();
    peers.sort_by_key(|p| p.socket.conn);
    WorldDump { clock_ms: world.resource::<Clock>().now_ms, peers, metrics: world.resource::<Metrics>().clone() }
}

/// Writes the dump of `world` to `path` as pretty RON.
pub fn write(world: &mut World, path: &Path) -> Result<(), String> {
    let text = ron::ser::to_string_pretty(&collect(world), ron::ser::PrettyConfig::default())
        .map_err(|e| format!("serialize: {e}"))?;
    std::fs::write(path, text).map_err(|e| e.to_string())
}
