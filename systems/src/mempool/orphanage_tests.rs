use super::*;
use crate::resources::Rng;
use bevy_ecs::world::World;
use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, ScriptBuf, Sequence, TxIn, TxOut, WPubkeyHash, Witness};

fn peers(n: usize) -> Vec<Entity> {
    let mut w = World::new();
    (0..n).map(|_| w.spawn_empty().id()).collect()
}

fn bytes<const N: usize>(rng: &mut Rng) -> [u8; N] {
    let mut out = [0u8; N];
    for b in out.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    out
}

fn random_outpoint(rng: &mut Rng) -> OutPoint {
    OutPoint { txid: Txid::from_byte_array(bytes(rng)), vout: rng.below(4) as u32 }
}

/// A P2WPKH-looking spend: each input carries a 72-byte signature and a 33-byte key in its witness,
/// each output pays a random key hash.
fn spend(prevouts: &[OutPoint], outputs: usize, rng: &mut Rng) -> Transaction {
    let input = prevouts
        .iter()
        .map(|&previous_output| {
            let mut sig: [u8; 72] = bytes(rng);
            sig[0] = 0x30;
            let mut key: [u8; 33] = bytes(rng);
            key[0] = 0x02;
            TxIn {
                previous_output,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::from_slice(&[&sig[..], &key[..]]),
            }
        })
        .collect();
    let output = (0..outputs)
        .map(|_| TxOut {
            value: Amount::from_sat(1_000 + rng.below(1_000_000)),
            script_pubkey: ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(bytes(rng))),
        })
        .collect();
    Transaction { version: Version::TWO, lock_time: LockTime::ZERO, input, output }
}

/// An orphan spending `inputs` random (unknown) outpoints.
fn orphan(rng: &mut Rng, inputs: usize, outputs: usize) -> Arc<Transaction> {
    let prevouts: Vec<OutPoint> = (0..inputs).map(|_| random_outpoint(rng)).collect();
    Arc::new(spend(&prevouts, outputs, rng))
}

/// An orphan with 1..=max_inputs inputs and 1..=max_outputs outputs.
fn some_orphan(rng: &mut Rng, max_inputs: u64, max_outputs: u64) -> Arc<Transaction> {
    let inputs = 1 + rng.below(max_inputs) as usize;
    let outputs = 1 + rng.below(max_outputs) as usize;
    orphan(rng, inputs, outputs)
}

fn wtxid(tx: &Transaction) -> Wtxid {
    tx.compute_wtxid()
}

/// Every counter, index and bound (see [`Orphanage::check_invariants`]).
fn check(o: &Orphanage) {
    o.check_invariants();
}

/// Output count giving the heaviest one-input orphan within `max_wu` (each extra P2WPKH output
/// adds 124 WU once the output count needs a 3-byte varint, from 253 on).
fn outputs_for_weight(max_wu: u64, rng: &mut Rng) -> usize {
    let base = 300;
    let w0 = orphan(rng, 1, base).weight().to_wu();
    base + ((max_wu - w0) / 124) as usize
}

#[test]
fn defaults_are_cores_numbers_and_twenty_minutes() {
    let l = OrphanLimits::default();
    assert_eq!(l.max_latency_score, 3_000);
    assert_eq!(l.reserved_weight_per_peer, 404_000);
    assert_eq!(l.max_orphan_weight, 400_000);
    assert_eq!(l.expiry_ms, 1_200_000);
    assert_eq!(Orphanage::default().limits(), &l);
}

