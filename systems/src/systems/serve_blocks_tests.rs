use super::super::sync_test_util::{fixture_node, ChainPeer};
use super::strip_witness;
use crate::chain::test_vectors::{chain_blocks, header_of};
use crate::chain::ServeQueue;
use crate::components::SendQueue;
use crate::harness::TestNode;
use crate::resources::Config;
use crate::wire::headers::block_hash;
use crate::wire::{Block, InvList, InvType, Locator, Message};
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

fn synced() -> TestNode {
    let mut node = fixture_node();
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    let loc = Locator { version: 70016, hashes: vec![peer.genesis], stop: BlockHash::all_zeros() };
    node.receive(peer.conn, &Message::Headers(peer.answer(&loc)));
    peer.pump(&mut node, 10_000);
    assert_eq!(node.validator.tip().1, 2100);
    node
}

fn hash_at(height: usize) -> [u8; 32] {
    block_hash(&header_of(&chain_blocks()[height - 1])).to_byte_array()
}

fn blocks_in(msgs: &[Message]) -> Vec<Block> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Block(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// The first fixture height whose block carries witness data.
fn segwit_height() -> usize {
    chain_blocks().iter().position(|b| Block::decode(b).unwrap().tx_spans().iter().any(|s| s.has_witness())).unwrap()
        + 1
}

#[test]
fn witness_and_legacy_block_requests_get_the_right_serialization_and_unknowns_get_notfound() {
    let mut node = synced();
    let conn = node.ready_inbound("10.0.0.7:18444");
    node.sent_to(conn);
    let sw = segwit_height();
    let mut req = InvList::default();
    req.push(InvType::WITNESS_BLOCK, hash_at(5));
    req.push(InvType::WITNESS_BLOCK, hash_at(sw));
    req.push(InvType::BLOCK, hash_at(sw));
    req.push(InvType::WITNESS_BLOCK, [0x55; 32]);
    node.receive(conn, &Message::GetData(req));
    for _ in 0..4 {
        node.tick();
    }
    let sent = node.sent_to(conn);
    let blocks = blocks_in(&sent);
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0].raw(), &chain_blocks()[4][..]);
    assert_eq!(blocks[1].raw(), &chain_blocks()[sw - 1][..]);
    // the legacy request: rust-bitcoin's serialization of the same block with witnesses cleared
    let mut legacy: bitcoin::Block = bitcoin::consensus::deserialize(&chain_blocks()[sw - 1]).unwrap();
    legacy.txdata.iter_mut().for_each(|tx| tx.input.iter_mut().for_each(|i| i.witness.clear()));
    assert_eq!(blocks[2].raw(), &bitcoin::consensus::serialize(&legacy)[..]);
    assert!(blocks[2].raw().len() < blocks[1].raw().len());
    assert_eq!(blocks[2].compute_merkle_root(), blocks[1].compute_merkle_root());
    let nf: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            Message::NotFound(l) => Some(l.iter().map(|e| e.hash).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(nf, vec![[0x55; 32]]);
}

#[test]
fn stripping_keeps_txids_and_a_stripped_block_is_left_as_is() {
    let raw = &chain_blocks()[0];
    let stripped = strip_witness(raw).unwrap();
    assert!(stripped.len() < raw.len(), "even the coinbase carries a witness on regtest");
    assert_eq!(strip_witness(&stripped).as_deref(), Some(&stripped[..]));
    let (a, b) = (Block::decode(raw).unwrap(), Block::decode(&stripped).unwrap());
    assert_eq!(a.txids().collect::<Vec<_>>(), b.txids().collect::<Vec<_>>());
    assert_eq!(strip_witness(&raw[..50]), None);
}

#[test]
fn a_peer_that_does_not_read_waits_and_our_queue_stays_bounded() {
    let mut node = synced();
    let conn = node.ready_inbound("10.0.0.7:18444");
    node.sent_to(conn);
    node.stall_reader(conn);
    let mut req = InvList::default();
    for h in 1..=2_000 {
        req.push(InvType::WITNESS_BLOCK, hash_at(h));
    }
    node.receive(conn, &Message::GetData(req));
    for _ in 0..200 {
        node.tick();
    }
    let soft = node.world.resource::<Config>().limits.send_queue_bytes_soft;
    let biggest = chain_blocks().iter().map(Vec::len).max().unwrap();
    let queued = node.get::<SendQueue>(conn).unwrap().bytes();
    assert!(queued <= soft + 2 * (biggest + 24), "{queued} bytes queued");
    // 1,000 entries were queued, the other 1,000 dropped and counted; most of the queue waits.
    let serve = node.get::<ServeQueue>(conn).unwrap();
    let max = node.world.resource::<crate::chain::SyncConfig>().serve_queue_max;
    assert_eq!(max, 1_000);
    assert_eq!(serve.dropped, 2_000 - max as u64);
    assert!(serve.pending.len() > max / 2, "most of the request waits: {}", serve.pending.len());
    assert_eq!(node.closed_reason(conn), None);
}

