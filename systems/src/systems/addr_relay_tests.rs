use crate::components::{AddrRelay, Direction};
use crate::harness::TestNode;
use crate::resources::{AddrBook, NetAddress, PeerAddr};
use crate::wire::services::{NODE_NETWORK, NODE_WITNESS};
use crate::wire::{AddrEntry, AddrV2Addr, AddrV2Entry, AddrV2List, Message, NetAddr};
use std::net::SocketAddr;

const NOW_S: u32 = 1_700_000_000;

fn addrs(n: usize, first_octet: u8) -> Message {
    let entries = (0..n)
        .map(|i| {
            let s: SocketAddr = format!("{}.{}.1.1:8333", first_octet as usize + i % 100, i / 100).parse().unwrap();
            AddrEntry { time: NOW_S - 60, addr: NetAddr::from_socket(s, NODE_NETWORK | NODE_WITNESS) }
        })
        .collect();
    Message::Addr(entries)
}

#[test]
fn the_token_bucket_admits_one_then_a_tenth_per_second() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.0.1:1");
    node.receive(conn, &addrs(1000, 44));
    assert_eq!(node.metrics().addr_received, 1000);
    assert_eq!(node.metrics().addr_rate_limited, 999);
    assert_eq!(node.world.resource::<AddrBook>().len(), 1);
    node.elapse(100_000);
    node.receive(conn, &addrs(50, 45));
    assert_eq!(node.world.resource::<AddrBook>().len(), 11, "100 s later: 10 more tokens");
    assert_eq!(node.get::<AddrRelay>(conn).unwrap().rate_limited, 999 + 40);
    assert_eq!(node.get::<AddrRelay>(conn).unwrap().processed, 1 + 10, "what the bucket let through");
}

#[test]
fn outbound_peers_are_asked_once_and_their_big_answer_is_taken() {
    let mut node = TestNode::regtest();
    let conn = node.connect_outbound("20.0.0.1:8333", Direction::OutboundFullRelay);
    node.receive(conn, &TestNode::peer_version(5));
    node.receive(conn, &Message::Verack);
    let sent = node.sent_to(conn);
    assert_eq!(sent.iter().filter(|m| **m == Message::GetAddr).count(), 1);
    node.receive(conn, &addrs(1000, 46));
    assert_eq!(node.metrics().addr_rate_limited, 0);
    assert!(node.world.resource::<AddrBook>().len() > 700, "{}", node.world.resource::<AddrBook>().len());
}

#[test]
fn getaddr_is_answered_once_per_inbound_connection_from_at_most_23_percent() {
    let mut node = TestNode::regtest();
    for i in 0..200u16 {
        let a: SocketAddr = format!("{}.{}.7.7:8333", 30 + i / 100, i % 100).parse().unwrap();
        node.resource_mut::<AddrBook>().add(
            PeerAddr::from_socket(a),
            9,
            NOW_S as i64 - 100,
            [1, 2, 3, 0, 0],
            NOW_S as i64,
        );
    }
    let book_len = node.world.resource::<AddrBook>().len();
    let conn = node.ready_inbound("10.0.0.2:1");
    node.receive(conn, &Message::GetAddr);
    let answer: Vec<_> = node.sent_to(conn).into_iter().filter(|m| matches!(m, Message::AddrV2(_))).collect();
    assert_eq!(answer.len(), 1, "answered in addrv2, as negotiated");
    let Message::AddrV2(list) = &answer[0] else { unreachable!() };
    assert!(!list.entries.is_empty() && list.entries.len() <= book_len * 23 / 100);
    node.receive(conn, &Message::GetAddr);
    assert!(
        node.sent_to(conn).iter().all(|m| !matches!(m, Message::AddrV2(_) | Message::Addr(_))),
        "once per connection"
    );
    let other = node.ready_inbound("10.0.0.3:1");
    node.receive(other, &Message::GetAddr);
    let again: Vec<_> = node.sent_to(other).into_iter().filter(|m| matches!(m, Message::AddrV2(_))).collect();
    assert_eq!(again, answer, "the same cached answer: it tells nothing about who sent what lately");
    let out = node.connect_outbound("21.0.0.1:8333", Direction::Manual);
    node.receive(out, &TestNode::peer_version(6));
    node.receive(out, &Message::Verack);
    node.sent_to(out);
    node.receive(out, &Message::GetAddr);
    assert!(node.sent_to(out).iter().all(|m| !matches!(m, Message::AddrV2(_) | Message::Addr(_))), "never to outbound");
}

