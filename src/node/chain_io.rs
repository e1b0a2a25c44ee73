//! The node's chain IO: between ticks it hands the world's newly accepted headers and downloaded
//! blocks to the validation worker (Core's engine through bitcoinkernel, off the world thread),
//! feeds the worker's verdicts back into the world, serves block reads for peers, and keeps the
//! header tree on disk so a restart resumes where it stopped. It also runs the coin follower
//! (`crate::coins`): the node's coin store follows the worker's chain changes, and the pool hears
//! of each block (`BlockTxInbox`) once the store reflects it.

use super::faults::{Backoff, NodeWarnings, WarningSource};
use super::StartError;
use crate::coins::reconcile::reconcile;
use crate::coins::{CoinFollower, CoinStore, CoinStoreHandle, KernelScripts};
use crate::store::Store;
use crate::validation::{
    BlockValidator, KernelConfig, KernelValidator, StructureChecker, ValidationWorker, ValidatorError, WorkerConfig,
};
use bevy_ecs::world::World;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use oni_systems::chain::{
    BlockData, BlockReadInbox, BlockReads, ChainParams, HeaderTree, ValidateBlock, ValidationEvent, ValidationInbox,
    ValidationQueue,
};
use oni_systems::mempool::{BlockTxInbox, ChainCoins, Scripts};
use oni_systems::resources::{Clock, Metrics};
use oni_systems::wire::{sha256d, Network};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

type Worker = ValidationWorker<Box<dyn BlockValidator>>;

/// Headers written in one store transaction at most: after a long fault the held headers go out
/// in transactions of this size (~6 MB of rows each), not all in one.
const HEADER_SAVE_BATCH: usize = 50_000;

/// The validation worker and the reads in progress.
pub(super) struct ChainIo {
    worker: Worker,
    /// Answers to block reads, all on one channel so the loop can wait on it: a peer's block goes
    /// out in the next tick, not a tick interval later.
    read_answers: (flume::Sender<BlockData>, flume::Receiver<BlockData>),
    /// Blocks the worker had no room for yet (the world's bound keeps this short).
    held: VecDeque<ValidateBlock>,
    /// The chain's coins (`<datadir>/coins`); none without a datadir.
    coins: Option<CoinStore>,
    /// Keeps `coins` in step with the worker's chain changes and reports them to the pool.
    follower: CoinFollower,
    /// Where a failing header save (and the follower) shows itself to RPC.
    warnings: NodeWarnings,
    /// Pacing of the header save retries.
    header_backoff: Backoff,
    /// No header save is tried before this (set after a failure).
    header_retry_at: Option<Instant>,
}

impl ChainIo {
    /// Starts the worker: Core's engine with its files under `<datadir>/kernel`, or, for a node
    /// with no datadir (tests), the structure checker. With a datadir the coin store
    /// (`<datadir>/coins`) is reconciled with the kernel's active chain on the worker before the
    /// worker reports ready, so nothing is served from coins out of step with the chain.
    pub(super) fn open(
        network: Network,
        datadir: Option<&Path>,
        warnings: NodeWarnings,
    ) -> Result<ChainIo, StartError> {
        let config = WorkerConfig {
            queue_blocks_max: 1_024,
            queue_bytes_max: 512 << 20,
            // Everything reported connected survives a kill -9 (the kernel has no flush call; its
            // journal does it).
            hold_until_durable: true,
            // Verdicts wait for the checkpoint that makes them durable, and the download window
            // waits for verdicts: a checkpoint is one journal commit (an fsync), so it can come
            // often and keep the window moving.
            checkpoint_blocks: 1_000,
            checkpoint_interval_ms: 100,
        };
        let (worker, coins) = match datadir {
            Some(dir) => {
                let genesis = bitcoin::blockdata::constants::genesis_block(network.to_bitcoin()).block_hash();
                let coins = CoinStore::open_or_reset(&dir.join("coins"), genesis).map_err(StartError::Coins)?;
                let kernel = KernelConfig::new(network, dir);
                let store = coins.clone();
                let worker = Worker::spawn(config, move || {
                    let kernel = KernelValidator::open(kernel)?;
                    let started = std::time::Instant::now();
                    let before = store.best().map_err(|e| ValidatorError::Kernel(e.to_string()))?;
                    reconcile(&store, &kernel, false).map_err(|e| ValidatorError::Kernel(e.to_string()))?;
                    let after = store.best().map_err(|e| ValidatorError::Kernel(e.to_string()))?;
                    tracing::info!(
                        from = before.height,
                        to = after.height,
                        ms = started.elapsed().as_millis() as u64,
                        "coin store reconciled with the kernel's active chain"
                    );
                    Ok(Box::new(kernel) as Box<dyn BlockValidator>)
                })
                .map_err(StartError::Validator)?;
                (worker, Some(coins))
            }
            None => {
                let worker = Worker::spawn(config, move || {
                    Ok(Box::new(StructureChecker::new(network)) as Box<dyn BlockValidator>)
                })
                .map_err(StartError::Validator)?;
                (worker, None)
            }
        };
        let follower =
            CoinFollower::spawn(coins.clone(), worker.chain_reader(), warnings.clone()).map_err(StartError::Runtime)?;
        Ok(ChainIo {
            worker,
            read_answers: flume::unbounded(),
            held: VecDeque::new(),
            coins,
            follower,
            warnings,
            header_backoff: Backoff::default(),
            header_retry_at: None,
        })
    }