#[test]
fn a_slow_reader_asking_for_two_4_mb_blocks_is_served_one_at_a_time_and_never_overflows() {
    let mut node = synced();
    let conn = node.ready_inbound("10.0.0.8:18444");
    node.sent_to(conn);
    // Two of the blocks we hold are as large as blocks get.
    for h in [5, 6] {
        let hash = BlockHash::from_byte_array(hash_at(h));
        node.validator.store.insert(hash, vec![0xab; 3_999_000]);
    }
    // It stops reading with about the soft bound already queued.
    node.stall_reader(conn);
    let soft = node.world.resource::<Config>().limits.send_queue_bytes_soft;
    let e = node.peer(conn).unwrap();
    let inv_of = |bytes: usize| {
        let mut l = InvList::default();
        for i in 0..bytes / 36 {
            l.push(InvType::TX, [(i % 251) as u8; 32]);
        }
        Message::Inv(l)
    };
    // Its writer's window fills (never reported written)...
    let window = node.world.resource::<Config>().limits.writer_window_bytes;
    node.world.get_mut::<SendQueue>(e).unwrap().push(crate::wire::Network::Regtest, &inv_of(window + 100));
    node.tick();
    assert_eq!(node.get::<SendQueue>(conn).unwrap().bytes(), 0);
    // ...and then its queue, to just under the soft bound.
    node.world.get_mut::<SendQueue>(e).unwrap().push(crate::wire::Network::Regtest, &inv_of(soft - 4_000));
    let mut req = InvList::default();
    req.push(InvType::WITNESS_BLOCK, hash_at(5));
    req.push(InvType::WITNESS_BLOCK, hash_at(6));
    node.receive(conn, &Message::GetData(req));
    for _ in 0..10 {
        node.tick();
    }
    assert_eq!(node.closed_reason(conn), None, "not disconnected for what it was promised");
    let queued = node.get::<SendQueue>(conn).unwrap().bytes();
    let hard = node.world.resource::<Config>().limits.send_queue_bytes_hard;
    assert!(queued <= hard, "{queued} bytes queued");
    let serve = node.get::<ServeQueue>(conn).unwrap();
    assert_eq!(serve.pending.len(), 1, "the second block waits for the queue to drain");
}

#[test]
fn peers_that_ask_for_blocks_and_never_read_share_one_node_wide_budget_and_take_turns() {
    let mut node = synced();
    let frame = crate::wire::MAX_PAYLOAD_BYTES as usize + crate::wire::HEADER_LEN;
    // Room for two blocks of the largest size in all send queues together.
    node.world.resource_mut::<crate::chain::SyncConfig>().serve_bytes_total_max = 2 * frame + frame / 2;
    for h in 5..=8 {
        node.validator.store.insert(BlockHash::from_byte_array(hash_at(h)), vec![0xab; 3_999_000]);
    }
    let peers: Vec<_> = (0..4).map(|i| node.ready_inbound(&format!("10.0.1.{i}:18444"))).collect();
    for (i, &conn) in peers.iter().enumerate() {
        node.sent_to(conn);
        node.stall_reader(conn);
        let mut req = InvList::default();
        req.push(InvType::WITNESS_BLOCK, hash_at(5 + i));
        node.receive(conn, &Message::GetData(req));
    }
    for _ in 0..10 {
        node.tick();
    }
    // (The stand-in blocks do not parse: count what left the serve queue.)
    let blocks = |node: &mut TestNode, conn| {
        let serve = node.get::<ServeQueue>(conn).unwrap();
        usize::from(serve.pending.is_empty() && serve.reads.is_empty())
    };
    let served: Vec<usize> = peers.iter().map(|&c| blocks(&mut node, c)).collect();
    assert_eq!(served.iter().sum::<usize>(), 2, "two blocks fit the budget: {served:?}");
    // The two served read their blocks: the budget frees and the other two get theirs.
    for (i, &conn) in peers.iter().enumerate() {
        if served[i] == 1 {
            node.resume_reader(conn);
        }
    }
    for _ in 0..10 {
        node.tick();
    }
    for (i, &conn) in peers.iter().enumerate() {
        if served[i] == 0 {
            assert_eq!(blocks(&mut node, conn), 1, "peer {i} is served once room frees");
        }
    }
}

#[test]
fn compact_filter_requests_disconnect_as_core_without_node_compact_filters() {
    for msg in [Message::GetCFilters, Message::GetCFHeaders, Message::GetCFCheckpt] {
        let mut node = TestNode::regtest();
        let conn = node.ready_inbound("10.0.0.30:1");
        // Too short to read: Core's read fails and it drops it.
        node.receive_payload(conn, msg.command(), &[0, 1, 2]);
        assert_eq!(node.closed_reason(conn), None, "{msg:?} short");
        node.receive(conn, &msg);
        assert_eq!(node.closed_reason(conn), Some(crate::resources::DisconnectReason::ServiceNotOffered), "{msg:?}");
        assert_eq!(node.metrics().discouraged, 0);
    }
}

