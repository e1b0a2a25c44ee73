//! Bitcoin Core's consensus engine (libbitcoinkernel, through the `bitcoinkernel` crate) as a
//! [`BlockValidator`]: full validation — scripts, amounts, BIP rules, retargets — exactly as Core
//! does it, with Core's block files (`<dir>/blocks`) and chainstate (`<dir>/chainstate`).
//!
//! # What the kernel tells us
//! `process_block` only says "accepted / duplicate / rejected", and "accepted" covers a block that
//! is stored but later fails to connect (bad script). The verdicts therefore come from the kernel's
//! validation callbacks, which it runs synchronously inside `process_block` (its signals use an
//! immediate task runner): `block_checked` (valid or the reason), `block_connected` and
//! `block_disconnected` in the order applied. They are collected in a buffer and turned into
//! [`ValidationEvent`]s after each call. Reasons are Core's `BlockValidationResult` codes; the
//! kernel does not expose its reject strings ("bad-txns-…").
//!
//! # Durability (what survives kill -9)
//! The kernel API has no flush call. Core writes the block index and the coins cache to disk only
//! in `FlushStateToDisk`: every 50–70 min, when the coins cache is nearly full, and when the
//! chainstate manager is destroyed. A process killed in between restarts at the last flush. So every
//! header and block the kernel accepts is also appended to a write-ahead journal
//! (`<dir>/journal.log`, see [`super::journal`]), and [`KernelValidator::checkpoint`] commits it —
//! one write and one `fdatasync` — and returns the tip, now durable: after a kill -9, opening
//! replays the journal through the kernel and reaches that tip again. Only when the journal outgrows
//! [`KernelConfig::journal_bytes_max`] does a checkpoint flush the kernel the one way the API allows
//! — destroy the chainstate manager and open it again, a block-index reload and an empty coins
//! cache — and empty the journal. The worker checkpoints on a budget (see `worker`) and reports
//! [`ValidationEvent::Durable`]; everything at or below that tip survives a kill -9.
//!
//! # Logs
//! The kernel's log is process-global; the first validator opened connects it to `tracing`
//! (target `bitcoinkernel`, debug level) for the life of the process. Before that the kernel
//! buffers at most 1 MB of lines.
//!
//! # Chainwork
//! The API does not expose a block's chainwork; it is summed from the headers' bits along the
//! active chain when opened and kept up to date from the connect/disconnect callbacks.

use super::journal::{Journal, Record};
use super::{BlockValidator, HeaderInfo, RejectReason, ValidatedTip, ValidationEvent, ValidatorError};
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target, Work};
use bitcoin::BlockHash;
use bitcoinkernel::prelude::*;
use bitcoinkernel::{
    Block, BlockHeader, BlockTreeEntry, BlockValidationResult, ChainType, ChainstateManager, Context, ContextBuilder,
    ProcessBlockResult, ValidationMode,
};
use oni_systems::wire::Network;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, PoisonError};

/// Where and how the kernel keeps its state.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Which chain's rules and genesis.
    pub network: Network,
    /// The kernel's own directory (`blocks/` and `chainstate/` go under it).
    pub dir: PathBuf,
    /// Script-check threads besides the worker (Core's `-par` minus one; 0 = check on the worker).
    pub script_threads: i32,
    /// Keep the block index and chainstate databases in memory (block files still go to `dir`):
    /// for benches and throwaway tests only — nothing survives a restart, and checkpoints are
    /// no-ops (their `Durable` promises nothing).
    pub in_memory: bool,
    /// Journal budget in bytes: a checkpoint commits the journal (`journal`) while it holds less,
    /// and flushes the kernel (then empties it) once it holds more. 0: no journal, every
    /// checkpoint flushes the kernel.
    pub journal_bytes_max: u64,
}

impl KernelConfig {
    /// The node's layout: the kernel lives in `<datadir>/kernel`, one script thread per spare core.
    pub fn new(network: Network, datadir: &Path) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        KernelConfig {
            network,
            dir: datadir.join("kernel"),
            script_threads: (cores.saturating_sub(1)).min(15) as i32,
            in_memory: false,
            journal_bytes_max: JOURNAL_BYTES_MAX,
        }
    }
}

/// The node's journal budget: 256 MiB of blocks between kernel flushes (Core's own IBD flushes when
/// its 450 MiB coins cache fills; a replay after a crash re-validates at most this much).
pub const JOURNAL_BYTES_MAX: u64 = 256 << 20;

