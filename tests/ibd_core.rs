//! IBD against a real Bitcoin Core: Core holds the fixture chain (loaded by `submitblock`), oni
//! syncs it headers-first over loopback and validates it with Core's own engine, reaches Core's tip
//! and chainwork, keeps it across a restart, serves the whole chain to a fresh Core, and follows
//! Core onto the heavier fork.

mod common;

use common::bitcoind::{core_with_chain, fixture, meta, Bitcoind, CoreExes};
use common::proc::wait_for;
use oni::node::progress::Progress;
use oni::node::{Node, NodeConfig, NodeHandle};
use oni_systems::chain::HeaderTree;
use oni_systems::components::Direction;
use oni_systems::wire::Network;
use std::net::SocketAddr;
use std::time::Duration;

const SYNC_WAIT: Duration = Duration::from_secs(120);

fn oni_config(datadir: &std::path::Path, connect: Option<SocketAddr>) -> NodeConfig {
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.datadir = Some(datadir.to_path_buf());
    cfg.max_tip_age_s = Some(4_000_000_000);
    cfg.policy.auto_outbound = false;
    cfg.manual_peers = connect.into_iter().collect();
    cfg.seed = Some(3);
    cfg
}

/// (height, hash, chainwork hex) of the validated tip.
fn validated_tip(node: &NodeHandle) -> (u32, String, String) {
    node.with_world(|w| {
        let tree = w.resource::<HeaderTree>();
        let e = tree.entry(tree.validated_tip());
        let work: String = e.chainwork().to_be_bytes().iter().map(|b| format!("{b:02x}")).collect();
        (e.height, e.hash.to_string(), work)
    })
    .unwrap()
}

fn wait_tip(node: &NodeHandle, hash: &str) -> bool {
    wait_for(SYNC_WAIT, || (validated_tip(node).1 == hash).then_some(())).is_some()
}

#[test]
fn oni_syncs_the_fixture_from_core_restarts_serves_it_back_and_follows_the_fork() {
    let Some(exes) = CoreExes::find() else { return };
    let meta = meta();
    let tip = meta["tip"].as_str().unwrap();
    let chainwork = meta["chainwork"].as_str().unwrap();
    let core = core_with_chain(&exes);
    let core_addr: SocketAddr = format!("127.0.0.1:{}", core.p2p_port).parse().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let oni = Node::start(oni_config(dir.path(), Some(core_addr))).unwrap();
    assert!(
        wait_tip(&oni, tip),
        "oni did not reach Core's tip; it is at {:?}\nCore:\n{}",
        validated_tip(&oni),
        core.proc.output()
    );
    let (height, _, work) = validated_tip(&oni);
    assert_eq!(height, 2100);
    assert_eq!(work, chainwork, "chainwork as Core computes it");
    let transports = oni.with_world(|w| w.resource::<oni_systems::resources::Metrics>().transports).unwrap();
    assert_eq!(transports, [0, 1], "oni synced from Core over v2");
    // The operator was told: one line when the node caught up (and one every 5 s while it synced).
    let said =
        |n: &NodeHandle| n.with_world(|w| w.resource::<Progress>().recent.iter().cloned().collect::<Vec<_>>()).unwrap();
    let lines = said(&oni);
    assert!(lines.iter().any(|l| l.starts_with("caught up: block 2100 of 2100 headers, 2100 blocks in")), "{lines:#?}");
    assert!(lines.iter().filter(|l| l.starts_with("syncing: ")).all(|l| l.contains("blocks/s")), "{lines:#?}");
    oni.shutdown();

    // Restart: the validated tip comes back from disk, nothing to download again.
    let oni = Node::start(oni_config(dir.path(), None)).unwrap();
    assert_eq!(validated_tip(&oni).1, tip, "restart resumes from the last connected block");
    let oni_addr = oni.local_addr().unwrap();

    // A fresh Core syncs the whole chain from oni alone.
    let fresh = Bitcoind::start(&exes, &[format!("-connect={oni_addr}"), "-maxtipage=4000000000".to_string()]);
    let synced = wait_for(SYNC_WAIT, || (fresh.cli(&["getbestblockhash"]).ok()?.trim() == tip).then_some(()));
    assert!(
        synced.is_some(),
        "a fresh Core did not sync from oni: {}\n{}",
        fresh.cli(&["getblockcount"]).unwrap_or_default(),
        fresh.proc.output()
    );
    // It synced over BIP324 v2 (Core dials v2 first; oni answers it).
    let link = fresh.peers().into_iter().next().map(|p| p["transport_protocol_type"].clone());
    assert_eq!(link, Some(serde_json::json!("v2")), "the fresh Core's link to oni");
    drop(fresh);

    // Core learns the heavier fork; oni, connected to it, reorgs to the fork's tip.
    oni.connect(core_addr, Direction::Manual).unwrap();
    for hex in fixture("fork.hex") {
        let r = core.cli(&["submitblock", &hex]).unwrap();
        assert!(r.trim().is_empty() || r.trim() == "inconclusive", "fork block refused: {r}");
    }
    let fork_tip = meta["fork"]["tip"].as_str().unwrap();
    assert_eq!(core.cli(&["getbestblockhash"]).unwrap().trim(), fork_tip);
    assert!(wait_tip(&oni, fork_tip), "oni did not follow the fork; at {:?}", validated_tip(&oni));
    let (height, _, work) = validated_tip(&oni);
    assert_eq!(height, 2101);
    let lines = said(&oni);
    assert_eq!(lines.last().map(String::as_str), Some("new tip: block 2101"), "{lines:#?}");
    assert_eq!(work, meta["fork"]["chainwork"].as_str().unwrap());
    oni.shutdown();
}

