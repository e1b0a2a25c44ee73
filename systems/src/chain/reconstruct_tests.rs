//! Rebuilding Core's fixture blocks from their compact form: from held transactions alone, with a
//! round trip, with repeated short ids (where oni asks for two transactions and Core for the
//! whole block), and each way a compact block or an answer is refused.

use super::*;
use crate::wire::compact::SHORT_ID_BYTES;
use crate::wire::reader::write_compact_size;
use crate::wire::BlockTxnRequest;

/// The fixture block with the most transactions.
fn busy_block() -> Block {
    let raw = crate::chain::test_vectors::chain_blocks();
    raw.iter().map(|r| Block::decode(r).unwrap()).max_by_key(Block::tx_count).unwrap()
}

/// The block's transactions (coinbase first) as a pool would hold them, with their wtxids.
fn held(b: &Block) -> Vec<(Wtxid, Arc<Transaction>)> {
    (0..b.tx_count())
        .map(|i| (b.wtxid(i).unwrap(), Arc::new(bitcoin::consensus::deserialize(b.tx_bytes(i).unwrap()).unwrap())))
        .collect()
}

fn refs(v: &[(Wtxid, Arc<Transaction>)]) -> impl Iterator<Item = (Wtxid, &Arc<Transaction>)> {
    v.iter().map(|(w, t)| (*w, t))
}

/// The answer a sender gives to what `p` is missing.
fn answer(b: &Block, p: &PartialBlock) -> BlockTxn {
    BlockTxn::from_txs(b.block_hash(), p.missing().iter().map(|&i| b.tx_bytes(i as usize).unwrap())).unwrap()
}

#[test]
fn a_block_whose_transactions_we_hold_is_rebuilt_without_a_round_trip() {
    let b = busy_block();
    let pool = held(&b);
    let p = PartialBlock::new(CmpctBlock::from_block(&b, 5), refs(&pool[1..])).unwrap();
    assert!(p.missing().is_empty());
    assert_eq!(p.stats, ReconstructStats { prefilled: 1, held: b.tx_count() - 1, collisions: 0 });
    assert_eq!(p.block_hash(), b.block_hash());
    assert_eq!(p.fill(None).unwrap(), b);
    // Unrelated candidates and the same transaction offered twice change nothing.
    let other = held(&Block::decode(&crate::chain::test_vectors::chain_blocks()[1000]).unwrap());
    let doubled = refs(&pool[1..]).chain(refs(&pool[1..])).chain(refs(&other));
    let p = PartialBlock::new(CmpctBlock::from_block(&b, 5), doubled).unwrap();
    assert_eq!(p.stats.held, b.tx_count() - 1);
    assert_eq!(p.fill(None).unwrap(), b);
}

#[test]
fn missing_transactions_are_asked_for_and_filled_in_order() {
    let b = busy_block();
    let pool = held(&b);
    // Every other transaction held.
    let some: Vec<_> = pool.iter().skip(1).step_by(2).cloned().collect();
    let p = PartialBlock::new(CmpctBlock::from_block(&b, 9), refs(&some)).unwrap();
    let expected: Vec<u16> = (2..b.tx_count() as u16).step_by(2).collect();
    assert_eq!(p.missing(), expected.as_slice());
    assert_eq!(p.fill(Some(&answer(&b, &p))).unwrap(), b);
    // An answer short of one, or with one extra, is refused and scored.
    let short = BlockTxn::from_txs(b.block_hash(), p.missing()[1..].iter().map(|&i| b.tx_bytes(i as usize).unwrap()));
    assert!(matches!(p.fill(Some(&short.unwrap())), Err(FillError::Invalid(_))));
    let extra: Vec<&[u8]> = p.missing().iter().chain([&0]).map(|&i| b.tx_bytes(i as usize).unwrap()).collect();
    let extra = extra.into_iter();
    assert!(matches!(p.fill(Some(&BlockTxn::from_txs(b.block_hash(), extra).unwrap())), Err(FillError::Invalid(_))));
    assert!(matches!(p.fill(None), Err(FillError::Invalid(_))));
    // The right number in the wrong order: a block that does not match its header.
    let mut order: Vec<u16> = p.missing().to_vec();
    order.swap(0, 1);
    let swapped = BlockTxn::from_txs(b.block_hash(), order.iter().map(|&i| b.tx_bytes(i as usize).unwrap()));
    assert_eq!(p.fill(Some(&swapped.unwrap())), Err(FillError::Mutated));
}

