use super::*;
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, ScriptBuf, Sequence, TxIn, Witness};

/// A transaction spending `inputs`, with `outputs` P2WPKH-sized outputs; `salt` makes it unique.
fn tx(inputs: &[OutPoint], outputs: usize, salt: u32) -> Arc<Transaction> {
    Arc::new(Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(salt),
        input: inputs
            .iter()
            .map(|o| TxIn {
                previous_output: *o,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::from_slice(&[vec![1u8; 72], vec![2u8; 33]]),
            })
            .collect(),
        output: (0..outputs)
            .map(|_| TxOut { value: Amount::from_sat(10_000), script_pubkey: ScriptBuf::from_bytes(vec![0u8; 22]) })
            .collect(),
    })
}

fn chain_coin(n: u32) -> OutPoint {
    OutPoint { txid: Txid::from_byte_array([n as u8; 32]), vout: n }
}

fn out(t: &Arc<Transaction>, vout: u32) -> OutPoint {
    OutPoint { txid: t.compute_txid(), vout }
}

#[test]
fn parents_and_children_are_linked_and_package_figures_add_up() {
    let mut pool = Mempool::default();
    let parent = tx(&[chain_coin(1)], 2, 0);
    let child = tx(&[out(&parent, 0)], 1, 1);
    let grandchild = tx(&[out(&child, 0), out(&parent, 1)], 1, 2);
    let p = pool.insert(parent.clone(), 1_000, 100, 0, 1);
    let c = pool.insert(child.clone(), 2_000, 100, 0, 1);
    let g = pool.insert(grandchild.clone(), 3_000, 200, 0, 1);
    assert_eq!(pool.get(&p).unwrap().desc_fee_sat, 6_000);
    assert_eq!(pool.get(&p).unwrap().desc_vsize, 400);
    assert_eq!(pool.get(&c).unwrap().desc_fee_sat, 5_000);
    assert_eq!(pool.ancestors(&g), [p, c].into_iter().collect());
    assert_eq!(pool.descendants(&p), [c, g].into_iter().collect());
    assert_eq!(pool.spender(&out(&parent, 1)), Some(g));
    assert_eq!(pool.output(&out(&parent, 0)).unwrap().value, Amount::from_sat(10_000));
    // Removing the child takes the grandchild; the parent's package shrinks back to itself.
    let gone = pool.remove_with_descendants(&c, Removal::Replaced);
    assert_eq!(gone.iter().map(|t| t.compute_txid()).collect::<Vec<_>>(), vec![c, g]);
    assert_eq!(pool.len(), 1);
    let pe = pool.get(&p).unwrap();
    assert_eq!((pe.desc_fee_sat, pe.desc_vsize, pe.children.len()), (1_000, 100, 0));
    assert_eq!(pool.spender(&out(&parent, 1)), None);
    assert_eq!(pool.total_fee_sat(), 1_000);
    assert_eq!(pool.removed[Removal::Replaced as usize], 2);
    pool.check_invariants();
}

#[test]
fn a_full_pool_evicts_the_lowest_package_feerate_and_raises_its_floor() {
    let one = usage_of(&tx(&[chain_coin(0)], 1, 0));
    let limits = PoolLimits { max_bytes: one * 10, ..PoolLimits::default() };
    let mut pool = Mempool::new(limits);
    // Ten transactions at 1..=10 sat/vB fit.
    for i in 0..10u32 {
        pool.insert(tx(&[chain_coin(i)], 1, i), (i as u64 + 1) * 100, 100, 0, 1);
    }
    assert!(pool.trim(0).is_empty());
    assert_eq!(pool.min_feerate(0), 100, "relay floor while nothing was evicted");
    // A low-fee parent carried by a high-fee child (CPFP) is not the one evicted.
    let poor_parent = tx(&[chain_coin(50)], 1, 50);
    pool.insert(poor_parent.clone(), 10, 100, 0, 1);
    pool.insert(tx(&[out(&poor_parent, 0)], 1, 51), 5_000, 100, 0, 1);
    let evicted = pool.trim(0);
    let rates: Vec<u64> = evicted.iter().map(|t| t.lock_time.to_consensus_u32() as u64).collect();
    assert_eq!(rates, vec![0, 1], "the two cheapest packages (1 and 2 sat/vB) leave");
    assert!(pool.get(&poor_parent.compute_txid()).is_some());
    assert!(pool.usage_bytes() <= pool.limits().max_bytes);
    // The floor is the last evicted package's feerate (2,000 sat/kvB) plus the increment.
    assert_eq!(pool.min_feerate(0), 2_100);
    pool.check_invariants();
}

