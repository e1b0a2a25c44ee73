//! The header tree: every header we accepted (hash → height, parent, chainwork, status), the best
//! header by total work and the chain that leads to it (indexed by height, so locators, ancestors
//! and the download window are O(1) on it), the last block the validator connected, and reorgs:
//! when a branch gains more work the best chain switches to it; an invalid block takes its
//! descendants with it. An entry keeps what the chain rules read (hash, parent, height, time,
//! bits, chainwork, status): 84 bytes. A header's version, merkle root and nonce — 40 of its 80
//! bytes, which no rule reads once it is accepted — stay in memory only until the shell has saved
//! the header to a [`HeaderArchive`], which gives them back when the header is served.

use super::params::{median_time, ChainParams, MAX_FUTURE_BLOCK_TIME_S, MAX_TIMEWARP_S};
use super::pow::{check_pow, next_work_required, Ancestry, PowError};
use super::u256::U256;
use crate::wire::headers::{header_to_bytes, HEADER_BYTES};
use bevy_ecs::prelude::*;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use hashbrown::HashTable;

/// Index of a header in the tree; stable for the tree's life.
pub type BlockIdx = u32;
/// Parent of genesis.
pub const NO_PARENT: BlockIdx = BlockIdx::MAX;

/// Status bits of an entry.
pub mod status {
    /// We received the block and handed it to the validator.
    pub const HAVE_DATA: u8 = 1;
    /// The validator connected it (at some point).
    pub const VALIDATED: u8 = 2;
    /// The validator rejected it.
    pub const FAILED: u8 = 4;
    /// An ancestor was rejected.
    pub const FAILED_PARENT: u8 = 8;
    /// Either failure bit.
    pub const FAILED_ANY: u8 = FAILED | FAILED_PARENT;
    /// Its header went to the validator ahead of its block (a descendant's block came first).
    pub const HEADER_SENT: u8 = 16;
}

/// One accepted header: what header sync, the download window and the chain rules read.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its hash.
    pub hash: BlockHash,
    /// Its parent's index ([`NO_PARENT`] for genesis).
    pub parent: BlockIdx,
    /// Its height.
    pub height: u32,
    /// Header time.
    pub time: u32,
    /// Header bits.
    pub bits: u32,
    /// Total work of the chain ending here, big-endian: as a `Work` (two `u128`) it would align
    /// the entry to 16 bytes, 96 instead of 84 (11 MB over mainnet's 930,000 headers).
    chainwork_be: [u8; 32],
    /// [`status`] bits.
    pub status: u8,
}

impl Entry {
    /// Total work of the chain ending here.
    #[inline]
    pub fn chainwork(&self) -> Work {
        Work::from_be_bytes(self.chainwork_be)
    }
}

/// The fields of a header no chain rule reads once it is accepted: held per entry until the
/// header is archived, then read back from the archive when the header is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderTail {
    /// Version.
    pub version: i32,
    /// Merkle root.
    pub merkle_root: [u8; 32],
    /// Nonce.
    pub nonce: u32,
}

impl HeaderTail {
    /// Reads them from 80 raw bytes.
    pub fn of(raw: &[u8; HEADER_BYTES]) -> Self {
        let f = HeaderFields::of(raw);
        let mut merkle_root = [0; 32];
        merkle_root.copy_from_slice(&raw[36..68]);
        HeaderTail { version: f.version, merkle_root, nonce: f.nonce }
    }
}

/// Where saved headers are read back from: the node's header store. Headers reach it through the
/// shell ([`HeaderTree::unarchived`], then [`HeaderTree::mark_archived`]); the tree then drops
/// their [`HeaderTail`]s and asks for them here whenever it serves one.
pub trait HeaderArchive: Send + Sync + 'static {
    /// The raw headers at `keys` (height, hash), in order, appended to `out`; stops at the first
    /// one it cannot give back (missing, or the store failing), which the caller sees as a short
    /// answer.
    fn read(&self, keys: &[(u32, BlockHash)], out: &mut Vec<[u8; HEADER_BYTES]>);
}

