//! The boundary with the block validator and the block store, both owned by the shell (Core's
//! engine through bitcoinkernel runs off the world thread). The world only queues requests and
//! reads results, like the IO [`crate::resources::Outbox`]/[`crate::resources::Inbox`]:
//!
//! - [`ValidationQueue::headers`]: headers newly accepted into the tree, parents first; the shell
//!   gives them to the validator (`process_block_header`) before the tick's blocks.
//! - [`ValidationQueue::to_validate`]: blocks to validate, in arrival order (not chain order:
//!   several peers deliver in parallel). The shell drains it after each tick and hands the blocks
//!   to its validation worker.
//! - [`ValidationInbox`]: what the worker reports ([`ValidationEvent`], one verdict per block —
//!   Connected / Stored / AlreadyKnown / Rejected — frees its queue place; Connected/Disconnected
//!   move the validated tip).
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
    /// Headers the validator must learn first, parents first: ancestors whose blocks it has not
    /// had (this block arrived before theirs; see `HeaderTree::headers_ahead_of`). They travel
    /// with the block, in the same ordered queue, so a header whose parent's block is still
    /// queued is not learned before that block.
    pub ahead: Vec<[u8; crate::wire::headers::HEADER_BYTES]>,
}

/// Blocks handed to the validator and not yet processed, with the bound the scheduler respects.
#[derive(Resource, Debug, Default)]
pub struct ValidationQueue {
    /// Headers accepted into the header tree this tick, parents first, for the simulated
    /// validator (which counts them). The node's shell saves headers from the tree's own list
    /// (`HeaderTree::unarchived`) and clears this. Cleared at the start of the next tick
    /// (bounded whether or not anyone takes them).
    pub headers: Vec<[u8; crate::wire::headers::HEADER_BYTES]>,
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

labelled! {
    /// Why a block was refused. A closed set (no strings) so the scheduler can match on it and
    /// metrics can be labelled with it. Same shape as the shell's validation worker's (kernel
    /// branch), so the worker's events map one to one.
    RejectReason {
        /// Broke a consensus rule while being checked or connected (bad script, bad amount, ...).
        Consensus = "consensus",
        /// Already known to be invalid.
        CachedInvalid = "cached_invalid",
        /// Proof of work, timestamp or version invalid.
        InvalidHeader = "invalid_header",
        /// The transactions do not match the header's commitments: not the block the header
        /// describes.
        Mutated = "mutated",
        /// Its parent is unknown to the validator: it arrived out of order, no one is to blame.
        MissingPrev = "missing_prev",
        /// It builds on a block known to be invalid.
        InvalidPrev = "invalid_prev",
        /// Its timestamp is more than 2 h ahead of the validator's clock.
        TimeFuture = "time_future",
        /// It is on a header chain with too little work to be considered.
        HeaderLowWork = "header_low_work",
        /// The bytes do not decode as a block.
        Undecodable = "undecodable",
        /// The bytes hash to something other than the block that was asked for.
        HashMismatch = "hash_mismatch",
        /// The validator's side failed (disk, database); the block may well be valid.
        Internal = "internal",
    }
}

impl RejectReason {
    /// Whether the peer that sent the block is at fault (then it is scored `InvalidBlock`, or
    /// `KnownInvalid` for `CachedInvalid`). Not for bytes that do not decode: Core's read fails and
    /// it drops the message unpunished.
    pub const fn blames_sender(self) -> bool {
        !matches!(
            self,
            RejectReason::MissingPrev
                | RejectReason::Internal
                | RejectReason::TimeFuture
                | RejectReason::HeaderLowWork
                | RejectReason::Undecodable
        )
    }

    /// Whether a peer may have relayed such a block in good faith before validating it, as BIP152
    /// allows for compact blocks: Core does not punish these (consensus, mutated, cached invalid)
    /// when the block came as a compact block; a bad header or parent it still does.
    pub const fn relayable_unvalidated(self) -> bool {
        matches!(self, RejectReason::Consensus | RejectReason::Mutated | RejectReason::CachedInvalid)
    }

