use super::*;
use crate::chain::test_vectors::chain_blocks;
use crate::mempool::coins::{MemoryCoins, ScriptFailure, SkipScripts};
use crate::mempool::pool::{Mempool, PoolLimits};
use crate::systems::mempool_relay_tests::fixture_mempool;
use bitcoin::consensus::deserialize;
use bitcoin::{Amount, Block, TxOut};
use std::sync::OnceLock;

fn coins() -> &'static MemoryCoins {
    static C: OnceLock<MemoryCoins> = OnceLock::new();
    C.get_or_init(|| {
        let mut coins = MemoryCoins::default();
        for (i, raw) in chain_blocks().iter().enumerate() {
            let block: Block = deserialize(raw).unwrap();
            coins.connect(&block, i as u32 + 1);
        }
        coins
    })
}

struct FailAll;
impl ScriptVerifier for FailAll {
    fn verify(&self, _tx: &Transaction, _spent: &[TxOut]) -> Result<(), ScriptFailure> {
        Err(ScriptFailure { input: 0, what: "test" })
    }
}

fn run(
    pool: &mut Mempool,
    tx: &Transaction,
    scripts: &dyn ScriptVerifier,
    test_only: bool,
) -> Result<Accepted, AcceptError> {
    let policy = PolicyConfig::default();
    let mtp = |_h: u32| 1_700_000_000i64;
    let inputs = AcceptInputs {
        coins: coins(),
        scripts,
        policy: &policy,
        tip_height: 2_100,
        tip_mtp: 1_800_000_000,
        mtp_at: &mtp,
        now_ms: 0,
    };
    accept(pool, Arc::new(tx.clone()), &inputs, test_only)
}

#[test]
fn cores_mempool_enters_in_file_order_and_a_child_first_is_an_orphan() {
    let txs = fixture_mempool();
    let mut pool = Mempool::default();
    let child_first = txs
        .iter()
        .position(|c| txs.iter().any(|p| c.input.iter().any(|i| i.previous_output.txid == p.compute_txid())))
        .unwrap();
    match run(&mut pool, &txs[child_first], &SkipScripts, false) {
        Err(AcceptError::MissingInputs(parents)) => assert!(!parents.is_empty()),
        other => panic!("expected an orphan, got {other:?}"),
    }
    for tx in txs {
        run(&mut pool, tx, &SkipScripts, false).unwrap();
    }
    assert_eq!(pool.len(), 53);
    pool.check_invariants();
    assert_eq!(
        run(&mut pool, &txs[0], &SkipScripts, false).unwrap_err(),
        AcceptError::Reject(TxReject::AlreadyInMempool)
    );
}

#[test]
fn a_test_only_run_leaves_the_pool_untouched() {
    let mut pool = Mempool::default();
    let done = run(&mut pool, &fixture_mempool()[0], &SkipScripts, true).unwrap();
    assert!(done.fee_sat > 0);
    assert!(pool.is_empty());
}

#[test]
fn failing_scripts_are_consensus_failures_unless_the_witness_was_stripped() {
    let mut pool = Mempool::default();
    let tx = fixture_mempool().iter().find(|t| t.input.iter().all(|i| !i.witness.is_empty())).unwrap().clone();
    assert_eq!(run(&mut pool, &tx, &FailAll, false).unwrap_err(), AcceptError::Reject(TxReject::ConsensusScriptFailed));
    let mut stripped = tx.clone();
    stripped.input.iter_mut().for_each(|i| i.witness.clear());
    let err = run(&mut pool, &stripped, &FailAll, false).unwrap_err();
    assert_eq!(err, AcceptError::Reject(TxReject::WitnessStripped));
    assert!(!TxReject::WitnessStripped.is_consensus());
}

#[test]
fn fees_below_the_relay_floor_or_the_pools_floor_are_refused() {
    let mut pool = Mempool::default();
    let tx = fixture_mempool()[0].clone();
    let fee = run(&mut pool, &tx, &SkipScripts, true).unwrap().fee_sat;
    // Leave one satoshi of fee: under 100 sat/kvB for any real size.
    let mut cheap = tx.clone();
    cheap.output[0].value += Amount::from_sat(fee - 1);
    assert_eq!(
        run(&mut pool, &cheap, &SkipScripts, false).unwrap_err(),
        AcceptError::Reject(TxReject::MinRelayFeeNotMet)
    );
    // Spend more than the inputs: consensus.
    let mut over = tx.clone();
    over.output[0].value += Amount::from_sat(fee + 1);
    let err = run(&mut pool, &over, &SkipScripts, false).unwrap_err();
    assert_eq!(err, AcceptError::Reject(TxReject::InBelowOut));
    assert!(TxReject::InBelowOut.is_consensus());
    // A pool whose floor rose refuses what the relay floor would take.
    let one = crate::mempool::pool::usage_of(&tx);
    let mut small = Mempool::new(PoolLimits { max_bytes: one * 3, ..PoolLimits::default() });
    for t in &fixture_mempool()[..10] {
        let _ = run(&mut small, t, &SkipScripts, false);
    }
    let floor = small.min_feerate(0);
    assert!(floor > 100);
    let low = fixture_mempool()[..10].iter().find(|t| {
        small.get(&t.compute_txid()).is_none() && t.input.iter().all(|i| small.get(&i.previous_output.txid).is_none())
    });
    if let Some(low) = low {
        let err = run(&mut small, low, &SkipScripts, false).unwrap_err();
        assert!(
            matches!(err, AcceptError::Reject(TxReject::MempoolMinFeeNotMet) | AcceptError::MissingInputs(_)),
            "{err:?}"
        );
    }
}

#[test]
fn a_replacement_paying_more_takes_the_originals_place() {
    let mut pool = Mempool::default();
    let tx = fixture_mempool()[0].clone();
    run(&mut pool, &tx, &SkipScripts, false).unwrap();
    // Same inputs, 10,000 sat less output: more fee, higher feerate.
    let mut better = tx.clone();
    better.output[0].value -= Amount::from_sat(10_000);
    let done = run(&mut pool, &better, &SkipScripts, false).unwrap();
    assert_eq!(done.replaced.len(), 1);
    assert!(pool.get(&tx.compute_txid()).is_none());
    assert!(pool.get(&better.compute_txid()).is_some());
    pool.check_invariants();
    // The original cannot come back: it pays less than what now holds its inputs.
    assert_eq!(run(&mut pool, &tx, &SkipScripts, false).unwrap_err(), AcceptError::Reject(TxReject::InsufficientFee));
}