/// One spent output from a block's undo data (what a mempool's UTXO view and an auditor need).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentCoin {
    /// Its amount in satoshis.
    pub value_sat: i64,
    /// Its locking script.
    pub script_pubkey: Vec<u8>,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it was a coinbase output.
    pub coinbase: bool,
}

/// What the callbacks saw during one kernel call.
enum Note {
    Checked { hash: BlockHash, invalid: Option<RejectReason> },
    Connected { hash: BlockHash, height: u32, bits: u32 },
    Disconnected { hash: BlockHash, height: u32, bits: u32 },
    Fatal(&'static str),
}

type Notes = Arc<Mutex<Vec<Note>>>;

/// The libbitcoinkernel validator; see the module docs for its guarantees.
pub struct KernelValidator {
    // Field order matters: the chainstate manager must be dropped (and flush) before its context.
    chainman: Option<ChainstateManager>,
    context: Context,
    config: KernelConfig,
    notes: Notes,
    tip: ValidatedTip,
    journal: Option<Journal>,
}

/// Opens the journal file, refusing the LMDB journal directory an earlier build kept beside it: its
/// records would be ignored, and it may hold blocks reported connected that the kernel has not
/// flushed.
fn open_journal(dir: &Path) -> Result<Journal, ValidatorError> {
    let earlier = dir.join("journal");
    if earlier.is_dir() {
        return Err(ValidatorError::Kernel(format!(
            "{}: a validation journal in an earlier build's format (LMDB); start that build once so it \
             replays and empties it, or remove the directory to re-download what it held",
            earlier.display()
        )));
    }
    Journal::open(&dir.join("journal.log"))
}

fn chain_type(network: Network) -> ChainType {
    match network {
        Network::Main => ChainType::Mainnet,
        Network::Testnet4 => ChainType::Testnet4,
        Network::Signet => ChainType::Signet,
        Network::Regtest => ChainType::Regtest,
    }
}

fn to_hash(bytes: [u8; 32]) -> BlockHash {
    BlockHash::from_byte_array(bytes)
}

fn work_of(bits: u32) -> Work {
    Target::from_compact(CompactTarget::from_consensus(bits)).to_work()
}

fn reason_of(mode: ValidationMode, result: BlockValidationResult) -> Option<RejectReason> {
    match mode {
        ValidationMode::Valid => None,
        ValidationMode::InternalError => Some(RejectReason::Internal),
        ValidationMode::Invalid => Some(match result {
            BlockValidationResult::Unset | BlockValidationResult::Consensus => RejectReason::Consensus,
            BlockValidationResult::CachedInvalid => RejectReason::CachedInvalid,
            BlockValidationResult::InvalidHeader => RejectReason::InvalidHeader,
            BlockValidationResult::Mutated => RejectReason::Mutated,
            BlockValidationResult::MissingPrev => RejectReason::MissingPrev,
            BlockValidationResult::InvalidPrev => RejectReason::InvalidPrev,
            BlockValidationResult::TimeFuture => RejectReason::TimeFuture,
            BlockValidationResult::HeaderLowWork => RejectReason::HeaderLowWork,
        }),
    }
}

struct TracingLog;

impl bitcoinkernel::Log for TracingLog {
    fn log(&self, message: &str) {
        tracing::debug!(target: "bitcoinkernel", "{}", message.trim_end());
    }
}

/// Connect the kernel's global log to `tracing`, once per process.
fn bridge_kernel_log() {
    static BRIDGE: Once = Once::new();
    BRIDGE.call_once(|| {
        bitcoinkernel::log::logging::set_logging_options(bitcoinkernel::log::logging::LoggingOptions {
            log_timestamps: false,
            ..Default::default()
        });
        match bitcoinkernel::Logger::new(TracingLog) {
            // The connection must outlive every validator; it is not Send, so it cannot sit
            // in a static: leak it on purpose (one per process).
            Ok(logger) => std::mem::forget(logger),
            Err(e) => tracing::warn!(error = %e, "kernel log not connected"),
        }
    });
}

fn push(notes: &Notes, note: Note) {
    notes.lock().unwrap_or_else(PoisonError::into_inner).push(note);
}

fn build_context(network: Network, notes: &Notes) -> Result<Context, ValidatorError> {
    let (checked, connected, disconnected) = (notes.clone(), notes.clone(), notes.clone());
    let (fatal, flush) = (notes.clone(), notes.clone());
    ContextBuilder::new()
        .chain_type(chain_type(network))
        .with_block_checked_validation(move |block: Block, state: bitcoinkernel::BlockValidationStateRef<'_>| {
            let invalid = reason_of(state.mode(), state.result());
            push(&checked, Note::Checked { hash: to_hash(block.hash().to_bytes()), invalid });
        })
        .with_block_connected_validation(move |_block: Block, entry: BlockTreeEntry<'_>| {
            push(&connected, entry_note(&entry, true));
        })
        .with_block_disconnected_validation(move |_block: Block, entry: BlockTreeEntry<'_>| {
            push(&disconnected, entry_note(&entry, false));
        })
        .with_fatal_error_notification(move |message: String| {
            tracing::error!(%message, "bitcoin kernel fatal error");
            push(&fatal, Note::Fatal("kernel_fatal_error"));
        })
        .with_flush_error_notification(move |message: String| {
            tracing::error!(%message, "bitcoin kernel flush error");
            push(&flush, Note::Fatal("kernel_flush_error"));
        })
        .build()
        .map_err(|e| ValidatorError::Kernel(e.to_string()))
}