/// Why a header was not accepted. Each maps to its own misbehavior.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderInvalid {
    /// Its parent is not in the tree.
    Unconnecting,
    /// Its parent (or an ancestor) is known invalid.
    InvalidParent,
    /// The header itself was marked invalid earlier.
    KnownInvalid,
    /// Proof of work: bad bits, above the limit, or hash above target.
    Pow(PowError),
    /// `bits` is not what the retarget rules require.
    BadDifficulty,
    /// Time not above the median of the last 11.
    TimeTooOld,
    /// Time more than 2 h ahead of our clock (not the peer's fault for sure: no score in Core).
    TimeTooNew,
    /// BIP94: first block of a period more than 10 min older than its parent.
    Timewarp,
    /// Version below what BIP34/66/65 require at its height.
    ObsoleteVersion,
}

/// The fixed fields of a raw header.
#[derive(Clone, Copy, Debug)]
pub struct HeaderFields {
    /// Version.
    pub version: i32,
    /// Time.
    pub time: u32,
    /// Compact target.
    pub bits: u32,
    /// Nonce.
    pub nonce: u32,
}

impl HeaderFields {
    /// Reads them from 80 raw bytes.
    #[inline]
    pub fn of(raw: &[u8; HEADER_BYTES]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        HeaderFields { version: u32_at(0) as i32, time: u32_at(68), bits: u32_at(72), nonce: u32_at(76) }
    }
}

/// Checks one header against the chain it extends (`chain` ends at its parent): proof of work,
/// required difficulty, time above the median of the last 11 and at most 2 h ahead of `now_s`,
/// BIP94's timewarp rule, and the version floor of BIP34/66/65 at its height. Core's
/// CheckBlockHeader + ContextualCheckBlockHeader.
pub fn check_header(
    raw: &[u8; HEADER_BYTES],
    hash: &BlockHash,
    chain: &impl Ancestry,
    params: &ChainParams,
    now_s: i64,
) -> Result<(), HeaderInvalid> {
    let f = HeaderFields::of(raw);
    check_pow(hash.as_byte_array(), f.bits, params).map_err(HeaderInvalid::Pow)?;
    let parent_h = chain.tip_height();
    let height = parent_h + 1;
    if f.bits != next_work_required(params, chain, f.time) {
        return Err(HeaderInvalid::BadDifficulty);
    }
    if f.time as i64 <= chain.median_time_past() {
        return Err(HeaderInvalid::TimeTooOld);
    }
    if params.enforce_bip94
        && height.is_multiple_of(params.interval())
        && (f.time as i64) < chain.at(parent_h).1 as i64 - MAX_TIMEWARP_S
    {
        return Err(HeaderInvalid::Timewarp);
    }
    if f.time as i64 > now_s + MAX_FUTURE_BLOCK_TIME_S {
        return Err(HeaderInvalid::TimeTooNew);
    }
    let v = f.version;
    if (v < 2 && height >= params.bip34_height)
        || (v < 3 && height >= params.bip66_height)
        || (v < 4 && height >= params.bip65_height)
    {
        return Err(HeaderInvalid::ObsoleteVersion);
    }
    Ok(())
}

/// The header tree resource.
#[derive(Resource)]
pub struct HeaderTree {
    entries: Vec<Entry>,
    /// The tails of `entries[tails_from..]`; those below are read back from `archive` (genesis's
    /// is `genesis_tail`). With an archive `tails_from == archived_upto`, without one it stays 1.
    tails: Vec<HeaderTail>,
    tails_from: BlockIdx,
    /// `entries[..archived_upto]` are durably in the archive (genesis needs no saving).
    archived_upto: BlockIdx,
    genesis_tail: HeaderTail,
    archive: Option<std::sync::Arc<dyn HeaderArchive>>,
    /// Hash → place in `entries`, holding only the place: the hash is in the entry already. A map
    /// keyed by hash held every hash twice (≈ 36 bytes a bucket instead of 5: 32 MB at mainnet's
    /// 930,000 headers, on top of the kernel's own block index).
    index: HashTable<BlockIdx>,
    /// Keyed per process: header hashes are cheap to grind on test networks, so their bytes are
    /// not used as the table's hash directly.
    hasher: ahash::RandomState,
    best: BlockIdx,
    active: Vec<BlockIdx>,
    validated_tip: BlockIdx,
    work_cache: (u32, Work),
}

