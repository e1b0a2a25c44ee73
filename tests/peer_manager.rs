//! The Peer Manager on real sockets and a real LMDB store: bans survive restarts and kill -9, the
//! inbound limit holds under a crowd with eviction by Core's rule, and learned addresses are dialed
//! after a restart.

mod common;

use common::{regtest_config, wait_until, OniProcess};
use oni::node::{Node, NodeHandle};
use oni_systems::components::{Direction, PeerState};
use oni_systems::harness::TestNode;
use oni_systems::resources::{
    AddrBook, BanEntry, BanList, BanReason, Clock, DisconnectReason, Metrics, PeerAddr, Subnet,
};
use oni_systems::wire::{Message, Network};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn frame(msg: &Message) -> Vec<u8> {
    let mut f = Vec::new();
    msg.encode_frame(Network::Regtest, &mut f);
    f
}

/// True when the node closes `s` without sending a byte within `within`.
fn closed_without_a_word(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Reads whatever the node says until it closes the socket (true) or `within` passes (false).
fn closed_after_talking(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
    false
}

fn node_at(datadir: &std::path::Path, listen: Option<SocketAddr>) -> NodeHandle {
    let mut cfg = regtest_config(true);
    cfg.datadir = Some(datadir.to_path_buf());
    if let Some(l) = listen {
        cfg.listen = Some(l);
    }
    Node::start(cfg).unwrap()
}

fn metrics(node: &NodeHandle) -> Metrics {
    node.with_world(|w| w.resource::<Metrics>().clone()).unwrap()
}

#[test]
fn a_ban_survives_a_restart_and_the_peer_is_refused_at_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_at(tmp.path(), None);
    node.with_world(|w| {
        let now_s = w.resource::<Clock>().unix_s();
        let entry = BanEntry { created_s: now_s, until_s: now_s + 3600, reason: BanReason::Manual };
        w.resource_mut::<BanList>().ban("127.0.0.0/8".parse().unwrap(), entry);
    })
    .unwrap();
    node.shutdown();
    let node = node_at(tmp.path(), None);
    let bans: Vec<Subnet> = node.with_world(|w| w.resource::<BanList>().bans().map(|(s, _)| *s).collect()).unwrap();
    assert_eq!(bans, vec!["127.0.0.0/8".parse::<Subnet>().unwrap()]);
    let mut s = TcpStream::connect(node.local_addr().unwrap()).unwrap();
    s.write_all(&frame(&TestNode::peer_version(1))).unwrap();
    assert!(closed_without_a_word(&mut s, Duration::from_secs(2)), "a banned peer gets no version");
    let refused = wait_until(Duration::from_secs(5), || metrics(&node).disconnects_for(DisconnectReason::Banned) == 1);
    assert!(refused, "{:?}", metrics(&node).disconnects);
    node.shutdown();
}

#[test]
fn two_hundred_inbound_against_max_32_stay_at_32_and_long_lived_peers_survive() {
    let mut cfg = regtest_config(true);
    cfg.config.limits.max_inbound = 32;
    let node = Node::start(cfg).unwrap();
    let addr = node.local_addr().unwrap();
    // Beyond the slots and a little room the bridge closes a connection at accept: writing to it
    // may then fail, which is that peer's refusal.
    let handshake = |nonce: u64| {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&frame(&TestNode::peer_version(nonce)));
        let _ = s.write_all(&frame(&Message::Verack));
        s
    };
    // 16 long-lived peers first; they answer nothing else but stay connected.
    let mut honest: Vec<TcpStream> = (0..16).map(|i| handshake(1000 + i)).collect();
    assert!(wait_until(Duration::from_secs(5), || {
        node.with_world(|w| w.query::<&PeerState>().iter(w).filter(|s| **s == PeerState::Ready).count()).unwrap() == 16
    }));
    std::thread::sleep(Duration::from_millis(200));
    let crowd: Vec<TcpStream> = (0..200).map(|i| handshake(5000 + i)).collect();
    assert!(wait_until(Duration::from_secs(10), || {
        let m = metrics(&node);
        m.disconnects_for(DisconnectReason::Evicted)
            + m.disconnects_for(DisconnectReason::NoSlot)
            + m.inbound_refused_at_accept
            >= 200 - 16
    }));
    let inbound =
        node.with_world(|w| w.query::<&Direction>().iter(w).filter(|d| **d == Direction::Inbound).count()).unwrap();
    assert_eq!(inbound, 32);
    for s in &mut honest {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 4096];
        let open = match s.read(&mut buf) {
            Ok(n) => n > 0,
            Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
        assert!(open, "an early, long-lived peer was evicted");
    }
    drop(crowd);
    node.shutdown();
}

