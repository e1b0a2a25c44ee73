use crate::components::{Direction, Negotiated, PeerState, Score};
use crate::harness::TestNode;
use crate::resources::{DisconnectReason, Misbehavior, ScoreTable};
use crate::wire::{Message, PROTOCOL_VERSION};

fn commands(msgs: &[Message]) -> Vec<&'static str> {
    msgs.iter().map(|m| m.command().name()).collect()
}

#[test]
fn inbound_peer_gets_version_wtxidrelay_sendaddrv2_verack_in_order() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.1:5000");
    assert!(node.sent_to(conn).is_empty(), "inbound: we wait for the peer's version");
    node.receive(conn, &TestNode::peer_version(42));
    let sent = node.sent_to(conn);
    assert_eq!(commands(&sent), ["version", "wtxidrelay", "sendaddrv2", "verack"]);
    let Message::Version(v) = &sent[0] else { unreachable!() };
    assert_eq!(v.version, PROTOCOL_VERSION);
    assert_eq!(&v.user_agent[..], concat!("/oni:", env!("CARGO_PKG_VERSION"), "/").as_bytes());
    assert_ne!(v.nonce, 0);
    assert_eq!(v.receiver.ip, [0; 16], "a private address is not echoed back");
    assert!(v.relay, "we relay transactions, so we ask for them");
    node.receive(conn, &Message::WtxidRelay);
    node.receive(conn, &Message::SendAddrV2);
    node.receive(conn, &Message::Verack);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
    let neg = node.get::<Negotiated>(conn).unwrap();
    assert!(neg.wtxidrelay && neg.sendaddrv2);
    assert_eq!(&neg.user_agent[..], b"/Satoshi:30.0.0/");
    let sent = node.sent_to(conn);
    // headers sync starts with the first peer that serves blocks, as Core's does
    // (sendcmpct at verack, as Core: version 2 offered, no unasked compact blocks asked for.)
    assert_eq!(commands(&sent), ["sendcmpct", "sendheaders", "ping", "getheaders", "feefilter"]);
    assert_eq!(sent[0], Message::SendCmpct { announce: 0, version: 2 });
    // In initial block download we ask for no transactions at all (Core sends MAX_MONEY).
    assert!(matches!(sent[4], Message::FeeFilter(crate::systems::FEEFILTER_IBD)));
    assert_eq!(node.metrics().handshakes, 1);
}

#[test]
fn outbound_peer_gets_our_version_first() {
    let mut node = TestNode::regtest();
    let conn = node.connect_outbound("10.0.0.2:18444", Direction::Manual);
    assert_eq!(commands(&node.sent_to(conn)), ["version"]);
    node.receive(conn, &TestNode::peer_version(43));
    assert_eq!(commands(&node.sent_to(conn)), ["wtxidrelay", "sendaddrv2", "verack"]);
    node.receive(conn, &Message::Verack);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
}

#[test]
fn self_connection_is_detected_by_nonce() {
    let mut node = TestNode::regtest();
    let out = node.connect_outbound("127.0.0.1:18444", Direction::Manual);
    let Message::Version(ours) = node.sent_to(out).remove(0) else { unreachable!() };
    let inb = node.connect_inbound("127.0.0.1:50000");
    node.receive(inb, &Message::Version(ours));
    assert_eq!(node.closed_reason(inb), Some(DisconnectReason::SelfConnection));
}

#[test]
fn obsolete_version_is_refused() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.3:1");
    let Message::Version(mut v) = TestNode::peer_version(1) else { unreachable!() };
    v.version = 60002;
    node.receive(conn, &Message::Version(v));
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::ObsoleteVersion));
}

#[test]
fn messages_before_version_are_ignored_as_core_does_and_the_handshake_still_completes() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.4:1");
    // Core drops every one of these and goes on (net_processing.cpp: "non-version message before
    // version handshake"); a score would have disconnected at the tenth.
    for i in 0..200 {
        node.receive(conn, &Message::Ping(i));
    }
    node.receive(conn, &Message::Verack);
    node.receive(conn, &Message::SendHeaders);
    node.receive(conn, &Message::WtxidRelay);
    assert_eq!(node.closed_reason(conn), None);
    assert!(node.sent_to(conn).is_empty(), "nothing before version is answered");
    let score = node.get::<Score>(conn).unwrap();
    assert_eq!(score.points, 0);
    assert_eq!(score.events.as_slice(), &[(Misbehavior::MessageBeforeVersion, 203)], "counted, not scored");
    assert!(!node.get::<Negotiated>(conn).unwrap().sendheaders, "not taken before version");
    node.receive(conn, &TestNode::peer_version(11));
    node.receive(conn, &Message::Verack);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
    assert_eq!(node.metrics().misbehavior[Misbehavior::MessageBeforeVersion as usize], 203);
}

#[test]
fn duplicate_version_and_verack_are_ignored_however_many() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.0.5:1");
    for i in 0..150 {
        node.receive(conn, &TestNode::peer_version(100 + i));
        node.receive(conn, &Message::Verack);
    }
    let score = node.get::<Score>(conn).unwrap();
    assert!(score.events.contains(&(Misbehavior::DuplicateVersion, 150)));
    assert!(score.events.contains(&(Misbehavior::DuplicateVerack, 150)));
    assert_eq!(score.points, 0);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
    assert_eq!(node.closed_reason(conn), None);
}

