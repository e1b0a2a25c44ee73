//! The orphanage: transactions whose parents we do not have yet, kept until a parent arrives (the
//! caller re-submits the children), the orphan is included in or conflicted by a block, its
//! announcers leave, it expires (20 minutes after it first arrived), or it is evicted.
//!
//! Bounds follow Bitcoin Core's design (`node/txorphanage`, v30): an orphan is stored once but
//! *announced* by one or more peers, and each announcement is charged to its peer. Two resources
//! are bounded globally:
//! - **latency score** (the "count" bound): one point per announcement plus one per ten inputs of
//!   each stored orphan, at most [`MAX_LATENCY_SCORE`] in all; it bounds the work of block and peer
//!   removal. Each peer's share is the global bound divided by the peers holding orphans.
//! - **weight**: every peer holding orphans reserves [`RESERVED_WEIGHT_PER_PEER`], so the global
//!   weight bound is that times the number of such peers (deduplicated: a shared orphan counts once).
//!
//! A peer may use more than its share while the globals hold. When a global bound is exceeded,
//! announcements are evicted oldest first from the peer whose usage relative to its share is the
//! highest (the larger of its two ratios), until the bounds hold again. Since the global bounds are
//! the sum of the shares, someone over a global bound is always over their share, so a peer within
//! its share is never touched while another exceeds theirs: a flood from one peer cannot push out an
//! honest peer's orphans. An orphan leaves when its last announcement does.
//!
//! Determinism: the simulator replays runs by seed, so nothing here depends on hash-map iteration
//! order. The wtxid map is only looked up, never iterated; every order that decides something
//! (eviction, expiry, children, peers) is a `BTreeMap`/`BTreeSet` keyed by entity, sequence number
//! or outpoint, and equal eviction scores are broken by entity order.
//!
//! Core keeps a per-peer "work set" of orphans to reconsider; here [`Orphanage::children_of`]
//! returns the children with their announcers and the pool's caller re-submits them.

use ahash::{AHashMap, AHashSet};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, Transaction, Txid, Wtxid};
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

/// Largest orphan stored, in weight units: Core's MAX_STANDARD_TX_WEIGHT. Bigger transactions are
/// refused so that a peer cannot fill memory with a few huge never-valid orphans.
pub const MAX_ORPHAN_WEIGHT: u64 = 400_000;
/// Weight each peer holding orphans reserves (Core's DEFAULT_RESERVED_ORPHAN_WEIGHT_PER_PEER):
/// one maximal orphan plus a little, so any peer can always park at least one.
pub const RESERVED_WEIGHT_PER_PEER: u64 = 404_000;
/// Global latency-score bound (Core's DEFAULT_MAX_ORPHANAGE_LATENCY_SCORE): at most this many
/// announcements of small orphans, fewer when orphans have many inputs.
pub const MAX_LATENCY_SCORE: u64 = 3_000;
/// How long an orphan may wait for its parents, counted from its first arrival (re-announcements
/// do not extend it, so a peer cannot keep an orphan alive). Core dropped expiry in v30; we keep
/// its former 20 minutes so a quiet orphanage still empties.
pub const ORPHAN_EXPIRY_MS: u64 = 20 * 60 * 1_000;
/// Inputs per extra latency point: an orphan costs `1 + inputs / 10` per announcement.
pub const INPUTS_PER_LATENCY_POINT: u64 = 10;

/// The orphanage's bounds; `Default` is Core's numbers plus our expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrphanLimits {
    /// Global latency-score bound (see the module docs); divided evenly among peers holding orphans.
    pub max_latency_score: u64,
    /// Weight reserved per peer holding orphans; the global weight bound is this times those peers.
    pub reserved_weight_per_peer: u64,
    /// Largest single orphan, in weight units.
    pub max_orphan_weight: u64,
    /// Lifetime of an orphan from its first arrival.
    pub expiry_ms: u64,
}

impl Default for OrphanLimits {
    fn default() -> Self {
        OrphanLimits {
            max_latency_score: MAX_LATENCY_SCORE,
            reserved_weight_per_peer: RESERVED_WEIGHT_PER_PEER,
            max_orphan_weight: MAX_ORPHAN_WEIGHT,
            expiry_ms: ORPHAN_EXPIRY_MS,
        }
    }
}