impl std::fmt::Debug for HeaderTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderTree")
            .field("len", &self.entries.len())
            .field("best", &self.best)
            .field("validated_tip", &self.validated_tip)
            .field("archived_upto", &self.archived_upto)
            .field("archive", &self.archive.is_some())
            .finish()
    }
}

/// The chain ending at one entry, as [`Ancestry`] for the pow and time checks.
pub struct ChainView<'a> {
    tree: &'a HeaderTree,
    tip: BlockIdx,
}

impl Ancestry for ChainView<'_> {
    fn tip_height(&self) -> u32 {
        self.tree.entries[self.tip as usize].height
    }

    fn at(&self, height: u32) -> (u32, u32) {
        let e = &self.tree.entries[self.tree.ancestor(self.tip, height).unwrap_or(self.tip) as usize];
        (e.bits, e.time)
    }

    fn median_time_past(&self) -> i64 {
        self.tree.median_time_past(self.tip)
    }
}

impl HeaderTree {
    /// A tree holding only `params`' genesis, which counts as validated.
    pub fn new(params: &ChainParams) -> Self {
        let g = params.genesis;
        let target = U256::from_compact(g.bits.to_consensus()).unwrap_or(params.pow_limit);
        let genesis = Entry {
            hash: g.block_hash(),
            parent: NO_PARENT,
            height: 0,
            time: g.time,
            bits: g.bits.to_consensus(),
            chainwork_be: target.work().to_be_bytes(),
            status: status::HAVE_DATA | status::VALIDATED,
        };
        let genesis_tail = HeaderTail {
            version: g.version.to_consensus(),
            merkle_root: g.merkle_root.to_byte_array(),
            nonce: g.nonce,
        };
        let hasher = ahash::RandomState::new();
        let mut index = HashTable::new();
        let genesis_hash = hasher.hash_one(genesis.hash);
        index.insert_unique(genesis_hash, 0, |_| genesis_hash);
        HeaderTree {
            entries: vec![genesis],
            tails: Vec::new(),
            tails_from: 1,
            archived_upto: 1,
            genesis_tail,
            archive: None,
            index,
            hasher,
            best: 0,
            active: vec![0],
            validated_tip: 0,
            work_cache: (0, Work::from_be_bytes([0; 32])),
        }
    }

    /// Number of headers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never: genesis is always there (clippy's pairing for `len`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index of `hash`, if we hold it.
    #[inline]
    pub fn get(&self, hash: &BlockHash) -> Option<BlockIdx> {
        let entries = &self.entries;
        self.index.find(self.hasher.hash_one(hash), |&i| entries[i as usize].hash == *hash).copied()
    }

    /// The entry at `idx`.
    #[inline]
    pub fn entry(&self, idx: BlockIdx) -> &Entry {
        &self.entries[idx as usize]
    }

    /// The tail of `idx` if it is held in memory (genesis, or not archived yet).
    fn tail_in_memory(&self, idx: BlockIdx) -> Option<HeaderTail> {
        if idx == 0 {
            return Some(self.genesis_tail);
        }
        idx.checked_sub(self.tails_from).and_then(|i| self.tails.get(i as usize)).copied()
    }

    fn header_with(&self, idx: BlockIdx, tail: &HeaderTail) -> Header {
        let e = self.entry(idx);
        let prev = if e.parent == NO_PARENT { BlockHash::all_zeros() } else { self.entry(e.parent).hash };
        Header {
            version: Version::from_consensus(tail.version),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::from_byte_array(tail.merkle_root),
            time: e.time,
            bits: CompactTarget::from_consensus(e.bits),
            nonce: tail.nonce,
        }
    }

    /// The full header at `idx`; `None` only when it is archived and the archive cannot give it
    /// back.
    pub fn header(&self, idx: BlockIdx) -> Option<Header> {
        match self.tail_in_memory(idx) {
            Some(tail) => Some(self.header_with(idx, &tail)),
            None => {
                let raw = self.raw_header(idx)?;
                bitcoin::consensus::deserialize(&raw).ok()
            }
        }
    }

