//! LMDB reads through a read-only shared map of its data file, and every page a transaction
//! touched stays mapped into the process until the map is closed. On a store that every block
//! rewrites all over (the coin store: outpoints are random keys) that is, within seconds of IBD,
//! the whole file — counted in the process's RSS and in the OOM killer's score although nothing
//! in it is needed until the next transaction. [`MappedPages::release`] drops those page-table
//! entries after a commit: the pages stay in the page cache (clean: LMDB writes with `pwrite`, not
//! through the map), and the next read maps them again from there, as a `pread` would find them.
//! Bitcoin Core's LevelDB reads its files the same way, so the two nodes' RSS compare like for like.

use std::path::Path;

/// The address range of one LMDB environment's data map, found in `/proc/self/maps`; empty
/// where it was not found, and then every call is a no-op.
#[derive(Clone, Copy, Debug)]
pub struct MappedPages {
    start: usize,
    len: usize,
}

impl MappedPages {
    /// The map of `data_file` (an open environment's `data.mdb`), when it is mapped exactly once
    /// and read-only shared — the only kind whose page-table entries can be dropped without losing
    /// anything. `None` elsewhere (another OS, a writable map, a name that matches twice).
    ///
    /// The caller must keep the environment open for as long as it calls [`MappedPages::release`]:
    /// the range is LMDB's only while the environment lives.
    pub fn find(data_file: &Path) -> Option<MappedPages> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let file = std::fs::canonicalize(data_file).ok()?;
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        let mut found = maps.lines().filter_map(|line| parse_line(line, &file));
        let one = found.next()?;
        found.next().is_none().then_some(one)
    }

    /// [`MappedPages::find`], or an empty range whose release does nothing (the stores hold one
    /// either way and release without asking which).
    pub fn of(data_file: &Path) -> MappedPages {
        Self::find(data_file).unwrap_or(MappedPages { start: 0, len: 0 })
    }

    /// Drops the map's page-table entries (not the pages: they stay cached and are mapped again on
    /// the next read). Safe beside concurrent readers on other threads, which fault them back in.
    pub fn release(&self) {
        if self.is_empty() {
            return;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: `find` only returns a read-only shared file mapping, which the owner keeps alive
        // (it holds the environment). MADV_DONTNEED on such a mapping discards page-table entries
        // only; later reads see the file's current contents, so no data can change or be lost.
        unsafe {
            libc::madvise(self.start as *mut libc::c_void, self.len, libc::MADV_DONTNEED);
        }
    }

    /// Bytes of the map resident in this process now (its `Rss:` in `/proc/self/smaps`), for
    /// tests and measurements; `None` when smaps cannot be read.
    pub fn resident_bytes(&self) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let head = format!("{:08x}-", self.start);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
        lines.next()?;
        let rss = lines.find(|l| l.starts_with("Rss:"))?;
        rss.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    }

    /// Bytes of the range (the environment's map size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no map was found (never true for one [`MappedPages::find`] returns).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `start-end perms offset dev inode path` → the range, when `path` is `file` and the map is
/// read-only shared (`r--s`).
fn parse_line(line: &str, file: &Path) -> Option<MappedPages> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?.trim_start();
    if perms != "r--s" || Path::new(path) != file {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then(|| MappedPages { start, len: end - start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_a_read_only_shared_map_of_the_file() {
        let file = Path::new("/data/coins/data.mdb");
        let line = "7f0000000000-7f4000000000 r--s 00000000 fd:01 1234                       /data/coins/data.mdb";
        let m = parse_line(line, file).expect("the coin store's map");
        assert_eq!((m.start, m.len), (0x7f00_0000_0000, 0x40_0000_0000));
        assert!(parse_line(&line.replace("r--s", "rw-s"), file).is_none(), "a writable map is never released");
        assert!(parse_line(&line.replace("r--s", "r--p"), file).is_none(), "nor a private one");
        assert!(parse_line(line, Path::new("/data/coins/lock.mdb")).is_none());
        assert!(parse_line(&line.replace("data.mdb", "data.mdb (deleted)"), file).is_none());
        assert!(parse_line("7f00-7e00 r--s 00000000 fd:01 1234 /data/coins/data.mdb", file).is_none());
        assert!(parse_line("garbage", file).is_none());
    }

    #[test]
    fn a_file_that_is_not_mapped_gives_an_empty_range_that_does_nothing() {
        let pages = MappedPages::of(Path::new("/nonexistent/data.mdb"));
        assert!(pages.is_empty());
        assert_eq!(pages.resident_bytes(), None);
        pages.release();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_pages_leave_the_rss_and_read_back_unchanged() {
        use heed::types::Bytes;
        let dir = tempfile::tempdir().expect("tempdir");
        // SAFETY: a fresh directory, one environment, nothing else writes it.
        let env = unsafe { heed::EnvOpenOptions::new().map_size(64 << 20).open(dir.path()) }.expect("env");
        let mut w = env.write_txn().expect("txn");
        let db: heed::Database<Bytes, Bytes> = env.create_database(&mut w, None).expect("db");
        let value = vec![7u8; 3000];
        for i in 0u32..4000 {
            db.put(&mut w, &i.to_be_bytes(), &value).expect("put");
        }
        w.commit().expect("commit");
        let pages = MappedPages::find(&dir.path().join("data.mdb")).expect("heed maps data.mdb read-only shared");
        assert_eq!(pages.len(), 64 << 20);
        let read_all = || {
            let r = env.read_txn().expect("read");
            let mut n = 0;
            for i in 0u32..4000 {
                assert_eq!(db.get(&r, &i.to_be_bytes()).expect("get"), Some(&value[..]));
                n += 1;
            }
            n
        };
        assert_eq!(read_all(), 4000);
        let resident = || pages.resident_bytes().expect("the map is in smaps");
        let before = resident();
        pages.release();
        assert_eq!(resident(), 0, "nothing of the map resident after the release");
        // 4,000 values of 3 kB: ≈ 12 MB of pages mapped by the read.
        assert!(before >= 11 << 20, "{before} bytes resident before");
        assert_eq!(read_all(), 4000, "every value reads back after the release");
        assert!(resident() >= 11 << 20, "and the read mapped them again");
    }
}