/// What [`Orphanage::add`] did, so the caller knows whether to request the missing parents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// Stored, announced by this peer.
    Added,
    /// Already stored (same wtxid); `new_announcer` says whether this peer was added as one more
    /// announcer (false: it had announced it already).
    AlreadyHad {
        /// The peer became an announcer of the stored orphan.
        new_announcer: bool,
    },
    /// Heavier than [`OrphanLimits::max_orphan_weight`]: not stored.
    TooLarge {
        /// The transaction's weight.
        weight: u64,
    },
    /// Stored, then evicted by the trim that followed, because this peer was the one most over its
    /// share (e.g. an orphan with very many inputs when many peers share the latency bound).
    EvictedAtOnce,
}

/// One peer's charge: every orphan it announced, counted in full even when shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerUsage {
    /// Announcements (orphans this peer sent or announced).
    pub announcements: u64,
    /// Sum of those orphans' weights.
    pub weight: u64,
    /// Sum of their latency scores (`1 + inputs / 10` each).
    pub latency_score: u64,
}

/// An orphan spending an output of a parent that just arrived: the caller re-submits `tx` to the
/// pool, and on a missing-inputs verdict again may ask one of `announcers` for the other parents.
#[derive(Clone, Debug)]
pub struct Child {
    /// The orphan's wtxid.
    pub wtxid: Wtxid,
    /// The orphan.
    pub tx: Arc<Transaction>,
    /// Peers that announced it, earliest first.
    pub announcers: SmallVec<[Entity; 2]>,
}

/// A stored orphan.
#[derive(Clone, Debug)]
struct Entry {
    tx: Arc<Transaction>,
    weight: u64,
    /// `inputs / 10`: the part of the latency score charged once per orphan (not per announcement).
    input_score: u64,
    /// (peer, announcement sequence number), in arrival order.
    announcers: SmallVec<[(Entity, u64); 2]>,
    /// Sequence number of the first announcement: the orphan's arrival order.
    seq: u64,
    expires_ms: u64,
}

impl Entry {
    fn latency_score(&self) -> u64 {
        1 + self.input_score
    }
}

/// A peer's usage relative to its share: the larger of latency/latency-share and weight/reserved,
/// kept as a fraction and compared exactly (cross-multiplied), as Core does.
#[derive(Clone, Copy, Debug)]
struct Score {
    num: u64,
    den: u64,
}

impl Score {
    const ONE: Score = Score { num: 1, den: 1 };

    fn of(usage: &PeerUsage, latency_share: u64, reserved_weight: u64) -> Score {
        let latency = Score { num: usage.latency_score, den: latency_share };
        let weight = Score { num: usage.weight, den: reserved_weight };
        latency.max(weight)
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        (u128::from(self.num) * u128::from(other.den)).cmp(&(u128::from(other.num) * u128::from(self.den)))
    }
}

/// The orphan pool (a resource). See the module docs for the bounds and the eviction rule.
///
/// Complexities (n announcements, i inputs of the orphan concerned, a its announcers, P peers
/// holding orphans): `add` O((i + a) log n) plus a trim; a trim (only when over a bound)
/// O(P log P + e (i + a) log n) for e evictions; `remove` O((i + a) log n); `children_of`
/// O(log n + k log k) for k children; `peer_gone` O(m (i + a) log n) for its m announcements;
/// `expire` O((i + a) log n) per expired orphan; `remove_for_block` O(I log n) for I block inputs
/// plus the removals; lookups O(1).
#[derive(Resource, Debug)]
pub struct Orphanage {
    limits: OrphanLimits,
    /// Looked up; iterated only where order does not matter ([`Orphanage::txs`]): it is
    /// per-process random.
    entries: AHashMap<Wtxid, Entry>,
    /// Every (spent outpoint, orphan) pair: children of a parent and conflicts with a block.
    by_prevout: BTreeSet<(OutPoint, Wtxid)>,
    /// Every announcement, per peer, oldest first: eviction and peer removal.
    by_peer: BTreeMap<(Entity, u64), Wtxid>,
    /// Every orphan by (expiry, arrival).
    by_expiry: BTreeMap<(u64, u64), Wtxid>,
    /// Peers holding at least one announcement.
    peers: BTreeMap<Entity, PeerUsage>,
    next_seq: u64,
    total_weight: u64,
    /// Sum of `input_score` over stored orphans.
    input_score_total: u64,
    announcements: u64,
    evicted_total: u64,
    evicted_announcements_total: u64,
    expired_total: u64,
}

