//! Compact blocks as stories, on Core's fixture chain: a node at the tip's parent gets the next
//! block as a `cmpctblock` from a peer, with all, some or none of its transactions in the pool;
//! what it asks, what it connects, whom it scores. Then serving (`getdata` for a compact block,
//! `getblocktxn`) and the high-bandwidth choice.

use super::super::sync_test_util::{fixture_node, ChainPeer};
use crate::chain::compact_relay::CompactRelay;
use crate::chain::test_vectors::{chain_blocks, header_of};
use crate::chain::{HeaderTree, SyncConfig};
use crate::components::{ConnId, Direction, Negotiated};
use crate::harness::TestNode;
use crate::mempool::pool::Mempool;
use crate::resources::reasons::CompactOutcome;
use crate::resources::Misbehavior;
use crate::wire::headers::{block_hash, HeaderList};
use crate::wire::reader::write_compact_size;
use crate::wire::{Block, BlockTxn, BlockTxnRequest, CmpctBlock, InvList, InvType, Locator, Message};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Transaction};
use std::sync::Arc;

/// Height of the fixture block with the most transactions.
fn busy_height() -> usize {
    let counts = chain_blocks().iter().map(|b| Block::decode(b).unwrap().tx_count());
    counts.enumerate().max_by_key(|&(i, n)| (n, std::cmp::Reverse(i))).map(|(i, _)| i + 1).unwrap()
}

fn block_at(height: usize) -> Block {
    Block::decode(&chain_blocks()[height - 1]).unwrap()
}

fn validated_height(node: &TestNode) -> u32 {
    let t = node.world.resource::<HeaderTree>();
    t.entry(t.validated_tip()).height
}

/// A node out of IBD synced to fixture height `height` from a source that has the rest too.
fn node_at(height: usize) -> (TestNode, ChainPeer) {
    let mut node = fixture_node();
    node.world.resource_mut::<SyncConfig>().max_tip_age_s = i64::MAX / 4;
    let mut source = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    source.headers.truncate(height);
    let loc = Locator { version: 70016, hashes: vec![source.genesis], stop: BlockHash::all_zeros() };
    node.receive(source.conn, &Message::Headers(source.answer(&loc)));
    source.pump(&mut node, 10_000);
    assert_eq!(validated_height(&node), height as u32);
    node.sent_to(source.conn);
    // The clock just after the next block: our tip is recent, blocks near it are taken as they come.
    let next = block_at((height + 1).min(chain_blocks().len()));
    node.set_time_s(i64::from(next.header().time) + 60);
    (node, source)
}

/// Puts block `b`'s transactions at `which` positions (never the coinbase) into the pool.
fn pool_holds(node: &mut TestNode, b: &Block, which: impl Iterator<Item = usize>) {
    let mut pool = node.world.resource_mut::<Mempool>();
    for i in which.filter(|&i| i > 0) {
        let tx: Transaction = bitcoin::consensus::deserialize(b.tx_bytes(i).unwrap()).unwrap();
        let vsize = tx.vsize() as u64;
        pool.insert(Arc::new(tx), 1_000, vsize, 0, 0);
    }
}

/// A ready inbound peer that offered compact blocks (`announce` as its flag) and, when `hb`, was
/// put in high-bandwidth mode by us; it has our tip.
fn compact_peer(node: &mut TestNode, addr: &str, announce: u8, hb: bool) -> ConnId {
    let conn = node.ready_inbound(addr);
    node.receive(conn, &Message::SendCmpct { announce, version: 2 });
    if hb {
        let e = node.peer(conn).unwrap();
        node.world.get_mut::<Negotiated>(e).unwrap().cmpct_hb_to = true;
    }
    let tip = node.world.resource::<HeaderTree>().entry(node.world.resource::<HeaderTree>().validated_tip()).hash;
    let mut inv = InvList::default();
    inv.push(InvType::BLOCK, tip.to_byte_array());
    node.receive(conn, &Message::Inv(inv));
    node.sent_to(conn);
    conn
}

fn outcomes(node: &TestNode) -> Vec<u64> {
    node.metrics().compact_outcomes.clone()
}

