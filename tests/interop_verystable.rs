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
    run_script("wire_checks.py", py, port, args, node_output)
}

/// Runs `tests/interop/<script>` against `port`, as [`run_checks`].
fn run_script(
    script: &str,
    py: &std::path::Path,
    port: u16,
    args: &[&str],
    node_output: impl Fn() -> String,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(py);
    cmd.arg(repo_root().join("tests/interop").join(script)).args(["--port", &port.to_string()]).args(args);
    let mut script = Proc::spawn(script, cmd, dir.path().join("checks.log"));
    let status = script.wait_exit(SCRIPT_TIMEOUT);
    let output = script.output();
    match status {
        Some(s) if s.success() => output,
        Some(s) => panic!("the checks failed ({s}):\n{output}\n--- node output ---\n{}", node_output()),
        None => panic!("the checks ran over {SCRIPT_TIMEOUT:?}:\n{output}\n--- node output ---\n{}", node_output()),
    }
}

#[test]
fn oni_passes_cores_p2p_test_framework_checks() {
    let Some(py) = python() else { return };
    // v1 only, as the Core run below: these checks open with v1 messages other than `version`
    // (a ping before version, bad magic), which a v2 responder — Core's or oni's — reads as the
    // start of a BIP324 handshake. The v2 checks below cover v2.
    let mut oni = OniNode::start(&["--v2transport=0".to_string()]);
    let services = format!("{:#x}", oni_services() & !oni_systems::wire::services::NODE_P2P_V2);
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

/// The v2 checks (tests/interop/v2_checks.py): Core's p2p_v2_misbehaving and p2p_v2_transport cases.
const V2_CHECKS: [&str; 10] = [
    "ok v2_handshake",
    "ok early_key_response",
    "ok excess_garbage",
    "ok wrong_garbage_terminator",
    "ok tampered_garbage",
    "ok no_aad",
    "ok non_empty_version_packet",
    "ok decoys",
    "ok v1_wrong_network",
    "ok well_behaved_alongside",
];

fn assert_v2_checks(out: &str) {
    for check in V2_CHECKS {
        assert!(out.lines().any(|l| l.starts_with(check)), "{check:?} missing from the script's output:\n{out}");
    }
    assert!(out.contains(&format!("{} passed, 0 failed", V2_CHECKS.len())), "{out}");
}

#[test]
fn oni_meets_cores_v2_transport_cases_with_cores_reactions() {
    let Some(py) = python() else { return };
    let mut oni = OniNode::start(&["--peertimeout".to_string(), "3".to_string()]);
    let out = run_script("v2_checks.py", &py, oni.addr.port(), &["--peertimeout", "3"], || oni.output());
    println!("{out}");
    assert_v2_checks(&out);
    // oni says why it closed each: Core's reaction, with oni's reason.
    for reason in ["v2_missing_garbage_terminator", "handshake_timeout", "v2_decryption_failure", "v2_wrong_network"] {
        oni.proc.wait_for_line(&["disconnected", "reason=", reason], Duration::from_secs(5));
    }
    oni.proc.assert_running();
}

/// The v2 checks hold on the reference node with the same handshake timeout.
#[test]
fn the_v2_checks_hold_on_bitcoin_core() {
    let Some(py) = python() else { return };
    let Some(exes) = CoreExes::find() else { return };
    let core = Bitcoind::start(&exes, &["-v2transport=1".to_string(), "-peertimeout=3".to_string()]);
    let out = run_script("v2_checks.py", &py, core.p2p_port, &["--peertimeout", "3"], || core.proc.output());
    assert_v2_checks(&out);
}