impl Default for Orphanage {
    fn default() -> Self {
        Orphanage::new(OrphanLimits::default())
    }
}

impl Orphanage {
    /// An empty orphanage with these bounds.
    pub fn new(limits: OrphanLimits) -> Self {
        Orphanage {
            limits,
            entries: AHashMap::default(),
            by_prevout: BTreeSet::new(),
            by_peer: BTreeMap::new(),
            by_expiry: BTreeMap::new(),
            peers: BTreeMap::new(),
            next_seq: 0,
            total_weight: 0,
            input_score_total: 0,
            announcements: 0,
            evicted_total: 0,
            evicted_announcements_total: 0,
            expired_total: 0,
        }
    }

    /// Stores `tx`, which `peer` sent and whose inputs are missing, then trims back within the
    /// bounds. A transaction already stored gains `peer` as an announcer (its expiry is unchanged).
    pub fn add(&mut self, tx: Arc<Transaction>, peer: Entity, now_ms: u64) -> AddOutcome {
        let weight = tx.weight().to_wu();
        if weight > self.limits.max_orphan_weight {
            return AddOutcome::TooLarge { weight };
        }
        let wtxid = tx.compute_wtxid();
        if self.entries.contains_key(&wtxid) {
            return AddOutcome::AlreadyHad { new_announcer: self.add_announcer(&wtxid, peer) };
        }
        let seq = self.take_seq();
        let input_score = tx.input.len() as u64 / INPUTS_PER_LATENCY_POINT;
        let expires_ms = now_ms.saturating_add(self.limits.expiry_ms);
        for input in &tx.input {
            self.by_prevout.insert((input.previous_output, wtxid));
        }
        self.by_expiry.insert((expires_ms, seq), wtxid);
        self.total_weight += weight;
        self.input_score_total += input_score;
        let entry = Entry { tx, weight, input_score, announcers: SmallVec::new(), seq, expires_ms };
        self.entries.insert(wtxid, entry);
        self.announce(wtxid, peer, seq);
        self.limit();
        if self.has_from_peer(&wtxid, peer) {
            AddOutcome::Added
        } else {
            AddOutcome::EvictedAtOnce
        }
    }

    /// Adds `peer` as an announcer of a stored orphan (e.g. it announced the wtxid by `inv`), so the
    /// orphan outlives the first announcer and `peer` can be asked for its parents. False when the
    /// orphan is not stored or `peer` already announced it. Trims afterwards; the new announcement
    /// may be the one trimmed if `peer` is the most over its share (check [`Orphanage::has_from_peer`]).
    pub fn add_announcer(&mut self, wtxid: &Wtxid, peer: Entity) -> bool {
        match self.entries.get(wtxid) {
            Some(entry) if !entry.announcers.iter().any(|(p, _)| *p == peer) => {}
            _ => return false,
        }
        let seq = self.take_seq();
        self.announce(*wtxid, peer, seq);
        self.limit();
        true
    }

    /// Removes an orphan and all its announcements (accepted into the pool, or rejected for a
    /// reason other than missing inputs when retried). Returns it if it was stored.
    pub fn remove(&mut self, wtxid: &Wtxid) -> Option<Arc<Transaction>> {
        let tx = self.erase(wtxid)?;
        // Fewer peers may hold orphans now, which lowers the global weight bound.
        self.limit();
        Some(tx)
    }

    /// Removes the orphans a block made useless: those it includes and those spending an output a
    /// block transaction also spends (conflicts). Both are found by spent outpoint, since an
    /// included orphan spends its own inputs. Returns how many left.
    pub fn remove_for_block(&mut self, txs: &[Transaction]) -> usize {
        if self.entries.is_empty() {
            return 0;
        }
        let mut doomed = BTreeSet::new();
        for tx in txs {
            for input in &tx.input {
                let lo = (input.previous_output, Wtxid::all_zeros());
                let hi = (input.previous_output, Wtxid::from_byte_array([0xff; 32]));
                doomed.extend(self.by_prevout.range(lo..=hi).map(|(_, w)| *w));
            }
        }
        let removed = doomed.iter().filter(|w| self.erase(w).is_some()).count();
        self.limit();
        removed
    }

