//! `oni node` as a process, driven by the real Bitcoin Core `bitcoin-cli` (found at BITCOIN_CLI_EXE
//! or ../shared/bin/bitcoin-cli) with only Core's own flags, by `oni dump`, and killed with SIGKILL
//! right after `setban` answered to prove the ban was already on disk.

mod rpc_support;

use bitcoin::p2p::message::NetworkMessage;
use rpc_support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `oni node --network regtest` with its RPC on a free port.
struct OniNode {
    child: Child,
    p2p: SocketAddr,
    rpc: SocketAddr,
    datadir: PathBuf,
    _lines: mpsc::Receiver<String>,
}

impl OniNode {
    fn start(datadir: &Path) -> OniNode {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oni"))
            .args(["node", "--network", "regtest", "--listen", "127.0.0.1:0", "--rpcport", "0", "--datadir"])
            .arg(datadir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut p2p, mut rpc) = (None, None);
        while p2p.is_none() || rpc.is_none() {
            let line = rx.recv_timeout(Duration::from_secs(20)).expect("oni node did not report its addresses");
            let addr = || line.split("listening on ").nth(1)?.split(' ').next()?.parse::<SocketAddr>().ok();
            if line.contains("RPC listening on ") {
                rpc = addr();
            } else if line.contains(" listening on ") {
                p2p = addr();
            }
        }
        OniNode { child, p2p: p2p.unwrap(), rpc: rpc.unwrap(), datadir: datadir.to_path_buf(), _lines: rx }
    }

    fn cookie_path(&self) -> PathBuf {
        self.datadir.join("regtest/.cookie")
    }

    fn call(&self, method: &str, params: Value) -> Value {
        let auth = std::fs::read_to_string(self.cookie_path()).unwrap();
        let (status, v) =
            post(self.rpc, Some(&auth), &json!({"id": 1, "method": method, "params": params}).to_string());
        assert_eq!(status, 200, "{v}");
        v["result"].clone()
    }
}

impl Drop for OniNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Core's bitcoin-cli, or None (loudly) when absent outside CI.
fn bitcoin_cli() -> Option<PathBuf> {
    let path = std::env::var_os("BITCOIN_CLI_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bin/bitcoin-cli"));
    if path.exists() {
        return Some(path);
    }
    assert!(std::env::var_os("CI").is_none(), "bitcoin-cli not found at {} (set BITCOIN_CLI_EXE)", path.display());
    eprintln!("SKIPPED: bitcoin-cli not found at {}", path.display());
    None
}

/// Runs bitcoin-cli against `n` with Core's flags only: network, datadir (for the cookie), port.
fn cli(exe: &Path, n: &OniNode, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(exe)
        .arg("-regtest")
        .arg(format!("-datadir={}", n.datadir.display()))
        .arg(format!("-rpcport={}", n.rpc.port()))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_json(exe: &Path, n: &OniNode, args: &[&str]) -> Value {
    let (ok, out, err) = cli(exe, n, args);
    assert!(ok, "bitcoin-cli {args:?} failed: {err}");
    if out.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&out).unwrap_or_else(|_| Value::String(out.trim().to_string()))
}

