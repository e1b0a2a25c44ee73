//! Transactions cross oni between two real Bitcoin Cores. Core A holds the fixture chain; oni syncs
//! it; Core B syncs from oni alone. A raw peer that negotiated txid relay (no BIP339) announces one
//! fixture transaction by txid and serves it; then Core A gets the rest of the fixture's mempool by
//! `sendrawtransaction` and announces them. oni requests, checks (its coin store, Core's script
//! engine) and relays every one — parents before children — until Core B's mempool equals Core A's.

mod common;

use bitcoin::hashes::Hash;
use common::bitcoind::{core_with_chain, fixture, meta, Bitcoind, CoreExes};
use common::proc::wait_for;
use common::raw::RawPeer;
use oni::node::{Node, NodeConfig, NodeHandle};
use oni_systems::chain::HeaderTree;
use oni_systems::mempool::policy::TxReject;
use oni_systems::mempool::pool::Mempool;
use oni_systems::mempool::CoinsTip;
use oni_systems::resources::Metrics;
use oni_systems::wire::{InvList, InvType, Message, Network, Tx};
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
    cfg.seed = Some(5);
    cfg
}

fn tip_height(node: &NodeHandle) -> u32 {
    node.with_world(|w| {
        let tree = w.resource::<HeaderTree>();
        tree.entry(tree.validated_tip()).height
    })
    .unwrap()
}

fn pool_txids(node: &NodeHandle) -> BTreeSet<String> {
    node.with_world(|w| w.resource::<Mempool>().iter().map(|e| e.txid.to_string()).collect()).unwrap()
}

fn core_pool(core: &Bitcoind) -> BTreeSet<String> {
    let text = core.cli(&["getrawmempool"]).unwrap_or_default();
    serde_json::from_str::<Vec<String>>(&text).unwrap_or_default().into_iter().collect()
}