    /// Whether the block (its header) is invalid, so it and its descendants are marked so. The
    /// others leave the header alone and the block is downloaded again (from anyone).
    pub const fn invalidates_header(self) -> bool {
        matches!(
            self,
            RejectReason::Consensus
                | RejectReason::CachedInvalid
                | RejectReason::InvalidHeader
                | RejectReason::InvalidPrev
        )
    }
}

/// What the validator reports. Every submitted block gets exactly one verdict for its own hash —
/// `Connected`, `Stored`, `AlreadyKnown` or `Rejected` — which frees its place in the queue;
/// chain changes (`Connected`/`Disconnected`, in the order applied) may name other blocks too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidationEvent {
    /// The block joined the active chain at this height.
    Connected {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The block left the active chain in a reorg (tip first).
    Disconnected {
        /// The block.
        hash: BlockHash,
        /// The height it had.
        height: u32,
    },
    /// Stored, valid so far, not on the active chain (yet).
    Stored {
        /// The block.
        hash: BlockHash,
    },
    /// The validator already had it.
    AlreadyKnown {
        /// The block.
        hash: BlockHash,
    },
    /// Refused.
    Rejected {
        /// The block.
        hash: BlockHash,
        /// Why.
        reason: RejectReason,
    },
    /// The validator's active tip moved to this block, reported at once, ahead of the
    /// `Connected`/`Disconnected` reports a shell may hold until they are durable: peers may hear
    /// of the block and fetch it now (a crash loses nothing the world relies on).
    Tip {
        /// The new tip.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The validator has processed the block and dropped its bytes; its verdict may come later,
    /// held until durable. Frees its queue place at once, so the blocks waiting for validation
    /// (the memory the queue bounds) are counted apart from verdicts waiting for a checkpoint.
    Taken {
        /// The block.
        hash: BlockHash,
    },
    /// Everything connected up to this block is on disk (for the shell; the world ignores it).
    Durable {
        /// The durable tip.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The validator cannot go on (the shell stops the node; the world ignores it).
    Fatal {
        /// What failed.
        what: &'static str,
    },
}

impl ValidationEvent {
    /// The block this event is about, if any (all but `Fatal`).
    pub fn hash(&self) -> Option<BlockHash> {
        match *self {
            ValidationEvent::Connected { hash, .. }
            | ValidationEvent::Disconnected { hash, .. }
            | ValidationEvent::Stored { hash }
            | ValidationEvent::AlreadyKnown { hash }
            | ValidationEvent::Rejected { hash, .. }
            | ValidationEvent::Tip { hash, .. }
            | ValidationEvent::Taken { hash }
            | ValidationEvent::Durable { hash, .. } => Some(hash),
            ValidationEvent::Fatal { .. } => None,
        }
    }
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
    /// Hashes to reject (consensus failure).
    pub reject: AHashSet<BlockHash>,
    /// Hashes to hand back once as `MissingPrev` (as if they arrived before their parent header).
    pub missing_prev_once: AHashSet<BlockHash>,
    /// Headers it was given (the kernel's `process_block_header` would see them).
    pub headers_seen: usize,
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
            missing_prev_once: AHashSet::new(),
            headers_seen: 0,
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
        self.headers_seen += queue.headers.len();
        queue.headers.clear();
        self.backlog.append(&mut queue.to_validate);
        if self.paused {
            return;
        }
        for b in std::mem::take(&mut self.backlog) {
            if self.reject.contains(&b.hash) {
                inbox.0.push(ValidationEvent::Rejected { hash: b.hash, reason: RejectReason::Consensus });
                continue;
            }
            if self.missing_prev_once.remove(&b.hash) {
                inbox.0.push(ValidationEvent::Rejected { hash: b.hash, reason: RejectReason::MissingPrev });
                continue;
            }
            if self.known.contains_key(&b.hash) {
                inbox.0.push(ValidationEvent::AlreadyKnown { hash: b.hash });
                continue;
            }
            let prev =
                BlockHash::from_byte_array(b.bytes.get(4..36).and_then(|s| s.try_into().ok()).unwrap_or([0; 32]));
            let submitted = b.hash;
            let mut verdict = false;
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
                    verdict |= self.connect_branch(hash, submitted, inbox);
                }
            }
            if !verdict {
                inbox.0.push(ValidationEvent::Stored { hash: submitted });
            }
        }
    }

    /// Makes `tip` the active tip; reports the switch; returns whether `submitted` was connected.
    fn connect_branch(&mut self, tip: BlockHash, submitted: BlockHash, inbox: &mut ValidationInbox) -> bool {
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
        while self.main.len() > fork_h as usize + 1 {
            let height = self.main.len() as u32 - 1;
            if let Some(hash) = self.main.pop() {
                inbox.0.push(ValidationEvent::Disconnected { hash, height });
            }
        }
        let mut connected = false;
        for (hash, height) in path.into_iter().rev() {
            self.main.push(hash);
            connected |= hash == submitted;
            inbox.0.push(ValidationEvent::Connected { hash, height });
        }
        connected
    }

    /// Answers block reads from the store.
    pub fn serve(&self, reads: &mut BlockReads, inbox: &mut BlockReadInbox) {
        for r in reads.requests.drain(..) {
            inbox.0.push(BlockData { conn: r.conn, hash: r.hash, bytes: self.store.get(&r.hash).cloned() });
        }
    }
}
