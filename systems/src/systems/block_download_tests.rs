use super::super::sync_test_util::{fixture_node, ChainPeer};
use crate::chain::test_vectors::{chain_blocks, fork_blocks, header_of};
use crate::chain::tree::status;
use crate::chain::{HeaderTree, PeerBlocks, SyncConfig, SyncState, ValidationEvent, ValidationInbox, ValidationQueue};
use crate::components::{ConnId, Score};
use crate::harness::TestNode;
use crate::resources::{ChainTip, DisconnectReason, Misbehavior};
use crate::wire::headers::{block_hash, HeaderList};
use crate::wire::{Block, InvType, Message};
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

const FIXTURE_TIP: &str = "5d8759cf46db97492cebf87e4781e966727464e4f8ccd20156aabd163f1a80df";
const FORK_TIP: &str = "1675d12b01e010bfdac19bd7307c58464e7d72e6e969d838985943b2c7ecd270";

fn tree(node: &TestNode) -> &HeaderTree {
    node.world.resource::<HeaderTree>()
}

/// Gives the node the fixture's headers through `peer` (as its sync would).
fn headers_from(node: &mut TestNode, peer: &mut ChainPeer) {
    peer.give_headers(node);
}

/// The node's first peer, at `addr`: it sends the fixture's headers, is asked for the first
/// blocks, and holds them (never answers getdata).
fn holding_peer(node: &mut TestNode, addr: &str) -> ChainPeer {
    let mut peer = ChainPeer::fixture(node, addr);
    peer.answer_getdata = false;
    headers_from(node, &mut peer);
    peer.pump(node, 10);
    peer
}

/// A window of `blocks` and 4 requests per peer, so a few peers fill it.
fn small_window(node: &mut TestNode, blocks: u32) {
    let mut c = node.world.resource_mut::<SyncConfig>();
    c.window_blocks = blocks;
    c.max_in_flight_per_peer = 4;
}

/// `conn` tells the node its best header is the fixture tip.
fn announce_tip(node: &mut TestNode, conn: ConnId) {
    let mut l = HeaderList::default();
    l.push_raw(header_of(&chain_blocks()[2099]));
    node.receive(conn, &Message::Headers(l));
}

fn getdata_entries(msgs: &[Message]) -> Vec<BlockHash> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::GetData(l) => Some(l.iter().map(|e| {
                assert_eq!(e.kind, InvType::WITNESS_BLOCK);
                BlockHash::from_byte_array(e.hash)
            })),
            _ => None,
        })
        .flatten()
        .collect()
}

fn height_of(node: &TestNode, h: &BlockHash) -> u32 {
    tree(node).entry(tree(node).get(h).unwrap()).height
}

#[test]
fn the_fixture_chain_downloads_validates_and_reorgs_to_the_heavier_fork() {
    let mut node = fixture_node();
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    headers_from(&mut node, &mut peer);
    peer.pump(&mut node, 10_000);
    assert_eq!(node.world.resource::<ChainTip>().height, 2100);
    assert_eq!(tree(&node).entry(tree(&node).validated_tip()).hash.to_string(), FIXTURE_TIP);
    for m in &peer.seen {
        if let Message::GetData(l) = m {
            assert!(l.len() <= 16, "≤ 16 in flight per peer");
        }
    }
    assert_eq!(node.metrics().block_download_ms.count, 2100);
    let pb = node.get::<PeerBlocks>(peer.conn).unwrap();
    assert_eq!(pb.blocks_received, 2100);
    assert!(pb.avg_latency_ms.is_some() && pb.in_flight.is_empty());
    assert!(node.world.resource::<ValidationQueue>().pending.is_empty());
    // the heavier fork: headers, then its 7 blocks, then the validator reorgs
    for b in fork_blocks() {
        peer.headers.push(header_of(b));
        peer.blocks.insert(block_hash(&header_of(b)), b.clone());
    }
    let mut l = HeaderList::default();
    fork_blocks().iter().for_each(|b| l.push_raw(header_of(b)));
    node.receive(peer.conn, &Message::Headers(l));
    peer.pump(&mut node, 100);
    assert_eq!(tree(&node).entry(tree(&node).validated_tip()).hash.to_string(), FORK_TIP);
    assert_eq!(node.world.resource::<ChainTip>().height, 2101);
}