    /// Gives the world the pool's chainstate: the coin store as `ChainCoins` (a node without a
    /// datadir keeps the empty in-memory default), Core's script engine as `Scripts`, and the inbox
    /// the follower's block events go to.
    pub(super) fn install(&self, world: &mut World) {
        match &self.coins {
            Some(coins) => {
                let height = coins.best().map(|p| p.height).unwrap_or(0);
                world.insert_resource(oni_systems::mempool::CoinsTip(Some(height)));
                world.insert_resource(ChainCoins(Box::new(coins.clone())));
                world.insert_resource(CoinStoreHandle(coins.clone()));
            }
            None => {
                world.init_resource::<ChainCoins>();
            }
        }
        world.insert_resource(Scripts(Box::new(KernelScripts)));
        world.init_resource::<BlockTxInbox>();
    }

    /// A worker event the world loop took itself: the follower must see it too, in order.
    pub(super) fn forward(&self, event: &ValidationEvent) {
        self.follower.push(event);
    }

    /// Rebuilds the world's header tree from the store and marks the validator's active chain
    /// validated, so the scheduler resumes after the last connected block.
    pub(super) fn restore(&self, world: &mut World, store: Option<&Store>) {
        let now_s = world.resource::<Clock>().unix_s();
        let params = world.resource::<ChainParams>().clone();
        let mut loaded = 0usize;
        if let Some(store) = store {
            let mut tree = world.resource_mut::<HeaderTree>();
            let streamed = store.for_each_header(|raw| {
                let hash = BlockHash::from_byte_array(sha256d(raw));
                if tree.accept_archived(raw, hash, &params, now_s).is_ok() {
                    loaded += 1;
                }
            });
            if let Err(e) = streamed {
                tracing::error!(loaded, "cannot load stored headers: {e}");
            }
        }
        let tip = self.worker.tip();
        let mut path = Vec::new();
        {
            let tree = world.resource::<HeaderTree>();
            let mut cur = tree.get(&tip.hash);
            while let Some(idx) = cur {
                let e = tree.entry(idx);
                if e.height == 0 {
                    break;
                }
                path.push((e.hash, e.height));
                cur = Some(e.parent);
            }
        }
        if tip.height > 0 && path.len() != tip.height as usize {
            tracing::warn!(tip = tip.height, known = path.len(), "stored headers do not reach the validated tip");
        }
        // Marked at once, so whoever reads the world before its first tick sees the restored tip;
        // the events still go through block_download so its own bookkeeping follows.
        {
            let mut tree = world.resource_mut::<HeaderTree>();
            for (hash, _) in path.iter().rev() {
                tree.mark_validated(hash);
            }
        }
        if let Some((_, height)) = path.first() {
            world.resource_mut::<oni_systems::resources::ChainTip>().height = *height as i32;
        }
        let mut inbox = world.resource_mut::<ValidationInbox>();
        for (hash, height) in path.into_iter().rev() {
            inbox.0.push(ValidationEvent::Connected { hash, height });
        }
        tracing::info!(headers = loaded, validated_height = tip.height, "chain state restored");
    }

    /// Before a tick: the worker's verdicts and finished block reads into the world.
    pub(super) fn before_tick(&mut self, world: &mut World) {
        let events: Vec<ValidationEvent> = self.worker.events().try_iter().collect();
        for e in &events {
            if let ValidationEvent::Fatal { what } = e {
                tracing::error!(what, "the validator failed; blocks are no longer validated");
            }
            self.follower.push(e);
        }
        world.resource_mut::<ValidationInbox>().0.extend(events);
        let failures = self.follower.write_failures();
        if world.resource::<Metrics>().coin_store_write_failures != failures {
            world.resource_mut::<Metrics>().coin_store_write_failures = failures;
        }
        let applied: Vec<_> = self.follower.events().try_iter().collect();
        if !applied.is_empty() {
            world.get_resource_or_init::<BlockTxInbox>().0.extend(applied);
        }
        let answers = self.read_answers.1.try_iter();
        world.resource_mut::<BlockReadInbox>().0.extend(answers);
        world.insert_resource(super::progress::ValidatorLoad(self.worker.load()));
    }