/// The entry's header, owned so that it is freed. `btck_block_tree_entry_get_block_header` makes a
/// new header for its caller to destroy, but the crate's `BlockTreeEntry::header` wraps it in a
/// `BlockHeaderRef`, which never frees: every call leaked ~96 bytes — one per block connected
/// (≈ 90 MB over mainnet's chain) and one per active-chain block at every open (`scan_tip`).
fn owned_header(entry: &BlockTreeEntry<'_>) -> BlockHeader {
    // SAFETY: `header()` returns the fresh `btck_BlockHeader*` the C call created, which nothing
    // else holds or frees; `BlockHeader` wraps the same one pointer and destroys it on drop.
    // Both are a lone pointer (one also has a zero-sized marker), so it sits at offset 0 in
    // either; `transmute` refuses to compile if a size changes. Cargo.toml pins the crate's
    // version this was read from.
    unsafe { std::mem::transmute::<_, BlockHeader>(entry.header()) }
}

fn entry_note(entry: &BlockTreeEntry<'_>, connected: bool) -> Note {
    let hash = to_hash(entry.block_hash().to_bytes());
    let height = entry.height().max(0) as u32;
    let bits = owned_header(entry).bits();
    if connected {
        Note::Connected { hash, height, bits }
    } else {
        Note::Disconnected { hash, height, bits }
    }
}

fn open_chainman(context: &Context, config: &KernelConfig) -> Result<ChainstateManager, ValidatorError> {
    let kernel = |e: bitcoinkernel::KernelError| ValidatorError::Kernel(e.to_string());
    let blocks_dir = config.dir.join("blocks");
    for dir in [&config.dir, &blocks_dir] {
        std::fs::create_dir_all(dir).map_err(|e| ValidatorError::Io(dir.clone(), e))?;
    }
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| ValidatorError::Kernel(format!("path is not UTF-8: {}", p.display())))
    };
    let chainman = ChainstateManager::builder(context, &utf8(&config.dir)?, &utf8(&blocks_dir)?)
        .map_err(kernel)?
        .worker_threads(config.script_threads)
        .chainstate_db_in_memory(config.in_memory)
        .block_tree_db_in_memory(config.in_memory)
        .build()
        .map_err(kernel)?;
    // Finishes an interrupted reindex, if any; otherwise only activates the best chain.
    chainman.import_blocks().map_err(kernel)?;
    Ok(chainman)
}

/// Sum the work of the active chain from genesis (done once per open).
fn scan_tip(chainman: &ChainstateManager) -> ValidatedTip {
    let chain = chainman.active_chain();
    let mut chainwork = Work::from_be_bytes([0; 32]);
    for entry in chain.iter() {
        chainwork = chainwork + work_of(owned_header(&entry).bits());
    }
    let tip = chain.tip();
    ValidatedTip { height: tip.height().max(0) as u32, hash: to_hash(tip.block_hash().to_bytes()), chainwork }
}

impl KernelValidator {
    /// Open (or create) the kernel's state in `config.dir` and load its active chain.
    pub fn open(config: KernelConfig) -> Result<Self, ValidatorError> {
        bridge_kernel_log();
        let notes: Notes = Arc::default();
        let context = build_context(config.network, &notes)?;
        let chainman = open_chainman(&context, &config)?;
        let journal = match config.journal_bytes_max {
            0 => None,
            _ if config.in_memory => None,
            _ => Some(open_journal(&config.dir)?),
        };
        let tip = scan_tip(&chainman);
        notes.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let mut kernel = KernelValidator { chainman: Some(chainman), context, config, notes, tip, journal };
        kernel.replay_journal()?;
        Ok(kernel)
    }