#[test]
fn requests_stay_inside_the_window_and_the_per_peer_limit() {
    let mut node = fixture_node();
    small_window(&mut node, 20);
    let first = holding_peer(&mut node, "10.0.0.1:18444");
    let mut conns = vec![first.conn];
    for i in 2..=8 {
        let c = node.ready_inbound(&format!("10.0.0.{i}:18444"));
        announce_tip(&mut node, c);
        conns.push(c);
    }
    node.tick();
    let mut all = vec![];
    for &c in &conns {
        let pb = node.get::<PeerBlocks>(c).unwrap();
        assert!(pb.in_flight.len() <= 4);
        all.extend(pb.in_flight.iter().map(|r| r.hash));
    }
    assert_eq!(all.len(), 20, "the whole window and no more");
    let mut heights: Vec<u32> = all.iter().map(|h| height_of(&node, h)).collect();
    heights.sort();
    assert_eq!(heights, (1..=20).collect::<Vec<_>>());
    assert_eq!(node.world.resource::<SyncState>().in_flight.len(), 20);
}

#[test]
fn a_peer_that_never_answers_is_found_stalling_and_replaced() {
    let mut node = fixture_node();
    small_window(&mut node, 8);
    let silent = holding_peer(&mut node, "10.0.0.1:18444");
    let held: Vec<u32> = getdata_entries(&silent.seen).iter().map(|h| height_of(&node, h)).collect();
    assert_eq!(held, vec![1, 2, 3, 4]);
    let mut fast = ChainPeer::fixture(&mut node, "10.0.0.2:18444");
    announce_tip(&mut node, fast.conn);
    fast.pump(&mut node, 50);
    let got: Vec<u32> = getdata_entries(&fast.seen).iter().map(|h| height_of(&node, h)).collect();
    assert_eq!(got, vec![5, 6, 7, 8], "the rest of the window");
    let since = node.get::<PeerBlocks>(silent.conn).unwrap().stalling_since_ms;
    assert!(since.is_some(), "the window is stuck on the silent peer's first block");
    // 2 s is the first timeout: not yet at 2.0 s, gone just after
    node.elapse(2_000);
    assert_eq!(node.closed_reason(silent.conn), None);
    node.elapse(1);
    assert_eq!(node.closed_reason(silent.conn), Some(DisconnectReason::BlockStalling));
    assert_eq!(node.world.resource::<SyncState>().stalling_timeout_ms, 4_000, "doubled for the next staller");
    // its blocks go to the fast peer, and the chain moves on
    fast.pump(&mut node, 20_000);
    let got: Vec<u32> = getdata_entries(&fast.seen).iter().map(|h| height_of(&node, h)).collect();
    assert_eq!(&got[4..8], &[1, 2, 3, 4]);
    assert_eq!(node.world.resource::<ChainTip>().height, 2100);
    assert_eq!(node.world.resource::<SyncState>().stalling_timeout_ms, 2_000, "decayed per connected block");
    assert_eq!(node.metrics().disconnects_for(DisconnectReason::BlockStalling), 1);
}