fn misbehaved(node: &TestNode, m: Misbehavior) -> u64 {
    node.metrics().misbehavior[m as usize]
}

#[test]
fn a_compact_block_whose_transactions_we_hold_connects_without_a_round_trip() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    assert!(b.tx_count() >= 4);
    pool_holds(&mut node, &b, 1..b.tx_count());
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    let arrivals_before = node.metrics().block_arrival_ms.count;
    let cmpct = CmpctBlock::from_block(&b, 77);
    assert!(cmpct.len() < b.raw().len() / 2, "the compact form is small: {} of {}", cmpct.len(), b.raw().len());
    node.receive(peer, &Message::CmpctBlock(cmpct));
    node.tick();
    assert_eq!(validated_height(&node), h as u32, "rebuilt from the pool and connected");
    let asked: Vec<Message> = node.sent_to(peer);
    assert!(!asked.iter().any(|m| matches!(m, Message::GetBlockTxn(_) | Message::GetData(_))), "{asked:?}");
    assert_eq!(outcomes(&node)[CompactOutcome::NoRoundTrip as usize], 1);
    assert_eq!(node.metrics().compact_missing_txs.count, 1);
    assert_eq!(node.metrics().block_arrival_ms.count, arrivals_before + 1, "one sample for the new block");
    assert!(node.closed_reason(peer).is_none());
}

#[test]
fn missing_transactions_are_asked_for_and_the_block_completes() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    // The pool lacks positions 1 and 3.
    pool_holds(&mut node, &b, (1..b.tx_count()).filter(|&i| i != 1 && i != 3));
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    let (count_before, sum_before) = (node.metrics().block_arrival_ms.count, node.metrics().block_arrival_ms.sum);
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 1)));
    let req = node.sent_to(peer).into_iter().find_map(|m| match m {
        Message::GetBlockTxn(r) => Some(r),
        _ => None,
    });
    let req = req.expect("the missing transactions are asked for");
    assert_eq!(req, BlockTxnRequest { block_hash: b.block_hash(), indexes: vec![1, 3] });
    assert_eq!(validated_height(&node), h as u32 - 1);
    // The round trip takes 300 ms.
    node.elapse(300);
    let txn = BlockTxn::from_txs(b.block_hash(), [b.tx_bytes(1).unwrap(), b.tx_bytes(3).unwrap()].into_iter());
    node.receive(peer, &Message::BlockTxn(txn.unwrap()));
    node.tick();
    assert_eq!(validated_height(&node), h as u32);
    assert_eq!(outcomes(&node)[CompactOutcome::RoundTrip as usize], 1);
    let arrival = &node.metrics().block_arrival_ms;
    assert_eq!(arrival.count, count_before + 1, "one sample for the new block, header heard → connected");
    assert!(arrival.sum - sum_before >= 300, "it spans the round trip: {} ms", arrival.sum - sum_before);
    assert!(node.closed_reason(peer).is_none());
}

#[test]
fn a_blocktxn_that_does_not_fill_the_request_is_scored() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    pool_holds(&mut node, &b, 3..b.tx_count());
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 1)));
    assert!(node.sent_to(peer).iter().any(|m| matches!(m, Message::GetBlockTxn(_))));
    // Asked for two, given one.
    let txn = BlockTxn::from_txs(b.block_hash(), [b.tx_bytes(1).unwrap()].into_iter()).unwrap();
    node.receive(peer, &Message::BlockTxn(txn));
    node.tick();
    assert_eq!(misbehaved(&node, Misbehavior::InvalidBlockTxn), 1);
    assert!(node.closed_reason(peer).is_some(), "Core discourages it");
    assert_eq!(validated_height(&node), h as u32 - 1);
}

