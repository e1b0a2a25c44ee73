use super::super::sync_test_util::{fixture_node, ChainPeer};
use super::HEADERS_RESPONSE_TIME_MS;
use crate::chain::test_vectors::{chain_blocks, fork_blocks, header_of, mine, mine_chain};
use crate::chain::{ChainParams, HeaderTree, Ibd, PeerChain, SyncConfig};
use crate::components::{Permissions, Score};
use crate::harness::TestNode;
use crate::resources::{Config, DisconnectReason, Misbehavior};
use crate::wire::headers::{block_hash, HeaderList};
use crate::wire::services::{NODE_NETWORK, NODE_P2P_V2, NODE_WITNESS};
use crate::wire::{Locator, Message};
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::BlockHash;

const FIXTURE_TIP: &str = "5d8759cf46db97492cebf87e4781e966727464e4f8ccd20156aabd163f1a80df";

fn tree(node: &TestNode) -> &HeaderTree {
    node.world.resource::<HeaderTree>()
}

fn count(msgs: &[Message], f: impl Fn(&Message) -> bool) -> usize {
    msgs.iter().filter(|m| f(m)).count()
}

#[test]
fn the_fixture_chain_arrives_in_two_batches_from_the_sync_peer() {
    let mut node = fixture_node();
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    peer.answer_getdata = false;
    // ready_inbound cleared the first getheaders: ask again the way the sync would
    let loc = Locator { version: 70016, hashes: vec![peer.genesis], stop: BlockHash::all_zeros() };
    node.receive(peer.conn, &Message::Headers(peer.answer(&loc)));
    peer.pump(&mut node, 20);
    let t = tree(&node);
    assert_eq!(t.len(), 2101);
    assert_eq!(t.best_entry().hash.to_string(), FIXTURE_TIP);
    let gh = count(&peer.seen, |m| matches!(m, Message::GetHeaders(_)));
    assert_eq!(gh, 1, "one continuation after the full batch of 2,000, none after the 100");
    let pc = node.get::<PeerChain>(peer.conn).unwrap();
    assert_eq!(pc.synced_headers(tree(&node)), 2100);
    assert_eq!(pc.synced_blocks(tree(&node)), 2100);
    assert_eq!(pc.presynced_headers(), -1);
}

#[test]
fn the_first_ready_peer_is_asked_for_headers_with_a_genesis_locator() {
    let mut node = fixture_node();
    let conn = node.connect_inbound("10.0.0.1:18444");
    node.receive(conn, &TestNode::peer_version(1));
    node.receive(conn, &Message::Verack);
    let sent = node.sent_to(conn);
    let Some(Message::GetHeaders(loc)) = sent.iter().find(|m| matches!(m, Message::GetHeaders(_))) else {
        panic!("no getheaders in {sent:?}")
    };
    assert_eq!(loc.hashes, vec![node.world.resource::<ChainParams>().genesis.block_hash()]);
    // a second peer is not a sync peer while we are far behind (one sync peer in IBD)
    let other = node.ready_inbound("10.0.0.2:18444");
    node.tick();
    assert!(node.sent_to(other).iter().all(|m| !matches!(m, Message::GetHeaders(_))));
}

#[test]
fn unconnecting_headers_are_counted_never_scored_and_asked_about_once_per_response_time() {
    let mut node = fixture_node();
    let conn = node.ready_inbound("10.0.0.1:18444");
    let orphan = |i: u32| {
        let mut l = HeaderList::default();
        l.push_raw(mine(&BlockHash::from_byte_array([i as u8 + 1; 32]), 1_700_000_000, 0x2000_0000, i));
        Message::Headers(l)
    };
    // The getheaders of its sync start is outstanding: unconnecting headers are no answer to it,
    // so none of them triggers another (Core: MaybeSendGetHeaders), however many come.
    let mut asked = 0;
    for i in 0..200 {
        node.receive(conn, &orphan(i));
        asked += count(&node.sent_to(conn), |m| matches!(m, Message::GetHeaders(_)));
    }
    assert_eq!(asked, 0, "no getheaders per unconnecting message");
    assert_eq!(node.closed_reason(conn), None, "Core punishes none of them");
    let score = node.get::<Score>(conn).unwrap();
    assert_eq!((score.points, score.events.as_slice()), (0, &[(Misbehavior::UnconnectingHeaders, 200)][..]));
    // Once the response time has passed, the next one asks for the gap.
    node.elapse(HEADERS_RESPONSE_TIME_MS + 1);
    node.sent_to(conn);
    node.receive(conn, &orphan(500));
    assert_eq!(count(&node.sent_to(conn), |m| matches!(m, Message::GetHeaders(_))), 1);
    node.receive(conn, &orphan(501));
    assert_eq!(count(&node.sent_to(conn), |m| matches!(m, Message::GetHeaders(_))), 0);
    assert_eq!(tree(&node).len(), 1);
}

