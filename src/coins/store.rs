//! The coin store: the active chain's unspent outputs in their own LMDB environment
//! (`<datadir>/coins`), the best block they reflect, and per-block undo records so blocks can be
//! disconnected without asking the kernel (whose undo may be out of step after a crash).
//!
//! Every block is applied in ONE write transaction — spend its inputs, add its outputs, write its
//! undo, move the best block — and LMDB commits are atomic and durable, so a crash or kill -9
//! leaves the store exactly at a block boundary. Unspendable outputs (OP_RETURN, or scripts over
//! 10,000 bytes, as Core's `IsUnspendable`) are not stored, so counts match `gettxoutsetinfo`.
//!
//! Undo is kept for the last [`CoinStoreOptions::undo_keep_blocks`] blocks (Core keeps 288 on a
//! pruned node, the same depth bound on reorgs); a deeper reorg makes the caller rebuild the store
//! from the kernel's blocks (see `reconcile`). Mainnet's two duplicate coinbases (BIP30) are not
//! special-cased: their second copy overwrites the first, as both are unspendable in Core anyway.

use super::codec::{self, Undo, KEY_BYTES};
use crate::lmdb_pages::MappedPages;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, OutPoint};
use heed::types::{Bytes, Str};
use heed::{Database, Env, EnvOpenOptions, RwTxn, WithoutTls};
use oni_systems::mempool::{Coin, CoinView};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Core's `MAX_SCRIPT_SIZE`: longer scripts can never be spent.
const MAX_SCRIPT_BYTES: usize = 10_000;
const META_BEST: &str = "best";
/// Key operations between two releases of the map inside one transaction. Each read that faults
/// maps up to 64 KiB around it (the kernel's fault-around), and outpoints are random keys, so a
/// mainnet block's ~7,000 spends and creations would map some 450 MB before its commit; every 4
/// operations, a few hundred KB at most, for one `madvise` (≈ 3 µs) per 4 B-tree walks. Heavy-chain
/// race, peak RSS: 3–3.5 MB of map between releases every 64, under 1 MB every 16 (68 MB peak),
/// 67 MB every 4 at the same wall and CPU time (the peak counts each release's high).
const RELEASE_EVERY_OPS: usize = 4;
const META_GENESIS: &str = "genesis";
/// `resident_before_release_max` while no test samples it.
#[cfg(test)]
const PROBE_OFF: u64 = u64::MAX;

/// How the store is opened.
#[derive(Clone, Debug)]
pub struct CoinStoreOptions {
    /// Largest the environment may grow. LMDB maps it lazily (the file grows as written), so this
    /// is address space, not disk: 256 GiB leaves mainnet's ~12 GB UTXO set ample room.
    pub map_size_bytes: usize,
    /// Blocks whose undo is kept (how deep a reorg the store follows without a rebuild).
    pub undo_keep_blocks: u32,
}

impl Default for CoinStoreOptions {
    fn default() -> Self {
        CoinStoreOptions { map_size_bytes: 256 << 30, undo_keep_blocks: 288 }
    }
}

/// A block on the store's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainPoint {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
}

/// Why the store refused or failed.
#[derive(Debug)]
pub enum CoinsError {
    /// LMDB failed.
    Lmdb(heed::Error),
    /// The directory could not be created.
    Io(PathBuf, std::io::Error),
    /// A record did not decode, or the store belongs to another chain.
    Corrupt(String),
    /// The block does not extend the store's best block.
    NotNext {
        /// The store's best block.
        best: ChainPoint,
        /// The block's parent.
        prev: BlockHash,
        /// The height it was offered at.
        height: u32,
    },
    /// A block spends a coin the store does not hold (the store is out of step with the chain).
    MissingCoin(OutPoint),
    /// The best block's undo is gone (deeper than the undo kept): rebuild from the kernel.
    UndoMissing {
        /// Height of the block that could not be disconnected.
        height: u32,
    },
    /// Nothing to disconnect below genesis.
    AtGenesis,
    /// The chain source (the kernel) could not give what was needed.
    Source(String),
}

