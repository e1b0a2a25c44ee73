//! oni against Bitcoin Core's own P2P test peer (the `verystable` package, Core's test_framework):
//! `tests/interop/wire_checks.py` checks oni's handshake (version fields, wtxidrelay and sendaddrv2
//! before verack), ping, and how oni treats what Core drops or reads leniently (bad checksums,
//! messages before version, duplicate version/verack, a malformed command name, truncated payloads,
//! bytes after a message, unconnecting headers, a version without its optional tail: the
//! connection stays up) and what Core disconnects for (oversized headers, negotiation after verack,
//! `feature`, bloom and compact-filter requests, `mempool`, a locator over 101, bad magic, a
//! `sendcmpct` flag of 2), each on a fresh connection while a well-behaved one stays up. The same
//! script also runs against bitcoind itself, so its checks are known to hold on the reference node
//! (systems/CONFORMANCE.md has the whole table).

mod common;

use common::bitcoind::{Bitcoind, CoreExes};
use common::proc::{oni_services, python, repo_root, OniNode, Proc};
use std::process::Command;
use std::time::Duration;

/// The checks both profiles pass (the `oni` profile adds `oversized_ping_header`).
const CHECKS: [&str; 21] = [
    "ok handshake",
    "ok bad_checksum",
    "ok ping_before_version_x1",
    "ok ping_before_version_x20",
    "ok duplicate_version_verack_x5",
    "ok bad_command_name_x5",
    "ok truncated_ping_x20",
    "ok getheaders_trailing_bytes",
    "ok unconnecting_headers_x60",
    "ok version_without_optional_tail",
    "ok oversized_block_header",
    "ok wtxidrelay_after_verack",
    "ok sendaddrv2_after_verack",
    "ok feature_after_verack",
    "ok filterload",
    "ok getcfilters",
    "ok mempool",
    "ok getheaders_locator_102",
    "ok bad_magic",
    "ok sendcmpct_flag_2",
    "ok well_behaved_alongside",
];

/// The whole script must finish within this (each of its waits is bounded at 10 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

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
    for check in CHECKS.iter().chain(&["ok oversized_ping_header"]) {
        assert!(out.lines().any(|l| l.starts_with(check)), "{check:?} missing from the script's output:\n{out}");
    }
    assert!(out.contains(&format!("{} passed, 0 failed", CHECKS.len() + 1)), "{out}");
    // oni counted what it dropped (at no points), and says why it closed each connection.
    for violation in ["bad_checksum", "message_before_version", "duplicate_version", "unconnecting_headers"] {
        oni.proc.wait_for_line(&["misbehavior", "violation=", violation], Duration::from_secs(5));
    }
    for reason in [
        "oversized",
        "bad_magic",
        "misbehavior",
        "negotiation_after_verack",
        "unsupported_feature",
        "service_not_offered",
        "mempool_request",
    ] {
        oni.proc.wait_for_line(&["disconnected", "reason=", reason], Duration::from_secs(5));
    }
    oni.proc.assert_running();
}

/// The script's expectations hold on the reference node (with the Core profile: Core tolerates a
/// long ping header). Core runs v1-only here: with v2 on it reads a non-version first message as the
/// start of a BIP324 handshake.
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
    for check in CHECKS {
        assert!(out.lines().any(|l| l.starts_with(check)), "{check:?} missing from the script's output:\n{out}");
    }
    assert!(out.contains(&format!("{} passed, 0 failed", CHECKS.len())), "{out}");
}
