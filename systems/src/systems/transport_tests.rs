//! BIP324 in the world: which dials try v2 (Core's rule: both sides advertise NODE_P2P_V2, and
//! manual peers whatever they advertise), the one v1 retry of a refused v2 dial, the transport each
//! peer settles on, and v2 faults ending a connection with their own reason and counter.

use crate::components::{Direction, Transport};
use crate::harness::TestNode;
use crate::resources::{AddrBook, Config, DisconnectReason, NetEvent, PeerAddr, PeerPolicy};
use crate::wire::services::{NODE_NETWORK, NODE_P2P_V2, NODE_WITNESS};
use crate::wire::v2::transport::V2Error;
use crate::wire::Network;
use std::net::SocketAddr;

const GOOD: u64 = NODE_NETWORK | NODE_WITNESS;

/// A node whose book holds `v2_peers` addresses advertising NODE_P2P_V2 and as many that do not,
/// each in its own netgroup; it dials until its outbound slots are full.
fn dial_all(node: &mut TestNode, v2_peers: u8) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let now_s = 1_700_000_000;
    let (mut v2, mut v1) = (Vec::new(), Vec::new());
    for g in 0..2 * v2_peers {
        let addr: SocketAddr = format!("{}.{}.0.1:8333", 20 + g, g).parse().unwrap();
        let services = if g % 2 == 0 { GOOD | NODE_P2P_V2 } else { GOOD };
        node.resource_mut::<AddrBook>().add(PeerAddr::from_socket(addr), services, now_s - 60, [1, 1, 1, 0, 0], now_s);
        if g % 2 == 0 {
            v2.push(addr)
        } else {
            v1.push(addr)
        }
    }
    for _ in 0..40 {
        node.elapse(600);
        node.complete_dials(GOOD);
    }
    (v2, v1)
}

#[test]
fn v2_is_tried_only_with_peers_that_advertise_it_and_with_manual_peers_whatever_they_advertise() {
    let mut node = TestNode::regtest();
    assert!(node.world.resource::<Config>().v2(), "on by default, as Core's -v2transport");
    let manual: SocketAddr = "9.9.9.9:8333".parse().unwrap();
    node.resource_mut::<PeerPolicy>().manual.push(manual);
    let (v2, v1) = dial_all(&mut node, 6);
    let dialed_v2 = node.v2_dials().to_vec();
    assert!(dialed_v2.contains(&manual), "a manual peer is tried with v2 (it falls back once)");
    assert!(dialed_v2.iter().any(|a| v2.contains(a)), "advertising peers are dialed v2: {dialed_v2:?}");
    assert!(dialed_v2.iter().all(|a| !v1.contains(a)), "never v2 to a peer that does not advertise it");
}

#[test]
fn with_v2_off_nothing_is_dialed_v2_and_the_bit_is_not_advertised() {
    let mut config = Config::new(Network::Regtest);
    config.services &= !NODE_P2P_V2;
    let mut node = TestNode::new(config, 7);
    node.resource_mut::<PeerPolicy>().manual.push("9.9.9.9:8333".parse().unwrap());
    dial_all(&mut node, 6);
    assert!(node.v2_dials().is_empty(), "{:?}", node.v2_dials());
    let conn = node.connect_inbound("10.0.0.1:18444");
    node.receive(conn, &TestNode::peer_version(1));
    let ours = node.sent_to(conn).into_iter().find_map(|m| match m {
        crate::wire::Message::Version(v) => Some(v.services),
        _ => None,
    });
    assert_eq!(ours.map(|s| s & NODE_P2P_V2), Some(0));
}

#[test]
fn a_v2_dial_refused_without_a_byte_is_dialed_once_more_with_v1() {
    let mut node = TestNode::regtest();
    let addr: SocketAddr = "30.1.2.3:8333".parse().unwrap();
    let conn = node.connect_outbound("30.1.2.3:8333", Direction::OutboundFullRelay);
    let v2_before = node.v2_dials().len();
    node.report(NetEvent::V2Refused { conn });
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::V2Refused));
    assert_eq!(node.metrics().v2_refused, 1);
    assert_eq!(node.dials().iter().filter(|d| **d == (addr, Direction::OutboundFullRelay)).count(), 1, "one retry");
    assert_eq!(node.v2_dials().len(), v2_before, "the retry is v1");
    // The retry connects with v1; nothing more is dialed for it.
    let retried = node.complete_dials(GOOD);
    assert_eq!(retried.len(), 1);
    node.elapse(600);
    assert!(node.dials().iter().all(|d| d.0 != addr), "no third attempt: {:?}", node.dials());
}