#[test]
fn transactions_in_the_wrong_order_fetch_the_block_whole_and_blame_no_one() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    pool_holds(&mut node, &b, 3..b.tx_count());
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 1)));
    node.sent_to(peer);
    let txn = BlockTxn::from_txs(b.block_hash(), [b.tx_bytes(2).unwrap(), b.tx_bytes(1).unwrap()].into_iter());
    node.receive(peer, &Message::BlockTxn(txn.unwrap()));
    let sent = node.sent_to(peer);
    let whole = sent.iter().any(|m| match m {
        Message::GetData(l) => {
            l.iter().any(|e| e.kind == InvType::WITNESS_BLOCK && e.hash == b.block_hash().to_byte_array())
        }
        _ => false,
    });
    assert!(whole, "the block is asked for whole: {sent:?}");
    assert_eq!(outcomes(&node)[CompactOutcome::FullFallback as usize], 1);
    assert!(node.closed_reason(peer).is_none());
    // The whole block completes it.
    node.receive(peer, &Message::Block(b.clone()));
    node.tick();
    assert_eq!(validated_height(&node), h as u32);
}

#[test]
fn a_repeated_short_id_costs_two_transactions_where_core_fetches_the_block() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    pool_holds(&mut node, &b, 1..b.tx_count());
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    // Short id 2 made equal to short id 0 (positions 3 and 1).
    let mut raw = Vec::new();
    CmpctBlock::from_block(&b, 4).encode(&mut raw);
    let at = 88 + 1;
    let first = raw[at..at + 6].to_vec();
    raw[at + 12..at + 18].copy_from_slice(&first);
    let (cmpct, _) = CmpctBlock::decode_message(raw).unwrap();
    node.receive(peer, &Message::CmpctBlock(cmpct));
    let req = node.sent_to(peer).into_iter().find_map(|m| match m {
        Message::GetBlockTxn(r) => Some(r),
        _ => None,
    });
    assert_eq!(req.map(|r| r.indexes), Some(vec![1, 3]));
    let txn = BlockTxn::from_txs(b.block_hash(), [b.tx_bytes(1).unwrap(), b.tx_bytes(3).unwrap()].into_iter());
    node.receive(peer, &Message::BlockTxn(txn.unwrap()));
    node.tick();
    assert_eq!(validated_height(&node), h as u32);
    assert_eq!(outcomes(&node)[CompactOutcome::FullFallback as usize], 0);
}

/// `b`'s compact form with its prefilled coinbase's index replaced by `gap`.
fn with_prefilled_gap(b: &Block, gap: u64) -> CmpctBlock {
    let c = CmpctBlock::from_block(b, 0);
    let mut raw = b.header_bytes().to_vec();
    raw.extend_from_slice(&0u64.to_le_bytes());
    write_compact_size(&mut raw, c.short_ids().len() as u64);
    for id in c.short_ids() {
        raw.extend_from_slice(&id.to_le_bytes()[..6]);
    }
    raw.push(1);
    write_compact_size(&mut raw, gap);
    raw.extend_from_slice(b.tx_bytes(0).unwrap());
    CmpctBlock::decode_message(raw).unwrap().0
}

#[test]
fn a_prefilled_index_past_the_block_is_scored() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    node.receive(peer, &Message::CmpctBlock(with_prefilled_gap(&b, b.tx_count() as u64)));
    node.tick();
    assert_eq!(misbehaved(&node, Misbehavior::InvalidCompactBlock), 1);
    assert!(node.closed_reason(peer).is_some());
}

#[test]
fn an_unasked_compact_block_from_a_low_bandwidth_peer_is_only_an_announcement() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    pool_holds(&mut node, &b, 1..b.tx_count());
    let peer = compact_peer(&mut node, "10.0.0.2:1", 0, false);
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 1)));
    // The header is taken (so the block will be fetched the usual way), the block is not rebuilt.
    assert!(node.world.resource::<HeaderTree>().get(&b.block_hash()).is_some());
    assert_eq!(misbehaved(&node, Misbehavior::UnrequestedCompact), 1);
    assert_eq!(outcomes(&node).iter().sum::<u64>(), 0);
    assert!(node.closed_reason(peer).is_none());
}

#[test]
fn a_compact_block_before_sendcmpct_is_ignored_whole() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    let peer = node.ready_inbound("10.0.0.2:1");
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 1)));
    assert!(node.world.resource::<HeaderTree>().get(&b.block_hash()).is_none(), "not even its header");
    assert_eq!(misbehaved(&node, Misbehavior::UnrequestedCompact), 1);
    assert!(node.closed_reason(peer).is_none());
}