impl fmt::Display for CoinsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoinsError::Lmdb(e) => write!(f, "coin store: {e}"),
            CoinsError::Io(p, e) => write!(f, "coin store {}: {e}", p.display()),
            CoinsError::Corrupt(what) => write!(f, "coin store damaged: {what}"),
            CoinsError::NotNext { best, prev, height } => write!(
                f,
                "block at {height} (parent {prev}) does not extend the coin store's best {} at {}",
                best.hash, best.height
            ),
            CoinsError::MissingCoin(o) => write!(f, "coin store lacks spent coin {o}"),
            CoinsError::UndoMissing { height } => write!(f, "coin store has no undo for height {height}"),
            CoinsError::AtGenesis => write!(f, "coin store is at genesis"),
            CoinsError::Source(what) => write!(f, "coin store source: {what}"),
        }
    }
}

impl std::error::Error for CoinsError {}

impl CoinsError {
    /// Whether the disk or LMDB failed (full disk, full map, IO error): the change was not made
    /// and the same change can succeed later, as opposed to a change that does not fit the store.
    pub fn is_io(&self) -> bool {
        matches!(self, CoinsError::Lmdb(_) | CoinsError::Io(..))
    }
}

impl From<heed::Error> for CoinsError {
    fn from(e: heed::Error) -> Self {
        CoinsError::Lmdb(e)
    }
}

/// The open coin store. Cheap to clone (clones share the environment); LMDB lets readers on any
/// thread run beside the one writer, so the world reads while the chain side writes.
#[derive(Clone)]
pub struct CoinStore {
    env: Env<WithoutTls>,
    coins: Database<Bytes, Bytes>,
    /// Height (u32 big-endian) → undo record of the block at that height on the store's chain.
    undo: Database<Bytes, Bytes>,
    meta: Database<Str, Bytes>,
    genesis: BlockHash,
    undo_keep_blocks: u32,
    /// Fault injection for tests of the retry path, shared by clones as the environment is:
    /// writes to let through, then writes to fail.
    write_faults: Arc<(AtomicUsize, AtomicUsize)>,
    /// The environment's map, released after each commit and every [`RELEASE_EVERY_OPS`] key
    /// operations inside one: every block touches pages all over the file (outpoints are random
    /// keys), which would otherwise all stay in the RSS.
    pages: MappedPages,
    /// Largest map residency seen just before a release inside a transaction, sampled only once a
    /// test has set it below [`PROBE_OFF`] (reading smaps every few operations would slow every
    /// other test of the store).
    #[cfg(test)]
    pub(crate) resident_before_release_max: Arc<std::sync::atomic::AtomicU64>,
}

fn unspendable(script: &bitcoin::Script) -> bool {
    script.is_op_return() || script.len() > MAX_SCRIPT_BYTES
}

fn point_bytes(p: ChainPoint) -> [u8; 36] {
    let mut b = [0u8; 36];
    b[..32].copy_from_slice(p.hash.as_byte_array());
    b[32..].copy_from_slice(&p.height.to_le_bytes());
    b
}

impl CoinStore {
    /// Opens (creating if needed) the store in `dir` for the chain starting at `genesis`.
    pub fn open(dir: &Path, genesis: BlockHash) -> Result<CoinStore, CoinsError> {
        Self::open_with(dir, genesis, &CoinStoreOptions::default())
    }