fn send_headers(node: &mut TestNode, conn: crate::components::ConnId, raw: &[[u8; 80]]) {
    let mut l = HeaderList::default();
    for r in raw {
        l.push_raw(*r);
    }
    node.receive(conn, &Message::Headers(l));
}

#[test]
fn invalid_headers_disconnect_with_their_own_reason() {
    let cases: Vec<(&str, Misbehavior, Box<dyn Fn(&mut [[u8; 80]])>)> = vec![
        (
            "bad pow",
            Misbehavior::HeaderBadPow,
            Box::new(|c| c[9][72..76].copy_from_slice(&0x1d00ffffu32.to_le_bytes())),
        ),
        ("non-continuous", Misbehavior::NonContinuousHeaders, Box::new(|c| c.swap(2, 3))),
    ];
    for (name, reason, corrupt) in cases {
        let mut node = fixture_node();
        let conn = node.ready_inbound("10.0.0.1:18444");
        let mut raw: Vec<[u8; 80]> = chain_blocks()[..10].iter().map(|b| header_of(b)).collect();
        corrupt(&mut raw);
        send_headers(&mut node, conn, &raw);
        assert_eq!(node.closed_reason(conn), Some(DisconnectReason::Misbehavior), "{name}");
        assert_eq!(node.metrics().misbehavior[reason as usize], 1, "{name}");
        assert_eq!(tree(&node).len(), 1, "{name}: nothing stored");
    }
    // valid PoW, wrong time: the first 4 are stored, the bad one scores and stops the batch
    let mut node = fixture_node();
    let conn = node.ready_inbound("10.0.0.1:18444");
    let g = node.world.resource::<ChainParams>().genesis.block_hash();
    let gt = node.world.resource::<ChainParams>().genesis.time;
    let mut raw = mine_chain(g, gt, 4, 1);
    raw.push(mine(&block_hash(&raw[3]), gt, 0x2000_0000, 1));
    send_headers(&mut node, conn, &raw);
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().misbehavior[Misbehavior::HeaderTimeTooOld as usize], 1);
    assert_eq!(tree(&node).len(), 5);
    // a header from the future is not scored (our clock may be wrong) and not stored
    let mut node = fixture_node();
    let conn = node.ready_inbound("10.0.0.1:18444");
    let far = mine(&g, (crate::chain::test_vectors::AFTER_FIXTURE_S + 3 * 3600) as u32, 0x2000_0000, 1);
    send_headers(&mut node, conn, &[far]);
    assert_eq!(node.closed_reason(conn), None);
    assert_eq!(node.metrics().misbehavior[Misbehavior::HeaderTimeTooNew as usize], 1);
    assert_eq!(node.get::<Score>(conn).unwrap().points, 0);
    assert_eq!(tree(&node).len(), 1);
}

