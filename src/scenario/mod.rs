//! The scenario runner: loads a RON scenario (node limits, honest peers, bots, expectations), runs it,
//! and judges it into a report. `sim` mode runs the node's own world and schedule in-process on a
//! virtual clock with seeded bots speaking bytes through the real codec; a seed replays a run.
//! `live` mode starts a real node in-process on a loopback port and runs the same bots over real
//! TCP sockets in wall time; the same expectations judge it (see [`live`] for what it can measure).
//!
//! # Layout
//! - [`spec`]: the file format and its validation; [`fixture_chain`]: a node started at the regtest
//!   fixture's tip (`chain: Fixture`).
//! - [`live`]: the live runner (real node, real sockets, wall clock).
//! - [`sim`]: the simulator (virtual clock, instances, the tick loop); [`link`]: one connection's
//!   byte pipes; [`outcome`]: what a run produced.
//! - [`network`]: many oni nodes in one simulation (a `network` section), block propagation.
//! - [`bots`]: one behaviour per attack, plus the honest peer.
//! - [`expect`]: expectations → measured rows; [`report`]: the table.
//! - [`trace`]: per-connection records and the trace hash; [`dump`]: `--dump`.

pub mod bots;
pub mod dump;
pub mod expect;
pub mod fixture_chain;
mod host;
pub mod link;
pub mod live;
pub mod network;
pub mod outcome;
pub mod report;
pub mod sim;
pub mod spec;
pub mod trace;
pub mod v2;

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
    /// A real node on 127.0.0.1, bots over real TCP, wall clock; not replayable.
    Live,
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
    /// Live mode: the node could not start, or stopped under the runner.
    Live {
        /// What happened.
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
            ScenarioError::Live { message } => write!(f, "live run: {message}"),
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
        peak_rss_mb: out.live.and_then(|l| l.peak_rss_kb).map(|kb| kb as f64 / 1024.0),
        connect_failures: out.live.map_or(0, |l| l.connect_failures),
        disconnects,
        rows,
        propagation: None,
    }
}

/// Runs and judges `scenario`; the report says whether it passed. Also hands back the outcome.
/// A live run whose node cannot start is an error here.
pub fn try_run(scenario: &Scenario, mode: Mode) -> Result<(Report, Outcome), ScenarioError> {
    let started = Instant::now();
    let out = match mode {
        Mode::Sim => simulate(scenario),
        Mode::Live => live::run_live(scenario).map_err(|message| ScenarioError::Live { message })?,
    };
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok((judge(scenario, &out, mode, wall_ms), out))
}

/// [`try_run`] for sim mode, which cannot fail to run.
pub fn run(scenario: &Scenario, mode: Mode) -> (Report, Outcome) {
    let started = Instant::now();
    let out = match mode {
        Mode::Sim => simulate(scenario),
        Mode::Live => match live::run_live(scenario) {
            Ok(out) => out,
            Err(message) => {
                let mut out = simulate_nothing(scenario);
                out.live = Some(outcome::LiveFigures::default());
                let mut report = judge(scenario, &out, mode, 0.0);
                report.rows.insert(0, Row { expectation: "(live) node ran".into(), pass: false, measured: message });
                return (report, out);
            }
        },
    };
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    (judge(scenario, &out, mode, wall_ms), out)
}

/// An outcome with nothing in it (a run that never started).
fn simulate_nothing(scenario: &Scenario) -> Outcome {
    let mut empty = scenario.clone();
    empty.peers.clear();
    empty.duration_s = 1;
    empty.net.tick_ms = 1_000;
    simulate(&empty)
}

/// What `oni scenario run` may change in a file before running it.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces the seed.
    pub seed: Option<u64>,
    /// Replaces `duration_s` (live runs take wall time; a shorter run keeps tests and demos short).
    pub duration_s: Option<u64>,
}

/// The entry point behind `oni scenario run`: loads `path`, optionally overrides its seed, runs it,
/// optionally dumps the world, and fails with the report when any expectation failed.
pub fn run_cli(path: &Path, mode: Mode, seed: Option<u64>, dump: Option<&Path>) -> Result<Report, ScenarioError> {
    run_cli_with(path, mode, &Overrides { seed, duration_s: None }, dump)
}

/// [`run_cli`] with every override.
pub fn run_cli_with(
    path: &Path,
    mode: Mode,
    overrides: &Overrides,
    dump: Option<&Path>,
) -> Result<Report, ScenarioError> {
    let mut scenario = Scenario::load(path)?;
    if let Some(s) = overrides.seed {
        scenario.seed = s;
    }
    if let Some(d) = overrides.duration_s {
        scenario.duration_s = d;
        scenario.validate().map_err(|message| ScenarioError::Invalid {
            origin: format!("{} with --duration-s {d}", path.display()),
            message,
        })?;
    }
    if scenario.network.is_some() {
        if mode != Mode::Sim || dump.is_some() {
            let message = "a network scenario runs in sim mode only, without --dump".into();
            return Err(ScenarioError::Invalid { origin: path.display().to_string(), message });
        }
        let (report, _) = network::run(&scenario)?;
        return if report.passed() { Ok(report) } else { Err(ScenarioError::Failed(Box::new(report))) };
    }
    let (report, mut out) = try_run(&scenario, mode)?;
    if let Some(d) = dump {
        dump::write(&mut out.world, d).map_err(|message| ScenarioError::Dump { path: d.to_path_buf(), message })?;
    }
    if report.passed() {
        Ok(report)
    } else {
        Err(ScenarioError::Failed(Box::new(report)))
    }
}
