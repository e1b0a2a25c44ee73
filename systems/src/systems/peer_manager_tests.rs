//! The Peer Manager's systems together (admission, discipline, connections) on a world with no IO.

use crate::components::{Direction, PeerState, Permissions, PreferEvict, Score};
use crate::harness::TestNode;
use crate::resources::{
    AddrBook, BanEntry, BanList, BanReason, DisconnectReason, Limits, PeerAddr, PeerPolicy, Subnet,
};
use crate::wire::services::{NODE_NETWORK, NODE_WITNESS};
use crate::wire::Message;
use std::net::SocketAddr;

const GOOD: u64 = NODE_NETWORK | NODE_WITNESS;

/// One offence Core discourages for at once: a `sendcmpct` flag of 2, after the peer's version (a
/// second version is ignored, so this works at any stage of the handshake).
fn misbehave(node: &mut TestNode, conn: crate::components::ConnId) {
    node.receive(conn, &TestNode::peer_version(conn.0 + 1_000));
    node.receive(conn, &Message::SendCmpct { announce: 2, version: 2 });
}

#[test]
fn a_banned_address_is_refused_at_accept_before_any_handshake_work() {
    let mut node = TestNode::regtest();
    let now_s = 1_700_000_000;
    node.resource_mut::<BanList>().ban(
        "10.9.0.0/16".parse().unwrap(),
        BanEntry { created_s: now_s, until_s: now_s + 3600, reason: BanReason::Manual },
    );
    let conn = node.connect_inbound("10.9.8.7:1234");
    assert_eq!(node.closed_reason(conn), Some(DisconnectReason::Banned));
    node.receive(conn, &TestNode::peer_version(1));
    assert!(node.sent_to(conn).is_empty(), "no version was sent to a banned peer");
    let other = node.connect_inbound("10.10.0.1:1234");
    assert_eq!(node.closed_reason(other), None);
}

#[test]
fn misbehavior_discourages_and_a_fresh_offence_while_discouraged_bans() {
    let mut node = TestNode::regtest();
    let a = node.connect_inbound("10.1.1.1:1000");
    let b = node.connect_inbound("10.1.1.1:1001");
    node.elapse(10);
    misbehave(&mut node, a);
    assert_eq!(node.closed_reason(a), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().discouraged, 1);
    // Slots are free: a discouraged address still gets in (as Core), marked to be evicted first.
    node.elapse(10);
    let c = node.connect_inbound("10.1.1.1:1002");
    assert_eq!(node.closed_reason(c), None);
    assert!(node.get::<PreferEvict>(c).is_some());
    // b connected before the discouragement: its offence is the same episode (two connections
    // racing, or hosts behind one address), not a fresh one — no ban.
    misbehave(&mut node, b);
    assert_eq!(node.metrics().bans_escalated, 0);
    assert_eq!(node.world.resource::<BanList>().bans().count(), 0);
    // c came after it: a fresh offence while discouraged bans the address.
    misbehave(&mut node, c);
    assert_eq!(node.metrics().bans_escalated, 1);
    let bans: Vec<_> = node.world.resource::<BanList>().bans().map(|(s, e)| (*s, *e)).collect();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].0, Subnet::host("10.1.1.1".parse().unwrap()));
    assert_eq!(bans[0].1.until_s - bans[0].1.created_s, 24 * 3600, "default ban is 24 h");
}

#[test]
fn a_discouraged_address_is_refused_when_the_slots_are_nearly_full() {
    let mut node = TestNode::new(
        {
            let mut c = crate::resources::Config::new(crate::wire::Network::Regtest);
            c.limits.max_inbound = 3;
            c
        },
        3,
    );
    let a = node.connect_inbound("10.1.1.1:1000");
    misbehave(&mut node, a);
    let _x = node.connect_inbound("10.2.0.1:1");
    let _y = node.connect_inbound("10.3.0.1:1");
    // Two of three slots taken: the discouraged address is refused, a clean one admitted.
    node.elapse(10);
    let d = node.connect_inbound("10.1.1.1:1001");
    assert_eq!(node.closed_reason(d), Some(DisconnectReason::Discouraged));
    let clean = node.connect_inbound("10.4.0.1:1");
    assert_eq!(node.closed_reason(clean), None);
}