    /// [`CoinStore::open`] with explicit options.
    pub fn open_with(dir: &Path, genesis: BlockHash, options: &CoinStoreOptions) -> Result<CoinStore, CoinsError> {
        std::fs::create_dir_all(dir).map_err(|e| CoinsError::Io(dir.to_path_buf(), e))?;
        crate::store::precheck(dir).map_err(|e| CoinsError::Corrupt(e.to_string()))?;
        // SAFETY: one environment per directory per process (heed refuses a second open), nothing
        // else writes these files, and a truncated file was refused above (it would fault when mapped).
        let env = unsafe {
            EnvOpenOptions::new().read_txn_without_tls().map_size(options.map_size_bytes).max_dbs(4).open(dir)
        }
        .map_err(|e| match e {
            heed::Error::Mdb(
                m @ (heed::MdbError::Invalid | heed::MdbError::Corrupted | heed::MdbError::VersionMismatch),
            ) => CoinsError::Corrupt(m.to_string()),
            other => CoinsError::Lmdb(other),
        })?;
        let mut wtxn = env.write_txn()?;
        let coins = env.create_database(&mut wtxn, Some("coins"))?;
        let undo = env.create_database(&mut wtxn, Some("undo"))?;
        let meta: Database<Str, Bytes> = env.create_database(&mut wtxn, Some("meta"))?;
        match meta.get(&wtxn, META_GENESIS)? {
            Some(g) if g != genesis.as_byte_array() => {
                return Err(CoinsError::Corrupt(format!("made for another chain (genesis {})", hex(g))))
            }
            Some(_) => {}
            None => meta.put(&mut wtxn, META_GENESIS, genesis.as_byte_array())?,
        }
        wtxn.commit()?;
        let pages = MappedPages::of(&dir.join("data.mdb"));
        if pages.is_empty() {
            tracing::debug!(dir = %dir.display(), "coin store map not found; its pages stay mapped");
        }
        Ok(CoinStore {
            env,
            pages,
            coins,
            undo,
            meta,
            genesis,
            undo_keep_blocks: options.undo_keep_blocks.max(1),
            write_faults: Arc::default(),
            #[cfg(test)]
            resident_before_release_max: Arc::new(PROBE_OFF.into()),
        })
    }

    /// [`CoinStore::open`], but a damaged store (or one made for another chain) is deleted and an
    /// empty one opened: the store is derived data, rebuilt from the kernel's blocks by `reconcile`.
    pub fn open_or_reset(dir: &Path, genesis: BlockHash) -> Result<CoinStore, CoinsError> {
        match Self::open(dir, genesis) {
            Err(CoinsError::Corrupt(what)) => {
                tracing::warn!(%what, dir = %dir.display(), "coin store unusable; deleting it, it is rebuilt from the kernel");
                std::fs::remove_dir_all(dir).map_err(|e| CoinsError::Io(dir.to_path_buf(), e))?;
                Self::open(dir, genesis)
            }
            other => other,
        }
    }

    /// The chain's genesis (the best block of an empty store).
    pub fn genesis(&self) -> BlockHash {
        self.genesis
    }

    fn best_in(&self, txn: &heed::RoTxn) -> Result<ChainPoint, CoinsError> {
        match self.meta.get(txn, META_BEST)? {
            None => Ok(ChainPoint { hash: self.genesis, height: 0 }),
            Some(b) if b.len() == 36 => {
                let hash = BlockHash::from_byte_array(b[..32].try_into().unwrap_or([0; 32]));
                Ok(ChainPoint { hash, height: u32::from_le_bytes([b[32], b[33], b[34], b[35]]) })
            }
            Some(b) => Err(CoinsError::Corrupt(format!("best block record of {} bytes", b.len()))),
        }
    }

    /// The block the coins reflect (genesis at height 0 when empty).
    pub fn best(&self) -> Result<ChainPoint, CoinsError> {
        let rtxn = self.env.read_txn()?;
        self.best_in(&rtxn)
    }

    /// Hash of the store's block at `height`, where it still knows it (the best block, genesis, or
    /// a block whose undo is kept).
    pub fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, CoinsError> {
        let rtxn = self.env.read_txn()?;
        let best = self.best_in(&rtxn)?;
        if height > best.height {
            return Ok(None);
        }
        if height == best.height {
            return Ok(Some(best.hash));
        }
        if height == 0 {
            return Ok(Some(self.genesis));
        }
        let rec = self.undo.get(&rtxn, &height.to_be_bytes())?;
        Ok(rec.and_then(|r| r.get(..32)).map(|h| BlockHash::from_byte_array(h.try_into().unwrap_or([0; 32]))))
    }

    /// The unspent output at `outpoint`.
    pub fn get(&self, outpoint: &OutPoint) -> Result<Option<Coin>, CoinsError> {
        let rtxn = self.env.read_txn()?;
        match self.coins.get(&rtxn, &codec::key(outpoint))? {
            None => Ok(None),
            Some(raw) => codec::decode_coin(raw)
                .map(Some)
                .ok_or_else(|| CoinsError::Corrupt(format!("coin record for {outpoint}"))),
        }
    }

