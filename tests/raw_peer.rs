//! A raw TCP client against a node: refused headers close the socket at once (before any payload
//! is allocated), the node keeps serving others, and a full receive buffer pauses the reader.
//! Tests whose peer opens with something other than `version` run the node v1-only: with v2 on,
//! those bytes start a BIP324 handshake (tests/v2_transport_core.rs and the v2 unit tests cover
//! that path).

mod common;

use common::{regtest_config, v1_config, wait_until};
use oni::node::{Node, NodeHandle};
use oni_systems::components::{Direction, SendQueue};
use oni_systems::harness::TestNode;
use oni_systems::resources::{DisconnectReason, Metrics};
use oni_systems::wire::{Command, FrameHeader, FrameSplitter, HeaderError, Message, Network, HEADER_LEN};
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
    let node = Node::start(v1_config(true)).unwrap();
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
    let node = Node::start(v1_config(true)).unwrap();
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
    let mut cfg = v1_config(true);
    cfg.config.limits.recv_buffer_bytes_max = 20_000;
    cfg.config.limits.decode_msgs_per_tick = 4;
    let node = Node::start(cfg).unwrap();
    let mut s = connect(&node);
    const FRAMES: u64 = 2_000;
    flood(&mut s, FRAMES, 1_000);
    let all = wait_until(Duration::from_secs(20), || metrics(&node).unknown_commands == FRAMES);
    let m = metrics(&node);
    assert!(all, "only {} of {FRAMES} frames decoded", m.unknown_commands);
    assert!(m.recv_pauses >= 1, "the reader was never paused");
    node.shutdown();
}

#[test]
fn thousands_of_pings_get_thousands_of_pongs_and_the_writer_window_drains() {
    const PINGS: u64 = 5_000;
    let mut cfg = regtest_config(true);
    // A small window: the world must wait for `Written` credit many times over.
    cfg.config.limits.writer_window_bytes = 4 * 1024;
    let node = Node::start(cfg).unwrap();
    let mut s = connect(&node);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    TestNode::peer_version(99).encode_frame(Network::Regtest, &mut out);
    Message::Verack.encode_frame(Network::Regtest, &mut out);
    for i in 0..PINGS {
        Message::Ping(i).encode_frame(Network::Regtest, &mut out);
    }
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&out).unwrap());

    let mut splitter = FrameSplitter::new(Network::Regtest);
    let mut pongs = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while (pongs.len() as u64) < PINGS {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} pongs", pongs.len());
        let mut at = 0;
        while at < n {
            let (used, frame) = splitter.push(&buf[at..n]);
            at += used;
            if let Some(f) = frame.unwrap() {
                if let Ok(Some(Message::Pong(nonce))) = Message::decode(f.header.command, &f.payload) {
                    pongs.push(nonce);
                }
            }
        }
    }
    writer.join().unwrap();
    assert_eq!(pongs, (0..PINGS).collect::<Vec<_>>(), "every ping answered, in order");
    let drained = wait_until(Duration::from_secs(2), || {
        node.with_world(|w| {
            let mut q = w.query::<&SendQueue>();
            q.iter(w).all(|sq| sq.is_empty() && sq.in_writer_bytes == 0)
        })
        .unwrap()
    });
    assert!(drained, "every byte handed to the writer was reported written");
    node.shutdown();
}

/// Writes `n` unknown-command frames of `size` bytes (ignored and counted, never scored).
fn flood(s: &mut TcpStream, n: u64, size: usize) {
    let payload = vec![0u8; size];
    let mut head = [0u8; HEADER_LEN];
    let unknown = Command::from_name_bytes(b"oniflood");
    FrameHeader::write(Network::Regtest, unknown, size as u32, oni_systems::wire::checksum(&payload), &mut head);
    let mut burst = Vec::new();
    for _ in 0..n {
        burst.extend_from_slice(&head);
        burst.extend_from_slice(&payload);
    }
    s.write_all(&burst).unwrap();
}

#[test]
fn a_tiny_event_channel_and_tick_batch_still_deliver_every_frame() {
    const FRAMES: u64 = 3_000;
    let mut cfg = v1_config(true);
    cfg.event_channel_cap = 4;
    cfg.events_per_tick_max = 8;
    let node = Node::start(cfg).unwrap();
    let ticks_before = metrics(&node).ticks;
    let mut s = connect(&node);
    flood(&mut s, FRAMES, 10);
    assert!(wait_until(Duration::from_secs(20), || metrics(&node).unknown_commands == FRAMES));
    let ticks = metrics(&node).ticks - ticks_before;
    assert!(ticks >= FRAMES / 8, "{ticks} ticks moved {FRAMES} frames: more than 8 events in one tick");
    node.shutdown();
}

#[test]
fn timeouts_fire_on_the_timer_with_no_traffic() {
    let mut cfg = regtest_config(true);
    cfg.config.limits.handshake_timeout_ms = 300;
    let node = Node::start(cfg).unwrap();
    // Connects and never sends a version: only the world's timer can end it.
    let mut s = connect(&node);
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "closed after {took:?}");
    assert!(wait_until(Duration::from_secs(1), || {
        metrics(&node).disconnects_for(DisconnectReason::HandshakeTimeout) == 1
    }));
    node.shutdown();
}

#[test]
fn inbound_over_max_inbound_is_refused() {
    let mut cfg = regtest_config(true);
    cfg.config.limits.max_inbound = 1;
    let node = Node::start(cfg).unwrap();
    let first = connect(&node);
    assert!(wait_until(Duration::from_secs(2), || metrics(&node).peers[Direction::Inbound as usize] == 1));
    let second = connect(&node);
    assert_closed_promptly(second);
    assert!(wait_until(Duration::from_secs(1), || metrics(&node).disconnects_for(DisconnectReason::NoSlot) == 1));
    assert_eq!(metrics(&node).peers[Direction::Inbound as usize], 1, "the first inbound stays");
    drop(first);
    node.shutdown();
}