    /// Drops every announcement of a peer that disconnected; orphans nobody else announced leave,
    /// shared ones stay with their other announcers. Returns how many orphans left.
    pub fn peer_gone(&mut self, peer: Entity) -> usize {
        let anns: Vec<(u64, Wtxid)> =
            self.by_peer.range((peer, 0)..=(peer, u64::MAX)).map(|(&(_, seq), &w)| (seq, w)).collect();
        let removed = anns.into_iter().filter(|&(seq, wtxid)| self.drop_announcement(peer, seq, wtxid)).count();
        self.limit();
        removed
    }

    /// Removes orphans whose lifetime ended at or before `now_ms` (first arrival + expiry).
    /// Returns how many left. Call it each tick; cost is per expired orphan.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let mut removed = 0;
        while let Some((&(expires_ms, _), &wtxid)) = self.by_expiry.first_key_value() {
            if expires_ms > now_ms {
                break;
            }
            self.erase(&wtxid);
            removed += 1;
        }
        self.expired_total += removed as u64;
        if removed > 0 {
            self.limit();
        }
        removed
    }

    /// Orphans spending any output of `parent`, in arrival order, each once: when `parent` is
    /// accepted, the caller re-submits them. Children of children are not included (they come
    /// up when their own parent is accepted).
    pub fn children_of(&self, parent: &Txid) -> Vec<Child> {
        let lo = (OutPoint { txid: *parent, vout: 0 }, Wtxid::all_zeros());
        let hi = (OutPoint { txid: *parent, vout: u32::MAX }, Wtxid::from_byte_array([0xff; 32]));
        let mut found: Vec<(u64, Wtxid)> =
            self.by_prevout.range(lo..=hi).filter_map(|(_, w)| self.entries.get(w).map(|e| (e.seq, *w))).collect();
        found.sort_unstable();
        found.dedup();
        found
            .into_iter()
            .filter_map(|(_, wtxid)| {
                let entry = self.entries.get(&wtxid)?;
                let announcers = entry.announcers.iter().map(|(p, _)| *p).collect();
                Some(Child { wtxid, tx: Arc::clone(&entry.tx), announcers })
            })
            .collect()
    }

    /// The distinct txids an orphan spends from, in input order. The orphanage cannot tell which of
    /// them are missing (it sees neither pool nor chain): the caller filters them against its coins
    /// and pool and requests the rest from an announcer.
    pub fn parent_txids(&self, wtxid: &Wtxid) -> Option<SmallVec<[Txid; 4]>> {
        let entry = self.entries.get(wtxid)?;
        let mut seen = AHashSet::with_capacity(entry.tx.input.len());
        Some(entry.tx.input.iter().map(|i| i.previous_output.txid).filter(|t| seen.insert(*t)).collect())
    }

    /// The stored orphan with this wtxid.
    pub fn get(&self, wtxid: &Wtxid) -> Option<&Arc<Transaction>> {
        self.entries.get(wtxid).map(|e| &e.tx)
    }

    /// Every orphan, in no stable order: only for a use whose result does not depend on the order
    /// (compact block reconstruction treats every candidate alike).
    pub fn txs(&self) -> impl Iterator<Item = (Wtxid, &Arc<Transaction>)> {
        self.entries.iter().map(|(w, e)| (*w, &e.tx))
    }

    /// Whether an orphan with this wtxid is stored (skip downloading it again).
    pub fn contains(&self, wtxid: &Wtxid) -> bool {
        self.entries.contains_key(wtxid)
    }

    /// Whether `peer` announced this stored orphan.
    pub fn has_from_peer(&self, wtxid: &Wtxid, peer: Entity) -> bool {
        self.entries.get(wtxid).is_some_and(|e| e.announcers.iter().any(|(p, _)| *p == peer))
    }

    /// Peers that announced this orphan, earliest first (empty when not stored).
    pub fn announcers(&self, wtxid: &Wtxid) -> SmallVec<[Entity; 2]> {
        self.entries.get(wtxid).map(|e| e.announcers.iter().map(|(p, _)| *p).collect()).unwrap_or_default()
    }

    /// Stored orphans (unique by wtxid).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no orphan is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Announcements (orphan, peer) pairs; at least [`Orphanage::len`].
    pub fn announcement_count(&self) -> u64 {
        self.announcements
    }

    /// Total weight of the stored orphans, each counted once.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// Total latency score: announcements plus `inputs / 10` of each stored orphan.
    pub fn latency_score(&self) -> u64 {
        self.announcements + self.input_score_total
    }

    /// What `peer` is charged for (zero when it holds nothing).
    pub fn usage_of(&self, peer: Entity) -> PeerUsage {
        self.peers.get(&peer).copied().unwrap_or_default()
    }

    /// Peers holding at least one announcement: the divisor of the shares.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Current global weight bound: reserved weight times peers holding orphans (at least one).
    pub fn max_total_weight(&self) -> u64 {
        self.limits.reserved_weight_per_peer.saturating_mul(self.peers.len().max(1) as u64)
    }

    /// Current per-peer latency share: the global bound divided among peers holding orphans.
    pub fn latency_share(&self) -> u64 {
        (self.limits.max_latency_score / self.peers.len().max(1) as u64).max(1)
    }

    /// The bounds in force.
    pub fn limits(&self) -> &OrphanLimits {
        &self.limits
    }

    /// Orphans that left because of trimming (metrics).
    pub fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    /// Announcements dropped by trimming, including those of orphans that stayed with other
    /// announcers (metrics).
    pub fn evicted_announcements_total(&self) -> u64 {
        self.evicted_announcements_total
    }

    /// Orphans that left by expiry (metrics).
    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }

    /// Panics with a message when the orphanage contradicts itself: recomputes every per-peer
    /// charge, total and index from the stored orphans alone and compares, and checks both global
    /// bounds hold. O(n log n); for tests and the fuzz targets.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let mut peers: BTreeMap<Entity, PeerUsage> = BTreeMap::new();
        let mut prevouts = BTreeSet::new();
        let (mut weight, mut input_score, mut anns) = (0, 0, 0);
        for (w, e) in &self.entries {
            assert_eq!(*w, e.tx.compute_wtxid(), "orphan keyed by another wtxid");
            assert!(!e.announcers.is_empty(), "an orphan without announcers must have left");
            assert_eq!(e.weight, e.tx.weight().to_wu(), "orphan {w}'s weight");
            assert!(e.weight <= self.limits.max_orphan_weight, "orphan {w} over the weight limit");
            assert_eq!(e.input_score, e.tx.input.len() as u64 / INPUTS_PER_LATENCY_POINT, "orphan {w}'s input score");
            assert!(e.seq < self.next_seq, "sequence from the future");
            weight += e.weight;
            input_score += e.input_score;
            prevouts.extend(e.tx.input.iter().map(|i| (i.previous_output, *w)));
            assert_eq!(self.by_expiry.get(&(e.expires_ms, e.seq)), Some(w), "expiry index misses {w}");
            for (i, &(p, s)) in e.announcers.iter().enumerate() {
                assert!(s >= e.seq, "announcement before the orphan arrived");
                assert!(
                    e.announcers[..i].iter().all(|(q, t)| *q != p && *t < s),
                    "announcers of {w} repeat or are out of order"
                );
                anns += 1;
                assert_eq!(self.by_peer.get(&(p, s)), Some(w), "peer index misses an announcement of {w}");
                let u = peers.entry(p).or_default();
                u.announcements += 1;
                u.weight += e.weight;
                u.latency_score += e.latency_score();
            }
        }
        assert_eq!(self.peers, peers, "per-peer charges");
        assert_eq!(self.by_prevout, prevouts, "outpoint index");
        assert_eq!(self.by_peer.len() as u64, anns, "peer index size");
        assert_eq!(self.announcements, anns, "announcement count");
        assert_eq!(self.by_expiry.len(), self.entries.len(), "expiry index size");
        assert_eq!(self.total_weight, weight, "total weight");
        assert_eq!(self.input_score_total, input_score, "input score total");
        assert!(self.latency_score() <= self.limits.max_latency_score, "latency bound: {}", self.latency_score());
        assert!(self.total_weight() <= self.max_total_weight(), "weight bound: {}", self.total_weight());
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Records one announcement of a stored orphan and charges it to `peer`.
    fn announce(&mut self, wtxid: Wtxid, peer: Entity, seq: u64) {
        let Some(entry) = self.entries.get_mut(&wtxid) else { return };
        entry.announcers.push((peer, seq));
        let usage = self.peers.entry(peer).or_default();
        usage.announcements += 1;
        usage.weight += entry.weight;
        usage.latency_score += entry.latency_score();
        self.by_peer.insert((peer, seq), wtxid);
        self.announcements += 1;
    }

    /// Uncharges one announcement from its peer (forgetting peers left with none).
    fn uncharge(&mut self, peer: Entity, seq: u64, weight: u64, latency_score: u64) {
        self.by_peer.remove(&(peer, seq));
        self.announcements -= 1;
        if let Some(usage) = self.peers.get_mut(&peer) {
            usage.announcements -= 1;
            usage.weight -= weight;
            usage.latency_score -= latency_score;
            if usage.announcements == 0 {
                self.peers.remove(&peer);
            }
        }
    }

    /// Drops one announcement; the orphan leaves with its last one. True when it left.
    fn drop_announcement(&mut self, peer: Entity, seq: u64, wtxid: Wtxid) -> bool {
        let Some(entry) = self.entries.get_mut(&wtxid) else { return false };
        entry.announcers.retain(|(p, _)| *p != peer);
        let (weight, score, last) = (entry.weight, entry.latency_score(), entry.announcers.is_empty());
        self.uncharge(peer, seq, weight, score);
        if last {
            self.erase(&wtxid);
        }
        last
    }

    /// Removes an orphan, its announcements and its index entries, without trimming.
    fn erase(&mut self, wtxid: &Wtxid) -> Option<Arc<Transaction>> {
        let entry = self.entries.remove(wtxid)?;
        for &(peer, seq) in &entry.announcers {
            self.uncharge(peer, seq, entry.weight, entry.latency_score());
        }
        for input in &entry.tx.input {
            self.by_prevout.remove(&(input.previous_output, *wtxid));
        }
        self.by_expiry.remove(&(entry.expires_ms, entry.seq));
        self.total_weight -= entry.weight;
        self.input_score_total -= entry.input_score;
        Some(entry.tx)
    }

    fn over_bounds(&self) -> bool {
        self.latency_score() > self.limits.max_latency_score || self.total_weight > self.max_total_weight()
    }

    /// Evicts until within the global bounds: repeatedly the oldest announcement of the peer with
    /// the highest score (usage over share; ties: the greater entity), moving on to the next peer as
    /// soon as this one is no longer the worst. Shares are fixed for the whole call, as in Core.
    fn limit(&mut self) {
        if !self.over_bounds() {
            return;
        }
        let share = self.latency_share();
        let reserved = self.limits.reserved_weight_per_peer.max(1);
        // Only peers over their share can be at fault; the global bounds are the sum of the shares.
        let mut heap: BinaryHeap<(Score, Entity)> = self
            .peers
            .iter()
            .map(|(&peer, usage)| (Score::of(usage, share, reserved), peer))
            .filter(|(score, _)| *score > Score::ONE)
            .collect();
        while let Some((_, peer)) = heap.pop() {
            let next_worst = heap.peek().map_or(Score::ONE, |(s, _)| *s);
            while let Some((&(_, seq), &wtxid)) = self.by_peer.range((peer, 0)..=(peer, u64::MAX)).next() {
                self.evicted_announcements_total += 1;
                if self.drop_announcement(peer, seq, wtxid) {
                    self.evicted_total += 1;
                }
                if !self.over_bounds() {
                    return;
                }
                match self.peers.get(&peer) {
                    Some(usage) if Score::of(usage, share, reserved) > next_worst => {}
                    _ => break,
                }
            }
            if let Some(usage) = self.peers.get(&peer) {
                heap.push((Score::of(usage, share, reserved), peer));
            }
        }
    }
}

#[cfg(test)]
#[path = "orphanage_tests.rs"]
mod tests;