    /// The 80 bytes of the header at `idx` (for `headers` answers); see [`HeaderTree::header`].
    pub fn raw_header(&self, idx: BlockIdx) -> Option<[u8; HEADER_BYTES]> {
        let mut out = Vec::with_capacity(1);
        self.raw_headers(&[idx], &mut out);
        out.pop()
    }

    /// The 80 bytes of each header of `idxs`, in order, appended to `out`; archived ones are read
    /// in one batch. Stops at the first the archive cannot give back (logged): a short answer.
    pub fn raw_headers(&self, idxs: &[BlockIdx], out: &mut Vec<[u8; HEADER_BYTES]>) {
        let start = out.len();
        let keys: Vec<(u32, BlockHash)> = idxs
            .iter()
            .filter(|&&i| self.tail_in_memory(i).is_none())
            .map(|&i| (self.entry(i).height, self.entry(i).hash))
            .collect();
        let mut archived = Vec::with_capacity(keys.len());
        if let (Some(archive), false) = (&self.archive, keys.is_empty()) {
            archive.read(&keys, &mut archived);
        }
        let mut archived = archived.into_iter();
        for &idx in idxs {
            let raw = match self.tail_in_memory(idx) {
                Some(tail) => header_to_bytes(&self.header_with(idx, &tail)),
                None => match archived.next() {
                    Some(raw) => raw,
                    None => {
                        let e = self.entry(idx);
                        tracing::warn!(
                            height = e.height,
                            hash = %e.hash,
                            served = out.len() - start,
                            "an archived header cannot be read back; the answer stops short"
                        );
                        return;
                    }
                },
            };
            out.push(raw);
        }
    }

    /// Where archived headers are read back from. Until one is attached every tail stays in
    /// memory (the simulator, tests); once it is, the tails of archived headers go.
    pub fn attach_archive(&mut self, archive: std::sync::Arc<dyn HeaderArchive>) {
        self.archive = Some(archive);
        self.drop_archived_tails();
    }

    fn drop_archived_tails(&mut self) {
        if self.archive.is_none() {
            return;
        }
        self.tails.drain(..(self.archived_upto - self.tails_from) as usize);
        self.tails_from = self.archived_upto;
        if self.tails.capacity() > 4 * self.tails.len().max(256) {
            // A header sync's burst is archived: its room goes with it.
            self.tails.shrink_to(self.tails.len() * 2);
        }
    }

    /// The headers not archived yet, oldest first, as the archive keys and stores them (height,
    /// hash, raw bytes); at most `max`.
    pub fn unarchived(&self, max: usize) -> Vec<(u32, BlockHash, [u8; HEADER_BYTES])> {
        let skip = (self.archived_upto - self.tails_from) as usize;
        (self.archived_upto..self.len() as BlockIdx)
            .take(max)
            .zip(&self.tails[skip..])
            .map(|(idx, tail)| {
                let e = self.entry(idx);
                (e.height, e.hash, header_to_bytes(&self.header_with(idx, tail)))
            })
            .collect()
    }

    /// How many headers are not archived yet.
    pub fn unarchived_len(&self) -> usize {
        self.len() - self.archived_upto as usize
    }

    /// The archive durably holds the `n` oldest [`HeaderTree::unarchived`] headers: they are not
    /// listed again, and their tails go if an archive is attached to read them back from.
    pub fn mark_archived(&mut self, n: usize) {
        self.archived_upto += n.min(self.unarchived_len()) as BlockIdx;
        self.drop_archived_tails();
    }

    /// The tip of the most-work valid header chain.
    pub fn best(&self) -> BlockIdx {
        self.best
    }

    /// The best header's entry.
    pub fn best_entry(&self) -> &Entry {
        self.entry(self.best)
    }

    /// The last block the validator connected.
    pub fn validated_tip(&self) -> BlockIdx {
        self.validated_tip
    }