#[test]
fn a_blocktxn_we_did_not_ask_for_is_counted_not_scored() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    let txn = BlockTxn::from_txs(b.block_hash(), [b.tx_bytes(1).unwrap()].into_iter()).unwrap();
    node.receive(peer, &Message::BlockTxn(txn));
    assert_eq!(misbehaved(&node, Misbehavior::UnrequestedCompact), 1);
    assert!(node.closed_reason(peer).is_none());
    assert_eq!(validated_height(&node), h as u32 - 1);
}

/// The source announces fixture block `height` by headers and serves it.
fn source_delivers(node: &mut TestNode, source: &mut ChainPeer, height: usize) {
    let raw = header_of(&chain_blocks()[height - 1]);
    source.headers.push(raw);
    let mut l = HeaderList::default();
    l.push_raw(raw);
    node.receive(source.conn, &Message::Headers(l));
    source.pump(node, 100);
}

#[test]
fn a_high_bandwidth_peer_gets_the_next_block_as_a_compact_block_before_it_is_validated() {
    let h = busy_height();
    let (mut node, mut source) = node_at(h - 1);
    let hb = compact_peer(&mut node, "10.0.0.2:1", 1, false);
    let lb = compact_peer(&mut node, "10.0.0.3:1", 0, false);
    node.receive(lb, &Message::SendHeaders);
    node.validator.paused = true;
    source_delivers(&mut node, &mut source, h);
    assert_eq!(validated_height(&node), h as u32 - 1, "not validated yet");
    let to_hb = node.sent_to(hb);
    let cmpct = to_hb.iter().find_map(|m| match m {
        Message::CmpctBlock(c) => Some(c.clone()),
        _ => None,
    });
    let cmpct = cmpct.expect("pushed before validation");
    assert_eq!(cmpct.block_hash(), block_at(h).block_hash());
    assert!(node.sent_to(lb).is_empty(), "a low-bandwidth peer hears once the block connects");
    node.validator.paused = false;
    node.tick();
    node.tick();
    assert_eq!(validated_height(&node), h as u32);
    let to_hb = node.sent_to(hb);
    assert!(!to_hb.iter().any(|m| matches!(m, Message::Headers(_) | Message::CmpctBlock(_) | Message::Inv(_))));
    let to_lb = node.sent_to(lb);
    assert!(to_lb
        .iter()
        .any(|m| matches!(m, Message::Headers(l) if l.block_hash(0) == Some(block_at(h).block_hash()))));
}

#[test]
fn compact_blocks_are_served_for_recent_blocks_and_whole_blocks_for_old_ones() {
    let h = busy_height();
    let (mut node, _source) = node_at(h);
    let peer = compact_peer(&mut node, "10.0.0.2:1", 0, false);
    let mut l = InvList::default();
    l.push(InvType::CMPCT_BLOCK, block_at(h).block_hash().to_byte_array());
    l.push(InvType::CMPCT_BLOCK, block_at(h - 6).block_hash().to_byte_array());
    node.receive(peer, &Message::GetData(l));
    for _ in 0..4 {
        node.tick();
    }
    let sent = node.sent_to(peer);
    let cmpct = sent.iter().find_map(|m| match m {
        Message::CmpctBlock(c) => Some(c.block_hash()),
        _ => None,
    });
    assert_eq!(cmpct, Some(block_at(h).block_hash()));
    let whole = sent.iter().find_map(|m| match m {
        Message::Block(b) => Some(b.clone()),
        _ => None,
    });
    assert_eq!(whole.as_ref(), Some(&block_at(h - 6)), "six deep goes whole, with witness");
}

