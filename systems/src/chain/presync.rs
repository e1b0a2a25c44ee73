//! The low-work header spam defense (Core's headerssync.cpp, PRESYNC/REDOWNLOAD). A peer's header
//! chain that does not yet show the minimum chain work is not stored: in PRESYNC we keep only its
//! last header, its running work and one salted 1-bit commitment per `commitment_period` headers
//! (bounded by how many blocks could exist since the fork point at 6 per second). Once the work is
//! enough we ask for the same headers again (REDOWNLOAD), check each commitment bit, hold a
//! buffer of `redownload_buffer` headers, and release headers to full validation from the front
//! of that buffer — all of them once the redownloaded chain itself reaches the minimum work.
//! Memory per peer stays bounded whatever the peer sends.

use super::params::{ChainParams, MAX_FUTURE_BLOCK_TIME_S};
use super::pow::permitted_transition;
use super::tree::{BlockIdx, HeaderTree};
use super::u256::U256;
use crate::wire::headers::HEADER_BYTES;
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::BlockHash;
use std::collections::VecDeque;

/// Where a sync stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Counting work, storing commitments.
    Presync,
    /// Downloading again, checking commitments, releasing headers.
    Redownload,
    /// Finished or aborted; the state can be dropped.
    Done,
}

/// Why a sync stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// Headers did not continue the chain being synced.
    NonContinuous,
    /// A difficulty change no timestamps could justify.
    BadDifficultyTransition,
    /// More commitments than a valid chain could have now.
    TooManyCommitments,
    /// A redownloaded header did not match its commitment (the peer served another chain).
    CommitmentMismatch,
    /// The peer stopped sending before the chain was complete.
    Incomplete,
}

/// What to do after a `headers` message.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Headers that passed REDOWNLOAD, in chain order, to validate fully and store.
    pub release: Vec<[u8; HEADER_BYTES]>,
    /// Ask the peer for more, with [`HeadersPresync::locator_tip`] first in the locator.
    pub request_more: bool,
    /// Why the sync stopped, when it did so early.
    pub aborted: Option<Abort>,
}

/// A growable bit queue: commitments are pushed in PRESYNC and popped in REDOWNLOAD.
#[derive(Debug, Default)]
struct BitQueue {
    words: Vec<u64>,
    len: usize,
    read: usize,
}