    /// After a crash: the journal's headers and blocks through the kernel in their first order,
    /// so it reaches every tip it reported; then a full flush, and the journal is emptied only if
    /// the reopened kernel shows the same tip.
    fn replay_journal(&mut self) -> Result<(), ValidatorError> {
        let Some(journal) = self.journal.as_ref().filter(|j| !j.is_empty()) else { return Ok(()) };
        let Some(chainman) = self.chainman.as_ref() else { return Ok(()) };
        let started = std::time::Instant::now();
        let before = self.tip.height;
        let count = journal.replay(|record| match record {
            Record::Header(raw) => {
                if let Ok(header) = bitcoinkernel::BlockHeader::new(raw) {
                    let _ = chainman.process_block_header(&header);
                }
            }
            Record::Block(raw) => {
                if let Ok(block) = Block::new(raw) {
                    let _ = chainman.process_block(&block);
                }
            }
        })?;
        self.notes.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.tip = scan_tip(chainman);
        tracing::info!(
            headers = count.headers,
            blocks = count.blocks,
            skipped = count.skipped,
            from = before,
            to = self.tip.height,
            ms = started.elapsed().as_millis() as u64,
            "replayed the validation journal"
        );
        self.flush()
    }

    /// The kernel's only forced flush (block files, block index, coins): destroy the chainstate
    /// manager and open it again on the same directories. The journal is emptied when the reopened
    /// kernel holds the same tip, and kept (to be replayed again) when it does not.
    fn flush(&mut self) -> Result<(), ValidatorError> {
        drop(self.chainman.take());
        let chainman = open_chainman(&self.context, &self.config)?;
        self.notes.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let tip = chainman.active_chain().tip();
        let same = to_hash(tip.block_hash().to_bytes()) == self.tip.hash;
        if !same {
            // Should not happen; rescan rather than trust the running chainwork.
            let reopened = scan_tip(&chainman);
            tracing::warn!(before = %self.tip.hash, after = %reopened.hash, "tip moved across a kernel flush");
            self.tip = reopened;
        }
        self.chainman = Some(chainman);
        if let Some(journal) = self.journal.as_mut().filter(|_| same) {
            if let Err(e) = journal.clear() {
                // Harmless: its records replay as duplicates after the next crash.
                tracing::warn!(error = %e, "could not empty the validation journal after a flush");
            }
        }
        Ok(())
    }

    /// Bytes in the journal (committed and pending), or `None` without one.
    pub fn journal_bytes(&self) -> Option<u64> {
        self.journal.as_ref().map(Journal::bytes)
    }

    /// The chainstate manager; absent only after a checkpoint failed to reopen it, and then every
    /// call fails softly (no answer, `Internal` rejections) until a checkpoint succeeds.
    fn chainman(&self) -> Option<&ChainstateManager> {
        self.chainman.as_ref()
    }

    fn entry(&self, hash: &BlockHash) -> Option<BlockTreeEntry<'_>> {
        let kernel_hash = bitcoinkernel::BlockHash::from(hash.to_byte_array());
        self.chainman()?.get_block_tree_entry(&kernel_hash)
    }

    /// Hash of the active chain's block at `height`, if the chain is that long.
    pub fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        let entry = self.chainman()?.active_chain().at_height(height as usize)?;
        Some(to_hash(entry.block_hash().to_bytes()))
    }

    /// The outputs a block spent, per non-coinbase transaction in block order (its undo data).
    pub fn spent_outputs(&self, hash: &BlockHash) -> Option<Vec<Vec<SpentCoin>>> {
        let entry = self.entry(hash)?;
        let undo = self.chainman()?.read_spent_outputs(&entry).ok()?;
        let txs = undo
            .iter()
            .map(|tx| {
                tx.coins()
                    .map(|coin| {
                        let out = coin.output();
                        SpentCoin {
                            value_sat: out.value(),
                            script_pubkey: out.script_pubkey().to_bytes(),
                            height: coin.confirmation_height(),
                            coinbase: coin.is_coinbase(),
                        }
                    })
                    .collect()
            })
            .collect();
        Some(txs)
    }

    fn drain_notes(&mut self, submitted: BlockHash, events: &mut Vec<ValidationEvent>) -> bool {
        let notes = std::mem::take(&mut *self.notes.lock().unwrap_or_else(PoisonError::into_inner));
        let mut verdict = false;
        for note in notes {
            match note {
                Note::Checked { invalid: None, .. } => {}
                Note::Checked { hash, invalid: Some(reason) } => {
                    verdict |= hash == submitted;
                    events.push(ValidationEvent::Rejected { hash, reason });
                }
                Note::Connected { hash, height, bits } => {
                    verdict |= hash == submitted;
                    self.tip.chainwork = self.tip.chainwork + work_of(bits);
                    events.push(ValidationEvent::Connected { hash, height });
                }
                Note::Disconnected { hash, height, bits } => {
                    self.tip.chainwork = self.tip.chainwork - work_of(bits);
                    events.push(ValidationEvent::Disconnected { hash, height });
                }
                Note::Fatal(what) => events.push(ValidationEvent::Fatal { what }),
            }
        }
        verdict
    }
}

