//! The BIP152 messages against rust-bitcoin's `bip152` (an independent encoder) on Core's fixture
//! blocks, round trips, and every decode bound crossed.

use super::*;
use crate::wire::fixture_tests::chain_raw;
use crate::wire::{Command, Message};
use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};

/// Fixture blocks with the most transactions: the ones worth compacting.
fn busy_blocks() -> Vec<Block> {
    let mut blocks: Vec<Block> = chain_raw().iter().map(|r| Block::decode(r).unwrap()).collect();
    blocks.sort_by_key(|b| std::cmp::Reverse(b.tx_count()));
    blocks.truncate(5);
    assert!(blocks[4].tx_count() > 3, "the fixture has blocks with transactions");
    blocks
}

#[test]
fn compact_block_matches_rust_bitcoin_byte_for_byte() {
    for block in busy_blocks() {
        for nonce in [0u64, 7, u64::MAX] {
            let ours = CmpctBlock::from_block(&block, nonce);
            let theirs = HeaderAndShortIds::from_block(&block.to_bitcoin().unwrap(), nonce, 2, &[]).unwrap();
            let mut bytes = Vec::new();
            ours.encode(&mut bytes);
            assert_eq!(bytes, bitcoin::consensus::serialize(&theirs), "nonce {nonce}");
            assert_eq!(ours.tx_count(), block.tx_count());
            assert_eq!(ours.block_hash(), block.block_hash());
            assert_eq!(ours.nonce(), nonce);
            // Decoding gives back the same message, and each short id is the wtxid's.
            let (back, rest) = CmpctBlock::decode_message(bytes).unwrap();
            assert_eq!((&back, rest), (&ours, 0));
            let keys = back.keys();
            for (i, id) in back.short_ids().iter().enumerate() {
                assert_eq!(*id, keys.short_id(&block.wtxid(i + 1).unwrap().to_byte_array()));
            }
            let pre: Vec<_> = back.prefilled().collect();
            assert_eq!(pre.len(), 1);
            assert_eq!((pre[0].gap, pre[0].bytes, pre[0].null), (0, block.tx_bytes(0).unwrap(), false));
        }
    }
}

#[test]
fn requests_and_answers_match_rust_bitcoin() {
    let block = &busy_blocks()[0];
    let indexes: Vec<u16> = vec![1, 2, 5, (block.tx_count() - 1) as u16];
    let req = BlockTxnRequest { block_hash: block.block_hash(), indexes: indexes.clone() };
    let mut ours = Vec::new();
    req.encode(&mut ours);
    let theirs = BlockTransactionsRequest {
        block_hash: block.block_hash(),
        indexes: indexes.iter().map(|&i| u64::from(i)).collect(),
    };
    assert_eq!(ours, bitcoin::consensus::serialize(&theirs));
    assert_eq!(BlockTxnRequest::decode(&mut Reader::new(&ours)), Ok(req));

    let answer =
        BlockTxn::from_txs(block.block_hash(), indexes.iter().map(|&i| block.tx_bytes(i as usize).unwrap())).unwrap();
    let mut ours = Vec::new();
    answer.encode(&mut ours);
    let full = block.to_bitcoin().unwrap();
    let theirs = BlockTransactions {
        block_hash: block.block_hash(),
        transactions: indexes.iter().map(|&i| full.txdata[i as usize].clone()).collect(),
    };
    assert_eq!(ours, bitcoin::consensus::serialize(&theirs));
    let (back, rest) = BlockTxn::decode_message(ours).unwrap();
    assert_eq!((&back, rest), (&answer, 0));
    assert_eq!(back.block_hash(), block.block_hash());
    assert_eq!(back.tx_count(), indexes.len());
    assert_eq!(back.tx_bytes(3), block.tx_bytes(block.tx_count() - 1));
}

#[test]
fn messages_round_trip_through_frames() {
    let block = &busy_blocks()[0];
    for m in [
        Message::CmpctBlock(CmpctBlock::from_block(block, 42)),
        Message::GetBlockTxn(BlockTxnRequest { block_hash: block.block_hash(), indexes: vec![0, 65_535] }),
        Message::BlockTxn(BlockTxn::from_txs(block.block_hash(), [block.tx_bytes(1).unwrap()].into_iter()).unwrap()),
    ] {
        let mut payload = Vec::new();
        m.encode_payload(&mut payload);
        assert!(payload.len() <= m.command().max_payload() as usize);
        assert_eq!(Message::decode(m.command(), &payload), Ok(Some(m.clone())));
        // Bytes after the message are ignored, as Core ignores them.
        payload.extend_from_slice(b"extra");
        let (back, rest) = Message::decode_owned(m.command(), payload).unwrap();
        assert_eq!((back, rest), (Some(m), 5));
    }
    assert_eq!(Command::from_name_bytes(b"cmpctblock"), Command::CmpctBlock);
    assert_eq!(Command::from_name_bytes(b"getblocktxn"), Command::GetBlockTxn);
    assert_eq!(Command::from_name_bytes(b"blocktxn"), Command::BlockTxn);
}

