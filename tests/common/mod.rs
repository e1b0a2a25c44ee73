//! Helpers shared by the whole-node tests: nodes on loopback, `oni` processes with their log lines,
//! and bounded waits (every wait has a deadline; nothing here can hang a test run).
#![allow(dead_code)]

pub mod bitcoind;
pub mod proc;
pub mod raw;

use oni::node::{Node, NodeConfig, NodeHandle};
use oni_systems::wire::Network;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A regtest node config listening on a free loopback port (or not at all), fixed seed.
pub fn regtest_config(listen: bool) -> NodeConfig {
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.listen = listen.then(|| "127.0.0.1:0".parse().unwrap());
    cfg.seed = Some(7);
    cfg
}

/// The same without BIP324 v2: for raw v1 peers that open with something other than `version`
/// (a v2 responder, Core's or ours, reads such bytes as the start of a v2 handshake).
pub fn v1_config(listen: bool) -> NodeConfig {
    let mut cfg = regtest_config(listen);
    cfg.config.services &= !oni_systems::wire::services::NODE_P2P_V2;
    cfg
}

/// Starts a regtest node on loopback.
pub fn regtest_node(listen: bool) -> NodeHandle {
    Node::start(regtest_config(listen)).unwrap()
}

/// An `oni` process whose stderr is read line by line on a thread; killed on drop.
pub struct OniProcess {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line seen so far, for failure messages.
    pub seen: Vec<String>,
}

impl OniProcess {
    /// Runs `oni` with `args`.
    pub fn spawn(args: &[&str]) -> OniProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oni"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        OniProcess { child, lines, seen: Vec::new() }
    }

    /// Waits for a line containing `needle`; returns it, or None at the deadline or end of output.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// The port in the "listening on ADDR" line.
    pub fn listening_port(&mut self) -> u16 {
        let line = self
            .wait_for_line("listening on", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no 'listening on' line; saw {:?}", self.seen));
        let addr = line.split("listening on ").nth(1).unwrap().split_whitespace().next().unwrap();
        addr.parse::<std::net::SocketAddr>().unwrap().port()
    }

    /// Waits for the process to exit; returns its code (None if killed by a signal or still running
    /// at the deadline).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// All stderr until the process ends (bounded by `timeout`).
    pub fn drain(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Sends SIGINT (what Ctrl-C sends).
    pub fn interrupt(&self) {
        let ok = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -INT failed");
    }
}

impl Drop for OniProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
