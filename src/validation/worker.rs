//! The validation worker: a std thread that owns a [`BlockValidator`], fed blocks through a
//! bounded queue and answering through a flume channel of [`ValidationEvent`]s that the node loop
//! turns into world events.
//!
//! - **Backpressure.** The queue is bounded in blocks (the channel's capacity) and in bytes (a
//!   counter checked on submit; one block is always admitted into an empty queue, so a block larger
//!   than the byte bound cannot wedge it). A block counts until its validation has finished, so the
//!   world sees work in progress too. Over either bound [`ValidationWorker::try_submit`] hands the
//!   block back and the scheduler stops requesting until [`ValidationWorker::has_room`].
//! - **Queries** (read a block to serve it, a header, force a checkpoint) go through a separate
//!   control channel that the thread always empties before taking the next block, so serving
//!   waits for at most the block being validated, not for the queue.
//! - **Durability.** After [`WorkerConfig::checkpoint_blocks`] chain changes or
//!   [`WorkerConfig::checkpoint_interval_ms`] since the last checkpoint (whichever first, also when
//!   idle), the worker checkpoints the validator and emits [`ValidationEvent::Durable`]. With
//!   [`WorkerConfig::hold_until_durable`] it also holds `Connected`/`Disconnected` back until the
//!   checkpoint that covers them, so every block reported connected survives a kill -9; the new
//!   tip itself goes out at once as [`ValidationEvent::Tip`], for block announcements, and each
//!   block as [`ValidationEvent::Taken`] once processed, so the world's bound on blocks waiting
//!   in memory does not also count verdicts waiting for a checkpoint.

use super::{BlockValidator, HeaderInfo, ValidatedTip, ValidationEvent, ValidatorError};
use bitcoin::BlockHash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bounds and durability budget of the worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Most blocks queued or being validated.
    pub queue_blocks_max: usize,
    /// Most bytes of blocks queued or being validated (a lone block may exceed it).
    pub queue_bytes_max: usize,
    /// Checkpoint after this many connected/disconnected blocks since the last checkpoint.
    pub checkpoint_blocks: u32,
    /// Checkpoint when the oldest unflushed chain change is this old.
    pub checkpoint_interval_ms: u64,
    /// Report `Connected`/`Disconnected` only once a checkpoint covers them.
    pub hold_until_durable: bool,
}

impl Default for WorkerConfig {
    /// 128 blocks / 128 MiB in flight to the validator (≥ 32 full mainnet blocks, ample for a
    /// 1,024-block download window since validation is the slower side); a checkpoint every 2,000
    /// blocks or 10 s, reports not held (the scheduler re-requests what a crash loses).
    fn default() -> Self {
        WorkerConfig {
            queue_blocks_max: 128,
            queue_bytes_max: 128 << 20,
            checkpoint_blocks: 2_000,
            checkpoint_interval_ms: 10_000,
            hold_until_durable: false,
        }
    }
}

/// The worker thread's busy time, cumulative since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    /// In the validator's `submit` (the kernel's `process_block`, journal appends).
    pub validating: Duration,
    /// In checkpoints (journal commits, and the kernel flushes when the journal is over budget).
    pub checkpointing: Duration,
    /// Checkpoints taken.
    pub checkpoints: u64,
}

/// Why a block was not queued; the block is handed back so it need not be downloaded again.
#[derive(Debug)]
pub enum SubmitError {
    /// The queue is over one of its bounds: retry once [`ValidationWorker::has_room`].
    Full {
        /// The block's bytes, returned.
        raw: Vec<u8>,
    },
    /// The worker has stopped.
    Closed {
        /// The block's bytes, returned.
        raw: Vec<u8>,
    },
}

struct Job {
    hash: BlockHash,
    raw: Vec<u8>,
    /// Headers to hand the validator first.
    ahead: Vec<[u8; 80]>,
}

