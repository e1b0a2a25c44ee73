//! The network's chainstate for the pools, shared by every node: the funding coins the
//! transaction pool spends (outputs no block created: the simulator's genesis allocation) and what
//! each mined block created and spent, kept once in a [`Ledger`]. A node sees it through its
//! [`NodeCoins`]: a coin is unspent for it when it was funded or created by a block on its active
//! chain, and no block on that chain spent it — so a node that has not yet connected a block still
//! sees that block's inputs unspent, and a fork is seen as each node's chain says. Scripts are not
//! run (the world's default `SkipScripts`): the funding outputs have no keys.

use ahash::AHashMap;
use bitcoin::{Block, BlockHash, OutPoint};
use oni_systems::mempool::{Coin, CoinView};
use smallvec::SmallVec;
use std::sync::{Arc, Mutex, RwLock};

/// Every node's coins, once.
#[derive(Debug, Default)]
pub struct Ledger {
    funding: AHashMap<OutPoint, Coin>,
    created: AHashMap<OutPoint, (Coin, BlockHash)>,
    spent: AHashMap<OutPoint, SmallVec<[BlockHash; 1]>>,
}

impl Ledger {
    /// A ledger holding `funding` and no block yet.
    pub fn funded(funding: AHashMap<OutPoint, Coin>) -> Self {
        Ledger { funding, ..Default::default() }
    }

    /// Records a mined block at `height`: its outputs (unspendable ones skipped) and its spends.
    pub fn mined(&mut self, block: &Block, height: u32) {
        let hash = block.block_hash();
        for (i, tx) in block.txdata.iter().enumerate() {
            let coinbase = i == 0;
            if !coinbase {
                for input in &tx.input {
                    self.spent.entry(input.previous_output).or_default().push(hash);
                }
            }
            let txid = tx.compute_txid();
            for (vout, output) in tx.output.iter().enumerate() {
                if output.script_pubkey.is_op_return() {
                    continue;
                }
                let coin = Coin { output: output.clone(), height, coinbase };
                self.created.insert(OutPoint { txid, vout: vout as u32 }, (coin, hash));
            }
        }
    }
}

/// One node's view of the [`Ledger`]: the blocks on its active chain decide what it sees.
pub struct NodeCoins {
    ledger: Arc<RwLock<Ledger>>,
    chain: Arc<Mutex<Vec<BlockHash>>>,
}

impl NodeCoins {
    /// A view for a node whose active chain holds none of the ledger's blocks yet, and the handle
    /// the simulator moves its chain with ([`chain_connected`], [`chain_disconnected`]).
    pub fn new(ledger: Arc<RwLock<Ledger>>) -> (NodeCoins, Arc<Mutex<Vec<BlockHash>>>) {
        let chain = Arc::new(Mutex::new(Vec::new()));
        (NodeCoins { ledger, chain: chain.clone() }, chain)
    }
}

/// `hash` joined the node's active chain.
pub fn chain_connected(chain: &Mutex<Vec<BlockHash>>, hash: BlockHash) {
    if let Ok(mut c) = chain.lock() {
        c.push(hash);
    }
}

/// `hash` left the node's active chain.
pub fn chain_disconnected(chain: &Mutex<Vec<BlockHash>>, hash: BlockHash) {
    if let Ok(mut c) = chain.lock() {
        c.retain(|h| *h != hash);
    }
}

impl CoinView for NodeCoins {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        let (Ok(ledger), Ok(chain)) = (self.ledger.read(), self.chain.lock()) else { return None };
        if ledger.spent.get(outpoint).is_some_and(|by| by.iter().any(|b| chain.contains(b))) {
            return None;
        }
        if let Some(c) = ledger.funding.get(outpoint) {
            return Some(c.clone());
        }
        ledger.created.get(outpoint).filter(|(_, b)| chain.contains(b)).map(|(c, _)| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{Amount, ScriptBuf, TxOut, Txid};

    #[test]
    fn a_node_sees_what_its_own_chain_did() {
        let fund = OutPoint { txid: Txid::from_byte_array([1; 32]), vout: 0 };
        let coin = Coin {
            output: TxOut { value: Amount::from_sat(5), script_pubkey: ScriptBuf::new() },
            height: 0,
            coinbase: false,
        };
        let ledger = Arc::new(RwLock::new(Ledger::funded([(fund, coin.clone())].into_iter().collect())));
        let block = super::super::mine::tests::block_spending(fund);
        ledger.write().unwrap().mined(&block, 1);
        let (a, a_chain) = NodeCoins::new(ledger.clone());
        let (b, _) = NodeCoins::new(ledger);
        let made = OutPoint { txid: block.txdata[1].compute_txid(), vout: 0 };
        chain_connected(&a_chain, block.block_hash());
        assert_eq!(a.coin(&fund), None, "spent on a's chain");
        assert!(a.coin(&made).is_some(), "created on a's chain");
        assert_eq!(b.coin(&fund), Some(coin), "b has not connected the block");
        assert_eq!(b.coin(&made), None);
        chain_disconnected(&a_chain, block.block_hash());
        assert!(a.coin(&fund).is_some() && a.coin(&made).is_none(), "a reorg undoes it");
    }
}
