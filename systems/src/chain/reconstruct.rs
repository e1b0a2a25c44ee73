//! Rebuilding a block from a compact block (BIP152): the prefilled transactions placed, each short
//! id looked up among the transactions we hold (pool, orphanage, recently dropped), what is left
//! asked for with `getblocktxn` and filled from `blocktxn`, the result checked against its header.
//!
//! Where oni differs from Core's `PartiallyDownloadedBlock`:
//! - Two short ids of the block that are equal: Core gives up on the compact block and fetches
//!   the whole block (its own comment calls that overkill). oni leaves those positions empty and
//!   asks for just them; the whole block is fetched only if the rebuilt block does not match.
//! - Every candidate is looked at (Core stops once each id has a match, so a second candidate with
//!   the same short id can go unseen and cost a failed rebuild): a position two candidates claim
//!   is asked for, whatever order they come in, so the result does not depend on map order.
//!
//! As Core: a compact block that cannot describe a block (null header, nothing in it, a prefilled
//! index past the block or beyond 16 bits, an empty prefilled transaction) is [`InitError::Invalid`]
//! (the sender is scored); short ids crowded into one bucket (more than 12 of them, bucket = id
//! modulo the id count: the layout of Core's table at its worst) is [`InitError::Failed`] (fetch
//! the whole block, no score). A `blocktxn` with more or fewer transactions than asked for is
//! [`FillError::Invalid`]; a rebuilt block that does not match its header is [`FillError::Mutated`].

use crate::wire::compact::CmpctBlock;
use crate::wire::headers::HEADER_BYTES;
use crate::wire::reader::write_compact_size;
use crate::wire::{Block, BlockTxn};
use ahash::AHashMap;
use bitcoin::consensus::Encodable;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Transaction, Wtxid};
use std::sync::Arc;

/// Short ids one bucket may hold before the compact block is given up on (Core's bound).
pub const MAX_BUCKET_IDS: usize = 12;

/// Where a position's transaction comes from.
#[derive(Clone, Debug)]
enum Slot {
    /// Not known yet: asked for.
    Missing,
    /// The compact block's prefilled transaction number `i`.
    Prefilled(usize),
    /// A transaction we hold.
    Held(Arc<Transaction>),
}

/// How a compact block's transactions were found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconstructStats {
    /// Prefilled by the sender.
    pub prefilled: usize,
    /// Found among the transactions we hold.
    pub held: usize,
    /// Positions whose short id the block repeats, or two of our candidates share: asked for.
    pub collisions: usize,
}

