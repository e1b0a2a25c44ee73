//! Blocks cross oni between real Bitcoin Cores (Core A → oni → Core B). Three Bs connect to oni
//! alone: one before oni syncs, one while it syncs, one after (and a fourth B to a second oni
//! that is never in IBD follows its whole catch-up). oni syncs Core A's fixture chain in
//! initial block download and announces nothing; the first block mined on A takes oni out of IBD
//! and every B that is behind hears of the tip and syncs it from oni. Then single blocks, a burst
//! of 20, the fixture's heavier fork (a reorg) and a live reorg on A all reach every B through oni.
//! A second test times one block's trip A → oni → B next to A → Core → B, in the same run.

mod common;

use common::bitcoind::{fixture, Bitcoind, CoreExes};
use common::proc::{wait_for, OniNode};
use oni::node::{Node, NodeConfig, NodeHandle};
use oni::rpc::{RpcConfig, RpcServer};
use oni_systems::chain::{HeaderTree, Ibd};
use oni_systems::components::Direction;
use oni_systems::resources::{AnnounceKind, Metrics};
use oni_systems::wire::Network;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

/// oni in IBD by Core's rule (24 h tip age), listening on loopback, no automatic peers.
fn oni_config(datadir: &std::path::Path) -> NodeConfig {
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.datadir = Some(datadir.to_path_buf());
    cfg.policy.auto_outbound = false;
    cfg.seed = Some(11);
    cfg
}

fn validated(node: &NodeHandle) -> (u32, String) {
    node.with_world(|w| {
        let tree = w.resource::<HeaderTree>();
        let e = tree.entry(tree.validated_tip());
        (e.height, e.hash.to_string())
    })
    .unwrap()
}

