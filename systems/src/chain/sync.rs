//! Sync configuration and state shared by headers_sync, block_download and serve_blocks: the
//! knobs (Core's defaults), whether we are in initial block download, and the per-peer
//! components (what each peer has told us about its chain, its block requests, its getdata queue).

use super::presync::HeadersPresync;
use super::tree::BlockIdx;
use crate::components::ConnId;
use crate::wire::Inventory;
use ahash::AHashMap;
use bevy_ecs::prelude::*;
use bitcoin::BlockHash;
use std::collections::VecDeque;

/// Knobs of headers sync, block download and serving. Defaults are Bitcoin Core's where it has one.
#[derive(Resource, Clone, Debug)]
pub struct SyncConfig {
    /// In IBD while the validated tip is older than this (Core's -maxtipage, 24 h).
    pub max_tip_age_s: i64,
    /// Blocks beyond the last validated one that may be requested (Core's BLOCK_DOWNLOAD_WINDOW).
    pub window_blocks: u32,
    /// Blocks in flight per peer (Core's MAX_BLOCKS_IN_TRANSIT_PER_PEER).
    pub max_in_flight_per_peer: usize,
    /// First stalling timeout (Core's BLOCK_STALLING_TIMEOUT_DEFAULT).
    pub stalling_timeout_min_ms: u64,
    /// Largest stalling timeout after doubling (Core's BLOCK_STALLING_TIMEOUT_MAX).
    pub stalling_timeout_max_ms: u64,
    /// Factor applied to the stalling timeout per connected block, in thousandths (Core: 0.85).
    pub stalling_decay_permille: u64,
    /// A peer's oldest request may be this old (Core: 1 × 10 min spacing)...
    pub download_timeout_base_ms: u64,
    /// ...plus this per other peer downloading from us in parallel (Core: 0.5 × spacing).
    pub download_timeout_per_peer_ms: u64,
    /// Blocks handed to the validator and not yet processed; over it we stop requesting.
    pub validation_pending_blocks_max: usize,
    /// Bytes handed to the validator and not yet processed; over it we stop requesting. 128 MB
    /// is some 80 mainnet blocks, many seconds of validation: enough to keep the validator busy,
    /// and it keeps the whole node's worst case under 1 GiB (benches/REPORT-memory.md).
    pub validation_pending_bytes_max: usize,
    /// Getdata block entries queued per peer (more are dropped). Core asks a peer for at most 16
    /// blocks at once and a `getblocks` answer offers 500, so 1,000 leaves room for any honest
    /// requester and bounds the queue at 36 KB (50,000 entries were 1.8 MB per peer).
    pub serve_queue_max: usize,
    /// Bytes in all peers' send queues, block reads out counted at the largest block size, over
    /// which no block read starts: peers that ask for blocks and never read hold at most this
    /// together (125 of them could otherwise hold 5 MB each), served in turn as it drains.
    pub serve_bytes_total_max: usize,
    /// Block reads outstanding per peer at the shell.
    pub serve_reads_max: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            max_tip_age_s: 24 * 60 * 60,
            window_blocks: 1024,
            max_in_flight_per_peer: 16,
            stalling_timeout_min_ms: 2_000,
            stalling_timeout_max_ms: 64_000,
            stalling_decay_permille: 850,
            download_timeout_base_ms: 600_000,
            download_timeout_per_peer_ms: 300_000,
            validation_pending_blocks_max: 256,
            validation_pending_bytes_max: 128 << 20,
            serve_queue_max: 1_000,
            serve_bytes_total_max: 128 << 20,
            serve_reads_max: 2,
        }
    }
}

/// Whether the node is in initial block download. Other systems read it (tx relay, getheaders
/// answers...). Latches off like Core's: once out, a stale tip does not put us back.
#[derive(Resource, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ibd {
    /// In IBD.
    pub active: bool,
}

impl Default for Ibd {
    fn default() -> Self {
        Ibd { active: true }
    }
}

