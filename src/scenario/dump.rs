//! `--dump`: the world at the end of a run, as RON — the same [`crate::dump::Dump`] that `oni dump`
//! and the RPC `dumpcomponents` give for a live node (every peer with all its components, and the
//! node-wide resources), so one loader reads all three.

use bevy_ecs::prelude::*;
use std::path::Path;

/// The dump of a scenario's world: the component dump of a live node.
pub type WorldDump = crate::dump::Dump;

/// Collects the dump from a world.
pub fn collect(world: &mut World) -> WorldDump {
    crate::dump::Dump::capture(world)
}

/// Writes the dump of `world` to `path` as pretty RON.
pub fn write(world: &mut World, path: &Path) -> Result<(), String> {
    let text = collect(world).to_ron().map_err(|e| format!("serialize: {e}"))?;
    std::fs::write(path, text).map_err(|e| e.to_string())
}