#[test]
fn an_orphan_heavier_than_standard_is_refused_one_at_the_limit_is_kept() {
    let p = peers(1);
    let mut rng = Rng::seeded(1);
    let n = outputs_for_weight(MAX_ORPHAN_WEIGHT, &mut rng);
    let at_limit = orphan(&mut rng, 1, n);
    let over = orphan(&mut rng, 1, n + 1);
    assert!(at_limit.weight().to_wu() <= MAX_ORPHAN_WEIGHT);
    assert!(over.weight().to_wu() > MAX_ORPHAN_WEIGHT);
    assert_eq!(o_add(&mut Orphanage::default(), &over, p[0]), AddOutcome::TooLarge { weight: over.weight().to_wu() });
    let mut o = Orphanage::default();
    assert_eq!(o_add(&mut o, &over, p[0]), AddOutcome::TooLarge { weight: over.weight().to_wu() });
    assert!(o.is_empty() && o.peer_count() == 0, "nothing stored, nobody charged");
    assert_eq!(o_add(&mut o, &at_limit, p[0]), AddOutcome::Added);
    assert_eq!(o.total_weight(), at_limit.weight().to_wu());
    check(&o);
}

fn o_add(o: &mut Orphanage, tx: &Arc<Transaction>, peer: Entity) -> AddOutcome {
    o.add(Arc::clone(tx), peer, 0)
}

/// Bounds where only the count (latency score) binds: with real transactions (> 400 WU each) one
/// peer's 404,000 WU fill long before 3,000 orphans; the count bound binds when many peers share it.
fn count_only() -> OrphanLimits {
    OrphanLimits { reserved_weight_per_peer: 100_000_000, ..OrphanLimits::default() }
}

#[test]
fn count_bound_evicts_the_oldest_when_one_peer_is_alone() {
    let p = peers(1);
    let mut rng = Rng::seeded(2);
    let mut o = Orphanage::new(count_only());
    let txs: Vec<_> = (0..3_001).map(|_| some_orphan(&mut rng, 9, 1)).collect();
    for tx in &txs[..3_000] {
        assert_eq!(o_add(&mut o, tx, p[0]), AddOutcome::Added);
    }
    assert_eq!((o.len(), o.latency_score(), o.evicted_total()), (3_000, 3_000, 0), "exactly at the bound");
    assert_eq!(o_add(&mut o, &txs[3_000], p[0]), AddOutcome::Added);
    assert_eq!((o.len(), o.latency_score(), o.evicted_total()), (3_000, 3_000, 1));
    assert!(!o.contains(&wtxid(&txs[0])), "the oldest left");
    assert!(o.contains(&wtxid(&txs[1])) && o.contains(&wtxid(&txs[3_000])));
    check(&o);
}

#[test]
fn orphans_with_many_inputs_count_more_against_the_count_bound() {
    let p = peers(1);
    let mut rng = Rng::seeded(3);
    let mut o = Orphanage::new(count_only());
    // 25 inputs: 1 + 25 / 10 = 3 points each, so 1,000 fit.
    for _ in 0..1_000 {
        assert_eq!(o.add(orphan(&mut rng, 25, 1), p[0], 0), AddOutcome::Added);
    }
    assert_eq!((o.len(), o.latency_score(), o.usage_of(p[0]).latency_score), (1_000, 3_000, 3_000));
    o.add(orphan(&mut rng, 25, 1), p[0], 0);
    assert_eq!((o.len(), o.evicted_total()), (1_000, 1));
    check(&o);
}