#[test]
fn a_wrong_transaction_under_a_right_short_id_is_caught_as_a_mismatch() {
    // What an unseen short-id collision looks like: a held transaction claims a position that is
    // another's. The rebuilt block does not match its header; no one is blamed.
    let b = busy_block();
    let mut pool = held(&b);
    let stranger = pool[2].1.clone();
    pool[1].1 = stranger;
    let p = PartialBlock::new(CmpctBlock::from_block(&b, 1), refs(&pool[1..])).unwrap();
    assert!(p.missing().is_empty());
    assert_eq!(p.fill(None), Err(FillError::Mutated));
}

/// `c`'s encoding with short id `to` made equal to short id `from`.
fn with_repeated_id(c: &CmpctBlock, from: usize, to: usize) -> CmpctBlock {
    let mut raw = Vec::new();
    c.encode(&mut raw);
    let ids_at = 80 + 8 + if c.short_ids().len() < 0xfd { 1 } else { 3 };
    let src = raw[ids_at + from * SHORT_ID_BYTES..][..SHORT_ID_BYTES].to_vec();
    raw[ids_at + to * SHORT_ID_BYTES..][..SHORT_ID_BYTES].copy_from_slice(&src);
    CmpctBlock::decode_message(raw).unwrap().0
}

#[test]
fn a_repeated_short_id_costs_two_transactions_not_the_block() {
    // Core gives up on the compact block here and downloads the whole block.
    let b = busy_block();
    let pool = held(&b);
    let c = with_repeated_id(&CmpctBlock::from_block(&b, 3), 0, 2);
    let p = PartialBlock::new(c, refs(&pool[1..])).unwrap();
    // Short ids 0 and 2 are positions 1 and 3: both asked for, nothing else.
    assert_eq!(p.missing(), &[1, 3]);
    assert_eq!(p.stats.collisions, 2);
    assert_eq!(p.stats.held, b.tx_count() - 3);
    assert_eq!(p.fill(Some(&answer(&b, &p))).unwrap(), b);
}

#[test]
fn two_candidates_for_one_position_leave_it_to_be_asked_for() {
    let b = busy_block();
    let pool = held(&b);
    let at: AHashMap<u64, Option<usize>> = [(7u64, Some(4usize)), (8, Some(5)), (9, None)].into_iter().collect();
    // Two different transactions under id 7, one under 8, one under the repeated id 9, and the
    // one under 8 offered again: position 4 is contested, 5 is held, the repeated id is skipped.
    let cands = [
        (7, pool[1].0, &pool[1].1),
        (8, pool[2].0, &pool[2].1),
        (7, pool[3].0, &pool[3].1),
        (9, pool[4].0, &pool[4].1),
        (8, pool[2].0, &pool[2].1),
    ];
    let got = claim(&at, cands.into_iter());
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[0].1.is_none()), (4, true));
    assert_eq!((got[1].0, got[1].1.map(|t| t.compute_wtxid())), (5, Some(pool[2].0)));
    // Whatever the order.
    let mut rev = cands;
    rev.reverse();
    let again = claim(&at, rev.into_iter());
    assert_eq!(again.iter().map(|(p, t)| (*p, t.is_some())).collect::<Vec<_>>(), vec![(4, false), (5, true)]);
}