/// Node-wide sync state.
#[derive(Resource, Debug)]
pub struct SyncState {
    /// Current stalling timeout (adaptive: doubles on each staller, decays per connected block).
    pub stalling_timeout_ms: u64,
    /// Ticks the scheduler skipped requesting because the validation queue was full.
    pub backpressure_ticks: u64,
    /// Blocks that arrived and were not requested (dropped).
    pub unrequested_blocks: u64,
    /// Every block in flight and who holds it.
    pub in_flight: AHashMap<BlockHash, ConnId>,
    /// Who sent each block the validator has not finished with (to blame a rejected one).
    pub block_from: AHashMap<BlockHash, ConnId>,
    /// Peers one of whose requests another peer fulfilled (their lists are pruned when next seen).
    pub taken_from: ahash::AHashSet<ConnId>,
    /// Addresses dropped for stalling, until when they are asked for blocks only if no other peer
    /// can serve: a manual peer is redialed within seconds, and each time it took the lowest
    /// heights and held the window again (4 sources, one delaying each block 2 s: 113 s instead of
    /// 70). By address and port: a peer we dial comes back on both (an inbound one would come
    /// from a new port, but it is its own choice to come back, and its IP may be shared).
    /// At most [`SIDELINED_MAX`] entries.
    pub sidelined: AHashMap<std::net::SocketAddr, u64>,
}

/// How long an address dropped for stalling is asked for blocks only as a last resort.
pub const SIDELINE_MS: u64 = 10 * 60 * 1000;
/// Most addresses remembered as stallers (a full map forgets the one whose time ends first).
pub const SIDELINED_MAX: usize = 1_024;

impl SyncState {
    /// Remembers `addr` as a staller until `now_ms + SIDELINE_MS`; bounded.
    pub fn sideline(&mut self, addr: std::net::SocketAddr, now_ms: u64) {
        if self.sidelined.len() >= SIDELINED_MAX && !self.sidelined.contains_key(&addr) {
            self.sidelined.retain(|_, until| *until > now_ms);
            if self.sidelined.len() >= SIDELINED_MAX {
                let first = self.sidelined.iter().min_by_key(|(_, until)| **until).map(|(a, _)| *a);
                if let Some(first) = first {
                    self.sidelined.remove(&first);
                }
            }
        }
        self.sidelined.insert(addr, now_ms + SIDELINE_MS);
    }

    /// Whether `addr` was dropped for stalling less than [`SIDELINE_MS`] ago.
    pub fn is_sidelined(&self, addr: std::net::SocketAddr, now_ms: u64) -> bool {
        self.sidelined.get(&addr).is_some_and(|until| *until > now_ms)
    }
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            stalling_timeout_ms: 2_000,
            backpressure_ticks: 0,
            unrequested_blocks: 0,
            in_flight: AHashMap::new(),
            block_from: AHashMap::new(),
            taken_from: ahash::AHashSet::new(),
            sidelined: AHashMap::new(),
        }
    }
}

/// What a peer told us about its chain, and our header sync with it.
#[derive(Component, Debug, Default)]
pub struct PeerChain {
    /// Its best header we know of (Core's pindexBestKnownBlock); RPC's synced_headers.
    pub best_known: Option<BlockIdx>,
    /// The last block its best known header shares with our best header chain (cached per tick).
    pub common: Option<BlockIdx>,
    /// We asked it for headers (a sync peer).
    pub sync_started: bool,
    /// When it must have brought our best header near today (Core's m_headers_sync_timeout).
    pub sync_deadline_ms: Option<u64>,
    /// Its low-work sync, while one runs.
    pub presync: Option<Box<HeadersPresync>>,
    /// When we last sent it getheaders (clock ms).
    pub last_getheaders_ms: u64,
    /// When we last probed it: asked it, idle and not known to hold our best header chain, for
    /// headers from our best header's parent (clock ms; 0: never).
    pub probed_ms: u64,
    /// Our outstanding getheaders is a probe: its answer tells what it holds and is not continued
    /// (a probed peer does not become a second headers sync).
    pub probing: bool,
    /// The last header we sent it, in a `headers` answer or announcement (Core's
    /// pindexBestHeaderSent): it has this header and every ancestor.
    pub best_sent: Option<BlockIdx>,
    /// The served tip block announcements last looked at for it; `None`: look at the next pass
    /// (set so for a peer whose handshake overlapped a tip move).
    pub announced_for: Option<BlockIdx>,
    /// A getheaders that arrived while its send queue was over the soft bound, answered once the
    /// queue drains; a newer one replaces it (its locator says at least as much). Without this, a
    /// tick's 32 getheaders would each queue a 162 KB answer past the bound (5 MB per peer).
    pub deferred_getheaders: Option<crate::wire::Locator>,
}

