//! Which peer to ask for which announced transaction, and when — Bitcoin Core's TxRequestTracker
//! semantics: one request per transaction at a time across all peers; preferred (outbound) peers
//! first, then a seeded random order; announcements delayed for inbound peers, for txid-only peers
//! when wtxid peers exist, and for overloaded peers; a request that times out, or is answered with
//! `notfound`, moves on to the next announcer. Only transactions whose state may have changed are
//! looked at each step (a timer queue), so the step costs little however many are outstanding.

use ahash::{AHashMap, AHashSet};
use bevy_ecs::prelude::*;
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// Announcements tracked per peer (Core's MAX_PEER_TX_ANNOUNCEMENTS).
pub const MAX_PEER_ANNOUNCEMENTS: usize = 5_000;
/// Requests in flight per peer (Core's MAX_PEER_TX_REQUEST_IN_FLIGHT).
pub const MAX_PEER_IN_FLIGHT: usize = 100;
/// Delay for announcements from non-preferred (inbound) peers.
pub const NONPREF_DELAY_MS: u64 = 2_000;
/// Delay for txid announcements while wtxid-relay peers exist.
pub const TXID_DELAY_MS: u64 = 2_000;
/// Delay for announcements from a peer already at its in-flight limit.
pub const OVERLOADED_DELAY_MS: u64 = 2_000;
/// Time a request may take before the next announcer is asked.
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;

#[derive(Clone, Debug)]
struct Ann {
    peer: Entity,
    is_wtxid: bool,
    preferred: bool,
    reqtime_ms: u64,
    completed: bool,
}

#[derive(Clone, Debug, Default)]
struct TxEntry {
    anns: SmallVec<[Ann; 2]>,
    requested: Option<(Entity, u64)>,
    /// When the first peer announced it (tx relay latency starts here).
    first_seen_ms: u64,
}

#[derive(Clone, Debug, Default)]
struct PeerLoad {
    hashes: AHashSet<[u8; 32]>,
    in_flight: usize,
}

/// Why an announcement was not tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// Tracked.
    Tracked,
    /// Already announced by this peer.
    Duplicate,
    /// The peer is at its announcement limit; dropped.
    OverLimit,
}

/// A request to send: ask `peer` for `hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// Whom to ask.
    pub peer: Entity,
    /// What.
    pub hash: [u8; 32],
    /// Whether `hash` is a wtxid (ask with MSG_WTX) or a txid (MSG_WITNESS_TX).
    pub is_wtxid: bool,
}

/// The tracker (a resource).
#[derive(Resource, Debug, Default)]
pub struct TxRequests {
    txs: AHashMap<[u8; 32], TxEntry>,
    peers: AHashMap<Entity, PeerLoad>,
    wake: BTreeMap<u64, Vec<[u8; 32]>>,
    seed: u64,
    /// Requests that timed out (counted for telemetry).
    pub timeouts: u64,
    /// Requests in flight per peer at most; lowered under backpressure (0 means the default,
    /// [`MAX_PEER_IN_FLIGHT`]).
    pub in_flight_cap: usize,
}

impl TxRequests {
    /// An empty tracker whose tie-break order follows from `seed`.
    pub fn new(seed: u64) -> Self {
        TxRequests { seed, ..Default::default() }
    }