#[test]
fn a_second_oni_syncs_from_the_first_and_the_first_catches_up_from_the_second() {
    let Some(exes) = CoreExes::find() else { return };
    let meta = meta();
    let tip = meta["tip"].as_str().unwrap().to_string();
    let fork_tip = meta["fork"]["tip"].as_str().unwrap().to_string();
    let core = core_with_chain(&exes);
    let core_addr: SocketAddr = format!("127.0.0.1:{}", core.p2p_port).parse().unwrap();
    let a_dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let a = Node::start(oni_config(a_dir.path(), Some(core_addr))).unwrap();
    assert!(wait_tip(&a, &tip));
    let took = started.elapsed();
    let bytes: u64 = fixture("chain.hex").iter().map(|l| l.len() as u64 / 2).sum();
    eprintln!(
        "IBD of 2,100 fixture blocks from bitcoind over loopback: {:.2} s, {:.0} blocks/s, {:.2} MB/s",
        took.as_secs_f64(),
        2100.0 / took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
    let b_dir = tempfile::tempdir().unwrap();
    let b = Node::start(oni_config(b_dir.path(), a.local_addr())).unwrap();
    assert!(wait_tip(&b, &tip), "the second oni did not sync from the first: {:?}", validated_tip(&b));
    // The first stops; the chain grows (Core learns the heavier fork) and only the second hears it.
    a.shutdown();
    for hex in fixture("fork.hex") {
        core.cli(&["submitblock", &hex]).unwrap();
    }
    b.connect(core_addr, Direction::Manual).unwrap();
    assert!(wait_tip(&b, &fork_tip), "the second oni did not follow Core: {:?}", validated_tip(&b));
    // The first restarts, connected only to the second, and catches up from it.
    let a = Node::start(oni_config(a_dir.path(), b.local_addr())).unwrap();
    assert!(wait_tip(&a, &fork_tip), "the first oni did not catch up from the second: {:?}", validated_tip(&a));
    b.shutdown();
    a.shutdown();
}

#[test]
fn kill_9_mid_ibd_loses_nothing_reported_connected() {
    let Some(exes) = CoreExes::find() else { return };
    let core = core_with_chain(&exes);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("data");
    let rpc_port = common::proc::free_port();
    let args: Vec<String> = ["node", "--network", "regtest", "--listen", "127.0.0.1:0", "--max-tip-age", "4000000000"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--datadir".to_string(),
            datadir.display().to_string(),
            "--connect".to_string(),
            format!("127.0.0.1:{}", core.p2p_port),
            "--rpcport".to_string(),
            rpc_port.to_string(),
        ])
        .collect();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_oni"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    // Kill as soon as some blocks are reported connected, mid-sync.
    let reported = wait_for(SYNC_WAIT, || exes.oni_block_count(&datadir, rpc_port).filter(|&n| n >= 200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let reported = reported.expect("oni reported no progress");
    eprintln!("killed after {reported} blocks were reported connected");
    let mut child = spawn();
    let resumed = wait_for(Duration::from_secs(30), || exes.oni_block_count(&datadir, rpc_port));
    let _ = child.kill();
    let _ = child.wait();
    let resumed = resumed.expect("the restarted node answered no getblockcount");
    assert!(resumed >= reported, "reported {reported} before kill -9, {resumed} after restart");
}
