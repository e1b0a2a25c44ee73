//! Block announcements as stories: a source peer delivers new blocks, the node connects them, and
//! what each other peer hears depends on what it has told us and on `sendheaders`.

use super::super::sync_test_util::{fixture_node, ChainPeer};
use crate::chain::test_vectors::{chain_blocks, fork_blocks, header_of};
use crate::chain::{HeaderTree, Ibd, PeerChain, SyncConfig, ValidationEvent, ValidationInbox};
use crate::components::ConnId;
use crate::harness::TestNode;
use crate::resources::AnnounceKind;
use crate::wire::headers::{block_hash, HeaderList};
use crate::wire::{InvList, InvType, Locator, Message};
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

/// Hash of fixture block `height`.
fn h(height: usize) -> BlockHash {
    block_hash(&header_of(&chain_blocks()[height - 1]))
}

/// A node out of IBD at once (any tip counts as recent), synced to fixture height `height` from a
/// source peer that holds the whole fixture and announces only up to there.
fn node_at(height: usize) -> (TestNode, ChainPeer) {
    let mut node = fixture_node();
    node.world.resource_mut::<SyncConfig>().max_tip_age_s = i64::MAX / 4;
    let mut source = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    source.headers.truncate(height);
    let loc = Locator { version: 70016, hashes: vec![source.genesis], stop: BlockHash::all_zeros() };
    node.receive(source.conn, &Message::Headers(source.answer(&loc)));
    source.pump(&mut node, 10_000);
    assert_eq!(validated_height(&node), height as u32);
    assert!(!node.world.resource::<Ibd>().active);
    node.sent_to(source.conn);
    (node, source)
}

fn validated_height(node: &TestNode) -> u32 {
    let t = node.world.resource::<HeaderTree>();
    t.entry(t.validated_tip()).height
}

/// A ready inbound peer that announced fixture block `height` to us (so it is known to have it)
/// and, when `sendheaders`, prefers header announcements.
fn peer_at(node: &mut TestNode, addr: &str, height: usize, sendheaders: bool) -> ConnId {
    let conn = node.ready_inbound(addr);
    let mut inv = InvList::default();
    inv.push(InvType::BLOCK, h(height).to_byte_array());
    node.receive(conn, &Message::Inv(inv));
    if sendheaders {
        node.receive(conn, &Message::SendHeaders);
    }
    node.sent_to(conn);
    conn
}

/// The source announces fixture blocks `from..=to` by headers and serves them.
fn source_delivers(node: &mut TestNode, source: &mut ChainPeer, from: usize, to: usize) {
    let mut l = HeaderList::default();
    for height in from..=to {
        let raw = header_of(&chain_blocks()[height - 1]);
        source.headers.push(raw);
        l.push_raw(raw);
    }
    node.receive(source.conn, &Message::Headers(l));
    source.pump(node, 100);
}

/// What announcements `msgs` hold: header hashes and block inv hashes.
fn announcements(msgs: &[Message]) -> (Vec<BlockHash>, Vec<BlockHash>) {
    let mut headers = Vec::new();
    let mut invs = Vec::new();
    for m in msgs {
        match m {
            Message::Headers(l) => headers.extend((0..l.len()).filter_map(|i| l.block_hash(i))),
            Message::Inv(l) => {
                invs.extend(l.iter().filter(|e| e.kind == InvType::BLOCK).map(|e| BlockHash::from_byte_array(e.hash)))
            }
            _ => {}
        }
    }
    (headers, invs)
}

fn announced(node: &TestNode, kind: AnnounceKind) -> u64 {
    node.metrics().block_announcements[kind as usize]
}

