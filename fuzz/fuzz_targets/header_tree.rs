//! Target 6: the header tree (`chain::tree`) driven by header sequences a peer and the validator
//! choose: headers extending any entry (forks), with proof of work ground cheaply on regtest and
//! fields that are sometimes wrong (time, bits, version), headers seen again, arbitrary raw
//! headers, and the validator's verdicts (invalid, connected, disconnected, data gone). After every
//! step `HeaderTree::check_invariants` (index and entries agree, heights and chainwork follow the
//! parents, the best chain runs from genesis to the best header, no valid entry has more work
//! than it, failures reach descendants), and against a walk over parents: `ancestor`, the
//! fork point with the best chain, the locator, and each stored header hashing to its entry —
//! also once it is archived (an archive in memory, as the node's header store) and the tree reads
//! its version, merkle root and nonce back from there.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use oni_systems::chain::pow::check_pow;
use oni_systems::chain::tree::{status, BlockIdx, HeaderArchive, HeaderInvalid, NO_PARENT};
use oni_systems::chain::{ChainParams, HeaderTree};
use oni_systems::wire::headers::{block_hash, HEADER_BYTES};
use oni_systems::wire::Network;

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The node's header store, in memory: (height, hash) → raw.
#[derive(Default)]
struct Archive(Mutex<HashMap<(u32, BlockHash), [u8; HEADER_BYTES]>>);

impl HeaderArchive for Archive {
    fn read(&self, keys: &[(u32, BlockHash)], out: &mut Vec<[u8; HEADER_BYTES]>) {
        let m = self.0.lock().unwrap();
        out.extend(keys.iter().map_while(|k| m.get(k).copied()));
    }
}

/// Most steps per input and headers per step: keeps an input to a few milliseconds.
const MAX_OPS: usize = 128;
const MAX_PER_EXTEND: usize = 4;
/// Nonces tried per header (regtest's limit passes half of them).
const GRIND_TRIES: u32 = 32;

#[derive(Arbitrary, Debug)]
enum Op {
    /// `n` headers on the entry `parent` selects, each `minutes` after its parent (may be early).
    Extend { parent: u16, n: u8, minutes: i8, fields: u8, salt: u16 },
    /// The stored header of an entry, again.
    Again { idx: u16 },
    /// A raw header on the entry `parent` selects, every other field the fuzzer's (no grinding).
    Raw { parent: u16, fields: [u8; 44] },
    /// The validator rejected a block.
    Invalidate { idx: u16 },
    /// The validator connected a block.
    Validated { idx: u16 },
    /// The validator disconnected a block.
    Disconnected { idx: u16 },
    /// Data handed over, or given back.
    HaveData { idx: u16, set: bool },
    /// The shell saved the `n` oldest unarchived headers to the store.
    Archive { n: u8 },
}

fn pick(tree: &HeaderTree, sel: u16) -> BlockIdx {
    (sel as usize % tree.len()) as BlockIdx
}

/// A header on `parent` with its proof of work ground; `None` when none of the tries passed.
fn grind(
    params: &ChainParams,
    prev: &BlockHash,
    version: i32,
    time: u32,
    bits: u32,
    salt: [u8; 8],
) -> Option<[u8; 80]> {
    let mut raw = [0u8; HEADER_BYTES];
    raw[0..4].copy_from_slice(&version.to_le_bytes());
    raw[4..36].copy_from_slice(prev.as_byte_array());
    raw[36..44].copy_from_slice(&salt);
    raw[68..72].copy_from_slice(&time.to_le_bytes());
    raw[72..76].copy_from_slice(&bits.to_le_bytes());
    (0..GRIND_TRIES).find_map(|nonce| {
        raw[76..80].copy_from_slice(&nonce.to_le_bytes());
        check_pow(block_hash(&raw).as_byte_array(), bits, params).is_ok().then_some(raw)
    })
}