enum Control {
    Header { raw: [u8; 80] },
    ReadBlock { hash: BlockHash, reply: ReadReply },
    HeaderFor { hash: BlockHash, reply: flume::Sender<Option<HeaderInfo>> },
    HashAt { height: u32, reply: flume::Sender<Option<BlockHash>> },
    Checkpoint { reply: flume::Sender<Result<ValidatedTip, ValidatorError>> },
    Shutdown,
}

/// Where a block read's answer goes (dropped unanswered only when the worker stops).
type ReadReply = Box<dyn FnOnce(Option<Vec<u8>>) + Send>;

/// A reply that sends the answer on a channel.
fn to_channel(tx: flume::Sender<Option<Vec<u8>>>) -> ReadReply {
    Box::new(move |bytes| {
        let _ = tx.send(bytes);
    })
}

struct Shared {
    queued_blocks: AtomicUsize,
    queued_bytes: AtomicUsize,
    validate_us: AtomicU64,
    checkpoint_us: AtomicU64,
    checkpoints: AtomicU64,
    tip: Mutex<ValidatedTip>,
    durable: Mutex<ValidatedTip>,
}

fn lock<T: Copy>(m: &Mutex<T>) -> T {
    *m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn store<T>(m: &Mutex<T>, value: T) {
    *m.lock().unwrap_or_else(PoisonError::into_inner) = value;
}

/// Handle to the validation thread. Dropping it stops the thread (queued blocks are dropped, the
/// validator is closed).
pub struct ValidationWorker<V: BlockValidator> {
    jobs: flume::Sender<Job>,
    control: flume::Sender<Control>,
    events: flume::Receiver<ValidationEvent>,
    shared: Arc<Shared>,
    config: WorkerConfig,
    thread: Option<JoinHandle<Option<V>>>,
}

impl<V: BlockValidator> ValidationWorker<V> {
    /// Start the thread and open the validator on it (opening may take a while: the kernel loads
    /// its block index). Returns once the validator is open, or its error.
    pub fn spawn<F>(config: WorkerConfig, open: F) -> Result<Self, ValidatorError>
    where
        F: FnOnce() -> Result<V, ValidatorError> + Send + 'static,
    {
        let (jobs, job_rx) = flume::bounded(config.queue_blocks_max.max(1));
        let (control, control_rx) = flume::unbounded();
        let (events_tx, events) = flume::unbounded();
        let (ready_tx, ready_rx) = flume::bounded(1);
        let loop_config = config.clone();
        let thread = std::thread::Builder::new()
            .name("oni-validation".into())
            .spawn(move || {
                let validator = match open() {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return None;
                    }
                };
                let tip = validator.tip();
                let shared = Arc::new(Shared {
                    queued_blocks: AtomicUsize::new(0),
                    queued_bytes: AtomicUsize::new(0),
                    validate_us: AtomicU64::new(0),
                    checkpoint_us: AtomicU64::new(0),
                    checkpoints: AtomicU64::new(0),
                    tip: Mutex::new(tip),
                    durable: Mutex::new(tip),
                });
                if ready_tx.send(Ok(shared.clone())).is_err() {
                    return Some(validator);
                }
                let mut state = Loop::new(validator, loop_config, shared, events_tx);
                state.run(&job_rx, &control_rx);
                state.finish()
            })
            .map_err(|e| ValidatorError::Io("oni-validation thread".into(), e))?;
        let shared = match ready_rx.recv() {
            Ok(Ok(shared)) => shared,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(ValidatorError::WorkerGone);
            }
        };
        Ok(ValidationWorker { jobs, control, events, shared, config, thread: Some(thread) })
    }

    /// Queue a block for validation, or hand it back if the queue is over a bound or the worker
    /// has stopped. Never blocks.
    pub fn try_submit(&self, hash: BlockHash, raw: Vec<u8>) -> Result<(), SubmitError> {
        self.try_submit_after(&mut Vec::new(), hash, raw)
    }

    /// [`ValidationWorker::try_submit`], the validator first learning the headers in `ahead`
    /// (parents first) in the same ordered queue: a header whose parent's block is still queued
    /// reaches the validator after that block. Taken from `ahead` only when the block is queued.
    pub fn try_submit_after(
        &self,
        ahead: &mut Vec<[u8; 80]>,
        hash: BlockHash,
        raw: Vec<u8>,
    ) -> Result<(), SubmitError> {
        if !self.has_room(raw.len()) {
            return Err(SubmitError::Full { raw });
        }
        let len = raw.len();
        self.shared.queued_blocks.fetch_add(1, Ordering::SeqCst);
        self.shared.queued_bytes.fetch_add(len, Ordering::SeqCst);
        match self.jobs.try_send(Job { hash, raw, ahead: std::mem::take(ahead) }) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.queued_blocks.fetch_sub(1, Ordering::SeqCst);
                self.shared.queued_bytes.fetch_sub(len, Ordering::SeqCst);
                let (job, err): (Job, fn(Vec<u8>) -> SubmitError) = match e {
                    flume::TrySendError::Full(job) => (job, |raw| SubmitError::Full { raw }),
                    flume::TrySendError::Disconnected(job) => (job, |raw| SubmitError::Closed { raw }),
                };
                *ahead = job.ahead;
                Err(err(job.raw))
            }
        }
    }

    /// Whether a block of `bytes` would be accepted now (the scheduler's "may I request more").
    pub fn has_room(&self, bytes: usize) -> bool {
        let blocks = self.queued_blocks();
        blocks < self.config.queue_blocks_max
            && (blocks == 0 || self.queued_bytes() + bytes <= self.config.queue_bytes_max)
    }

    /// Blocks queued or being validated.
    pub fn queued_blocks(&self) -> usize {
        self.shared.queued_blocks.load(Ordering::SeqCst)
    }

    /// Bytes of blocks queued or being validated.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::SeqCst)
    }

    /// What the worker has to say; drain it every tick (it is unbounded, but only ever holds
    /// events for blocks that were admitted through the bounded queue).
    pub fn events(&self) -> &flume::Receiver<ValidationEvent> {
        &self.events
    }

    /// The validator's tip after the last processed block (may be ahead of reported events when
    /// they are held until durable).
    pub fn tip(&self) -> ValidatedTip {
        lock(&self.shared.tip)
    }

    /// Where the thread's time went so far: what tells a validation-bound sync from a
    /// network-bound one.
    pub fn load(&self) -> WorkerLoad {
        let us = |a: &AtomicU64| Duration::from_micros(a.load(Ordering::Relaxed));
        WorkerLoad {
            validating: us(&self.shared.validate_us),
            checkpointing: us(&self.shared.checkpoint_us),
            checkpoints: self.shared.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// The tip as of the last checkpoint: what a crash now would resume from.
    pub fn durable_tip(&self) -> ValidatedTip {
        lock(&self.shared.durable)
    }

    /// Hand the validator a header ahead of its block. Queries and headers are served before the
    /// next queued block, so a header given now is known before any block submitted after it.
    pub fn submit_header(&self, raw: [u8; 80]) {
        let _ = self.control.send(Control::Header { raw });
    }

    /// Ask for a block's bytes (to serve `getdata`); the answer arrives on the returned channel.
    pub fn read_block(&self, hash: BlockHash) -> flume::Receiver<Option<Vec<u8>>> {
        let (reply, rx) = flume::bounded(1);
        self.read_block_with(hash, to_channel(reply));
        rx
    }

    /// Ask for a block's bytes; `reply` is called with the answer on the worker's thread (so the
    /// caller can route every answer to one channel it waits on).
    pub fn read_block_with(&self, hash: BlockHash, reply: impl FnOnce(Option<Vec<u8>>) + Send + 'static) {
        let _ = self.control.send(Control::ReadBlock { hash, reply: Box::new(reply) });
    }

    /// Ask for a header the validator knows.
    pub fn header_for(&self, hash: BlockHash) -> flume::Receiver<Option<HeaderInfo>> {
        let (reply, rx) = flume::bounded(1);
        let _ = self.control.send(Control::HeaderFor { hash, reply });
        rx
    }

    /// A handle that reads the validator's active chain and blocks from another thread (the coin
    /// follower), through the same control channel as [`ValidationWorker::read_block`].
    pub fn chain_reader(&self) -> ChainReader {
        ChainReader { control: self.control.clone(), shared: self.shared.clone() }
    }

    /// Force a checkpoint now (before a planned restart, in tests).
    pub fn checkpoint(&self) -> flume::Receiver<Result<ValidatedTip, ValidatorError>> {
        let (reply, rx) = flume::bounded(1);
        let _ = self.control.send(Control::Checkpoint { reply });
        rx
    }

    /// Stop the thread: blocks still queued are dropped unvalidated and the validator is handed
    /// back; dropping it closes it, which for the kernel is a full flush.
    pub fn shutdown(mut self) -> Result<V, ValidatorError> {
        self.stop().ok_or(ValidatorError::WorkerGone)
    }

    fn stop(&mut self) -> Option<V> {
        let thread = self.thread.take()?;
        let _ = self.control.send(Control::Shutdown);
        thread.join().ok().flatten()
    }
}

impl<V: BlockValidator> Drop for ValidationWorker<V> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Blocking reads of the validator's chain for threads other than the world's: each call waits for
/// at most the block being validated (control messages go first). Every answer is `None` once the
/// worker has stopped, so a reader never hangs on a dead worker.
#[derive(Clone)]
pub struct ChainReader {
    control: flume::Sender<Control>,
    shared: Arc<Shared>,
}

impl ChainReader {
    /// The block's raw bytes, if the validator holds its data.
    pub fn read_block(&self, hash: BlockHash) -> Option<Vec<u8>> {
        let (reply, rx) = flume::bounded(1);
        self.control.send(Control::ReadBlock { hash, reply: to_channel(reply) }).ok()?;
        rx.recv().ok().flatten()
    }

    /// Hash of the active chain's block at `height`, if the validator knows its active chain.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        let (reply, rx) = flume::bounded(1);
        self.control.send(Control::HashAt { height, reply }).ok()?;
        rx.recv().ok().flatten()
    }

    /// The validator's tip after the last processed block (possibly not yet durable).
    pub fn tip(&self) -> ValidatedTip {
        lock(&self.shared.tip)
    }
}