#[test]
fn loopback_peers_are_disconnected_but_not_discouraged_unless_asked() {
    let mut node = TestNode::regtest();
    let a = node.connect_inbound("127.0.0.1:1000");
    misbehave(&mut node, a);
    assert_eq!(node.closed_reason(a), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().discouraged, 0);
    let again = node.connect_inbound("127.0.0.1:1001");
    assert_eq!(node.closed_reason(again), None);
    assert!(node.get::<PreferEvict>(again).is_none());

    node.resource_mut::<PeerPolicy>().discourage_local = true;
    misbehave(&mut node, again);
    assert_eq!(node.metrics().discouraged, 1);
    let third = node.connect_inbound("127.0.0.1:1002");
    assert!(node.get::<PreferEvict>(third).is_some(), "discouraged now");
}

#[test]
fn noban_peers_are_scored_but_kept() {
    let mut node = TestNode::regtest();
    node.resource_mut::<PeerPolicy>().whitelist.push("10.5.0.0/16".parse().unwrap());
    let a = node.connect_inbound("10.5.1.1:1000");
    misbehave(&mut node, a);
    assert_eq!(node.closed_reason(a), None);
    assert!(node.get::<Permissions>(a).is_some_and(|p| p.noban));
    assert!(node.get::<Score>(a).is_some_and(|s| s.points >= 100));
}

#[test]
fn manually_connected_peers_are_scored_but_never_disconnected_or_discouraged_as_in_core() {
    let mut node = TestNode::regtest();
    let manual = node.connect_outbound("10.6.1.1:18444", Direction::Manual);
    misbehave(&mut node, manual);
    misbehave(&mut node, manual);
    assert_eq!(node.closed_reason(manual), None, "Core never punishes a manual connection");
    assert!(node.get::<Score>(manual).is_some_and(|s| s.points >= 200));
    assert_eq!(node.metrics().discouraged, 0);
    // The same offence from a peer we chose ourselves disconnects.
    let auto = node.connect_outbound("10.6.2.1:18444", Direction::OutboundFullRelay);
    misbehave(&mut node, auto);
    assert_eq!(node.closed_reason(auto), Some(DisconnectReason::Misbehavior));
    assert_eq!(node.metrics().discouraged, 1);
}

#[test]
fn bans_expire_and_new_bans_kick_connected_peers() {
    let mut node = TestNode::regtest();
    let a = node.ready_inbound("10.7.7.7:1000");
    let now_s = 1_700_000_000;
    node.resource_mut::<BanList>().ban(
        Subnet::host("10.7.7.7".parse().unwrap()),
        BanEntry { created_s: now_s, until_s: now_s + 120, reason: BanReason::Manual },
    );
    node.tick();
    assert_eq!(node.closed_reason(a), Some(DisconnectReason::Banned));
    node.elapse(121_000);
    node.elapse(60_000);
    assert_eq!(node.world.resource::<BanList>().bans().count(), 0, "swept");
    let b = node.connect_inbound("10.7.7.7:1001");
    assert_eq!(node.closed_reason(b), None);
}

#[test]
fn a_full_inbound_set_evicts_by_netgroup_and_keeps_long_lived_honest_peers() {
    let mut node = TestNode::regtest();
    node.world.resource_mut::<crate::resources::Config>().limits = Limits { max_inbound: 32, ..Limits::default() };
    let honest: Vec<_> = (0..16).map(|i| node.ready_inbound(&format!("10.{i}.0.1:8333"))).collect();
    node.elapse(1000);
    let mut refused_or_evicted = 0;
    for i in 0..200 {
        let c = node.connect_inbound(&format!("66.66.{}.{}:9000", i / 250, i % 250));
        node.receive(c, &TestNode::peer_version(5000 + i));
        node.receive(c, &Message::Verack);
        if node.closed_reason(c).is_some() {
            refused_or_evicted += 1;
        }
    }
    let inbound = node.metrics().peers[Direction::Inbound as usize];
    assert_eq!(inbound, 32, "stays at max_inbound");
    assert!(honest.iter().all(|c| node.closed_reason(*c).is_none()), "honest diverse peers survive");
    assert!(node.metrics().disconnects_for(DisconnectReason::Evicted) >= 150);
    assert!(refused_or_evicted < 200);
}

fn fill_book(node: &mut TestNode, groups: u8) -> Vec<SocketAddr> {
    let now_s = 1_700_000_000;
    let mut addrs = Vec::new();
    for g in 0..groups {
        for h in 0..3u8 {
            let addr: SocketAddr = format!("{}.{}.0.{}:8333", 20 + g, g, h + 1).parse().unwrap();
            node.resource_mut::<AddrBook>().add(PeerAddr::from_socket(addr), GOOD, now_s - 60, [1, 1, 1, 0, 0], now_s);
            addrs.push(addr);
        }
    }
    addrs
}

