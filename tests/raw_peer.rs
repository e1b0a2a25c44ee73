//! A raw TCP client against a node: refused headers close the socket at once (before any payload
//! is allocated), the node keeps serving others, and a full receive buffer pauses the reader.

mod common;

use common::{regtest_config, regtest_node, wait_until};
use oni::node::{Node, NodeHandle};
use oni_systems::harness::TestNode;
use oni_systems::resources::{DisconnectReason, Metrics};
use oni_systems::wire::{Command, FrameHeader, HeaderError, Network, HEADER_LEN};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn metrics(node: &NodeHandle) -> Metrics {
    node.with_world(|w| w.resource::<Metrics>().clone()).unwrap()
}

fn connect(node: &NodeHandle) -> TcpStream {
    let s = TcpStream::connect(node.local_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s
}

/// Reads until EOF or reset; fails if the socket is still open after the read timeout.
fn assert_closed_promptly(mut s: TcpStream) {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("socket still open after {:?}", start.elapsed())
            }
            Err(_) => break, // reset: closed too
        }
    }
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// A peer that sends a version gets ours back: the node is serving.
fn assert_serves_a_new_peer(node: &NodeHandle) {
    let mut s = connect(node);
    let mut frame = Vec::new();
    TestNode::peer_version(99).encode_frame(Network::Regtest, &mut frame);
    s.write_all(&frame).unwrap();
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).unwrap();
    let h = FrameHeader::parse(&head, Network::Regtest).unwrap();
    assert_eq!(h.command, Command::Version);
}

#[test]
fn wrong_magic_closes_the_socket_after_four_bytes() {
    let node = regtest_node(true);
    let mut s = connect(&node);
    // Mainnet magic on a regtest node, and nothing more: no full header ever arrives.
    s.write_all(&Network::Main.magic()).unwrap();
    assert_closed_promptly(s);
    assert!(wait_until(Duration::from_secs(2), || metrics(&node).disconnects_for(DisconnectReason::BadMagic) == 1));
    assert_eq!(metrics(&node).header_errors[HeaderError::BadMagic as usize], 1);
    assert_serves_a_new_peer(&node);
    node.shutdown();
}

#[test]
fn length_over_the_maximum_closes_the_socket_and_the_node_keeps_serving() {
    let node = regtest_node(true);
    let mut s = connect(&node);
    let mut head = [0u8; HEADER_LEN];
    FrameHeader::write(Network::Regtest, Command::Block, 4_000_001, [0; 4], &mut head);
    s.write_all(&head).unwrap();
    assert_closed_promptly(s);
    assert!(wait_until(Duration::from_secs(2), || metrics(&node).disconnects_for(DisconnectReason::Oversized) == 1));
    assert_eq!(metrics(&node).header_errors[HeaderError::Oversized as usize], 1);
    assert_serves_a_new_peer(&node);
    node.shutdown();
}

#[test]
fn a_full_receive_buffer_pauses_the_reader_and_every_frame_still_arrives() {
    let mut cfg = regtest_config(true);
    cfg.config.limits.recv_buffer_bytes_max = 20_000;
    cfg.config.limits.decode_msgs_per_tick = 4;
    let node = Node::start(cfg).unwrap();
    let mut s = connect(&node);
    // Unknown well-formed commands: ignored and counted, never scored, so the peer stays.
    const FRAMES: u64 = 2_000;
    let payload = vec![0u8; 1_000];
    let mut head = [0u8; HEADER_LEN];
    let unknown = Command::from_name_bytes(b"oniflood");
    FrameHeader::write(
        Network::Regtest,
        unknown,
        payload.len() as u32,
        oni_systems::wire::checksum(&payload),
        &mut head,
    );
    let mut burst = Vec::new();
    for _ in 0..FRAMES {
        burst.extend_from_slice(&head);
        burst.extend_from_slice(&payload);
    }
    s.write_all(&burst).unwrap();
    let all = wait_until(Duration::from_secs(20), || metrics(&node).unknown_commands == FRAMES);
    let m = metrics(&node);
    assert!(all, "only {} of {FRAMES} frames decoded", m.unknown_commands);
    assert!(m.recv_pauses >= 1, "the reader was never paused");
    node.shutdown();
}
