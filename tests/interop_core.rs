//! oni against a real Bitcoin Core on regtest, in both directions: Core dials oni (BIP324 v2, or
//! with oni's `--v2transport=0` a v2 attempt oni must refuse at once so Core retries v1), and oni
//! dials Core (v2). Core's own view (`getpeerinfo`) must show oni with oni's version, user agent,
//! services and transport, and the connection must stay up across pings.

mod common;

use common::bitcoind::{Bitcoind, CoreExes};
use common::proc::{oni_services, wait_for, OniNode, WAIT};
use oni_systems::wire::services::NODE_P2P_V2;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Waits until Core lists a peer for which `is_oni` holds and whose handshake finished (Core reports
/// version 0 until it has the peer's version message).
fn wait_for_oni_peer(core: &Bitcoind, oni: &OniNode, is_oni: impl Fn(&Value) -> bool) -> Value {
    let found =
        wait_for(WAIT, || core.peers().into_iter().find(|p| is_oni(p) && p["version"].as_i64().unwrap_or(0) != 0));
    found.unwrap_or_else(|| {
        panic!(
            "Core did not list oni as a peer within {WAIT:?}.\ngetpeerinfo: {:#?}\noni output:\n{}\nbitcoind output:\n{}",
            core.peers(),
            oni.output(),
            core.proc.output()
        )
    })
}

/// The checks both directions share: Core's view of oni, then pings over a few seconds on the same
/// connection.
fn check_peer(core: &mut Bitcoind, oni: &mut OniNode, peer: &Value, inbound: bool, transport: &str) {
    let ctx = |oni: &OniNode| format!("peer: {peer:#}\noni output:\n{}", oni.output());
    assert_eq!(peer["version"].as_i64(), Some(70016), "{}", ctx(oni));
    let subver = peer["subver"].as_str().unwrap_or_default();
    assert!(subver.starts_with("/oni:") && subver.ends_with('/'), "subver {subver:?}; {}", ctx(oni));
    let services = if transport == "v1" { oni_services() & !NODE_P2P_V2 } else { oni_services() };
    assert_eq!(peer["services"].as_str(), Some(format!("{services:016x}").as_str()), "{}", ctx(oni));
    assert_eq!(peer["transport_protocol_type"].as_str(), Some(transport), "{}", ctx(oni));
    assert_eq!(peer["inbound"].as_bool(), Some(inbound), "{}", ctx(oni));
    let id = peer["id"].as_u64().unwrap();

    // oni saw the handshake complete too.
    oni.proc.wait_for_line(&["peer ready"], WAIT);

    // Core pings at once on request; a pong from oni gives Core a ping time.
    core.cli(&["ping"]).unwrap();
    let pinged = wait_for(WAIT, || core.peer(id).filter(|p| p.get("pingtime").is_some()));
    let pinged =
        pinged.unwrap_or_else(|| panic!("no pong from oni within {WAIT:?}: {:#?}\n{}", core.peer(id), ctx(oni)));

    // Some seconds later the same connection is still there and still answers.
    let first_recv = pinged["lastrecv"].as_i64().unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(500));
        assert!(core.peer(id).is_some(), "Core dropped oni after {:?}; {}", start.elapsed(), ctx(oni));
        oni.proc.assert_running();
    }
    core.cli(&["ping"]).unwrap();
    let later = wait_for(WAIT, || core.peer(id).filter(|p| p["lastrecv"].as_i64().unwrap_or(0) > first_recv));
    assert!(later.is_some(), "lastrecv did not advance after a second ping: {:#?}\n{}", core.peer(id), ctx(oni));
    core.proc.assert_running();
}

#[test]
fn core_dials_oni_over_v2_and_stays_connected() {
    let Some(exes) = CoreExes::find() else { return };
    let mut oni = OniNode::start(&[]);
    let mut core = Bitcoind::start(&exes, &[format!("-connect={}", oni.addr)]);
    let want_addr = oni.addr.to_string();
    let peer = wait_for_oni_peer(&core, &oni, |p| p["addr"].as_str() == Some(want_addr.as_str()));
    assert_eq!(peer["connection_type"].as_str(), Some("manual"), "{peer:#}");
    check_peer(&mut core, &mut oni, &peer, false, "v2");
}

#[test]
fn core_dials_oni_without_v2_falls_back_to_v1_and_stays_connected() {
    let Some(exes) = CoreExes::find() else { return };
    let mut oni = OniNode::start(&["--v2transport=0".to_string()]);
    let mut core = Bitcoind::start(&exes, &[format!("-connect={}", oni.addr)]);
    let want_addr = oni.addr.to_string();
    let start = Instant::now();
    let peer = wait_for_oni_peer(&core, &oni, |p| p["addr"].as_str() == Some(want_addr.as_str()));
    // Core retries v1 at once only when oni closes on the v2 bytes; waiting instead costs ~a minute.
    assert!(start.elapsed() < Duration::from_secs(20), "v1 fallback took {:?}", start.elapsed());
    assert_eq!(peer["connection_type"].as_str(), Some("manual"), "{peer:#}");
    // Core's first try was BIP324 v2; oni closed it on the first four bytes.
    oni.proc.wait_for_line(&["disconnected", "reason=", "bad_magic"], WAIT);
    check_peer(&mut core, &mut oni, &peer, false, "v1");
}

#[test]
fn oni_dials_core_and_stays_connected() {
    let Some(exes) = CoreExes::find() else { return };
    let mut core = Bitcoind::start(&exes, &[]);
    let core_addr = format!("127.0.0.1:{}", core.p2p_port);
    let mut oni = OniNode::start(&["--connect".to_string(), core_addr]);
    let peer = wait_for_oni_peer(&core, &oni, |p| p["subver"].as_str().is_some_and(|s| s.starts_with("/oni:")));
    check_peer(&mut core, &mut oni, &peer, true, "v2");
}