#[test]
fn addrv2_overlay_addresses_are_stored_and_unroutable_ones_dropped() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.0.4:1");
    node.elapse(40_000); // tokens for a few entries
    let list = AddrV2List {
        entries: vec![
            AddrV2Entry { time: NOW_S, services: 9, addr: AddrV2Addr::TorV3([7; 32]), port: 8333 },
            AddrV2Entry { time: NOW_S, services: 9, addr: AddrV2Addr::I2p([8; 32]), port: 0 },
            AddrV2Entry { time: NOW_S, services: 9, addr: AddrV2Addr::Ipv4([192, 168, 1, 1]), port: 8333 },
            AddrV2Entry { time: NOW_S, services: 9, addr: AddrV2Addr::Ipv4([8, 8, 8, 8]), port: 8333 },
        ],
        skipped: 0,
    };
    node.receive(conn, &Message::AddrV2(list));
    let book = node.world.resource::<AddrBook>();
    assert!(book.get(&PeerAddr { addr: NetAddress::TorV3([7; 32]), port: 8333 }).is_some());
    assert!(book.get(&PeerAddr { addr: NetAddress::I2p([8; 32]), port: 0 }).is_some());
    assert!(book.get(&PeerAddr { addr: NetAddress::Ipv4([192, 168, 1, 1]), port: 8333 }).is_none(), "private");
    assert_eq!(book.len(), 3);
}

#[test]
fn fresh_announcements_are_relayed_to_two_other_peers() {
    let mut node = TestNode::regtest();
    let src = node.ready_inbound("10.0.0.5:1");
    let others: Vec<_> = (0..5).map(|i| node.ready_inbound(&format!("10.1.{i}.1:1"))).collect();
    node.elapse(20_000);
    for c in &others {
        node.sent_to(*c);
    }
    node.receive(src, &addrs(1, 47));
    node.elapse(61_000);
    let got: usize = others
        .iter()
        .map(|c| node.sent_to(*c).iter().filter(|m| matches!(m, Message::AddrV2(l) if l.entries.len() == 1)).count())
        .sum();
    assert_eq!(got, 2);
    assert!(node.sent_to(src).iter().all(|m| !matches!(m, Message::AddrV2(_))), "never back to its source");
}

#[test]
fn block_relay_only_peers_do_not_gossip_addresses() {
    let mut node = TestNode::regtest();
    let conn = node.connect_outbound("22.0.0.1:8333", Direction::BlockRelayOnly);
    node.receive(conn, &TestNode::peer_version(7));
    node.receive(conn, &Message::Verack);
    assert!(node.sent_to(conn).iter().all(|m| *m != Message::GetAddr));
    node.receive(conn, &addrs(5, 48));
    assert_eq!(node.world.resource::<AddrBook>().len(), 0);
}

#[test]
fn a_peers_relay_queue_stops_at_one_message_worth() {
    use crate::components::Permissions;
    let mut node = TestNode::regtest();
    let src = node.ready_inbound("10.0.0.5:1");
    let e = node.peer(src).unwrap();
    node.world.get_mut::<Permissions>(e).unwrap().noban = true; // no token bucket
    let targets: Vec<_> = (0..2).map(|i| node.ready_inbound(&format!("10.1.{i}.1:1"))).collect();
    // 1,500 fresh addresses in small (relayable) messages, faster than the targets' trickle.
    for m in 0..150usize {
        let entries = (0..10)
            .map(|j| {
                let s: SocketAddr = format!("{}.{}.{j}.1:8333", 50 + m % 100, m / 100).parse().unwrap();
                AddrEntry { time: NOW_S - 60, addr: NetAddr::from_socket(s, NODE_NETWORK | NODE_WITNESS) }
            })
            .collect();
        node.receive(src, &Message::Addr(entries));
    }
    for t in targets {
        let queued = node.get::<AddrRelay>(t).unwrap().queued.len();
        assert!((900..=1_000).contains(&queued), "queued {queued}");
    }
}