#[test]
fn a_peer_that_trickles_the_windows_first_block_is_a_staller_though_it_delivers() {
    let mut node = fixture_node();
    small_window(&mut node, 8);
    let slow = holding_peer(&mut node, "10.0.0.1:18444");
    let held: Vec<Block> =
        getdata_entries(&slow.seen).iter().map(|h| Block::decode(&slow.blocks[h]).unwrap()).collect();
    assert_eq!(held.len(), 4);
    let mut fast = ChainPeer::fixture(&mut node, "10.0.0.2:18444");
    announce_tip(&mut node, fast.conn);
    fast.pump(&mut node, 50);
    // One block every 1.5 s, each the window's first: under the 2 s timeout every time (Core
    // clears its mark on each delivery and would wait for it forever), yet the window has waited
    // on it without a break since the first.
    node.elapse(1_500);
    assert_eq!(node.closed_reason(slow.conn), None);
    node.receive(slow.conn, &Message::Block(held[0].clone()));
    fast.pump(&mut node, 50);
    assert_eq!(tree(&node).entry(tree(&node).validated_tip()).height, 1, "what it delivered counted");
    let since = node.get::<PeerBlocks>(slow.conn).unwrap().stalling_since_ms;
    let now = node.world.resource::<crate::resources::Clock>().now_ms;
    assert!(since.is_some_and(|s| now - s >= 1_500), "its mark stayed: {since:?}");
    node.elapse(1_500);
    assert_eq!(node.closed_reason(slow.conn), Some(DisconnectReason::BlockStalling), "3 s on the window");
    // It comes straight back (a manual peer is redialed): no blocks for it while another serves.
    let mut back = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    back.answer_getdata = false;
    announce_tip(&mut node, back.conn);
    fast.pump(&mut node, 20_000);
    back.pump(&mut node, 5);
    assert_eq!(node.world.resource::<ChainTip>().height, 2100);
    assert!(getdata_entries(&back.seen).is_empty(), "the sidelined address was asked for blocks");
}

#[test]
fn stallers_are_remembered_ten_minutes_in_a_bounded_map() {
    use crate::chain::sync::{SIDELINED_MAX, SIDELINE_MS};
    let mut state = SyncState::default();
    let addr = |i: usize| std::net::SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8333));
    state.sideline(addr(0), 0);
    assert!(state.is_sidelined(addr(0), SIDELINE_MS - 1));
    assert!(!state.is_sidelined(addr(0), SIDELINE_MS), "for ten minutes");
    for i in 1..SIDELINED_MAX + 100 {
        state.sideline(addr(i), i as u64);
    }
    assert_eq!(state.sidelined.len(), SIDELINED_MAX);
    assert!(state.is_sidelined(addr(SIDELINED_MAX + 99), SIDELINED_MAX as u64 + 99), "the newest kept");
    assert!(!state.sidelined.contains_key(&addr(0)), "the one ending first goes first");
}

#[test]
fn a_peer_slower_than_the_download_timeout_is_dropped() {
    let mut node = fixture_node();
    let silent = holding_peer(&mut node, "10.0.0.1:18444");
    assert_eq!(node.get::<PeerBlocks>(silent.conn).unwrap().in_flight.len(), 16);
    // keep it alive on pings meanwhile: the timeout is about blocks, not silence
    for _ in 0..10 {
        node.elapse(60_000);
        node.receive(silent.conn, &Message::Ping(1));
    }
    assert_eq!(node.closed_reason(silent.conn), None, "10 min is the limit, not yet crossed");
    node.elapse(1_000);
    assert_eq!(node.closed_reason(silent.conn), Some(DisconnectReason::BlockDownloadTimeout));
}

/// A node whose validator is paused, allowing 5 blocks pending, and a peer that served it the
/// fixture's headers and every block asked for until requests stopped.
fn validator_paused_with_five_pending_allowed() -> (TestNode, ChainPeer) {
    let mut node = fixture_node();
    node.world.resource_mut::<SyncConfig>().validation_pending_blocks_max = 5;
    node.validator.paused = true;
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    headers_from(&mut node, &mut peer);
    peer.pump(&mut node, 100);
    (node, peer)
}

