//! The kernel's write-ahead journal: what makes a block durable without flushing the kernel.
//!
//! The kernel writes its block index and coins to disk only when its chainstate manager is
//! destroyed (see `kernel`), and reopening it costs a block-index load and an empty coins cache —
//! at 20,000 blocks of real transactions a checkpoint every 0.5 s held IBD to half Core's speed.
//! Instead, every header and block the kernel accepted is appended here, in the order the kernel
//! saw them, and a checkpoint is one write and one `fdatasync` of what arrived since the last one.
//! After a crash the kernel opens at its last flush and the journal is replayed through it in the
//! same order, so it reaches every tip it reported; the journal is emptied only after a full flush
//! whose reopened kernel showed the same tip. A full flush happens when the journal outgrows its
//! budget (then replaying it is bounded too) and once at start-up after a replay.
//!
//! A plain append-only file, not a database: nothing here is ever looked up, only written in
//! order and read back in order after a crash, and a file written with `write` is never mapped,
//! so the journal adds nothing to the process's resident memory (an LMDB journal kept 5–15 MB of
//! its mapped pages resident during IBD).
//!
//! Layout: the 8-byte [`MAGIC`], then records of `length: u32 LE` (tag and payload), `check: 8
//! bytes` (the first 8 bytes of SHA-256 over length, tag and payload), `tag: u8` (`H` header, `B`
//! block) and the payload. A record cut short or failing its check ends the journal: opening
//! truncates the file there (a commit interrupted by a crash never returned, so nothing it held
//! was reported), and what follows is never replayed. The kernel is the second check: a replayed
//! header or block is validated again, so even a damaged record that passed cannot change the
//! chain, only fail to restore it.

use super::ValidatorError;
use bitcoin::hashes::{sha256, Hash, HashEngine};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every journal file: a foreign or older-format file is refused, not replayed.
pub const MAGIC: &[u8; 8] = b"onijrnl\x01";
const HEADER: u8 = b'H';
const BLOCK: u8 = b'B';
/// Length and check before each record's tag.
const FRAME: usize = 4 + 8;
/// The largest record: a tag and a block of Core's maximum serialized size. A larger length field
/// is damage, refused before anything is allocated for it.
const RECORD_MAX: u32 = 1 + 4_000_000;
/// A pending buffer grown past this by a burst is released after its commit, not kept.
const PENDING_KEEP: usize = 8 << 20;

/// One journaled item, as handed to the replay.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// An 80-byte header the kernel accepted ahead of its block.
    Header(&'a [u8; 80]),
    /// A block's raw bytes (witness serialization).
    Block(&'a [u8]),
}

/// The journal: records committed to the file plus those appended since the last commit.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Encoded records not yet written.
    pending: Vec<u8>,
    /// Record bytes in the file after the magic.
    committed_bytes: u64,
    /// A failed commit could not take back what it wrote: the file's tail is unknown, so every
    /// commit fails (and the kernel flushes instead) until [`Journal::clear`] empties it.
    broken: bool,
}

fn check(len: u32, tag: u8, payload: &[u8]) -> [u8; 8] {
    let mut engine = sha256::Hash::engine();
    engine.input(&len.to_le_bytes());
    engine.input(&[tag]);
    engine.input(payload);
    let digest = sha256::Hash::from_engine(engine).to_byte_array();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Where a walk over the file stopped.
struct Walked {
    /// The end of the last whole record (or of the magic).
    valid_end: u64,
    /// Whether bytes follow it (a cut-short or damaged record).
    damaged: bool,
}

/// Reads exactly `buf.len()` bytes, or reports how the input ended: `Ok(false)` for an end before
/// the first byte, an `UnexpectedEof` error for one after it.
fn read_whole(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Hands every whole record after the magic to `f` (tag, payload), in file order, and says where
/// the whole records end. The file must start with [`MAGIC`].
fn walk(path: &Path, mut f: impl FnMut(u8, &[u8])) -> Result<Walked, ValidatorError> {
    let io_err = |e| ValidatorError::Io(path.to_path_buf(), e);
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
    let mut magic = [0u8; MAGIC.len()];
    if !matches!(read_whole(&mut reader, &mut magic), Ok(true)) || &magic != MAGIC {
        return Err(ValidatorError::Kernel(format!(
            "{}: not an oni validation journal (its first bytes are not the journal's mark)",
            path.display()
        )));
    }
    let mut valid_end = MAGIC.len() as u64;
    let mut payload = Vec::new();
    loop {
        let mut frame = [0u8; FRAME + 1];
        match read_whole(&mut reader, &mut frame) {
            Ok(true) => {}
            Ok(false) => return Ok(Walked { valid_end, damaged: false }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Walked { valid_end, damaged: true }),
            Err(e) => return Err(io_err(e)),
        }
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        if len == 0 || len > RECORD_MAX {
            return Ok(Walked { valid_end, damaged: true });
        }
        let tag = frame[FRAME];
        payload.resize(len as usize - 1, 0);
        match read_whole(&mut reader, &mut payload) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Walked { valid_end, damaged: true }),
            Err(e) => return Err(io_err(e)),
        }
        if frame[4..FRAME] != check(len, tag, &payload) {
            return Ok(Walked { valid_end, damaged: true });
        }
        f(tag, &payload);
        valid_end += (FRAME + len as usize) as u64;
    }
}

