//! oni against Bitcoin Core's own P2P test peer (the `verystable` package, Core's test_framework):
//! `tests/interop/wire_checks.py` checks oni's handshake (version fields, wtxidrelay and sendaddrv2
//! before verack), ping, and how oni treats a bad checksum, oversized headers, messages before
//! version and bad magic, each on a fresh connection while a well-behaved one stays up. The same
//! script also runs against bitcoind itself, so its checks are known to hold on the reference node.

mod common;

use common::bitcoind::{Bitcoind, CoreExes};
use common::proc::{oni_services, python, repo_root, OniNode, Proc};
use std::process::Command;
use std::time::Duration;

/// The whole script must finish within this (each of its waits is bounded at 10 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs wire_checks.py against `port` and returns its output, panicking (with `node_output`) unless
/// it exits 0.
fn run_checks(py: &std::path::Path, port: u16, args: &[&str], node_output: impl Fn() -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(py);
    cmd.arg(repo_root().join("tests/interop/wire_checks.py")).args(["--port", &port.to_string()]).args(args);
    let mut script = Proc::spawn("wire_checks.py", cmd, dir.path().join("wire_checks.log"));
    let status = script.wait_exit(SCRIPT_TIMEOUT);
    let output = script.output();
    match status {
        Some(s) if s.success() => output,
        Some(s) => panic!("wire_checks.py failed ({s}):\n{output}\n--- node output ---\n{}", node_output()),
        None => panic!("wire_checks.py ran over {SCRIPT_TIMEOUT:?}:\n{output}\n--- node output ---\n{}", node_output()),
    }
}

#[test]
fn oni_passes_cores_p2p_test_framework_checks() {
    let Some(py) = python() else { return };
    let mut oni = OniNode::start(&[]);
    let services = format!("{:#x}", oni_services());
    let out = run_checks(&py, oni.addr.port(), &["--profile", "oni", "--services", &services, "--height", "0"], || {
        oni.output()
    });
    println!("{out}");
    for check in [
        "ok handshake",
        "ok bad_checksum",
        "ok ping_before_version_x1",
        "ok oversized_ping_header",
        "ok oversized_block_header",
        "ok wtxidrelay_after_verack",
        "ok sendaddrv2_after_verack",
        "ok bad_magic",
        "ok ping_before_version_x10",
        "ok well_behaved_alongside",
    ] {
        assert!(out.lines().any(|l| l.starts_with(check)), "{check:?} missing from the script's output:\n{out}");
    }
    // oni scored what it dropped, and says why it closed each misbehaving connection.
    for violation in ["bad_checksum", "message_before_version"] {
        oni.proc.wait_for_line(&["misbehavior", "violation=", violation], Duration::from_secs(5));
    }
    for reason in ["oversized", "bad_magic", "misbehavior", "negotiation_after_verack"] {
        oni.proc.wait_for_line(&["disconnected", "reason=", reason], Duration::from_secs(5));
    }
    oni.proc.assert_running();
}

/// The script's expectations hold on the reference node (with the Core profile: Core tolerates a
/// long ping header and pings before version). Core runs v1-only here: with v2 on it reads a
/// non-version first message as the start of a BIP324 handshake.
#[test]
fn the_checks_hold_on_bitcoin_core() {
    let Some(py) = python() else { return };
    let Some(exes) = CoreExes::find() else { return };
    let core = Bitcoind::start(&exes, &["-v2transport=0".to_string()]);
    let info: serde_json::Value = serde_json::from_str(&core.cli(&["getnetworkinfo"]).unwrap()).unwrap();
    let services = format!("0x{}", info["localservices"].as_str().unwrap());
    let out = run_checks(&py, core.p2p_port, &["--profile", "core", "--services", &services, "--height", "0"], || {
        core.proc.output()
    });
    assert!(out.contains("9 passed, 0 failed"), "{out}");
}