#[test]
fn bitcoin_cli_works_unchanged() {
    let Some(exe) = bitcoin_cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut n = OniNode::start(dir.path());
    let info = cli_json(&exe, &n, &["getnetworkinfo"]);
    assert!(info["subversion"].as_str().unwrap().starts_with("/oni:"), "{info}");
    assert_eq!(info["connections"], 0);

    let mut p = RawPeer::connect(n.p2p);
    let v = p.version();
    p.send(v);
    p.send(NetworkMessage::Verack);
    p.send(NetworkMessage::Ping(1));
    let sent: u64 = p.sent.values().map(|e| e.1).sum();
    let peer = wait_for(10, "the peer's bytes", || {
        let peers = cli_json(&exe, &n, &["getpeerinfo"]);
        let peer = peers.get(0)?.clone();
        (peer["bytesrecv"] == sent).then_some(peer)
    });
    assert_eq!(peer["bytesrecv_per_msg"], json!({"version": p.sent["version"].1, "verack": 24, "ping": 32}));
    assert_eq!(peer["subver"], "/rawpeer:1.0/");

    // Core's own dashboards: -netinfo (refused by Core's cli below server version 0.21) lists the
    // peer with its version, and -getinfo counts it.
    let (ok, out, err) = cli(&exe, &n, &["-netinfo", "4"]);
    assert!(ok, "-netinfo: {err}");
    assert!(out.contains("server 70016/oni:"), "{out}");
    assert!(out.contains("70016/rawpeer:1.0/"), "the peer's version column: {out}");
    // The counts table: the loopback peer in the not-publicly-routable column, and the total.
    let inbound_row: Vec<&str> =
        out.lines().rev().find(|l| l.starts_with("in ")).unwrap_or_default().split_whitespace().collect();
    assert_eq!(inbound_row, ["in", "0", "0", "1", "1"], "one inbound peer (ipv4 ipv6 npr total): {out}");
    assert!(out.contains("127.0.0.1:"), "the address column: {out}");
    let (ok, out, err) = cli(&exe, &n, &["-getinfo"]);
    assert!(ok, "-getinfo: {err}");
    assert!(out.contains("Network: in 1, out 0, total 1") && out.contains("Version: 310000"), "{out}");

    assert_eq!(cli_json(&exe, &n, &["setban", "10.11.12.0/24", "add", "600"]), Value::Null);
    let bans = cli_json(&exe, &n, &["listbanned"]);
    assert_eq!(bans[0]["address"], "10.11.12.0/24");
    assert_eq!(bans[0]["ban_duration"], 600);
    assert_eq!(cli_json(&exe, &n, &["-named", "setban", "subnet=10.11.12.0/24", "command=remove"]), Value::Null);
    assert_eq!(cli_json(&exe, &n, &["listbanned"]), json!([]));

    let id = peer["id"].to_string();
    assert_eq!(cli_json(&exe, &n, &["disconnectnode", "", &id]), Value::Null);
    wait_for(10, "the peer gone", || (cli_json(&exe, &n, &["getconnectioncount"]) == 0).then_some(()));

    let info = cli_json(&exe, &n, &["getblockchaininfo"]);
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 0);
    let (ok, _, err) = cli(&exe, &n, &["nosuchcall"]);
    assert!(!ok && err.contains("error code: -32601"), "{err}");
    assert_eq!(cli_json(&exe, &n, &["getblockcount"]), 0);

    // The pool calls, as bitcoin-cli sends and prints them.
    let pool = cli_json(&exe, &n, &["getmempoolinfo"]);
    assert_eq!(pool["size"], 0, "{pool}");
    assert_eq!(pool["mempoolminfee"].to_string(), "0.00000100", "amounts as Core writes them");
    assert_eq!(cli_json(&exe, &n, &["getrawmempool"]), json!([]));
    assert_eq!(cli_json(&exe, &n, &["getrawmempool", "true"]), json!({}));
    let (ok, _, err) = cli(&exe, &n, &["sendrawtransaction", "00"]);
    assert!(!ok && err.contains("error code: -22"), "{err}");
    let (ok, _, err) = cli(&exe, &n, &["getmempoolentry", &"ab".repeat(32)]);
    assert!(!ok && err.contains("error code: -5") && err.contains("Transaction not in mempool"), "{err}");

    let cookie = n.cookie_path();
    assert_eq!(cli_json(&exe, &n, &["stop"]), Value::String("oni stopping".into()));
    let status = wait_for(15, "oni to exit", || n.child.try_wait().unwrap());
    assert!(status.success(), "stop by RPC is a clean exit: {status}");
    assert!(!cookie.exists(), "the cookie is removed at a clean stop");
}

#[test]
fn a_ban_is_on_disk_when_setban_returns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let n = OniNode::start(dir.path());
        assert_eq!(n.call("setban", json!(["203.0.113.0/24", "add", 86400])), Value::Null);
        // Drop sends SIGKILL: no clean shutdown, nothing flushed after this point.
    }
    let n = OniNode::start(dir.path());
    let bans = n.call("listbanned", json!([]));
    assert_eq!(bans.as_array().unwrap().len(), 1, "{bans}");
    assert_eq!(bans[0]["address"], "203.0.113.0/24");
}

#[test]
fn oni_dump_prints_a_loadable_dump() {
    let dir = tempfile::tempdir().unwrap();
    let n = OniNode::start(dir.path());
    let mut p = RawPeer::connect(n.p2p);
    let v = p.version();
    p.send(v);
    p.send(NetworkMessage::Verack);
    wait_for(10, "the peer", || (n.call("getconnectioncount", json!([])) == 1).then_some(()));
    let port = n.rpc.port().to_string();
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_oni"))
            .args(["dump", "--network", "regtest", "--rpcport", &port, "--format", format, "--datadir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let ron = run("ron");
    assert!(ron.contains("negotiated:") && ron.contains("Dump("), "{ron}");
    let from_ron = oni::dump::Dump::from_ron(&ron).unwrap();
    assert_eq!(from_ron.peers.len(), 1);
    assert_eq!(from_ron.peers[0].negotiated.user_agent.as_slice(), b"/rawpeer:1.0/");
    let from_json = oni::dump::Dump::from_json(&run("json")).unwrap();
    assert_eq!(from_json.peers[0].socket.addr, from_ron.peers[0].socket.addr);
    // Wrong credentials are a clear error, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_oni"))
        .args(["dump", "--network", "regtest", "--rpcport", &port, "--rpcuser", "x", "--rpcpassword", "y"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("authorization failed"));
}
