//! The report of one run: a header line (virtual and wall time, trace hash) and a table with one
//! row per expectation: PASS/FAIL and the figure measured.

use super::Mode;
use std::fmt;

/// One judged expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The expectation as written.
    pub expectation: String,
    /// Whether it held.
    pub pass: bool,
    /// What was measured.
    pub measured: String,
}

/// The outcome of one scenario run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// The seed it ran with.
    pub seed: u64,
    /// How it ran.
    pub mode: Mode,
    /// Virtual seconds covered.
    pub sim_s: f64,
    /// Schedule runs.
    pub ticks: u64,
    /// Wall-clock milliseconds the run took (not part of the trace).
    pub wall_ms: f64,
    /// Peer instances.
    pub instances: usize,
    /// Connections opened.
    pub connections: usize,
    /// Hash of the event trace; equal for equal seeds.
    pub trace_hash: u64,
    /// Live mode: the process's peak resident memory, MB.
    pub peak_rss_mb: Option<f64>,
    /// Live mode: bot connects that failed (refused, timed out, or over the open-socket bound).
    pub connect_failures: u64,
    /// Node disconnects by reason label (non-zero only).
    pub disconnects: Vec<(&'static str, u64)>,
    /// The judged expectations (plus the implicit ones the runner always checks).
    pub rows: Vec<Row>,
    /// Network scenarios: the block propagation table.
    pub propagation: Option<Box<super::network::Propagation>>,
}

impl Report {
    /// Whether every row passed.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.pass)
    }

    /// The rows that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| !r.pass)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            Mode::Sim => writeln!(
                f,
                "scenario {:?} ({:?}, seed {}): {:.1} s virtual in {:.2} s wall, {} ticks, {} instances, {} connections, trace {:016x}",
                self.name,
                self.mode,
                self.seed,
                self.sim_s,
                self.wall_ms / 1e3,
                self.ticks,
                self.instances,
                self.connections,
                self.trace_hash
            )?,
            Mode::Live => writeln!(
                f,
                "scenario {:?} ({:?}, seed {}): {:.1} s live in {:.2} s wall, {} runner passes, {} instances, {} connections ({} failed to connect), peak RSS {}",
                self.name,
                self.mode,
                self.seed,
                self.sim_s,
                self.wall_ms / 1e3,
                self.ticks,
                self.instances,
                self.connections,
                self.connect_failures,
                self.peak_rss_mb.map_or("n/a".to_string(), |mb| format!("{mb:.1} MB"))
            )?,
        }
        if !self.disconnects.is_empty() {
            let d: Vec<String> = self.disconnects.iter().map(|(l, n)| format!("{l} {n}")).collect();
            writeln!(f, "node disconnects: {}", d.join(", "))?;
        }
        let w = self.rows.iter().map(|r| r.expectation.len()).max().unwrap_or(0).max("expectation".len());
        writeln!(f, "  {:<6}  {:<w$}  measured", "result", "expectation")?;
        for r in &self.rows {
            writeln!(f, "  {:<6}  {:<w$}  {}", if r.pass { "PASS" } else { "FAIL" }, r.expectation, r.measured)?;
        }
        if let Some(p) = &self.propagation {
            if let Some(mb) = self.peak_rss_mb {
                writeln!(f, "peak RSS {mb:.0} MB (the whole process)")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
