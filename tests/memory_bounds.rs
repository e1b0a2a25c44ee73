//! Byte bounds on what a peer can make the node hold, over real sockets: a peer floods 4 MB frames
//! while the world is stalled, or before its handshake is done, and can get no more than its
//! receive limit into the node (the rest waits in the kernel's socket buffers); 4 MB frames of a
//! command nobody speaks are skipped as they arrive and never held at all.

mod common;

use common::raw::RawPeer;
use oni_systems::harness::TestNode;
use oni_systems::wire::{Command, FrameHeader, Network, HEADER_LEN};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A 4 MB `block` frame (the largest a peer may send, and one the node must hold to check it).
fn junk_frame() -> Vec<u8> {
    let len = 4_000_000u32;
    let mut frame = vec![0u8; HEADER_LEN + len as usize];
    let mut head = [0u8; HEADER_LEN];
    FrameHeader::write(Network::Regtest, Command::Block, len, [0; 4], &mut head);
    frame[..HEADER_LEN].copy_from_slice(&head);
    frame
}

/// Writes 4 MB frames on `stream` for `for_how_long`; returns the bytes the socket took.
fn flood(mut stream: TcpStream, for_how_long: Duration) -> usize {
    let frame = junk_frame();
    let written = Arc::new(AtomicUsize::new(0));
    stream.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
    let counter = written.clone();
    let end = Instant::now() + for_how_long;
    while Instant::now() < end {
        let mut rest = &frame[..];
        while !rest.is_empty() && Instant::now() < end {
            match stream.write(rest) {
                Ok(n) => {
                    counter.fetch_add(n, Ordering::Relaxed);
                    rest = &rest[n..];
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return written.load(Ordering::Relaxed),
            }
        }
    }
    written.load(Ordering::Relaxed)
}

/// What a reader with no bound would let through in the same time is hundreds of MB at loopback
/// speed; what the kernel's socket buffers take on top of the node's limit is a few MB, but the
/// receive side autotunes up to `tcp_rmem`'s maximum (32 MB on some machines): the slack is what
/// this machine's kernel allows (16 MB where it cannot be read).
fn kernel_slack() -> usize {
    let max_of =
        |path: &str| -> Option<usize> { std::fs::read_to_string(path).ok()?.split_whitespace().last()?.parse().ok() };
    match (max_of("/proc/sys/net/ipv4/tcp_rmem"), max_of("/proc/sys/net/ipv4/tcp_wmem")) {
        (Some(r), Some(w)) => r + w + (1 << 20),
        _ => 16 << 20,
    }
}

#[test]
fn a_stalled_world_holds_at_most_one_receive_limit_of_a_peers_frames() {
    let node = common::regtest_node(true);
    let addr: SocketAddr = node.local_addr().unwrap();
    let peer = RawPeer::handshake(addr, true);
    let stream = peer.stream().try_clone().unwrap();
    // Wait until the node has taken our verack: only then is the full receive limit in force.
    let ready = common::wait_until(Duration::from_secs(5), || {
        node.with_world(|w| w.resource::<oni_systems::resources::Metrics>().peers_ready).unwrap() == 1
    });
    assert!(ready);
    // The world thread is busy for 3 s (a closure on it); the peer floods meanwhile.
    let stall = {
        let node = node.clone();
        std::thread::spawn(move || node.with_world(|_| std::thread::sleep(Duration::from_secs(3))))
    };
    std::thread::sleep(Duration::from_millis(100));
    let written = flood(stream, Duration::from_millis(2_500));
    stall.join().unwrap().unwrap();
    // The limit is 1 MB, but a frame larger than it passes alone: one 4 MB frame.
    let limit = oni_systems::resources::Limits::default().recv_buffer_bytes_max.max(4_000_024);
    // The node's own count: what the peer's reader held beyond its small own share (the shared
    // inbound pool's peak, read at the first tick after the stall).
    std::thread::sleep(Duration::from_millis(300));
    let held =
        node.with_world(|w| w.resource::<oni_systems::resources::Metrics>().inbound_recv_pool_peak_bytes).unwrap();
    assert!(held as usize <= limit, "the node held {held} bytes of one peer's frames while its world was stalled");
    assert!(held > 0, "the flood reached the reader");
    // From the peer's side: the node's limit and the kernel's socket buffers, nothing more.
    assert!(written <= limit + kernel_slack(), "the node took {written} bytes while its world was stalled");
    assert!(written >= limit, "the node read its receive limit's worth ({written} bytes)");
    node.shutdown();
}

#[test]
fn inbound_peers_together_hold_no_more_than_the_shared_receive_pool() {
    let mut cfg = common::regtest_config(true);
    let pool = 10_000_000;
    cfg.inbound_recv_pool_bytes = pool;
    let node = oni::node::Node::start(cfg).unwrap();
    let addr: SocketAddr = node.local_addr().unwrap();
    let peers: Vec<RawPeer> = (0..6).map(|_| RawPeer::handshake(addr, true)).collect();
    let metrics = |node: &oni::node::NodeHandle| {
        node.with_world(|w| w.resource::<oni_systems::resources::Metrics>().clone()).unwrap()
    };
    assert!(common::wait_until(Duration::from_secs(5), || metrics(&node).peers_ready == 6));
    // The world stalls; six peers (30 MB of receive limits between them) flood 4 MB frames.
    let stall = {
        let node = node.clone();
        std::thread::spawn(move || node.with_world(|_| std::thread::sleep(Duration::from_secs(3))))
    };
    std::thread::sleep(Duration::from_millis(100));
    let floods: Vec<_> = peers
        .iter()
        .map(|p| {
            let stream = p.stream().try_clone().unwrap();
            std::thread::spawn(move || flood(stream, Duration::from_millis(2_500)))
        })
        .collect();
    let written: usize = floods.into_iter().map(|f| f.join().unwrap()).sum();
    stall.join().unwrap().unwrap();
    // The first tick after the stall samples the pool: the readers filled it, and no more.
    std::thread::sleep(Duration::from_millis(50));
    let m = metrics(&node);
    assert!(m.inbound_recv_pool_peak_bytes as usize <= pool, "peak {}", m.inbound_recv_pool_peak_bytes);
    assert!(
        m.inbound_recv_pool_peak_bytes as usize >= pool - 4_000_024,
        "the readers drew on the pool: peak {} of {pool}, {written} bytes written",
        m.inbound_recv_pool_peak_bytes
    );
    node.shutdown();
}

#[test]
fn a_peer_that_has_not_finished_its_handshake_cannot_make_the_node_hold_a_4_mb_frame() {
    let node = common::regtest_node(true);
    let addr: SocketAddr = node.local_addr().unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut version = Vec::new();
    TestNode::peer_version(0x5151).encode_frame(Network::Regtest, &mut version);
    stream.write_all(&version).unwrap();
    // No verack: the node's reader holds 256 KiB of this peer's frames at most, and the first 4 MB
    // frame's payload is never read while the handshake is pending.
    let written = flood(stream, Duration::from_millis(2_500));
    assert!(written <= kernel_slack(), "the node took {written} bytes from a peer that never sent verack");
    let seen =
        node.with_world(|w| w.resource::<oni_systems::resources::Metrics>().bytes_in.iter().sum::<u64>()).unwrap();
    assert!(seen < 1_000_000, "frames that reached the world: {seen} bytes");
    // Core's own handshake still completes at once with a fresh peer.
    let _honest = RawPeer::handshake(addr, true);
    node.shutdown();
}

#[test]
fn a_connect_flood_is_closed_at_accept_beyond_the_inbound_slots_and_a_little_room() {
    use std::io::Read;
    let mut cfg = common::regtest_config(true);
    cfg.config.limits.max_inbound = 4;
    let node = oni::node::Node::start(cfg).unwrap();
    let addr: SocketAddr = node.local_addr().unwrap();
    // The world is busy: nothing is admitted or refused by it meanwhile; the bridge alone decides.
    let stall = {
        let node = node.clone();
        std::thread::spawn(move || node.with_world(|_| std::thread::sleep(Duration::from_secs(2))))
    };
    std::thread::sleep(Duration::from_millis(100));
    let socks: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut closed_at_once = 0;
    for mut s in &socks {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        if matches!(s.read(&mut [0u8; 8]), Ok(0)) {
            closed_at_once += 1;
        }
    }
    let cap = 4 + oni::bridge::INBOUND_SOCKET_HEADROOM;
    assert_eq!(closed_at_once, 50 - cap, "sockets beyond {cap} are closed at accept");
    stall.join().unwrap().unwrap();
    let refused = common::wait_until(Duration::from_secs(5), || {
        node.with_world(|w| w.resource::<oni_systems::resources::Metrics>().inbound_refused_at_accept).unwrap()
            == (50 - cap) as u64
    });
    assert!(refused, "each refusal is counted");
    node.shutdown();
}

#[test]
fn unknown_command_payloads_are_skipped_as_they_arrive_and_counted_whole() {
    let node = common::regtest_node(true);
    let addr: SocketAddr = node.local_addr().unwrap();
    let peer = RawPeer::handshake(addr, true);
    let mut stream = peer.stream().try_clone().unwrap();
    let len = 4_000_000u32;
    let mut frame = vec![0u8; HEADER_LEN + len as usize];
    let mut head = [0u8; HEADER_LEN];
    FrameHeader::write(Network::Regtest, Command::Unknown, len, [0; 4], &mut head);
    head[4..16].copy_from_slice(b"junkjunkjunk");
    frame[..HEADER_LEN].copy_from_slice(&head);
    for _ in 0..25 {
        stream.write_all(&frame).unwrap();
    }
    // 100 MB went in: each frame is counted with its full size, none was kept.
    let counted = common::wait_until(Duration::from_secs(10), || {
        node.with_world(|w| w.resource::<oni_systems::resources::Metrics>().unknown_commands).unwrap() == 25
    });
    assert!(counted);
    let bytes = node
        .with_world(|w| w.resource::<oni_systems::resources::Metrics>().bytes_in[Command::Unknown as usize])
        .unwrap();
    assert_eq!(bytes, 25 * (HEADER_LEN as u64 + len as u64));
    node.shutdown();
}

/// Removal messages of despawned peers' components (what `RemovedComponents` readers see) last two
/// ticks: 300 connections opened and closed leave none behind once the node has ticked idle. The
/// world loop did not clear them, and every component of every peer ever torn down stayed in the
/// world (about 0.3 kB a connection: 160 MiB of RSS after 424,000 in the flood bench's churn row).
#[test]
fn torn_down_peers_leave_no_removal_messages_behind() {
    let node = common::regtest_node(true);
    let addr: SocketAddr = node.local_addr().unwrap();
    let removal_messages = |node: &oni::node::NodeHandle| {
        node.with_world(|w| w.removed_components().iter().map(|(_, m)| m.len()).sum::<usize>()).unwrap()
    };
    for i in 0..300 {
        drop(TcpStream::connect(addr).unwrap());
        // Sockets closed at our end still count against the node's inbound cap until it sees
        // them end: pace the connects so nearly all become peers.
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let counts = || {
        node.with_world(|w| {
            let m = w.resource::<oni_systems::resources::Metrics>();
            (m.connections.iter().sum::<u64>(), m.disconnects.iter().sum::<u64>(), m.inbound_refused_at_accept)
        })
        .unwrap()
    };
    let gone = common::wait_until(Duration::from_secs(10), || {
        let (_, disconnects, refused) = counts();
        disconnects + refused >= 300
    });
    let (connections, disconnects, refused) = counts();
    assert!(gone && connections == disconnects, "every peer torn down: {connections} {disconnects} {refused}");
    assert!(disconnects >= 200, "most connects became peers: {disconnects}");
    // Idle ticks (every 100 ms) age the last removals out.
    std::thread::sleep(Duration::from_millis(600));
    let left = removal_messages(&node);
    assert!(left < 50, "{left} removal messages kept after 300 peers were torn down");
    node.shutdown();
}