#[test]
fn outbound_slots_fill_with_one_peer_per_netgroup_then_a_feeler() {
    let mut node = TestNode::regtest();
    fill_book(&mut node, 30);
    let mut conns = Vec::new();
    for _ in 0..40 {
        node.elapse(600);
        conns.extend(node.complete_dials(GOOD));
    }
    let full = conns.iter().filter(|c| c.2 == Direction::OutboundFullRelay).count();
    let block = conns.iter().filter(|c| c.2 == Direction::BlockRelayOnly).count();
    assert_eq!((full, block), (8, 2));
    let mut groups: Vec<_> = conns.iter().filter(|c| c.2 != Direction::Feeler).map(|c| c.1.ip()).collect();
    groups.sort();
    groups.dedup_by_key(|ip| match ip {
        std::net::IpAddr::V4(v) => [v.octets()[0], v.octets()[1]],
        _ => [0, 0],
    });
    assert_eq!(groups.len(), 10, "no two outbound in one netgroup");
    for c in &conns {
        if c.2 != Direction::Feeler {
            assert_eq!(node.state(c.0), Some(PeerState::Ready));
        }
    }
    node.elapse(200_000);
    let feelers = node.complete_dials(GOOD);
    assert_eq!(feelers.len(), 1);
    assert_eq!(feelers[0].2, Direction::Feeler);
    assert_eq!(node.closed_reason(feelers[0].0), Some(DisconnectReason::FeelerDone));
    let tried = node.world.resource::<AddrBook>().counts().1;
    assert_eq!(tried, conns.len() + feelers.len(), "every address that answered went to tried");
    let first_feeler = conns.iter().position(|c| c.2 == Direction::Feeler);
    assert!(first_feeler.is_none_or(|i| i >= 10), "feelers only once the outbound slots are full");
}

#[test]
fn outbound_peers_without_network_and_witness_are_dropped() {
    let mut node = TestNode::regtest();
    fill_book(&mut node, 2);
    node.elapse(600);
    let conns = node.complete_dials(NODE_WITNESS);
    assert_eq!(conns.len(), 1);
    assert_eq!(node.closed_reason(conns[0].0), Some(DisconnectReason::MissingServices));
}

#[test]
fn manual_peers_are_redialed_with_backoff() {
    let mut node = TestNode::regtest();
    let addr: SocketAddr = "10.3.3.3:18444".parse().unwrap();
    node.resource_mut::<PeerPolicy>().manual.push(addr);
    node.tick();
    assert_eq!(node.dials(), &[(addr, Direction::Manual)]);
    let conns = node.complete_dials(0);
    assert_eq!(node.state(conns[0].0), Some(PeerState::Ready), "manual peers need no services");
    node.close(conns[0].0);
    node.elapse(5_000);
    assert!(node.dials().is_empty(), "not before the retry delay");
    node.elapse(6_000);
    assert_eq!(node.dials(), &[(addr, Direction::Manual)]);
}

#[test]
fn terrible_addresses_age_out_of_the_book() {
    let mut node = TestNode::regtest();
    node.resource_mut::<PeerPolicy>().auto_outbound = false;
    let now_s = 1_700_000_000;
    let stale: SocketAddr = "40.1.1.1:8333".parse().unwrap();
    let fresh: SocketAddr = "41.1.1.1:8333".parse().unwrap();
    node.resource_mut::<AddrBook>().add(
        PeerAddr::from_socket(stale),
        GOOD,
        now_s - 31 * 24 * 3600,
        [1, 1, 1, 0, 0],
        now_s,
    );
    node.resource_mut::<AddrBook>().add(PeerAddr::from_socket(fresh), GOOD, now_s - 60, [1, 1, 1, 0, 0], now_s);
    node.elapse(61_000);
    let book = node.world.resource::<AddrBook>();
    assert!(book.get(&PeerAddr::from_socket(stale)).is_none());
    assert!(book.get(&PeerAddr::from_socket(fresh)).is_some());
}

#[test]
fn a_burst_of_connects_from_one_group_in_one_tick_evicts_no_more_than_one_at_a_time_would() {
    use crate::components::ConnId;
    use crate::resources::{Inbox, NetEvent};
    let mut node = TestNode::new(
        {
            let mut c = crate::resources::Config::new(crate::wire::Network::Regtest);
            c.limits.max_inbound = 32;
            c
        },
        5,
    );
    let honest: Vec<ConnId> = (0..32)
        .map(|i| {
            let conn = node.connect_inbound(&format!("10.{}.0.1:8333", i + 1));
            node.elapse(1_000);
            conn
        })
        .collect();
    // 60 connects from one /16 arrive together and are admitted in one tick.
    {
        let mut inbox = node.world.resource_mut::<Inbox>();
        for i in 0..60u64 {
            let addr = format!("99.1.{}.{}:8333", i / 200, i % 200 + 1).parse().unwrap();
            inbox.0.push(NetEvent::Connected {
                conn: ConnId(10_000 + i),
                addr,
                local: None,
                direction: Direction::Inbound,
            });
        }
    }
    node.tick();
    let evicted_honest = honest.iter().filter(|&&c| node.closed_reason(c) == Some(DisconnectReason::Evicted)).count();
    assert!(evicted_honest <= 1, "{evicted_honest} honest peers evicted by one burst");
    let open_honest = honest.iter().filter(|&&c| node.closed_reason(c).is_none()).count();
    assert!(open_honest >= 31);
}

