use super::*;
use bevy_ecs::world::World;

fn peers(n: usize) -> Vec<Entity> {
    let mut w = World::new();
    (0..n).map(|_| w.spawn_empty().id()).collect()
}

fn h(i: u32) -> [u8; 32] {
    let mut x = [0u8; 32];
    x[..4].copy_from_slice(&i.to_le_bytes());
    x[31] = 1;
    x
}

#[test]
fn one_request_per_tx_preferred_first_then_the_next_on_timeout() {
    let p = peers(3);
    let mut t = TxRequests::new(1);
    t.announce(p[0], h(1), true, false, 0, NONPREF_DELAY_MS);
    t.announce(p[1], h(1), true, true, 0, 0);
    t.announce(p[2], h(1), true, true, 0, 0);
    let first = t.step(0);
    assert_eq!(first.len(), 1, "one request at a time");
    assert!(first[0].peer == p[1] || first[0].peer == p[2], "a preferred peer first");
    assert!(t.step(59_999).is_empty(), "still in flight");
    let second = t.step(60_000);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].peer, first[0].peer);
    assert_eq!(t.timeouts, 1);
    // notfound from the second moves on at once, to the inbound one.
    t.response(second[0].peer, &h(1), 60_001);
    let third = t.step(60_001);
    assert_eq!(third.iter().map(|r| r.peer).collect::<Vec<_>>(), vec![p[0]]);
    t.response(p[0], &h(1), 60_002);
    t.step(60_002);
    assert!(t.is_empty(), "every announcer answered: forgotten");
    t.check_invariants();
}

#[test]
fn inbound_announcements_wait_their_delay() {
    let p = peers(1);
    let mut t = TxRequests::new(2);
    t.announce(p[0], h(2), true, false, 1_000, NONPREF_DELAY_MS);
    assert!(t.step(2_999).is_empty());
    assert_eq!(t.step(3_000).len(), 1);
    t.check_invariants();
}

#[test]
fn a_peer_is_capped_at_5000_announcements_and_100_in_flight() {
    let p = peers(1);
    let mut t = TxRequests::new(3);
    let outcomes: Vec<_> = (0..5_001).map(|i| t.announce(p[0], h(i), true, true, 0, 0)).collect();
    assert!(outcomes[..5_000].iter().all(|o| *o == AnnounceOutcome::Tracked));
    assert_eq!(outcomes[5_000], AnnounceOutcome::OverLimit);
    assert_eq!(t.announce(p[0], h(7), true, true, 0, 0), AnnounceOutcome::Duplicate);
    assert_eq!(t.step(0).len(), MAX_PEER_IN_FLIGHT);
    assert_eq!(t.in_flight(p[0]), MAX_PEER_IN_FLIGHT);
    assert!(t.step(500).is_empty(), "no more until some answer");
    for i in 0..10 {
        t.response(p[0], &h(i), 600);
    }
    assert_eq!(t.step(2_000).len(), 10);
    t.check_invariants();
}

#[test]
fn a_disconnect_moves_its_requests_on_and_frees_its_load() {
    let p = peers(2);
    let mut t = TxRequests::new(4);
    t.announce(p[0], h(9), true, true, 0, 0);
    t.announce(p[1], h(9), true, false, 0, NONPREF_DELAY_MS);
    assert_eq!(t.step(0)[0].peer, p[0]);
    t.disconnected(p[0], 100);
    assert!(t.step(100).is_empty(), "the inbound one is still delayed");
    assert_eq!(t.step(2_000)[0].peer, p[1]);
    assert_eq!(t.announced_by(p[0]), 0);
    t.check_invariants();
}

#[test]
fn forgetting_a_tx_clears_it_for_every_peer() {
    let p = peers(2);
    let mut t = TxRequests::new(5);
    t.announce(p[0], h(5), true, true, 0, 0);
    t.announce(p[1], h(5), true, true, 0, 0);
    t.step(0);
    t.forget(&h(5));
    assert!(t.is_empty());
    assert_eq!(t.in_flight(p[0]) + t.in_flight(p[1]), 0);
    assert!(t.step(100_000).is_empty());
    t.check_invariants();
}