/// A compact block payload: the block's header, `ids` short ids (distinct), the given prefilled
/// gaps each with the coinbase.
fn crafted(b: &Block, ids: usize, gaps: &[u64]) -> Result<PartialBlock, InitError> {
    let mut raw = b.header_bytes().to_vec();
    raw.extend_from_slice(&0u64.to_le_bytes());
    write_compact_size(&mut raw, ids as u64);
    for i in 0..ids as u64 {
        raw.extend_from_slice(&(i * 0x1_0001).to_le_bytes()[..SHORT_ID_BYTES]);
    }
    write_compact_size(&mut raw, gaps.len() as u64);
    for &g in gaps {
        write_compact_size(&mut raw, g);
        raw.extend_from_slice(b.tx_bytes(0).unwrap());
    }
    let (c, _) = CmpctBlock::decode_message(raw).unwrap();
    PartialBlock::new(c, std::iter::empty())
}

#[test]
fn compact_blocks_that_cannot_describe_a_block_are_invalid() {
    let b = busy_block();
    // The last prefilled index may be the block's last position, not one past it.
    assert!(crafted(&b, 3, &[0, 3]).is_ok());
    assert!(matches!(crafted(&b, 3, &[0, 4]), Err(InitError::Invalid(_))));
    assert!(matches!(crafted(&b, 0, &[1]), Err(InitError::Invalid(_))));
    // Indexes past 16 bits, even if each gap fits.
    assert!(matches!(crafted(&b, 0, &[65_535, 65_535]), Err(InitError::Invalid(_))));
    // Nothing at all.
    assert_eq!(crafted(&b, 0, &[]).err(), Some(InitError::Invalid("no transactions")));
    // A null header (bits zero).
    let mut raw = vec![0u8; 80 + 8];
    raw.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    raw.push(0);
    let (c, _) = CmpctBlock::decode_message(raw).unwrap();
    assert_eq!(PartialBlock::new(c, std::iter::empty()).err(), Some(InitError::Invalid("null header")));
    // An empty prefilled transaction.
    let mut raw = b.header_bytes().to_vec();
    raw.extend_from_slice(&[0; 8]);
    raw.extend_from_slice(&[0, 1, 0]);
    raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (c, _) = CmpctBlock::decode_message(raw).unwrap();
    assert_eq!(PartialBlock::new(c, std::iter::empty()).err(), Some(InitError::Invalid("empty prefilled transaction")));
}

#[test]
fn short_ids_crowded_into_one_bucket_fall_back_to_the_whole_block() {
    let b = busy_block();
    let bucketed = |k: u64| {
        // 100 ids, `k` of them ≡ 0 modulo 100, the others spread.
        let mut raw = b.header_bytes().to_vec();
        raw.extend_from_slice(&[0; 8]);
        write_compact_size(&mut raw, 100);
        for i in 0..100u64 {
            let id = if i < k { i * 100 } else { i * 100 + 1 + i % 99 };
            raw.extend_from_slice(&id.to_le_bytes()[..SHORT_ID_BYTES]);
        }
        raw.push(0);
        PartialBlock::new(CmpctBlock::decode_message(raw).unwrap().0, std::iter::empty())
    };
    assert_eq!(bucketed(12).unwrap().missing().len(), 100);
    assert!(matches!(bucketed(13), Err(InitError::Failed(_))));
}

#[test]
fn the_request_for_what_is_missing_round_trips() {
    let b = busy_block();
    let pool = held(&b);
    let p = PartialBlock::new(CmpctBlock::from_block(&b, 11), refs(&pool[3..])).unwrap();
    assert_eq!(p.missing(), &[1, 2]);
    let req = BlockTxnRequest { block_hash: p.block_hash(), indexes: p.missing().to_vec() };
    let mut bytes = Vec::new();
    req.encode(&mut bytes);
    assert_eq!(BlockTxnRequest::decode(&mut crate::wire::reader::Reader::new(&bytes)), Ok(req));
}
