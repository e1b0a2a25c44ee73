//! The node's durable state in LMDB (heed), four databases: `bans`, `addrs` (the address book),
//! `meta` (the book's secret bucketing key) and `headers` (every accepted header, from which the
//! header tree is rebuilt at start). Every ban change is committed (fsync'd) before the caller
//! reports it done, so a kill -9 after that loses nothing. A damaged store is a clear error with a way out, never a panic: LMDB would fault on a
//! truncated file, so its meta pages are checked against the file's size before it is mapped.

use crate::lmdb_pages::MappedPages;
use bitcoin::hashes::Hash as _;
use bitcoin::BlockHash;
use heed::types::{Bytes, Str};
use heed::{Database, Env, EnvOpenOptions};
use oni_systems::chain::tree::HeaderArchive;
use oni_systems::resources::{AddrInfo, BanChange, BanEntry, Subnet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Largest the store may grow (address book + bans are far smaller; LMDB maps this lazily).
const MAP_SIZE_BYTES: usize = 1 << 30;
const META_ADDR_KEY: &str = "addrman_key";
/// Headers read between two releases of the map during a full scan: some 120 KB of leaf pages.
const RELEASE_EVERY_HEADERS: usize = 1024;

/// Why the store could not be used.
#[derive(Debug)]
pub enum StoreError {
    /// The files exist but are not a valid LMDB environment (truncated, overwritten, wrong format).
    Corrupt {
        /// The store directory.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The directory cannot be created or written.
    Io(PathBuf, std::io::Error),
    /// LMDB refused an operation.
    Lmdb(heed::Error),
    /// A record did not decode.
    Record(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt { path, detail } => write!(
                f,
                "the store at {} is damaged ({detail}); start with --reset-store to keep a copy of it \
                 beside the datadir's store and begin with an empty one",
                path.display()
            ),
            StoreError::Io(p, e) => write!(f, "cannot use {}: {e}", p.display()),
            StoreError::Lmdb(e) => write!(f, "store error: {e}"),
            StoreError::Record(e) => write!(f, "store record unreadable: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        StoreError::Lmdb(e)
    }
}

/// An address book as saved: its secret key and its entries.
pub type SavedBook = ([u8; 32], Vec<AddrInfo>);

/// The open store.
pub struct Store {
    env: Env,
    bans: Database<Str, Bytes>,
    addrs: Database<Bytes, Bytes>,
    meta: Database<Str, Bytes>,
    headers: Database<Bytes, Bytes>,
    /// Ban commits still to fail on purpose (fault injection for tests of the retry path).
    ban_faults: std::sync::atomic::AtomicUsize,
    /// Header saves still to fail on purpose (fault injection for tests of the retry path).
    header_faults: std::sync::atomic::AtomicUsize,
    /// The environment's map, released after each commit and each full read (loading mainnet's
    /// headers maps ~110 MB that nothing reads again).
    pages: MappedPages,
}

/// Checks LMDB's two meta pages against the data file's length, so a truncated file is reported
/// instead of faulting when mapped.
pub(crate) fn precheck(dir: &Path) -> Result<(), StoreError> {
    let file = dir.join("data.mdb");
    let corrupt = |detail: String| StoreError::Corrupt { path: dir.to_path_buf(), detail };
    // Only the two meta pages are read (the first at 0, the second one page size — at most
    // 64 KiB — further), not the file: a coin store or a full journal is hundreds of MB.
    let (bytes, len) = match read_head(&file, 2 * 65_536 + 16 + 136) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::Io(file, e)),
    };
    // page header 16 bytes; meta: magic u32, version u32, address u64, mapsize u64, 2 × 48-byte db
    // records (the first's leading u32 is the page size), last_pg u64, txnid u64.
    let read_meta = |off: usize| -> Option<(u32, u64, u64)> {
        let m = bytes.get(off + 16..off + 16 + 136)?;
        let u32_at = |i: usize| u32::from_le_bytes([m[i], m[i + 1], m[i + 2], m[i + 3]]);
        let u64_at = |i: usize| u64::from_le_bytes(m[i..i + 8].try_into().unwrap_or([0; 8]));
        (u32_at(0) == 0xBEEF_C0DE).then(|| (u32_at(24), u64_at(120), u64_at(128)))
    };
    let Some((psize, last0, txn0)) = read_meta(0) else {
        return Err(corrupt(format!("{} has no valid LMDB meta page ({len} bytes)", file.display())));
    };
    if !(512..=65536).contains(&psize) || !psize.is_power_of_two() {
        return Err(corrupt(format!("implausible page size {psize}")));
    }
    let last = match read_meta(psize as usize) {
        Some((_, last1, txn1)) if txn1 > txn0 => last1,
        Some(_) => last0,
        None => return Err(corrupt("second meta page missing or invalid".into())),
    };
    let need = (last + 1).saturating_mul(psize as u64);
    if len < need {
        return Err(corrupt(format!("data file is {len} bytes, its meta pages need {need}")));
    }
    Ok(())
}

/// The first `max` bytes of `file` (fewer if it is shorter) and its length.
fn read_head(file: &Path, max: u64) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::Read;
    let f = std::fs::File::open(file)?;
    let len = f.metadata()?.len();
    let mut head = Vec::with_capacity(max.min(len) as usize);
    f.take(max).read_to_end(&mut head)?;
    Ok((head, len))
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        precheck(dir)?;
        // SAFETY: the environment is opened once per process (the node holds the only handle) and
        // the file was checked against truncation above.
        let env =
            unsafe { EnvOpenOptions::new().map_size(MAP_SIZE_BYTES).max_dbs(8).open(dir) }.map_err(|e| match e {
                heed::Error::Mdb(
                    m @ (heed::MdbError::Invalid | heed::MdbError::Corrupted | heed::MdbError::VersionMismatch),
                ) => StoreError::Corrupt { path: dir.to_path_buf(), detail: m.to_string() },
                other => StoreError::Lmdb(other),
            })?;
        let mut wtxn = env.write_txn()?;
        let bans = env.create_database(&mut wtxn, Some("bans"))?;
        let addrs = env.create_database(&mut wtxn, Some("addrs"))?;
        let meta = env.create_database(&mut wtxn, Some("meta"))?;
        let headers = env.create_database(&mut wtxn, Some("headers"))?;
        wtxn.commit()?;
        let pages = MappedPages::of(&dir.join("data.mdb"));
        Ok(Store {
            env,
            bans,
            addrs,
            meta,
            headers,
            ban_faults: Default::default(),
            header_faults: Default::default(),
            pages,
        })
    }

    /// Moves a damaged store aside (kept as `<dir>.corrupt-<unix_s>`) so a fresh one can start.
    pub fn reset(dir: &Path, now_s: u64) -> Result<Option<PathBuf>, StoreError> {
        if !dir.exists() {
            return Ok(None);
        }
        let mut aside = dir.as_os_str().to_owned();
        aside.push(format!(".corrupt-{now_s}"));
        let aside = PathBuf::from(aside);
        std::fs::rename(dir, &aside).map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        Ok(Some(aside))
    }

    /// Every stored ban.
    pub fn load_bans(&self) -> Result<Vec<(Subnet, BanEntry)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.bans.iter(&rtxn)? {
            let (k, v) = item?;
            let subnet: Subnet = k.parse().map_err(|e| StoreError::Record(format!("ban key {k}: {e}")))?;
            let entry: BanEntry = serde_json::from_slice(v).map_err(|e| StoreError::Record(format!("ban {k}: {e}")))?;
            out.push((subnet, entry));
        }
        Ok(out)
    }

    /// Makes the next `n` ban commits fail, as a full disk would (tests of the retry path).
    pub fn inject_ban_commit_failures(&self, n: usize) {
        self.ban_faults.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Applies ban changes in one durable transaction.
    pub fn apply_ban_changes(&self, changes: &[BanChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        use std::sync::atomic::Ordering;
        if self.ban_faults.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::Record("injected ban commit failure".into()));
        }
        let mut wtxn = self.env.write_txn()?;
        for c in changes {
            match c {
                BanChange::Set(s, e) => {
                    let v = serde_json::to_vec(e).map_err(|e| StoreError::Record(e.to_string()))?;
                    self.bans.put(&mut wtxn, &s.to_string(), &v)?;
                }
                BanChange::Remove(s) => {
                    self.bans.delete(&mut wtxn, &s.to_string())?;
                }
                BanChange::Clear => self.bans.clear(&mut wtxn)?,
            }
        }
        wtxn.commit()?;
        self.pages.release();
        Ok(())
    }

    /// Replaces the stored address book with `entries` and its key, in one transaction.
    pub fn save_addrs<'a>(
        &self,
        key: [u8; 32],
        entries: impl IntoIterator<Item = &'a AddrInfo>,
    ) -> Result<usize, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.addrs.clear(&mut wtxn)?;
        let mut n = 0;
        for info in entries {
            let k = serde_json::to_vec(&info.addr).map_err(|e| StoreError::Record(e.to_string()))?;
            let v = serde_json::to_vec(info).map_err(|e| StoreError::Record(e.to_string()))?;
            self.addrs.put(&mut wtxn, &k, &v)?;
            n += 1;
        }
        self.meta.put(&mut wtxn, META_ADDR_KEY, &key)?;
        wtxn.commit()?;
        self.pages.release();
        Ok(n)
    }

    /// Makes the next `n` header saves fail, as a full disk would (tests of the retry path); `0`
    /// ends an injected fault, `usize::MAX` makes one last until then.
    pub fn inject_header_save_failures(&self, n: usize) {
        self.header_faults.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Appends accepted headers (height, raw 80 bytes) in one durable transaction. Keyed by height
    /// then hash, so loading returns parents before children and side branches are kept; saving a
    /// header again rewrites the same record.
    pub fn save_headers(&self, headers: &[(u32, [u8; 32], [u8; 80])]) -> Result<(), StoreError> {
        if headers.is_empty() {
            return Ok(());
        }
        use std::sync::atomic::Ordering;
        if self.header_faults.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            let injected = std::io::Error::other("injected header save failure");
            return Err(StoreError::Lmdb(heed::Error::Io(injected)));
        }
        let mut wtxn = self.env.write_txn()?;
        for (height, hash, raw) in headers {
            let mut key = [0u8; 36];
            key[..4].copy_from_slice(&height.to_be_bytes());
            key[4..].copy_from_slice(hash);
            self.headers.put(&mut wtxn, &key, raw)?;
        }
        wtxn.commit()?;
        self.pages.release();
        Ok(())
    }

    /// Every stored header, lowest height first (tests and tools; the node streams them with
    /// [`Store::for_each_header`]).
    pub fn load_headers(&self) -> Result<Vec<[u8; 80]>, StoreError> {
        let mut out = Vec::new();
        self.for_each_header(|raw| out.push(*raw))?;
        Ok(out)
    }

    /// Hands every stored header to `each`, lowest height first, and returns how many: mainnet's
    /// 930,000 would be 74 MB as one `Vec` at start-up, and as many bytes of the file mapped, so
    /// none are collected and the pages read are released every [`RELEASE_EVERY_HEADERS`].
    pub fn for_each_header(&self, mut each: impl FnMut(&[u8; 80])) -> Result<usize, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut count = 0usize;
        for item in self.headers.iter(&rtxn)? {
            let (_, v) = item?;
            let raw: &[u8; 80] =
                v.try_into().map_err(|_| StoreError::Record("a stored header is not 80 bytes".into()))?;
            each(raw);
            count += 1;
            if count.is_multiple_of(RELEASE_EVERY_HEADERS) {
                // The cursor's pages stay valid: a read transaction's snapshot is never
                // overwritten, and released pages map again from the page cache.
                self.pages.release();
            }
        }
        drop(rtxn);
        self.pages.release();
        Ok(count)
    }

    /// The headers stored at `keys` (height, hash), in order, appended to `out`, in one read
    /// transaction; stops at the first one missing. The pages read are released after.
    pub fn read_headers(&self, keys: &[(u32, [u8; 32])], out: &mut Vec<[u8; 80]>) -> Result<(), StoreError> {
        let rtxn = self.env.read_txn()?;
        for (height, hash) in keys {
            let mut key = [0u8; 36];
            key[..4].copy_from_slice(&height.to_be_bytes());
            key[4..].copy_from_slice(hash);
            let Some(v) = self.headers.get(&rtxn, &key)? else { break };
            let raw: &[u8; 80] =
                v.try_into().map_err(|_| StoreError::Record("a stored header is not 80 bytes".into()))?;
            out.push(*raw);
        }
        drop(rtxn);
        self.pages.release();
        Ok(())
    }

    /// The stored address book and its key, if one was saved.
    pub fn load_addrs(&self) -> Result<Option<SavedBook>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let Some(key) = self.meta.get(&rtxn, META_ADDR_KEY)? else { return Ok(None) };
        let key: [u8; 32] =
            key.try_into().map_err(|_| StoreError::Record("address book key is not 32 bytes".into()))?;
        let mut out = Vec::new();
        for item in self.addrs.iter(&rtxn)? {
            let (_, v) = item?;
            out.push(serde_json::from_slice(v).map_err(|e| StoreError::Record(format!("address: {e}")))?);
        }
        drop(rtxn);
        self.pages.release();
        Ok(Some((key, out)))
    }

    /// Bytes of the store's map resident in this process (`None` where the map is not tracked).
    pub fn mapped_resident_bytes(&self) -> Option<u64> {
        self.pages.resident_bytes()
    }
}

/// The header tree reads the version, merkle root and nonce of the headers it archived here.
impl HeaderArchive for Store {
    fn read(&self, keys: &[(u32, BlockHash)], out: &mut Vec<[u8; 80]>) {
        let keys: Vec<(u32, [u8; 32])> = keys.iter().map(|(h, hash)| (*h, hash.to_byte_array())).collect();
        if let Err(e) = self.read_headers(&keys, out) {
            tracing::error!(wanted = keys.len(), "cannot read stored headers back: {e}");
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
