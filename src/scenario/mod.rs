//! The scenario runner: loads a RON scenario (node limits, honest peers, bots, expectations), runs it,
//! and judges it into a report. `sim` mode runs the node's own world and schedule in-process on a
//! virtual clock with seeded bots speaking bytes through the real codec; a seed replays a run.
//! (`live` mode — bots over loopback TCP against a real `oni node` — lands with the shell's node.)
//!
//! # Layout
//! - [`spec`]: the file format and its validation.
//! - [`sim`]: the simulator (virtual clock, instances, the tick loop); [`link`]: one connection's
//!   byte pipes; [`outcome`]: what a run produced.
//! - [`bots`]: one behaviour per attack, plus the honest peer.
//! - [`expect`]: expectations → measured rows; [`report`]: the table.
//! - [`trace`]: per-connection records and the trace hash; [`dump`]: `--dump`.
//! - [`cli`]: the clap arguments the shell mounts as `oni scenario run`.

pub mod bots;
pub mod cli;
pub mod dump;
pub mod expect;
pub mod link;
pub mod outcome;
pub mod report;
pub mod sim;
pub mod spec;
pub mod trace;

pub use outcome::Outcome;
pub use report::{Report, Row};
pub use sim::Sim;
pub use spec::{BotKind, Expectation, NetModel, PeerSpec, Scenario};

use oni_systems::resources::{DisconnectReason, Metrics};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// In-process, virtual clock, seeded, deterministic.
    Sim,
}

/// Why a scenario could not run, or did not pass.
#[derive(Debug)]
pub enum ScenarioError {
    /// The file could not be read.
    Io {
        /// Which file.
        path: PathBuf,
        /// The OS's words.
        message: String,
    },
    /// The RON did not parse into a scenario (syntax, unknown field, bad value or label).
    Parse {
        /// Which file or text.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What was wrong.
        message: String,
    },
    /// It parsed but does not make sense (a range, a bot expected but never spawned...).
    Invalid {
        /// Which file or text.
        origin: String,
        /// What was wrong.
        message: String,
    },
    /// `--dump` could not be written.
    Dump {
        /// Where.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// It ran, and at least one expectation failed.
    Failed(Box<Report>),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            ScenarioError::Parse { origin, line, col, message } => write!(f, "{origin}:{line}:{col}: {message}"),
            ScenarioError::Invalid { origin, message } => write!(f, "{origin}: {message}"),
            ScenarioError::Dump { path, message } => write!(f, "dump to {}: {message}", path.display()),
            ScenarioError::Failed(report) => {
                write!(f, "{report}{} expectation(s) failed", report.failures().count())
            }
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Runs `scenario` in sim mode and returns the outcome (world included) unjudged.
pub fn simulate(scenario: &Scenario) -> Outcome {
    Sim::new(scenario).run()
}

/// Judges an outcome against the scenario's expectations, plus the checks every run gets: the node
/// never sent a frame a bot could not decode.
pub fn judge(scenario: &Scenario, out: &Outcome, mode: Mode, wall_ms: f64) -> Report {
    let grace = expect::honest_grace_ms(scenario.net.latency_ms, scenario.net.tick_ms);
    let mut rows = expect::evaluate(&scenario.expect, out, grace);
    rows.push(Row {
        expectation: "(always) NodeFramesDecode".into(),
        pass: out.node_bad_frames == 0,
        measured: format!("{} frames from the node failed to frame or decode", out.node_bad_frames),
    });
    let metrics = out.world.resource::<Metrics>();
    let disconnects = DisconnectReason::ALL
        .iter()
        .map(|r| (r.label(), metrics.disconnects_for(*r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Report {
        name: scenario.name.clone(),
        seed: scenario.seed,
        mode,
        sim_s: out.end_ms as f64 / 1e3,
        ticks: out.ticks,
        wall_ms,
        instances: out.instances.len(),
        connections: out.conns.len(),
        trace_hash: out.trace_hash,
        disconnects,
        rows,
    }
}

/// Runs and judges `scenario`; the report says whether it passed. Also hands back the outcome.
pub fn run(scenario: &Scenario, mode: Mode) -> (Report, Outcome) {
    let started = Instant::now();
    let out = match mode {
        Mode::Sim => simulate(scenario),
    };
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    (judge(scenario, &out, mode, wall_ms), out)
}

/// The entry point behind `oni scenario run`: loads `path`, optionally overrides its seed, runs it,
/// optionally dumps the world, and fails with the report when any expectation failed.
pub fn run_cli(path: &Path, mode: Mode, seed: Option<u64>, dump: Option<&Path>) -> Result<Report, ScenarioError> {
    let mut scenario = Scenario::load(path)?;
    if let Some(s) = seed {
        scenario.seed = s;
    }
    let (report, mut out) = run(&scenario, mode);
    if let Some(d) = dump {
        dump::write(&mut out.world, d).map_err(|message| ScenarioError::Dump { path: d.to_path_buf(), message })?;
    }
    if report.passed() {
        Ok(report)
    } else {
        Err(ScenarioError::Failed(Box::new(report)))
    }
}
