//! Target 5: the low-work header sync (`chain::presync`) fed `headers` messages a peer chooses:
//! fresh headers on the sync's locator tip (or not linked to it), replays of the chain it sent in
//! PRESYNC (optionally with one header changed), empty messages, restarts. Messages pass the
//! caller's checks first (continuity inside the message, each header's proof of work, ground
//! cheaply on regtest), as `headers_sync` does. After every message:
//! - the sync's heap, measured by the counting allocator across its calls, equals its own
//!   `heap_bytes()` and stays within `heap_bound()`, and no call peaks above the bound plus what it
//!   returns;
//! - released headers continue the chain from the start, one after another, and only in REDOWNLOAD;
//! - nothing is released by or after a commitment mismatch, a finished sync does nothing, and an
//!   abort ends the sync;
//! - an honest replay (exactly the PRESYNC chain) is never refused and is released in full, in order,
//!   once it shows the minimum work.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use oni_fuzz::{live_heap, peak_heap_of};
use oni_systems::chain::pow::check_pow;
use oni_systems::chain::presync::{Abort, HeadersPresync, Phase};
use oni_systems::chain::u256::U256;
use oni_systems::chain::{ChainParams, HeaderTree};
use oni_systems::wire::headers::{block_hash, HEADER_BYTES};
use oni_systems::wire::Network;

use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::BlockHash;

/// Most messages per input, and headers per message: keeps an input to a few milliseconds.
const MAX_OPS: usize = 64;
const MAX_PER_MESSAGE: usize = 64;
/// Nonces tried per header before the message is cut there (regtest's limit passes half of them).
const GRIND_TRIES: u32 = 32;
/// What a call may hold beyond the bound and its output: nothing else is allocated.
const CALL_SLACK_BYTES: usize = 256;

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Commitment period, 1..=16 (small: commitments come often).
    period: u8,
    /// Redownload buffer, 1..=64 headers.
    buffer: u8,
    /// Minimum work, in regtest headers (2 work each).
    min_work_headers: u16,
    /// Mainnet's rule: bits may only change at a retarget (regtest allows any).
    strict_bits: bool,
    seeds: [u64; 4],
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// New headers on the sync's locator tip (the first one on another hash with `break_link`).
    Fresh { n: u8, full: bool, break_link: bool, bits: u8, salt: u16 },
    /// The next headers of the PRESYNC chain after the locator tip; `change` alters one of them
    /// (and relinks the rest of the message onto it).
    Replay { n: u8, full: bool, change: Option<u8> },
    /// An empty `headers` message.
    Empty { full: bool },
    /// A new sync from the start, with new seeds.
    Restart { seeds: [u64; 4] },
}

