//! Block validation off the world thread.
//!
//! The block download scheduler hands raw blocks to a [`ValidationWorker`], a std thread that owns
//! a [`BlockValidator`] and answers with [`ValidationEvent`]s. Two validators implement the trait:
//! - [`KernelValidator`]: Bitcoin Core's own consensus engine (libbitcoinkernel via the
//!   `bitcoinkernel` crate), with its block files and chainstate under the node's datadir. This is
//!   what the node runs, so oni's consensus is exactly Core's.
//! - [`StructureChecker`]: header hash, proof of work against the block's own bits, merkle root,
//!   witness commitment, and "connects to a known block" — no scripts, no UTXO set. Cheap and
//!   deterministic, for scheduler tests and the simulator.
//!
//! # Layout
//! - [`event`]: the plain-data events the world receives (no kernel types; can move to systems/).
//! - [`checker`]: the structure-only validator.
//! - [`kernel`]: the libbitcoinkernel validator and its durability model.
//! - [`journal`]: the kernel's write-ahead journal, what makes a checkpoint cheap.
//! - [`worker`]: the thread, its bounded queue (backpressure) and its control channel.
//! - [`fixture`]: loader for the regtest fixture chain used by tests and benches.

pub mod checker;
pub mod event;
pub mod fixture;
pub mod journal;
pub mod kernel;
pub mod worker;

pub use checker::StructureChecker;
pub use event::{RejectReason, ValidationEvent};
pub use kernel::{KernelConfig, KernelValidator};
pub use worker::{ChainReader, SubmitError, ValidationWorker, WorkerConfig, WorkerLoad};

use bitcoin::block::Header;
use bitcoin::pow::Work;
use bitcoin::BlockHash;
use std::fmt;

/// The end of the active (validated) chain: where the scheduler's window starts and what
/// `version`'s start height reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidatedTip {
    /// Height of the tip (0 = genesis only).
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// Total work of the chain up to and including the tip (Core's `chainwork`).
    pub chainwork: Work,
}

/// What a validator knows about a block it has seen (for serving `getheaders` and locating forks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The 80-byte header.
    pub header: Header,
    /// Its height in the block tree.
    pub height: u32,
    /// Whether it is on the active chain right now.
    pub in_active_chain: bool,
}

/// A validator failure that is not a verdict on a block: the store could not be opened or flushed.
#[derive(Debug)]
pub enum ValidatorError {
    /// The kernel refused (its text; details are in its log).
    Kernel(String),
    /// A directory could not be created.
    Io(std::path::PathBuf, std::io::Error),
    /// The worker thread is gone (it panicked or was shut down).
    WorkerGone,
}

impl fmt::Display for ValidatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidatorError::Kernel(msg) => write!(f, "bitcoin kernel: {msg}"),
            ValidatorError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            ValidatorError::WorkerGone => write!(f, "the validation worker has stopped"),
        }
    }
}

impl std::error::Error for ValidatorError {}

/// A consensus engine the validation worker drives. Blocks arrive in the order the scheduler
/// downloaded them; each call reports what happened through `events` (see [`ValidationEvent`] for
/// the one-verdict-per-block rule). Implementations own their storage; nothing here is async.
/// Dropping a validator closes it cleanly: what it connected is then on disk (the kernel flushes
/// when its chainstate manager is destroyed).
pub trait BlockValidator: Send + 'static {
    /// Validate one block given as raw wire bytes (witness serialization) plus the hash the
    /// scheduler requested, connecting it (and any branch it completes) if it is valid.
    fn submit(&mut self, hash: BlockHash, raw: &[u8], events: &mut Vec<ValidationEvent>);

    /// Learn a header ahead of its block, so blocks that arrive out of order (several peers deliver
    /// in parallel) find their parent header and are stored, not refused. False when refused.
    fn submit_header(&mut self, _raw: &[u8; 80]) -> bool {
        true
    }

    /// The active chain's tip.
    fn tip(&self) -> ValidatedTip;

    /// The header of a block in the block tree, if known.
    fn header_for(&self, hash: &BlockHash) -> Option<HeaderInfo>;

    /// The block's raw bytes (witness serialization), if we hold its data: for serving peers.
    fn read_block(&self, hash: &BlockHash) -> Option<Vec<u8>>;

    /// Make everything connected so far survive a crash. Returns the tip that is now durable.
    fn checkpoint(&mut self) -> Result<ValidatedTip, ValidatorError>;

    /// Hash of the active chain's block at `height`, for the coin store to find where it left the
    /// chain. `None` if the chain is shorter, or the validator keeps no active chain.
    fn active_hash_at(&self, _height: u32) -> Option<BlockHash> {
        None
    }
}

/// A boxed validator is a validator, so the node can pick one at run time (the kernel, or the
/// checker in the simulator) and still run a single `ValidationWorker<Box<dyn BlockValidator>>`.
impl<T: BlockValidator + ?Sized> BlockValidator for Box<T> {
    fn submit(&mut self, hash: BlockHash, raw: &[u8], events: &mut Vec<ValidationEvent>) {
        (**self).submit(hash, raw, events)
    }
    fn submit_header(&mut self, raw: &[u8; 80]) -> bool {
        (**self).submit_header(raw)
    }
    fn tip(&self) -> ValidatedTip {
        (**self).tip()
    }
    fn header_for(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        (**self).header_for(hash)
    }
    fn read_block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        (**self).read_block(hash)
    }
    fn checkpoint(&mut self) -> Result<ValidatedTip, ValidatorError> {
        (**self).checkpoint()
    }
    fn active_hash_at(&self, height: u32) -> Option<BlockHash> {
        (**self).active_hash_at(height)
    }
}
