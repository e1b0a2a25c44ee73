//! Transactions we dropped lately (refused by policy or consensus the first time we saw them, or
//! replaced in the pool), kept for compact block reconstruction: a miner with other policy may
//! still confirm them, and then we need not ask for them. A ring of the newest 100 (Core's
//! `-blockreconstructionextratxn` default), each under 100 kB of memory as Core requires.

use bevy_ecs::prelude::*;
use bitcoin::{Transaction, Wtxid};
use std::collections::VecDeque;
use std::sync::Arc;

/// Transactions kept (Core's DEFAULT_BLOCK_RECONSTRUCTION_EXTRA_TXN).
pub const EXTRA_TXNS_MAX: usize = 100;
/// The most memory one kept transaction may take (Core's bound on `RecursiveDynamicUsage`).
pub const EXTRA_TXN_USAGE_MAX: usize = 100_000;

/// The ring.
#[derive(Resource, Debug, Default)]
pub struct ExtraTxns {
    ring: VecDeque<(Wtxid, Arc<Transaction>)>,
}

impl ExtraTxns {
    /// Keeps `tx`, forgetting the oldest past the bound; a large one is not kept.
    pub fn add(&mut self, tx: Arc<Transaction>) {
        if super::pool::usage_of(&tx) >= EXTRA_TXN_USAGE_MAX {
            return;
        }
        if self.ring.len() == EXTRA_TXNS_MAX {
            self.ring.pop_front();
        }
        self.ring.push_back((tx.compute_wtxid(), tx));
    }

    /// The kept transactions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (Wtxid, &Arc<Transaction>)> {
        self.ring.iter().map(|(w, t)| (*w, t))
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tx::tests::sample_tx;

    #[test]
    fn the_ring_keeps_the_newest_hundred_and_refuses_large_transactions() {
        let mut extra = ExtraTxns::default();
        let txs: Vec<Arc<Transaction>> = (0..150u32)
            .map(|i| {
                let mut t = sample_tx(1, 1, false, 0);
                t.lock_time = bitcoin::absolute::LockTime::from_consensus(i);
                Arc::new(t)
            })
            .collect();
        for t in &txs {
            extra.add(t.clone());
        }
        assert_eq!(extra.len(), EXTRA_TXNS_MAX);
        let kept: Vec<Wtxid> = extra.iter().map(|(w, _)| w).collect();
        let newest: Vec<Wtxid> = txs[50..].iter().map(|t| t.compute_wtxid()).collect();
        assert_eq!(kept, newest);
        let mut big = sample_tx(1, 1, false, 1);
        big.output[0].script_pubkey = bitcoin::ScriptBuf::from_bytes(vec![0x6a; EXTRA_TXN_USAGE_MAX]);
        extra.add(Arc::new(big.clone()));
        assert!(extra.iter().all(|(w, _)| w != big.compute_wtxid()));
    }
}