#[test]
fn a_full_validation_queue_stops_requests_until_it_drains() {
    let (mut node, mut peer) = validator_paused_with_five_pending_allowed();
    // 16 at once; each of the first 4 arrivals (queue below 5) frees a slot that is refilled; at 5
    // pending, requests stop
    assert_eq!(getdata_entries(&peer.seen).len(), 16 + 4, "requests stop once the queue is at its bound");
    assert_eq!(node.world.resource::<ValidationQueue>().pending_count(), 20);
    assert!(node.world.resource::<SyncState>().backpressure_ticks > 0);
    node.tick();
    assert!(node.sent_to(peer.conn).iter().all(|m| !matches!(m, Message::GetData(_))));
    node.validator.paused = false;
    node.tick();
    peer.pump(&mut node, 10_000);
    assert_eq!(node.world.resource::<ChainTip>().height, 2100);
}

#[test]
fn a_block_the_validator_took_frees_its_place_before_its_verdict() {
    let (mut node, mut peer) = validator_paused_with_five_pending_allowed();
    let asked = getdata_entries(&peer.seen).len();
    assert_eq!(asked, 20, "requests stopped at the bound");
    // The validator has processed them; their verdicts wait for a checkpoint (held until durable).
    let pending: Vec<BlockHash> = node.world.resource::<ValidationQueue>().pending.keys().copied().collect();
    node.world
        .resource_mut::<ValidationInbox>()
        .0
        .extend(pending.into_iter().map(|hash| ValidationEvent::Taken { hash }));
    node.tick();
    assert_eq!(node.world.resource::<ValidationQueue>().pending_count(), 0, "every place is free");
    assert_eq!(node.world.resource::<ChainTip>().height, 0, "no block is connected for it");
    peer.pump(&mut node, 100);
    assert!(getdata_entries(&peer.seen).len() > asked, "and requests resume");
}

#[test]
fn the_validation_queue_bound_in_bytes_stops_requests_too() {
    let mut node = fixture_node();
    assert_eq!(SyncConfig::default().validation_pending_bytes_max, 128 << 20);
    node.world.resource_mut::<SyncConfig>().validation_pending_bytes_max = 1;
    node.validator.paused = true;
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    headers_from(&mut node, &mut peer);
    peer.pump(&mut node, 100);
    // The first 16 go out at once; once one block waits for the validator, no more.
    assert_eq!(getdata_entries(&peer.seen).len(), 16, "requests stop at the byte bound");
    node.validator.paused = false;
    node.tick();
    peer.pump(&mut node, 10_000);
    assert_eq!(node.world.resource::<ChainTip>().height, 2100);
}

#[test]
fn an_invalid_block_discourages_its_sender_and_invalidates_its_descendants() {
    let mut node = fixture_node();
    let bad = block_hash(&header_of(&chain_blocks()[9]));
    node.validator.reject.insert(bad);
    let mut a = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    headers_from(&mut node, &mut a);
    let b = ChainPeer::fixture(&mut node, "10.0.0.2:18444");
    announce_tip(&mut node, b.conn);
    a.pump(&mut node, 200);
    let sender_a = getdata_entries(&a.seen).contains(&bad);
    let (sender, other) = if sender_a { (a.conn, b.conn) } else { (b.conn, a.conn) };
    if !sender_a {
        // b never answers in this test, so the bad block must have come from a
        panic!("block 10 was asked of the silent peer");
    }
    assert_eq!(node.closed_reason(sender), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().misbehavior[Misbehavior::InvalidBlock as usize], 1);
    assert_eq!(node.metrics().discouraged, 1, "the sender is discouraged");
    assert_eq!(node.closed_reason(other), None);
    let t = tree(&node);
    let idx = t.get(&bad).unwrap();
    assert_eq!(t.entry(idx).status & status::FAILED, status::FAILED);
    let child = t.get(&block_hash(&header_of(&chain_blocks()[10]))).unwrap();
    assert_eq!(t.entry(child).status & status::FAILED_PARENT, status::FAILED_PARENT);
    assert_eq!(t.best_entry().height, 9);
    assert_eq!(node.world.resource::<ChainTip>().height, 9);
}

