//! For the interop tests: child processes whose output goes to a log file and that are always
//! killed (a Drop guard), bounded waits for log lines, a running `oni node`, and the external tools
//! (bitcoind, bitcoin-cli, a Python with `verystable`). A missing tool skips the test loudly on a
//! developer's machine and fails it in CI (`CI=true`), so CI cannot pass by skipping.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether we run in CI, where a skipped interop test is a failure.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// A missing tool: skip loudly (return `None`) on a developer's machine, panic in CI.
pub fn require(tool: Option<PathBuf>, what: &str, how: &str) -> Option<PathBuf> {
    if tool.is_some() {
        return tool;
    }
    if in_ci() {
        panic!("CI=true but {what} was not found: {how}. The interop tests must run in CI.");
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests, and a skip must show.
    let msg = format!("\n*** SKIPPED: {what} not found ({how}). This interop test did NOT run. ***\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
    None
}

/// The repository root (this package's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An executable named by `var`, else `fallback` if it exists, else `name` on PATH.
pub fn find_exe(var: &str, fallback: &Path, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{var}={} does not exist", p.display());
        return Some(p);
    }
    if fallback.is_file() {
        return Some(fallback.to_path_buf());
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// A Python that can import `verystable` (Core's test framework): `ONI_PYTHON`, else the repo's `.venv`.
pub fn python() -> Option<PathBuf> {
    let found = match std::env::var_os("ONI_PYTHON").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => Some(repo_root().join(".venv/bin/python")).filter(|p| p.is_file()),
    };
    let found = found.filter(|py| {
        let ok = Command::new(py)
            .args(["-c", "import verystable.core.p2p"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("{} cannot import verystable", py.display());
        }
        ok
    });
    require(found, "a Python with verystable", "set ONI_PYTHON or run .ci/run, which makes .venv")
}

/// A loopback port that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Removes terminal colour codes so log lines can be matched as text.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `f` every 50 ms until it returns `Some`, or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process whose stdout and stderr go to one log file; killed when dropped, so a failing
/// test never leaves a node behind.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output in `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).env("NO_COLOR", "1");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name: name.to_string(), child, log }
    }

    /// Its output so far, colour codes removed.
    pub fn output(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()))
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until a line containing every one of `needles` appears; panics with the log if it does
    /// not within `timeout` or the process exits first.
    pub fn wait_for_line(&mut self, needles: &[&str], timeout: Duration) -> String {
        let found = wait_for(timeout, || {
            let text = self.output();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(Ok(line.to_string()));
            }
            if !self.running() {
                return Some(Err("exited"));
            }
            None
        });
        match found {
            Some(Ok(line)) => line,
            Some(Err(why)) => panic!("{} {why} before logging {needles:?}; its output:\n{}", self.name, self.output()),
            None => panic!("{} did not log {needles:?} within {timeout:?}; its output:\n{}", self.name, self.output()),
        }
    }

    /// Waits for it to exit on its own; `None` (and it is killed) if it does not within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = wait_for(timeout, || self.child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if !self.running() {
            panic!("{} exited early; its output:\n{}", self.name, self.output());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Services `oni node --network regtest` announces, as its command line builds its config: what a
/// peer must see in oni's `version`.
pub fn oni_services() -> u64 {
    use clap::Parser;
    let cli = oni::cli::Cli::try_parse_from(["oni", "node", "--network", "regtest"]).unwrap();
    let oni::cli::Command::Node(args) = cli.command else { panic!("not a node command") };
    args.node_config().config.services
}

/// oni's log filter in tests: info, plus the scoring system's per-violation lines.
pub const ONI_LOG: &str = "info,oni_systems::systems::scoring=debug";

/// A running `oni node` on regtest with its own temp datadir, listening on a free loopback port.
pub struct OniNode {
    /// The process (killed on drop).
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its datadir (removed on drop, after the process is killed).
    pub dir: tempfile::TempDir,
}

impl OniNode {
    /// Starts a node with `extra` arguments after the usual ones and waits until it listens. It binds
    /// port 0 and reports the port it got, so parallel tests never race for one.
    pub fn start(extra: &[String]) -> OniNode {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oni"));
        cmd.args(["node", "--network", "regtest", "--datadir"])
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            // Scores are logged at debug: tests read them.
            .env("RUST_LOG", std::env::var("ONI_TEST_LOG").unwrap_or_else(|_| ONI_LOG.into()));
        let mut proc = Proc::spawn("oni node", cmd, dir.path().join("oni.log"));
        let line = proc.wait_for_line(&["listening on "], WAIT);
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no address in oni's line {line:?}"));
        OniNode { proc, addr, dir }
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        self.proc.output()
    }
}