enum Msg {
    Job(Result<Job, flume::RecvError>),
    Control(Result<Control, flume::RecvError>),
}

/// The thread's state.
struct Loop<V> {
    validator: V,
    config: WorkerConfig,
    shared: Arc<Shared>,
    events: flume::Sender<ValidationEvent>,
    scratch: Vec<ValidationEvent>,
    held: Vec<ValidationEvent>,
    changes_since_checkpoint: u32,
    first_change_at: Option<Instant>,
    failed: bool,
}

impl<V: BlockValidator> Loop<V> {
    fn new(validator: V, config: WorkerConfig, shared: Arc<Shared>, events: flume::Sender<ValidationEvent>) -> Self {
        Loop {
            validator,
            config,
            shared,
            events,
            scratch: Vec::new(),
            held: Vec::new(),
            changes_since_checkpoint: 0,
            first_change_at: None,
            failed: false,
        }
    }

    fn run(&mut self, jobs: &flume::Receiver<Job>, control: &flume::Receiver<Control>) {
        let interval = Duration::from_millis(self.config.checkpoint_interval_ms);
        while !self.failed {
            // Control first: queries never wait behind the block queue.
            let msg = match control.try_recv() {
                Ok(c) => Msg::Control(Ok(c)),
                Err(flume::TryRecvError::Disconnected) => return,
                Err(flume::TryRecvError::Empty) => {
                    let wait = match self.first_change_at {
                        Some(at) => interval.saturating_sub(at.elapsed()),
                        None => Duration::from_secs(3600),
                    };
                    let selected =
                        flume::Selector::new().recv(control, Msg::Control).recv(jobs, Msg::Job).wait_timeout(wait);
                    match selected {
                        Ok(msg) => msg,
                        Err(_) => {
                            self.maybe_checkpoint();
                            continue;
                        }
                    }
                }
            };
            match msg {
                Msg::Control(Ok(Control::Shutdown)) | Msg::Control(Err(_)) | Msg::Job(Err(_)) => return,
                Msg::Control(Ok(c)) => self.answer(c),
                Msg::Job(Ok(job)) => self.validate(job),
            }
            self.maybe_checkpoint();
        }
    }

