use super::*;
use crate::chain::test_vectors::{chain_blocks, fork_blocks, header_of, mine, mine_chain, MemArchive, AFTER_FIXTURE_S};
use crate::wire::headers::block_hash;
use crate::wire::Network;

fn regtest() -> (ChainParams, HeaderTree) {
    let p = ChainParams::for_network(Network::Regtest);
    let t = HeaderTree::new(&p);
    (p, t)
}

fn load_chain(t: &mut HeaderTree, p: &ChainParams) {
    for b in chain_blocks() {
        let raw = header_of(b);
        let (_, new) = t.accept(&raw, block_hash(&raw), p, AFTER_FIXTURE_S).unwrap();
        assert!(new);
    }
}

const FIXTURE_TIP: &str = "5d8759cf46db97492cebf87e4781e966727464e4f8ccd20156aabd163f1a80df";
const FORK_TIP: &str = "1675d12b01e010bfdac19bd7307c58464e7d72e6e969d838985943b2c7ecd270";

#[test]
fn the_fixture_chain_is_accepted_in_full_with_cores_tip_and_chainwork() {
    let (p, mut t) = regtest();
    load_chain(&mut t, &p);
    assert_eq!(t.len(), 2101);
    let best = t.best_entry();
    assert_eq!(best.height, 2100);
    assert_eq!(best.hash.to_string(), FIXTURE_TIP);
    assert_eq!(best.chainwork(), Work::from_be_bytes(U256([0x106a, 0, 0, 0]).to_be_bytes()));
    // every header costs a bounded amount of memory: an 84-byte entry (128 with the version,
    // merkle root and nonce and a 16-byte aligned chainwork), a 40-byte tail until it is
    // archived, a 5-byte index slot (the hash is not stored twice) and a 4-byte best-chain slot,
    // up to twice that while a vector or the index has just doubled (2,101 headers sit in room
    // for 4,096: a hash-keyed index made this 332 bytes)
    assert_eq!(std::mem::size_of::<Entry>(), 84);
    assert_eq!(std::mem::size_of::<HeaderTail>(), 40);
    assert!(t.heap_bytes() / t.len() <= 280, "{} bytes per header", t.heap_bytes() / t.len());
    // a header seen again is not new
    let raw = header_of(&chain_blocks()[5]);
    assert_eq!(t.accept(&raw, block_hash(&raw), &p, AFTER_FIXTURE_S), Ok((6, false)));
    t.check_invariants();
}

#[test]
fn the_heavier_fork_becomes_best_and_invalidating_it_switches_back() {
    let (p, mut t) = regtest();
    load_chain(&mut t, &p);
    let old_2095 = t.active_at(2095).unwrap();
    for b in fork_blocks() {
        let raw = header_of(b);
        t.accept(&raw, block_hash(&raw), &p, AFTER_FIXTURE_S).unwrap();
    }
    assert_eq!(t.best_entry().hash.to_string(), FORK_TIP);
    assert_eq!(t.best_entry().height, 2101);
    assert_eq!(t.best_entry().chainwork(), Work::from_be_bytes(U256([0x106c, 0, 0, 0]).to_be_bytes()));
    assert_ne!(t.active_at(2095), Some(old_2095), "the best chain now runs through the fork");
    t.check_invariants();
    assert_eq!(t.ancestor(t.best(), 2094), t.active_at(2094));
    assert_eq!(t.fork_point_with_active(old_2095), t.active_at(2094).unwrap());
    // the fork's first block is invalid: its descendants go with it, the old chain is best again
    let fork_first = t.get(&block_hash(&header_of(&fork_blocks()[0]))).unwrap();
    t.invalidate(fork_first);
    assert_eq!(t.best_entry().hash.to_string(), FIXTURE_TIP);
    assert_eq!(t.active_at(2095), Some(old_2095));
    t.check_invariants();
    let fork_tip = t.get(&block_hash(&header_of(&fork_blocks()[6]))).unwrap();
    assert_eq!(t.entry(fork_tip).status & status::FAILED_PARENT, status::FAILED_PARENT);
    // a header on an invalid parent is refused
    let child = mine(&t.entry(fork_tip).hash, t.entry(fork_tip).time + 1, 0x2000_0000, 9);
    assert_eq!(t.accept(&child, block_hash(&child), &p, AFTER_FIXTURE_S), Err(HeaderInvalid::InvalidParent));
}

#[test]
fn the_locator_is_ten_single_steps_then_doubling_to_genesis() {
    let (p, mut t) = regtest();
    load_chain(&mut t, &p);
    let loc = t.locator(t.best());
    let heights: Vec<u32> = loc.iter().map(|h| t.entry(t.get(h).unwrap()).height).collect();
    let mut expected = vec![];
    let (mut h, mut step) = (2100i64, 1i64);
    loop {
        expected.push(h as u32);
        if h == 0 {
            break;
        }
        h = (h - step).max(0);
        if expected.len() > 10 {
            step *= 2;
        }
    }
    assert_eq!(heights, expected);
    assert_eq!(&heights[..11], &(2090..=2100).rev().collect::<Vec<_>>()[..]);
    assert_eq!(*heights.last().unwrap(), 0);
    assert!(loc.len() <= crate::wire::MAX_LOCATOR_HASHES);
    assert_eq!(t.locator(0), vec![p.genesis.block_hash()]);
}

