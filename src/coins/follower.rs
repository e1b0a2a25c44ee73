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
//! Events that do not fit the store (should not happen: a missed event) make it reconcile with the
//! kernel's active chain and report what that changed instead. A node without a store (no
//! datadir, tests) still gets the block events, with no coins behind them.
//!
//! # Faults lose nothing
//! A change that cannot be applied (a full disk or LMDB map, any LMDB error, a block the kernel
//! cannot read back) is not dropped: the follower keeps it and tries it again, waiting
//! [`Backoff`]'s 100 ms doubling to 5 s in between, and later changes wait behind it in the
//! channel, so order holds. Meanwhile every failed attempt is logged and counted
//! ([`CoinFollower::write_failures`], exported as `oni_coin_store_write_failures_total`) and a
//! warning is up in RPC (`getblockchaininfo.warnings`); the first success clears it. A change is
//! one LMDB transaction, so a failed attempt changed nothing; a reconcile that fails half way has
//! already reported the blocks it applied (`reconcile_each`), and the retry goes on from there.

use super::reconcile::{read_block, reconcile_each, ChainSource};
use super::store::{CoinStore, CoinsError};
use crate::node::faults::{Backoff, NodeWarnings, WarningSource};
use bitcoin::BlockHash;
use oni_systems::chain::ValidationEvent;
use oni_systems::mempool::BlockTxEvent;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Handle to the follower thread; [`CoinFollower::shutdown`] (or drop) stops it.
pub struct CoinFollower {
    changes: Option<flume::Sender<ValidationEvent>>,
    events: flume::Receiver<BlockTxEvent>,
    stop: Arc<AtomicBool>,
    /// Dropped at shutdown: wakes the thread out of a wait between two attempts.
    wake: Option<flume::Sender<()>>,
    failures: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl CoinFollower {
    /// Starts the thread over `store` (if any), reading blocks from `source`; a change it cannot
    /// apply yet raises a [`WarningSource::CoinStore`] warning in `warnings` while it is retried.
    pub fn spawn<S: ChainSource + Send + 'static>(
        store: Option<CoinStore>,
        source: S,
        warnings: NodeWarnings,
    ) -> std::io::Result<Self> {
        let (changes, rx) = flume::unbounded();
        let (events_tx, events) = flume::unbounded();
        let (wake, woken) = flume::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let stop_flag = stop.clone();
        let failed = failures.clone();
        let thread = std::thread::Builder::new().name("oni-coins".into()).spawn(move || {
            let mut follow =
                Follow { store, source, events: events_tx, warnings, failures: failed, backoff: Backoff::default() };
            for change in rx.iter() {
                if stop_flag.load(Ordering::SeqCst) || !follow.apply_until_done(change, &woken) {
                    break;
                }
            }
        })?;
        Ok(CoinFollower { changes: Some(changes), events, stop, wake: Some(wake), failures, thread: Some(thread) })
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

    /// Attempts at a chain change that failed since start (each is retried until it succeeds),
    /// for the node's metrics.
    pub fn write_failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// Stops after the block being applied, or at once while waiting to retry one (what was not
    /// applied is caught up by `reconcile` at the next start).
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.changes = None;
        self.wake = None;
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
    warnings: NodeWarnings,
    failures: Arc<AtomicU64>,
    backoff: Backoff,
}

impl<S: ChainSource> Follow<S> {
    /// Applies `change`, retrying with backoff until it succeeds; false when told to stop first.
    fn apply_until_done(&mut self, change: ValidationEvent, woken: &flume::Receiver<()>) -> bool {
        loop {
            match self.apply(change) {
                Ok(()) => {
                    let failed = self.backoff.succeeded();
                    if failed > 0 {
                        self.warnings.clear(WarningSource::CoinStore);
                        tracing::info!(
                            failed_attempts = failed,
                            "coin follower applied the held chain change; the pool follows the chain again"
                        );
                    }
                    return true;
                }
                Err(e) => {
                    let wait = self.backoff.failed();
                    self.failures.fetch_add(1, Ordering::SeqCst);
                    tracing::error!(
                        error = %e,
                        attempt = self.backoff.failures,
                        retry_in_ms = wait.as_millis() as u64,
                        "coin follower could not apply a chain change; kept and retried, later changes wait behind it"
                    );
                    self.warnings.set(
                        WarningSource::CoinStore,
                        format!(
                            "Cannot apply a chain change to the coin store ({e}); it is kept and retried, and the \
                             mempool does not follow the chain until it succeeds"
                        ),
                    );
                    if woken.recv_timeout(wait) != Err(flume::RecvTimeoutError::Timeout) {
                        return false;
                    }
                }
            }
        }
    }

    fn apply(&self, change: ValidationEvent) -> Result<(), CoinsError> {
        match (&self.store, change) {
            (Some(store), ValidationEvent::Connected { hash, height }) => self.connect(store, hash, height),
            (Some(store), ValidationEvent::Disconnected { hash, height }) => self.disconnect(store, hash, height),
            (None, ValidationEvent::Connected { hash, height }) => read_block(&self.source, &hash)
                .map(|b| self.emit(BlockTxEvent::Connected { hash, height, txs: Arc::new(b.txdata) })),
            (None, ValidationEvent::Disconnected { hash, height }) => read_block(&self.source, &hash)
                .map(|b| self.emit(BlockTxEvent::Disconnected { hash, height, txs: Arc::new(b.txdata) })),
            _ => Ok(()),
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
            // Nothing was written: the same change is tried again.
            Err(e) if e.is_io() => Err(e),
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
            Err(e) if e.is_io() => Err(e),
            Err(e) => self.resync(store, e),
        }
    }

    fn resync(&self, store: &CoinStore, why: CoinsError) -> Result<(), CoinsError> {
        tracing::warn!(error = %why, "coin store out of step with the chain; reconciling with the kernel");
        // Each applied block is reported at once: a failure half way loses none of them.
        reconcile_each(store, &self.source, Some(&mut |event| self.emit(event)))
    }
}