#[test]
fn fixture_mempool_crosses_oni_from_core_to_core_and_a_txid_relay_peer_is_served_too() {
    let Some(exes) = CoreExes::find() else { return };
    let txs: Vec<bitcoin::Transaction> =
        fixture("mempool.hex").iter().map(|h| bitcoin::consensus::encode::deserialize_hex(h).unwrap()).collect();
    assert_eq!(txs.len() as u64, meta()["mempool"]["count"].as_u64().unwrap());
    let a = core_with_chain(&exes);
    let a_addr: SocketAddr = format!("127.0.0.1:{}", a.p2p_port).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oni = Node::start(oni_config(dir.path(), a_addr)).unwrap();
    assert!(wait_for(WAIT, || (tip_height(&oni) == 2_100).then_some(())).is_some(), "oni did not sync");
    let oni_addr = oni.local_addr().unwrap();
    let b = Bitcoind::start(&exes, &[format!("-connect={oni_addr}"), "-maxtipage=4000000000".to_string()]);
    let synced = wait_for(WAIT, || (b.cli(&["getblockcount"]).ok()?.trim() == "2100").then_some(()));
    assert!(synced.is_some(), "Core B did not sync from oni:\n{}", b.proc.output());

    // A txid-relay peer announces the first transaction (all its inputs are confirmed) by txid.
    let first = &txs[0];
    let mut raw = RawPeer::handshake(oni_addr, false);
    let mut inv = InvList::default();
    inv.push(InvType::TX, first.compute_txid().to_byte_array());
    raw.send(&Message::Inv(inv));
    let asked = raw.wait_for(
        Duration::from_secs(15),
        |m| matches!(m, Message::GetData(l) if l.iter().any(|e| e.hash == first.compute_txid().to_byte_array())),
    );
    let Some(Message::GetData(l)) = asked else { panic!("oni never asked the txid peer for its tx") };
    assert!(l.iter().all(|e| e.kind == InvType::WITNESS_TX), "asked by txid, with witness");
    raw.send(&Message::Tx(Tx::from_bitcoin(first).unwrap()));
    let accepted = wait_for(Duration::from_secs(15), || {
        pool_txids(&oni).contains(&first.compute_txid().to_string()).then_some(())
    });
    assert!(
        accepted.is_some(),
        "the txid peer's tx did not enter oni's pool: {:?}",
        oni.with_world(|w| w.resource::<Metrics>().tx_rejected.clone())
    );

    // Core A gets the whole fixture mempool and announces it; oni passes every one to Core B.
    for (i, tx) in fixture("mempool.hex").iter().enumerate() {
        let r = a.cli(&["sendrawtransaction", tx]);
        assert!(r.is_ok(), "Core A refused fixture tx {i}: {r:?}");
    }
    let want: BTreeSet<String> = txs.iter().map(|t| t.compute_txid().to_string()).collect();
    assert_eq!(core_pool(&a), want);
    let crossed = wait_for(WAIT, || (core_pool(&b) == want).then_some(()));
    let m = oni.with_world(|w| w.resource::<Metrics>().clone()).unwrap();
    assert!(
        crossed.is_some(),
        "Core B's mempool ({} txs) never equalled Core A's ({}); oni holds {}, accepted {}, orphaned {}, rejected {:?}",
        core_pool(&b).len(),
        want.len(),
        pool_txids(&oni).len(),
        m.tx_accepted,
        m.tx_orphaned,
        m.tx_rejected
    );
    assert_eq!(pool_txids(&oni), want);
    assert!(m.tx_forward_ms.count >= 53, "every tx was announced onward");
    // Core → oni → Core over BIP324 v2 both hops (oni dialed A, B dialed oni); the raw peer is v1.
    for core in [&a, &b] {
        let oni_peer = core.peers().into_iter().find(|p| p["subver"].as_str().is_some_and(|s| s.starts_with("/oni:")));
        assert_eq!(oni_peer.map(|p| p["transport_protocol_type"].clone()), Some(serde_json::json!("v2")));
    }
    assert_eq!(m.transports, [1, 2], "one v1 link (the raw peer), two v2 links (the Cores)");
    // The txid peer hears of the others by txid.
    let told = raw
        .wait_for(Duration::from_secs(30), |m| matches!(m, Message::Inv(l) if l.iter().any(|e| e.kind == InvType::TX)));
    assert!(told.is_some(), "the txid-relay peer was told of transactions by txid");

    // Core A mines them: the block reaches oni, which drops every confirmed tx from its pool.
    let mined = a.cli(&["generatetodescriptor", "1", "raw(51)"]).unwrap();
    let mined: Vec<String> = serde_json::from_str(&mined).unwrap();
    assert!(wait_for(WAIT, || (tip_height(&oni) == 2_101).then_some(())).is_some(), "oni did not get the block");
    let emptied = wait_for(Duration::from_secs(30), || pool_txids(&oni).is_empty().then_some(()));
    assert!(emptied.is_some(), "confirmed txs left in oni's pool: {}", pool_txids(&oni).len());
    // Core A abandons that block for a longer chain of empty blocks: oni reorgs, and the
    // disconnected block's transactions come back to its pool.
    a.cli(&["invalidateblock", &mined[0]]).unwrap();
    for _ in 0..2 {
        a.cli(&["generateblock", "raw(51)", "[]"]).unwrap();
    }
    assert!(wait_for(WAIT, || (tip_height(&oni) == 2_102).then_some(())).is_some(), "oni did not follow the reorg");
    let back = wait_for(Duration::from_secs(30), || (pool_txids(&oni) == want).then_some(()));
    assert!(back.is_some(), "after the reorg oni's pool holds {} of {}", pool_txids(&oni).len(), want.len());
    oni.shutdown();
}

/// Sends `tx` from a fresh raw peer; returns whether that peer is still connected afterwards.
fn send_and_see(node: &NodeHandle, tx: &bitcoin::Transaction) -> bool {
    let mut peer = RawPeer::handshake(node.local_addr().unwrap(), true);
    peer.send(&Message::Tx(Tx::from_bitcoin(tx).unwrap()));
    // A ping after it: its pong proves the tx was handled and the connection still stands.
    peer.send(&Message::Ping(77));
    peer.wait_for(Duration::from_secs(5), |m| matches!(m, Message::Pong(77))).is_some()
}

fn rejected(node: &NodeHandle, reason: TxReject) -> u64 {
    node.with_world(move |w| w.resource::<Metrics>().tx_rejected[reason as usize]).unwrap()
}