#[test]
fn other_messages_between_version_and_verack_are_ignored_and_never_disconnect() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.9:1");
    node.receive(conn, &TestNode::peer_version(12));
    node.sent_to(conn);
    for i in 0..200 {
        node.receive(conn, &Message::Ping(i));
    }
    node.receive(conn, &Message::FeeFilter(5_000));
    assert!(node.sent_to(conn).is_empty(), "Core answers no ping before verack");
    assert_eq!(node.closed_reason(conn), None);
    assert_eq!(node.get::<Score>(conn).unwrap().points, 0);
    assert_eq!(node.get::<Negotiated>(conn).unwrap().feefilter, None, "feefilter counts after verack only");
    node.receive(conn, &Message::Verack);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
}

#[test]
fn sendheaders_and_sendcmpct_count_from_version_on_as_in_core() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.10:1");
    node.receive(conn, &TestNode::peer_version(13));
    node.receive(conn, &Message::SendHeaders);
    node.receive(conn, &Message::SendCmpct { announce: 1, version: 2 });
    let neg = node.get::<Negotiated>(conn).unwrap();
    assert!(neg.sendheaders, "Core takes sendheaders before verack");
    assert_eq!(neg.cmpct_version, Some(2));
    assert!(node.get::<Score>(conn).unwrap().events.is_empty());
    node.receive(conn, &Message::Verack);
    // A compact block version other than 2 is ignored, as Core ignores it.
    node.receive(conn, &Message::SendCmpct { announce: 0, version: 1 });
    assert_eq!(node.get::<Negotiated>(conn).unwrap().cmpct_version, Some(2));
}

#[test]
fn a_sendcmpct_flag_other_than_0_or_1_disconnects_at_once_as_cores_misbehaving() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.0.11:1");
    node.receive(conn, &Message::SendCmpct { announce: 2, version: 2 });
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().misbehavior[Misbehavior::InvalidSendCmpct as usize], 1);
    assert_eq!(node.metrics().discouraged, 1);
}

#[test]
fn wtxidrelay_or_sendaddrv2_after_verack_disconnects_as_core_does_without_a_score() {
    for late in [Message::WtxidRelay, Message::SendAddrV2] {
        let mut node = TestNode::regtest();
        let conn = node.connect_inbound("10.0.0.6:1");
        node.receive(conn, &TestNode::peer_version(9));
        node.receive(conn, &Message::Verack);
        assert_eq!(node.state(conn), Some(PeerState::Ready));
        node.receive(conn, &late);
        assert_eq!(node.closed_reason(conn), Some(DisconnectReason::NegotiationAfterVerack), "{late:?}");
        assert_eq!(node.metrics().disconnects_for(DisconnectReason::NegotiationAfterVerack), 1);
        assert_eq!(node.metrics().discouraged, 0, "not discouraged: Core only disconnects");
    }
}

#[test]
fn handshake_timeout_disconnects() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.7:1");
    node.elapse(59_000);
    assert_eq!(node.closed_reason(conn), None);
    node.elapse(2_000);
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::HandshakeTimeout));
    assert_eq!(node.metrics().disconnects_for(DisconnectReason::HandshakeTimeout), 1);
}

#[test]
fn repeated_violations_reach_the_threshold_and_disconnect() {
    let mut node = TestNode::regtest();
    // The scoring itself, with a violation given 10 points (operators may grade any of them).
    node.world.resource_mut::<ScoreTable>().scores[Misbehavior::MessageBeforeVersion as usize] = 10;
    let conn = node.connect_inbound("10.0.0.8:1");
    for i in 0..9 {
        node.receive(conn, &Message::Ping(i));
        assert_eq!(node.closed_reason(conn), None);
    }
    node.receive(conn, &Message::Ping(10));
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::Misbehavior));
}

#[test]
fn a_version_without_its_optional_tail_is_taken_as_core_takes_it() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.12:1");
    let Message::Version(v) = TestNode::peer_version(14) else { unreachable!() };
    let mut payload = Vec::new();
    v.encode(&mut payload);
    // Version, services, time and the receiver's address only: Core reads the rest only if present.
    node.receive_payload(conn, crate::wire::Command::Version, &payload[..46]);
    assert_eq!(commands(&node.sent_to(conn)), ["version", "wtxidrelay", "sendaddrv2", "verack"]);
    node.receive(conn, &Message::Verack);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
    let neg = node.get::<Negotiated>(conn).unwrap();
    assert_eq!((neg.start_height, neg.relay, neg.user_agent.len()), (-1, true, 0));
}

#[test]
fn a_feature_message_disconnects_once_version_is_in_as_core_does_below_protocol_70017() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.13:1");
    node.receive(conn, &Message::Feature);
    assert_eq!(node.closed_reason(conn), None, "before version: ignored");
    node.receive(conn, &TestNode::peer_version(15));
    node.receive(conn, &Message::Feature);
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::UnsupportedFeature));
    let ready = node.ready_inbound("10.0.0.14:1");
    let mut payload = vec![4];
    payload.extend_from_slice(b"test");
    payload.push(0);
    node.receive_payload(ready, crate::wire::Command::Feature, &payload);
    assert_eq!(node.closed_reason(ready), Some(DisconnectReason::UnsupportedFeature));
    assert_eq!(node.metrics().discouraged, 0);
}