/// Makes a file's creation durable: its directory entry is written with the directory.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

impl Journal {
    /// Opens (or creates) the journal file at `path`. A tail cut short by a crash is cut off
    /// (with a warning); a file that is not a journal is refused.
    pub fn open(path: &Path) -> Result<Journal, ValidatorError> {
        let io_err = |e| ValidatorError::Io(path.to_path_buf(), e);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ValidatorError::Io(dir.to_path_buf(), e))?;
        }
        let file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len < MAGIC.len() as u64 {
            // New, or created by a crash before its mark was whole: nothing was ever committed.
            file.set_len(0).map_err(io_err)?;
            (&file).write_all(MAGIC).map_err(io_err)?;
            file.sync_data().map_err(io_err)?;
            sync_dir(path).map_err(io_err)?;
        }
        let walked = walk(path, |_, _| {})?;
        if walked.damaged {
            let len = file.metadata().map_err(io_err)?.len();
            tracing::warn!(
                path = %path.display(),
                kept = walked.valid_end,
                dropped = len.saturating_sub(walked.valid_end),
                "validation journal ends in a record cut short (a crash during a commit); cutting it off"
            );
            file.set_len(walked.valid_end).map_err(io_err)?;
            file.sync_data().map_err(io_err)?;
        }
        let committed_bytes = walked.valid_end - MAGIC.len() as u64;
        Ok(Journal { path: path.to_path_buf(), file, pending: Vec::new(), committed_bytes, broken: false })
    }

    /// Appends a header (kept in memory until [`Journal::commit`]).
    pub fn header(&mut self, raw: &[u8; 80]) {
        self.append(HEADER, raw);
    }

    /// Appends a block (kept in memory until [`Journal::commit`]).
    pub fn block(&mut self, raw: &[u8]) {
        self.append(BLOCK, raw);
    }

    fn append(&mut self, tag: u8, raw: &[u8]) {
        // A payload beyond the largest record is not a block the kernel accepted; the walk would
        // refuse it and everything after it, so it is not written.
        let Some(len) = u32::try_from(raw.len() + 1).ok().filter(|&l| l <= RECORD_MAX) else {
            tracing::warn!(bytes = raw.len(), "not journaling a record larger than a block can be");
            return;
        };
        self.pending.reserve(FRAME + len as usize);
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&check(len, tag, raw));
        self.pending.push(tag);
        self.pending.extend_from_slice(raw);
    }

    /// Writes what was appended since the last commit and waits for the disk; once this returns
    /// Ok it survives a kill -9. On an error nothing of it counts as written and it stays pending.
    pub fn commit(&mut self) -> Result<(), ValidatorError> {
        let io_err = |e| ValidatorError::Io(self.path.clone(), e);
        if self.broken {
            return Err(io_err(io::Error::other("an earlier failed commit left the file's tail unknown")));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = (&self.file).write_all(&self.pending).and_then(|()| self.file.sync_data()) {
            // Take back whatever part landed, so the next commit follows the last whole record
            // (through the path: the handle that failed to write may fail this too).
            let whole = MAGIC.len() as u64 + self.committed_bytes;
            if OpenOptions::new().write(true).open(&self.path).and_then(|f| f.set_len(whole)).is_err() {
                self.broken = true;
            }
            return Err(io_err(e));
        }
        self.committed_bytes += self.pending.len() as u64;
        self.pending.clear();
        if self.pending.capacity() > PENDING_KEEP {
            self.pending = Vec::new();
        }
        Ok(())
    }

    /// Bytes committed and pending: what a replay would read.
    pub fn bytes(&self) -> u64 {
        self.committed_bytes + self.pending.len() as u64
    }

    /// Whether nothing is committed or pending.
    pub fn is_empty(&self) -> bool {
        self.bytes() == 0
    }

    /// Hands every committed record to `f`, oldest first. A whole record with an unknown tag or a
    /// header of the wrong length is skipped and counted.
    pub fn replay(&self, mut f: impl FnMut(Record<'_>)) -> Result<ReplayCount, ValidatorError> {
        let mut count = ReplayCount::default();
        walk(&self.path, |tag, payload| match (tag, payload) {
            (HEADER, raw) if raw.len() == 80 => {
                let mut header = [0u8; 80];
                header.copy_from_slice(raw);
                f(Record::Header(&header));
                count.headers += 1;
            }
            (BLOCK, raw) => {
                f(Record::Block(raw));
                count.blocks += 1;
            }
            _ => count.skipped += 1,
        })?;
        Ok(count)
    }

    /// Drops every record, committed and pending (after a full flush made them redundant).
    pub fn clear(&mut self) -> Result<(), ValidatorError> {
        let io_err = |e| ValidatorError::Io(self.path.clone(), e);
        self.pending.clear();
        self.file.set_len(MAGIC.len() as u64).map_err(io_err)?;
        self.file.sync_data().map_err(io_err)?;
        self.committed_bytes = 0;
        self.broken = false;
        Ok(())
    }
}

/// What a replay handed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayCount {
    /// Headers.
    pub headers: u64,
    /// Blocks.
    pub blocks: u64,
    /// Whole records of an unknown kind, skipped.
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(j: &Journal) -> Vec<(char, Vec<u8>)> {
        let mut out = Vec::new();
        j.replay(|r| match r {
            Record::Header(h) => out.push(('H', h.to_vec())),
            Record::Block(b) => out.push(('B', b.to_vec())),
        })
        .unwrap();
        out
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn only_committed_records_survive_a_reopen_in_the_order_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        {
            let mut j = Journal::open(&path).unwrap();
            j.header(&[7; 80]);
            j.block(&[1, 2, 3]);
            j.commit().unwrap();
            j.block(&[9; 10]); // never committed: a crash loses it, as promised
            assert_eq!(j.bytes(), (13 + 80) + (13 + 3) + (13 + 10));
        }
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(records(&j), [('H', vec![7; 80]), ('B', vec![1, 2, 3])]);
        assert_eq!(j.bytes(), 93 + 16, "committed bytes are counted again on open");
        j.block(&[4]);
        j.commit().unwrap();
        assert_eq!(records(&j).last(), Some(&('B', vec![4])), "appending continues after the reopen");
        j.clear().unwrap();
        assert!(j.is_empty());
        assert_eq!(file_len(&path), MAGIC.len() as u64, "cleared to its mark");
        drop(j);
        assert!(records(&Journal::open(&path).unwrap()).is_empty());
    }

    #[test]
    fn a_tail_cut_short_or_damaged_is_cut_off_at_open_and_appending_follows_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let mut j = Journal::open(&path).unwrap();
        j.block(&[1; 100]);
        j.commit().unwrap();
        let whole = file_len(&path);
        j.block(&[2; 100]);
        j.commit().unwrap();
        drop(j);
        // A crash in the middle of the second commit: half of its record reached the disk.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..whole as usize + 50]).unwrap();
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(file_len(&path), whole, "the cut-short record is gone from the file");
        assert_eq!(records(&j), [('B', vec![1; 100])]);
        j.block(&[3; 5]);
        j.commit().unwrap();
        assert_eq!(records(&j), [('B', vec![1; 100]), ('B', vec![3; 5])], "the new record is reachable");
        drop(j);

        // A flipped payload byte fails the record's check: it and everything after it are dropped.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[MAGIC.len() + FRAME + 1 + 10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let j = Journal::open(&path).unwrap();
        assert!(records(&j).is_empty());
        assert!(j.is_empty());
        drop(j);

        // A length field beyond any block is damage, refused before it is allocated.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 9]);
        std::fs::write(&path, &bytes).unwrap();
        assert!(Journal::open(&path).unwrap().is_empty());
        assert_eq!(file_len(&path), MAGIC.len() as u64);
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_refused_and_a_mark_cut_short_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        std::fs::write(&path, b"something else entirely").unwrap();
        let Err(err) = Journal::open(&path) else { panic!("refused") };
        assert!(err.to_string().contains("not an oni validation journal"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"something else entirely", "left as found");

        std::fs::write(&path, &MAGIC[..3]).unwrap();
        let j = Journal::open(&path).unwrap();
        assert!(j.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
    }

    #[test]
    fn a_failed_commit_keeps_its_records_pending_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let mut j = Journal::open(&path).unwrap();
        j.block(&[1]);
        j.commit().unwrap();
        j.block(&[5; 1000]);
        // A full disk: every write fails with "no space left on device".
        let real = std::mem::replace(&mut j.file, OpenOptions::new().write(true).open("/dev/full").unwrap());
        assert!(j.commit().is_err());
        assert_eq!(j.bytes(), 14 + 1013, "still pending");
        j.file = real;
        j.commit().unwrap();
        assert_eq!(records(&j), [('B', vec![1]), ('B', vec![5; 1000])]);

        // A failure that cannot be taken back either: every commit fails until a clear.
        let real = std::mem::replace(&mut j.file, OpenOptions::new().write(true).open("/dev/full").unwrap());
        let real_path = std::mem::replace(&mut j.path, dir.path().join("gone/journal.log"));
        j.block(&[6]);
        assert!(j.commit().is_err());
        (j.file, j.path) = (real, real_path);
        let Err(err) = j.commit() else { panic!("the tail is unknown") };
        assert!(err.to_string().contains("tail unknown"), "{err}");
        j.clear().unwrap();
        j.block(&[7]);
        j.commit().unwrap();
        assert_eq!(records(&j), [('B', vec![7])]);
    }

    #[test]
    fn a_record_larger_than_any_block_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("journal.log")).unwrap();
        j.block(&vec![0; RECORD_MAX as usize]);
        assert!(j.is_empty());
        j.block(&vec![0; RECORD_MAX as usize - 1]);
        j.commit().unwrap();
        assert_eq!(records(&j).len(), 1, "the largest block fits");
    }
}
