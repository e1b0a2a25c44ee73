//! The coin store against a real Bitcoin Core: an `oni` process syncing the fixture chain from
//! bitcoind is SIGKILLed mid-sync and its coin store is found at a block boundary of the chain
//! (exactly the coins of that height); restarted in process, oni reconciles, catches up, and its
//! coins equal Core's `gettxoutsetinfo` (5,145 outputs, 14949.08752225 BTC), lookups through the
//! world's `ChainCoins` agree with Core's `gettxout`, and the reorg onto the fork is followed.

mod common;

use bitcoin::consensus::deserialize;
use bitcoin::{Block, OutPoint};
use common::bitcoind::{Bitcoind, CoreExes};
use common::proc::{repo_root, wait_for};
use oni::coins::{ChainPoint, CoinStore, CoinStoreHandle};
use oni::node::{Node, NodeConfig, NodeHandle};
use oni::validation::fixture::Fixture;
use oni_systems::mempool::{ChainCoins, MemoryCoins};
use oni_systems::wire::Network;
use std::net::SocketAddr;
use std::time::Duration;

const SYNC_WAIT: Duration = Duration::from_secs(120);

fn fixture() -> Fixture {
    Fixture::load(&Fixture::default_dir(&repo_root())).unwrap()
}

fn genesis() -> bitcoin::BlockHash {
    bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest).block_hash()
}

/// (txouts, total in satoshis, best block) as Core reports its coins.
fn core_utxos(core: &Bitcoind) -> (u64, u64, String) {
    let info: serde_json::Value = serde_json::from_str(&core.cli(&["gettxoutsetinfo"]).unwrap()).unwrap();
    let total = (info["total_amount"].as_f64().unwrap() * 1e8).round() as u64;
    (info["txouts"].as_u64().unwrap(), total, info["bestblock"].as_str().unwrap().to_string())
}

fn oni_config(datadir: &std::path::Path, connect: SocketAddr) -> NodeConfig {
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.listen = None;
    cfg.datadir = Some(datadir.to_path_buf());
    cfg.max_tip_age_s = Some(4_000_000_000);
    cfg.policy.auto_outbound = false;
    cfg.manual_peers = vec![connect];
    cfg.seed = Some(5);
    cfg
}

/// (best block, coin count, total) of the node's coin store.
fn oni_utxos(node: &NodeHandle) -> (ChainPoint, u64, u64) {
    node.with_world(|w| w.resource::<CoinStoreHandle>().0.stats().unwrap()).unwrap()
}

fn wait_coins_at(node: &NodeHandle, hash: &str) -> bool {
    wait_for(SYNC_WAIT, || (oni_utxos(node).0.hash.to_string() == hash).then_some(())).is_some()
}

#[test]
fn coins_survive_kill_9_at_a_block_boundary_then_match_cores_utxo_set_and_follow_the_reorg() {
    let Some(exes) = CoreExes::find() else { return };
    let fx = fixture();
    let blocks: Vec<Block> = fx.chain.iter().map(|b| deserialize(&b.raw).unwrap()).collect();
    let core = Bitcoind::start(&exes, &["-maxtipage=4000000000".to_string()]);
    for (i, b) in fx.chain.iter().enumerate() {
        let hex: String = b.raw.iter().map(|x| format!("{x:02x}")).collect();
        let r = core.cli(&["submitblock", &hex]).unwrap();
        assert!(r.trim().is_empty(), "block {} refused by Core: {r}", i + 1);
    }
    let core_addr: SocketAddr = format!("127.0.0.1:{}", core.p2p_port).parse().unwrap();

    // An oni process syncs from Core and is SIGKILLed mid-sync.
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("data");
    let rpc_port = common::proc::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oni"))
        .args(["node", "--network", "regtest", "--nolisten", "--max-tip-age", "4000000000", "--datadir"])
        .arg(&datadir)
        .args(["--connect", &core_addr.to_string(), "--rpcport", &rpc_port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reported = wait_for(SYNC_WAIT, || exes.oni_block_count(&datadir, rpc_port).filter(|&n| n >= 300));
    // A checkpoint reports hundreds of blocks connected at once and the coin follower applies them
    // one fsync'd transaction at a time: give it a moment to commit some (the sync of 2,100 blocks
    // is still under way) so the kill lands on a store that has moved.
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(reported.is_some(), "oni reported no progress before the kill");

    // Its coin store is exactly the chain's coins at some height: a block boundary.
    {
        let store = CoinStore::open(&datadir.join("coins"), genesis()).unwrap();
        let best = store.best().unwrap();
        assert!(best.height > 0, "the follower applied nothing before the kill");
        assert_eq!(best.hash, blocks[best.height as usize - 1].block_hash());
        let mut mem = MemoryCoins::default();
        for (i, b) in blocks[..best.height as usize].iter().enumerate() {
            mem.connect(b, i as u32 + 1);
        }
        let all = store.all().unwrap();
        assert_eq!(all.len(), mem.len(), "coin count at height {}", best.height);
        for (op, coin) in all {
            assert_eq!(oni_systems::mempool::CoinView::coin(&mem, &op), Some(coin));
        }
        eprintln!("killed with {reported:?} blocks reported; coin store at {}", best.height);
    } // closed before the node opens it

    // Restarted (in process): reconciled at start, then follows Core to its tip.
    let tip = fx.meta.tip.clone();
    let node = Node::start(oni_config(&datadir, core_addr)).unwrap();
    assert!(wait_coins_at(&node, &tip), "coin store did not reach Core's tip: {:?}", oni_utxos(&node).0);
    let (best, count, total) = oni_utxos(&node);
    assert_eq!(best.height, 2100);
    assert_eq!((count, total, best.hash.to_string()), core_utxos(&core), "gettxoutsetinfo");
    assert_eq!((count, total), (5145, fx.meta.utxo_total_sat().unwrap()));

    // The world's ChainCoins is the store: the tip's coinbase as Core's gettxout has it.
    let coinbase = OutPoint { txid: blocks[2099].txdata[0].compute_txid(), vout: 0 };
    let coin = node.with_world(move |w| w.resource::<ChainCoins>().0.coin(&coinbase)).unwrap().unwrap();
    let core_coin: serde_json::Value =
        serde_json::from_str(&core.cli(&["gettxout", &coinbase.txid.to_string(), "0"]).unwrap()).unwrap();
    assert_eq!(coin.output.value.to_sat(), (core_coin["value"].as_f64().unwrap() * 1e8).round() as u64);
    assert!(coin.coinbase && coin.height == 2100);
    assert_eq!(core_coin["coinbase"], serde_json::Value::Bool(true));

    // Core reorgs onto the heavier fork; oni's coins follow, disconnecting with their own undo.
    for b in &fx.fork {
        let hex: String = b.raw.iter().map(|x| format!("{x:02x}")).collect();
        let r = core.cli(&["submitblock", &hex]).unwrap();
        assert!(r.trim().is_empty() || r.trim() == "inconclusive", "fork block refused: {r}");
    }
    assert!(wait_coins_at(&node, &fx.meta.fork.tip), "coins did not follow the fork: {:?}", oni_utxos(&node).0);
    let (best, count, total) = oni_utxos(&node);
    assert_eq!(best.height, 2101);
    assert_eq!((count, total, best.hash.to_string()), core_utxos(&core), "gettxoutsetinfo after the reorg");
    assert!(
        node.with_world(move |w| w.resource::<ChainCoins>().0.coin(&coinbase)).unwrap().is_none(),
        "the old tip's coinbase left with its block"
    );
    node.shutdown();
}