#[test]
fn a_peer_starts_detecting_and_takes_the_transport_the_shell_reports() {
    let mut node = TestNode::regtest();
    let a = node.connect_inbound("10.0.0.1:18444");
    let b = node.connect_inbound("10.0.0.2:18444");
    assert_eq!(node.get::<Transport>(a), Some(&Transport::Detecting));
    node.report(NetEvent::Transport { conn: a, transport: Transport::V1 });
    node.report(NetEvent::Transport { conn: b, transport: Transport::V2 { session_id: [7; 32] } });
    assert_eq!(node.get::<Transport>(a), Some(&Transport::V1));
    assert_eq!(node.get::<Transport>(b), Some(&Transport::V2 { session_id: [7; 32] }));
    assert_eq!(node.metrics().transports, [1, 1]);
}

#[test]
fn each_v2_fault_ends_the_connection_with_its_own_reason_and_counter() {
    let mut node = TestNode::regtest();
    let cases = [
        (V2Error::WrongNetwork, DisconnectReason::V2WrongNetwork),
        (V2Error::NoTerminator, DisconnectReason::V2NoTerminator),
        (V2Error::TooLarge, DisconnectReason::V2TooLarge),
        (V2Error::BadTag, DisconnectReason::V2BadTag),
    ];
    let honest = node.ready_inbound("10.9.9.9:18444");
    for (i, (error, reason)) in cases.into_iter().enumerate() {
        let conn = node.connect_inbound(&format!("10.0.1.{}:18444", i + 1));
        node.report(NetEvent::TransportFailed { conn, error });
        assert_eq!(node.closed_reason(conn), Some(reason), "{error:?}");
        assert_eq!(node.metrics().v2_failures[error as usize], 1, "{error:?}");
        assert_eq!(node.metrics().disconnects_for(reason), 1);
    }
    assert!(node.closed_reason(honest).is_none(), "everyone else is served");
}

#[test]
fn a_v2_peers_frames_are_queued_without_a_checksum_and_a_v1_peers_with_one() {
    use crate::components::SendQueue;
    let mut node = TestNode::regtest();
    let v1 = node.ready_inbound("10.0.0.1:18444");
    let v2 = node.ready_inbound("10.0.0.2:18444");
    node.report(NetEvent::Transport { conn: v1, transport: Transport::V1 });
    node.report(NetEvent::Transport { conn: v2, transport: Transport::V2 { session_id: [1; 32] } });
    assert!(node.get::<SendQueue>(v2).unwrap().authenticated);
    assert!(!node.get::<SendQueue>(v1).unwrap().authenticated);
    let ping = crate::wire::Message::Ping(5);
    let (mut a, mut b) = (SendQueue::default(), SendQueue::default());
    b.authenticated = true;
    a.push(Network::Regtest, &ping);
    b.push(Network::Regtest, &ping);
    let (fa, fb) = (a.pop().unwrap().1, b.pop().unwrap().1);
    assert_eq!(fa[20..24], crate::wire::checksum(&5u64.to_le_bytes()), "v1: the checksum");
    assert_eq!(fb[20..24], [0; 4], "v2: none, nothing else differs");
    assert_eq!(fa[..20], fb[..20]);
    assert_eq!(fa[24..], fb[24..]);
}

#[test]
fn decoys_are_counted_never_held_and_paced_by_the_decode_budget_like_frames() {
    use crate::components::RecvBuffer;
    use crate::wire::v2::transport::decoy_frame;
    let mut node = TestNode::regtest();
    let honest = node.ready_inbound("10.0.0.9:18444");
    let peers: Vec<_> = (1..=4).map(|i| node.ready_inbound(&format!("10.0.1.{i}:18444"))).collect();
    let budget = node.world.resource::<Config>().limits.decode_bytes_per_tick_total;
    // Each peer hands over two 1 MB decoys at once.
    for &p in &peers {
        for _ in 0..2 {
            node.world
                .resource_mut::<crate::resources::Inbox>()
                .0
                .push(NetEvent::Frame { conn: p, frame: decoy_frame(1_000_000) });
        }
    }
    node.tick();
    let decoded = node.metrics().v2_decoys;
    assert!(decoded >= 1 && decoded as usize * 1_000_000 <= budget.max(1_000_000), "one tick took {decoded} decoys");
    // Waiting decoys count as held (the reader's credit stays taken) though nothing is kept.
    let held: usize = peers.iter().map(|p| node.get::<RecvBuffer>(*p).unwrap().bytes).sum();
    assert_eq!(held, (8 - decoded as usize) * (1_000_000 + 24));
    for _ in 0..20 {
        node.tick();
    }
    assert_eq!(node.metrics().v2_decoys, 8, "all taken in turns");
    assert_eq!(node.metrics().unknown_commands, 0, "not counted as unknown commands");
    assert!(peers.iter().chain([&honest]).all(|p| node.closed_reason(*p).is_none()), "decoys are legal");
}
