//! Target 8a: the orphanage (`mempool::orphanage`) under operation sequences from up to eight
//! peers, with small bounds so trimming is common: orphans (some spending other orphans, some
//! heavy, some with many inputs) added and announced again, removed, confirmed or conflicted by
//! blocks, peers leaving, time passing, children looked up. After every step
//! `Orphanage::check_invariants` (per-peer charges, totals and every index recounted from the
//! orphans; both global bounds held) and:
//! - what each call returned agrees with the state before and after it;
//! - a trim only takes announcements from peers over their share when it started (a peer within
//!   its share is never touched while another exceeds theirs);
//! - nothing older than its expiry stays after `expire`, nothing a block spends or includes stays
//!   after `remove_for_block`, nothing of a departed peer stays after `peer_gone`;
//! - `children_of` gives exactly the stored orphans spending the parent, in arrival order.

#![no_main]

use bevy_ecs::entity::Entity;
use bevy_ecs::world::World;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use oni_systems::mempool::orphanage::{AddOutcome, OrphanLimits, Orphanage, PeerUsage, INPUTS_PER_LATENCY_POINT};

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness, Wtxid};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

const MAX_OPS: usize = 128;
const PEERS: usize = 8;
const MAX_INPUTS: usize = 24;

fn peers() -> &'static [Entity] {
    static P: OnceLock<Vec<Entity>> = OnceLock::new();
    P.get_or_init(|| {
        let mut w = World::new();
        (0..PEERS).map(|_| w.spawn_empty().id()).collect()
    })
}

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Global latency bound: 8..=135 (at least one point per peer, or no share could hold).
    latency: u8,
    /// Reserved weight per peer: 500 + 100 × this.
    reserved: u8,
    /// Largest orphan: 400 + 100 × this.
    max_weight: u8,
}

/// A parent outpoint: one of a few unknown parents, or an output of an orphan made earlier.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Prev {
    parent: u8,
    vout: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Add { peer: u8, inputs: Vec<Prev>, outputs: u8, heavy: u8, salt: u8 },
    Announce { orphan: u8, peer: u8 },
    Remove { orphan: u8 },
    Block { include: Vec<u8>, spend: Vec<Prev> },
    PeerGone { peer: u8 },
    Expire { minutes: u8 },
    Children { parent: u8 },
}

struct Run {
    o: Orphanage,
    /// Every transaction made so far (selection by index).
    made: Vec<Arc<Transaction>>,
    /// First arrival time and order of each stored orphan, as the calls reported them.
    arrival: HashMap<Wtxid, (u64, u64)>,
    order: u64,
    now_ms: u64,
}

fn weight_of(tx: &Transaction) -> u64 {
    tx.weight().to_wu()
}

impl Run {
    fn outpoint(&self, p: Prev) -> OutPoint {
        if p.parent & 0x80 != 0 && !self.made.is_empty() {
            let t = &self.made[p.parent as usize % self.made.len()];
            OutPoint { txid: t.compute_txid(), vout: p.vout as u32 % 4 }
        } else {
            OutPoint { txid: Txid::from_byte_array([0xa0 + p.parent % 6; 32]), vout: p.vout as u32 % 4 }
        }
    }

    fn orphan(&self, sel: u8) -> Option<Arc<Transaction>> {
        (!self.made.is_empty()).then(|| self.made[sel as usize % self.made.len()].clone())
    }

    fn usages(&self) -> BTreeMap<Entity, PeerUsage> {
        peers().iter().map(|&p| (p, self.o.usage_of(p))).filter(|(_, u)| u.announcements > 0).collect()
    }

    /// After an add or announce by `peer` of `tx` (`charged`: an announcement was recorded):
    /// every peer that lost announcements was over its share when the trim started.
    fn check_fair(&self, before: &BTreeMap<Entity, PeerUsage>, peer: Entity, tx: &Transaction, charged: bool) {
        let mut start = before.clone();
        if charged {
            let u = start.entry(peer).or_default();
            u.announcements += 1;
            u.weight += weight_of(tx);
            u.latency_score += 1 + tx.input.len() as u64 / INPUTS_PER_LATENCY_POINT;
        }
        let limits = self.o.limits();
        let share = (limits.max_latency_score / start.len().max(1) as u64).max(1);
        let reserved = limits.reserved_weight_per_peer.max(1);
        for (p, u) in &start {
            if self.o.usage_of(*p).announcements < u.announcements {
                assert!(
                    u.latency_score > share || u.weight > reserved,
                    "{p:?} lost announcements while within its share ({u:?}, share {share}, reserved {reserved})"
                );
            }
        }
    }

    fn add(&mut self, peer: Entity, tx: Arc<Transaction>) {
        let wtxid = tx.compute_wtxid();
        let (stored, had) = (self.o.contains(&wtxid), self.o.has_from_peer(&wtxid, peer));
        let before = self.usages();
        let out = self.o.add(tx.clone(), peer, self.now_ms);
        let weight = weight_of(&tx);
        let charged = match out {
            AddOutcome::TooLarge { weight: w } => {
                assert_eq!(w, weight);
                assert!(w > self.o.limits().max_orphan_weight);
                assert_eq!(self.usages(), before, "a refused orphan changed the charges");
                false
            }
            AddOutcome::Added | AddOutcome::EvictedAtOnce => {
                assert!(!stored, "a stored orphan was added again");
                assert!(weight <= self.o.limits().max_orphan_weight);
                assert_eq!(out == AddOutcome::Added, self.o.has_from_peer(&wtxid, peer));
                self.order += 1;
                self.arrival.insert(wtxid, (self.now_ms, self.order));
                true
            }
            AddOutcome::AlreadyHad { new_announcer } => {
                assert!(stored, "not stored, yet already had");
                assert_eq!(new_announcer, !had);
                new_announcer
            }
        };
        self.check_fair(&before, peer, &tx, charged);
    }