#[test]
fn a_header_we_know_is_invalid_is_punished_from_peers_we_dialed_only_as_core() {
    let mut node = fixture_node();
    let raw: Vec<[u8; 80]> = chain_blocks()[..3].iter().map(|b| header_of(b)).collect();
    let inbound = node.ready_inbound("10.0.0.1:18444");
    send_headers(&mut node, inbound, &raw);
    let idx = tree(&node).get(&block_hash(&raw[2])).unwrap();
    node.world.resource_mut::<HeaderTree>().invalidate(idx);
    // Inbound: Core's BLOCK_CACHED_INVALID punishes no inbound peer (it may be on an old fork).
    send_headers(&mut node, inbound, &raw[2..]);
    assert_eq!(node.closed_reason(inbound), None);
    assert_eq!(node.metrics().misbehavior[Misbehavior::KnownInvalidInbound as usize], 1);
    assert_eq!(node.get::<Score>(inbound).unwrap().points, 0);
    // A peer we dialed is expected to follow the valid chain: discouraged.
    let out = node.connect_outbound("20.0.0.1:18444", crate::components::Direction::OutboundFullRelay);
    node.receive(out, &TestNode::peer_version(5));
    node.receive(out, &Message::Verack);
    send_headers(&mut node, out, &raw[2..]);
    assert_eq!(node.closed_reason(out), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().misbehavior[Misbehavior::KnownInvalid as usize], 1);
    // A header on an invalid parent is punished from anyone (Core's BLOCK_INVALID_PREV).
    let time = u32::from_le_bytes(raw[2][68..72].try_into().unwrap()) + 1;
    let child = mine(&block_hash(&raw[2]), time, 0x2000_0000, 3);
    send_headers(&mut node, inbound, &[child]);
    assert_eq!(node.closed_reason(inbound), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().misbehavior[Misbehavior::HeaderInvalidParent as usize], 1);
}

#[test]
fn a_hundred_thousand_low_work_headers_are_not_stored_and_memory_stays_bounded() {
    let mut node = fixture_node();
    node.world.resource_mut::<ChainParams>().minimum_chain_work = Work::from_be_bytes([0x0f; 32]);
    let conn = node.ready_inbound("10.0.0.1:18444");
    let g = node.world.resource::<ChainParams>().genesis.block_hash();
    let gt = node.world.resource::<ChainParams>().genesis.time;
    let chain = mine_chain(g, gt, 100_000, 7);
    let tree_bytes = tree(&node).heap_bytes();
    for chunk in chain.chunks(2_000) {
        send_headers(&mut node, conn, chunk);
        let asked = node.sent_to(conn);
        assert_eq!(count(&asked, |m| matches!(m, Message::GetHeaders(_))), 1, "asks for the next batch");
        let pc = node.get::<PeerChain>(conn).unwrap();
        let ps = pc.presync.as_ref().expect("presync runs");
        // the stated bound: under 1 KiB of heap for this peer's sync (commitments only)
        assert!(ps.heap_bytes() < 1024, "{} bytes", ps.heap_bytes());
    }
    assert_eq!(node.get::<PeerChain>(conn).unwrap().presync.as_ref().unwrap().presync_height(), 100_000);
    assert_eq!(tree(&node).len(), 1, "nothing stored");
    assert_eq!(tree(&node).heap_bytes(), tree_bytes);
    assert_eq!(node.closed_reason(conn), None, "a low-work chain is not misbehavior by itself");
}

#[test]
fn an_abandoned_low_work_sync_is_counted_never_scored_as_in_core() {
    let mut node = fixture_node();
    node.world.resource_mut::<ChainParams>().minimum_chain_work = Work::from_be_bytes([0x0f; 32]);
    let conn = node.ready_inbound("10.0.0.1:18444");
    let g = node.world.resource::<ChainParams>().genesis.block_hash();
    let gt = node.world.resource::<ChainParams>().genesis.time;
    let a = mine_chain(g, gt, 2_000, 21);
    let b = mine_chain(g, gt, 2_000, 22);
    // Each round starts a low-work sync and then switches chains: Core aborts the sync (it may
    // have reorged) and punishes nothing.
    for _ in 0..12 {
        send_headers(&mut node, conn, &a);
        assert!(node.get::<PeerChain>(conn).unwrap().presync.is_some(), "presync runs");
        send_headers(&mut node, conn, &b);
    }
    assert_eq!(node.metrics().misbehavior[Misbehavior::LowWorkHeaders as usize], 12);
    assert_eq!(node.closed_reason(conn), None);
    assert_eq!(node.get::<Score>(conn).unwrap().points, 0);
    assert_eq!(tree(&node).len(), 1, "nothing stored");
}