#[test]
fn unconnecting_and_future_headers_are_refused_without_being_stored() {
    let (p, mut t) = regtest();
    let orphan = mine(&bitcoin::BlockHash::from_byte_array([7; 32]), 1_700_000_000, 0x2000_0000, 1);
    assert_eq!(t.accept(&orphan, block_hash(&orphan), &p, AFTER_FIXTURE_S), Err(HeaderInvalid::Unconnecting));
    let g = p.genesis.block_hash();
    let future = mine(&g, (AFTER_FIXTURE_S + 7201) as u32, 0x2000_0000, 1);
    assert_eq!(t.accept(&future, block_hash(&future), &p, AFTER_FIXTURE_S), Err(HeaderInvalid::TimeTooNew));
    let old = mine(&g, p.genesis.time, 0x2000_0000, 1);
    assert_eq!(t.accept(&old, block_hash(&old), &p, AFTER_FIXTURE_S), Err(HeaderInvalid::TimeTooOld));
    let v1 = mine(&g, p.genesis.time + 1, 1, 1);
    assert_eq!(t.accept(&v1, block_hash(&v1), &p, AFTER_FIXTURE_S), Err(HeaderInvalid::ObsoleteVersion));
    let wrong_bits = {
        let mut r = mine_chain(g, p.genesis.time, 1, 3)[0];
        r[72..76].copy_from_slice(&0x1d00ffffu32.to_le_bytes());
        r
    };
    assert!(matches!(
        t.accept(&wrong_bits, block_hash(&wrong_bits), &p, AFTER_FIXTURE_S),
        Err(HeaderInvalid::Pow(_)) | Err(HeaderInvalid::BadDifficulty)
    ));
    assert_eq!(t.len(), 1);
    t.check_invariants();
}

#[test]
fn equal_work_keeps_the_first_seen_and_more_work_reorgs() {
    let (p, mut t) = regtest();
    let g = p.genesis.block_hash();
    let a = mine_chain(g, p.genesis.time, 3, 1);
    let b = mine_chain(g, p.genesis.time, 4, 2);
    for r in &a {
        t.accept(r, block_hash(r), &p, AFTER_FIXTURE_S).unwrap();
    }
    for r in &b[..3] {
        t.accept(r, block_hash(r), &p, AFTER_FIXTURE_S).unwrap();
    }
    assert_eq!(t.best_entry().hash, block_hash(&a[2]), "a tie keeps the first seen");
    t.check_invariants();
    t.accept(&b[3], block_hash(&b[3]), &p, AFTER_FIXTURE_S).unwrap();
    assert_eq!(t.best_entry().hash, block_hash(&b[3]));
    assert_eq!(t.active_at(1), t.get(&block_hash(&b[0])));
    t.check_invariants();
}

#[test]
fn the_validator_is_sent_only_the_headers_a_block_needs_once_parents_first() {
    let (p, mut t) = regtest();
    load_chain(&mut t, &p);
    let raw = |h: usize| header_of(&chain_blocks()[h - 1]);
    // Blocks in order: block 1's parent is genesis (the validator has it), then each block's
    // parent went before it: nothing ahead.
    for h in 1..=3u32 {
        let idx = t.active_at(h).unwrap();
        assert!(t.headers_ahead_of(idx).is_empty(), "block {h}");
        t.set_have_data(idx);
    }
    // Block 8 arrives before 4..=7: their headers go first, parents first, then never again.
    let eight = t.active_at(8).unwrap();
    assert_eq!(t.headers_ahead_of(eight), [raw(4), raw(5), raw(6), raw(7)]);
    t.set_have_data(eight);
    assert!(t.headers_ahead_of(t.active_at(9).unwrap()).is_empty(), "8's block went");
    assert!(t.headers_ahead_of(t.active_at(6).unwrap()).is_empty(), "5 was sent");
    // A block given back (the validator refused it out of order) has its header sent again for
    // a later block that needs it.
    let ten = t.active_at(10).unwrap();
    t.clear_have_data(eight);
    assert_eq!(t.headers_ahead_of(ten), [raw(8), raw(9)]);
    assert_eq!(t.len(), 2101, "nothing added");
}

fn all_raw(t: &HeaderTree) -> Vec<[u8; 80]> {
    let idxs: Vec<BlockIdx> = (0..t.len() as BlockIdx).collect();
    let mut out = Vec::new();
    t.raw_headers(&idxs, &mut out);
    out
}

