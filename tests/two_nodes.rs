//! Two oni nodes in one process talk over real loopback TCP: handshake, pings, disconnect, redial.

mod common;

use common::{regtest_config, regtest_node, wait_until};
use oni::node::{Node, NodeHandle};
use oni_systems::components::{Direction, Disconnect, PeerState, Stats};
use oni_systems::resources::{DisconnectReason, Metrics};
use std::time::Duration;

/// (state, direction, ping rtt) of every peer.
fn peers(node: &NodeHandle) -> Vec<(PeerState, Direction, Option<u64>)> {
    node.with_world(|w| {
        let mut q = w.query::<(&PeerState, &Direction, &Stats)>();
        q.iter(w).map(|(s, d, st)| (*s, *d, st.ping_rtt_ms)).collect()
    })
    .unwrap()
}

fn metrics(node: &NodeHandle) -> Metrics {
    node.with_world(|w| w.resource::<Metrics>().clone()).unwrap()
}

fn ready_with_ping(node: &NodeHandle) -> bool {
    let p = peers(node);
    p.len() == 1 && p[0].0 == PeerState::Ready && p[0].2.is_some()
}

#[test]
fn two_nodes_handshake_and_ping_over_loopback() {
    let a = regtest_node(true);
    let b = regtest_node(false);
    let a_addr = a.local_addr().unwrap();
    assert_ne!(a_addr.port(), 0, "the real bound port is reported");
    b.connect(a_addr, Direction::Manual).unwrap();

    let both = wait_until(Duration::from_secs(10), || ready_with_ping(&a) && ready_with_ping(&b));
    assert!(both, "a: {:?}, b: {:?}", peers(&a), peers(&b));
    assert_eq!(peers(&a)[0].1, Direction::Inbound);
    assert_eq!(peers(&b)[0].1, Direction::Manual);
    for node in [&a, &b] {
        let m = metrics(node);
        assert_eq!(m.handshakes, 1);
        assert!(m.ping_rtt_ms.count >= 1);
        assert_eq!(m.peers_ready, 1);
    }

    // B stops: A sees the socket end and counts it as the peer closing.
    b.shutdown();
    assert!(!b.is_running());
    let gone = wait_until(Duration::from_secs(5), || peers(&a).is_empty());
    assert!(gone, "a still has {:?}", peers(&a));
    assert_eq!(metrics(&a).disconnects_for(DisconnectReason::PeerClosed), 1);
    a.shutdown();
    assert!(a.with_world(|_| ()).is_err(), "a stopped node answers no queries");
}

#[test]
fn manual_peer_is_redialed_after_a_disconnect() {
    let a = regtest_node(true);
    let mut cfg = regtest_config(false);
    cfg.manual_peers = vec![a.local_addr().unwrap()];
    cfg.manual_redial_ms = 300;
    let b = Node::start(cfg).unwrap();
    assert!(wait_until(Duration::from_secs(10), || metrics(&a).handshakes == 1 && metrics(&b).handshakes == 1));

    // A drops B (as a system would, by marking it); B must dial again and complete a new handshake.
    a.with_world(|w| {
        let mut q = w.query_filtered::<bevy_ecs::entity::Entity, bevy_ecs::query::With<PeerState>>();
        let peers: Vec<_> = q.iter(w).collect();
        for e in peers {
            w.entity_mut(e).insert(Disconnect { reason: DisconnectReason::Evicted });
        }
    })
    .unwrap();
    let redialed = wait_until(Duration::from_secs(10), || metrics(&a).handshakes == 2 && metrics(&b).handshakes == 2);
    assert!(redialed, "a: {:?} b: {:?}", metrics(&a).handshakes, metrics(&b).handshakes);
    assert_eq!(metrics(&a).disconnects_for(DisconnectReason::Evicted), 1);
    assert_eq!(metrics(&b).disconnects_for(DisconnectReason::PeerClosed), 1);
    assert!(wait_until(Duration::from_secs(5), || ready_with_ping(&a) && ready_with_ping(&b)));
    b.shutdown();
    a.shutdown();
}

#[test]
fn a_refused_dial_is_reported_as_connect_failed() {
    // A port that was free a moment ago: nothing listens there any more.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let node = regtest_node(false);
    node.connect(closed_port, Direction::Manual).unwrap();
    let failed =
        wait_until(Duration::from_secs(5), || metrics(&node).disconnects_for(DisconnectReason::ConnectFailed) == 1);
    assert!(failed);
    assert!(peers(&node).is_empty());
    node.shutdown();
}

#[test]
fn a_dial_that_hangs_fails_at_the_connect_timeout() {
    // A listener that never accepts, its queue already full: further SYNs go unanswered.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_listener, _fillers, addr) = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let c = tokio::net::TcpSocket::new_v4().unwrap();
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), c.connect(addr)).await {
                fillers.push(s);
            }
        }
        (listener, fillers, addr)
    });
    let mut cfg = regtest_config(false);
    cfg.connect_timeout_ms = 400;
    let node = Node::start(cfg).unwrap();
    let started = std::time::Instant::now();
    node.connect(addr, Direction::Manual).unwrap();
    assert!(wait_until(Duration::from_millis(200), || peers(&node).first().map(|p| p.0) == Some(PeerState::Connecting)));
    let failed =
        wait_until(Duration::from_secs(5), || metrics(&node).disconnects_for(DisconnectReason::ConnectFailed) == 1);
    assert!(failed, "the dial never failed");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "failed before the timeout: {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    node.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_node_starts_queries_and_stops_from_inside_an_async_runtime() {
    let a = regtest_node(true);
    let b = regtest_node(false);
    b.connect(a.local_addr().unwrap(), Direction::Manual).unwrap();
    let mut ready = false;
    for _ in 0..500 {
        let handshakes = a.with_world_async(|w| w.resource::<Metrics>().handshakes).await.unwrap();
        if handshakes == 1 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "no handshake within 10 s");
    tokio::task::block_in_place(|| {
        b.shutdown();
        a.shutdown();
    });
    assert!(a.with_world_async(|_| ()).await.is_err());
}

#[test]
fn a_stopped_node_can_listen_on_the_same_port_again_at_once() {
    let a = regtest_node(true);
    let addr = a.local_addr().unwrap();
    let b = regtest_node(false);
    b.connect(addr, Direction::Manual).unwrap();
    assert!(wait_until(Duration::from_secs(10), || metrics(&a).handshakes == 1));
    // A closes first, so its side of the connection lingers in TIME_WAIT on `addr`'s port.
    a.shutdown();
    let mut cfg = regtest_config(true);
    cfg.listen = Some(addr);
    let again = Node::start(cfg).unwrap_or_else(|e| panic!("restart on {addr}: {e}"));
    assert_eq!(again.local_addr(), Some(addr));
    again.shutdown();
    b.shutdown();
}