#[test]
fn a_new_block_goes_as_headers_to_sendheaders_peers_as_inv_to_others_and_not_back_to_its_source() {
    let (mut node, mut source) = node_at(2_090);
    let wants_headers = peer_at(&mut node, "10.0.0.2:1", 2_090, true);
    let wants_inv = peer_at(&mut node, "10.0.0.3:1", 2_090, false);
    let also_announced = peer_at(&mut node, "10.0.0.4:1", 2_090, true);
    // The source delivers the block; before it is connected, another peer announces it too.
    node.validator.paused = true;
    source_delivers(&mut node, &mut source, 2_091, 2_091);
    let mut l = HeaderList::default();
    l.push_raw(header_of(&chain_blocks()[2_090]));
    node.receive(also_announced, &Message::Headers(l));
    node.validator.paused = false;
    node.tick();
    node.tick();
    assert_eq!(validated_height(&node), 2_091);

    assert_eq!(announcements(&node.sent_to(wants_headers)), (vec![h(2_091)], vec![]));
    assert_eq!(announcements(&node.sent_to(wants_inv)), (vec![], vec![h(2_091)]));
    assert_eq!(announcements(&node.sent_to(also_announced)), (vec![], vec![]), "it told us of the block");
    assert_eq!(announcements(&source.seen), (vec![], vec![]), "the source has it");
    assert_eq!(announced(&node, AnnounceKind::Headers), 1);
    assert_eq!(announced(&node, AnnounceKind::Inv), 1);
    assert_eq!(node.metrics().block_relay_ms.count, 1, "one latency sample for the one new block");
    // Nothing moves: nothing more is said.
    node.elapse(1_000);
    assert_eq!(announcements(&node.sent_to(wants_headers)), (vec![], vec![]));
    assert_eq!(announcements(&node.sent_to(wants_inv)), (vec![], vec![]));
    // The sendheaders peer was sent 2,091: the next block connects to it and goes as one header.
    source_delivers(&mut node, &mut source, 2_092, 2_092);
    assert_eq!(announcements(&node.sent_to(wants_headers)), (vec![h(2_092)], vec![]));
    // The inv peer never asked for 2,091: we still only know it at 2,090; it gets an inv again.
    assert_eq!(announcements(&node.sent_to(wants_inv)), (vec![], vec![h(2_092)]));
}

#[test]
fn up_to_eight_missing_blocks_go_as_headers_and_nine_as_an_inv_of_the_tip() {
    let (mut node, mut source) = node_at(2_080);
    let eight_behind = peer_at(&mut node, "10.0.0.2:1", 2_080, true);
    let nine_behind = peer_at(&mut node, "10.0.0.3:1", 2_079, true);
    // The validator holds the blocks back, then connects all eight in one go: one tip move.
    node.validator.paused = true;
    source_delivers(&mut node, &mut source, 2_081, 2_088);
    assert_eq!(validated_height(&node), 2_080);
    node.validator.paused = false;
    node.tick();
    node.tick();
    assert_eq!(validated_height(&node), 2_088);
    let (headers, invs) = announcements(&node.sent_to(eight_behind));
    assert_eq!(headers, (2_081..=2_088).map(h).collect::<Vec<_>>(), "eight headers, oldest first");
    assert!(invs.is_empty());
    assert_eq!(announcements(&node.sent_to(nine_behind)), (vec![], vec![h(2_088)]), "nine missing: inv of the tip");
    assert_eq!(node.metrics().block_relay_ms.count, 8);
}

#[test]
fn a_peer_whose_headers_do_not_connect_gets_an_inv_and_one_at_the_tip_gets_nothing() {
    let (mut node, mut source) = node_at(2_090);
    // It told us only of a header we never heard of: nothing connects to what it has.
    let unknown = node.ready_inbound("10.0.0.2:1");
    node.receive(unknown, &Message::SendHeaders);
    node.sent_to(unknown);
    let at_tip = peer_at(&mut node, "10.0.0.3:1", 2_090, true);
    source_delivers(&mut node, &mut source, 2_091, 2_091);
    assert_eq!(announcements(&node.sent_to(unknown)), (vec![], vec![h(2_091)]));
    assert_eq!(announcements(&node.sent_to(at_tip)), (vec![h(2_091)], vec![]));
    // at_tip then announces 2,092 to us itself before we have it: it is not told of it back.
    let mut l = HeaderList::default();
    l.push_raw(header_of(&chain_blocks()[2_091]));
    node.receive(at_tip, &Message::Headers(l));
    node.sent_to(at_tip);
    source_delivers(&mut node, &mut source, 2_092, 2_092);
    assert_eq!(announcements(&node.sent_to(at_tip)), (vec![], vec![]));
}

#[test]
fn a_reorg_announces_the_new_branch_from_the_fork_point() {
    let (mut node, mut source) = node_at(2_100);
    let peer = peer_at(&mut node, "10.0.0.2:1", 2_100, true);
    let old = peer_at(&mut node, "10.0.0.3:1", 2_100, false);
    // The heavier fork (2,095..=2,101) replaces 2,095..=2,100.
    let mut l = HeaderList::default();
    for b in fork_blocks() {
        source.headers.push(header_of(b));
        source.blocks.insert(block_hash(&header_of(b)), b.clone());
        l.push_raw(header_of(b));
    }
    node.validator.paused = true;
    node.receive(source.conn, &Message::Headers(l));
    source.pump(&mut node, 100);
    node.validator.paused = false;
    node.tick();
    node.tick();
    let fork: Vec<BlockHash> = fork_blocks().iter().map(|b| block_hash(&header_of(b))).collect();
    let t = node.world.resource::<HeaderTree>();
    assert_eq!(t.entry(t.validated_tip()).hash, fork[6]);
    // The peer has 2,094 (an ancestor of its 2,100): the seven fork headers connect to it.
    assert_eq!(announcements(&node.sent_to(peer)), (fork.clone(), vec![]));
    assert_eq!(announcements(&node.sent_to(old)), (vec![], vec![fork[6]]));
}