#[test]
fn archived_headers_keep_only_their_entry_in_memory_and_are_served_whole_from_the_archive() {
    let (p, mut t) = regtest();
    load_chain(&mut t, &p);
    let before = all_raw(&t);
    assert_eq!(before.len(), 2101);
    assert_eq!(before[1], header_of(&chain_blocks()[0]));
    assert_eq!(before[0], crate::wire::headers::header_to_bytes(&p.genesis));
    // Without an archive, headers marked saved are not listed again but keep their tails.
    assert_eq!(t.unarchived_len(), 2100);
    let rows = t.unarchived(1000);
    assert_eq!((rows.len(), rows[0].0, rows[0].1), (1000, 1, block_hash(&before[1])));
    assert_eq!(rows[999].2, before[1000]);
    let archive = std::sync::Arc::new(MemArchive::default());
    archive.save(&rows);
    t.mark_archived(rows.len());
    assert_eq!(t.unarchived_len(), 1100);
    assert_eq!(t.unarchived(1)[0].0, 1001, "the next one to save");
    t.check_invariants();
    let held = t.heap_bytes();
    // Attached, the tails of the 1,000 archived go; the rest go as they are saved.
    t.attach_archive(archive.clone());
    t.check_invariants();
    assert_eq!(all_raw(&t), before, "the first 1,000 read back from the archive");
    let rest = t.unarchived(usize::MAX);
    archive.save(&rest);
    t.mark_archived(rest.len());
    t.check_invariants();
    assert_eq!(t.unarchived_len(), 0);
    assert!(t.unarchived(10).is_empty());
    assert!(held - t.heap_bytes() >= 2100 * 40, "{held} → {} bytes", t.heap_bytes());
    assert_eq!(all_raw(&t), before, "all read back");
    assert_eq!(t.header(t.best()).unwrap().block_hash().to_string(), FIXTURE_TIP);
    // New headers hold their tails until saved.
    let g = t.best_entry().hash;
    let next = mine_chain(g, t.best_entry().time, 2, 7);
    for r in &next {
        t.accept(r, block_hash(r), &p, AFTER_FIXTURE_S).unwrap();
    }
    assert_eq!(t.unarchived_len(), 2);
    assert_eq!(t.raw_header(t.best()), Some(next[1]));
    t.check_invariants();
}

#[test]
fn a_header_the_archive_lost_ends_the_answer_there_and_is_not_counted_sent() {
    let (p, mut t) = regtest();
    load_chain(&mut t, &p);
    let before = all_raw(&t);
    let archive = std::sync::Arc::new(MemArchive::default());
    t.attach_archive(archive.clone());
    let rows = t.unarchived(usize::MAX);
    archive.save(&rows);
    t.mark_archived(rows.len());
    archive.lose(6);
    // A run over height 6 stops before it; one header alone is None.
    let idxs: Vec<BlockIdx> = (3..=9).map(|h| t.active_at(h).unwrap()).collect();
    let mut out = Vec::new();
    t.raw_headers(&idxs, &mut out);
    assert_eq!(out, before[3..6]);
    assert_eq!(t.raw_header(t.active_at(6).unwrap()), None);
    assert!(t.header(t.active_at(6).unwrap()).is_none());
    assert_eq!(t.raw_header(t.active_at(7).unwrap()), Some(before[7]));
    // The validator gets 2..=5 for block 8 (4 headers read back), and 6, 7 count as not sent.
    t.set_have_data(t.active_at(1).unwrap());
    assert_eq!(t.headers_ahead_of(t.active_at(8).unwrap()), before[2..6]);
    archive.save(&[(6, t.entry(t.active_at(6).unwrap()).hash, before[6])]);
    assert_eq!(t.headers_ahead_of(t.active_at(8).unwrap()), before[6..8], "asked again once readable");
}

#[test]
fn headers_restored_from_the_archive_hold_no_tail_and_are_not_saved_again() {
    let (p, mut source) = regtest();
    load_chain(&mut source, &p);
    let archive = std::sync::Arc::new(MemArchive::default());
    archive.save(&source.unarchived(usize::MAX));
    let before = all_raw(&source);
    // A fresh tree, as at start-up: the archive attached first, then the stored headers.
    let (_, mut t) = regtest();
    t.attach_archive(archive.clone());
    let empty = t.heap_bytes();
    for raw in &before[1..] {
        t.accept_archived(raw, block_hash(raw), &p, AFTER_FIXTURE_S).unwrap();
    }
    assert_eq!(t.unarchived_len(), 0);
    t.check_invariants();
    assert!(t.heap_bytes() - empty <= 2100 * 84 * 2 + 4096 * 5 * 2 + 4096 * 4, "{} bytes", t.heap_bytes() - empty);
    assert_eq!(all_raw(&t), before);
    // Without one (tests, the simulator) they keep their tails but are not listed to be saved.
    let (_, mut bare) = regtest();
    for raw in &before[1..] {
        bare.accept_archived(raw, block_hash(raw), &p, AFTER_FIXTURE_S).unwrap();
    }
    assert_eq!(bare.unarchived_len(), 0);
    bare.check_invariants();
    assert_eq!(all_raw(&bare), before);
}