    /// After a tick: new headers to the store (first, so the tree can always be rebuilt up to what
    /// the validator holds; while saves fail the tree holds them whole and they are retried),
    /// blocks to validate with the headers they need ahead of them, block reads to start.
    pub(super) fn after_tick(&mut self, world: &mut World, store: Option<&Store>) {
        let blocks = {
            let mut q = world.resource_mut::<ValidationQueue>();
            // The tree lists what it has not archived; the queue's copy is the simulator's.
            q.headers.clear();
            std::mem::take(&mut q.to_validate)
        };
        if let Some(store) = store {
            let unsaved = world.resource::<HeaderTree>().unarchived_len() > 0;
            if unsaved && self.header_retry_at.is_none_or(|at| Instant::now() >= at) {
                self.save_headers(world, store);
            }
        }
        // Blocks go to the validator with the headers they need (`ahead`), whether or not those
        // could be saved: a failing disk must not stop the chain, and the store gets them once
        // it works again.
        self.held.extend(blocks);
        while let Some(mut b) = self.held.pop_front() {
            match self.worker.try_submit_after(&mut b.ahead, b.hash, b.bytes) {
                Ok(()) => {}
                Err(crate::validation::SubmitError::Full { raw }) => {
                    self.held.push_front(ValidateBlock { bytes: raw, ..b });
                    break;
                }
                Err(crate::validation::SubmitError::Closed { .. }) => {
                    tracing::error!("the validation worker is gone; dropping downloaded blocks");
                    self.held.clear();
                    break;
                }
            }
        }
        let reads = std::mem::take(&mut world.resource_mut::<BlockReads>().requests);
        for r in reads {
            let (tx, conn, hash) = (self.read_answers.0.clone(), r.conn, r.hash);
            self.worker.read_block_with(hash, move |bytes| {
                let _ = tx.send(BlockData { conn, hash, bytes });
            });
        }
    }

    /// Writes the tree's unarchived headers, oldest first, [`HEADER_SAVE_BATCH`] to a
    /// transaction; each saved batch is marked archived (the tree drops their version, merkle
    /// root and nonce and reads them back from the store). On a failure the rest stay unsaved,
    /// whole in the tree (40 bytes a header beyond its entry), retried after the backoff, counted
    /// in `header_save_failures` and shown in RPC's warnings until they are all saved.
    fn save_headers(&mut self, world: &mut World, store: &Store) {
        loop {
            let rows: Vec<(u32, [u8; 32], [u8; 80])> = world
                .resource::<HeaderTree>()
                .unarchived(HEADER_SAVE_BATCH)
                .into_iter()
                .map(|(height, hash, raw)| (height, hash.to_byte_array(), raw))
                .collect();
            if rows.is_empty() {
                break;
            }
            if let Err(e) = store.save_headers(&rows) {
                let wait = self.header_backoff.failed();
                self.header_retry_at = Some(Instant::now() + wait);
                world.resource_mut::<Metrics>().header_save_failures += 1;
                let unsaved = world.resource::<HeaderTree>().unarchived_len();
                tracing::error!(
                    unsaved,
                    attempt = self.header_backoff.failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot persist headers (kept in memory and retried): {e}"
                );
                self.warnings.set(
                    WarningSource::HeaderStore,
                    format!(
                        "Cannot save {unsaved} block headers to disk ({e}); they are kept in memory and retried, \
                         and a restart before that succeeds downloads them again"
                    ),
                );
                return;
            }
            world.resource_mut::<HeaderTree>().mark_archived(rows.len());
        }
        self.header_retry_at = None;
        let failed = self.header_backoff.succeeded();
        if failed > 0 {
            self.warnings.clear(WarningSource::HeaderStore);
            tracing::info!(failed_attempts = failed, "held headers saved");
        }
    }

    /// At a clean stop: one last try at headers still unsaved, whatever the backoff says.
    pub(super) fn flush_headers(&mut self, world: &mut World, store: Option<&Store>) {
        if let Some(store) = store {
            self.save_headers(world, store);
        }
    }

    /// Blocks the coin store has applied, for the loop to wait on (the pool hears of them at once).
    pub(super) fn block_events(&self) -> &flume::Receiver<oni_systems::mempool::BlockTxEvent> {
        self.follower.events()
    }

    /// Answers to block reads, for the loop to wait on.
    pub(super) fn read_answers(&self) -> &flume::Receiver<BlockData> {
        &self.read_answers.1
    }

    /// The worker's verdicts, for the loop to wait on.
    pub(super) fn events(&self) -> &flume::Receiver<ValidationEvent> {
        self.worker.events()
    }

    /// Whether verdicts or read answers are waiting (the loop ticks at once then).
    pub(super) fn has_news(&self) -> bool {
        !self.worker.events().is_empty() || !self.follower.events().is_empty() || !self.read_answers.1.is_empty()
    }

    /// Stops the follower (after its current block), then the worker; the kernel flushes as it
    /// closes.
    pub(super) fn shutdown(self) {
        let ChainIo { worker, follower, .. } = self;
        follower.shutdown();
        if let Err(e) = worker.shutdown() {
            tracing::error!("validator shutdown: {e}");
        }
    }
}

#[cfg(test)]
#[path = "chain_io_tests.rs"]
mod tests;