#[test]
fn a_chain_that_reaches_the_minimum_work_is_redownloaded_checked_and_stored() {
    let mut node = fixture_node();
    // regtest blocks are worth 2 each: enough work at ~3,000 headers
    let mut min = [0u8; 32];
    min[30..].copy_from_slice(&6_000u16.to_be_bytes());
    node.world.resource_mut::<ChainParams>().minimum_chain_work = Work::from_be_bytes(min);
    let mut peer = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    peer.answer_getdata = false;
    let g = peer.genesis;
    let gt = node.world.resource::<ChainParams>().genesis.time;
    peer.headers = mine_chain(g, gt, 4_100, 3);
    let loc = Locator { version: 70016, hashes: vec![g], stop: BlockHash::all_zeros() };
    node.receive(peer.conn, &Message::Headers(peer.answer(&loc)));
    assert_eq!(tree(&node).len(), 1, "the first 2,000 are below the minimum work");
    peer.pump(&mut node, 40);
    assert_eq!(tree(&node).len(), 4_101);
    assert_eq!(tree(&node).best_entry().hash, block_hash(&peer.headers[4_099]));
    let gh = count(&peer.seen, |m| matches!(m, Message::GetHeaders(_)));
    assert!(gh >= 4, "presync twice, then from the start again: {gh}");
    assert!(node.get::<PeerChain>(peer.conn).unwrap().presync.is_none());
}

fn synced_node() -> (TestNode, u32) {
    let mut node = fixture_node();
    let p = node.world.resource::<ChainParams>().clone();
    let mut t = HeaderTree::new(&p);
    for b in chain_blocks() {
        let raw = header_of(b);
        t.accept(&raw, block_hash(&raw), &p, crate::chain::test_vectors::AFTER_FIXTURE_S).unwrap();
    }
    let tip_hash = t.best_entry().hash;
    let tip_time = t.best_entry().time;
    t.mark_validated(&tip_hash);
    node.world.insert_resource(t);
    node.set_time_s(tip_time as i64 + 600);
    node.tick();
    (node, tip_time)
}

#[test]
fn ibd_ends_when_the_tip_is_recent_and_network_and_witness_are_advertised_throughout() {
    let mut node = fixture_node();
    node.tick();
    assert!(node.world.resource::<Ibd>().active);
    let both = NODE_NETWORK | NODE_WITNESS;
    assert_eq!(node.world.resource::<Config>().services & both, both, "as Core: also while syncing");
    let conn = node.connect_inbound("10.0.0.1:18444");
    node.receive(conn, &TestNode::peer_version(1));
    let ours = node.sent_to(conn).into_iter().find_map(|m| match m {
        Message::Version(v) => Some(v.services & !NODE_P2P_V2),
        _ => None,
    });
    assert_eq!(ours, Some(both), "(NODE_P2P_V2 aside: a transport matter)");
    let (node, _) = synced_node();
    assert!(!node.world.resource::<Ibd>().active);
    assert_eq!(node.world.resource::<Config>().services & both, both);
}