#[test]
fn addresses_learned_before_a_restart_are_dialed_after_it() {
    let target = common::regtest_node(true);
    let target_addr = target.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = regtest_config(false);
    cfg.datadir = Some(tmp.path().to_path_buf());
    cfg.policy.auto_outbound = false;
    let node = Node::start(cfg.clone()).unwrap();
    node.with_world(move |w| {
        let now_s = w.resource::<Clock>().unix_s();
        w.resource_mut::<AddrBook>().add(PeerAddr::from_socket(target_addr), 9, now_s - 60, [1, 2, 3, 0, 0], now_s);
    })
    .unwrap();
    node.shutdown();
    cfg.policy.auto_outbound = true;
    let node = Node::start(cfg).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || metrics(&target).connections[Direction::Inbound as usize] >= 1),
        "the restarted node dialed the address it had learned"
    );
    node.shutdown();
    target.shutdown();
}

#[test]
fn kill_9_right_after_a_ban_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_string();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let args = ["node", "--network", "regtest", "--datadir", &dir, "--listen", &listen, "--discourage-local"];
    let mut p = OniProcess::spawn(&args);
    assert!(p.wait_for_line("listening on", Duration::from_secs(10)).is_some());
    // One address misbehaves, is discouraged, comes back and misbehaves again: banned. The offence
    // is one Core discourages for at once: a sendcmpct flag of 2 after its version.
    let spam = |nonce| {
        let mut bytes = frame(&TestNode::peer_version(nonce));
        bytes.extend(frame(&Message::SendCmpct { announce: 2, version: 2 }));
        bytes
    };
    let mut a = TcpStream::connect(&listen).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    a.write_all(&spam(1)).unwrap();
    assert!(closed_after_talking(&mut a, Duration::from_secs(5)));
    let mut b = TcpStream::connect(&listen).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    b.write_all(&spam(2)).unwrap();
    assert!(closed_after_talking(&mut b, Duration::from_secs(5)));
    // The close came after the commit: kill at once.
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let start = Instant::now();
    let mut p = OniProcess::spawn(&args);
    assert!(p.wait_for_line("listening on", Duration::from_secs(10)).is_some(), "the store opened cleanly");
    assert!(p.wait_for_line("bans loaded", Duration::from_secs(1)).is_some(), "{:?}", p.seen);
    let mut c = TcpStream::connect(&listen).unwrap();
    c.write_all(&frame(&TestNode::peer_version(3))).unwrap();
    assert!(closed_without_a_word(&mut c, Duration::from_secs(5)), "still banned after kill -9");
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_ban_whose_commit_fails_is_kept_retried_and_on_disk_after_a_restart() {
    use oni::node::persist::DurableStore;
    let tmp = tempfile::tempdir().unwrap();
    let node = node_at(tmp.path(), None);
    // The store refuses the next two ban commits (a full disk, say).
    node.with_world(|w| w.resource::<DurableStore>().0.inject_ban_commit_failures(2)).unwrap();
    node.with_world(|w| {
        let now_s = w.resource::<Clock>().unix_s();
        let entry = BanEntry { created_s: now_s, until_s: now_s + 3600, reason: BanReason::Escalated };
        w.resource_mut::<BanList>().ban("192.0.2.0/24".parse().unwrap(), entry);
    })
    .unwrap();
    // Retried after each tick until it lands; the failures are counted.
    assert!(wait_until(Duration::from_secs(5), || metrics(&node).ban_commit_failures == 2));
    assert!(wait_until(Duration::from_secs(5), || {
        node.with_world(|w| w.resource::<BanList>().pending.is_empty()).unwrap()
    }));
    node.shutdown();
    let node = node_at(tmp.path(), None);
    let bans: Vec<Subnet> = node.with_world(|w| w.resource::<BanList>().bans().map(|(s, _)| *s).collect()).unwrap();
    assert_eq!(bans, vec!["192.0.2.0/24".parse::<Subnet>().unwrap()], "the ban survived its failed commits");
    node.shutdown();
}
