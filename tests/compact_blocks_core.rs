//! BIP152 between real Bitcoin Cores through oni: Core A holds the fixture chain, oni syncs it,
//! Core B syncs from oni alone. After a warm-up block (so every tip is recent and the
//! high-bandwidth choices are made), A gets the fixture mempool but one transaction; it crosses
//! oni to B. A block of those transactions reaches oni as a compact block rebuilt from its pool
//! with no round trip; a block carrying the held-back transaction is finished with
//! getblocktxn/blocktxn; B gets both from oni as compact blocks, with oni in its high-bandwidth
//! set, and asks oni for the held-back transaction too.
//!
//! Then Core's own P2P test peer (`tests/interop/compact_checks.py`, after the cases of Core's
//! p2p_compactblocks.py that apply to a relaying node) runs the same checks against oni and
//! against bitcoind: sendcmpct at handshake, the three high-bandwidth slots, compact blocks and
//! getblocktxn served (and whole blocks past their depths), out-of-range indexes and a bad
//! prefilled index disconnecting, a missing transaction fetched with getblocktxn.

mod common;

use common::bitcoind::{core_with_chain, fixture, Bitcoind, CoreExes};
use common::proc::{python, repo_root, wait_for, Proc};
use oni::node::{Node, NodeConfig, NodeHandle};
use oni_systems::chain::{CompactRelay, HeaderTree};
use oni_systems::mempool::pool::Mempool;
use oni_systems::resources::reasons::CompactOutcome;
use oni_systems::resources::Metrics;
use oni_systems::wire::Network;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

fn oni_config(datadir: &std::path::Path, connect: SocketAddr) -> NodeConfig {
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.datadir = Some(datadir.to_path_buf());
    cfg.max_tip_age_s = Some(4_000_000_000);
    cfg.policy.auto_outbound = false;
    cfg.manual_peers = vec![connect];
    cfg.seed = Some(15);
    cfg
}

fn tip_height(node: &NodeHandle) -> u32 {
    node.with_world(|w| {
        let tree = w.resource::<HeaderTree>();
        tree.entry(tree.validated_tip()).height
    })
    .unwrap()
}

fn metrics(node: &NodeHandle) -> Metrics {
    node.with_world(|w| w.resource::<Metrics>().clone()).unwrap()
}

fn pool_len(node: &NodeHandle) -> usize {
    node.with_world(|w| w.resource::<Mempool>().len()).unwrap()
}

fn core_pool(core: &Bitcoind) -> BTreeSet<String> {
    let text = core.cli(&["getrawmempool"]).unwrap_or_default();
    serde_json::from_str::<Vec<String>>(&text).unwrap_or_default().into_iter().collect()
}