impl BlockValidator for KernelValidator {
    fn submit_header(&mut self, raw: &[u8; 80]) -> bool {
        let Some(chainman) = self.chainman() else { return false };
        let Ok(header) = bitcoinkernel::BlockHeader::new(raw) else { return false };
        let valid =
            matches!(chainman.process_block_header(&header), Ok(bitcoinkernel::ProcessBlockHeaderResult::Valid));
        if let Some(journal) = self.journal.as_mut().filter(|_| valid) {
            journal.header(raw);
        }
        valid
    }

    fn submit(&mut self, hash: BlockHash, raw: &[u8], events: &mut Vec<ValidationEvent>) {
        let Ok(block) = Block::new(raw) else {
            events.push(ValidationEvent::Rejected { hash, reason: RejectReason::Undecodable });
            return;
        };
        if to_hash(block.hash().to_bytes()) != hash {
            events.push(ValidationEvent::Rejected { hash, reason: RejectReason::HashMismatch });
            return;
        }
        let Some(chainman) = self.chainman() else {
            events.push(ValidationEvent::Rejected { hash, reason: RejectReason::Internal });
            return;
        };
        let result = chainman.process_block(&block);
        let (height, tip_hash) = {
            let tip = chainman.active_chain().tip();
            (tip.height().max(0) as u32, to_hash(tip.block_hash().to_bytes()))
        };
        if let (ProcessBlockResult::NewBlock, Some(journal)) = (&result, self.journal.as_mut()) {
            journal.block(raw);
        }
        let had_verdict = self.drain_notes(hash, events);
        self.tip.height = height;
        self.tip.hash = tip_hash;
        if !had_verdict {
            events.push(match result {
                ProcessBlockResult::NewBlock => ValidationEvent::Stored { hash },
                ProcessBlockResult::Duplicate => ValidationEvent::AlreadyKnown { hash },
                // Refused without a block_checked verdict: the kernel failed, not the block.
                ProcessBlockResult::Rejected => ValidationEvent::Rejected { hash, reason: RejectReason::Internal },
            });
        }
    }

    fn tip(&self) -> ValidatedTip {
        self.tip
    }

    fn header_for(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        let entry = self.entry(hash)?;
        let raw = owned_header(&entry).consensus_encode().ok()?;
        let header: Header = bitcoin::consensus::deserialize(&raw).ok()?;
        Some(HeaderInfo {
            header,
            height: entry.height().max(0) as u32,
            in_active_chain: self.chainman()?.active_chain().contains(&entry),
        })
    }

    fn read_block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        let entry = self.entry(hash)?;
        self.chainman()?.read_block_data(&entry).ok()?.consensus_encode().ok()
    }

    fn active_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.block_hash_at(height)
    }

    fn checkpoint(&mut self) -> Result<ValidatedTip, ValidatorError> {
        if self.config.in_memory {
            // Reopening would discard in-memory databases; nothing is durable in this mode.
            return Ok(self.tip);
        }
        let budget = self.config.journal_bytes_max;
        if let Some(journal) = self.journal.as_mut().filter(|j| j.bytes() <= budget) {
            match journal.commit() {
                Ok(()) => return Ok(self.tip),
                Err(e) => tracing::warn!(error = %e, "validation journal commit failed; flushing the kernel instead"),
            }
        }
        self.flush()?;
        Ok(self.tip)
    }
}