#[test]
fn weight_bound_is_the_reserved_weight_times_the_peers_holding_orphans() {
    let p = peers(2);
    let mut rng = Rng::seeded(4);
    let mut o = Orphanage::default();
    // ~100k WU each: four fit in one peer's 404,000, the fifth pushes the oldest out.
    let n = outputs_for_weight(100_000, &mut rng);
    let heavy: Vec<_> = (0..8).map(|_| orphan(&mut rng, 1, n)).collect();
    for tx in &heavy[..4] {
        assert_eq!(o_add(&mut o, tx, p[0]), AddOutcome::Added);
    }
    assert_eq!((o.len(), o.evicted_total()), (4, 0));
    assert_eq!(o.max_total_weight(), 404_000);
    o_add(&mut o, &heavy[4], p[0]);
    assert_eq!((o.len(), o.evicted_total()), (4, 1));
    assert!(!o.contains(&wtxid(&heavy[0])));
    assert!(o.total_weight() <= 404_000);
    check(&o);
    // A second peer with one small orphan doubles the bound: peer 0 may now exceed its own share
    // while the global bound holds.
    o.add(orphan(&mut rng, 1, 1), p[1], 0);
    assert_eq!(o.max_total_weight(), 808_000);
    for tx in &heavy[5..8] {
        o_add(&mut o, tx, p[0]);
    }
    assert_eq!(o.evicted_total(), 1, "still within the global bound");
    assert!(o.usage_of(p[0]).weight > RESERVED_WEIGHT_PER_PEER, "over its share, allowed");
    assert_eq!(o.len(), 8);
    check(&o);
    // The second peer leaves: the bound shrinks back and the first is trimmed to it, oldest first.
    assert_eq!(o.peer_gone(p[1]), 1);
    assert_eq!(o.max_total_weight(), 404_000);
    assert_eq!(o.len(), 4);
    assert!(heavy[4..].iter().all(|tx| o.contains(&wtxid(tx))));
    assert_eq!(o.evicted_total(), 4);
    check(&o);
}

#[test]
fn a_peer_over_its_share_pays_when_another_peer_pushes_past_the_bound() {
    let p = peers(2);
    let mut rng = Rng::seeded(5);
    let mut o = Orphanage::new(count_only());
    let a: Vec<_> = (0..3_000).map(|_| orphan(&mut rng, 1, 1)).collect();
    for tx in &a {
        o_add(&mut o, tx, p[0]);
    }
    assert_eq!(o.latency_share(), 3_000, "alone, the whole bound is its share");
    let b: Vec<_> = (0..10).map(|_| orphan(&mut rng, 2, 2)).collect();
    for tx in &b {
        assert_eq!(o_add(&mut o, tx, p[1]), AddOutcome::Added);
    }
    assert_eq!(o.latency_share(), 1_500);
    assert!(b.iter().all(|tx| o.has_from_peer(&wtxid(tx), p[1])), "within its share: untouched");
    assert_eq!(o.usage_of(p[0]).announcements, 2_990, "one of the over-share peer's per arrival");
    assert!(a[..10].iter().all(|tx| !o.contains(&wtxid(tx))), "its oldest first");
    assert_eq!(o.evicted_total(), 10);
    check(&o);
}

#[test]
fn an_orphan_over_the_whole_share_is_evicted_at_once() {
    let p = peers(2);
    let mut rng = Rng::seeded(6);
    let limits = OrphanLimits { max_latency_score: 10, ..OrphanLimits::default() };
    let mut o = Orphanage::new(limits);
    o.add(orphan(&mut rng, 1, 1), p[1], 0);
    // 100 inputs score 11, over the bound; its peer's share is 5 and it is the worst.
    let big = orphan(&mut rng, 100, 1);
    assert_eq!(o_add(&mut o, &big, p[0]), AddOutcome::EvictedAtOnce);
    assert!(!o.contains(&wtxid(&big)));
    assert_eq!((o.len(), o.peer_count(), o.evicted_total()), (1, 1, 1));
    check(&o);
}

#[test]
fn equal_scores_evict_from_the_greater_entity_first() {
    let p = peers(3);
    let (first, second) = (p[0].min(p[1]), p[0].max(p[1]));
    let mut rng = Rng::seeded(7);
    let mut o = Orphanage::new(OrphanLimits { max_latency_score: 10, ..OrphanLimits::default() });
    for _ in 0..5 {
        o.add(orphan(&mut rng, 1, 1), first, 0);
        o.add(orphan(&mut rng, 1, 1), second, 0);
    }
    assert_eq!(o.evicted_total(), 0);
    o.add(orphan(&mut rng, 1, 1), p[2], 0);
    assert_eq!(o.usage_of(first).announcements, 5);
    assert_eq!(o.usage_of(second).announcements, 4);
    check(&o);
}

