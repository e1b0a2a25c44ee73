//! Fixture IBD over BIP324 v2 next to v1, in one run: a bitcoind holds the 2,100-block fixture; a
//! fresh in-process oni (release) connects to it with `--v2transport` on, then off, alternating,
//! timed from `Node::start` to its validated tip equal to Core's; then a fresh bitcoind does the
//! same with `-v2transport=1` / `=0`, timed from process start, so Core's own v2 cost stands next to
//! oni's. Prints a table (`cargo bench --bench ibd_v2`); figures: benches/REPORT-v2.md.

#[path = "../tests/common/mod.rs"]
mod common;

use common::bitcoind::{core_with_chain, meta, Bitcoind, CoreExes};
use oni::node::{Node, NodeConfig};
use oni_systems::chain::HeaderTree;
use oni_systems::resources::Metrics;
use oni_systems::wire::Network;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const WAIT: Duration = Duration::from_secs(120);

/// One oni sync: seconds from start to the tip, and the transports its connections settled on.
fn oni_sync(core: SocketAddr, v2: bool, tip: &str) -> (f64, [u64; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.datadir = Some(dir.path().to_path_buf());
    cfg.max_tip_age_s = Some(4_000_000_000);
    cfg.policy.auto_outbound = false;
    cfg.manual_peers = vec![core];
    if !v2 {
        cfg.config.services &= !oni_systems::wire::services::NODE_P2P_V2;
    }
    let start = Instant::now();
    let node = Node::start(cfg).unwrap();
    let at_tip = || {
        let tip = tip.to_string();
        node.with_world(move |w| {
            let tree = w.resource::<HeaderTree>();
            tree.entry(tree.validated_tip()).hash.to_string() == tip
        })
        .unwrap()
    };
    while !at_tip() {
        assert!(start.elapsed() < WAIT, "oni (v2 {v2}) did not sync");
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = start.elapsed().as_secs_f64();
    let transports = node.with_world(|w| w.resource::<Metrics>().transports).unwrap();
    node.shutdown();
    (took, transports)
}

/// One bitcoind sync from process start, and the transport Core reports for its source.
fn core_sync(exes: &CoreExes, source: SocketAddr, v2: bool) -> (f64, String) {
    let start = Instant::now();
    let fresh = Bitcoind::start(
        exes,
        &[format!("-connect={source}"), "-maxtipage=4000000000".into(), format!("-v2transport={}", u8::from(v2))],
    );
    while fresh.cli(&["getblockcount"]).map(|c| c.trim() != "2100").unwrap_or(true) {
        assert!(start.elapsed() < WAIT, "bitcoind (v2 {v2}) did not sync");
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed().as_secs_f64();
    let transport = fresh.peers().first().and_then(|p| p["transport_protocol_type"].as_str().map(String::from));
    (took, transport.unwrap_or_default())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(exes) = CoreExes::find() else {
        println!("no bitcoind: skipped");
        return;
    };
    let tip = meta()["tip"].as_str().unwrap().to_string();
    let core = core_with_chain(&exes);
    let source: SocketAddr = format!("127.0.0.1:{}", core.p2p_port).parse().unwrap();
    let (mut oni_v2, mut oni_v1, mut core_v2, mut core_v1) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        for v2 in [round % 2 == 0, round % 2 == 1] {
            let (t, transports) = oni_sync(source, v2, &tip);
            assert_eq!(transports, if v2 { [0, 1] } else { [1, 0] }, "oni's link to Core is v{}", 1 + u8::from(v2));
            if v2 {
                oni_v2.push(t)
            } else {
                oni_v1.push(t)
            }
        }
    }
    for round in 0..ROUNDS.min(3) {
        for v2 in [round % 2 == 0, round % 2 == 1] {
            let (t, transport) = core_sync(&exes, source, v2);
            assert_eq!(transport, if v2 { "v2" } else { "v1" });
            if v2 {
                core_v2.push(t)
            } else {
                core_v1.push(t)
            }
        }
    }
    let row = |name: &str, v2: &[f64], v1: &[f64]| {
        let fmt = |v: &[f64]| v.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(" ");
        let (m2, m1) = (median(v2.to_vec()), median(v1.to_vec()));
        println!("| {name} | {} | {} | {m2:.2} | {m1:.2} | {:.2}× |", fmt(v2), fmt(v1), m2 / m1);
    };
    println!("| syncing node | v2 runs (s) | v1 runs (s) | v2 median | v1 median | v2 / v1 |");
    println!("|---|---|---|---:|---:|---:|");
    row("oni (in-process, from Node::start)", &oni_v2, &oni_v1);
    row("bitcoind (from process start)", &core_v2, &core_v1);
}