#[test]
fn getheaders_is_answered_after_the_locator_fork_point_and_in_ibd_once_the_minimum_work_is_met() {
    let (mut node, tip_time) = synced_node();
    let conn = node.ready_inbound("10.0.0.9:18444");
    let genesis = node.world.resource::<ChainParams>().genesis.block_hash();
    let h = |i: usize| block_hash(&header_of(&chain_blocks()[i - 1]));
    let ask = |node: &mut TestNode, hashes: Vec<BlockHash>, stop: BlockHash| {
        node.receive(conn, &Message::GetHeaders(Locator { version: 70016, hashes, stop }));
        node.sent_to(conn).into_iter().find_map(|m| match m {
            Message::Headers(l) => Some(l),
            _ => None,
        })
    };
    let l = ask(&mut node, vec![genesis], BlockHash::all_zeros()).unwrap();
    assert_eq!(l.len(), 2_000);
    assert_eq!(l.block_hash(0), Some(h(1)));
    let l =
        ask(&mut node, vec![BlockHash::from_byte_array([9; 32]), h(2_000), h(1_990)], BlockHash::all_zeros()).unwrap();
    assert_eq!(l.len(), 100);
    assert_eq!(l.block_hash(99), Some(h(2_100)));
    let l = ask(&mut node, vec![h(10)], h(15)).unwrap();
    assert_eq!(l.len(), 5, "stops at the stop hash");
    let l = ask(&mut node, vec![], h(7)).unwrap();
    assert_eq!(l.block_hash(0), Some(h(7)));
    assert_eq!(ask(&mut node, vec![h(2_100)], BlockHash::all_zeros()).unwrap().len(), 0);
    // In IBD (a fresh node that validated 10 blocks) the validated chain is served, as Core does...
    let mut ibd = fixture_node();
    let mut source = ChainPeer::fixture(&mut ibd, "10.0.0.1:18444");
    source.headers.truncate(10);
    let loc = Locator { version: 70016, hashes: vec![genesis], stop: BlockHash::all_zeros() };
    ibd.receive(source.conn, &Message::Headers(source.answer(&loc)));
    source.pump(&mut ibd, 100);
    assert!(ibd.world.resource::<Ibd>().active);
    let c = ibd.ready_inbound("10.0.0.9:18444");
    let ask = |node: &mut TestNode| {
        node.receive(c, &Message::GetHeaders(loc.clone()));
        node.sent_to(c).into_iter().find_map(|m| match m {
            Message::Headers(l) => Some(l.len()),
            _ => None,
        })
    };
    assert_eq!(ask(&mut ibd), Some(10));
    // ...but not while it has less than the network's minimum work: an empty answer, except to a
    // noban peer.
    ibd.world.resource_mut::<ChainParams>().minimum_chain_work = Work::from_be_bytes([0x0f; 32]);
    assert_eq!(ask(&mut ibd), Some(0));
    let e = ibd.peer(c).unwrap();
    ibd.world.get_mut::<Permissions>(e).unwrap().noban = true;
    assert_eq!(ask(&mut ibd), Some(10));
    let _ = tip_time;
}

#[test]
fn getheaders_is_served_from_the_header_archive_and_stops_short_at_a_header_it_lost() {
    let (mut node, _) = synced_node();
    let archive = std::sync::Arc::new(crate::chain::test_vectors::MemArchive::default());
    {
        let mut tree = node.world.resource_mut::<HeaderTree>();
        tree.attach_archive(archive.clone());
        let rows = tree.unarchived(usize::MAX);
        archive.save(&rows);
        tree.mark_archived(rows.len());
        assert_eq!(tree.unarchived_len(), 0, "the tree holds no header whole");
    }
    let conn = node.ready_inbound("10.0.0.9:18444");
    let genesis = node.world.resource::<ChainParams>().genesis.block_hash();
    let ask = |node: &mut TestNode| {
        node.receive(
            conn,
            &Message::GetHeaders(Locator { version: 70016, hashes: vec![genesis], stop: BlockHash::all_zeros() }),
        );
        node.sent_to(conn).into_iter().find_map(|m| match m {
            Message::Headers(l) => Some(l),
            _ => None,
        })
    };
    let l = ask(&mut node).unwrap();
    assert_eq!(l.len(), 2_000);
    for i in [0, 999, 1_999] {
        assert_eq!(l.raw()[i], header_of(&chain_blocks()[i]), "header {} as stored", i + 1);
    }
    // The store lost height 1,500: the answer ends at 1,499, and the peer is not told of more.
    archive.lose(1_500);
    let l = ask(&mut node).unwrap();
    assert_eq!(l.len(), 1_499);
    assert_eq!(l.block_hash(1_498), Some(block_hash(&header_of(&chain_blocks()[1_498]))));
    assert_eq!(node.get::<PeerChain>(conn).unwrap().best_sent, node.world.resource::<HeaderTree>().active_at(1_499));
}

#[test]
fn announced_fork_headers_reorg_the_best_header_chain() {
    let (mut node, _) = synced_node();
    let conn = node.ready_inbound("10.0.0.9:18444");
    let fork: Vec<[u8; 80]> = fork_blocks().iter().map(|b| header_of(b)).collect();
    send_headers(&mut node, conn, &fork);
    let t = tree(&node);
    assert_eq!(t.best_entry().hash, block_hash(&fork[6]));
    assert_eq!(t.best_entry().height, 2101);
    assert_eq!(node.closed_reason(conn), None);
    let _ = node.world.resource::<SyncConfig>();
}

