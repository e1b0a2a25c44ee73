//! What the validation worker tells the world: plain data with no kernel types in it, so the pure
//! core (`oni-systems`) can receive it as a resource later without depending on the kernel. Moving
//! this file into `systems/src/resources` needs no change but its path.

use bitcoin::BlockHash;

/// Why a block was refused. A closed set (no strings) so the scheduler can match on it and metrics
/// can be labelled with it; [`RejectReason::as_str`] gives the operator-facing name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Broke a consensus rule while being checked or connected (bad script, bad amount, …).
    Consensus,
    /// Already known to be invalid; the kernel does not keep the original reason.
    CachedInvalid,
    /// Proof of work does not meet its target, or its timestamp or version is invalid.
    InvalidHeader,
    /// The transactions do not match the header's commitments (merkle root, witness commitment):
    /// the block is not the one the header describes, the header itself may still be good.
    Mutated,
    /// Its parent is unknown: it arrived out of order, no one is to blame yet.
    MissingPrev,
    /// It builds on a block known to be invalid.
    InvalidPrev,
    /// Its timestamp is more than 2 h ahead of our clock.
    TimeFuture,
    /// It is on a header chain with too little work to be considered.
    HeaderLowWork,
    /// The bytes do not decode as a block.
    Undecodable,
    /// The bytes decode but hash to something other than the block that was asked for.
    HashMismatch,
    /// Our side failed (disk, database); the block may well be valid.
    Internal,
}

impl RejectReason {
    /// Stable snake_case name for logs, metrics labels and RPC.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Consensus => "consensus",
            RejectReason::CachedInvalid => "cached_invalid",
            RejectReason::InvalidHeader => "invalid_header",
            RejectReason::Mutated => "mutated",
            RejectReason::MissingPrev => "missing_prev",
            RejectReason::InvalidPrev => "invalid_prev",
            RejectReason::TimeFuture => "time_future",
            RejectReason::HeaderLowWork => "header_low_work",
            RejectReason::Undecodable => "undecodable",
            RejectReason::HashMismatch => "hash_mismatch",
            RejectReason::Internal => "internal",
        }
    }

    /// Whether the peer that sent the block is at fault, following Core's block punishment rules
    /// (`MaybePunishNodeForBlock`), with one difference: `MissingPrev` is not blamed, because the
    /// scheduler hands blocks over in chain order, so a missing parent is our ordering, not the
    /// peer's data. Not blamed either: a low-work header chain, a clock we cannot check, our own
    /// failures. `CachedInvalid` is blamed; Core discourages only outbound peers for it, which
    /// the caller decides (it knows the direction).
    pub const fn blames_sender(self) -> bool {
        !matches!(
            self,
            RejectReason::MissingPrev | RejectReason::Internal | RejectReason::TimeFuture | RejectReason::HeaderLowWork
        )
    }
}

/// One thing that happened on the validation worker. Every submitted block gets exactly one verdict
/// for its own hash — `Connected`, `Stored`, `AlreadyKnown` or `Rejected` — and chain changes
/// (`Connected`/`Disconnected`, in the order applied) may name other blocks too, as in a reorg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidationEvent {
    /// The block joined the active chain at this height.
    Connected {
        /// The connected block.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The block left the active chain in a reorg (emitted tip first).
    Disconnected {
        /// The disconnected block.
        hash: BlockHash,
        /// The height it had.
        height: u32,
    },
    /// The block was stored as valid so far but is not on the active chain (a side branch with no
    /// more work than ours); it will be connected if its branch overtakes.
    Stored {
        /// The stored block.
        hash: BlockHash,
    },
    /// We already had this block.
    AlreadyKnown {
        /// The block.
        hash: BlockHash,
    },
    /// The block is invalid (or, for [`RejectReason::Internal`], could not be processed).
    Rejected {
        /// The block.
        hash: BlockHash,
        /// Why.
        reason: RejectReason,
    },
    /// Everything connected up to and including this block is on disk: a crash from now on loses
    /// none of it. The kernel gives no such promise per block, see `validation::kernel`.
    Durable {
        /// The active tip when the state was flushed.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The validator hit an error it cannot recover from (disk full, corrupt database): the node
    /// should stop; details are in the log.
    Fatal {
        /// What failed, in a word.
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
            | ValidationEvent::Durable { hash, .. } => Some(hash),
            ValidationEvent::Fatal { .. } => None,
        }
    }
}