#[test]
fn an_unrequested_block_in_ibd_is_dropped_and_counted() {
    let mut node = fixture_node();
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    peer.answer_getdata = false;
    headers_from(&mut node, &mut peer);
    let late = Block::decode(&chain_blocks()[2000]).unwrap();
    node.receive(peer.conn, &Message::Block(late));
    let score = node.get::<Score>(peer.conn).unwrap();
    assert_eq!(score.events.as_slice(), &[(Misbehavior::UnrequestedBlock, 1)]);
    assert_eq!(node.world.resource::<SyncState>().unrequested_blocks, 1);
    assert!(node.world.resource::<ValidationQueue>().pending.is_empty());
}

#[test]
fn a_block_handed_back_without_blame_is_fetched_again() {
    let mut node = fixture_node();
    let back = block_hash(&header_of(&chain_blocks()[4]));
    node.validator.missing_prev_once.insert(back);
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    headers_from(&mut node, &mut peer);
    peer.pump(&mut node, 10_000);
    assert_eq!(node.world.resource::<ChainTip>().height, 2100);
    let asked = getdata_entries(&peer.seen).iter().filter(|h| **h == back).count();
    assert_eq!(asked, 2, "requested, handed back, requested again");
    assert_eq!(node.get::<Score>(peer.conn).unwrap().points, 0);
    assert!(node.validator.headers_seen > 2_000, "headers went to the validator before blocks");
}

/// A node holding the fixture chain, validated, with its clock just after the tip (out of IBD),
/// and the peer it synced from.
fn synced_out_of_ibd() -> (TestNode, ChainPeer) {
    let mut node = fixture_node();
    let tip_time = crate::chain::tree::HeaderFields::of(&header_of(&chain_blocks()[2099])).time;
    node.set_time_s(tip_time as i64 + 600);
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    headers_from(&mut node, &mut peer);
    peer.pump(&mut node, 10_000);
    assert_eq!(node.world.resource::<ChainTip>().height, 2100);
    node.tick();
    assert!(!node.world.resource::<crate::chain::Ibd>().active);
    (node, peer)
}

/// A header-only block (no transactions decodes; the instant validator does not look inside).
fn empty_block_on(prev: &BlockHash, time: u32, salt: u32) -> ([u8; 80], Vec<u8>) {
    let raw = crate::chain::test_vectors::mine(prev, time, 0x2000_0000, salt);
    let mut block = raw.to_vec();
    block.push(0);
    (raw, block)
}

#[test]
fn a_headers_announcement_after_ibd_is_fetched_and_connected() {
    let (mut node, mut peer) = synced_out_of_ibd();
    let tip = tree(&node).best_entry().clone();
    let (raw, block) = empty_block_on(&tip.hash, tip.time + 1, 1);
    peer.headers.push(raw);
    peer.blocks.insert(block_hash(&raw), block);
    let mut l = HeaderList::default();
    l.push_raw(raw);
    node.receive(peer.conn, &Message::Headers(l));
    peer.pump(&mut node, 20);
    assert_eq!(node.world.resource::<ChainTip>().height, 2101);
    assert_eq!(tree(&node).entry(tree(&node).validated_tip()).hash, block_hash(&raw));
}

#[test]
fn an_unrequested_new_tip_after_ibd_is_accepted_but_an_old_one_is_not() {
    let (mut node, peer) = synced_out_of_ibd();
    let tip = tree(&node).best_entry().clone();
    let (raw, block) = empty_block_on(&tip.hash, tip.time + 1, 2);
    let mut l = HeaderList::default();
    l.push_raw(raw);
    // the header arrives from one peer (nobody is asked: no request slots), the block unasked
    // from another
    node.world.resource_mut::<SyncConfig>().max_in_flight_per_peer = 0;
    node.receive(peer.conn, &Message::Headers(l));
    assert!(node.world.resource::<SyncState>().in_flight.is_empty());
    let other = node.ready_inbound("10.0.0.2:18444");
    node.receive(other, &Message::Block(Block::decode(&block).unwrap()));
    node.tick();
    assert_eq!(node.world.resource::<ChainTip>().height, 2101);
    assert_eq!(node.get::<Score>(other).unwrap().points, 0);
    // a block we already have, pushed again, is not a new tip: scored
    node.receive(other, &Message::Block(Block::decode(&chain_blocks()[100]).unwrap()));
    assert_eq!(node.get::<Score>(other).unwrap().events.as_slice(), &[(Misbehavior::UnrequestedBlock, 1)]);
}