#[test]
fn getblocktxn_is_answered_for_recent_blocks_and_out_of_range_indexes_are_scored() {
    let h = busy_height();
    let (mut node, _source) = node_at(h);
    let b = block_at(h);
    let peer = compact_peer(&mut node, "10.0.0.2:1", 0, false);
    node.receive(peer, &Message::GetBlockTxn(BlockTxnRequest { block_hash: b.block_hash(), indexes: vec![1, 2] }));
    for _ in 0..3 {
        node.tick();
    }
    let txn = node.sent_to(peer).into_iter().find_map(|m| match m {
        Message::BlockTxn(t) => Some(t),
        _ => None,
    });
    let txn = txn.expect("answered");
    assert_eq!((txn.tx_bytes(0), txn.tx_bytes(1)), (b.tx_bytes(1), b.tx_bytes(2)));
    // Deeper than 10 blocks: the whole block.
    let old = block_at(h - 11);
    node.receive(peer, &Message::GetBlockTxn(BlockTxnRequest { block_hash: old.block_hash(), indexes: vec![0] }));
    for _ in 0..3 {
        node.tick();
    }
    assert!(node.sent_to(peer).iter().any(|m| matches!(m, Message::Block(x) if *x == old)));
    // An index past the block.
    let past = b.tx_count() as u16;
    node.receive(peer, &Message::GetBlockTxn(BlockTxnRequest { block_hash: b.block_hash(), indexes: vec![0, past] }));
    for _ in 0..3 {
        node.tick();
    }
    assert_eq!(misbehaved(&node, Misbehavior::GetBlockTxnOutOfBounds), 1);
    assert!(node.closed_reason(peer).is_some());
}

#[test]
fn peers_that_deliver_new_tips_are_asked_for_high_bandwidth_mode_three_at_most() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 5);
    let peers: Vec<ConnId> = (0..4).map(|i| compact_peer(&mut node, &format!("10.0.1.{i}:1"), 0, false)).collect();
    for (i, &p) in peers.iter().enumerate() {
        let height = h - 4 + i;
        let mut l = HeaderList::default();
        l.push_raw(header_of(&chain_blocks()[height - 1]));
        node.receive(p, &Message::Headers(l));
        node.sent_to(p);
        node.receive(p, &Message::Block(block_at(height)));
        node.tick();
        node.tick();
        assert_eq!(validated_height(&node), height as u32);
    }
    let hb: Vec<ConnId> = node.world.resource::<CompactRelay>().hb_to.iter().copied().collect();
    assert_eq!(hb, peers[1..].to_vec(), "the latest three");
    let first = node.sent_to(peers[0]);
    let flags: Vec<u8> = first
        .iter()
        .filter_map(|m| match m {
            Message::SendCmpct { announce, .. } => Some(*announce),
            _ => None,
        })
        .collect();
    assert_eq!(flags, vec![1, 0], "asked, then let go for the fourth");
    let e = node.peer(peers[3]).unwrap();
    assert!(node.world.get::<Negotiated>(e).unwrap().cmpct_hb_to);
    let e = node.peer(peers[0]).unwrap();
    assert!(!node.world.get::<Negotiated>(e).unwrap().cmpct_hb_to);
}

#[test]
fn an_inbound_peer_never_takes_the_place_of_our_last_outbound_high_bandwidth_peer() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 5);
    let mut peers = Vec::new();
    // One outbound peer first, then three inbound ones deliver tips.
    let out = node.connect_outbound("10.0.2.1:18444", Direction::OutboundFullRelay);
    node.receive(out, &TestNode::peer_version(0xabc));
    node.receive(out, &Message::WtxidRelay);
    node.receive(out, &Message::Verack);
    node.receive(out, &Message::SendCmpct { announce: 0, version: 2 });
    node.sent_to(out);
    peers.push(out);
    for i in 0..3 {
        peers.push(compact_peer(&mut node, &format!("10.0.3.{i}:1"), 0, false));
    }
    for (i, &p) in peers.iter().enumerate() {
        let height = h - 4 + i;
        let mut l = HeaderList::default();
        l.push_raw(header_of(&chain_blocks()[height - 1]));
        node.receive(p, &Message::Headers(l));
        node.sent_to(p);
        node.receive(p, &Message::Block(block_at(height)));
        node.tick();
        node.tick();
        assert_eq!(validated_height(&node), height as u32);
    }
    let hb: Vec<ConnId> = node.world.resource::<CompactRelay>().hb_to.iter().copied().collect();
    assert_eq!(hb.len(), 3);
    assert!(hb.contains(&out), "the outbound peer stays: {hb:?}");
    assert!(!hb.contains(&peers[1]), "the oldest inbound one went instead");
    let _ = block_hash(&header_of(&chain_blocks()[0]));
}

