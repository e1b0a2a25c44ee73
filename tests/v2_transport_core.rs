//! BIP324 v2 between oni and a real Bitcoin Core, both directions: Core dials oni and oni dials
//! Core, and both `getpeerinfo`s (oni's read with Core's own `bitcoin-cli`) say v2 with the same
//! session id; messages flow (pings answered). oni dialing a Core that speaks only v1 gets one
//! refused attempt, then v1; oni with `--v2transport=0` makes Core fall back to v1.

mod common;

use common::bitcoind::{Bitcoind, CoreExes};
use common::proc::wait_for;
use oni::node::{Node, NodeConfig, NodeHandle};
use oni::rpc::{RpcConfig, RpcServer};
use oni_systems::components::Direction;
use oni_systems::resources::Metrics;
use oni_systems::wire::Network;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

struct Oni {
    node: NodeHandle,
    rpc: RpcServer,
    dir: tempfile::TempDir,
}

fn oni(v2: bool) -> Oni {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.datadir = Some(dir.path().to_path_buf());
    cfg.policy.auto_outbound = false;
    if !v2 {
        cfg.config.services &= !oni_systems::wire::services::NODE_P2P_V2;
    }
    let node = Node::start(cfg).unwrap();
    let mut rc = RpcConfig::new(Network::Regtest, Some(dir.path()));
    rc.bind = "127.0.0.1:0".parse().unwrap();
    let rpc = RpcServer::start(&node, Network::Regtest, rc).unwrap();
    Oni { node, rpc, dir }
}

impl Oni {
    /// `getpeerinfo` of oni, through Core's own `bitcoin-cli`.
    fn peers(&self, exes: &CoreExes) -> Vec<Value> {
        let out = Command::new(&exes.cli)
            .arg("-regtest")
            .arg(format!("-datadir={}", self.dir.path().display()))
            .arg(format!("-rpcport={}", self.rpc.local_addr().port()))
            .arg("getpeerinfo")
            .output()
            .unwrap();
        assert!(out.status.success(), "bitcoin-cli getpeerinfo against oni: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn metrics(&self) -> Metrics {
        self.node.with_world(|w| w.resource::<Metrics>().clone()).unwrap()
    }
}

/// Waits until both sides list the link as handshaken and returns (Core's view, oni's view).
fn link(core: &Bitcoind, oni: &Oni, exes: &CoreExes) -> (Value, Value) {
    wait_for(WAIT, || {
        let c = core.peers().into_iter().find(|p| p["version"].as_i64().unwrap_or(0) != 0)?;
        let o = oni.peers(exes).into_iter().find(|p| p["state"] == "ready")?;
        Some((c, o))
    })
    .unwrap_or_else(|| {
        panic!("no link within {WAIT:?}: Core {:#?}\noni {:#?}\n{}", core.peers(), oni.peers(exes), core.proc.output())
    })
}

/// Both ends say v2 with one session id, and a ping crosses the encrypted link.
fn assert_v2(core: &Bitcoind, oni: &Oni, exes: &CoreExes) {
    let (c, o) = link(core, oni, exes);
    assert_eq!(c["transport_protocol_type"], "v2", "Core's view: {c:#}");
    assert_eq!(o["transport_protocol_type"], "v2", "oni's view: {o:#}");
    let sid = c["session_id"].as_str().unwrap();
    assert_eq!(sid.len(), 64);
    assert_eq!(o["session_id"].as_str(), Some(sid), "both ends derive one session id");
    // A ping from Core is answered over v2.
    let id = c["id"].as_u64().unwrap();
    core.cli(&["ping"]).unwrap();
    let pinged = wait_for(WAIT, || core.peer(id).filter(|p| p.get("pingtime").is_some()));
    assert!(pinged.is_some(), "no pong over v2: {:#?}", core.peer(id));
    let m = oni.metrics();
    assert_eq!(m.transports, [0, 1], "one v2 connection settled, no v1");
    assert!(m.v2_failures.iter().all(|&n| n == 0), "{:?}", m.v2_failures);
}

#[test]
fn core_dials_oni_over_v2_and_both_ends_report_one_session() {
    let Some(exes) = CoreExes::find() else { return };
    let oni = oni(true);
    let core = Bitcoind::start(&exes, &[format!("-connect={}", oni.node.local_addr().unwrap())]);
    assert_v2(&core, &oni, &exes);
}

#[test]
fn oni_dials_core_over_v2_and_both_ends_report_one_session() {
    let Some(exes) = CoreExes::find() else { return };
    let core = Bitcoind::start(&exes, &[]);
    let oni = oni(true);
    let core_addr: SocketAddr = format!("127.0.0.1:{}", core.p2p_port).parse().unwrap();
    oni.node.connect(core_addr, Direction::Manual).unwrap();
    assert_v2(&core, &oni, &exes);
}

#[test]
fn oni_dialing_a_v1_only_core_is_refused_once_then_connects_with_v1() {
    let Some(exes) = CoreExes::find() else { return };
    let core = Bitcoind::start(&exes, &["-v2transport=0".to_string()]);
    let oni = oni(true);
    let core_addr: SocketAddr = format!("127.0.0.1:{}", core.p2p_port).parse().unwrap();
    // A manual peer: the connections system dials it, with v2 first.
    oni.node
        .with_world(move |w| w.resource_mut::<oni_systems::resources::PeerPolicy>().manual.push(core_addr))
        .unwrap();
    let (c, o) = link(&core, &oni, &exes);
    assert_eq!(c["transport_protocol_type"], "v1", "{c:#}");
    assert_eq!(o["transport_protocol_type"], "v1", "{o:#}");
    assert_eq!(o["session_id"], "");
    let m = oni.metrics();
    assert_eq!(m.v2_refused, 1, "one refused v2 attempt");
    assert_eq!(m.transports, [1, 0]);
}

#[test]
fn with_v2transport_off_oni_refuses_v2_at_once_and_core_falls_back_to_v1() {
    let Some(exes) = CoreExes::find() else { return };
    let oni = oni(false);
    let core = Bitcoind::start(&exes, &[format!("-connect={}", oni.node.local_addr().unwrap())]);
    let (c, o) = link(&core, &oni, &exes);
    assert_eq!(c["transport_protocol_type"], "v1", "{c:#}");
    assert_eq!(o["transport_protocol_type"], "v1");
    let services = u64::from_str_radix(c["services"].as_str().unwrap(), 16).unwrap();
    assert_eq!(services & oni_systems::wire::services::NODE_P2P_V2, 0, "bit 11 not advertised");
}
