//! `testmempoolaccept` of several transactions, as Core tests a package: first the list's shape
//! (count, total weight, no duplicates, parents before children, no two spending one output), then
//! each transaction in order against the pool plus the outputs of the ones before it. Nothing
//! changes. Like Core's test mode, fees are judged per transaction (no package feerate) and the
//! first failure leaves the others unreported.

use ahash::AHashSet;
use bevy_ecs::prelude::*;
use bitcoin::{OutPoint, Transaction, Txid};
use oni_systems::chain::HeaderTree;
use oni_systems::mempool::accept::{accept, AcceptError, AcceptInputs, Accepted, MEMPOOL_HEIGHT};
use oni_systems::mempool::policy::PolicyConfig;
use oni_systems::mempool::pool::Mempool;
use oni_systems::mempool::{ChainCoins, Coin, CoinView, MemoryCoins, Scripts};
use oni_systems::resources::Clock;
use std::sync::Arc;

/// Core's bound on a package's total weight.
pub const MAX_PACKAGE_WEIGHT: u64 = 404_000;

/// What the test of a package found.
pub enum PackageOutcome {
    /// The list is not a package Core would test: its reason, for every row.
    Malformed(&'static str),
    /// Per transaction: its outcome, or `None` when an earlier one failed first.
    Tested(Vec<Option<Result<Accepted, AcceptError>>>),
}

/// Core's `IsWellFormedPackage` (the count was checked by the caller).
fn well_formed(txs: &[Transaction]) -> Result<(), &'static str> {
    let weight: u64 = txs.iter().map(|t| t.weight().to_wu()).sum();
    if weight > MAX_PACKAGE_WEIGHT {
        return Err("package-too-large");
    }
    let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    let mut later: AHashSet<Txid> = txids.iter().copied().collect();
    if later.len() != txs.len() {
        return Err("package-contains-duplicates");
    }
    for (tx, txid) in txs.iter().zip(&txids) {
        if tx.input.iter().any(|i| later.contains(&i.previous_output.txid)) {
            return Err("package-not-sorted");
        }
        later.remove(txid);
    }
    let mut spent: AHashSet<OutPoint> = AHashSet::new();
    if !txs.iter().flat_map(|t| &t.input).all(|i| spent.insert(i.previous_output)) {
        return Err("conflict-in-package");
    }
    Ok(())
}

/// The coins `tx`'s checks ask for: its inputs (from the package's earlier outputs, else the
/// chain) and its own outputs (whether it confirmed already).
fn coins_for(tx: &Transaction, chain: &dyn CoinView, earlier: &[Transaction]) -> MemoryCoins {
    let mut view = MemoryCoins::default();
    for input in &tx.input {
        let prev = input.previous_output;
        let from_package = earlier
            .iter()
            .find(|t| t.compute_txid() == prev.txid)
            .and_then(|t| t.output.get(prev.vout as usize))
            .map(|o| Coin { output: o.clone(), height: MEMPOOL_HEIGHT, coinbase: false });
        if let Some(c) = from_package.or_else(|| chain.coin(&prev)) {
            view.insert(prev, c);
        }
    }
    let txid = tx.compute_txid();
    for vout in 0..tx.output.len() as u32 {
        let own = OutPoint { txid, vout };
        if let Some(c) = chain.coin(&own) {
            view.insert(own, c);
        }
    }
    view
}

/// Tests `txs` (two or more) as one package on `world`, changing nothing.
pub fn test_package(world: &mut World, txs: &[Transaction]) -> PackageOutcome {
    if let Err(reason) = well_formed(txs) {
        return PackageOutcome::Malformed(reason);
    }
    let now_ms = world.resource::<Clock>().now_ms;
    let outcomes = world.resource_scope(|world, mut pool: Mut<Mempool>| {
        let tree = world.resource::<HeaderTree>();
        let tip_height = tree.entry(tree.validated_tip()).height;
        let mtp_of = |h: u32| tree.active_median_time_past(h);
        let chain = &*world.resource::<ChainCoins>().0;
        let mut out: Vec<Option<Result<Accepted, AcceptError>>> = Vec::with_capacity(txs.len());
        for (i, tx) in txs.iter().enumerate() {
            let view = coins_for(tx, chain, &txs[..i]);
            let inputs = AcceptInputs {
                coins: &view,
                scripts: &*world.resource::<Scripts>().0,
                policy: world.resource::<PolicyConfig>(),
                tip_height,
                tip_mtp: tree.active_median_time_past(tip_height),
                mtp_at: &mtp_of,
                now_ms,
            };
            let r = accept(&mut pool, Arc::new(tx.clone()), &inputs, true);
            let failed = r.is_err();
            out.push(Some(r));
            if failed {
                break;
            }
        }
        out
    });
    let mut outcomes = outcomes;
    let failed = outcomes.iter().any(|o| matches!(o, Some(Err(_))));
    if failed {
        // Core reports only the failure.
        for o in outcomes.iter_mut() {
            if matches!(o, Some(Ok(_))) {
                *o = None;
            }
        }
    }
    outcomes.resize_with(txs.len(), || None);
    PackageOutcome::Tested(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    fn tx(spends: &[OutPoint], salt: u8) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: spends
                .iter()
                .map(|p| TxIn {
                    previous_output: *p,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![TxOut { value: Amount::from_sat(1_000 + salt as u64), script_pubkey: ScriptBuf::new() }],
        }
    }

    #[test]
    fn malformed_packages_are_named_as_core_names_them() {
        let a = tx(&[OutPoint { txid: Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros()), vout: 1 }], 1);
        let child = tx(&[OutPoint { txid: a.compute_txid(), vout: 0 }], 2);
        assert_eq!(well_formed(&[a.clone(), child.clone()]), Ok(()));
        assert_eq!(well_formed(&[child.clone(), a.clone()]), Err("package-not-sorted"));
        assert_eq!(well_formed(&[a.clone(), a.clone()]), Err("package-contains-duplicates"));
        let rival = tx(&[OutPoint { txid: a.compute_txid(), vout: 0 }], 3);
        assert_eq!(well_formed(&[a.clone(), child, rival]), Err("conflict-in-package"));
        let heavy: Vec<Transaction> = (0..2)
            .map(|i| {
                let mut t = tx(&[], i);
                t.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x6a; 60_000]);
                t
            })
            .collect();
        assert_eq!(well_formed(&heavy), Err("package-too-large"));
    }
}
