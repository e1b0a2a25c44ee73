//! Transaction announcements in and requests out, on a world with no IO.

use crate::components::{ConnId, Direction};
use crate::harness::TestNode;
use crate::resources::tx_requests::TxRequests;
use crate::resources::{Config, DisconnectReason, Metrics};
use crate::wire::{InvList, InvType, Message, Network, MAX_INV_ENTRIES};

fn relaying_node() -> TestNode {
    let mut config = Config::new(Network::Regtest);
    config.relay = true;
    let mut node = TestNode::new(config, 11);
    node.world.resource_mut::<crate::chain::Ibd>().active = false;
    node
}

fn hash(i: u32, salt: u8) -> [u8; 32] {
    let mut h = [salt; 32];
    h[..4].copy_from_slice(&i.to_le_bytes());
    h
}

fn inv(kind: InvType, hashes: impl IntoIterator<Item = [u8; 32]>) -> Message {
    let mut l = InvList::with_capacity(8);
    for h in hashes {
        l.push(kind, h);
    }
    Message::Inv(l)
}

fn getdata_entries(node: &mut TestNode, conn: ConnId) -> Vec<(InvType, [u8; 32])> {
    node.sent_to(conn)
        .into_iter()
        .filter_map(|m| match m {
            Message::GetData(l) => Some(l.iter().map(|e| (e.kind, e.hash)).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn ready_outbound(node: &mut TestNode, addr: &str) -> ConnId {
    let conn = node.connect_outbound(addr, Direction::OutboundFullRelay);
    node.receive(conn, &TestNode::peer_version(77 ^ conn.0));
    node.receive(conn, &Message::WtxidRelay);
    node.receive(conn, &Message::Verack);
    node.sent_to(conn);
    conn
}

#[test]
fn announcing_txs_to_a_node_that_asked_for_none_disconnects_without_discouragement_as_core() {
    let mut config = Config::new(Network::Regtest);
    config.relay = false; // --blocksonly
    let mut node = TestNode::new(config, 11);
    let conn = node.ready_inbound("10.0.0.1:1");
    node.receive(conn, &inv(InvType::WTX, [hash(1, 1)]));
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::TxRelayViolation));
    assert_eq!(node.metrics().discouraged, 0, "Core only disconnects");
    // The kind it did not negotiate is skipped before the check, as Core skips it.
    let other = node.ready_inbound("10.0.0.5:1");
    node.receive(other, &inv(InvType::TX, [hash(2, 1)]));
    assert_eq!(node.closed_reason(other), None);
    // A transaction itself, too.
    let tx = crate::wire::Tx::from_bitcoin(&crate::wire::tx::tests::sample_tx(1, 1, true, 1)).unwrap();
    node.receive(other, &Message::Tx(tx));
    assert_eq!(node.closed_reason(other), Some(DisconnectReason::TxRelayViolation));
    assert_eq!(node.metrics().discouraged, 0);
}

#[test]
fn a_block_relay_only_peer_that_sends_a_transaction_is_disconnected_as_core_does() {
    let mut node = relaying_node();
    let conn = node.connect_outbound("20.0.0.9:8333", Direction::BlockRelayOnly);
    node.receive(conn, &TestNode::peer_version(5));
    node.receive(conn, &Message::Verack);
    let tx = crate::wire::Tx::from_bitcoin(&crate::wire::tx::tests::sample_tx(1, 1, true, 2)).unwrap();
    node.receive(conn, &Message::Tx(tx));
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::TxRelayViolation));
    assert_eq!(node.metrics().discouraged, 0);
}

#[test]
fn outbound_announcements_are_requested_at_once_inbound_after_two_seconds() {
    let mut node = relaying_node();
    let out = ready_outbound(&mut node, "20.0.0.1:8333");
    let inb = node.ready_inbound("10.0.0.2:1");
    node.receive(out, &inv(InvType::WTX, [hash(1, 2)]));
    assert_eq!(getdata_entries(&mut node, out), vec![(InvType::WTX, hash(1, 2))]);
    node.receive(inb, &inv(InvType::WTX, [hash(2, 2)]));
    assert!(getdata_entries(&mut node, inb).is_empty());
    node.elapse(2_000);
    assert_eq!(getdata_entries(&mut node, inb), vec![(InvType::WTX, hash(2, 2))]);
}