impl PeerChain {
    /// It told us of `idx` (headers, inv, a getheaders locator, a block): its best known block
    /// moves there if that has more work.
    pub fn note_known(&mut self, tree: &super::HeaderTree, idx: BlockIdx) {
        let better = self.best_known.is_none_or(|b| tree.entry(idx).chainwork() > tree.entry(b).chainwork());
        if better {
            self.best_known = Some(idx);
            self.common = None;
        }
    }

    /// Whether it has the header `idx`: an ancestor of its best known block or of the last header
    /// we sent it (Core's PeerHasHeader). What it has is never announced to it.
    pub fn has_header(&self, tree: &super::HeaderTree, idx: BlockIdx) -> bool {
        let height = tree.entry(idx).height;
        [self.best_known, self.best_sent].into_iter().flatten().any(|b| tree.ancestor(b, height) == Some(idx))
    }

    /// Whether it holds a headers sync that is still running: started, with a deadline not yet
    /// lifted by our best header nearing today or by its empty answer.
    pub fn syncing(&self) -> bool {
        self.sync_started && self.sync_deadline_ms.is_some()
    }

    /// Height of its best known header, -1 when unknown (getpeerinfo's `synced_headers`).
    pub fn synced_headers(&self, tree: &super::HeaderTree) -> i32 {
        self.best_known.map_or(-1, |i| tree.entry(i).height as i32)
    }

    /// Height of the last block it shares with our best chain, -1 when unknown (`synced_blocks`).
    pub fn synced_blocks(&self, tree: &super::HeaderTree) -> i32 {
        self.best_known.map_or(-1, |i| tree.entry(tree.fork_point_with_active(i)).height as i32)
    }

    /// Height reached by its low-work header sync, -1 when none runs (`presynced_headers`).
    pub fn presynced_headers(&self) -> i32 {
        self.presync.as_ref().map_or(-1, |p| p.presync_height() as i32)
    }
}

/// Block announcements: the tip peers may hear of, which tip they were last made for, and when
/// each recent block was first heard of (for the relay latency histogram).
#[derive(Resource, Debug, Default)]
pub struct BlockRelay {
    /// The validator's tip as soon as it moved ([`super::ValidationEvent::Tip`]): ahead of the
    /// validated tip while the shell holds connection reports until they are durable.
    pub validator_tip: Option<BlockIdx>,
    /// The served tip seen by the last tick, and when it last moved (clock ms).
    pub seen: Option<(BlockIdx, u64)>,
    /// The served tip the last announcement pass ran for.
    pub announced_tip: Option<BlockIdx>,
    /// A peer whose handshake overlapped a tip move became ready: the next pass looks at it.
    pub late_peers: bool,
    /// Blocks first heard of outside IBD (their header accepted) and not yet announced onward,
    /// oldest first; at most [`BlockRelay::HEARD_MAX`], the oldest forgotten first.
    pub heard: VecDeque<(BlockHash, u64)>,
    /// The same first-heard times, kept until the block is connected (for the arrival
    /// histogram); at most [`BlockRelay::HEARD_MAX`].
    pub arriving: VecDeque<(BlockHash, u64)>,
}

impl BlockRelay {
    /// Blocks whose first-heard time is kept (a burst of new blocks is far smaller).
    pub const HEARD_MAX: usize = 64;