/// One header through `accept`, checking what it did against what it said.
fn accept(tree: &mut HeaderTree, params: &ChainParams, raw: &[u8; 80], now_s: i64) -> Option<BlockIdx> {
    let hash = block_hash(raw);
    let (len, best) = (tree.len(), tree.best());
    let best_work = tree.best_entry().chainwork();
    let known = tree.get(&hash);
    match tree.accept(raw, hash, params, now_s) {
        Ok((idx, new)) => {
            assert_eq!(new, known.is_none(), "new iff unknown");
            assert_eq!(tree.get(&hash), Some(idx));
            if new {
                assert_eq!(idx as usize, len, "a new entry goes last");
                assert_eq!(tree.len(), len + 1);
                let e = tree.entry(idx);
                assert_eq!(&raw[4..36], tree.entry(e.parent).hash.as_byte_array(), "parent");
                assert_eq!(tree.raw_header(idx), Some(*raw), "stored header");
                if e.chainwork() > best_work {
                    assert_eq!(tree.best(), idx, "more work than the best: the new best");
                } else {
                    assert_eq!(tree.best(), best, "no more work: the best stays");
                }
            } else {
                assert_eq!(tree.len(), len);
                assert_eq!(tree.best(), best);
            }
            Some(idx)
        }
        Err(e) => {
            assert_eq!(tree.len(), len, "a refused header was stored");
            assert_eq!(tree.best(), best);
            if let Some(idx) = known {
                assert_eq!(e, HeaderInvalid::KnownInvalid);
                assert_ne!(tree.entry(idx).status & status::FAILED_ANY, 0);
            }
            None
        }
    }
}

/// The ancestor of `idx` at `height`, by walking parents.
fn walk(tree: &HeaderTree, mut idx: BlockIdx, height: u32) -> Option<BlockIdx> {
    while tree.entry(idx).height > height {
        idx = tree.entry(idx).parent;
    }
    (tree.entry(idx).height == height).then_some(idx)
}

/// Checks the navigation of the tree around `idx` against parent walks.
fn check_around(tree: &HeaderTree, idx: BlockIdx) {
    let e = tree.entry(idx);
    let raw = tree.raw_header(idx).expect("every header can be read back");
    assert_eq!(block_hash(&raw), e.hash, "the stored header hashes to its entry");
    for h in 0..=e.height + 1 {
        assert_eq!(tree.ancestor(idx, h), walk(tree, idx, h), "ancestor of {idx} at {h}");
    }
    let fork = tree.fork_point_with_active(idx);
    assert!(tree.is_on_active(fork), "the fork point is on the best chain");
    assert_eq!(walk(tree, idx, tree.entry(fork).height), Some(fork), "the fork point is an ancestor");
    if let Some(next) = walk(tree, idx, tree.entry(fork).height + 1) {
        assert!(!tree.is_on_active(next), "a higher common block exists");
    }
    let loc = tree.locator(tree.best());
    assert_eq!(loc.first(), Some(&tree.best_entry().hash));
    assert_eq!(loc.last(), Some(&tree.entry(0).hash));
    let heights: Vec<u32> = loc.iter().map(|h| tree.entry(tree.get(h).expect("locator hash known")).height).collect();
    assert!(heights.windows(2).all(|w| w[0] > w[1]), "locator heights fall: {heights:?}");
    assert!(loc.iter().all(|h| tree.is_on_active(tree.get(h).unwrap_or(NO_PARENT - 1))), "locator off the best chain");
}