#[test]
fn the_kind_the_peer_did_not_negotiate_is_ignored_and_counted() {
    let mut node = relaying_node();
    let out = ready_outbound(&mut node, "20.0.0.2:8333");
    node.receive(out, &inv(InvType::TX, [hash(3, 3)]));
    assert!(getdata_entries(&mut node, out).is_empty());
    assert_eq!(node.metrics().tx_inv_wrong_kind, 1);
}

#[test]
fn an_inv_of_50_001_entries_is_refused_before_anything_is_allocated() {
    let mut node = relaying_node();
    // The whole message: over the inv payload bound, refused from its header.
    let whole = node.ready_inbound("10.0.0.3:1");
    let mut payload = vec![0xfd];
    payload.extend_from_slice(&((MAX_INV_ENTRIES + 1) as u16).to_le_bytes());
    payload.extend(std::iter::repeat_n(0u8, 36 * (MAX_INV_ENTRIES + 1)));
    let mut frame = Vec::new();
    crate::wire::encode_frame_with(Network::Regtest, crate::wire::Command::Inv, &mut frame, |o| {
        o.extend_from_slice(&payload)
    });
    node.receive_bytes(whole, &frame);
    assert_eq!(node.closed_reason(whole), Some(DisconnectReason::Oversized));
    // A count of 50,001 with one entry behind it: a short message, dropped and counted (Core's read
    // runs out and it drops the message).
    let lying = node.ready_inbound("10.0.0.4:1");
    let mut frame = Vec::new();
    crate::wire::encode_frame_with(Network::Regtest, crate::wire::Command::Inv, &mut frame, |o| {
        o.push(0xfd);
        o.extend_from_slice(&((MAX_INV_ENTRIES + 1) as u16).to_le_bytes());
        o.extend_from_slice(&[1u8; 36]);
    });
    node.receive_bytes(lying, &frame);
    assert_eq!(node.closed_reason(lying), None);
    assert_eq!(node.metrics().decode_errors[crate::wire::DecodeError::Truncated as usize], 1);
    assert_eq!(node.world.resource::<TxRequests>().len(), 0);
}

#[test]
fn ten_thousand_unknown_announcements_stay_bounded_and_an_honest_tx_still_flows() {
    let mut node = relaying_node();
    let flood = ready_outbound(&mut node, "20.0.0.3:8333");
    let honest = ready_outbound(&mut node, "21.0.0.3:8333");
    for chunk in 0..2 {
        node.receive(flood, &inv(InvType::WTX, (0..5_000).map(|i| hash(chunk * 5_000 + i, 4))));
    }
    let requested = getdata_entries(&mut node, flood);
    assert_eq!(requested.len(), 100, "at most 100 in flight to one peer");
    assert_eq!(node.metrics().tx_announcements_dropped, 5_000);
    let flooder = node.peer(flood).unwrap();
    assert_eq!(node.world.resource::<TxRequests>().announced_by(flooder), 5_000);
    node.receive(honest, &inv(InvType::WTX, [hash(1, 5)]));
    assert_eq!(getdata_entries(&mut node, honest), vec![(InvType::WTX, hash(1, 5))]);
    node.close(flood);
    assert_eq!(node.world.resource::<TxRequests>().announced_by(flooder), 0, "freed when it left");
}

#[test]
fn notfound_and_disconnects_move_a_request_to_the_next_announcer() {
    let mut node = relaying_node();
    let a = ready_outbound(&mut node, "20.0.0.4:8333");
    let b = ready_outbound(&mut node, "21.0.0.4:8333");
    let c = ready_outbound(&mut node, "22.0.0.4:8333");
    for p in [a, b, c] {
        node.receive(p, &inv(InvType::WTX, [hash(9, 6)]));
    }
    let asked: Vec<ConnId> = [a, b, c].into_iter().filter(|p| !getdata_entries(&mut node, *p).is_empty()).collect();
    assert_eq!(asked.len(), 1, "one request at a time");
    let first = asked[0];
    let mut l = InvList::with_capacity(1);
    l.push(InvType::WTX, hash(9, 6));
    node.receive(first, &Message::NotFound(l));
    let second: Vec<ConnId> = [a, b, c].into_iter().filter(|p| !getdata_entries(&mut node, *p).is_empty()).collect();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], first);
    node.close(second[0]);
    let third: Vec<ConnId> = [a, b, c].into_iter().filter(|p| !getdata_entries(&mut node, *p).is_empty()).collect();
    assert_eq!(third.len(), 1);
    assert!(third[0] != first && third[0] != second[0]);
}