    /// Median time past of the block at `idx`: the median of its own and its ten ancestors'
    /// times (fewer near genesis), the bound a child's timestamp must exceed.
    pub fn median_time_past(&self, idx: BlockIdx) -> i64 {
        // Genesis's parent is NO_PARENT, which no entry has: the walk ends there.
        let times = std::iter::successors(self.entries.get(idx as usize), |e| self.entries.get(e.parent as usize))
            .map(|e| e.time);
        median_time(times)
    }

    /// [`HeaderTree::median_time_past`] of the active chain's block at `height` (0 past the tip):
    /// what the pool's time locks compare against.
    pub fn active_median_time_past(&self, height: u32) -> i64 {
        self.active_at(height).map_or(0, |idx| self.median_time_past(idx))
    }

    /// The block at `height` on the best header chain.
    #[inline]
    pub fn active_at(&self, height: u32) -> Option<BlockIdx> {
        self.active.get(height as usize).copied()
    }

    /// Whether `idx` lies on the best header chain.
    #[inline]
    pub fn is_on_active(&self, idx: BlockIdx) -> bool {
        self.active.get(self.entry(idx).height as usize) == Some(&idx)
    }

    /// The ancestor of `idx` at `height` (itself at its own height); `None` above it.
    pub fn ancestor(&self, idx: BlockIdx, height: u32) -> Option<BlockIdx> {
        let mut cur = idx;
        loop {
            let e = self.entry(cur);
            if e.height < height {
                return None;
            }
            if e.height == height {
                return Some(cur);
            }
            if self.is_on_active(cur) {
                return self.active_at(height);
            }
            cur = e.parent;
        }
    }

    /// The highest block that `idx`'s chain shares with the best header chain.
    pub fn fork_point_with_active(&self, idx: BlockIdx) -> BlockIdx {
        let mut cur = idx;
        while !self.is_on_active(cur) {
            cur = self.entry(cur).parent;
        }
        cur
    }

