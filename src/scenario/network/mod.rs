//! Many oni nodes in one deterministic simulation: a scenario with a `network` section runs N
//! whole node worlds (each its own schedule and validator) on one virtual clock, joined node to node
//! by byte pipes with the file's latency and bandwidth, along a random graph drawn from the seed.
//! Blocks are mined at chosen times and nodes, with transactions every pool already holds (or,
//! as the file says, partly lacks), and the run measures how fast each block reaches the nodes
//! and what its relay costs in bytes. Same seed, same trace hash.
//!
//! # Layout
//! - [`spec`]: the `network` section of the file.
//! - [`topology`]: who dials whom; [`pipe`]: one direction of a connection.
//! - [`txs`]: the shared transaction pool; [`coins`]: the chainstate the pools check it against;
//!   [`mine`]: building a regtest block on a tip (handed to its node by `crate::node::submit`).
//! - [`node`]: one node (world, schedule, validator); [`sim`]: the tick loop.
//! - [`figures`]: propagation times and bytes, and their table.

pub mod coins;
pub mod figures;
pub mod mine;
pub mod node;
pub mod pipe;
pub mod sim;
pub mod spec;
pub mod topology;
pub mod txs;

pub use figures::Propagation;
pub use sim::{NetOutcome, NetSim};
pub use spec::NetworkSpec;

use super::report::{Report, Row};
use super::{Mode, Scenario, ScenarioError};
use oni_systems::resources::{DisconnectReason, Metrics};
use std::time::Instant;

/// Runs a network scenario.
pub fn simulate(scenario: &Scenario) -> Result<NetOutcome, ScenarioError> {
    let sim =
        NetSim::new(scenario).map_err(|message| ScenarioError::Invalid { origin: scenario.name.clone(), message })?;
    Ok(sim.run())
}

/// Runs and judges a network scenario: it passes when every node connected every block and every
/// pool took every transaction it was given. The report carries the propagation table, the wall
/// time and the process's peak RSS.
pub fn run(scenario: &Scenario) -> Result<(Report, NetOutcome), ScenarioError> {
    let started = Instant::now();
    let out = simulate(scenario)?;
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let p = &out.propagation;
    let reached: usize = p.blocks.iter().map(|b| b.reached()).sum();
    let rows = vec![
        Row {
            expectation: "(network) every node connected every block".into(),
            pass: p.all_reached(),
            measured: format!("{reached} of {} block arrivals", p.blocks.len() * p.nodes),
        },
        Row {
            expectation: "(network) pools took every transaction given".into(),
            pass: out.pool_fills.1 == 0,
            measured: format!("{} entered, {} refused", out.pool_fills.0, out.pool_fills.1),
        },
    ];
    let mut disconnects: Vec<(&'static str, u64)> = DisconnectReason::ALL
        .iter()
        .map(|r| (r.label(), out.nodes.iter().map(|n| n.world.resource::<Metrics>().disconnects_for(*r)).sum()))
        .collect();
    disconnects.retain(|(_, n)| *n > 0);
    let report = Report {
        name: scenario.name.clone(),
        seed: scenario.seed,
        mode: Mode::Sim,
        sim_s: out.end_ms as f64 / 1e3,
        ticks: out.ticks,
        wall_ms,
        instances: out.nodes.len(),
        connections: out.topology.edges.len(),
        trace_hash: out.trace_hash,
        peak_rss_mb: super::live::proc_status_kb("VmHWM:").map(|kb| kb as f64 / 1024.0),
        connect_failures: 0,
        disconnects,
        rows,
        propagation: Some(Box::new(out.propagation.clone())),
    };
    Ok((report, out))
}
