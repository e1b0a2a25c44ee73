//! The coin follower: a small dedicated thread that applies the validation worker's chain changes
//! to the coin store, in order, and only then tells the world (a [`BlockTxEvent`] with the block's
//! transactions), so the pool never hears of a block its coins do not reflect yet.
//!
//! # Why its own thread
//! Not the world thread: applying a block is disk work (a mainnet block spends and creates
//! thousands of coins, one fsync'd LMDB transaction). Not the validation worker either: that
//! thread is the IBD bottleneck, and the coin writes would add to every block's critical path; on
//! its own thread they overlap with validating the next blocks. The price is that the follower
//! reads each block back from the worker (its control channel, served before the next queued
//! block, and the block is still in the page cache) and lags the verdicts by a block or two. The
//! worker only reports changes once the kernel made them durable (`hold_until_durable`), so the
//! store is never ahead of what the kernel will remember after a kill -9; anything the follower
//! had not applied when the process died is caught up by `reconcile` at the next start.
//!
//! Events that do not fit the store (should not happen: a missed event, a store error) make it
//! reconcile with the kernel's active chain and report what that changed instead. A node without
//! a store (no datadir, tests) still gets the block events, with no coins behind them.

use super::reconcile::{read_block, reconcile, ChainSource};
use super::store::{CoinStore, CoinsError};
use bitcoin::BlockHash;
use oni_systems::chain::ValidationEvent;
use oni_systems::mempool::BlockTxEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Handle to the follower thread; [`CoinFollower::shutdown`] (or drop) stops it.
pub struct CoinFollower {
    changes: Option<flume::Sender<ValidationEvent>>,
    events: flume::Receiver<BlockTxEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CoinFollower {
    /// Starts the thread over `store` (if any), reading blocks from `source`.
    pub fn spawn<S: ChainSource + Send + 'static>(store: Option<CoinStore>, source: S) -> std::io::Result<Self> {
        let (changes, rx) = flume::unbounded();
        let (events_tx, events) = flume::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new().name("oni-coins".into()).spawn(move || {
            let follow = Follow { store, source, events: events_tx };
            for change in rx.iter() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                follow.apply(change);
            }
        })?;
        Ok(CoinFollower { changes: Some(changes), events, stop, thread: Some(thread) })
    }

    /// Hands the follower a worker event; only `Connected`/`Disconnected` concern it.
    pub fn push(&self, event: &ValidationEvent) {
        if matches!(event, ValidationEvent::Connected { .. } | ValidationEvent::Disconnected { .. }) {
            if let Some(tx) = &self.changes {
                let _ = tx.send(*event);
            }
        }
    }

    /// Chain changes applied, for the world's `BlockTxInbox`, in order.
    pub fn events(&self) -> &flume::Receiver<BlockTxEvent> {
        &self.events
    }

    /// Stops after the block being applied (the rest is caught up at the next start).
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.changes = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CoinFollower {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

struct Follow<S> {
    store: Option<CoinStore>,
    source: S,
    events: flume::Sender<BlockTxEvent>,
}

impl<S: ChainSource> Follow<S> {
    fn apply(&self, change: ValidationEvent) {
        let result = match (&self.store, change) {
            (Some(store), ValidationEvent::Connected { hash, height }) => self.connect(store, hash, height),
            (Some(store), ValidationEvent::Disconnected { hash, height }) => self.disconnect(store, hash, height),
            (None, ValidationEvent::Connected { hash, height }) => read_block(&self.source, &hash)
                .map(|b| self.emit(BlockTxEvent::Connected { hash, height, txs: Arc::new(b.txdata) })),
            (None, ValidationEvent::Disconnected { hash, height }) => read_block(&self.source, &hash)
                .map(|b| self.emit(BlockTxEvent::Disconnected { hash, height, txs: Arc::new(b.txdata) })),
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "coin follower could not apply a chain change");
        }
    }

    fn emit(&self, event: BlockTxEvent) {
        let _ = self.events.send(event);
    }

    fn connect(&self, store: &CoinStore, hash: BlockHash, height: u32) -> Result<(), CoinsError> {
        let block = read_block(&self.source, &hash)?;
        match store.connect(&block, height) {
            Ok(_) => {
                self.emit(BlockTxEvent::Connected { hash, height, txs: Arc::new(block.txdata) });
                Ok(())
            }
            // Already applied by an earlier reconcile.
            Err(CoinsError::NotNext { .. }) if store.hash_at(height)? == Some(hash) => Ok(()),
            Err(e) => self.resync(store, e),
        }
    }

    fn disconnect(&self, store: &CoinStore, hash: BlockHash, height: u32) -> Result<(), CoinsError> {
        if store.best()?.hash != hash {
            if store.hash_at(height)? != Some(hash) {
                return Ok(()); // already taken back by an earlier reconcile
            }
            return self.resync(store, CoinsError::Source(format!("disconnect of {hash} below the store's tip")));
        }
        match store.disconnect_tip() {
            Ok(undo) => {
                let txs = read_block(&self.source, &hash).map(|b| b.txdata).unwrap_or_default();
                self.emit(BlockTxEvent::Disconnected { hash, height: undo.height, txs: Arc::new(txs) });
                Ok(())
            }
            Err(e) => self.resync(store, e),
        }
    }

    fn resync(&self, store: &CoinStore, why: CoinsError) -> Result<(), CoinsError> {
        tracing::warn!(error = %why, "coin store out of step with the chain; reconciling with the kernel");
        for event in reconcile(store, &self.source, true)? {
            self.emit(event);
        }
        Ok(())
    }
}