    /// The chain ending at `idx`, for the pow/time checks.
    pub fn view(&self, idx: BlockIdx) -> ChainView<'_> {
        ChainView { tree: self, tip: idx }
    }

    fn work_of(&mut self, bits: u32, params: &ChainParams) -> Work {
        if self.work_cache.0 != bits || bits == 0 {
            let t = U256::from_compact(bits).unwrap_or(params.pow_limit);
            self.work_cache = (bits, t.work());
        }
        self.work_cache.1
    }

    /// Work of one header with `bits` (cached: runs of equal bits are the rule).
    pub fn header_work(&mut self, bits: u32, params: &ChainParams) -> Work {
        self.work_of(bits, params)
    }

    /// Validates one header against its parent (Core's CheckBlockHeader + ContextualCheckBlockHeader)
    /// and stores it. `hash` is the sha256d of `raw`, computed by the caller once. Returns its index
    /// and whether it is new.
    pub fn accept(
        &mut self,
        raw: &[u8; HEADER_BYTES],
        hash: BlockHash,
        params: &ChainParams,
        now_s: i64,
    ) -> Result<(BlockIdx, bool), HeaderInvalid> {
        if let Some(idx) = self.get(&hash) {
            if self.entry(idx).status & status::FAILED_ANY != 0 {
                return Err(HeaderInvalid::KnownInvalid);
            }
            return Ok((idx, false));
        }
        let prev = BlockHash::from_byte_array(raw[4..36].try_into().unwrap_or([0; 32]));
        let parent = self.get(&prev).ok_or(HeaderInvalid::Unconnecting)?;
        let p = self.entry(parent);
        let height = p.height + 1;
        check_header(raw, &hash, &self.view(parent), params, now_s)?;
        if p.status & status::FAILED_ANY != 0 {
            return Err(HeaderInvalid::InvalidParent);
        }
        let f = HeaderFields::of(raw);
        let (time, bits) = (f.time, f.bits);
        let parent_work = p.chainwork();
        let chainwork = parent_work + self.work_of(bits, params);
        let idx = self.entries.len() as BlockIdx;
        self.entries.push(Entry { hash, parent, height, time, bits, chainwork_be: chainwork.to_be_bytes(), status: 0 });
        self.tails.push(HeaderTail::of(raw));
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(hasher.hash_one(hash), idx, |&i| hasher.hash_one(entries[i as usize].hash));
        if chainwork > self.best_entry().chainwork() {
            self.set_best(idx);
        }
        Ok((idx, true))
    }

    /// [`HeaderTree::accept`] for a header read back from the archive (the node's start-up): it
    /// is not listed to be archived again, and with the archive attached its tail is not held —
    /// as long as every header before it is archived too.
    pub fn accept_archived(
        &mut self,
        raw: &[u8; HEADER_BYTES],
        hash: BlockHash,
        params: &ChainParams,
        now_s: i64,
    ) -> Result<(BlockIdx, bool), HeaderInvalid> {
        let (idx, new) = self.accept(raw, hash, params, now_s)?;
        if new && self.archived_upto == idx {
            self.mark_archived(1);
        }
        Ok((idx, new))
    }

    fn set_best(&mut self, idx: BlockIdx) {
        if self.entry(idx).parent == self.best && self.active.len() == self.entry(idx).height as usize {
            // The common case: the best chain grows by one.
            self.active.push(idx);
            self.best = idx;
            return;
        }
        let mut path = Vec::new();
        let mut cur = idx;
        while !self.is_on_active(cur) {
            path.push(cur);
            cur = self.entry(cur).parent;
        }
        self.active.truncate(self.entry(cur).height as usize + 1);
        self.active.extend(path.iter().rev());
        self.best = idx;
    }

    /// Core's block locator from `idx`: the last 10 hashes one by one, then doubling steps back,
    /// ending at genesis (≤ 101 entries for any chain below 2^90 blocks).
    pub fn locator(&self, idx: BlockIdx) -> Vec<BlockHash> {
        let mut out = Vec::with_capacity(32);
        let mut step = 1u32;
        let mut cur = idx;
        loop {
            let e = self.entry(cur);
            out.push(e.hash);
            if e.height == 0 {
                break;
            }
            let h = e.height.saturating_sub(step);
            cur = self.ancestor(cur, h).unwrap_or(0);
            if out.len() > 10 {
                step = step.saturating_mul(2);
            }
        }
        out
    }

    /// The headers the validator must learn before the block at `idx`: its ancestors whose blocks
    /// it has not had and whose headers it was not sent, parents first; marked sent. Empty when
    /// blocks come in order (the parent's block went first). The validator learns a header only
    /// when a block needs it, so its own block index stays near the blocks in flight instead of
    /// holding every header of a long header chain (Core's regtest consistency check walks that
    /// index after every block and every header: most of a regtest sync's time).
    pub fn headers_ahead_of(&mut self, idx: BlockIdx) -> Vec<[u8; HEADER_BYTES]> {
        let mut missing = Vec::new();
        let mut cur = self.entry(idx).parent;
        while cur != NO_PARENT && self.entry(cur).status & (status::HAVE_DATA | status::HEADER_SENT) == 0 {
            missing.push(cur);
            cur = self.entry(cur).parent;
        }
        missing.reverse();
        let mut out = Vec::with_capacity(missing.len());
        self.raw_headers(&missing, &mut out);
        // Only those read back count as sent: after one the archive could not give, the next
        // block that needs them asks again.
        for &i in &missing[..out.len()] {
            self.entries[i as usize].status |= status::HEADER_SENT;
        }
        out
    }

    /// Marks the block's data as received (handed to the validator).
    pub fn set_have_data(&mut self, idx: BlockIdx) {
        self.entries[idx as usize].status |= status::HAVE_DATA;
    }

    /// The validator gave the block back (out of order, mutated, its own failure): download it again.
    pub fn clear_have_data(&mut self, idx: BlockIdx) {
        self.entries[idx as usize].status &= !status::HAVE_DATA;
    }

    /// The validator disconnected `hash` in a reorg: its parent is the validated tip for now.
    pub fn mark_disconnected(&mut self, hash: &BlockHash) -> Option<BlockIdx> {
        let idx = self.get(hash)?;
        let parent = self.entry(idx).parent;
        if parent != NO_PARENT {
            self.validated_tip = parent;
        }
        Some(parent)
    }

    /// The validator connected `hash`: it becomes the validated tip. `None` if unknown.
    pub fn mark_validated(&mut self, hash: &BlockHash) -> Option<BlockIdx> {
        let idx = self.get(hash)?;
        self.entries[idx as usize].status |= status::VALIDATED | status::HAVE_DATA;
        self.validated_tip = idx;
        Some(idx)
    }

    /// The validator rejected `idx`: it and every descendant are marked invalid and the best
    /// header moves to the most-work chain left.
    pub fn invalidate(&mut self, idx: BlockIdx) {
        self.entries[idx as usize].status |= status::FAILED;
        for j in idx as usize + 1..self.entries.len() {
            let p = self.entries[j].parent;
            if p != NO_PARENT && self.entries[p as usize].status & status::FAILED_ANY != 0 {
                self.entries[j].status |= status::FAILED_PARENT;
            }
        }
        if self.best_entry().status & status::FAILED_ANY != 0 {
            let mut best = 0;
            for (i, e) in self.entries.iter().enumerate() {
                if e.status & status::FAILED_ANY == 0 && e.chainwork() > self.entries[best].chainwork() {
                    best = i;
                }
            }
            self.set_best(best as BlockIdx);
        }
    }

    /// Panics with a message when the tree contradicts itself: the index and the entries disagree,
    /// an entry's height or chainwork does not follow from its parent's, a child of a failed entry
    /// is not marked failed, the best chain is not the chain from genesis to the best header, or
    /// a valid entry has more work than the best header. O(n); for tests and the fuzz targets.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        assert_eq!(self.index.len(), self.entries.len(), "index and entries differ in size");
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(self.get(&e.hash), Some(i as BlockIdx), "entry {i} is not indexed at its place");
            if i == 0 {
                assert_eq!((e.parent, e.height), (NO_PARENT, 0), "genesis");
                continue;
            }
            assert!((e.parent as usize) < i, "entry {i}'s parent {} comes after it", e.parent);
            let p = &self.entries[e.parent as usize];
            assert_eq!(e.height, p.height + 1, "entry {i}'s height");
            assert!(e.chainwork() > p.chainwork(), "entry {i} has no more work than its parent");
            if p.status & status::FAILED_ANY != 0 {
                assert!(e.status & status::FAILED_ANY != 0, "entry {i}'s parent failed but it is not marked");
            }
        }
        let best = self.best_entry();
        assert_eq!(self.active.len(), best.height as usize + 1, "best chain length");
        assert_eq!(self.active.last(), Some(&self.best), "best chain ends at the best header");
        for (h, &idx) in self.active.iter().enumerate() {
            let e = self.entry(idx);
            assert_eq!(e.height as usize, h, "best chain entry at height {h}");
            if h > 0 {
                assert_eq!(e.parent, self.active[h - 1], "best chain broken at height {h}");
            }
        }
        if self.best != 0 {
            assert_eq!(best.status & status::FAILED_ANY, 0, "the best header is invalid");
        }
        for (i, e) in self.entries.iter().enumerate() {
            if e.status & status::FAILED_ANY == 0 {
                assert!(e.chainwork() <= best.chainwork(), "entry {i} has more work than the best header");
            }
        }
        assert!((self.validated_tip as usize) < self.entries.len(), "validated tip out of range");
        assert_eq!(self.tails_from as usize + self.tails.len(), self.entries.len(), "tails end at the last entry");
        assert!(self.archived_upto as usize <= self.entries.len(), "archived past the last entry");
        let tails_from = if self.archive.is_some() { self.archived_upto } else { 1 };
        assert_eq!(self.tails_from, tails_from, "tails held for archived headers, or dropped without an archive");
    }

    /// Heap bytes held (entries, unarchived tails, index and best chain), for memory bounds.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.tails.capacity() * std::mem::size_of::<HeaderTail>()
            + self.index.capacity() * (std::mem::size_of::<BlockIdx>() + 1)
            + self.active.capacity() * 4
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
