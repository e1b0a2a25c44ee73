//! The follower between a real kernel (in the validation worker) and a real coin store: it applies
//! the worker's chain changes in order and reports each one after applying it, follows the reorg
//! onto the fork, skips changes a reconcile already made, resyncs when a change does not fit, and
//! without a store still reports blocks.

use super::follower::CoinFollower;
use super::store::{ChainPoint, CoinStore};
use super::store_tests::{chain, genesis};
use crate::node::faults::{NodeWarnings, WarningSource};
use crate::validation::{KernelConfig, KernelValidator, SubmitError, ValidationEvent, ValidationWorker, WorkerConfig};
use oni_systems::mempool::BlockTxEvent;
use oni_systems::wire::Network;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

type Worker = ValidationWorker<KernelValidator>;

fn spawn_worker(dir: &std::path::Path) -> Worker {
    let mut config = KernelConfig::new(Network::Regtest, dir);
    config.in_memory = true;
    Worker::spawn(WorkerConfig::default(), move || KernelValidator::open(config)).unwrap()
}

/// Feeds blocks to the worker, handing every event it reports to the followers, until `last`
/// is connected.
fn feed(worker: &Worker, followers: &[&CoinFollower], blocks: &[crate::validation::fixture::FixtureBlock]) {
    let last = blocks[blocks.len() - 1].hash;
    let take = |e: ValidationEvent| {
        for f in followers {
            f.push(&e);
        }
        matches!(e, ValidationEvent::Connected { hash, .. } if hash == last)
    };
    let mut done = false;
    for b in blocks {
        let mut raw = b.raw.clone();
        while let Err(SubmitError::Full { raw: back }) = worker.try_submit(b.hash, raw) {
            raw = back;
            done |= take(worker.events().recv_timeout(WAIT).unwrap());
        }
    }
    while !done {
        done = take(worker.events().recv_timeout(WAIT).unwrap());
    }
}

/// Follower events until one connects `height`.
fn until_connected(f: &CoinFollower, height: u32) -> Vec<BlockTxEvent> {
    let mut out = Vec::new();
    loop {
        let e = f.events().recv_timeout(WAIT).expect("follower went quiet");
        let end = matches!(e, BlockTxEvent::Connected { height: h, .. } if h == height);
        out.push(e);
        if end {
            return out;
        }
    }
}

fn order(events: &[BlockTxEvent]) -> Vec<(bool, u32)> {
    events
        .iter()
        .map(|e| match e {
            BlockTxEvent::Connected { height, .. } => (true, *height),
            BlockTxEvent::Disconnected { height, .. } => (false, *height),
        })
        .collect()
}

#[test]
fn the_follower_applies_the_workers_chain_and_its_reorg_then_reports_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&dir.path().join("kernel"));
    let store = CoinStore::open(&dir.path().join("coins"), genesis()).unwrap();
    let follower = CoinFollower::spawn(Some(store.clone()), worker.chain_reader(), NodeWarnings::default()).unwrap();
    let bare = CoinFollower::spawn(None, worker.chain_reader(), NodeWarnings::default()).unwrap();
    let c = chain();
    feed(&worker, &[&follower, &bare], &c.fixture.chain);
    let events = until_connected(&follower, 2100);
    assert_eq!(order(&events), (1..=2100).map(|h| (true, h)).collect::<Vec<_>>());
    let tip = c.fixture.meta.tip_hash().unwrap();
    assert_eq!(store.best().unwrap(), ChainPoint { hash: tip, height: 2100 }, "applied before reported");
    assert_eq!(store.len().unwrap(), 5145);
    // Without a store the same blocks are reported, with their transactions.
    let bare_events = until_connected(&bare, 2100);
    assert_eq!(bare_events.len(), 2100);
    assert!(
        matches!(&bare_events[2099], BlockTxEvent::Connected { txs, .. } if txs.len() == c.chain[2099].txdata.len())
    );

    // The reorg: out with the store's undo, tip first, then the fork in.
    feed(&worker, &[&follower], &c.fixture.fork);
    let events = until_connected(&follower, 2101);
    let expected: Vec<(bool, u32)> =
        (2095..=2100).rev().map(|h| (false, h)).chain((2095..=2101).map(|h| (true, h))).collect();
    assert_eq!(order(&events), expected);
    assert!(matches!(&events[0], BlockTxEvent::Disconnected { hash, txs, .. }
        if *hash == tip && txs.len() == c.chain[2099].txdata.len()));
    let fork_tip = c.fixture.meta.fork_tip_hash().unwrap();
    assert_eq!(store.best().unwrap(), ChainPoint { hash: fork_tip, height: 2101 });

    // A change already applied is skipped quietly.
    follower.push(&ValidationEvent::Connected { hash: fork_tip, height: 2101 });
    assert!(follower.events().recv_timeout(Duration::from_millis(300)).is_err());

    // A store that missed changes (at 2094, told only of the fork's tip) resyncs with the kernel.
    drop(follower);
    let behind_dir = dir.path().join("behind");
    let behind = CoinStore::open(&behind_dir, genesis()).unwrap();
    for (i, b) in c.chain[..2094].iter().enumerate() {
        behind.connect(b, i as u32 + 1).unwrap();
    }
    let late = CoinFollower::spawn(Some(behind.clone()), worker.chain_reader(), NodeWarnings::default()).unwrap();
    late.push(&ValidationEvent::Connected { hash: fork_tip, height: 2101 });
    let events = until_connected(&late, 2101);
    assert_eq!(order(&events), (2095..=2101).map(|h| (true, h)).collect::<Vec<_>>());
    assert_eq!(behind.best().unwrap(), ChainPoint { hash: fork_tip, height: 2101 });
    assert_eq!(behind.all().unwrap(), store.all().unwrap());
}