    /// Number of unspent outputs (O(1): LMDB keeps the count).
    pub fn len(&self) -> Result<u64, CoinsError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.coins.len(&rtxn)?)
    }

    /// Whether no coin is held.
    pub fn is_empty(&self) -> Result<bool, CoinsError> {
        Ok(self.len()? == 0)
    }

    /// Count and total amount of the coins in one consistent snapshot (`gettxoutsetinfo`'s
    /// `txouts` and `total_amount`); walks every coin.
    pub fn stats(&self) -> Result<(ChainPoint, u64, u64), CoinsError> {
        let rtxn = self.env.read_txn()?;
        let best = self.best_in(&rtxn)?;
        let (mut count, mut total_sat) = (0u64, 0u64);
        for row in self.coins.iter(&rtxn)? {
            let (_, raw) = row?;
            total_sat += codec::coin_value_sat(raw).ok_or_else(|| CoinsError::Corrupt("short coin record".into()))?;
            count += 1;
        }
        Ok((best, count, total_sat))
    }

    /// Every coin, in key order (tests and audits; the whole set in memory).
    pub fn all(&self) -> Result<Vec<(OutPoint, Coin)>, CoinsError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for row in self.coins.iter(&rtxn)? {
            let (k, raw) = row?;
            let key: [u8; KEY_BYTES] = k.try_into().map_err(|_| CoinsError::Corrupt("coin key length".into()))?;
            let coin = codec::decode_coin(raw).ok_or_else(|| CoinsError::Corrupt("short coin record".into()))?;
            out.push((codec::outpoint(&key), coin));
        }
        Ok(out)
    }

    /// Makes the next `n` writes (connect, disconnect, wipe) fail before they change anything,
    /// as a full disk or a full LMDB map would (tests of the follower's retry path); `0` ends an
    /// injected fault, `usize::MAX` makes one last until then.
    pub fn inject_write_failures(&self, n: usize) {
        self.inject_write_failures_after(0, n);
    }

    /// [`CoinStore::inject_write_failures`] after `ok` more writes succeed (a fault that starts
    /// half way through a run of writes, such as a reconcile).
    pub fn inject_write_failures_after(&self, ok: usize, n: usize) {
        self.write_faults.1.store(n, Ordering::SeqCst);
        self.write_faults.0.store(ok, Ordering::SeqCst);
    }

    /// A write transaction, unless an injected fault is due.
    fn write_txn(&self) -> Result<RwTxn<'_>, CoinsError> {
        let (ok, fail) = &*self.write_faults;
        let take = |n: &AtomicUsize| n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if !take(ok) && take(fail) {
            let injected = std::io::Error::other("injected coin store write failure");
            return Err(CoinsError::Lmdb(heed::Error::Io(injected)));
        }
        Ok(self.env.write_txn()?)
    }

    /// Applies `block` at `height` on top of the best block: one atomic, durable transaction.
    pub fn connect(&self, block: &Block, height: u32) -> Result<ChainPoint, CoinsError> {
        let mut wtxn = self.write_txn()?;
        let best = self.best_in(&wtxn)?;
        let prev = block.header.prev_blockhash;
        if prev != best.hash || height != best.height + 1 {
            return Err(CoinsError::NotNext { best, prev, height });
        }
        let hash = block.block_hash();
        let mut undo = Undo { hash, prev, height, created: Vec::new(), spent: Vec::new() };
        let mut ops = 0usize;
        for (i, tx) in block.txdata.iter().enumerate() {
            if i > 0 {
                for input in &tx.input {
                    let k = codec::key(&input.previous_output);
                    let spent = self.coins.get(&wtxn, &k)?.map(<[u8]>::to_vec);
                    let Some(spent) = spent else { return Err(CoinsError::MissingCoin(input.previous_output)) };
                    self.coins.delete(&mut wtxn, &k)?;
                    undo.spent.push((k, spent));
                    self.op_done(&mut ops);
                }
            }
            let txid = tx.compute_txid();
            for (vout, output) in tx.output.iter().enumerate() {
                if unspendable(&output.script_pubkey) {
                    continue;
                }
                let k = codec::key(&OutPoint { txid, vout: vout as u32 });
                let coin = Coin { output: output.clone(), height, coinbase: i == 0 };
                self.coins.put(&mut wtxn, &k, &codec::encode_coin(&coin))?;
                undo.created.push(k);
                self.op_done(&mut ops);
            }
        }
        self.undo.put(&mut wtxn, &height.to_be_bytes(), &codec::encode_undo(&undo))?;
        if let Some(old) = height.checked_sub(self.undo_keep_blocks) {
            self.undo.delete(&mut wtxn, &old.to_be_bytes())?;
        }
        let point = ChainPoint { hash, height };
        self.set_best(&mut wtxn, point)?;
        wtxn.commit()?;
        self.pages.release();
        Ok(point)
    }

    /// Takes the best block back with the store's own undo: one atomic, durable transaction.
    /// Returns what was undone (its hash and height are the block that left).
    pub fn disconnect_tip(&self) -> Result<Undo, CoinsError> {
        let mut wtxn = self.write_txn()?;
        let best = self.best_in(&wtxn)?;
        if best.height == 0 {
            return Err(CoinsError::AtGenesis);
        }
        let key = best.height.to_be_bytes();
        let raw = self.undo.get(&wtxn, &key)?.ok_or(CoinsError::UndoMissing { height: best.height })?;
        let undo =
            codec::decode_undo(raw).ok_or_else(|| CoinsError::Corrupt(format!("undo record at {}", best.height)))?;
        if undo.hash != best.hash || undo.height != best.height {
            return Err(CoinsError::Corrupt(format!("undo at {} is for another block", best.height)));
        }
        // Spent coins back first, then the created ones out: a coin created and spent inside this
        // block is in both lists and must end up absent.
        let mut ops = 0usize;
        for (k, coin) in &undo.spent {
            self.coins.put(&mut wtxn, k, coin)?;
            self.op_done(&mut ops);
        }
        for k in &undo.created {
            self.coins.delete(&mut wtxn, k)?;
            self.op_done(&mut ops);
        }
        self.undo.delete(&mut wtxn, &key)?;
        self.set_best(&mut wtxn, ChainPoint { hash: undo.prev, height: best.height - 1 })?;
        wtxn.commit()?;
        self.pages.release();
        Ok(undo)
    }

    /// Empties the store back to genesis (before a rebuild from the kernel's blocks).
    pub fn wipe(&self) -> Result<(), CoinsError> {
        let mut wtxn = self.write_txn()?;
        self.coins.clear(&mut wtxn)?;
        self.undo.clear(&mut wtxn)?;
        self.meta.delete(&mut wtxn, META_BEST)?;
        wtxn.commit()?;
        self.pages.release();
        Ok(())
    }

    /// Counts one key operation of a write transaction and releases the map every
    /// [`RELEASE_EVERY_OPS`]. Safe mid-transaction: nothing outlives an operation but copies, and
    /// the file under the map does not change until the commit writes it.
    fn op_done(&self, ops: &mut usize) {
        *ops += 1;
        if ops.is_multiple_of(RELEASE_EVERY_OPS) {
            #[cfg(test)]
            if self.resident_before_release_max.load(Ordering::Relaxed) != PROBE_OFF {
                let now = self.mapped_resident_bytes().unwrap_or(0);
                self.resident_before_release_max.fetch_max(now, Ordering::Relaxed);
            }
            self.pages.release();
        }
    }

    /// Bytes of the store's map resident in this process (`None` where the map is not tracked):
    /// what releasing after each commit keeps small.
    pub fn mapped_resident_bytes(&self) -> Option<u64> {
        self.pages.resident_bytes()
    }

    fn set_best(&self, wtxn: &mut RwTxn, point: ChainPoint) -> Result<(), CoinsError> {
        Ok(self.meta.put(wtxn, META_BEST, &point_bytes(point))?)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().rev().map(|b| format!("{b:02x}")).collect()
}

impl CoinView for CoinStore {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        match self.get(outpoint) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "coin lookup failed");
                None
            }
        }
    }
}