/// Why a compact block was not taken up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// It cannot describe a block: the sender is scored (Core's READ_STATUS_INVALID).
    Invalid(&'static str),
    /// It may be honest but cannot be used: fetch the whole block (Core's READ_STATUS_FAILED).
    Failed(&'static str),
}

/// Why a `blocktxn` did not complete a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillError {
    /// More or fewer transactions than asked for, or one that does not parse: scored.
    Invalid(&'static str),
    /// The rebuilt block does not match its header (an unseen short-id collision, or a sender
    /// that lied): fetch the whole block, no score.
    Mutated,
}

/// A block being rebuilt from a compact block.
#[derive(Clone, Debug)]
pub struct PartialBlock {
    cmpct: CmpctBlock,
    slots: Vec<Slot>,
    /// The positions asked for, increasing.
    missing: Vec<u16>,
    /// How the transactions were found.
    pub stats: ReconstructStats,
}

impl PartialBlock {
    /// Places the prefilled transactions and looks each short id up among `candidates` (wtxid and
    /// transaction; the same transaction offered twice counts once).
    pub fn new<'a>(
        cmpct: CmpctBlock,
        candidates: impl IntoIterator<Item = (Wtxid, &'a Arc<Transaction>)>,
    ) -> Result<PartialBlock, InitError> {
        let header = cmpct.header_bytes();
        if header[72..76] == [0; 4] {
            return Err(InitError::Invalid("null header"));
        }
        let n = cmpct.tx_count();
        if n == 0 {
            return Err(InitError::Invalid("no transactions"));
        }
        let mut slots = vec![Slot::Missing; n];
        let mut stats = ReconstructStats::default();
        let mut last: i64 = -1;
        for (i, p) in cmpct.prefilled().enumerate() {
            if p.null {
                return Err(InitError::Invalid("empty prefilled transaction"));
            }
            last += i64::from(p.gap) + 1;
            if last > i64::from(u16::MAX) {
                return Err(InitError::Invalid("prefilled index past 16 bits"));
            }
            if last as usize > cmpct.short_ids().len() + i {
                return Err(InitError::Invalid("prefilled index past the block"));
            }
            slots[last as usize] = Slot::Prefilled(i);
            stats.prefilled += 1;
        }
        // Short id → position; positions of a repeated id are asked for.
        let ids = cmpct.short_ids();
        let mut buckets = vec![0u8; ids.len().max(1)];
        let mut at: AHashMap<u64, Option<usize>> = AHashMap::with_capacity(ids.len());
        let mut free = slots.iter().enumerate().filter(|(_, s)| matches!(s, Slot::Missing)).map(|(i, _)| i);
        for &id in ids {
            let b = &mut buckets[(id % ids.len().max(1) as u64) as usize];
            *b += 1;
            if *b as usize > MAX_BUCKET_IDS {
                return Err(InitError::Failed("short ids crowded into one bucket"));
            }
            let pos = free.next().unwrap_or_else(|| unreachable!("prefilled indexes were checked to leave room"));
            at.entry(id).and_modify(|e| *e = None).or_insert(Some(pos));
        }
        let repeated = ids.len() - at.values().filter(|p| p.is_some()).count();
        stats.collisions += repeated;
        let keys = cmpct.keys();
        let candidates = candidates.into_iter().map(|(w, tx)| (keys.short_id(&w.to_byte_array()), w, tx));
        for (pos, c) in claim(&at, candidates) {
            match c {
                Some(tx) => {
                    slots[pos] = Slot::Held(Arc::clone(tx));
                    stats.held += 1;
                }
                None => stats.collisions += 1,
            }
        }
        let missing =
            slots.iter().enumerate().filter(|(_, s)| matches!(s, Slot::Missing)).map(|(i, _)| i as u16).collect();
        Ok(PartialBlock { cmpct, slots, missing, stats })
    }

    /// The block's hash.
    pub fn block_hash(&self) -> BlockHash {
        self.cmpct.block_hash()
    }

    /// The 80 header bytes.
    pub fn header_bytes(&self) -> &[u8; HEADER_BYTES] {
        self.cmpct.header_bytes()
    }

    /// Positions still to be asked for, increasing (empty: the block can be built now).
    pub fn missing(&self) -> &[u16] {
        &self.missing
    }

    /// Transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.slots.len()
    }

    /// Builds the block, the missing transactions taken from `txn` in order (`None` when nothing
    /// was missing), and checks it against its header.
    pub fn fill(&self, txn: Option<&BlockTxn>) -> Result<Block, FillError> {
        let given = txn.map_or(0, BlockTxn::tx_count);
        if given != self.missing.len() {
            return Err(FillError::Invalid("blocktxn count differs from the request"));
        }
        let mut raw = Vec::with_capacity(HEADER_BYTES + 9 + self.cmpct.len() + txn.map_or(0, BlockTxn::len));
        raw.extend_from_slice(self.cmpct.header_bytes());
        write_compact_size(&mut raw, self.slots.len() as u64);
        let prefilled: Vec<&[u8]> = self.cmpct.prefilled().map(|p| p.bytes).collect();
        let mut next = 0;
        for slot in &self.slots {
            match slot {
                Slot::Prefilled(i) => raw.extend_from_slice(prefilled[*i]),
                Slot::Held(tx) => {
                    if tx.consensus_encode(&mut raw).is_err() {
                        return Err(FillError::Mutated);
                    }
                }
                Slot::Missing => {
                    let Some(bytes) = txn.and_then(|t| t.tx_bytes(next)) else {
                        return Err(FillError::Invalid("blocktxn count differs from the request"));
                    };
                    raw.extend_from_slice(bytes);
                    next += 1;
                }
            }
        }
        let block = Block::decode_owned(raw).map_err(|_| FillError::Invalid("a transaction does not parse"))?;
        if block.is_mutated() {
            return Err(FillError::Mutated);
        }
        Ok(block)
    }
}

/// Each position some candidate's short id names, with the one transaction claiming it, or `None`
/// when two different transactions do (then it is asked for). `at` maps short ids to positions,
/// `None` for an id the block repeats (never claimed).
fn claim<'a>(
    at: &AHashMap<u64, Option<usize>>,
    candidates: impl Iterator<Item = (u64, Wtxid, &'a Arc<Transaction>)>,
) -> Vec<(usize, Option<&'a Arc<Transaction>>)> {
    let mut claimed: AHashMap<usize, Option<(Wtxid, &Arc<Transaction>)>> = AHashMap::new();
    for (id, wtxid, tx) in candidates {
        let Some(Some(pos)) = at.get(&id) else { continue };
        claimed
            .entry(*pos)
            .and_modify(|c| {
                if c.is_some_and(|(w, _)| w != wtxid) {
                    *c = None;
                }
            })
            .or_insert(Some((wtxid, tx)));
    }
    let mut out: Vec<_> = claimed.into_iter().map(|(pos, c)| (pos, c.map(|(_, tx)| tx))).collect();
    out.sort_unstable_by_key(|(pos, _)| *pos);
    out
}

#[cfg(test)]
#[path = "reconstruct_tests.rs"]
mod tests;
