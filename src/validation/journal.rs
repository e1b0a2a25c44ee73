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
/// Records are gathered up to this many bytes, then written (without waiting for the disk); a
/// larger record is written straight from the caller's bytes. So the journal holds at most this
/// much of the blocks between two checkpoints (it held all of them: 0.6 MB at the heavy chain's
/// 100 ms checkpoints, up to its 8 MB keep on mainnet), and a checkpoint syncs what is mostly
/// written already.
const PENDING_MAX: usize = 64 << 10;

/// One journaled item, as handed to the replay.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// An 80-byte header the kernel accepted ahead of its block.
    Header(&'a [u8; 80]),
    /// A block's raw bytes (witness serialization).
    Block(&'a [u8]),
}

/// The journal: records committed to the file plus those appended since the last commit (written
/// to the file already, or gathered in a buffer of at most [`PENDING_MAX`]).
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Encoded records not yet written.
    pending: Vec<u8>,
    /// Record bytes in the file after the magic, synced by a commit.
    committed_bytes: u64,
    /// Record bytes written after those since the last commit, not synced yet.
    written_bytes: u64,
    /// A write or sync failed after the last commit: records since it are not all in the file and
    /// no longer in memory, so every commit fails (and the kernel flushes instead, which makes
    /// them durable its own way) until [`Journal::clear`] empties the journal.
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
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            committed_bytes,
            written_bytes: 0,
            broken: false,
        })
    }

    /// Appends a header (durable once [`Journal::commit`] returns).
    pub fn header(&mut self, raw: &[u8; 80]) {
        self.append(HEADER, raw);
    }

    /// Appends a block (durable once [`Journal::commit`] returns).
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
        if self.broken {
            // Nothing after the last commit can be made durable here; the flush will.
            return;
        }
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&check(len, tag, raw));
        self.pending.push(tag);
        if self.pending.len() + raw.len() <= PENDING_MAX {
            self.pending.extend_from_slice(raw);
            return;
        }
        // Too big to gather: what is gathered, then the payload from where it lies.
        let written = self.write_pending().and_then(|()| (&self.file).write_all(raw));
        match written {
            Ok(()) => self.written_bytes += raw.len() as u64,
            Err(e) => self.fail_write(&e),
        }
    }

    /// Writes the gathered records (not synced).
    fn write_pending(&mut self) -> io::Result<()> {
        (&self.file).write_all(&self.pending)?;
        self.written_bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// A write or sync failed: cut the file back to its last commit (so the next commit follows a
    /// whole record, through the path: the handle that failed may fail this too) and fail every
    /// commit until a clear.
    fn fail_write(&mut self, e: &io::Error) {
        tracing::warn!(error = %e, path = %self.path.display(), "validation journal write failed");
        let whole = MAGIC.len() as u64 + self.committed_bytes;
        let _ = OpenOptions::new().write(true).open(&self.path).and_then(|f| f.set_len(whole));
        self.pending = Vec::new();
        self.written_bytes = 0;
        self.broken = true;
    }

    /// Writes what was appended since the last commit and waits for the disk; once this returns
    /// Ok it survives a kill -9. Records written before a crash without their commit may come
    /// back too (never cut short: each has its check), which a replay may take: the kernel
    /// accepted them. After a failed write or sync every commit fails until [`Journal::clear`].
    pub fn commit(&mut self) -> Result<(), ValidatorError> {
        if self.broken {
            let e = io::Error::other("an earlier failed write left records since the last commit unwritten");
            return Err(ValidatorError::Io(self.path.clone(), e));
        }
        if self.pending.is_empty() && self.written_bytes == 0 {
            return Ok(());
        }
        if let Err(e) = self.write_pending().and_then(|()| self.file.sync_data()) {
            self.fail_write(&e);
            return Err(ValidatorError::Io(self.path.clone(), e));
        }
        self.committed_bytes += self.written_bytes;
        self.written_bytes = 0;
        Ok(())
    }

    /// Bytes committed and appended since: what a replay would read.
    pub fn bytes(&self) -> u64 {
        self.committed_bytes + self.written_bytes + self.pending.len() as u64
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
        self.written_bytes = 0;
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
    fn committed_records_survive_a_reopen_in_the_order_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        {
            let mut j = Journal::open(&path).unwrap();
            j.header(&[7; 80]);
            j.block(&[1, 2, 3]);
            j.commit().unwrap();
            j.block(&[9; 10]); // gathered, never committed: a crash loses it
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
    fn the_journal_holds_little_of_what_it_appends_and_what_it_wrote_survives_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let mut j = Journal::open(&path).unwrap();
        // 100 blocks of 10 kB (the heavy chain's) and one of 1 MB between two checkpoints: the
        // journal gathers at most PENDING_MAX of them, the rest is in the file already.
        for i in 0..100u8 {
            j.block(&[i; 10_000]);
            assert!(j.pending.capacity() <= 2 * PENDING_MAX, "{} bytes held", j.pending.capacity());
        }
        j.block(&vec![0xee; 1 << 20]);
        assert!(j.pending.capacity() <= 2 * PENDING_MAX);
        j.block(&[1; 5]);
        assert_eq!(j.bytes(), 100 * (13 + 10_000) + 13 + (1 << 20) + 13 + 5);
        // A crash before the commit (the process gone, the file as written): the records written
        // come back whole, the one still gathered does not.
        drop(j);
        let j = Journal::open(&path).unwrap();
        let back = records(&j);
        assert_eq!(back.len(), 101, "all but the last, gathered one");
        assert_eq!(back[99], ('B', vec![99; 10_000]));
        assert_eq!(back[100].1.len(), 1 << 20);
        assert_eq!(j.bytes(), 100 * (13 + 10_000) + 13 + (1 << 20));
    }

    #[test]
    fn a_failed_write_fails_every_commit_until_a_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let mut j = Journal::open(&path).unwrap();
        j.block(&[1]);
        j.commit().unwrap();
        j.block(&[5; 1000]);
        // A full disk: every write fails with "no space left on device".
        let real = std::mem::replace(&mut j.file, OpenOptions::new().write(true).open("/dev/full").unwrap());
        assert!(j.commit().is_err());
        j.file = real;
        // The record did not reach the file and is not held: no later commit may say it did.
        let Err(err) = j.commit() else { panic!("records since the last commit are lost") };
        assert!(err.to_string().contains("unwritten"), "{err}");
        j.block(&[6]);
        assert!(j.commit().is_err(), "nor with more records after it");
        assert_eq!(records(&j), [('B', vec![1])], "the file ends at its last commit");
        // A write failing in the middle of a large block (it goes out straight, not gathered).
        j.clear().unwrap();
        j.block(&[7]);
        j.commit().unwrap();
        let real = std::mem::replace(&mut j.file, OpenOptions::new().write(true).open("/dev/full").unwrap());
        j.block(&vec![8; PENDING_MAX + 1]);
        j.file = real;
        assert!(j.commit().is_err());
        assert_eq!(records(&j), [('B', vec![7])]);
        // The kernel's flush makes them durable its way and empties the journal: it works again.
        j.clear().unwrap();
        j.block(&[9]);
        j.commit().unwrap();
        assert_eq!(records(&j), [('B', vec![9])]);
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