#[test]
fn a_received_tx_is_never_requested_again() {
    let mut node = relaying_node();
    let a = ready_outbound(&mut node, "20.0.0.5:8333");
    let b = ready_outbound(&mut node, "21.0.0.5:8333");
    // A real transaction from the fixture mempool would do; any well-formed tx works here.
    let raw = hex_tx();
    let tx = crate::wire::Tx::decode(&raw).unwrap();
    let wtxid = bitcoin::hashes::Hash::to_byte_array(tx.wtxid());
    node.receive(a, &inv(InvType::WTX, [wtxid]));
    assert_eq!(getdata_entries(&mut node, a).len(), 1);
    node.elapse(150);
    node.receive(a, &Message::Tx(tx));
    assert_eq!(node.metrics().tx_received, 1);
    let latency = &node.metrics().tx_relay_ms;
    assert_eq!(latency.count, 1);
    assert!(latency.sum >= 150, "announcement to arrival: {} ms", latency.sum);
    node.receive(b, &inv(InvType::WTX, [wtxid]));
    node.elapse(3_000);
    assert!(getdata_entries(&mut node, b).is_empty());
    assert_eq!(node.world.resource::<Metrics>().tx_requests_sent, 1);
}

/// A one-input, one-output legacy transaction (structure only matters here).
fn hex_tx() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&2u32.to_le_bytes());
    t.push(1);
    t.extend_from_slice(&[7u8; 32]);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.push(1);
    t.push(0x51);
    t.extend_from_slice(&0xffff_ffffu32.to_le_bytes());
    t.push(1);
    t.extend_from_slice(&1000u64.to_le_bytes());
    t.push(1);
    t.push(0x51);
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

#[test]
fn announcements_during_initial_block_download_are_ignored() {
    let mut node = relaying_node();
    node.world.resource_mut::<crate::chain::Ibd>().active = true;
    let out = ready_outbound(&mut node, "20.0.0.9:8333");
    node.receive(out, &inv(InvType::WTX, [hash(1, 9)]));
    assert!(getdata_entries(&mut node, out).is_empty());
    assert_eq!(node.world.resource::<TxRequests>().len(), 0);
    assert_eq!(node.closed_reason(out), None, "not a violation: Core ignores them too");
    // A transaction itself is dropped before it is decoded or checked, unpunished (as Core).
    let tx = crate::wire::Tx::from_bitcoin(&crate::wire::tx::tests::sample_tx(1, 1, true, 9)).unwrap();
    node.receive(out, &Message::Tx(tx));
    assert!(node.world.resource::<crate::mempool::intake::TxIntake>().is_empty());
    let m = node.metrics();
    assert_eq!(m.tx_accepted + m.tx_orphaned + m.tx_rejected.iter().sum::<u64>(), 0, "never checked");
    assert_eq!(node.closed_reason(out), None);
}

#[test]
fn bloom_filter_messages_disconnect_without_discouragement_as_core_without_node_bloom() {
    for msg in [Message::FilterLoad, Message::FilterAdd, Message::FilterClear] {
        let mut node = relaying_node();
        // Before verack Core ignores it, like anything else.
        let early = node.connect_inbound("10.0.0.20:1");
        node.receive(early, &TestNode::peer_version(20));
        node.receive(early, &msg);
        assert_eq!(node.closed_reason(early), None, "{msg:?} before verack");
        let conn = node.ready_inbound("10.0.0.21:1");
        node.receive(conn, &msg);
        assert_eq!(node.closed_reason(conn), Some(DisconnectReason::ServiceNotOffered), "{msg:?}");
        assert_eq!(node.metrics().discouraged, 0);
    }
    // A real filterload payload (a 10-byte filter) too, and from a noban peer (Core exempts no one).
    let mut node = relaying_node();
    let conn = node.ready_inbound("10.0.0.22:1");
    let entity = node.peer(conn).unwrap();
    node.world.get_mut::<crate::components::Permissions>(entity).unwrap().noban = true;
    let mut payload = vec![10];
    payload.extend_from_slice(&[0xff; 10]);
    payload.extend_from_slice(&[5, 0, 0, 0, 1, 2, 3, 4, 0]);
    node.receive_payload(conn, crate::wire::Command::FilterLoad, &payload);
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::ServiceNotOffered));
}