#[test]
fn a_low_bandwidth_peer_announcing_one_new_block_is_asked_for_it_compact() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    pool_holds(&mut node, &b, 1..b.tx_count());
    let peer = compact_peer(&mut node, "10.0.0.2:1", 0, false);
    let mut l = HeaderList::default();
    l.push_raw(*b.header_bytes());
    node.receive(peer, &Message::Headers(l));
    let asked = node.sent_to(peer).into_iter().find_map(|m| match m {
        Message::GetData(l) => l.iter().next(),
        _ => None,
    });
    let asked = asked.expect("the block is asked for");
    assert_eq!((asked.kind, asked.hash), (InvType::CMPCT_BLOCK, b.block_hash().to_byte_array()));
    // A peer that never offered compact blocks is asked for the block whole.
    let (mut node2, _source2) = node_at(h - 1);
    let plain = node2.ready_inbound("10.0.0.3:1");
    let mut l = HeaderList::default();
    l.push_raw(*b.header_bytes());
    node2.receive(plain, &Message::Headers(l));
    let kinds: Vec<InvType> = node2
        .sent_to(plain)
        .into_iter()
        .filter_map(|m| match m {
            Message::GetData(l) => Some(l.iter().map(|e| e.kind).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(kinds, vec![InvType::WITNESS_BLOCK]);
    // The compact answer is taken as asked: no round trip, no high-bandwidth mode needed.
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 3)));
    node.tick();
    assert_eq!(validated_height(&node), h as u32);
    assert_eq!(outcomes(&node)[CompactOutcome::NoRoundTrip as usize], 1);
}

#[test]
fn a_block_pushed_before_validation_is_served_once_validated_not_refused_meanwhile() {
    // A high-bandwidth peer whose own tip is too old to use compact blocks asks for the pushed
    // block whole while our validator still has it: it waits, then gets it (Core validates
    // before anyone can ask; oni's validator runs beside the world).
    let h = busy_height();
    let (mut node, mut source) = node_at(h - 1);
    let hb = compact_peer(&mut node, "10.0.0.2:1", 1, false);
    node.validator.paused = true;
    source_delivers(&mut node, &mut source, h);
    assert!(node.sent_to(hb).iter().any(|m| matches!(m, Message::CmpctBlock(_))));
    let mut l = InvList::default();
    l.push(InvType::WITNESS_BLOCK, block_at(h).block_hash().to_byte_array());
    node.receive(hb, &Message::GetData(l));
    node.tick();
    let meanwhile = node.sent_to(hb);
    assert!(!meanwhile.iter().any(|m| matches!(m, Message::NotFound(_) | Message::Block(_))), "{meanwhile:?}");
    node.validator.paused = false;
    for _ in 0..4 {
        node.tick();
    }
    assert_eq!(validated_height(&node), h as u32);
    let after = node.sent_to(hb);
    assert!(after.iter().any(|m| matches!(m, Message::Block(b) if *b == block_at(h))), "{after:?}");
}

#[test]
fn a_transaction_we_refused_earlier_completes_a_block_without_a_round_trip() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    // All but position 2 in the pool; position 2 among the lately refused.
    pool_holds(&mut node, &b, (1..b.tx_count()).filter(|&i| i != 2));
    let refused: Transaction = bitcoin::consensus::deserialize(b.tx_bytes(2).unwrap()).unwrap();
    node.world.resource_mut::<crate::mempool::extra::ExtraTxns>().add(Arc::new(refused));
    let peer = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 8)));
    node.tick();
    assert!(!node.sent_to(peer).iter().any(|m| matches!(m, Message::GetBlockTxn(_))));
    assert_eq!(validated_height(&node), h as u32);
    assert_eq!(outcomes(&node)[CompactOutcome::NoRoundTrip as usize], 1);
}