#[test]
fn nothing_is_announced_in_ibd_and_peers_behind_hear_of_the_tip_when_it_ends() {
    let mut node = fixture_node();
    let mut source = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    let behind = peer_at(&mut node, "10.0.0.2:1", 765, true);
    let inv_peer = peer_at(&mut node, "10.0.0.3:1", 765, false);
    let loc = Locator { version: 70016, hashes: vec![source.genesis], stop: BlockHash::all_zeros() };
    node.receive(source.conn, &Message::Headers(source.answer(&loc)));
    source.pump(&mut node, 10_000);
    assert_eq!(validated_height(&node), 2_100);
    assert!(node.world.resource::<Ibd>().active, "the fixture is old for this clock");
    let (headers, invs) = announcements(&node.sent_to(behind));
    assert!(headers.is_empty() && invs.is_empty(), "nothing during IBD");
    assert_eq!(announced(&node, AnnounceKind::Headers) + announced(&node, AnnounceKind::Inv), 0);
    // The tip becomes recent enough: IBD ends and both hear of the tip (far behind: an inv).
    node.world.resource_mut::<SyncConfig>().max_tip_age_s = i64::MAX / 4;
    node.tick();
    assert!(!node.world.resource::<Ibd>().active);
    assert_eq!(announcements(&node.sent_to(behind)), (vec![], vec![h(2_100)]));
    assert_eq!(announcements(&node.sent_to(inv_peer)), (vec![], vec![h(2_100)]));
    assert_eq!(announcements(&source.seen), (vec![], vec![]));
    // Asked for headers, it is known to be at the tip and hears nothing more.
    node.receive(
        behind,
        &Message::GetHeaders(Locator { version: 70016, hashes: vec![h(765)], stop: BlockHash::all_zeros() }),
    );
    node.elapse(1_000);
    let after: Vec<Message> = node.sent_to(behind);
    assert!(after.iter().any(|m| matches!(m, Message::Headers(l) if l.len() == 1_335)));
    assert_eq!(node.get::<PeerChain>(behind).unwrap().best_sent, node.world.resource::<HeaderTree>().get(&h(2_100)));
}

#[test]
fn a_block_connected_during_a_peers_handshake_is_announced_once_it_is_ready() {
    let (mut node, mut source) = node_at(2_090);
    let late = node.connect_inbound("10.0.0.5:1");
    node.receive(late, &TestNode::peer_version(0xabc));
    node.elapse(10);
    source_delivers(&mut node, &mut source, 2_091, 2_091);
    node.elapse(10);
    // A peer that connects after the block hears nothing at its handshake (it asks for headers).
    let after = node.connect_inbound("10.0.0.6:1");
    node.receive(after, &TestNode::peer_version(0xabd));
    node.receive(after, &Message::Verack);
    node.receive(late, &Message::Verack);
    node.tick();
    assert_eq!(announcements(&node.sent_to(late)), (vec![], vec![h(2_091)]));
    assert_eq!(announcements(&node.sent_to(after)), (vec![], vec![]));
}

#[test]
fn a_getheaders_locator_marks_its_first_known_block_and_the_answer_what_we_sent() {
    let (mut node, mut source) = node_at(2_090);
    let peer = node.ready_inbound("10.0.0.2:1");
    node.receive(peer, &Message::SendHeaders);
    let unknown = BlockHash::from_byte_array([7; 32]);
    let stop = h(2_085);
    node.receive(peer, &Message::GetHeaders(Locator { version: 70016, hashes: vec![unknown, h(2_080)], stop }));
    let tree = node.world.resource::<HeaderTree>();
    let pc = node.get::<PeerChain>(peer).unwrap();
    assert_eq!(pc.synced_headers(tree), 2_080, "the first locator block we know");
    assert_eq!(pc.best_sent, tree.get(&stop), "the answer stopped at 2,085");
    node.sent_to(peer);
    // It has 2,085 (we sent it): 2,086..=2,091 are six headers that connect.
    source_delivers(&mut node, &mut source, 2_091, 2_091);
    assert_eq!(announcements(&node.sent_to(peer)), ((2_086..=2_091).map(h).collect(), vec![]));
}

