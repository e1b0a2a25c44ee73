//! The boundary between the pool and the chainstate. The pool asks for unspent outputs of the
//! active chain through [`CoinView`] and for script verdicts through [`ScriptVerifier`]; the shell
//! answers from its coin store and Bitcoin Core's engine, tests and the simulator from
//! [`MemoryCoins`] and [`SkipScripts`]. Blocks that join or leave the active chain reach the pool
//! as [`BlockTxEvent`]s, after the coin store applied them, so coins and pool agree.

use ahash::AHashMap;
use bevy_ecs::prelude::*;
use bitcoin::{Block, BlockHash, OutPoint, Transaction, TxOut};
use std::sync::Arc;

/// An unspent output with what the pool's rules need besides the output: its height (coinbase
/// maturity, relative lock-times) and whether a coinbase made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The output.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Created by a coinbase (spendable 100 blocks later).
    pub coinbase: bool,
}

/// Unspent outputs of the active chain's tip. Read-only: the shell's coin store is written by the
/// chain side, never by the pool.
pub trait CoinView: Send + Sync + 'static {
    /// The unspent output at `outpoint`, if the active chain has it.
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin>;
}

/// The world's handle on the chain's coins.
#[derive(Resource)]
pub struct ChainCoins(pub Box<dyn CoinView>);

impl Default for ChainCoins {
    fn default() -> Self {
        ChainCoins(Box::new(MemoryCoins::default()))
    }
}

/// Why scripts failed. Only consensus rules are checked by the engine, so a failure is a consensus
/// failure unless `witness_stripped` says the witness was missing (then the sender may have relayed
/// a stripped copy of a valid transaction, and is not blamed, as in Core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptFailure {
    /// Index of the failing input.
    pub input: usize,
    /// A short, static description from the engine.
    pub what: &'static str,
}

/// Verifies every input's scripts of `tx` against the outputs it spends (`spent[i]` for input i).
pub trait ScriptVerifier: Send + Sync + 'static {
    /// `Ok` when every input's scripts pass the consensus rules active at the tip.
    fn verify(&self, tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptFailure>;
}

/// The world's script verifier.
#[derive(Resource)]
pub struct Scripts(pub Box<dyn ScriptVerifier>);

impl Default for Scripts {
    fn default() -> Self {
        Scripts(Box::new(SkipScripts))
    }
}

/// Accepts every script: for the simulator and tests whose transactions carry no real signatures.
/// The node never runs with it (the shell installs the engine).
pub struct SkipScripts;

impl ScriptVerifier for SkipScripts {
    fn verify(&self, _tx: &Transaction, _spent: &[TxOut]) -> Result<(), ScriptFailure> {
        Ok(())
    }
}

/// A block joined or left the active chain; the coin store already reflects it.
#[derive(Clone, Debug)]
pub enum BlockTxEvent {
    /// Connected at `height`: its transactions leave the pool, and so do the pool's conflicts.
    Connected {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its transactions, coinbase first.
        txs: Arc<Vec<Transaction>>,
    },
    /// Disconnected in a reorg (tip first): its transactions (but the coinbase) may return.
    Disconnected {
        /// The block.
        hash: BlockHash,
        /// The height it had.
        height: u32,
        /// Its transactions, coinbase first.
        txs: Arc<Vec<Transaction>>,
    },
}

/// Height the coins stand at, when a shell keeps them apart from the header tree (its coin store
/// follows block validation on its own thread and may lag). `None`: the coins follow the validated
/// tip exactly (tests, the simulator). While they lag, received transactions wait in the intake —
/// checked against older coins they would look like orphans.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct CoinsTip(pub Option<u32>);

/// Chain changes waiting for the pool, in the order applied; filled by the shell (or a test),
/// drained by the mempool system each tick.
#[derive(Resource, Debug, Default)]
pub struct BlockTxInbox(pub Vec<BlockTxEvent>);

/// Coins in memory, kept by applying blocks: the simulator's and tests' chainstate.
#[derive(Debug, Default)]
pub struct MemoryCoins {
    map: AHashMap<OutPoint, Coin>,
}

impl MemoryCoins {
    /// Adds one coin (tests).
    pub fn insert(&mut self, outpoint: OutPoint, coin: Coin) {
        self.map.insert(outpoint, coin);
    }

    /// Applies a connected block: spends its inputs, adds its outputs (unspendable ones skipped).
    pub fn connect(&mut self, block: &Block, height: u32) {
        for (i, tx) in block.txdata.iter().enumerate() {
            let coinbase = i == 0;
            if !coinbase {
                for input in &tx.input {
                    self.map.remove(&input.previous_output);
                }
            }
            let txid = tx.compute_txid();
            for (vout, output) in tx.output.iter().enumerate() {
                if output.script_pubkey.is_op_return() {
                    continue;
                }
                let outpoint = OutPoint { txid, vout: vout as u32 };
                self.map.insert(outpoint, Coin { output: output.clone(), height, coinbase });
            }
        }
    }

    /// Number of unspent outputs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no coin is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl CoinView for MemoryCoins {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.map.get(outpoint).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::consensus::deserialize;

    #[test]
    fn connecting_the_fixture_chain_leaves_cores_unspent_output_count() {
        let mut coins = MemoryCoins::default();
        for (i, raw) in crate::chain::test_vectors::chain_blocks().iter().enumerate() {
            let block: Block = deserialize(raw).unwrap();
            coins.connect(&block, i as u32 + 1);
        }
        // meta.json's utxo_txouts, from Core's gettxoutsetinfo (which skips unspendable outputs).
        assert_eq!(coins.len(), 5145);
    }
}