#[test]
fn the_floor_decays_only_after_a_block_and_halves_per_half_life() {
    let one = usage_of(&tx(&[chain_coin(0)], 1, 0));
    let mut pool = Mempool::new(PoolLimits { max_bytes: one * 2, ..PoolLimits::default() });
    for i in 0..3u32 {
        pool.insert(tx(&[chain_coin(i)], 1, i), 10_000, 100, 0, 1);
    }
    pool.trim(0);
    assert_eq!(pool.min_feerate(0), 100_100);
    let day = ROLLING_FEE_HALFLIFE_MS * 2;
    assert_eq!(pool.min_feerate(day), 100_100, "no block yet: no decay");
    pool.remove_for_block(&[], day);
    // Pool is at least half full: the 12 h half-life applies from the block on.
    let later = pool.min_feerate(day + ROLLING_FEE_HALFLIFE_MS);
    assert!((50_040..=50_060).contains(&later), "halved: {later}");
    // Far later it falls below half the increment and resets to the relay floor.
    assert_eq!(pool.min_feerate(day + 40 * ROLLING_FEE_HALFLIFE_MS), 100);
    pool.check_invariants();
}

#[test]
fn a_block_removes_what_it_confirms_and_what_conflicts_with_it() {
    let mut pool = Mempool::default();
    let parent = tx(&[chain_coin(1)], 1, 0);
    let child = tx(&[out(&parent, 0)], 1, 1);
    let doomed = tx(&[chain_coin(2)], 1, 2);
    let doomed_child = tx(&[out(&doomed, 0)], 1, 3);
    for t in [&parent, &child, &doomed, &doomed_child] {
        pool.insert(t.clone(), 1_000, 100, 0, 1);
    }
    // The block confirms the parent and a different spend of chain_coin(2).
    let coinbase = (*tx(&[OutPoint::null()], 1, 9)).clone();
    let rival = (*tx(&[chain_coin(2)], 1, 99)).clone();
    let conflicted = pool.remove_for_block(&[coinbase, (*parent).clone(), rival], 0);
    assert_eq!(conflicted.len(), 2);
    assert_eq!(pool.len(), 1);
    let c = pool.get(&child.compute_txid()).unwrap();
    assert!(c.parents.is_empty(), "its parent is in the chain now");
    assert_eq!(pool.removed[Removal::Block as usize], 1);
    assert_eq!(pool.removed[Removal::Conflict as usize], 2);
    pool.check_invariants();
}

#[test]
fn replacement_must_pay_more_and_at_a_higher_feerate() {
    let mut pool = Mempool::default();
    let original = tx(&[chain_coin(1)], 1, 0);
    let o = pool.insert(original.clone(), 1_000, 100, 0, 1);
    let child = tx(&[out(&original, 0)], 1, 1);
    pool.insert(child.clone(), 1_000, 100, 0, 1);
    let replacement = tx(&[chain_coin(1)], 1, 2);
    let conflicts = pool.conflicts_of(&replacement);
    assert_eq!(conflicts, [o].into_iter().collect());
    let none = AHashSet::new();
    // Same feerate as the original: refused.
    assert_eq!(pool.check_replacement(1_000, 100, &conflicts, &none), Err(PoolRefusal::FeerateNotHigher));
    // Higher feerate but less than both replaced fees plus 100 sat/kvB × 100 vB.
    assert_eq!(pool.check_replacement(2_009, 100, &conflicts, &none), Err(PoolRefusal::InsufficientFee));
    let evicts = pool.check_replacement(2_010, 100, &conflicts, &none).unwrap();
    assert_eq!(evicts.len(), 2, "the original and its child");
    // Spending the output of what it replaces is refused.
    let ancestors = [o].into_iter().collect();
    assert_eq!(pool.check_replacement(9_999, 100, &conflicts, &ancestors), Err(PoolRefusal::SpendsConflicting));
    pool.check_invariants();
}