#[test]
fn a_new_tip_pushed_whole_without_its_header_is_taken_and_its_sender_may_become_high_bandwidth() {
    // What Core's tests (and old-style miners) do: a block on our tip, no header before it.
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let peer = compact_peer(&mut node, "10.0.0.2:1", 0, false);
    node.receive(peer, &Message::Block(block_at(h)));
    node.tick();
    assert_eq!(validated_height(&node), h as u32);
    assert_eq!(misbehaved(&node, Misbehavior::UnrequestedBlock), 0);
    assert!(node.sent_to(peer).contains(&Message::SendCmpct { announce: 1, version: 2 }));
    // One that does not build on our tip is still dropped unread (counted, not scored).
    node.receive(peer, &Message::Block(block_at(h + 2)));
    node.tick();
    assert_eq!(misbehaved(&node, Misbehavior::UnrequestedBlock), 1);
    assert!(node.world.resource::<HeaderTree>().get(&block_at(h + 2).block_hash()).is_none());
    assert_eq!(validated_height(&node), h as u32);
    assert!(node.closed_reason(peer).is_none());
}

#[test]
fn with_compact_blocks_off_nothing_is_offered_asked_for_or_taken() {
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    node.world.resource_mut::<crate::resources::Config>().compact_blocks = false;
    let b = block_at(h);
    pool_holds(&mut node, &b, 1..b.tx_count());
    let peer = node.connect_inbound("10.0.0.2:1");
    node.receive(peer, &TestNode::peer_version(1));
    node.receive(peer, &Message::WtxidRelay);
    node.receive(peer, &Message::Verack);
    let sent = node.sent_to(peer);
    assert!(sent.iter().any(|m| matches!(m, Message::SendHeaders)), "the handshake ran: {sent:?}");
    assert!(!sent.iter().any(|m| matches!(m, Message::SendCmpct { .. })), "no offer: {sent:?}");
    node.receive(peer, &Message::SendCmpct { announce: 1, version: 2 });
    let mut l = HeaderList::default();
    l.push_raw(*b.header_bytes());
    node.receive(peer, &Message::Headers(l));
    let kinds: Vec<InvType> = node
        .sent_to(peer)
        .into_iter()
        .filter_map(|m| match m {
            Message::GetData(l) => Some(l.iter().map(|e| e.kind).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(kinds, vec![InvType::WITNESS_BLOCK], "asked for whole");
    node.receive(peer, &Message::CmpctBlock(CmpctBlock::from_block(&b, 2)));
    assert_eq!(outcomes(&node).iter().sum::<u64>(), 0, "a compact block is not taken");
    node.receive(peer, &Message::Block(b.clone()));
    node.tick();
    assert_eq!(validated_height(&node), h as u32);
    assert!(node.world.resource::<CompactRelay>().hb_to.is_empty(), "no one asked for high-bandwidth mode");
}

#[test]
fn a_compact_block_repeated_for_a_block_fetched_elsewhere_costs_one_pool_scan() {
    // An attacker in high-bandwidth mode repeats a compact block we cannot finish (a transaction
    // missing) while another peer is fetching the block: each try would scan the whole pool.
    let h = busy_height();
    let (mut node, _source) = node_at(h - 1);
    let b = block_at(h);
    pool_holds(&mut node, &b, 2..b.tx_count());
    let fetcher = compact_peer(&mut node, "10.0.0.3:1", 0, false);
    let mut l = HeaderList::default();
    l.push_raw(*b.header_bytes());
    node.receive(fetcher, &Message::Headers(l));
    assert!(node.sent_to(fetcher).iter().any(|m| matches!(m, Message::GetData(_))), "asked of the fetcher");
    let hb = compact_peer(&mut node, "10.0.0.2:1", 1, true);
    let scans = node.metrics().compact_pool_scans;
    for _ in 0..20 {
        node.receive(hb, &Message::CmpctBlock(CmpctBlock::from_block(&b, 5)));
    }
    assert_eq!(node.metrics().compact_pool_scans, scans + 1);
    assert!(node.closed_reason(hb).is_none());
    assert_eq!(validated_height(&node), h as u32 - 1);
}
