//! The shared transaction pool: for every block to mine, `txs_per_block` standard transactions
//! drawn from the seed, each spending its own funding coin (one input, two P2WPKH outputs, a
//! 1,000-sat fee, a witness of the shape of a signature and a key). They pass every pool check but
//! scripts (not run in the simulator). Made once and shared (`Arc`) by every node's pool and by
//! the blocks that confirm them.

use ahash::AHashMap;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::transaction::Version;
use bitcoin::{absolute, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness};
use oni_systems::mempool::Coin;
use oni_systems::resources::Rng;
use std::sync::Arc;

/// Value of each funding coin.
pub const FUNDING_SAT: u64 = 100_000;
/// Fee each transaction pays.
pub const FEE_SAT: u64 = 1_000;

/// The pool's transactions, block by block, and the coins they spend.
pub struct TxPlan {
    /// The transactions each block will confirm, in block order.
    pub per_block: Vec<Vec<Arc<Transaction>>>,
    /// The coins they spend.
    pub funding: AHashMap<OutPoint, Coin>,
}

fn p2wpkh(rng: &mut Rng) -> ScriptBuf {
    let mut h = [0u8; 20];
    for chunk in h.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
    }
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(h))
}

impl TxPlan {
    /// `txs_per_block` transactions for each of `blocks` blocks, from `seed`.
    pub fn new(seed: u64, blocks: usize, txs_per_block: usize) -> TxPlan {
        let mut rng = Rng::seeded(seed ^ 0x7a5_9001_c0ff_ee00);
        let mut funding = AHashMap::with_capacity(blocks * txs_per_block);
        let mut per_block = Vec::with_capacity(blocks);
        for b in 0..blocks {
            let mut txs = Vec::with_capacity(txs_per_block);
            for i in 0..txs_per_block {
                let id = [seed.to_le_bytes(), (b as u64).to_le_bytes(), (i as u64).to_le_bytes()].concat();
                let prev = OutPoint { txid: Txid::from_raw_hash(sha256d::Hash::hash(&id)), vout: 0 };
                let funded = TxOut { value: Amount::from_sat(FUNDING_SAT), script_pubkey: p2wpkh(&mut rng) };
                funding.insert(prev, Coin { output: funded, height: 0, coinbase: false });
                let mut sig = vec![0x30u8; 71];
                sig[70] = 0x01;
                let mut key = vec![0x02u8; 33];
                key[1..9].copy_from_slice(&rng.next_u64().to_le_bytes());
                let pay = (FUNDING_SAT - FEE_SAT) / 2;
                let tx = Transaction {
                    version: Version::TWO,
                    lock_time: absolute::LockTime::ZERO,
                    input: vec![TxIn {
                        previous_output: prev,
                        script_sig: ScriptBuf::new(),
                        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                        witness: Witness::from_slice(&[sig, key]),
                    }],
                    output: vec![
                        TxOut { value: Amount::from_sat(pay), script_pubkey: p2wpkh(&mut rng) },
                        TxOut { value: Amount::from_sat(FUNDING_SAT - FEE_SAT - pay), script_pubkey: p2wpkh(&mut rng) },
                    ],
                };
                txs.push(Arc::new(tx));
            }
            per_block.push(txs);
        }
        TxPlan { per_block, funding }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::mempool::accept::{accept, AcceptInputs};
    use oni_systems::mempool::policy::PolicyConfig;
    use oni_systems::mempool::pool::Mempool;
    use oni_systems::mempool::{MemoryCoins, SkipScripts};

    #[test]
    fn every_transaction_enters_a_pool_that_knows_its_funding() {
        let plan = TxPlan::new(3, 2, 50);
        let mut coins = MemoryCoins::default();
        for (op, c) in &plan.funding {
            coins.insert(*op, c.clone());
        }
        let policy = PolicyConfig::default();
        let mtp = |_| 0;
        let inputs = AcceptInputs {
            coins: &coins,
            scripts: &SkipScripts,
            policy: &policy,
            tip_height: 1,
            tip_mtp: 0,
            mtp_at: &mtp,
            now_ms: 0,
        };
        let mut pool = Mempool::default();
        for tx in plan.per_block.iter().flatten() {
            let r = accept(&mut pool, tx.clone(), &inputs, false);
            assert!(r.is_ok(), "{r:?}");
        }
        assert_eq!(pool.len(), 100);
        assert_eq!(TxPlan::new(3, 2, 50).per_block, plan.per_block, "the seed decides them");
    }
}