fn count(core: &Bitcoind) -> u64 {
    core.cli(&["getblockcount"]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Core's view of its oni peer.
fn oni_peer(core: &Bitcoind) -> Option<Value> {
    core.peers().into_iter().find(|p| p["subver"].as_str().is_some_and(|s| s.starts_with("/oni:")))
}

fn per_msg(peer: &Value, dir: &str, cmd: &str) -> u64 {
    peer[dir][cmd].as_u64().unwrap_or(0)
}

/// The fixture's mempool transactions, in its order (parents first).
fn fixture_pool() -> Vec<bitcoin::Transaction> {
    fixture("mempool.hex").iter().map(|h| bitcoin::consensus::encode::deserialize_hex(h).unwrap()).collect()
}

/// The first of `txs` whose inputs are all confirmed and that none of the others spends: one
/// that can be mined alone, that nothing else in the pool needs.
fn lone_tx(txs: &[bitcoin::Transaction]) -> usize {
    let ids: BTreeSet<bitcoin::Txid> = txs.iter().map(|t| t.compute_txid()).collect();
    let spent: BTreeSet<bitcoin::Txid> =
        txs.iter().flat_map(|t| t.input.iter().map(|i| i.previous_output.txid)).collect();
    txs.iter()
        .position(|t| {
            !spent.contains(&t.compute_txid()) && t.input.iter().all(|i| !ids.contains(&i.previous_output.txid))
        })
        .expect("the fixture mempool has a lone transaction")
}

#[test]
fn blocks_cross_oni_between_cores_as_compact_blocks_with_and_without_a_round_trip() {
    let Some(exes) = CoreExes::find() else { return };
    let txs = fixture_pool();
    // Hold back one transaction whose inputs are all confirmed and that nothing spends.
    let held = lone_tx(&txs);
    let a = core_with_chain(&exes);
    let a_addr: SocketAddr = format!("127.0.0.1:{}", a.p2p_port).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oni = Node::start(oni_config(dir.path(), a_addr)).unwrap();
    assert!(wait_for(WAIT, || (tip_height(&oni) == 2_100).then_some(())).is_some(), "oni did not sync");
    let oni_addr = oni.local_addr().unwrap();
    let b = Bitcoind::start(&exes, &[format!("-connect={oni_addr}"), "-maxtipage=4000000000".to_string()]);
    assert!(wait_for(WAIT, || (count(&b) == 2_100).then_some(())).is_some(), "B did not sync:\n{}", b.proc.output());

    // Warm-up: a fresh block makes every tip recent; it crosses, and the deliverers become
    // high-bandwidth peers (oni asks A; B asks oni).
    a.cli(&["generatetodescriptor", "1", "raw(51)"]).unwrap();
    let crossed = wait_for(WAIT, || (count(&b) == 2_101).then_some(()));
    assert!(
        crossed.is_some(),
        "warm-up block did not cross: A at {}, oni at {}, B at {}; oni outcomes {:?}, announcements {:?}; B sees oni as {:?}\nB's log:\n{}",
        count(&a),
        tip_height(&oni),
        count(&b),
        metrics(&oni).compact_outcomes,
        metrics(&oni).block_announcements,
        oni_peer(&b),
        b.proc.output().lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    let a_is_hb = wait_for(Duration::from_secs(30), || {
        oni.with_world(|w| (!w.resource::<CompactRelay>().hb_to.is_empty()).then_some(())).ok().flatten()
    });
    assert!(a_is_hb.is_some(), "oni put A in high-bandwidth mode");
    let oni_hb_at_b = wait_for(Duration::from_secs(30), || oni_peer(&b)?["bip152_hb_to"].as_bool()?.then_some(()));
    assert!(oni_hb_at_b.is_some(), "B put oni in high-bandwidth mode: {:?}", oni_peer(&b));
    let a_sees = oni_peer(&a).unwrap();
    assert_eq!(a_sees["bip152_hb_from"], Value::Bool(true), "A knows oni asked it: {a_sees}");

    // The mempool but one crosses A → oni → B.
    for (i, hex) in fixture("mempool.hex").iter().enumerate() {
        if i != held {
            a.cli(&["sendrawtransaction", hex]).unwrap_or_else(|e| panic!("A refused tx {i}: {e}"));
        }
    }
    let want = txs.len() - 1;
    let crossed = wait_for(WAIT, || (core_pool(&b).len() == want && pool_len(&oni) == want).then_some(()));
    assert!(crossed.is_some(), "B holds {} and oni {} of {want}", core_pool(&b).len(), pool_len(&oni));

    // A block of them: rebuilt by oni from its pool, passed on to B compact.
    let before = metrics(&oni);
    // In the fixture's order, parents first (as A accepted them).
    let ids: Vec<String> =
        txs.iter().enumerate().filter(|(i, _)| *i != held).map(|(_, t)| t.compute_txid().to_string()).collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), core_pool(&a));
    let block1 = a.cli(&["generateblock", "raw(51)", &serde_json::to_string(&ids).unwrap()]).unwrap();
    let hash1 = serde_json::from_str::<Value>(&block1).unwrap()["hash"].as_str().unwrap().to_string();
    assert!(wait_for(WAIT, || (count(&b) == 2_102).then_some(())).is_some(), "block 1 did not reach B");
    assert_eq!(b.cli(&["getbestblockhash"]).unwrap().trim(), hash1);
    let m = metrics(&oni);
    let outcome = |m: &Metrics, o: CompactOutcome| m.compact_outcomes[o as usize];
    assert_eq!(outcome(&m, CompactOutcome::NoRoundTrip), outcome(&before, CompactOutcome::NoRoundTrip) + 1);
    assert_eq!(outcome(&m, CompactOutcome::FullFallback), 0, "nothing fetched whole");
    assert!(m.compact_block_bytes.sum > 0);

    // A block with the held-back transaction: oni asks A for it; B asks oni.
    let block2 = a.cli(&["generateblock", "raw(51)", &format!("[\"{}\"]", fixture("mempool.hex")[held])]).unwrap();
    let hash2 = serde_json::from_str::<Value>(&block2).unwrap()["hash"].as_str().unwrap().to_string();
    let reached = wait_for(WAIT, || (count(&b) == 2_103).then_some(()));
    assert!(
        reached.is_some(),
        "block 2 did not reach B: oni at {}, outcomes {:?}, misbehavior {:?}; B sees oni as {:?}",
        tip_height(&oni),
        metrics(&oni).compact_outcomes,
        metrics(&oni).misbehavior,
        oni_peer(&b)
    );
    assert_eq!(b.cli(&["getbestblockhash"]).unwrap().trim(), hash2);
    let m = metrics(&oni);
    assert_eq!(outcome(&m, CompactOutcome::RoundTrip), outcome(&before, CompactOutcome::RoundTrip) + 1);
    assert_eq!(outcome(&m, CompactOutcome::FullFallback), 0);
    assert!(m.blocktxn_served >= 1, "B's getblocktxn was answered");

    // B's own account: oni is high-bandwidth, blocks came compact, one round trip for the held tx.
    let peer = oni_peer(&b).unwrap();
    assert_eq!(peer["bip152_hb_to"], Value::Bool(true));
    assert!(per_msg(&peer, "bytesrecv_per_msg", "cmpctblock") > 0, "B got cmpctblock from oni: {peer}");
    assert!(per_msg(&peer, "bytesrecv_per_msg", "blocktxn") > 0, "B got blocktxn from oni: {peer}");
    assert!(per_msg(&peer, "bytessent_per_msg", "getblocktxn") > 0);
    let peer = oni_peer(&a).unwrap();
    assert!(per_msg(&peer, "bytessent_per_msg", "cmpctblock") > 0, "A sent oni cmpctblock: {peer}");
    assert!(per_msg(&peer, "bytesrecv_per_msg", "getblocktxn") > 0, "oni asked A for the held tx");
    let emptied = wait_for(Duration::from_secs(30), || (pool_len(&oni) == 0).then_some(()));
    assert!(emptied.is_some(), "confirmed txs left in oni's pool: {}", pool_len(&oni));
    oni.shutdown();
}

/// The lines compact_checks.py prints for each check it passed.
const COMPACT_CHECKS: [&str; 9] = [
    "ok sendcmpct_offered",
    "ok high_bandwidth_slots",
    "ok compact_block_served",
    "ok old_compact_block_is_whole",
    "ok getblocktxn_served",
    "ok deep_getblocktxn_is_whole",
    "ok getblocktxn_out_of_bounds",
    "ok round_trip",
    "ok bad_prefilled_index",
];

/// The fixture's hashes the script needs (tip, one below it, 10 below it) and a lone mempool
/// transaction (inputs confirmed, nothing spends it), as its arguments.
fn script_args() -> Vec<String> {
    let chain = fixture("chain.hex");
    let hash_at = |h: usize| {
        let b: bitcoin::Block = bitcoin::consensus::encode::deserialize_hex(&chain[h - 1]).unwrap();
        b.block_hash().to_string()
    };
    let pool = fixture("mempool.hex");
    let lone = lone_tx(&fixture_pool());
    let tip = chain.len();
    vec![
        "--tip-hash".into(),
        hash_at(tip),
        "--tip-height".into(),
        tip.to_string(),
        "--old-hash".into(),
        hash_at(tip - 1),
        "--deep-hash".into(),
        hash_at(tip - 10),
        "--lone-tx".into(),
        pool[lone].clone(),
    ]
}

/// Runs compact_checks.py against `port`; panics with `node_output` unless every check passed.
fn run_compact_checks(py: &std::path::Path, port: u16, node_output: impl Fn() -> String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(py);
    cmd.arg(repo_root().join("tests/interop/compact_checks.py"))
        .args(["--port", &port.to_string()])
        .args(script_args());
    let mut script = Proc::spawn("compact_checks.py", cmd, dir.path().join("checks.log"));
    let status = script.wait_exit(Duration::from_secs(300));
    let out = script.output();
    println!("{out}");
    assert!(status.is_some_and(|s| s.success()), "the checks failed:\n{out}\n--- node output ---\n{}", node_output());
    for check in COMPACT_CHECKS {
        assert!(out.lines().any(|l| l.starts_with(check)), "{check:?} missing:\n{out}");
    }
}

#[test]
fn oni_meets_cores_compact_block_cases_with_cores_reactions() {
    let Some(py) = python() else { return };
    let Some(exes) = CoreExes::find() else { return };
    let a = core_with_chain(&exes);
    let a_addr: SocketAddr = format!("127.0.0.1:{}", a.p2p_port).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oni = Node::start(oni_config(dir.path(), a_addr)).unwrap();
    assert!(wait_for(WAIT, || (tip_height(&oni) == 2_100).then_some(())).is_some(), "oni did not sync");
    let port = oni.local_addr().unwrap().port();
    run_compact_checks(&py, port, || format!("oni metrics: {:?}", metrics(&oni).misbehavior));
    let m = metrics(&oni);
    use oni_systems::resources::Misbehavior;
    assert_eq!(m.misbehavior[Misbehavior::GetBlockTxnOutOfBounds as usize], 1);
    assert_eq!(m.misbehavior[Misbehavior::InvalidCompactBlock as usize], 1);
    assert!(m.compact_outcomes[CompactOutcome::RoundTrip as usize] >= 1);
    oni.shutdown();
}

#[test]
fn the_compact_checks_hold_on_bitcoin_core() {
    let Some(py) = python() else { return };
    let Some(exes) = CoreExes::find() else { return };
    let core = core_with_chain(&exes);
    run_compact_checks(&py, core.p2p_port, || core.proc.output());
}