#[test]
fn a_replacement_may_evict_at_most_one_hundred() {
    let mut pool = Mempool::default();
    let root = tx(&[chain_coin(1)], 101, 0);
    let r = pool.insert(root.clone(), 1_000, 100, 0, 1);
    for i in 0..99u32 {
        pool.insert(tx(&[out(&root, i)], 1, i + 1), 1_000, 100, 0, 1);
    }
    let conflicts: AHashSet<Txid> = [r].into_iter().collect();
    assert!(pool.check_replacement(1_000_000, 100, &conflicts, &AHashSet::new()).is_ok(), "exactly 100");
    pool.insert(tx(&[out(&root, 99)], 1, 200), 1_000, 100, 0, 1);
    assert_eq!(
        pool.check_replacement(1_000_000, 100, &conflicts, &AHashSet::new()),
        Err(PoolRefusal::TooManyReplacements)
    );
    pool.check_invariants();
}

#[test]
fn chains_stop_at_twenty_five() {
    let mut pool = Mempool::default();
    let mut prev = chain_coin(1);
    let mut last = None;
    for i in 0..25u32 {
        let t = tx(&[prev], 1, i);
        let anc = pool.ancestors_of_inputs(t.input.iter().map(|i| &i.previous_output));
        assert!(pool.check_chain_limits(&anc, &AHashSet::new()).is_ok(), "tx {i}");
        pool.insert(t.clone(), 1_000, 100, 0, 1);
        prev = out(&t, 0);
        last = Some(t);
    }
    let t = tx(&[out(last.as_ref().unwrap(), 0)], 1, 99);
    let anc = pool.ancestors_of_inputs(t.input.iter().map(|i| &i.previous_output));
    assert_eq!(anc.len(), 25);
    assert_eq!(pool.check_chain_limits(&anc, &AHashSet::new()), Err(PoolRefusal::ChainTooLong));
    // Descendant side: a parent with 24 children has 25 in its package; one more is refused.
    let mut pool = Mempool::default();
    let parent = tx(&[chain_coin(2)], 30, 0);
    pool.insert(parent.clone(), 1_000, 100, 0, 1);
    for i in 0..24u32 {
        pool.insert(tx(&[out(&parent, i)], 1, i + 1), 1_000, 100, 0, 1);
    }
    let anc = pool.ancestors_of_inputs([out(&parent, 29)].iter());
    assert_eq!(pool.check_chain_limits(&anc, &AHashSet::new()), Err(PoolRefusal::ChainTooLong));
    pool.check_invariants();
}

#[test]
fn old_transactions_expire_with_their_descendants() {
    let mut pool = Mempool::default();
    let old = tx(&[chain_coin(1)], 1, 0);
    pool.insert(old.clone(), 1_000, 100, 0, 1);
    let expiry = pool.limits().expiry_ms;
    pool.insert(tx(&[out(&old, 0)], 1, 1), 1_000, 100, expiry, 1);
    pool.insert(tx(&[chain_coin(2)], 1, 2), 1_000, 100, expiry, 1);
    assert_eq!(pool.expire(expiry), 0, "exactly at the expiry it stays");
    assert_eq!(pool.expire(expiry + 1), 2);
    assert_eq!(pool.len(), 1);
    pool.check_invariants();
}
