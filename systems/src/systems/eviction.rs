//! Which inbound peer to push out when a new one arrives and every slot is taken — Bitcoin Core's
//! rule: protect the peers an attacker finds hardest to imitate (diverse netgroups, low latency,
//! recent useful relay, long uptime), then evict the youngest of the largest remaining netgroup.

use bevy_ecs::prelude::Entity;

/// What eviction needs to know of one inbound peer.
#[derive(Clone, Debug)]
pub struct EvictionCandidate {
    /// The peer.
    pub entity: Entity,
    /// When it connected (ms).
    pub connected_ms: u64,
    /// Its best ping (u64::MAX when unmeasured).
    pub min_ping_ms: u64,
    /// Last novel tx from it (0 = never).
    pub last_tx_ms: u64,
    /// Last novel block from it (0 = never).
    pub last_block_ms: u64,
    /// Whether it asked for tx relay.
    pub relay_txs: bool,
    /// Its network group.
    pub group: [u8; 5],
    /// The group hashed with a node secret: which groups are protected cannot be predicted.
    pub keyed_group: u64,
    /// Loopback peer (protected with the uptime half, as Core protects local/onion peers).
    pub is_local: bool,
    /// Admitted while discouraged: among the unprotected, evicted before anyone else (Core's
    /// m_prefer_evict).
    pub prefer_evict: bool,
}

/// Removes up to `k` candidates that rank highest by `key` (they are protected).
fn protect_top<K: Ord>(c: &mut Vec<EvictionCandidate>, k: usize, key: impl Fn(&EvictionCandidate) -> K) {
    c.sort_by_key(|x| key(x));
    let keep = c.len().saturating_sub(k);
    c.truncate(keep);
}

/// Picks the peer to evict, or `None` when every candidate is protected.
pub fn select_to_evict(mut c: Vec<EvictionCandidate>) -> Option<Entity> {
    // One peer (the oldest) from each of the 4 highest keyed netgroups. Core protects the 4 highest
    // entries, which may share a group; distinct groups protect more diversity for the same 4 slots.
    c.sort_by_key(|x| (std::cmp::Reverse(x.keyed_group), x.connected_ms, x.entity));
    let mut seen: Vec<u64> = Vec::with_capacity(4);
    c.retain(|x| {
        if seen.len() < 4 && !seen.contains(&x.keyed_group) {
            seen.push(x.keyed_group);
            return false;
        }
        true
    });
    // Ties are broken by entity so the choice is deterministic.
    protect_top(&mut c, 8, |x| (std::cmp::Reverse(x.min_ping_ms), x.entity));
    protect_top(&mut c, 4, |x| (x.last_tx_ms, x.relay_txs, std::cmp::Reverse(x.connected_ms), x.entity));
    // Block-relay-only peers (no tx relay) that gave us blocks.
    let (mut block_only, mut rest): (Vec<_>, Vec<_>) = c.into_iter().partition(|x| !x.relay_txs && x.last_block_ms > 0);
    protect_top(&mut block_only, 8, |x| (x.last_block_ms, std::cmp::Reverse(x.connected_ms), x.entity));
    rest.append(&mut block_only);
    c = rest;
    protect_top(&mut c, 4, |x| (x.last_block_ms, std::cmp::Reverse(x.connected_ms), x.entity));
    // Half of the rest by uptime; a quarter of the total for local peers first.
    let half = c.len() / 2;
    let local_quota = (half / 2).min(c.iter().filter(|x| x.is_local).count());
    let (mut local, mut others): (Vec<_>, Vec<_>) = c.into_iter().partition(|x| x.is_local);
    protect_top(&mut local, local_quota, |x| (std::cmp::Reverse(x.connected_ms), x.entity));
    others.append(&mut local);
    c = others;
    protect_top(&mut c, half - local_quota, |x| (std::cmp::Reverse(x.connected_ms), x.entity));
    if c.is_empty() {
        return None;
    }
    if c.iter().any(|x| x.prefer_evict) {
        c.retain(|x| x.prefer_evict);
    }
    // The largest netgroup; ties go to the group whose newest member is youngest.
    let mut groups: Vec<([u8; 5], usize, u64)> = Vec::new();
    for x in &c {
        match groups.iter_mut().find(|g| g.0 == x.group) {
            Some(g) => {
                g.1 += 1;
                g.2 = g.2.max(x.connected_ms);
            }
            None => groups.push((x.group, 1, x.connected_ms)),
        }
    }
    let (group, _, _) = groups.into_iter().max_by_key(|g| (g.1, g.2, g.0))?;
    c.into_iter().filter(|x| x.group == group).max_by_key(|x| (x.connected_ms, x.entity)).map(|x| x.entity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy_ecs::world::World;

    fn cand(world: &mut World, i: u64, group: u8) -> EvictionCandidate {
        EvictionCandidate {
            entity: world.spawn_empty().id(),
            connected_ms: 1000 + i,
            min_ping_ms: 500 + i,
            last_tx_ms: 0,
            last_block_ms: 0,
            relay_txs: true,
            group: [1, group, 0, 0, 0],
            keyed_group: group as u64 * 7919 % 101,
            is_local: false,
            prefer_evict: false,
        }
    }

    #[test]
    fn a_discouraged_peer_goes_first_once_the_protected_are_set_aside() {
        let mut w = World::new();
        let mut c: Vec<_> = (0..40).map(|i| cand(&mut w, i, (i % 3) as u8)).collect();
        // A young, slow peer outside the largest group: plain rules take the largest group's youngest.
        c[38].prefer_evict = true;
        let marked = c[38].entity;
        let plain: Vec<_> = c
            .iter()
            .cloned()
            .map(|mut x| {
                x.prefer_evict = false;
                x
            })
            .collect();
        assert_ne!(select_to_evict(plain), Some(marked));
        assert_eq!(select_to_evict(c), Some(marked));
    }

    #[test]
    fn too_few_candidates_are_all_protected() {
        let mut w = World::new();
        let c: Vec<_> = (0..12).map(|i| cand(&mut w, i, i as u8)).collect();
        assert_eq!(select_to_evict(c), None);
    }

    #[test]
    fn evicts_the_youngest_of_the_largest_netgroup() {
        let mut w = World::new();
        let mut c: Vec<_> = (0..20).map(|i| cand(&mut w, i, i as u8)).collect();
        // an attacker: 20 peers from one /16, connected last, slow pings
        let attackers: Vec<_> = (0..20)
            .map(|i| {
                let mut a = cand(&mut w, 100 + i, 200);
                a.min_ping_ms = 9_000;
                a
            })
            .collect();
        let youngest = attackers.last().map(|a| a.entity);
        c.extend(attackers);
        assert_eq!(select_to_evict(c), youngest);
    }

    #[test]
    fn recent_block_and_tx_relayers_and_fast_peers_are_protected() {
        let mut w = World::new();
        let mut c: Vec<_> = (0..40).map(|i| cand(&mut w, i, 9)).collect();
        c[39].last_block_ms = 5_000; // youngest, but it gave us a block
        c[38].last_tx_ms = 5_000; // gave us a tx
        c[37].min_ping_ms = 1; // fastest
        let protected = [c[39].entity, c[38].entity, c[37].entity];
        let chosen = select_to_evict(c.clone()).unwrap();
        assert!(!protected.contains(&chosen));
        assert_eq!(chosen, c[36].entity, "youngest unprotected peer of the only group");
    }
}