    fn priority(&self, hash: &[u8; 32], peer: Entity) -> u64 {
        let w = u64::from_le_bytes([hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7]]);
        let m = ((w ^ self.seed) as u128).wrapping_mul((peer.to_bits() ^ 0x9e37_79b9_7f4a_7c15) as u128 | 1);
        (m as u64) ^ ((m >> 64) as u64)
    }

    fn wake_at(&mut self, at_ms: u64, hash: [u8; 32]) {
        self.wake.entry(at_ms).or_default().push(hash);
    }

    /// Announcements a peer has outstanding.
    pub fn announced_by(&self, peer: Entity) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.hashes.len())
    }

    /// Requests in flight to a peer.
    pub fn in_flight(&self, peer: Entity) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.in_flight)
    }

    /// When `hash` was first announced, while it is tracked.
    pub fn first_seen_ms(&self, hash: &[u8; 32]) -> Option<u64> {
        self.txs.get(hash).map(|e| e.first_seen_ms)
    }

    /// Transactions being tracked.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Panics with a message when the tracker contradicts itself: each peer's announced set is
    /// exactly the transactions listing it as announcer, its in-flight count is the number of
    /// transactions requested from it, a request goes to an announcer that has not answered, no
    /// peer announces one transaction twice or more than [`MAX_PEER_ANNOUNCEMENTS`] in all, and
    /// every tracked transaction has a wake-up queued (none is stranded). For tests and fuzzing.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let mut announced: AHashMap<Entity, AHashSet<[u8; 32]>> = AHashMap::new();
        let mut in_flight: AHashMap<Entity, usize> = AHashMap::new();
        let queued: AHashSet<&[u8; 32]> = self.wake.values().flatten().collect();
        for (hash, e) in &self.txs {
            for a in &e.anns {
                assert!(self.peers.contains_key(&a.peer), "announcer {:?} has no load entry", a.peer);
                assert!(announced.entry(a.peer).or_default().insert(*hash), "{:?} announced a hash twice", a.peer);
            }
            if let Some((peer, expiry)) = e.requested {
                *in_flight.entry(peer).or_default() += 1;
                assert!(
                    e.anns.iter().any(|a| a.peer == peer && !a.completed),
                    "requested from {peer:?}, which did not announce it or already answered"
                );
                assert!(self.wake.get(&expiry).is_some_and(|v| v.contains(hash)), "no wake-up at the request's expiry");
            }
            assert!(queued.contains(hash), "a tracked transaction has no wake-up queued");
        }
        for (peer, load) in &self.peers {
            let expected = announced.remove(peer).unwrap_or_default();
            assert_eq!(load.hashes, expected, "{peer:?}'s announced set");
            assert!(load.hashes.len() <= MAX_PEER_ANNOUNCEMENTS, "{peer:?} over the announcement limit");
            assert_eq!(load.in_flight, in_flight.remove(peer).unwrap_or(0), "{peer:?}'s in-flight count");
        }
        assert!(announced.is_empty() && in_flight.is_empty(), "announcers without a load entry");
    }

    /// Records that `peer` announced `hash`. `delay_ms` carries the caller's delays (inbound, txid
    /// while wtxid peers exist); an overloaded peer's delay is added here.
    pub fn announce(
        &mut self,
        peer: Entity,
        hash: [u8; 32],
        is_wtxid: bool,
        preferred: bool,
        now_ms: u64,
        delay_ms: u64,
    ) -> AnnounceOutcome {
        let load = self.peers.entry(peer).or_default();
        if load.hashes.contains(&hash) {
            return AnnounceOutcome::Duplicate;
        }
        if load.hashes.len() >= MAX_PEER_ANNOUNCEMENTS {
            return AnnounceOutcome::OverLimit;
        }
        load.hashes.insert(hash);
        let cap = if self.in_flight_cap == 0 { MAX_PEER_IN_FLIGHT } else { self.in_flight_cap };
        let overloaded = if load.in_flight >= cap { OVERLOADED_DELAY_MS } else { 0 };
        let reqtime_ms = now_ms + delay_ms + overloaded;
        let entry = self.txs.entry(hash).or_insert_with(|| TxEntry { first_seen_ms: now_ms, ..Default::default() });
        entry.anns.push(Ann { peer, is_wtxid, preferred, reqtime_ms, completed: false });
        self.wake_at(reqtime_ms, hash);
        AnnounceOutcome::Tracked
    }

    /// `peer` answered for `hash` (the tx, or `notfound`): its announcement is done and the next
    /// announcer may be asked at once.
    pub fn response(&mut self, peer: Entity, hash: &[u8; 32], now_ms: u64) -> bool {
        let Some(entry) = self.txs.get_mut(hash) else { return false };
        let mut was_requested = false;
        if entry.requested.is_some_and(|(p, _)| p == peer) {
            entry.requested = None;
            was_requested = true;
            if let Some(l) = self.peers.get_mut(&peer) {
                l.in_flight = l.in_flight.saturating_sub(1);
            }
        }
        for a in entry.anns.iter_mut().filter(|a| a.peer == peer) {
            a.completed = true;
        }
        self.wake_at(now_ms, *hash);
        was_requested
    }

    /// Stops tracking `hash` entirely (we have it, or rejected it).
    pub fn forget(&mut self, hash: &[u8; 32]) {
        let Some(entry) = self.txs.remove(hash) else { return };
        for a in &entry.anns {
            if let Some(l) = self.peers.get_mut(&a.peer) {
                l.hashes.remove(hash);
            }
        }
        if let Some((p, _)) = entry.requested {
            if let Some(l) = self.peers.get_mut(&p) {
                l.in_flight = l.in_flight.saturating_sub(1);
            }
        }
    }

    /// Drops everything of a peer that went away; its requests move on at once.
    pub fn disconnected(&mut self, peer: Entity, now_ms: u64) {
        let Some(load) = self.peers.remove(&peer) else { return };
        for hash in load.hashes {
            let Some(entry) = self.txs.get_mut(&hash) else { continue };
            entry.anns.retain(|a| a.peer != peer);
            if entry.requested.is_some_and(|(p, _)| p == peer) {
                entry.requested = None;
            }
            self.wake_at(now_ms, hash);
        }
    }

    /// Advances to `now_ms`: expires requests and picks the best ready announcer for every
    /// transaction not in flight. Returns the requests to send.
    pub fn step(&mut self, now_ms: u64) -> Vec<TxRequest> {
        let later = self.wake.split_off(&(now_ms + 1));
        let due = std::mem::replace(&mut self.wake, later);
        let mut out = Vec::new();
        let mut seen: AHashSet<[u8; 32]> = AHashSet::new();
        for hash in due.into_values().flatten() {
            if seen.insert(hash) {
                self.settle(hash, now_ms, &mut out);
            }
        }
        out
    }

    fn settle(&mut self, hash: [u8; 32], now_ms: u64, out: &mut Vec<TxRequest>) {
        let Some(entry) = self.txs.get(&hash) else { return };
        if let Some((peer, expiry)) = entry.requested {
            if expiry > now_ms {
                return;
            }
            self.timeouts += 1;
            if let Some(l) = self.peers.get_mut(&peer) {
                l.in_flight = l.in_flight.saturating_sub(1);
            }
            if let Some(e) = self.txs.get_mut(&hash) {
                e.requested = None;
                e.anns.iter_mut().filter(|a| a.peer == peer).for_each(|a| a.completed = true);
            }
        }
        let Some(entry) = self.txs.get(&hash) else { return };
        let cap = if self.in_flight_cap == 0 { MAX_PEER_IN_FLIGHT } else { self.in_flight_cap };
        if entry.anns.iter().all(|a| a.completed) {
            self.forget(&hash);
            return;
        }
        let best = entry
            .anns
            .iter()
            .filter(|a| !a.completed && a.reqtime_ms <= now_ms)
            .filter(|a| self.peers.get(&a.peer).is_some_and(|l| l.in_flight < cap))
            .min_by_key(|a| (!a.preferred, self.priority(&hash, a.peer)))
            .map(|a| (a.peer, a.is_wtxid));
        match best {
            Some((peer, is_wtxid)) => {
                let expiry = now_ms + REQUEST_TIMEOUT_MS;
                if let Some(e) = self.txs.get_mut(&hash) {
                    e.requested = Some((peer, expiry));
                }
                if let Some(l) = self.peers.get_mut(&peer) {
                    l.in_flight += 1;
                }
                self.wake_at(expiry, hash);
                out.push(TxRequest { peer, hash, is_wtxid });
            }
            None => {
                // Someone is delayed or overloaded: look again when the next one becomes ready.
                let next =
                    entry.anns.iter().filter(|a| !a.completed && a.reqtime_ms > now_ms).map(|a| a.reqtime_ms).min();
                self.wake_at(next.unwrap_or(now_ms + 1_000), hash);
            }
        }
    }
}

#[cfg(test)]
#[path = "tx_requests_tests.rs"]
mod tests;