impl BitQueue {
    fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        if bit {
            self.words[self.len / 64] |= 1 << (self.len % 64);
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<bool> {
        if self.read >= self.len {
            return None;
        }
        let bit = self.words[self.read / 64] >> (self.read % 64) & 1 == 1;
        self.read += 1;
        Some(bit)
    }

    fn stored(&self) -> usize {
        self.len
    }
}

/// One peer's low-work header sync.
#[derive(Debug)]
pub struct HeadersPresync {
    chain_start: BlockIdx,
    start_hash: BlockHash,
    start_height: u32,
    start_bits: u32,
    start_work: Work,
    min_work: Work,
    period: u32,
    buffer_max: usize,
    commit_offset: u32,
    salt: ahash::RandomState,
    commitments: BitQueue,
    max_commitments: u64,
    phase: Phase,
    last_hash: BlockHash,
    last_bits: u32,
    height: u32,
    work: Work,
    buffer: VecDeque<[u8; HEADER_BYTES]>,
    rd_last_hash: BlockHash,
    rd_last_bits: u32,
    rd_height: u32,
    rd_work: Work,
    process_all: bool,
}

fn header_work(bits: u32, params: &ChainParams) -> Work {
    U256::from_compact(bits).unwrap_or(params.pow_limit).work()
}

impl HeadersPresync {
    /// Starts a sync from `chain_start` (a header we hold), towards `min_work`. `seeds` salt the
    /// commitment hash and pick the commitment offset (from the world's seeded rng).
    pub fn new(
        tree: &HeaderTree,
        chain_start: BlockIdx,
        params: &ChainParams,
        min_work: Work,
        now_s: i64,
        seeds: [u64; 4],
    ) -> Self {
        use super::pow::Ancestry;
        let e = tree.entry(chain_start);
        let mtp = tree.view(chain_start).median_time_past();
        let max_seconds = (now_s - mtp).max(0) + MAX_FUTURE_BLOCK_TIME_S;
        let period = params.commitment_period.max(1);
        HeadersPresync {
            chain_start,
            start_hash: e.hash,
            start_height: e.height,
            start_bits: e.bits,
            start_work: e.chainwork(),
            min_work,
            period,
            buffer_max: params.redownload_buffer,
            commit_offset: (seeds[0] % period as u64) as u32,
            salt: ahash::RandomState::with_seeds(seeds[0], seeds[1], seeds[2], seeds[3]),
            commitments: BitQueue::default(),
            max_commitments: 6 * max_seconds as u64 / period as u64,
            phase: Phase::Presync,
            last_hash: e.hash,
            last_bits: e.bits,
            height: e.height,
            work: e.chainwork(),
            buffer: VecDeque::new(),
            rd_last_hash: e.hash,
            rd_last_bits: e.bits,
            rd_height: e.height,
            rd_work: e.chainwork(),
            process_all: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Where the sync started (a header in the tree).
    pub fn chain_start(&self) -> BlockIdx {
        self.chain_start
    }

    /// Height reached in PRESYNC (Core reports it as the peer's presync height).
    pub fn presync_height(&self) -> u32 {
        self.height
    }

    /// Work counted in PRESYNC.
    pub fn presync_work(&self) -> Work {
        self.work
    }

    /// The hash to put first in the next getheaders locator (the rest is the chain start's).
    pub fn locator_tip(&self) -> BlockHash {
        match self.phase {
            Phase::Redownload => self.rd_last_hash,
            _ => self.last_hash,
        }
    }

    fn commitment_bit(&self, hash: &BlockHash) -> bool {
        self.salt.hash_one(hash.as_byte_array()) & 1 == 1
    }

    fn abort(&mut self, out: &mut Outcome, why: Abort) {
        out.aborted = Some(why);
        out.request_more = false;
        self.finish();
    }

    fn finish(&mut self) {
        self.phase = Phase::Done;
        self.commitments = BitQueue::default();
        self.buffer = VecDeque::new();
    }

    /// Processes one `headers` message (`headers` with their hashes, PoW and continuity already
    /// checked by the caller). `full` says the message carried the maximum count.
    pub fn process(
        &mut self,
        headers: &[([u8; HEADER_BYTES], BlockHash)],
        full: bool,
        params: &ChainParams,
    ) -> Outcome {
        let mut out = Outcome::default();
        match self.phase {
            Phase::Presync => {
                if let Some((first, _)) = headers.first() {
                    if first[4..36] != self.last_hash.as_byte_array()[..] {
                        self.abort(&mut out, Abort::NonContinuous);
                        return out;
                    }
                }
                for (raw, hash) in headers {
                    let bits = u32::from_le_bytes([raw[72], raw[73], raw[74], raw[75]]);
                    let next = self.height + 1;
                    if !permitted_transition(params, next, self.last_bits, bits) {
                        self.abort(&mut out, Abort::BadDifficultyTransition);
                        return out;
                    }
                    if next % self.period == self.commit_offset {
                        let bit = self.commitment_bit(hash);
                        self.commitments.push(bit);
                        if self.commitments.stored() as u64 > self.max_commitments {
                            self.abort(&mut out, Abort::TooManyCommitments);
                            return out;
                        }
                    }
                    self.work = self.work + header_work(bits, params);
                    self.last_hash = *hash;
                    self.last_bits = bits;
                    self.height = next;
                }
                if self.work >= self.min_work {
                    self.phase = Phase::Redownload;
                    // Its largest: the buffer plus one message, reserved once so it never doubles
                    // (a grown 17,218-header buffer was 32,768 slots, 2.6 MB per peer).
                    self.buffer = VecDeque::with_capacity(self.buffer_max + crate::wire::MAX_HEADERS);
                    out.request_more = true;
                } else if full {
                    out.request_more = true;
                } else {
                    self.abort(&mut out, Abort::Incomplete);
                }
            }
            Phase::Redownload => {
                if let Some((first, _)) = headers.first() {
                    if first[4..36] != self.rd_last_hash.as_byte_array()[..] {
                        self.abort(&mut out, Abort::NonContinuous);
                        return out;
                    }
                }
                for (raw, hash) in headers {
                    let bits = u32::from_le_bytes([raw[72], raw[73], raw[74], raw[75]]);
                    let next = self.rd_height + 1;
                    if !permitted_transition(params, next, self.rd_last_bits, bits) {
                        self.abort(&mut out, Abort::BadDifficultyTransition);
                        return out;
                    }
                    // Commitments are checked until the redownloaded chain has shown enough work;
                    // after that everything is released.
                    if next % self.period == self.commit_offset && !self.process_all {
                        match self.commitments.pop() {
                            Some(bit) if bit == self.commitment_bit(hash) => {}
                            Some(_) => {
                                self.abort(&mut out, Abort::CommitmentMismatch);
                                return out;
                            }
                            None => {
                                self.abort(&mut out, Abort::CommitmentMismatch);
                                return out;
                            }
                        }
                    }
                    self.buffer.push_back(*raw);
                    self.rd_work = self.rd_work + header_work(bits, params);
                    if self.rd_work >= self.min_work {
                        self.process_all = true;
                    }
                    self.rd_last_hash = *hash;
                    self.rd_last_bits = bits;
                    self.rd_height = next;
                }
                while self.buffer.len() > self.buffer_max || (self.process_all && !self.buffer.is_empty()) {
                    if let Some(h) = self.buffer.pop_front() {
                        out.release.push(h);
                    }
                }
                if self.process_all && self.buffer.is_empty() {
                    self.finish();
                } else if full {
                    out.request_more = true;
                } else {
                    out.aborted = Some(Abort::Incomplete);
                    self.finish();
                }
            }
            Phase::Done => {}
        }
        out
    }

    /// Heap bytes held: commitments and the redownload buffer. The struct itself is ~350 bytes.
    pub fn heap_bytes(&self) -> usize {
        self.commitments.words.capacity() * 8 + self.buffer.capacity() * HEADER_BYTES
    }

    /// Most heap bytes this sync may ever hold under `params`, given its commitment bound.
    pub fn heap_bound(&self) -> usize {
        (self.max_commitments as usize / 64 + 1) * 8 + (self.buffer_max + crate::wire::MAX_HEADERS) * HEADER_BYTES
    }

    /// The start's height, bits and work (for tests and RPC).
    pub fn start(&self) -> (BlockHash, u32, u32, Work) {
        (self.start_hash, self.start_height, self.start_bits, self.start_work)
    }
}

#[cfg(test)]
#[path = "presync_tests.rs"]
mod tests;