fn best(core: &Bitcoind) -> String {
    core.cli(&["getbestblockhash"]).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn height(core: &Bitcoind) -> u64 {
    core.cli(&["getblockcount"]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Mines `n` blocks on `core` (fresh timestamps) paying `raw(<script>)`; returns their hashes.
fn mine_to(core: &Bitcoind, n: u32, script: &str) -> Vec<String> {
    let out = core.cli(&["generatetodescriptor", &n.to_string(), &format!("raw({script})")]).unwrap();
    serde_json::from_str(&out).unwrap()
}

fn mine(core: &Bitcoind, n: u32) -> Vec<String> {
    mine_to(core, n, "51")
}

/// Loads fixture blocks `from..=to` (heights) into `core` by submitblock.
fn submit(core: &Bitcoind, blocks: &[String], from: usize, to: usize) {
    for (i, hex) in blocks.iter().enumerate().take(to).skip(from - 1) {
        let r = core.cli(&["submitblock", hex]).unwrap_or_else(|e| panic!("submitblock {}: {e}", i + 1));
        assert!(r.trim().is_empty() || r.trim() == "inconclusive", "block {} refused: {r}", i + 1);
    }
}

/// Waits until every Core in `bs` has `hash` as its best block; returns how long each took.
fn all_reach(bs: &[(&str, &Bitcoind)], hash: &str, oni: &NodeHandle) -> Vec<Duration> {
    let started = Instant::now();
    bs.iter()
        .map(|(name, b)| {
            let reached = wait_for(WAIT, || (best(b) == hash).then_some(()));
            assert!(
                reached.is_some(),
                "{name} did not reach {hash}: it is at {} ({}); oni is at {:?}\n{name}'s log:\n{}",
                height(b),
                best(b),
                validated(oni),
                tail(&b.proc.output())
            );
            started.elapsed()
        })
        .collect()
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// `getpeerinfo` of oni, through Core's own `bitcoin-cli`.
fn oni_peers(exes: &CoreExes, datadir: &std::path::Path, rpc: &RpcServer) -> Vec<Value> {
    let out = Command::new(&exes.cli)
        .arg("-regtest")
        .arg(format!("-datadir={}", datadir.display()))
        .arg(format!("-rpcport={}", rpc.local_addr().port()))
        .arg("getpeerinfo")
        .output()
        .unwrap();
    assert!(out.status.success(), "bitcoin-cli getpeerinfo against oni: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn core_peers_joined_before_during_and_after_onis_sync_follow_it_through_blocks_bursts_and_reorgs() {
    let Some(exes) = CoreExes::find() else { return };
    let chain = fixture("chain.hex");
    let a = Bitcoind::start(&exes, &["-maxtipage=4000000000".to_string()]);
    submit(&a, &chain, 1, 1_000);
    let a_addr: SocketAddr = format!("127.0.0.1:{}", a.p2p_port).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oni = Node::start(oni_config(dir.path())).unwrap();
    let mut rc = RpcConfig::new(Network::Regtest, Some(dir.path()));
    rc.bind = "127.0.0.1:0".parse().unwrap();
    let rpc = RpcServer::start(&oni, Network::Regtest, rc).unwrap();
    let oni_addr = oni.local_addr().unwrap();
    let b_args = [format!("-connect={oni_addr}")];

    // A second oni that counts any tip as recent (never in IBD), as when the issue was found: its
    // own B4 joins before it syncs and must follow its catch-up, not stop at the first answer.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg2 = oni_config(dir2.path());
    cfg2.max_tip_age_s = Some(4_000_000_000);
    let oni2 = Node::start(cfg2).unwrap();
    let b4 = Bitcoind::start(&exes, &[format!("-connect={}", oni2.local_addr().unwrap())]);

    // B1 joins before oni has anything.
    let b1 = Bitcoind::start(&exes, &b_args);
    let ready = |n: usize| {
        wait_for(WAIT, || {
            (oni.with_world(|w| w.resource::<Metrics>().peers_ready).unwrap() as usize >= n).then_some(())
        })
    };
    assert!(ready(1).is_some(), "B1 never completed its handshake with oni");
    // oni syncs the first 1,000 blocks from A; B2 joins; A gets the other 1,100 and oni follows.
    oni.connect(a_addr, Direction::Manual).unwrap();
    oni2.connect(a_addr, Direction::Manual).unwrap();
    assert!(wait_for(WAIT, || (validated(&oni).0 == 1_000).then_some(())).is_some(), "oni did not sync from A");
    let b2 = Bitcoind::start(&exes, &b_args);
    assert!(ready(3).is_some(), "B2 never completed its handshake with oni");
    submit(&a, &chain, 1_001, 2_100);
    let fixture_tip = best(&a);
    assert!(wait_for(WAIT, || (validated(&oni).1 == fixture_tip).then_some(())).is_some(), "oni did not reach 2,100");
    assert!(wait_for(WAIT, || (validated(&oni2).1 == fixture_tip).then_some(())).is_some(), "oni2 did not reach 2,100");
    let oni2_at_tip = Instant::now();
    all_reach(&[("B4", &b4)], &fixture_tip, &oni2);
    eprintln!("B4 reached the fixture tip {:?} after oni2 (out of IBD) did", oni2_at_tip.elapsed());
    assert!(oni.with_world(|w| w.resource::<Ibd>().active).unwrap(), "the fixture is old: oni is still in IBD");
    // B3 joins after: oni serves headers and blocks in IBD, so B3 syncs by asking.
    let b3 = Bitcoind::start(&exes, &b_args);
    all_reach(&[("B3", &b3)], &fixture_tip, &oni);
    // Nothing was announced during IBD: B1 and B2 still stand where their own questions left them.
    assert!(height(&b1) < 2_100 && height(&b2) < 2_100, "B1 {} B2 {}", height(&b1), height(&b2));
    let announced = |oni: &NodeHandle| {
        oni.with_world(|w| {
            let m = w.resource::<Metrics>();
            (m.block_announcements[AnnounceKind::Headers as usize], m.block_announcements[AnnounceKind::Inv as usize])
        })
        .unwrap()
    };
    assert_eq!(announced(&oni), (0, 0));

    // A reorgs onto the fixture's heavier fork (2,095..=2,101), still old: oni follows, in IBD.
    submit(&a, &fixture("fork.hex"), 1, 7);
    let fork_tip = best(&a);
    assert!(wait_for(WAIT, || (validated(&oni).1 == fork_tip).then_some(())).is_some(), "oni did not reorg");
    all_reach(&[("B4", &b4)], &fork_tip, &oni2);
    oni2.shutdown();
    // The first fresh block ends oni's IBD: every B behind (B3 on the old branch) hears of the tip.
    let fresh = mine(&a, 1).remove(0);
    let took = all_reach(&[("B1", &b1), ("B2", &b2), ("B3", &b3)], &fresh, &oni);
    assert!(!oni.with_world(|w| w.resource::<Ibd>().active).unwrap());
    let (h, i) = announced(&oni);
    assert!(h + i >= 3, "each B was told of the tip: {h} headers, {i} inv announcements");
    eprintln!("IBD over: B1, B2, B3 at the tip {:?} after oni's new tip was mined", took);

    let bs = [("B1", &b1), ("B2", &b2), ("B3", &b3)];
    // Single blocks, one at a time.
    for _ in 0..3 {
        let hash = mine(&a, 1).remove(0);
        all_reach(&bs, &hash, &oni);
    }
    // A burst of 20 at once.
    let burst = mine(&a, 20);
    all_reach(&bs, burst.last().unwrap(), &oni);
    // A live reorg on A: its last two blocks are invalidated and a longer branch mined.
    let tip_height = height(&a);
    let gone = a.cli(&["getblockhash", &(tip_height - 1).to_string()]).unwrap();
    a.cli(&["invalidateblock", gone.trim()]).unwrap();
    // Another payout: the same template would rebuild the invalidated block itself.
    let branch = mine_to(&a, 3, "52");
    assert_eq!(height(&a), tip_height + 1);
    all_reach(&bs, branch.last().unwrap(), &oni);
    // The Bs may have it first: oni announces on the validator's word, its own report waits for
    // the checkpoint that makes the blocks durable.
    let reorged = wait_for(WAIT, || (validated(&oni).1 == *branch.last().unwrap()).then_some(()));
    assert!(reorged.is_some(), "oni's validated tip: {:?}", validated(&oni));

    // Each B knows oni is at the tip (its getpeerinfo of oni); oni tracks every peer's chain.
    let tip = height(&a) as i64;
    for (name, b) in bs {
        let peers = b.peers();
        assert_eq!(peers.len(), 1, "{name} is connected to oni alone");
        assert_eq!(peers[0]["synced_headers"], tip, "{name}'s view of oni");
    }
    let peers = oni_peers(&exes, dir.path(), &rpc);
    let by_addr: BTreeMap<String, &Value> =
        peers.iter().map(|p| (p["addr"].as_str().unwrap().to_string(), p)).collect();
    let from_a = by_addr[&a_addr.to_string()];
    assert_eq!(from_a["synced_headers"], tip, "A announced the tip to oni");
    assert_eq!(from_a["synced_blocks"], tip);
    assert_eq!(peers.len(), 4);
    for p in &peers {
        let (sh, sb) = (p["synced_headers"].as_i64().unwrap(), p["synced_blocks"].as_i64().unwrap());
        assert!(sh > 0 && sb > 0 && sh <= tip && sb <= sh, "tracked for every peer: {p}");
    }
    let m = oni.with_world(|w| w.resource::<Metrics>().clone()).unwrap();
    assert!(m.block_relay_ms.count >= 4, "relay latency recorded for new blocks: {}", m.block_relay_ms.count);
    eprintln!(
        "oni announcements: {} headers, {} inv; block relay (heard → announced) p50 ≤ {:?} ms, max bucket {:?} ms",
        m.block_announcements[AnnounceKind::Headers as usize],
        m.block_announcements[AnnounceKind::Inv as usize],
        m.block_relay_ms.quantile(0.5),
        m.block_relay_ms.quantile(1.0)
    );
    drop(rpc);
    oni.shutdown();
}

/// Every `UpdateTip: new best=<hash>` line of a Core log with its time (µs since the epoch).
fn tip_times(log: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Some(rest) = line.split("UpdateTip: new best=").nth(1) else { continue };
        let hash = rest.split_whitespace().next().unwrap_or_default().to_string();
        let Some(stamp) = line.split_whitespace().next() else { continue };
        if let Some(us) = parse_micros(stamp) {
            out.entry(hash).or_insert(us);
        }
    }
    out
}

/// `2026-12-04T15:39:44.123456Z` as µs since the epoch (days from the civil date, UTC).
fn parse_micros(s: &str) -> Option<i64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.')?;
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let us: i64 = format!("{frac:0<6}")[..6].parse().ok()?;
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000) + us)
}

#[test]
fn a_new_block_crosses_oni_about_as_fast_as_it_crosses_core() {
    let Some(exes) = CoreExes::find() else { return };
    let micros = "-logtimemicros=1".to_string();
    let a = Bitcoind::start(&exes, std::slice::from_ref(&micros));
    mine(&a, 110);
    let a_addr = format!("127.0.0.1:{}", a.p2p_port);
    // The oni binary in its own process, as Core runs in its own.
    let oni = OniNode::start(&["--connect".to_string(), a_addr.clone(), "--norpc".to_string()]);
    let c = Bitcoind::start(&exes, &[format!("-connect={a_addr}"), micros.clone()]);
    let via_oni = Bitcoind::start(&exes, &[format!("-connect={}", oni.addr), micros.clone()]);
    let via_core = Bitcoind::start(&exes, &[format!("-connect=127.0.0.1:{}", c.p2p_port), micros.clone()]);
    let paths = [("A → oni → B", &via_oni), ("A → Core → B", &via_core)];
    let settle = |hash: &str| {
        for (name, b) in paths {
            let reached = wait_for(WAIT, || (best(b) == hash).then_some(()));
            assert!(reached.is_some(), "{name}: B did not get {hash}\noni:\n{}", tail(&oni.output()));
        }
    };
    settle(&best(&a));
    // Warm-up: compact-block high-bandwidth peers get chosen on Core's side, tips become recent.
    for _ in 0..3 {
        let hash = mine(&a, 1).remove(0);
        settle(&hash);
    }
    const BLOCKS: usize = 15;
    let mut hashes = Vec::new();
    for _ in 0..BLOCKS {
        let hash = mine(&a, 1).remove(0);
        settle(&hash);
        hashes.push(hash);
        std::thread::sleep(Duration::from_millis(200));
    }
    let at_a = tip_times(&a.proc.output());
    let mut summary = Vec::new();
    for (name, b) in paths {
        let at_b = tip_times(&b.proc.output());
        // Core may beat A's own UpdateTip: A pushes a compact block before it connects the block.
        let mut ms: Vec<f64> = hashes.iter().map(|h| (at_b[h] - at_a[h]) as f64 / 1000.0).collect();
        ms.sort_by(|x, y| x.total_cmp(y));
        summary.push(format!(
            "{name}: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms over {BLOCKS} blocks",
            ms[BLOCKS / 2],
            ms[BLOCKS * 9 / 10],
            ms[BLOCKS - 1]
        ));
    }
    eprintln!("block relay latency (A's UpdateTip → B's UpdateTip):\n  {}", summary.join("\n  "));
}