/// A header on `prev` with its proof of work ground; `None` when none of the tries passed.
fn header(
    params: &ChainParams,
    prev: &BlockHash,
    time: u32,
    bits: u32,
    salt: [u8; 8],
) -> Option<([u8; HEADER_BYTES], BlockHash)> {
    let mut raw = [0u8; HEADER_BYTES];
    raw[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
    raw[4..36].copy_from_slice(prev.as_byte_array());
    raw[36..44].copy_from_slice(&salt);
    raw[68..72].copy_from_slice(&time.to_le_bytes());
    raw[72..76].copy_from_slice(&bits.to_le_bytes());
    for nonce in 0..GRIND_TRIES {
        raw[76..80].copy_from_slice(&nonce.to_le_bytes());
        let hash = block_hash(&raw);
        if check_pow(hash.as_byte_array(), bits, params).is_ok() {
            return Some((raw, hash));
        }
    }
    None
}

fn bits_of(raw: &[u8; HEADER_BYTES]) -> u32 {
    u32::from_le_bytes([raw[72], raw[73], raw[74], raw[75]])
}

fn work_of(bits: u32, params: &ChainParams) -> Work {
    U256::from_compact(bits).unwrap_or(params.pow_limit).work()
}

struct Run {
    params: ChainParams,
    tree: HeaderTree,
    min_work: Work,
    now_s: i64,
    sync: HeadersPresync,
    /// The sync's heap as the allocator saw it change across its calls.
    heap: isize,
    /// Headers processed in PRESYNC, in order.
    presync_chain: Vec<([u8; HEADER_BYTES], BlockHash)>,
    /// Every header sent in REDOWNLOAD so far was the PRESYNC chain's next one.
    honest: bool,
    released: Vec<[u8; HEADER_BYTES]>,
    released_tip: BlockHash,
    released_work: Work,
    /// Headers processed in REDOWNLOAD.
    redownloaded: usize,
    counter: u32,
}

impl Run {
    fn restart(&mut self, seeds: [u64; 4]) {
        let before = live_heap();
        self.sync = HeadersPresync::new(&self.tree, 0, &self.params, self.min_work, self.now_s, seeds);
        let freed = live_heap() - before;
        assert_eq!(freed, -self.heap, "dropping the sync freed what it held");
        self.heap = 0;
        self.presync_chain.clear();
        self.honest = true;
        self.released.clear();
        self.redownloaded = 0;
        let (start, _, _, work) = self.sync.start();
        self.released_tip = start;
        self.released_work = work;
    }

    fn fresh(&mut self, n: usize, break_link: bool, bits_sel: u8, salt: u16) -> Vec<([u8; HEADER_BYTES], BlockHash)> {
        let mut prev = self.sync.locator_tip();
        if break_link {
            prev = BlockHash::from_byte_array([salt as u8 | 1; 32]);
        }
        let bits = match bits_sel % 8 {
            5 => 0x203f_ffff,
            6 => 0x201f_ffff,
            7 => 0x2000_0000 | (salt as u32) << 8 | 0xff,
            _ => self.params.pow_limit_bits,
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            self.counter += 1;
            let mut s = [0u8; 8];
            s[..4].copy_from_slice(&self.counter.to_le_bytes());
            s[4..6].copy_from_slice(&salt.to_le_bytes());
            let Some(h) = header(&self.params, &prev, self.params.genesis.time + self.counter, bits, s) else { break };
            prev = h.1;
            out.push(h);
        }
        out
    }

    fn replay(&mut self, n: usize, change: Option<u8>) -> Vec<([u8; HEADER_BYTES], BlockHash)> {
        let tip = self.sync.locator_tip();
        let from = if tip == self.released_tip_start() {
            0
        } else {
            self.presync_chain.iter().position(|(_, h)| *h == tip).map_or(self.presync_chain.len(), |i| i + 1)
        };
        let mut out: Vec<_> = self.presync_chain.iter().skip(from).take(n).copied().collect();
        if let Some(at) = change.map(|c| c as usize).filter(|&c| c < out.len()) {
            // A different header at `at`, and the rest of the message relinked onto it.
            let mut prev = if at == 0 { tip } else { out[at - 1].1 };
            let rest: Vec<_> = out.drain(at..).collect();
            for (k, (raw, _)) in rest.iter().enumerate() {
                let mut salt: [u8; 8] = raw[36..44].try_into().unwrap_or([0; 8]);
                if k == 0 {
                    salt[7] ^= 0x80;
                }
                let time = u32::from_le_bytes([raw[68], raw[69], raw[70], raw[71]]);
                let Some(h) = header(&self.params, &prev, time, bits_of(raw), salt) else { break };
                prev = h.1;
                out.push(h);
            }
        }
        out
    }

    fn released_tip_start(&self) -> BlockHash {
        self.sync.start().0
    }

    fn process(&mut self, msg: &[([u8; HEADER_BYTES], BlockHash)], full: bool) {
        let phase = self.sync.phase();
        let height = self.sync.presync_height();
        let held = self.heap;
        let before = live_heap();
        let (out, peak) = peak_heap_of(|| self.sync.process(msg, full, &self.params));
        let out_heap = out.release.capacity() * HEADER_BYTES;
        self.heap += live_heap() - before - out_heap as isize;
        assert_eq!(self.heap, self.sync.heap_bytes() as isize, "heap_bytes() is what the allocator saw");
        assert!(self.sync.heap_bytes() <= self.sync.heap_bound(), "{} over the bound", self.sync.heap_bytes());
        assert!(
            held as usize + peak <= self.sync.heap_bound() + out_heap + CALL_SLACK_BYTES,
            "a call peaked at {} + {peak} bytes",
            held
        );

        if phase == Phase::Done {
            assert!(out.release.is_empty() && !out.request_more && out.aborted.is_none(), "a finished sync acted");
            return;
        }
        if out.aborted.is_some() || !out.request_more {
            assert_eq!(self.sync.phase(), Phase::Done, "a sync that asks for nothing more is over");
        }
        if out.request_more {
            assert_ne!(self.sync.phase(), Phase::Done);
        }
        if phase == Phase::Redownload {
            let sent = self.redownloaded;
            for (k, (_, h)) in msg.iter().enumerate() {
                if self.presync_chain.get(sent + k).map(|(_, p)| p) != Some(h) {
                    self.honest = false;
                }
            }
        }
        if out.aborted == Some(Abort::CommitmentMismatch) {
            assert!(out.release.is_empty(), "released headers in the message that failed its commitments");
            assert!(!self.honest, "the chain sent in PRESYNC failed its own commitments on replay");
        }
        match phase {
            Phase::Presync => {
                assert!(out.release.is_empty(), "released in PRESYNC");
                if out.aborted.is_none() {
                    assert_eq!(self.sync.presync_height(), height + msg.len() as u32);
                    self.presync_chain.extend_from_slice(msg);
                    if self.sync.phase() == Phase::Redownload {
                        assert!(self.sync.presync_work() >= self.min_work);
                        assert_eq!(self.sync.locator_tip(), self.released_tip_start(), "redownload from the start");
                    } else if let Some((_, last)) = msg.last() {
                        assert_eq!(self.sync.locator_tip(), *last);
                    }
                }
            }
            Phase::Redownload => {
                for raw in &out.release {
                    assert_eq!(&raw[4..36], self.released_tip.as_byte_array(), "released out of chain order");
                    self.released_tip = block_hash(raw);
                    self.released_work = self.released_work + work_of(bits_of(raw), &self.params);
                }
                self.released.extend_from_slice(&out.release);
                if self.honest {
                    assert!(out.aborted.is_none() || out.aborted == Some(Abort::Incomplete), "{:?}", out.aborted);
                    let n = self.released.len();
                    assert!(
                        self.released.iter().zip(&self.presync_chain[..n]).all(|(a, (b, _))| a == b),
                        "an honest replay released other headers"
                    );
                }
                if self.sync.phase() == Phase::Done && out.aborted.is_none() {
                    assert!(self.released_work >= self.min_work, "finished before the minimum work");
                }
                if out.aborted.is_none() {
                    self.redownloaded += msg.len();
                }
            }
            Phase::Done => unreachable!(),
        }
    }
}

fuzz_target!(|input: (Setup, Vec<Op>)| {
    let (setup, ops) = input;
    let mut params = ChainParams::for_network(Network::Regtest);
    params.commitment_period = 1 + setup.period as u32 % 16;
    params.redownload_buffer = 1 + setup.buffer as usize % 64;
    params.allow_min_difficulty = !setup.strict_bits;
    let tree = HeaderTree::new(&params);
    let min_work = work_of(params.pow_limit_bits, &params);
    let mut min_work_total = tree.entry(0).chainwork();
    for _ in 0..1 + setup.min_work_headers % 512 {
        min_work_total = min_work_total + min_work;
    }
    let now_s = params.genesis.time as i64 + 600;
    let sync = HeadersPresync::new(&tree, 0, &params, min_work_total, now_s, setup.seeds);
    let start = tree.entry(0);
    let mut run = Run {
        released_tip: start.hash,
        released_work: start.chainwork(),
        params,
        tree,
        min_work: min_work_total,
        now_s,
        sync,
        heap: 0,
        presync_chain: Vec::new(),
        honest: true,
        released: Vec::new(),
        redownloaded: 0,
        counter: 0,
    };
    for op in ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Fresh { n, full, break_link, bits, salt } => {
                let msg = run.fresh(n as usize % (MAX_PER_MESSAGE + 1), break_link, bits, salt);
                run.process(&msg, full);
            }
            Op::Replay { n, full, change } => {
                let msg = run.replay(n as usize % (MAX_PER_MESSAGE + 1), change);
                run.process(&msg, full);
            }
            Op::Empty { full } => run.process(&[], full),
            Op::Restart { seeds } => run.restart(seeds),
        }
    }
});