#[test]
fn rejections_over_the_wire_carry_their_reason_and_cost_the_sender_nothing() {
    let Some(exes) = CoreExes::find() else { return };
    let txs: Vec<bitcoin::Transaction> =
        fixture("mempool.hex").iter().map(|h| bitcoin::consensus::encode::deserialize_hex(h).unwrap()).collect();
    let a = core_with_chain(&exes);
    let dir = tempfile::tempdir().unwrap();
    let oni = Node::start(oni_config(dir.path(), format!("127.0.0.1:{}", a.p2p_port).parse().unwrap())).unwrap();
    assert!(wait_for(WAIT, || (tip_height(&oni) == 2_100).then_some(())).is_some(), "oni did not sync");
    // The coin store follows validation on its own thread; transactions wait until it is there.
    let coins_at_tip =
        wait_for(WAIT, || (oni.with_world(|w| w.resource::<CoinsTip>().0).unwrap() == Some(2_100)).then_some(()));
    assert!(coins_at_tip.is_some(), "the coin store did not reach the tip");
    let tx = txs.iter().find(|t| t.input.iter().all(|i| i.witness.len() == 2)).expect("a P2WPKH-style spend").clone();

    // Policy: none of these costs the sender anything.
    let mut dust = tx.clone();
    dust.output[0].value = bitcoin::Amount::from_sat(1);
    assert!(send_and_see(&oni, &dust), "dust is policy");
    // One dust output is Core's ephemeral-dust allowance, refused here because the tx pays a fee.
    // One dust output is Core's ephemeral-dust allowance, refused here because the tx pays a fee.
    assert_eq!(rejected(&oni, TxReject::Dust) + rejected(&oni, TxReject::DustWithFee), 1);
    let mut version = tx.clone();
    version.version = bitcoin::transaction::Version(4);
    assert!(send_and_see(&oni, &version));
    assert_eq!(rejected(&oni, TxReject::Version), 1);
    // The original enters; a conflicting copy paying less is refused (insufficient fee), unblamed.
    assert!(send_and_see(&oni, &tx));
    assert!(wait_for(Duration::from_secs(10), || pool_txids(&oni)
        .contains(&tx.compute_txid().to_string())
        .then_some(()))
    .is_some());
    let mut rival = tx.clone();
    rival.output[0].value += bitcoin::Amount::from_sat(1);
    assert!(send_and_see(&oni, &rival), "a losing double spend is policy");
    assert_eq!(rejected(&oni, TxReject::InsufficientFee), 1);
    // A child whose parent never comes: an orphan, no blame.
    let child = txs
        .iter()
        .find(|c| {
            c.input.iter().any(|i| {
                txs.iter().any(|p| p.compute_txid() == i.previous_output.txid && p.compute_txid() != tx.compute_txid())
            })
        })
        .unwrap();
    assert!(send_and_see(&oni, child));
    assert!(oni.with_world(|w| w.resource::<Metrics>().tx_orphaned).unwrap() >= 1);

    // Consensus: a broken signature (Core's engine says no) is rejected and counted; as Core since
    // v30, the sender keeps its connection.
    let other = txs
        .iter()
        .find(|t| {
            t.compute_txid() != tx.compute_txid()
                && t.input.iter().all(|i| i.witness.len() == 2)
                && !pool_txids(&oni).contains(&t.compute_txid().to_string())
                && t.input.iter().all(|i| !txs.iter().any(|p| p.compute_txid() == i.previous_output.txid))
        })
        .expect("another confirmed-input spend")
        .clone();
    let mut forged = other.clone();
    let mut items: Vec<Vec<u8>> = forged.input[0].witness.iter().map(|w| w.to_vec()).collect();
    items[0][10] ^= 0x01;
    forged.input[0].witness = bitcoin::Witness::from_slice(&items);
    assert!(send_and_see(&oni, &forged), "a consensus-invalid tx costs its sender nothing");
    let counted =
        wait_for(Duration::from_secs(10), || (rejected(&oni, TxReject::ConsensusScriptFailed) == 1).then_some(()));
    assert!(counted.is_some(), "the forged tx was rejected for its script");
    let m = oni.with_world(|w| w.resource::<Metrics>().clone()).unwrap();
    assert_eq!(m.misbehavior[oni_systems::resources::Misbehavior::InvalidTransaction as usize], 1);
    assert_eq!(m.discouraged, 0);
    // The genuine one still enters: the forged copy's rejection was remembered by wtxid only.
    assert!(send_and_see(&oni, &other));
    assert!(wait_for(Duration::from_secs(10), || pool_txids(&oni)
        .contains(&other.compute_txid().to_string())
        .then_some(()))
    .is_some());
    oni.shutdown();
}