#[test]
fn an_unknown_block_inv_triggers_getheaders_once_per_response_time() {
    let (mut node, _) = synced_node();
    let conn = node.ready_inbound("10.0.0.9:18444");
    // it is a sync peer (our tip is recent): answer its getheaders so none is outstanding
    node.receive(conn, &Message::Headers(HeaderList::default()));
    node.sent_to(conn);
    let mut inv = crate::wire::InvList::default();
    inv.push(crate::wire::InvType::BLOCK, [0x42; 32]);
    node.receive(conn, &Message::Inv(inv.clone()));
    let n1 = count(&node.sent_to(conn), |m| matches!(m, Message::GetHeaders(_)));
    node.receive(conn, &Message::Inv(inv));
    let n2 = count(&node.sent_to(conn), |m| matches!(m, Message::GetHeaders(_)));
    assert_eq!((n1, n2), (1, 0));
}

fn ready_outbound(node: &mut TestNode, addr: &str, nonce: u64) -> crate::components::ConnId {
    let c = node.connect_outbound(addr, crate::components::Direction::Manual);
    node.receive(c, &TestNode::peer_version(nonce));
    node.receive(c, &Message::Verack);
    c
}

/// Keeps `conns` alive for `minutes`: each answers our pings and pings us.
fn keep_alive(node: &mut TestNode, conns: &[crate::components::ConnId], minutes: u64) -> Vec<Vec<Message>> {
    let mut seen = vec![vec![]; conns.len()];
    for _ in 0..minutes {
        node.elapse(60_000);
        for (i, &c) in conns.iter().enumerate() {
            for m in node.sent_to(c) {
                if let Message::Ping(n) = m {
                    node.receive(c, &Message::Pong(n));
                }
                seen[i].push(m);
            }
            node.receive(c, &Message::Ping(7));
        }
    }
    seen
}

#[test]
fn a_sync_peer_that_sends_no_headers_is_replaced_after_the_headers_sync_timeout() {
    let mut node = fixture_node();
    let a = ready_outbound(&mut node, "10.0.0.1:18444", 1);
    let b = ready_outbound(&mut node, "10.0.0.2:18444", 2);
    let sent_a = node.sent_to(a);
    let sent_b = node.sent_to(b);
    assert!(sent_a.iter().any(|m| matches!(m, Message::GetHeaders(_))), "a is the sync peer");
    assert!(sent_b.iter().all(|m| !matches!(m, Message::GetHeaders(_))));
    for (c, sent) in [(a, &sent_a), (b, &sent_b)] {
        for m in sent {
            if let Message::Ping(n) = m {
                node.receive(c, &Message::Pong(*n));
            }
        }
    }
    // 15 min + 1 ms per header expected since genesis (2011 → 2027 at 10 min a block ≈ 14 min)
    let genesis_time = node.world.resource::<ChainParams>().genesis.time as u64;
    let expected = (crate::chain::test_vectors::AFTER_FIXTURE_S as u64 - genesis_time) / 600;
    let deadline_min = (15 * 60_000 + expected) / 60_000;
    keep_alive(&mut node, &[a, b], deadline_min - 1);
    assert_eq!(node.closed_reason(a), None, "still inside its time");
    let seen = keep_alive(&mut node, &[a, b], 2);
    assert_eq!(node.closed_reason(a), Some(DisconnectReason::HeadersSyncTimeout));
    assert!(seen[1].iter().any(|m| matches!(m, Message::GetHeaders(_))), "b took over");
    assert_eq!(node.closed_reason(b), None);
}