    fn announce(&mut self, sel: u8, peer: Entity) {
        let Some(tx) = self.orphan(sel) else { return };
        let wtxid = tx.compute_wtxid();
        let (stored, had) = (self.o.contains(&wtxid), self.o.has_from_peer(&wtxid, peer));
        let before = self.usages();
        let added = self.o.add_announcer(&wtxid, peer);
        assert_eq!(added, stored && !had, "add_announcer's answer");
        if !added {
            assert_eq!(self.usages(), before);
        }
        self.check_fair(&before, peer, &tx, added);
    }

    fn block(&mut self, include: &[u8], spend: &[Prev]) {
        let mut txs: Vec<Transaction> =
            include.iter().take(8).filter_map(|&s| self.orphan(s)).map(|t| (*t).clone()).collect();
        for (k, p) in spend.iter().take(8).enumerate() {
            let o = self.outpoint(*p);
            txs.push(make(&[o], 1, 0, [0xbb, k as u8]));
        }
        self.o.remove_for_block(&txs);
        for t in &txs {
            assert!(!self.o.contains(&t.compute_wtxid()), "a confirmed orphan stayed");
        }
        let spent: Vec<OutPoint> = txs.iter().flat_map(|t| t.input.iter().map(|i| i.previous_output)).collect();
        for t in &self.made {
            if self.o.contains(&t.compute_wtxid()) {
                assert!(!t.input.iter().any(|i| spent.contains(&i.previous_output)), "a conflicted orphan stayed");
            }
        }
    }

    fn children(&self, sel: u8) {
        let Some(parent) = self.orphan(sel) else { return };
        let txid = parent.compute_txid();
        let got: Vec<Wtxid> = self.o.children_of(&txid).into_iter().map(|c| c.wtxid).collect();
        let mut want: Vec<(u64, Wtxid)> = Vec::new();
        for t in &self.made {
            let w = t.compute_wtxid();
            if self.o.contains(&w)
                && t.input.iter().any(|i| i.previous_output.txid == txid)
                && !want.iter().any(|x| x.1 == w)
            {
                want.push((self.arrival[&w].1, w));
            }
        }
        want.sort_unstable();
        assert_eq!(got, want.into_iter().map(|(_, w)| w).collect::<Vec<_>>(), "children of {txid}");
    }

    fn check(&self) {
        self.o.check_invariants();
        for t in &self.made {
            let w = t.compute_wtxid();
            if self.o.contains(&w) {
                let (at, _) = self.arrival[&w];
                assert!(at + self.o.limits().expiry_ms > self.now_ms, "an expired orphan stayed");
                assert!(!self.o.announcers(&w).is_empty());
            }
        }
    }
}

fn make(prevouts: &[OutPoint], outputs: usize, heavy: usize, tag: [u8; 2]) -> Transaction {
    let mut pad = vec![0u8; heavy];
    pad.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: prevouts
            .iter()
            .enumerate()
            .map(|(k, &previous_output)| TxIn {
                previous_output,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: if k == 0 && heavy > 0 {
                    Witness::from_slice(&[&pad[..], &[2u8; 33][..]])
                } else {
                    Witness::from_slice(&[&[0x30u8; 72][..], &[2u8; 33][..]])
                },
            })
            .collect(),
        output: (0..outputs)
            .map(|i| {
                let mut h = [0u8; 20];
                h[0] = tag[0];
                h[1] = tag[1];
                h[2] = i as u8;
                TxOut {
                    value: Amount::from_sat(1_000),
                    script_pubkey: ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(h)),
                }
            })
            .collect(),
    }
}

fuzz_target!(|input: (Setup, Vec<Op>)| {
    let (setup, ops) = input;
    let limits = OrphanLimits {
        max_latency_score: 8 + setup.latency as u64 % 128,
        reserved_weight_per_peer: 500 + setup.reserved as u64 * 100,
        max_orphan_weight: 400 + setup.max_weight as u64 * 100,
        ..OrphanLimits::default()
    };
    let mut run = Run { o: Orphanage::new(limits), made: Vec::new(), arrival: HashMap::new(), order: 0, now_ms: 0 };
    let ps = peers();
    for op in ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Add { peer, inputs, outputs, heavy, salt } => {
                let prevouts: Vec<OutPoint> = inputs.iter().take(MAX_INPUTS).map(|p| run.outpoint(*p)).collect();
                if prevouts.is_empty() {
                    continue;
                }
                let tx = Arc::new(make(&prevouts, 1 + outputs as usize % 4, heavy as usize * 16, [salt, 0]));
                run.made.push(tx.clone());
                run.add(ps[peer as usize % PEERS], tx);
            }
            Op::Announce { orphan, peer } => run.announce(orphan, ps[peer as usize % PEERS]),
            Op::Remove { orphan } => {
                if let Some(tx) = run.orphan(orphan) {
                    let w = tx.compute_wtxid();
                    let stored = run.o.contains(&w);
                    assert_eq!(run.o.remove(&w).is_some(), stored);
                    assert!(!run.o.contains(&w));
                }
            }
            Op::Block { include, spend } => run.block(&include, &spend),
            Op::PeerGone { peer } => {
                let p = ps[peer as usize % PEERS];
                run.o.peer_gone(p);
                assert_eq!(run.o.usage_of(p), PeerUsage::default());
                assert!(run.made.iter().all(|t| !run.o.has_from_peer(&t.compute_wtxid(), p)));
            }
            Op::Expire { minutes } => {
                run.now_ms += minutes as u64 * 60_000;
                run.o.expire(run.now_ms);
            }
            Op::Children { parent } => run.children(parent),
        }
        run.check();
    }
});