    fn answer(&mut self, control: Control) {
        match control {
            Control::Header { raw } => {
                if !self.validator.submit_header(&raw) {
                    tracing::debug!("validator refused a header the world accepted");
                }
            }
            Control::ReadBlock { hash, reply } => reply(self.validator.read_block(&hash)),
            Control::HeaderFor { hash, reply } => {
                let _ = reply.send(self.validator.header_for(&hash));
            }
            Control::HashAt { height, reply } => {
                let _ = reply.send(self.validator.active_hash_at(height));
            }
            Control::Checkpoint { reply } => {
                let _ = reply.send(self.checkpoint());
            }
            Control::Shutdown => {}
        }
    }

    fn validate(&mut self, job: Job) {
        let started = Instant::now();
        for raw in &job.ahead {
            if !self.validator.submit_header(raw) {
                tracing::debug!("validator refused a header a block needs");
            }
        }
        self.scratch.clear();
        let before = lock(&self.shared.tip).hash;
        self.validator.submit(job.hash, &job.raw, &mut self.scratch);
        let tip = self.validator.tip();
        store(&self.shared.tip, tip);
        self.shared.validate_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.shared.queued_bytes.fetch_sub(job.raw.len(), Ordering::SeqCst);
        self.shared.queued_blocks.fetch_sub(1, Ordering::SeqCst);
        if self.config.hold_until_durable {
            let _ = self.events.send(ValidationEvent::Taken { hash: job.hash });
        }
        for event in self.scratch.drain(..) {
            let chain_change =
                matches!(event, ValidationEvent::Connected { .. } | ValidationEvent::Disconnected { .. });
            if chain_change {
                self.changes_since_checkpoint += 1;
                self.first_change_at.get_or_insert_with(Instant::now);
            }
            if chain_change && self.config.hold_until_durable {
                self.held.push(event);
            } else {
                let _ = self.events.send(event);
            }
        }
        // Held reports wait for a checkpoint (up to its interval); the new tip does not have to.
        if self.config.hold_until_durable && tip.hash != before {
            let _ = self.events.send(ValidationEvent::Tip { hash: tip.hash, height: tip.height });
        }
    }