#[test]
fn a_sync_peer_with_nothing_to_give_hands_the_sync_to_a_peer_that_came_later() {
    use crate::components::Direction;
    let mut node = fixture_node();
    // The first peer (inbound, nothing better around) is asked for headers and has none.
    let empty = node.ready_inbound("10.0.0.1:18444");
    assert!(node.get::<PeerChain>(empty).unwrap().syncing());
    // An outbound peer connects while that sync still runs: one sync peer in IBD, it waits.
    let later = node.connect_outbound("20.0.0.1:8333", Direction::Manual);
    node.receive(later, &TestNode::peer_version(0x51));
    node.receive(later, &Message::Verack);
    assert_eq!(count(&node.sent_to(later), |m| matches!(m, Message::GetHeaders(_))), 0);
    // The empty answer ends the first sync; the later peer is asked at once.
    node.receive(empty, &Message::Headers(HeaderList::default()));
    assert!(!node.get::<PeerChain>(empty).unwrap().syncing());
    node.tick();
    assert_eq!(count(&node.sent_to(later), |m| matches!(m, Message::GetHeaders(_))), 1);
    assert!(node.get::<PeerChain>(later).unwrap().syncing());
    // The first is not asked again (its sync ran), and stays connected.
    assert_eq!(count(&node.sent_to(empty), |m| matches!(m, Message::GetHeaders(_))), 0);
    assert_eq!(node.closed_reason(empty), None);
}

#[test]
fn an_idle_peer_is_probed_for_its_chain_and_then_serves_the_blocks_a_silent_sync_peer_holds_up() {
    let mut node = fixture_node();
    // The sync peer gives headers, never blocks.
    let mut silent = ChainPeer::fixture(&mut node, "10.0.0.1:18444");
    silent.answer_getdata = false;
    silent.give_headers(&mut node);
    assert_eq!(tree(&node).best_entry().height, 2000);
    // Another peer holds the chain but was never asked: one sync peer in IBD.
    let mut other = ChainPeer::fixture(&mut node, "10.0.0.2:18444");
    node.tick();
    let sent = node.sent_to(other.conn);
    let probes: Vec<&Locator> = sent
        .iter()
        .filter_map(|m| match m {
            Message::GetHeaders(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(probes.len(), 1, "{sent:?}");
    let parent = tree(&node).entry(tree(&node).best_entry().parent).hash;
    assert_eq!(probes[0].hashes[0], parent, "from the best header's parent: never answered empty");
    assert_eq!(node.world.resource::<crate::resources::Metrics>().headers_probes, 1);
    // Its answer says it holds the whole chain; blocks are then asked of it.
    node.receive(other.conn, &Message::Headers(other.answer(probes[0])));
    let known = node.get::<PeerChain>(other.conn).unwrap().synced_headers(tree(&node));
    assert_eq!(known, 2100);
    assert!(other.pump(&mut node, 200) > 0, "no getdata for the probed peer");
    assert!(
        tree(&node).entry(tree(&node).validated_tip()).height == 0,
        "the silent peer still holds block 1: the window waits for it"
    );
    // Not probed again while it is busy or knows our best header.
    assert_eq!(node.world.resource::<crate::resources::Metrics>().headers_probes, 1);
    // The stall timeout moves the silent peer's blocks to the probed one, and the chain syncs.
    for _ in 0..40 {
        node.elapse(1_000);
        other.pump(&mut node, 50);
    }
    assert_eq!(tree(&node).entry(tree(&node).validated_tip()).height, 2100);
    assert_eq!(node.closed_reason(silent.conn), Some(DisconnectReason::BlockStalling));
}

#[test]
fn idle_peers_are_not_probed_for_a_new_tip_only_for_a_download() {
    let (mut node, tip_time) = synced_node();
    // An old tip (a quiet chain): one headers sync peer, the others idle and never asked.
    node.set_time_s(tip_time as i64 + 3 * 24 * 3600);
    let source = node.ready_inbound("10.0.0.8:18444");
    node.tick();
    let other = node.ready_inbound("10.0.0.9:18444");
    node.tick();
    let _ = node.sent_to(other);
    // A new header a block ahead of the validated tip: the peers that have not announced it will.
    let tip = tree(&node).best_entry().hash;
    let mut l = HeaderList::default();
    l.push_raw(mine(&tip, tip_time + 600, 0x2000_0000, 1));
    node.receive(source, &Message::Headers(l));
    assert_eq!(tree(&node).best_entry().height, 2101, "the new header is our best");
    node.elapse(5_000);
    assert!(node.sent_to(other).iter().all(|m| !matches!(m, Message::GetHeaders(_))));
    assert_eq!(node.world.resource::<crate::resources::Metrics>().headers_probes, 0);
}
