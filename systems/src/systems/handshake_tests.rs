use crate::components::{Direction, Negotiated, PeerState, Score};
use crate::harness::TestNode;
use crate::resources::{DisconnectReason, Misbehavior};
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
    assert_eq!(commands(&sent), ["sendheaders", "ping", "getheaders", "feefilter"]);
    // In initial block download we ask for no transactions at all (Core sends MAX_MONEY).
    assert!(matches!(sent[3], Message::FeeFilter(crate::systems::FEEFILTER_IBD)));
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
fn message_before_version_is_scored() {
    let mut node = TestNode::regtest();
    let conn = node.connect_inbound("10.0.0.4:1");
    node.receive(conn, &Message::Ping(1));
    let score = node.get::<Score>(conn).unwrap();
    assert_eq!(score.events.as_slice(), &[(Misbehavior::MessageBeforeVersion, 1)]);
    assert!(node.sent_to(conn).is_empty(), "a ping before version is not answered");
}

#[test]
fn duplicate_version_and_verack_are_scored_but_not_fatal() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.0.5:1");
    node.receive(conn, &TestNode::peer_version(9));
    node.receive(conn, &Message::Verack);
    let score = node.get::<Score>(conn).unwrap();
    assert!(score.events.contains(&(Misbehavior::DuplicateVersion, 1)));
    assert!(score.events.contains(&(Misbehavior::DuplicateVerack, 1)));
    assert_eq!(node.state(conn), Some(PeerState::Ready));
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
    let conn = node.connect_inbound("10.0.0.8:1");
    for i in 0..9 {
        node.receive(conn, &Message::Ping(i));
        assert_eq!(node.closed_reason(conn), None);
    }
    node.receive(conn, &Message::Ping(10));
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::Misbehavior));
}