#[test]
fn expiry_is_twenty_minutes_after_first_arrival() {
    let p = peers(2);
    let mut rng = Rng::seeded(8);
    let mut o = Orphanage::default();
    let t0 = 5_000;
    let early = orphan(&mut rng, 1, 2);
    let late = orphan(&mut rng, 1, 2);
    o.add(Arc::clone(&early), p[0], t0);
    // Re-announced ten minutes later by another peer: the lifetime is not extended.
    assert_eq!(o.add(Arc::clone(&early), p[1], t0 + 600_000), AddOutcome::AlreadyHad { new_announcer: true });
    o.add(Arc::clone(&late), p[0], t0 + 60_000);
    assert_eq!(o.expire(t0 + 19 * 60_000 + 59_999), 0, "19:59.999 kept");
    assert!(o.contains(&wtxid(&early)));
    assert_eq!(o.expire(t0 + 20 * 60_000), 1, "20:00 gone");
    assert!(!o.contains(&wtxid(&early)) && o.contains(&wtxid(&late)));
    assert_eq!(o.usage_of(p[1]), PeerUsage::default());
    assert_eq!(o.expire(t0 + 60 * 60_000), 1);
    assert!(o.is_empty());
    assert_eq!(o.expired_total(), 2);
    check(&o);
}

#[test]
fn children_come_by_parent_in_arrival_order_and_leave_when_accepted() {
    let p = peers(2);
    let mut rng = Rng::seeded(9);
    let mut o = Orphanage::default();
    let parent = spend(&[random_outpoint(&mut rng)], 3, &mut rng);
    let ptxid = parent.compute_txid();
    let out = |vout| OutPoint { txid: ptxid, vout };
    let c2 = Arc::new(spend(&[out(1)], 1, &mut rng));
    let c1 = Arc::new(spend(&[out(0), out(2), random_outpoint(&mut rng)], 1, &mut rng));
    let c3 = Arc::new(spend(&[out(0)], 2, &mut rng));
    let grandchild = Arc::new(spend(&[OutPoint { txid: c1.compute_txid(), vout: 0 }], 1, &mut rng));
    let unrelated = orphan(&mut rng, 1, 1);
    o_add(&mut o, &c2, p[1]);
    o_add(&mut o, &c1, p[0]);
    o_add(&mut o, &grandchild, p[0]);
    o_add(&mut o, &c3, p[0]);
    o_add(&mut o, &unrelated, p[0]);
    o_add(&mut o, &c1, p[1]);

    let kids = o.children_of(&ptxid);
    let ids: Vec<Wtxid> = kids.iter().map(|c| c.wtxid).collect();
    assert_eq!(ids, vec![wtxid(&c2), wtxid(&c1), wtxid(&c3)], "arrival order, each once, no grandchild");
    assert_eq!(kids[1].announcers.as_slice(), &[p[0], p[1]]);
    assert_eq!(kids[0].tx, c2);
    assert_eq!(o.children_of(&c1.compute_txid()).iter().map(|c| c.wtxid).collect::<Vec<_>>(), vec![wtxid(&grandchild)]);
    assert!(o.children_of(&unrelated.compute_txid()).is_empty());

    // Two inputs of c1 share a parent: that parent is listed once, in input order.
    let parents = o.parent_txids(&wtxid(&c1)).unwrap();
    assert_eq!(parents.as_slice(), &[ptxid, c1.input[2].previous_output.txid]);
    assert!(o.parent_txids(&Wtxid::all_zeros()).is_none());

    // The parent arrived and c1 was accepted: it leaves with both announcements.
    assert_eq!(o.remove(&wtxid(&c1)), Some(Arc::clone(&c1)));
    assert_eq!(o.remove(&wtxid(&c1)), None);
    let ids: Vec<Wtxid> = o.children_of(&ptxid).iter().map(|c| c.wtxid).collect();
    assert_eq!(ids, vec![wtxid(&c2), wtxid(&c3)]);
    assert_eq!(o.usage_of(p[1]).announcements, 1);
    check(&o);
}

