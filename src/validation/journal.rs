//! The kernel's write-ahead journal: what makes a block durable without flushing the kernel.
//!
//! The kernel writes its block index and coins to disk only when its chainstate manager is
//! destroyed (see `kernel`), and reopening it costs a block-index load and an empty coins cache —
//! at 20,000 blocks of real transactions a checkpoint every 0.5 s held IBD to half Core's speed.
//! Instead, every header and block the kernel accepted is appended here, in the order the kernel
//! saw them, and a checkpoint is one LMDB commit (an fsync of what arrived since the last one).
//! After a crash the kernel opens at its last flush and the journal is replayed through it in the
//! same order, so it reaches every tip it reported; the journal is emptied only after a full flush
//! whose reopened kernel showed the same tip. A full flush happens when the journal outgrows its
//! budget (then replaying it is bounded too) and once at start-up after a replay.
//!
//! Records: key = sequence number (big-endian u64, so LMDB's order is the kernel's), value = one
//! tag byte (`H` header, `B` block) and the raw bytes.

use super::ValidatorError;
use heed::byteorder::BigEndian;
use heed::types::{Bytes, U64};
use heed::{Database, Env, EnvOpenOptions, WithoutTls};
use std::path::Path;

const HEADER: u8 = b'H';
const BLOCK: u8 = b'B';

/// One journaled item, as handed to the replay.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// An 80-byte header the kernel accepted ahead of its block.
    Header(&'a [u8; 80]),
    /// A block's raw bytes (witness serialization).
    Block(&'a [u8]),
}

/// The journal: records committed to LMDB plus those appended since the last commit.
pub struct Journal {
    env: Env<WithoutTls>,
    records: Database<U64<BigEndian>, Bytes>,
    next: u64,
    pending: Vec<Vec<u8>>,
    committed_bytes: u64,
    pending_bytes: u64,
}

fn lmdb(e: heed::Error) -> ValidatorError {
    ValidatorError::Kernel(format!("journal: {e}"))
}

impl Journal {
    /// Opens (or creates) the journal in `dir`; `map_bytes` bounds the file (commits beyond it
    /// fail, and the kernel then flushes instead).
    pub fn open(dir: &Path, map_bytes: usize) -> Result<Journal, ValidatorError> {
        std::fs::create_dir_all(dir).map_err(|e| ValidatorError::Io(dir.to_path_buf(), e))?;
        crate::store::precheck(dir).map_err(|e| ValidatorError::Kernel(format!("journal: {e}")))?;
        // SAFETY: one environment per directory per process (the kernel's directory is locked by
        // the kernel itself), nothing else writes these files, and a truncated file was refused
        // above (it would fault when mapped).
        let env = unsafe { EnvOpenOptions::new().read_txn_without_tls().map_size(map_bytes).max_dbs(1).open(dir) }
            .map_err(lmdb)?;
        let mut wtxn = env.write_txn().map_err(lmdb)?;
        let records: Database<U64<BigEndian>, Bytes> = env.create_database(&mut wtxn, Some("records")).map_err(lmdb)?;
        wtxn.commit().map_err(lmdb)?;
        let rtxn = env.read_txn().map_err(lmdb)?;
        let next = records.last(&rtxn).map_err(lmdb)?.map_or(0, |(k, _)| k + 1);
        let mut committed_bytes = 0;
        for item in records.iter(&rtxn).map_err(lmdb)? {
            committed_bytes += item.map_err(lmdb)?.1.len() as u64;
        }
        drop(rtxn);
        Ok(Journal { env, records, next, pending: Vec::new(), committed_bytes, pending_bytes: 0 })
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
        let mut value = Vec::with_capacity(raw.len() + 1);
        value.push(tag);
        value.extend_from_slice(raw);
        self.pending_bytes += value.len() as u64;
        self.pending.push(value);
    }

    /// Writes what was appended since the last commit in one transaction; once this returns Ok it
    /// survives a kill -9. On an error nothing of it was written and it stays pending.
    pub fn commit(&mut self) -> Result<(), ValidatorError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut wtxn = self.env.write_txn().map_err(lmdb)?;
        for (i, value) in self.pending.iter().enumerate() {
            self.records.put(&mut wtxn, &(self.next + i as u64), value).map_err(lmdb)?;
        }
        wtxn.commit().map_err(lmdb)?;
        self.next += self.pending.len() as u64;
        self.pending.clear();
        self.committed_bytes += std::mem::take(&mut self.pending_bytes);
        Ok(())
    }

    /// Bytes committed and pending: what a replay would read.
    pub fn bytes(&self) -> u64 {
        self.committed_bytes + self.pending_bytes
    }

    /// Whether nothing is committed or pending.
    pub fn is_empty(&self) -> bool {
        self.bytes() == 0
    }

    /// Hands every committed record to `f`, oldest first. A record with an unknown tag or a header
    /// of the wrong length (a file damaged outside LMDB's guarantees) is skipped and counted.
    pub fn replay(&self, mut f: impl FnMut(Record<'_>)) -> Result<ReplayCount, ValidatorError> {
        let rtxn = self.env.read_txn().map_err(lmdb)?;
        let mut count = ReplayCount::default();
        for item in self.records.iter(&rtxn).map_err(lmdb)? {
            let (_, value) = item.map_err(lmdb)?;
            match value.split_first() {
                Some((&HEADER, rest)) if rest.len() == 80 => {
                    let mut raw = [0u8; 80];
                    raw.copy_from_slice(rest);
                    f(Record::Header(&raw));
                    count.headers += 1;
                }
                Some((&BLOCK, rest)) => {
                    f(Record::Block(rest));
                    count.blocks += 1;
                }
                _ => count.skipped += 1,
            }
        }
        Ok(count)
    }

    /// Drops every record, committed and pending (after a full flush made them redundant).
    pub fn clear(&mut self) -> Result<(), ValidatorError> {
        let mut wtxn = self.env.write_txn().map_err(lmdb)?;
        self.records.clear(&mut wtxn).map_err(lmdb)?;
        wtxn.commit().map_err(lmdb)?;
        self.pending.clear();
        self.committed_bytes = 0;
        self.pending_bytes = 0;
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
    /// Damaged records skipped.
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

    #[test]
    fn only_committed_records_survive_a_reopen_in_the_order_appended() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), 1 << 20).unwrap();
            j.header(&[7; 80]);
            j.block(&[1, 2, 3]);
            j.commit().unwrap();
            j.block(&[9; 10]); // never committed: a crash loses it, as promised
            assert_eq!(j.bytes(), 81 + 4 + 11);
        }
        let mut j = Journal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(records(&j), [('H', vec![7; 80]), ('B', vec![1, 2, 3])]);
        assert_eq!(j.bytes(), 85, "committed bytes are counted again on open");
        j.block(&[4]);
        j.commit().unwrap();
        assert_eq!(records(&j).last(), Some(&('B', vec![4])), "numbering continues after the reopen");
        j.clear().unwrap();
        assert!(j.is_empty());
        drop(j);
        assert!(records(&Journal::open(dir.path(), 1 << 20).unwrap()).is_empty());
    }

    #[test]
    fn a_commit_beyond_the_map_fails_and_keeps_its_records_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 256 << 10).unwrap();
        j.block(&vec![5; 600 << 10]);
        assert!(j.commit().is_err(), "600 kB cannot fit a 256 kB map");
        assert_eq!(j.bytes(), (600 << 10) + 1, "still pending");
        j.clear().unwrap();
        j.block(&[1]);
        j.commit().unwrap();
        assert_eq!(records(&j), [('B', vec![1])]);
    }
}
