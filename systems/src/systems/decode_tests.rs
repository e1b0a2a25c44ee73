//! What decode does with frames Core drops or reads leniently (CONFORMANCE.md): dropped and
//! counted, never a disconnect — and the one list violation Core punishes.

use crate::components::{PeerState, Score};
use crate::harness::TestNode;
use crate::resources::{DisconnectReason, Misbehavior};
use crate::wire::reader::write_compact_size;
use crate::wire::{Command, DecodeError, Locator, Message, Network, HEADER_LEN};
use bitcoin::hashes::Hash;

fn decode_errors(node: &TestNode, e: DecodeError) -> u64 {
    node.metrics().decode_errors[e as usize]
}

#[test]
fn frames_with_a_bad_checksum_are_dropped_and_counted_however_many_as_core_drops_them() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.1.1:1");
    for i in 0..50u64 {
        let mut frame = Vec::new();
        Message::Ping(i).encode_frame(Network::Regtest, &mut frame);
        frame[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&[0; 4]);
        node.receive_bytes(conn, &frame);
    }
    assert_eq!(node.closed_reason(conn), None, "ten used to discourage the peer");
    assert!(node.sent_to(conn).is_empty(), "no ping with a bad checksum is answered");
    assert_eq!(decode_errors(&node, DecodeError::BadChecksum), 50);
    let score = node.get::<Score>(conn).unwrap();
    assert_eq!((score.points, score.events.as_slice()), (0, &[(Misbehavior::BadChecksum, 50)][..]));
    node.receive(conn, &Message::Ping(7));
    assert_eq!(node.sent_to(conn), vec![Message::Pong(7)], "the connection goes on");
}

#[test]
fn malformed_payloads_are_dropped_and_counted_never_a_disconnect() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.1.2:1");
    for _ in 0..20 {
        node.receive_payload(conn, Command::Ping, &[1, 2, 3]);
        node.receive_payload(conn, Command::FeeFilter, &[9]);
        // An inv count in three bytes that fits in one.
        node.receive_payload(conn, Command::Inv, &[0xfd, 1, 0]);
        // A transaction whose witness flag is not 1.
        node.receive_payload(conn, Command::Tx, &[2, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0]);
    }
    assert_eq!(node.closed_reason(conn), None);
    assert!(node.sent_to(conn).is_empty());
    assert_eq!(decode_errors(&node, DecodeError::Truncated), 40);
    assert_eq!(decode_errors(&node, DecodeError::NonCanonicalCompactSize), 20);
    assert_eq!(decode_errors(&node, DecodeError::InvalidValue), 20);
    assert_eq!(node.get::<Score>(conn).unwrap().points, 0);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
}

#[test]
fn bytes_after_a_message_are_ignored_and_the_message_taken_as_core_takes_it() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.1.3:1");
    let genesis = node.world.resource::<crate::chain::ChainParams>().genesis.block_hash();
    let mut payload = Vec::new();
    Message::GetHeaders(Locator { version: 70016, hashes: vec![genesis], stop: bitcoin::BlockHash::all_zeros() })
        .encode_payload(&mut payload);
    payload.extend_from_slice(b"future field");
    node.receive_payload(conn, Command::GetHeaders, &payload);
    let sent = node.sent_to(conn);
    assert!(sent.iter().any(|m| matches!(m, Message::Headers(_))), "answered: {sent:?}");
    assert_eq!(decode_errors(&node, DecodeError::TrailingBytes), 1, "counted");
    assert!(node.get::<Score>(conn).unwrap().events.is_empty(), "no violation");
}

#[test]
fn a_count_the_bytes_cannot_hold_is_a_short_message_dropped_not_a_list_over_its_limit() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.1.4:1");
    // Claims 60,000 entries, holds one: Core's read runs out and drops it.
    let mut payload = Vec::new();
    write_compact_size(&mut payload, 60_000);
    payload.extend_from_slice(&[1, 0, 0, 0]);
    payload.extend_from_slice(&[7; 32]);
    node.receive_payload(conn, Command::Inv, &payload);
    assert_eq!(node.closed_reason(conn), None);
    assert_eq!(decode_errors(&node, DecodeError::Truncated), 1);
    assert_eq!(decode_errors(&node, DecodeError::TooManyEntries), 0);
}

#[test]
fn an_addrv2_really_over_1000_entries_disconnects_at_once_as_cores_misbehaving() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.1.5:1");
    let mut payload = Vec::new();
    write_compact_size(&mut payload, 1_001);
    for i in 0..1_001u32 {
        payload.extend_from_slice(&i.to_le_bytes()); // time
        payload.push(1); // services (CompactSize)
        payload.extend_from_slice(&[1, 4, 1, 2, (i >> 8) as u8, i as u8]); // IPv4
        payload.extend_from_slice(&8333u16.to_be_bytes());
    }
    node.receive_payload(conn, Command::AddrV2, &payload);
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().misbehavior[Misbehavior::TooManyEntries as usize], 1);
}

#[test]
fn a_frame_with_a_malformed_command_name_is_skipped_and_counted_as_core_skips_it() {
    let mut node = TestNode::regtest();
    let conn = node.ready_inbound("10.0.1.6:1");
    let mut bytes = Vec::new();
    Message::Ping(1).encode_frame(Network::Regtest, &mut bytes);
    bytes[4..16].copy_from_slice(b"pi\xffg\0\0\0\0\0\0\0\0");
    Message::Ping(2).encode_frame(Network::Regtest, &mut bytes);
    node.receive_bytes(conn, &bytes);
    assert_eq!(node.closed_reason(conn), None);
    assert_eq!(node.sent_to(conn), vec![Message::Pong(2)], "the next frame is read and answered");
    assert_eq!(node.metrics().header_errors[crate::wire::HeaderError::BadCommand as usize], 1);
}