#[test]
fn a_block_removes_the_orphans_it_includes_and_those_it_conflicts_with() {
    let p = peers(1);
    let mut rng = Rng::seeded(10);
    let mut o = Orphanage::default();
    let included = orphan(&mut rng, 2, 2);
    let conflicted = orphan(&mut rng, 3, 1);
    let kept = orphan(&mut rng, 2, 1);
    for tx in [&included, &conflicted, &kept] {
        o_add(&mut o, tx, p[0]);
    }
    let coinbase = spend(&[OutPoint::null()], 1, &mut rng);
    // Spends conflicted's second input, with a different transaction.
    let rival = spend(&[conflicted.input[1].previous_output, random_outpoint(&mut rng)], 1, &mut rng);
    let other = spend(&[random_outpoint(&mut rng)], 1, &mut rng);
    let block = vec![coinbase, (*included).clone(), rival, other];
    assert_eq!(o.remove_for_block(&block), 2);
    assert!(!o.contains(&wtxid(&included)) && !o.contains(&wtxid(&conflicted)));
    assert!(o.contains(&wtxid(&kept)));
    assert_eq!(o.remove_for_block(&block), 0, "nothing left to remove");
    check(&o);
}

#[test]
fn a_disconnect_drops_only_the_orphans_nobody_else_announced() {
    let p = peers(2);
    let mut rng = Rng::seeded(11);
    let mut o = Orphanage::default();
    let solo = orphan(&mut rng, 1, 1);
    let shared = orphan(&mut rng, 12, 1);
    assert_eq!(o_add(&mut o, &solo, p[0]), AddOutcome::Added);
    assert_eq!(o_add(&mut o, &shared, p[0]), AddOutcome::Added);
    assert_eq!(o_add(&mut o, &solo, p[0]), AddOutcome::AlreadyHad { new_announcer: false });
    assert_eq!(o_add(&mut o, &shared, p[1]), AddOutcome::AlreadyHad { new_announcer: true });
    assert!(!o.add_announcer(&wtxid(&shared), p[1]), "already an announcer");
    assert!(!o.add_announcer(&Wtxid::all_zeros(), p[1]), "not stored");
    // A shared orphan is counted once globally but charged to both peers.
    assert_eq!(o.total_weight(), solo.weight().to_wu() + shared.weight().to_wu());
    assert_eq!(o.usage_of(p[1]).weight, shared.weight().to_wu());
    assert_eq!((o.announcement_count(), o.latency_score()), (3, 3 + 1));
    assert_eq!(o.peer_gone(p[0]), 1);
    assert!(!o.contains(&wtxid(&solo)));
    assert_eq!(o.announcers(&wtxid(&shared)).as_slice(), &[p[1]]);
    assert_eq!(o.usage_of(p[0]), PeerUsage::default());
    assert_eq!(o.peer_count(), 1);
    assert_eq!(o.peer_gone(p[0]), 0);
    assert_eq!(o.peer_gone(p[1]), 1);
    assert!(o.is_empty());
    check(&o);
}

#[test]
fn a_flood_from_one_peer_never_evicts_an_honest_peers_orphans() {
    let p = peers(11);
    let (attacker, honest) = (p[0], &p[1..]);
    let mut rng = Rng::seeded(12);
    let mut o = Orphanage::default();
    let mut kept: Vec<(Wtxid, Entity)> = Vec::new();
    for i in 0..5_000u64 {
        let tx = some_orphan(&mut rng, 30, 10);
        o.add(tx, attacker, i * 10);
        if i % 500 == 0 {
            for (k, &h) in honest.iter().enumerate() {
                let tx = orphan(&mut rng, 1 + k % 3, 2);
                assert_eq!(o.add(Arc::clone(&tx), h, i * 10), AddOutcome::Added);
                kept.push((wtxid(&tx), h));
            }
        }
        // The attacker also announces honest orphans: dropping its announcement must not drop them.
        if i % 250 == 125 {
            let (w, _) = kept[rng.below(kept.len() as u64) as usize];
            o.add_announcer(&w, attacker);
        }
        if i % 251 == 0 {
            check(&o);
        }
    }
    check(&o);
    assert!(kept.iter().all(|(w, h)| o.has_from_peer(w, *h)), "every honest orphan survived");
    assert_eq!(kept.len(), 100);
    assert!(o.evicted_total() > 3_000, "the flood paid for itself: {}", o.evicted_total());
    assert!(o.usage_of(attacker).latency_score <= MAX_LATENCY_SCORE);
    assert!(honest.iter().all(|&h| o.usage_of(h).latency_score <= o.latency_share()));
}