    /// The tip peers hear of and are served headers up to: the validator's newest, else the
    /// validated tip.
    pub fn served_tip(&self, tree: &super::HeaderTree) -> BlockIdx {
        self.validator_tip.unwrap_or_else(|| tree.validated_tip())
    }

    /// `hash` was first heard of at `now_ms`.
    pub fn heard(&mut self, hash: BlockHash, now_ms: u64) {
        if self.heard.len() == Self::HEARD_MAX {
            self.heard.pop_front();
        }
        self.heard.push_back((hash, now_ms));
        if self.arriving.len() == Self::HEARD_MAX {
            self.arriving.pop_front();
        }
        self.arriving.push_back((hash, now_ms));
    }

    /// When `hash` was first heard of, once: its connection takes it.
    pub fn take_arriving(&mut self, hash: &BlockHash) -> Option<u64> {
        let pos = self.arriving.iter().position(|(h, _)| h == hash)?;
        self.arriving.remove(pos).map(|(_, ms)| ms)
    }

    /// When `hash` was first heard of, once: the first announcement onward takes it.
    pub fn take_heard(&mut self, hash: &BlockHash) -> Option<u64> {
        let pos = self.heard.iter().position(|(h, _)| h == hash)?;
        self.heard.remove(pos).map(|(_, ms)| ms)
    }

    /// When the served tip last moved (0 before the first tick).
    pub fn tip_moved_ms(&self) -> u64 {
        self.seen.map_or(0, |(_, ms)| ms)
    }
}

/// A block we asked a peer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requested {
    /// The block.
    pub hash: BlockHash,
    /// Its index in the header tree.
    pub idx: BlockIdx,
    /// When we asked (clock ms).
    pub at_ms: u64,
}

/// A peer's block requests and download figures.
#[derive(Component, Debug, Default)]
pub struct PeerBlocks {
    /// Blocks in flight, oldest first (≤ max_in_flight_per_peer).
    pub in_flight: VecDeque<Requested>,
    /// Since when its oldest request counts against the download timeout (Core's m_downloading_since).
    pub downloading_since_ms: u64,
    /// Since when it holds up the window (Core's m_stalling_since).
    pub stalling_since_ms: Option<u64>,
    /// Blocks it delivered that we had asked for.
    pub blocks_received: u64,
    /// Last request → arrival time.
    pub last_latency_ms: Option<u64>,
    /// Smoothed request → arrival time (EWMA, 1/8).
    pub avg_latency_ms: Option<u64>,
}

/// A peer's getdata block entries waiting to be served, and reads out at the shell.
#[derive(Component, Debug, Default)]
pub struct ServeQueue {
    /// Requests not yet looked up, in request order.
    pub pending: VecDeque<ServeRequest>,
    /// Reads asked of the shell, in order: hash and what to make of the block.
    pub reads: VecDeque<(BlockHash, ServeAs)>,
    /// Entries dropped because the queue was full.
    pub dropped: u64,
}

impl ServeQueue {
    /// `getblocktxn` requests waiting (each up to 128 KB of indexes: at most
    /// [`ServeQueue::TXN_REQUESTS_MAX`] are kept).
    pub fn txn_requests(&self) -> usize {
        self.pending.iter().filter(|r| matches!(r, ServeRequest::Txn(_))).count()
    }

    /// `getblocktxn` requests a peer may have waiting; more are dropped and counted. An honest
    /// peer asks about one block at a time.
    pub const TXN_REQUESTS_MAX: usize = 2;
}

/// One request for block data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeRequest {
    /// A `getdata` entry: a block (with or without witness) or a compact block.
    Block(Inventory),
    /// A `getblocktxn`.
    Txn(crate::wire::BlockTxnRequest),
}

/// What a block read is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeAs {
    /// A `block`, with or without its witness.
    Block {
        /// Witness serialization asked for.
        witness: bool,
    },
    /// A `cmpctblock`.
    Compact,
    /// A `blocktxn` with the transactions at these positions.
    Txn(Vec<u16>),
}