/// Core's BlockRequestAllowed: a block off our chain is served while it is within a month of our
/// best header, then withheld (no fingerprinting by the forks we saw).
#[test]
fn a_stale_block_is_served_for_a_month_then_withheld_as_core_does() {
    use crate::chain::test_vectors::{fork_blocks, mine};
    let mut node = fixture_node();
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    let loc = Locator { version: 70016, hashes: vec![peer.genesis], stop: BlockHash::all_zeros() };
    node.receive(peer.conn, &Message::Headers(peer.answer(&loc)));
    peer.pump(&mut node, 10_000);
    // The heavier fork takes over: our old tip (height 2,100) is now a stale, validated block.
    for b in fork_blocks() {
        peer.headers.push(header_of(b));
        peer.blocks.insert(block_hash(&header_of(b)), b.clone());
    }
    let mut l = crate::wire::HeaderList::default();
    fork_blocks().iter().for_each(|b| l.push_raw(header_of(b)));
    node.receive(peer.conn, &Message::Headers(l));
    peer.pump(&mut node, 100);
    let stale = block_hash(&header_of(&chain_blocks()[2099]));
    let asker = node.ready_inbound("10.0.0.8:18444");
    let ask = |node: &mut TestNode| {
        let mut req = InvList::default();
        req.push(InvType::WITNESS_BLOCK, stale.to_byte_array());
        node.receive(asker, &Message::GetData(req));
        for _ in 0..4 {
            node.tick();
        }
        let sent = node.sent_to(asker);
        (blocks_in(&sent).len(), sent.iter().filter(|m| matches!(m, Message::NotFound(_))).count())
    };
    assert_eq!(ask(&mut node), (1, 0), "a recent stale block is served");
    // 31 days later a new best header arrives: the stale block is now too old to serve.
    let fork_tip = *peer.headers.last().unwrap();
    let tip_time = u32::from_le_bytes(fork_tip[68..72].try_into().unwrap());
    let later = tip_time + 31 * 24 * 3600;
    node.set_time_s(later as i64 + 60);
    let next = mine(&block_hash(&fork_tip), later, 0x2000_0000, 9);
    let mut l = crate::wire::HeaderList::default();
    l.push_raw(next);
    node.receive(peer.conn, &Message::Headers(l));
    assert_eq!(node.world.resource::<crate::chain::HeaderTree>().best_entry().hash, block_hash(&next));
    assert_eq!(ask(&mut node), (0, 1), "withheld, answered notfound");
}

/// A peer that asks again while its earlier getdata still waits is not read further (Core handles
/// nothing more from a peer until its getdata is served): thirty getdata of 1,000 blocks in one go
/// leave all but the first in its receive buffer, where the reader's credit bounds them, and none
/// is thrown away. Before, decode took them all while the send queue was under its soft bound and
/// the serve queue dropped what passed 50,000: a never-reading requester had ~1 GB/s of getdata
/// decoded and discarded. Later requests are taken once the earlier ones are served.
#[test]
fn getdata_waits_until_the_earlier_requests_are_served_and_none_is_dropped() {
    use crate::components::RecvBuffer;
    let mut node = synced();
    let conn = node.ready_inbound("10.0.0.9:18444");
    node.sent_to(conn);
    let mut req = InvList::default();
    // As many as a peer's serve queue takes (1,000).
    for h in 1..=1_000 {
        req.push(InvType::WITNESS_BLOCK, hash_at(h));
    }
    let network = node.world.resource::<Config>().network;
    let mut bytes = Vec::new();
    for _ in 0..30 {
        Message::GetData(req.clone()).encode_frame(network, &mut bytes);
    }
    node.receive_bytes(conn, &bytes);
    for _ in 0..5 {
        node.tick();
    }
    let serve = node.get::<ServeQueue>(conn).unwrap();
    assert_eq!(serve.dropped, 0, "nothing asked for is thrown away");
    assert!(serve.pending.len() <= 1_000, "one request queued at a time: {}", serve.pending.len());
    let waiting = node.get::<RecvBuffer>(conn).unwrap().frames.len();
    assert_eq!(waiting, 29, "the later requests wait unread");

    // Small requests: each is taken once the one before it is served, in order.
    let conn = node.ready_inbound("10.0.0.10:18444");
    node.sent_to(conn);
    let mut bytes = Vec::new();
    for k in 0..3 {
        let mut req = InvList::default();
        for h in 1 + 5 * k..=5 + 5 * k {
            req.push(InvType::WITNESS_BLOCK, hash_at(h));
        }
        Message::GetData(req).encode_frame(network, &mut bytes);
    }
    Message::Ping(7).encode_frame(network, &mut bytes);
    node.receive_bytes(conn, &bytes);
    for _ in 0..40 {
        node.tick();
    }
    let sent = node.sent_to(conn);
    let blocks = blocks_in(&sent);
    let got: Vec<&[u8]> = blocks.iter().map(|b| &b.raw()[..80]).collect();
    let want: Vec<&[u8]> = chain_blocks()[..15].iter().map(|b| &b[..80]).collect();
    assert_eq!(got, want, "all fifteen, in request order");
    let pong = sent.iter().position(|m| matches!(m, Message::Pong(7))).expect("the ping is answered");
    let last_block = sent.iter().rposition(|m| matches!(m, Message::Block(_))).unwrap();
    assert!(pong > last_block, "the ping sent after the requests is answered after them");
}