#[test]
fn a_peer_is_not_scored_when_a_third_party_delivered_its_requested_blocks_first() {
    let mut node = fixture_node();
    let mut asked = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    asked.answer_getdata = false;
    headers_from(&mut node, &mut asked);
    // The sync peer is asked for the first 16 blocks; it is slow to answer.
    let requested = getdata_entries(&node.sent_to(asked.conn));
    assert_eq!(requested.len(), 16);
    // Someone else pushes those very blocks first.
    let third = node.ready_inbound("10.0.0.9:18444");
    for b in &chain_blocks()[..16] {
        node.receive(third, &Message::Block(Block::decode(b).unwrap()));
    }
    // The sync peer's own copies then arrive: late, no longer in flight, and no fault of its own.
    for b in &chain_blocks()[..16] {
        node.receive(asked.conn, &Message::Block(Block::decode(b).unwrap()));
    }
    assert_eq!(node.get::<Score>(asked.conn).unwrap().points, 0);
    assert_eq!(node.closed_reason(asked.conn), None);
    assert_eq!(node.world.resource::<ChainTip>().height, 16);
}

/// The validator's verdicts that blame the sender, as Core's MaybePunishNodeForBlock: a block known
/// to be invalid (BLOCK_CACHED_INVALID) is punished from peers we dialed only; bytes that do not
/// decode are not punished (Core's read fails and it drops them); a consensus failure always is.
#[test]
fn block_verdicts_punish_as_core_does() {
    use crate::chain::validation::RejectReason;
    use crate::chain::{ValidationEvent, ValidationInbox};
    use crate::components::Direction;
    let cases = [
        (RejectReason::CachedInvalid, Direction::Inbound, None, Misbehavior::KnownInvalidInbound),
        (
            RejectReason::CachedInvalid,
            Direction::OutboundFullRelay,
            Some(DisconnectReason::Misbehavior),
            Misbehavior::KnownInvalid,
        ),
        (RejectReason::Consensus, Direction::Inbound, Some(DisconnectReason::Misbehavior), Misbehavior::InvalidBlock),
    ];
    for (reason, direction, closed, counted) in cases {
        let mut node = fixture_node();
        let conn = match direction {
            Direction::Inbound => node.ready_inbound("10.0.0.1:18444"),
            d => {
                let c = node.connect_outbound("20.0.0.1:18444", d);
                node.receive(c, &TestNode::peer_version(3));
                node.receive(c, &Message::Verack);
                c
            }
        };
        let hash = BlockHash::from_byte_array([7; 32]);
        node.world.resource_mut::<SyncState>().block_from.insert(hash, conn);
        node.world.resource_mut::<ValidationInbox>().0.push(ValidationEvent::Rejected { hash, reason });
        node.tick();
        assert_eq!(node.closed_reason(conn), closed, "{reason:?} from {direction:?}");
        assert_eq!(node.metrics().misbehavior[counted as usize], 1, "{reason:?} from {direction:?}");
    }
    let mut node = fixture_node();
    let conn = node.ready_inbound("10.0.0.2:18444");
    let hash = BlockHash::from_byte_array([8; 32]);
    node.world.resource_mut::<SyncState>().block_from.insert(hash, conn);
    node.world
        .resource_mut::<ValidationInbox>()
        .0
        .push(ValidationEvent::Rejected { hash, reason: RejectReason::Undecodable });
    node.tick();
    assert_eq!(node.closed_reason(conn), None);
    assert!(node.get::<Score>(conn).unwrap().events.is_empty());
}
