//! The boundary with the block validator and the block store, both owned by the shell (Core's
//! engine through bitcoinkernel runs off the world thread). The world only queues requests and
//! reads results, like the IO [`crate::resources::Outbox`]/[`crate::resources::Inbox`]:
//!
//! - [`ValidationQueue::to_validate`]: blocks to validate, in arrival order. The shell drains it
//!   after each tick and hands the blocks to its validation worker.
//! - [`ValidationInbox`]: what the worker reports: `Processed` once it took a block (stored it;
//!   frees backpressure), `Connected` for each block that became the tip (in chain order),
//!   `Rejected` for an invalid block.
//! - [`BlockReads::requests`]: blocks a peer asked for; the shell reads them (the kernel's block
//!   files) and answers in [`BlockReadInbox`] with the raw witness serialization, or `None`.
//!
//! [`InstantValidator`] is the cheap checker the harness and benches use: it connects any block
//! whose parent is its tip, in order, and rejects the hashes it is told to.

use crate::components::ConnId;
use ahash::{AHashMap, AHashSet};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

/// A block for the validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidateBlock {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height on the header chain.
    pub height: u32,
    /// Raw block, witness serialization.
    pub bytes: Vec<u8>,
}

/// Blocks handed to the validator and not yet processed, with the bound the scheduler respects.
#[derive(Resource, Debug, Default)]
pub struct ValidationQueue {
    /// New blocks for the shell to take this tick.
    pub to_validate: Vec<ValidateBlock>,
    /// Blocks handed over and not yet processed: hash → bytes.
    pub pending: AHashMap<BlockHash, usize>,
    /// Sum of `pending`'s bytes.
    pub pending_bytes: usize,
}

impl ValidationQueue {
    /// Queues a block.
    pub fn push(&mut self, block: ValidateBlock) {
        if self.pending.insert(block.hash, block.bytes.len()).is_none() {
            self.pending_bytes += block.bytes.len();
        }
        self.to_validate.push(block);
    }

    /// The validator took `hash` (or finished with it).
    pub fn done(&mut self, hash: &BlockHash) {
        if let Some(n) = self.pending.remove(hash) {
            self.pending_bytes -= n;
        }
    }

    /// Blocks pending.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

/// What the validator reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationEvent {
    /// It took the block (stored; connected now or later). Frees its queue space.
    Processed {
        /// The block.
        hash: BlockHash,
    },
    /// The block is now the validated tip.
    Connected {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The block is invalid.
    Rejected {
        /// The block.
        hash: BlockHash,
        /// The validator's reason (for logs).
        reason: String,
    },
}

/// Validator reports waiting for block_download.
#[derive(Resource, Debug, Default)]
pub struct ValidationInbox(pub Vec<ValidationEvent>);

/// A peer asked for a block: read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRead {
    /// Who asked.
    pub conn: ConnId,
    /// The block.
    pub hash: BlockHash,
}

/// Block reads for the shell.
#[derive(Resource, Debug, Default)]
pub struct BlockReads {
    /// Reads to do, drained by the shell after each tick.
    pub requests: Vec<BlockRead>,
}

/// A block read's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockData {
    /// Who asked.
    pub conn: ConnId,
    /// The block.
    pub hash: BlockHash,
    /// Raw block (witness serialization), or `None` when the store does not have it.
    pub bytes: Option<Vec<u8>>,
}

/// Block read answers waiting for serve_blocks.
#[derive(Resource, Debug, Default)]
pub struct BlockReadInbox(pub Vec<BlockData>);

/// A validator and block store for tests and benches: stores blocks whose parent it has, makes
/// the highest chain its tip (reporting `Connected` for each block of a new branch, in order, as
/// the kernel does on a reorg), rejects what it is told to, serves what it stored.
#[derive(Debug)]
pub struct InstantValidator {
    /// Blocks waiting for their parent: parent → (hash, bytes).
    waiting: AHashMap<BlockHash, Vec<(BlockHash, Vec<u8>)>>,
    /// Stored blocks: hash → bytes.
    pub store: AHashMap<BlockHash, Vec<u8>>,
    /// Parent and height of every stored block (and genesis).
    known: AHashMap<BlockHash, (BlockHash, u32)>,
    /// The connected chain by height.
    main: Vec<BlockHash>,
    /// Hashes to reject.
    pub reject: AHashSet<BlockHash>,
    /// Whether it processes at all (false: blocks stay pending, for backpressure tests).
    pub paused: bool,
    backlog: Vec<ValidateBlock>,
}

impl InstantValidator {
    /// A validator whose tip is `genesis` at height 0.
    pub fn new(genesis: BlockHash) -> Self {
        let mut known = AHashMap::new();
        known.insert(genesis, (BlockHash::all_zeros(), 0));
        InstantValidator {
            waiting: AHashMap::new(),
            store: AHashMap::new(),
            known,
            main: vec![genesis],
            reject: AHashSet::new(),
            paused: false,
            backlog: Vec::new(),
        }
    }

    /// The tip and its height.
    pub fn tip(&self) -> (BlockHash, u32) {
        (self.main[self.main.len() - 1], self.main.len() as u32 - 1)
    }

    /// Takes the queue's blocks and answers, as the shell's worker would.
    pub fn run(&mut self, queue: &mut ValidationQueue, inbox: &mut ValidationInbox) {
        self.backlog.append(&mut queue.to_validate);
        if self.paused {
            return;
        }
        for b in std::mem::take(&mut self.backlog) {
            inbox.0.push(ValidationEvent::Processed { hash: b.hash });
            if self.reject.contains(&b.hash) {
                inbox.0.push(ValidationEvent::Rejected { hash: b.hash, reason: "test-rejected".into() });
                continue;
            }
            let prev =
                BlockHash::from_byte_array(b.bytes.get(4..36).and_then(|s| s.try_into().ok()).unwrap_or([0; 32]));
            let mut ready = vec![(prev, b.hash, b.bytes)];
            while let Some((prev, hash, bytes)) = ready.pop() {
                let Some(&(_, ph)) = self.known.get(&prev) else {
                    self.waiting.entry(prev).or_default().push((hash, bytes));
                    continue;
                };
                self.known.insert(hash, (prev, ph + 1));
                self.store.insert(hash, bytes);
                for (h, by) in self.waiting.remove(&hash).unwrap_or_default() {
                    ready.push((hash, h, by));
                }
                if ph + 1 > self.tip().1 {
                    self.connect_branch(hash, inbox);
                }
            }
        }
    }

    fn connect_branch(&mut self, tip: BlockHash, inbox: &mut ValidationInbox) {
        let mut path = vec![];
        let mut cur = tip;
        loop {
            let (prev, h) = self.known[&cur];
            if self.main.get(h as usize) == Some(&cur) {
                break;
            }
            path.push((cur, h));
            cur = prev;
        }
        let fork_h = self.known[&cur].1;
        self.main.truncate(fork_h as usize + 1);
        for (hash, height) in path.into_iter().rev() {
            self.main.push(hash);
            inbox.0.push(ValidationEvent::Connected { hash, height });
        }
    }

    /// Answers block reads from the store.
    pub fn serve(&self, reads: &mut BlockReads, inbox: &mut BlockReadInbox) {
        for r in reads.requests.drain(..) {
            inbox.0.push(BlockData { conn: r.conn, hash: r.hash, bytes: self.store.get(&r.hash).cloned() });
        }
    }
}