    fn maybe_checkpoint(&mut self) {
        let Some(at) = self.first_change_at else { return };
        let due = self.changes_since_checkpoint >= self.config.checkpoint_blocks
            || at.elapsed() >= Duration::from_millis(self.config.checkpoint_interval_ms);
        if due {
            let _ = self.checkpoint();
        }
    }

    fn checkpoint(&mut self) -> Result<ValidatedTip, ValidatorError> {
        let started = Instant::now();
        let result = self.validator.checkpoint();
        self.shared.checkpoint_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(tip) => {
                store(&self.shared.durable, tip);
                for event in self.held.drain(..) {
                    let _ = self.events.send(event);
                }
                let _ = self.events.send(ValidationEvent::Durable { hash: tip.hash, height: tip.height });
                self.changes_since_checkpoint = 0;
                self.first_change_at = None;
                Ok(tip)
            }
            Err(e) => {
                tracing::error!(error = %e, "validation checkpoint failed; the worker stops");
                let _ = self.events.send(ValidationEvent::Fatal { what: "checkpoint_failed" });
                self.failed = true;
                Err(e)
            }
        }
    }

    /// On the way out: hand the validator back (a failed one is dropped). Held reports are not
    /// sent: nothing promised them yet, and closing the validator makes its state durable anyway.
    fn finish(self) -> Option<V> {
        (!self.failed).then_some(self.validator)
    }
}
