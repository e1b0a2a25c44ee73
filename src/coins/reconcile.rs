//! Bringing the coin store onto the kernel's active chain: disconnect with the store's own undo
//! back to the last block both share, then connect forward with blocks read from the kernel. Run at
//! node start before anything is served (the store may be behind the kernel, ahead of it after a
//! crash, or on a branch the kernel left) and by the follower when an event does not fit.
//!
//! When the store's undo does not reach the fork point (a reorg deeper than the undo kept, or a
//! damaged record) the store is emptied and rebuilt from genesis: slow, but always correct, since
//! the kernel holds every block of its active chain.

use super::store::{CoinStore, CoinsError};
use crate::validation::{BlockValidator, ChainReader, KernelValidator};
use bitcoin::consensus::deserialize;
use bitcoin::{Block, BlockHash, Transaction};
use oni_systems::mempool::BlockTxEvent;
use std::sync::Arc;

/// Where the active chain comes from: the kernel, directly or through the validation worker.
pub trait ChainSource {
    /// Height of the active chain's tip.
    fn tip_height(&self) -> u32;
    /// Hash of the active chain's block at `height` (genesis at 0).
    fn hash_at(&self, height: u32) -> Option<BlockHash>;
    /// A block's raw bytes.
    fn block(&self, hash: &BlockHash) -> Option<Vec<u8>>;
}

impl ChainSource for KernelValidator {
    fn tip_height(&self) -> u32 {
        self.tip().height
    }
    fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.block_hash_at(height)
    }
    fn block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        self.read_block(hash)
    }
}

impl ChainSource for ChainReader {
    fn tip_height(&self) -> u32 {
        self.tip().height
    }
    fn hash_at(&self, height: u32) -> Option<BlockHash> {
        ChainReader::hash_at(self, height)
    }
    fn block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        self.read_block(*hash)
    }
}

/// A block from the source, decoded.
pub fn read_block(source: &dyn ChainSource, hash: &BlockHash) -> Result<Block, CoinsError> {
    let raw = source.block(hash).ok_or_else(|| CoinsError::Source(format!("block {hash} unavailable")))?;
    deserialize(&raw).map_err(|e| CoinsError::Source(format!("block {hash} undecodable: {e}")))
}

fn txs_of(source: &dyn ChainSource, hash: &BlockHash) -> Arc<Vec<Transaction>> {
    match read_block(source, hash) {
        Ok(b) => Arc::new(b.txdata),
        Err(e) => {
            tracing::warn!(error = %e, "disconnected block's transactions unavailable");
            Arc::new(Vec::new())
        }
    }
}

/// Passes through the whole walk before giving up (the chain moved under us each time).
const ROUNDS_MAX: usize = 8;

/// Moves `store` onto `source`'s active chain. With `report`, returns what changed as the pool's
/// events (disconnects tip first, then connects), with each block's transactions. On an error the
/// changes made before it stay made and their events are lost with the `Err`: callers that must
/// not lose events use [`reconcile_each`].
pub fn reconcile(store: &CoinStore, source: &dyn ChainSource, report: bool) -> Result<Vec<BlockTxEvent>, CoinsError> {
    let mut events = Vec::new();
    let mut push = |e| events.push(e);
    reconcile_each(store, source, report.then_some(&mut push as &mut dyn FnMut(BlockTxEvent)))?;
    Ok(events)
}

/// [`reconcile`], handing each change's event to `emit` as soon as the store has made it (each
/// change is its own durable transaction), so a write that fails half way loses no event: the
/// ones before it are out, and a later call reports from where the store stopped.
pub fn reconcile_each(
    store: &CoinStore,
    source: &dyn ChainSource,
    mut emit: Option<&mut dyn FnMut(BlockTxEvent)>,
) -> Result<(), CoinsError> {
    for _ in 0..ROUNDS_MAX {
        let tip = source.tip_height();
        // Back to the last block the source's active chain shares.
        loop {
            let best = store.best()?;
            if best.height <= tip && source.hash_at(best.height) == Some(best.hash) {
                break;
            }
            match store.disconnect_tip() {
                Ok(undo) => {
                    if let Some(emit) = emit.as_mut() {
                        let txs = txs_of(source, &undo.hash);
                        emit(BlockTxEvent::Disconnected { hash: undo.hash, height: undo.height, txs });
                    }
                }
                Err(e @ (CoinsError::UndoMissing { .. } | CoinsError::Corrupt(_))) => {
                    tracing::warn!(error = %e, "coin store cannot reach the fork point; rebuilding it from genesis");
                    store.wipe()?;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        // Forward along the source's chain.
        let mut moved = false;
        let from = store.best()?.height + 1;
        for height in from..=tip {
            let Some(hash) = source.hash_at(height) else {
                moved = true;
                break;
            };
            let block = read_block(source, &hash)?;
            match store.connect(&block, height) {
                Ok(_) => {
                    if let Some(emit) = emit.as_mut() {
                        emit(BlockTxEvent::Connected { hash, height, txs: Arc::new(block.txdata) });
                    }
                }
                Err(CoinsError::NotNext { .. }) => {
                    moved = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let best = store.best()?;
        if !moved && source.hash_at(best.height) == Some(best.hash) {
            return Ok(());
        }
    }
    Err(CoinsError::Source("the active chain kept moving while the coin store followed it".into()))
}