/// Fails every dial the node asked for (the connection is refused); returns the addresses.
fn fail_dials(node: &mut TestNode, next_conn: &mut u64) -> Vec<SocketAddr> {
    let dials: Vec<(SocketAddr, Direction)> = node.dials().to_vec();
    let mut failed = Vec::new();
    for (addr, direction) in dials {
        let conn = crate::components::ConnId(*next_conn);
        *next_conn += 1;
        node.report(crate::resources::NetEvent::Dialing { conn, addr, direction });
        node.report(crate::resources::NetEvent::Closed { conn, connect_failed: true });
        failed.push(addr);
    }
    node.take_dials();
    failed
}

#[test]
fn failed_addresses_back_off_exponentially_and_the_node_says_once_that_it_reaches_no_one() {
    use crate::resources::PeerManagerState;
    let mut node = TestNode::regtest();
    let now_s = node.world.resource::<crate::resources::Clock>().unix_s();
    // Eight seeds in eight network groups, none answering (a node without a network).
    let seeds: Vec<SocketAddr> = (0..8).map(|g| format!("{}.{g}.0.1:8333", 30 + g).parse().unwrap()).collect();
    for a in &seeds {
        node.resource_mut::<AddrBook>().add(PeerAddr::from_socket(*a), GOOD, now_s - 60, [2, 2, 2, 0, 0], now_s);
    }
    let mut next_conn = 5_000;
    let mut dialed: Vec<(u64, SocketAddr)> = Vec::new();
    let start = node.world.resource::<crate::resources::Clock>().now_ms;
    let mut run_until = |node: &mut TestNode, dialed: &mut Vec<(u64, SocketAddr)>, ms: u64| {
        while node.world.resource::<crate::resources::Clock>().now_ms - start < ms {
            node.elapse(500);
            let at = node.world.resource::<crate::resources::Clock>().now_ms - start;
            dialed.extend(fail_dials(node, &mut next_conn).into_iter().map(|a| (at, a)));
        }
    };
    run_until(&mut node, &mut dialed, 55_000);
    let mut once: Vec<SocketAddr> = dialed.iter().map(|d| d.1).collect();
    once.sort();
    let mut want = seeds.clone();
    want.sort();
    assert_eq!(once, want, "each seed dialed once in the first minute, not cycled: {dialed:?}");
    let state = node.world.resource::<PeerManagerState>();
    assert!(state.unreachable_said, "the node said it reaches no one");
    assert_eq!(state.unreached.len(), 8);
    // A minute after its failure each is tried again, then it waits two minutes.
    run_until(&mut node, &mut dialed, 175_000);
    for a in &seeds {
        let times: Vec<u64> = dialed.iter().filter(|d| d.1 == *a).map(|d| d.0).collect();
        assert_eq!(times.len(), 2, "{a}: {times:?}");
        assert!(times[1] - times[0] >= 59_000, "a minute, in whole seconds: {a}: {times:?}");
    }
    let book = node.world.resource::<AddrBook>();
    let info = book.get(&PeerAddr::from_socket(seeds[0])).unwrap();
    assert_eq!((info.attempts, info.retry_at_s() - info.last_try_s), (2, 120), "the wait doubled");
    // One address answers: the node has a peer again, and would say it again next time.
    node.resource_mut::<AddrBook>().add(
        PeerAddr::from_socket("60.1.0.1:8333".parse().unwrap()),
        GOOD,
        now_s,
        [2, 2, 2, 0, 0],
        now_s,
    );
    let mut ready = Vec::new();
    for _ in 0..20 {
        node.elapse(500);
        ready.extend(node.complete_dials(GOOD));
        if !ready.is_empty() {
            break;
        }
    }
    assert_eq!(ready.first().map(|r| r.1), Some("60.1.0.1:8333".parse().unwrap()), "the fresh address is dialed");
    let state = node.world.resource::<PeerManagerState>();
    assert!(!state.unreachable_said && state.unreached.is_empty());
}