/// A compact block payload with `n` short ids (all zero) and the given prefilled gaps, each with
/// the smallest transaction.
fn compact_payload(n: u64, gaps: &[u64]) -> Vec<u8> {
    let mut p = vec![0u8; HEADER_BYTES + 8];
    write_compact_size(&mut p, n);
    p.resize(p.len() + n as usize * SHORT_ID_BYTES, 0);
    write_compact_size(&mut p, gaps.len() as u64);
    for &g in gaps {
        write_compact_size(&mut p, g);
        p.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    p
}

#[test]
fn compact_block_bounds() {
    // At the limit: 65,535 transactions in all decode; one more does not (Core: "indexes
    // overflowed 16 bits"), whether the extra is a short id or a prefilled transaction.
    let (b, _) = CmpctBlock::decode_message(compact_payload(65_534, &[0])).unwrap();
    assert_eq!(b.tx_count(), 65_535);
    assert_eq!(CmpctBlock::decode_message(compact_payload(65_535, &[0])), Err(DecodeError::InvalidValue));
    assert_eq!(CmpctBlock::decode_message(compact_payload(65_536, &[])), Err(DecodeError::InvalidValue));
    // A count the bytes cannot hold is refused before anything is sized.
    let mut lying = compact_payload(0, &[]);
    lying.truncate(HEADER_BYTES + 8);
    write_compact_size(&mut lying, 1 << 40);
    assert_eq!(CmpctBlock::decode_message(lying), Err(DecodeError::Truncated));
    let mut lying = compact_payload(2, &[]);
    lying.pop();
    write_compact_size(&mut lying, 1000);
    assert_eq!(CmpctBlock::decode_message(lying), Err(DecodeError::Truncated));
    // A prefilled gap must fit 16 bits on its own (Core's CompactSize range check)...
    assert!(CmpctBlock::decode_message(compact_payload(0, &[65_535])).is_ok());
    assert_eq!(CmpctBlock::decode_message(compact_payload(0, &[65_536])), Err(DecodeError::InvalidValue));
    // ...and the empty transaction decodes, flagged, for reconstruction to refuse.
    let mut p = compact_payload(0, &[]);
    p.truncate(p.len() - 1);
    p.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (b, _) = CmpctBlock::decode_message(p).unwrap();
    assert!(b.prefilled().next().unwrap().null);
    // Truncated anywhere: refused.
    let full = compact_payload(3, &[0, 1]);
    for cut in 0..full.len() {
        assert!(CmpctBlock::decode_message(full[..cut].to_vec()).is_err(), "cut at {cut}");
    }
}

#[test]
fn request_index_bounds() {
    let req = |diffs: &[u64]| {
        let mut p = vec![9u8; 32];
        write_compact_size(&mut p, diffs.len() as u64);
        for &d in diffs {
            write_compact_size(&mut p, d);
        }
        BlockTxnRequest::decode(&mut Reader::new(&p))
    };
    assert_eq!(req(&[0, 0, 3]).unwrap().indexes, vec![0, 1, 5]);
    assert_eq!(req(&[65_535]).unwrap().indexes, vec![65_535]);
    // Past 65,535, alone or accumulated: Core's "differential value overflow".
    assert_eq!(req(&[65_536]), Err(DecodeError::InvalidValue));
    assert_eq!(req(&[65_535, 0]), Err(DecodeError::InvalidValue));
    assert_eq!(req(&[u64::MAX, 1]), Err(DecodeError::InvalidValue));
    // Every index of a block once is the most a request can hold.
    let all = vec![0u64; 65_536];
    assert_eq!(req(&all).unwrap().indexes.len(), 65_536);
    let mut p = vec![9u8; 32];
    write_compact_size(&mut p, 65_537);
    p.resize(p.len() + 65_537, 0);
    assert_eq!(BlockTxnRequest::decode(&mut Reader::new(&p)), Err(DecodeError::InvalidValue));
    // A count the bytes cannot hold.
    let mut p = vec![9u8; 32];
    write_compact_size(&mut p, 1 << 30);
    assert_eq!(BlockTxnRequest::decode(&mut Reader::new(&p)), Err(DecodeError::Truncated));
    // The largest encodable request fits the command's bound.
    let mut out = Vec::new();
    BlockTxnRequest { block_hash: BlockHash::all_zeros(), indexes: (0..=u16::MAX).collect() }.encode(&mut out);
    assert!(out.len() <= Command::GetBlockTxn.max_payload() as usize);
}

#[test]
fn block_txn_bounds() {
    let mut p = vec![3u8; 32];
    write_compact_size(&mut p, 1 << 40);
    assert_eq!(BlockTxn::decode_message(p), Err(DecodeError::Truncated));
    let mut p = vec![3u8; 32];
    write_compact_size(&mut p, 1);
    p.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(BlockTxn::decode_message(p), Err(DecodeError::Truncated));
    assert!(BlockTxn::from_txs(BlockHash::all_zeros(), [&[1u8, 2, 3][..]].into_iter()).is_err());
}