#[test]
fn a_flood_of_heavy_orphans_never_evicts_an_honest_peers_orphans() {
    let p = peers(4);
    let (attacker, honest) = (p[0], &p[1..]);
    let mut rng = Rng::seeded(13);
    let mut o = Orphanage::default();
    let mut kept = Vec::new();
    for &h in honest {
        for _ in 0..3 {
            let outputs = 2 + rng.below(40) as usize;
            let tx = orphan(&mut rng, 2, outputs);
            o.add(Arc::clone(&tx), h, 0);
            kept.push((wtxid(&tx), h));
        }
    }
    for i in 0..60 {
        let outputs = 400 + rng.below(2_800) as usize;
        let tx = some_orphan(&mut rng, 3, 1);
        let tx = orphan(&mut rng, tx.input.len(), outputs);
        o.add(tx, attacker, i);
        check(&o);
    }
    assert!(kept.iter().all(|(w, h)| o.has_from_peer(w, *h)));
    assert!(o.evicted_total() > 0);
    assert!(o.total_weight() <= 4 * RESERVED_WEIGHT_PER_PEER);
}

#[test]
fn the_same_inputs_give_the_same_survivors() {
    // Two orphanages (each map has its own random hasher) fed the same seeded stream end equal.
    let p = peers(5);
    let run = || {
        let mut rng = Rng::seeded(14);
        let mut o = Orphanage::new(OrphanLimits { max_latency_score: 200, ..OrphanLimits::default() });
        let mut log = Vec::new();
        for i in 0..1_500u64 {
            let peer = p[rng.below(5) as usize];
            let tx = some_orphan(&mut rng, 25, 1);
            log.push((wtxid(&tx), o.add(tx, peer, i * 60_000)));
            if i % 300 == 299 {
                o.peer_gone(p[rng.below(5) as usize]);
                o.expire(i * 60_000);
            }
        }
        let alive: Vec<bool> = log.iter().map(|(w, _)| o.contains(w)).collect();
        (log, alive, o.evicted_total(), o.expired_total())
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(a.2 > 0 && a.3 > 0, "evictions and expiries happened");
}

#[test]
fn with_a_full_house_of_peers_the_count_bound_binds_and_shares_hold() {
    // 125 peers: each one's share is 3,000 / 125 = 24 points, the weight bound 50.5M WU is far.
    let p = peers(125);
    let (attacker, honest) = (p[0], &p[1..]);
    let mut rng = Rng::seeded(15);
    let mut o = Orphanage::default();
    let mut kept = Vec::new();
    for &h in honest {
        for _ in 0..20 {
            let tx = some_orphan(&mut rng, 9, 3);
            o.add(Arc::clone(&tx), h, 0);
            kept.push((wtxid(&tx), h));
        }
    }
    assert_eq!(o.latency_share(), 24);
    for i in 0..2_000 {
        o.add(some_orphan(&mut rng, 9, 3), attacker, i);
    }
    check(&o);
    assert_eq!(o.latency_score(), MAX_LATENCY_SCORE, "the count bound is what binds");
    assert!(o.total_weight() < o.max_total_weight() / 10);
    assert!(kept.iter().all(|(w, h)| o.has_from_peer(w, *h)), "all 2,480 honest orphans survived");
    assert_eq!(o.usage_of(attacker).announcements, 3_000 - 2_480);
    assert_eq!(o.evicted_total(), 2_000 - 520);
}