fuzz_target!(|ops: Vec<Op>| {
    let params = ChainParams::for_network(Network::Regtest);
    let mut tree = HeaderTree::new(&params);
    let archive = Arc::new(Archive::default());
    tree.attach_archive(archive.clone());
    let now_s = params.genesis.time as i64 + 24 * 60 * 60;
    for op in ops.into_iter().take(MAX_OPS) {
        let mut touched = 0;
        match op {
            Op::Extend { parent, n, minutes, fields, salt } => {
                let mut parent = pick(&tree, parent);
                for k in 0..1 + n as usize % MAX_PER_EXTEND {
                    let (phash, ptime) = (tree.entry(parent).hash, tree.entry(parent).time);
                    let time = (ptime as i64 + minutes as i64 * 60).clamp(0, u32::MAX as i64) as u32;
                    let bits = if fields % 8 == 6 { 0x203f_ffff } else { params.pow_limit_bits };
                    let version = if fields % 16 == 7 { 1 } else { 0x2000_0000 };
                    let mut s = [0u8; 8];
                    s[..2].copy_from_slice(&salt.to_le_bytes());
                    s[2..6].copy_from_slice(&(tree.len() as u32).to_le_bytes());
                    s[6] = k as u8;
                    let Some(raw) = grind(&params, &phash, version, time, bits, s) else { break };
                    match accept(&mut tree, &params, &raw, now_s) {
                        Some(idx) => {
                            parent = idx;
                            touched = idx;
                        }
                        None => break,
                    }
                }
            }
            Op::Again { idx } => {
                let idx = pick(&tree, idx);
                if idx != 0 {
                    let raw = tree.raw_header(idx).expect("readable");
                    let got = accept(&mut tree, &params, &raw, now_s);
                    assert!(got == Some(idx) || tree.entry(idx).status & status::FAILED_ANY != 0);
                    touched = idx;
                }
            }
            Op::Raw { parent, fields } => {
                let p = tree.entry(pick(&tree, parent)).hash;
                let mut raw = [0u8; HEADER_BYTES];
                raw[0..4].copy_from_slice(&fields[0..4]);
                raw[4..36].copy_from_slice(p.as_byte_array());
                raw[36..40].copy_from_slice(&fields[4..8]);
                raw[68..80].copy_from_slice(&fields[8..20]);
                if let Some(idx) = accept(&mut tree, &params, &raw, now_s) {
                    touched = idx;
                }
            }
            Op::Invalidate { idx } => {
                // The validator never rejects genesis.
                let idx = pick(&tree, idx);
                if idx != 0 {
                    tree.invalidate(idx);
                    let failed = |i: BlockIdx| tree.entry(i).status & status::FAILED_ANY != 0;
                    assert!(failed(idx));
                    for j in 0..tree.len() as BlockIdx {
                        if walk(&tree, j, tree.entry(idx).height) == Some(idx) {
                            assert!(failed(j), "descendant {j} of invalid {idx} is not marked");
                        }
                    }
                    touched = idx;
                }
            }
            Op::Validated { idx } => {
                let idx = pick(&tree, idx);
                let hash = tree.entry(idx).hash;
                assert_eq!(tree.mark_validated(&hash), Some(idx));
                assert_eq!(tree.validated_tip(), idx);
                touched = idx;
            }
            Op::Disconnected { idx } => {
                let idx = pick(&tree, idx);
                let hash = tree.entry(idx).hash;
                let parent = tree.entry(idx).parent;
                let before = tree.validated_tip();
                assert_eq!(tree.mark_disconnected(&hash), Some(parent));
                assert_eq!(tree.validated_tip(), if parent == NO_PARENT { before } else { parent });
                touched = idx;
            }
            Op::HaveData { idx, set } => {
                let idx = pick(&tree, idx);
                if set {
                    tree.set_have_data(idx);
                } else {
                    tree.clear_have_data(idx);
                }
                assert_eq!(tree.entry(idx).status & status::HAVE_DATA != 0, set);
                touched = idx;
            }
            Op::Archive { n } => {
                let before = tree.unarchived_len();
                let rows = tree.unarchived(n as usize);
                assert_eq!(rows.len(), before.min(n as usize));
                let mut m = archive.0.lock().unwrap();
                for (height, hash, raw) in &rows {
                    assert_eq!(block_hash(raw), *hash, "an unarchived header hashes to its entry");
                    m.insert((*height, *hash), *raw);
                }
                drop(m);
                tree.mark_archived(rows.len());
                assert_eq!(tree.unarchived_len(), before - rows.len());
                if let Some((_, hash, _)) = rows.last() {
                    touched = tree.get(hash).expect("archived headers stay in the tree");
                }
            }
        }
        tree.check_invariants();
        check_around(&tree, touched);
        check_around(&tree, tree.best());
    }
});
