//! Target 8b: the transaction request tracker (`resources::tx_requests`) under operation sequences
//! from up to eight peers over a few hashes: announcements (preferred or not, wtxid or txid,
//! delayed), answers (the transaction or `notfound`), forgetting, disconnects, the in-flight cap
//! changing under backpressure, and steps in time. After every step
//! `TxRequests::check_invariants` (each peer's announced set and in-flight count recounted from the
//! transactions, requests only to announcers that have not answered, a wake-up queued for every
//! tracked transaction, the per-peer announcement limit) and:
//! - a step asks for each transaction at most once, only from a peer that announced it, was ready
//!   (its delay over) and under the in-flight cap, preferring preferred peers;
//! - a transaction is never asked of the same peer twice while it is tracked;
//! - nothing of a departed peer or a forgotten transaction remains.

#![no_main]

use bevy_ecs::entity::Entity;
use bevy_ecs::world::World;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use oni_systems::resources::tx_requests::{AnnounceOutcome, TxRequests, MAX_PEER_IN_FLIGHT};

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

const MAX_OPS: usize = 256;
const PEERS: usize = 8;
const HASHES: u8 = 24;

fn peers() -> &'static [Entity] {
    static P: OnceLock<Vec<Entity>> = OnceLock::new();
    P.get_or_init(|| {
        let mut w = World::new();
        (0..PEERS).map(|_| w.spawn_empty().id()).collect()
    })
}

fn hash(k: u8) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = k % HASHES;
    h[31] = 0x5a;
    h
}

#[derive(Arbitrary, Debug)]
enum Op {
    Announce { peer: u8, hash: u8, wtxid: bool, preferred: bool, delay: u8 },
    Response { peer: u8, hash: u8 },
    Forget { hash: u8 },
    Disconnect { peer: u8 },
    Cap { cap: u8 },
    Step { ms: u16 },
}

/// What the target remembers of each announcement, to judge the tracker's choices.
#[derive(Clone, Copy, Debug)]
struct Ann {
    preferred: bool,
    ready_ms: u64,
    /// Asked already, or answered: never asked again while tracked.
    done: bool,
}

fuzz_target!(|input: (u64, Vec<Op>)| {
    let (seed, ops) = input;
    let ps = peers();
    let mut t = TxRequests::new(seed);
    let mut now = 0u64;
    // hash → peer → announcement, for tracked hashes.
    let mut anns: HashMap<[u8; 32], HashMap<Entity, Ann>> = HashMap::new();
    let mut max_cap = MAX_PEER_IN_FLIGHT;
    for op in ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Announce { peer, hash: h, wtxid, preferred, delay } => {
                let p = ps[peer as usize % PEERS];
                let h = hash(h);
                let delay = delay as u64 * 100;
                let cap = if t.in_flight_cap == 0 { MAX_PEER_IN_FLIGHT } else { t.in_flight_cap };
                let overloaded = t.in_flight(p) >= cap;
                let had = anns.get(&h).is_some_and(|m| m.contains_key(&p));
                let out = t.announce(p, h, wtxid, preferred, now, delay);
                match out {
                    AnnounceOutcome::Duplicate => assert!(had, "a first announcement called a duplicate"),
                    AnnounceOutcome::Tracked => {
                        assert!(!had, "tracked a second announcement of the same peer");
                        let ready_ms = now + delay + if overloaded { 2_000 } else { 0 };
                        anns.entry(h).or_default().insert(p, Ann { preferred, ready_ms, done: false });
                        assert!(t.first_seen_ms(&h).is_some_and(|s| s <= now));
                    }
                    AnnounceOutcome::OverLimit => panic!("a few hashes reached the 5,000 limit"),
                }
            }
            Op::Response { peer, hash: h } => {
                let p = ps[peer as usize % PEERS];
                let h = hash(h);
                let before = t.in_flight(p);
                let was = t.response(p, &h, now);
                assert_eq!(t.in_flight(p), before - was as usize, "an answered request still counts");
                if let Some(a) = anns.get_mut(&h).and_then(|m| m.get_mut(&p)) {
                    a.done = true;
                }
            }
            Op::Forget { hash: h } => {
                let h = hash(h);
                t.forget(&h);
                assert!(t.first_seen_ms(&h).is_none());
                anns.remove(&h);
            }
            Op::Disconnect { peer } => {
                let p = ps[peer as usize % PEERS];
                t.disconnected(p, now);
                assert_eq!((t.announced_by(p), t.in_flight(p)), (0, 0));
                for m in anns.values_mut() {
                    m.remove(&p);
                }
            }
            Op::Cap { cap } => {
                t.in_flight_cap = cap as usize % 8;
                max_cap = max_cap.max(t.in_flight_cap);
            }
            Op::Step { ms } => {
                now += ms as u64;
                let cap = if t.in_flight_cap == 0 { MAX_PEER_IN_FLIGHT } else { t.in_flight_cap };
                let timeouts = t.timeouts;
                let reqs = t.step(now);
                let quiet = t.timeouts == timeouts;
                let mut asked = HashSet::new();
                for r in &reqs {
                    assert!(asked.insert(r.hash), "asked for one transaction twice in a step");
                    // Within a step in-flight counts only rise, but for timeouts: with none, a peer
                    // under the cap now was under it when this request was chosen.
                    let m = anns.get_mut(&r.hash).expect("asked for an untracked transaction");
                    let pref_ready =
                        m.iter().any(|(q, a)| a.preferred && !a.done && a.ready_ms <= now && t.in_flight(*q) < cap);
                    let a = m.get_mut(&r.peer).expect("asked a peer that did not announce it");
                    assert!(!a.done, "asked a peer again for the same transaction");
                    assert!(a.ready_ms <= now, "asked before the announcement's delay was over");
                    assert!(
                        a.preferred || !quiet || !pref_ready,
                        "a non-preferred peer asked while a preferred one was ready"
                    );
                    a.done = true;
                    assert!(t.in_flight(r.peer) <= cap, "asked a peer at its in-flight cap");
                }
                anns.retain(|h, _| t.first_seen_ms(h).is_some());
            }
        }
        t.check_invariants();
        for p in ps {
            assert!(t.in_flight(*p) <= max_cap, "in flight over every cap set");
        }
        for (h, m) in &anns {
            if !m.is_empty() {
                assert!(t.first_seen_ms(h).is_some(), "an announced transaction is not tracked");
            }
        }
    }
});