/// A node at 2,090 with a sendheaders peer there, whose validator has reported 2,091 as its tip
/// (at once) but holds the connect report until its checkpoint, as the shell's does.
fn tip_reported_before_the_durable_connect() -> (TestNode, ConnId) {
    let (mut node, mut source) = node_at(2_090);
    let peer = peer_at(&mut node, "10.0.0.2:1", 2_090, true);
    node.validator.paused = true;
    source_delivers(&mut node, &mut source, 2_091, 2_091);
    node.world.resource_mut::<ValidationInbox>().0.push(ValidationEvent::Tip { hash: h(2_091), height: 2_091 });
    node.tick();
    assert_eq!(validated_height(&node), 2_090, "not reported connected yet");
    (node, peer)
}

#[test]
fn a_block_is_announced_when_the_validator_reports_its_tip_before_the_durable_connect() {
    let (mut node, peer) = tip_reported_before_the_durable_connect();
    assert_eq!(announcements(&node.sent_to(peer)), (vec![h(2_091)], vec![]));
    // A peer asking for headers now is served up to that tip.
    let asks = node.ready_inbound("10.0.0.3:1");
    node.receive(
        asks,
        &Message::GetHeaders(Locator { version: 70016, hashes: vec![h(2_090)], stop: BlockHash::all_zeros() }),
    );
    let answer = node.sent_to(asks).into_iter().find_map(|m| match m {
        Message::Headers(l) => Some(l.block_hash(0)),
        _ => None,
    });
    assert_eq!(answer, Some(Some(h(2_091))));
    // The durable report comes later: nothing is announced twice.
    node.validator.paused = false;
    node.tick();
    node.tick();
    assert_eq!(validated_height(&node), 2_091);
    assert_eq!(announcements(&node.sent_to(peer)), (vec![], vec![]));
    assert_eq!(announced(&node, AnnounceKind::Headers), 1);
}

#[test]
fn getheaders_from_a_peer_that_does_not_read_wait_until_its_queue_drains() {
    use crate::components::SendQueue;
    let (mut node, source) = node_at(2_100);
    let soft = node.world.resource::<crate::resources::Config>().limits.send_queue_bytes_soft;
    let peer = node.ready_inbound("10.0.0.50:1");
    node.stall_reader(peer);
    // One tick's worth of getheaders from genesis, each worth a 162 KB answer.
    let loc = Locator { version: 70016, hashes: vec![source.genesis], stop: BlockHash::all_zeros() };
    let mut bytes = Vec::new();
    for _ in 0..32 {
        Message::GetHeaders(loc.clone()).encode_frame(crate::wire::Network::Regtest, &mut bytes);
    }
    node.receive_bytes(peer, &bytes);
    let queued = node.get::<SendQueue>(peer).map(SendQueue::bytes).unwrap_or(usize::MAX);
    assert!(queued <= soft + 2_000 * 81 + 64, "queued {queued} past the soft bound {soft}");
    let deferred = node.world.resource::<crate::resources::Metrics>().getheaders_deferred;
    assert!(deferred >= 20, "deferred {deferred}");
    let answered = |msgs: Vec<Message>| msgs.iter().filter(|m| matches!(m, Message::Headers(_))).count();
    let before = answered(node.sent_to(peer));
    // It reads again: what was queued goes out, then the one held getheaders is answered.
    for _ in 0..20 {
        node.resume_reader(peer);
    }
    let after = answered(node.sent_to(peer));
    assert_eq!(before + after, 32 - deferred as usize + 1, "answered {before} then {after}");
    assert!(node.get::<PeerChain>(peer).is_some_and(|c| c.deferred_getheaders.is_none()));
}

/// A block on the tip we announce is served even before the validator's durable report moves the
/// validated tip (Core's BlockRequestAllowed, with our served tip as the active chain): a peer that
/// asks at once is answered, never told `notfound`.
#[test]
fn a_block_announced_before_the_durable_connect_is_served_when_asked() {
    let (mut node, peer) = tip_reported_before_the_durable_connect();
    node.sent_to(peer);
    // Its getdata reaches the world before the validator's report does.
    let mut getdata = InvList::default();
    getdata.push(InvType::WITNESS_BLOCK, h(2_091).to_byte_array());
    let mut bytes = Vec::new();
    Message::GetData(getdata).encode_frame(crate::wire::Network::Regtest, &mut bytes);
    let (_, frame) = crate::wire::FrameSplitter::new(crate::wire::Network::Regtest).push(&bytes);
    let frame = frame.unwrap().unwrap();
    node.world
        .resource_mut::<crate::resources::Inbox>()
        .0
        .push(crate::resources::NetEvent::Frame { conn: peer, frame });
    node.validator.paused = false;
    node.tick();
    node.tick();
    let sent = node.sent_to(peer);
    assert!(!sent.iter().any(|m| matches!(m, Message::NotFound(_))), "{sent:?}");
    assert!(sent.iter().any(|m| matches!(m, Message::Block(b) if b.block_hash() == h(2_091))), "{sent:?}");
}
