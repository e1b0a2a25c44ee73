//! Reconciling the coin store with a real kernel holding the fixture chain: an empty store catches
//! up, a store ahead of the kernel on the other branch goes back with its own undo, one whose undo
//! does not reach the fork point is rebuilt, and the kernel's reorg onto the fork is followed with
//! the pool's events in order (tip first out, then the new branch in).

use super::reconcile::reconcile;
use super::store::{ChainPoint, CoinStore, CoinStoreOptions};
use super::store_tests::{assert_same, chain, genesis};
use crate::validation::{BlockValidator, KernelConfig, KernelValidator, ValidationEvent};
use oni_systems::mempool::{BlockTxEvent, MemoryCoins};
use oni_systems::wire::Network;

fn memory(upto: usize, fork: bool) -> MemoryCoins {
    let c = chain();
    let mut m = MemoryCoins::default();
    for (i, b) in c.chain[..upto].iter().enumerate() {
        m.connect(b, i as u32 + 1);
    }
    if fork {
        for (i, b) in c.fork.iter().enumerate() {
            m.connect(b, 2095 + i as u32);
        }
    }
    m
}

/// A store holding the chain up to 2094 and then the fork (2095..2101).
fn store_on_fork(dir: &std::path::Path, options: &CoinStoreOptions) -> CoinStore {
    let store = CoinStore::open_with(dir, genesis(), options).unwrap();
    let c = chain();
    for (i, b) in c.chain[..2094].iter().enumerate() {
        store.connect(b, i as u32 + 1).unwrap();
    }
    for (i, b) in c.fork.iter().enumerate() {
        store.connect(b, 2095 + i as u32).unwrap();
    }
    store
}

#[test]
fn stores_behind_ahead_and_beyond_their_undo_all_end_on_the_kernels_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = KernelConfig::new(Network::Regtest, &dir.path().join("kernel"));
    config.in_memory = true;
    let mut kernel = KernelValidator::open(config).unwrap();
    let c = chain();
    let mut events = Vec::new();
    for b in &c.fixture.chain {
        kernel.submit(b.hash, &b.raw, &mut events);
    }
    let tip = c.fixture.meta.tip_hash().unwrap();
    assert_eq!(kernel.tip().hash, tip);

    // Empty: caught up from the kernel's blocks, reporting each connect.
    let behind = CoinStore::open(&dir.path().join("behind"), genesis()).unwrap();
    let report = reconcile(&behind, &kernel, true).unwrap();
    assert_eq!(report.len(), 2100);
    assert!(
        matches!(report[2099], BlockTxEvent::Connected { hash, height: 2100, ref txs } if hash == tip && !txs.is_empty())
    );
    assert_eq!(behind.best().unwrap(), ChainPoint { hash: tip, height: 2100 });
    assert_eq!(behind.len().unwrap(), 5145);
    assert_same(&behind, &memory(2100, false));
    assert!(reconcile(&behind, &kernel, true).unwrap().is_empty(), "already in step: nothing to do");

    // Ahead on the branch the kernel does not hold active (as after a crash that lost the kernel's
    // last blocks): 7 blocks back with the store's own undo, 6 forward.
    let ahead = store_on_fork(&dir.path().join("ahead"), &CoinStoreOptions::default());
    let report = reconcile(&ahead, &kernel, true).unwrap();
    let disconnected = report.iter().filter(|e| matches!(e, BlockTxEvent::Disconnected { .. })).count();
    assert_eq!((disconnected, report.len()), (7, 13));
    assert_same(&ahead, &memory(2100, false));

    // Its undo does not reach the fork point: rebuilt from genesis, same result.
    let shallow = store_on_fork(
        &dir.path().join("shallow"),
        &CoinStoreOptions { undo_keep_blocks: 3, ..CoinStoreOptions::default() },
    );
    reconcile(&shallow, &kernel, false).unwrap();
    assert_eq!(shallow.best().unwrap(), ChainPoint { hash: tip, height: 2100 });
    assert_same(&shallow, &memory(2100, false));

    // The kernel reorgs onto the heavier fork; the store follows with events in order.
    events.clear();
    for b in &c.fixture.fork {
        kernel.submit(b.hash, &b.raw, &mut events);
    }
    let fork_tip = c.fixture.meta.fork_tip_hash().unwrap();
    assert_eq!(kernel.tip().hash, fork_tip);
    let kernel_order: Vec<(bool, u32)> = events
        .iter()
        .filter_map(|e| match e {
            ValidationEvent::Connected { height, .. } => Some((true, *height)),
            ValidationEvent::Disconnected { height, .. } => Some((false, *height)),
            _ => None,
        })
        .collect();
    let report = reconcile(&behind, &kernel, true).unwrap();
    let store_order: Vec<(bool, u32)> = report
        .iter()
        .map(|e| match e {
            BlockTxEvent::Connected { height, .. } => (true, *height),
            BlockTxEvent::Disconnected { height, .. } => (false, *height),
        })
        .collect();
    assert_eq!(store_order, kernel_order, "the pool hears the reorg as the kernel did it");
    assert!(
        report.iter().all(|e| match e {
            BlockTxEvent::Connected { txs, .. } | BlockTxEvent::Disconnected { txs, .. } => !txs.is_empty(),
        }),
        "every event carries its block's transactions"
    );
    assert_eq!(behind.best().unwrap(), ChainPoint { hash: fork_tip, height: 2101 });
    assert_same(&behind, &memory(2094, true));
}