/// Waits until `f` holds (at most `WAIT`).
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn failed_coin_writes_are_counted_warned_and_retried_in_order_until_the_store_reaches_the_tip() {
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&dir.path().join("kernel"));
    let store = CoinStore::open(&dir.path().join("coins"), genesis()).unwrap();
    let warnings = NodeWarnings::default();
    let follower = CoinFollower::spawn(Some(store.clone()), worker.chain_reader(), warnings.clone()).unwrap();
    let c = chain();
    // A disk that stays full while 50 blocks are connected.
    store.inject_write_failures(usize::MAX);
    feed(&worker, &[&follower], &c.fixture.chain[..50]);
    // Four attempts at the first change take 0.7 s (100, 200, 400 ms between): time for all 50
    // changes to reach the follower, which holds them behind the first.
    wait_until("four failed attempts", || follower.write_failures() >= 4);
    assert!(warnings.is_set(WarningSource::CoinStore));
    assert!(warnings.list()[0].contains("injected coin store write failure"), "{:?}", warnings.list());
    assert!(follower.events().is_empty(), "nothing reported while the store cannot follow");
    assert_eq!(store.best().unwrap().height, 0);
    // The disk has room again: every change comes out, in order, each after the store made it.
    store.inject_write_failures(0);
    let events = until_connected(&follower, 50);
    assert_eq!(order(&events), (1..=50).map(|h| (true, h)).collect::<Vec<_>>());
    assert_eq!(store.best().unwrap(), ChainPoint { hash: c.fixture.chain[49].hash, height: 50 });
    assert!(warnings.list().is_empty(), "cleared once the held change is applied");
    let failures = follower.write_failures();
    assert!(follower.events().recv_timeout(Duration::from_millis(300)).is_err(), "nothing twice");
    assert_eq!(follower.write_failures(), failures);

    // A fault half way through a resync: the blocks applied before it are reported all the same.
    drop(follower);
    let behind = CoinStore::open(&dir.path().join("behind"), genesis()).unwrap();
    for (i, b) in c.chain[..10].iter().enumerate() {
        behind.connect(b, i as u32 + 1).unwrap();
    }
    let late = CoinFollower::spawn(Some(behind.clone()), worker.chain_reader(), warnings.clone()).unwrap();
    // Write 1 finds the store behind (resync); writes 2..5 apply 11..14; writes 6 and 7 fail.
    behind.inject_write_failures_after(5, 2);
    late.push(&ValidationEvent::Connected { hash: c.fixture.chain[29].hash, height: 30 });
    let events = until_connected(&late, 50);
    assert_eq!(order(&events), (11..=50).map(|h| (true, h)).collect::<Vec<_>>());
    assert_eq!(late.write_failures(), 2);
    assert_eq!(behind.all().unwrap(), store.all().unwrap());
    // Cleared when the held change returns, just after its resync reported the last block.
    wait_until("the warning cleared", || warnings.list().is_empty());
}
