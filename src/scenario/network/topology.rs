//! Who connects to whom: a random graph drawn from the seed. A share of the nodes listen; every
//! node dials `outbound` distinct listening nodes other than itself (fewer only when there are not
//! that many). Inbound slots are not planned here: a listener dialed more often than its limit
//! allows refuses or evicts as its own admission rules say, as a real node would.

use oni_systems::resources::Rng;

/// One planned connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The node that dials (its outbound full-relay connection).
    pub dialer: usize,
    /// The listening node it dials.
    pub listener: usize,
}

/// The network's graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Whether each node accepts inbound connections.
    pub listening: Vec<bool>,
    /// Every connection, in dialing order (dialer, then draw order).
    pub edges: Vec<Edge>,
}

impl Topology {
    /// A graph of `nodes` nodes drawn from `seed`: `round(nodes × listen_fraction)` listeners (at
    /// least one), each node dialing `outbound` of them.
    pub fn random(seed: u64, nodes: usize, outbound: usize, listen_fraction: f64) -> Topology {
        let mut rng = Rng::seeded(seed ^ 0x7090_1091_ed6e_5eed);
        let listeners_n = ((nodes as f64 * listen_fraction).round() as usize).clamp(1, nodes);
        // A seeded shuffle; its first `listeners_n` listen.
        let mut order: Vec<usize> = (0..nodes).collect();
        for i in (1..nodes).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut listening = vec![false; nodes];
        let mut listeners: Vec<usize> = order[..listeners_n].to_vec();
        listeners.sort_unstable();
        for &l in &listeners {
            listening[l] = true;
        }
        let mut edges = Vec::with_capacity(nodes * outbound);
        for (dialer, &listens) in listening.iter().enumerate() {
            let candidates = listeners.len() - usize::from(listens);
            let want = outbound.min(candidates);
            let mut picked: Vec<usize> = Vec::with_capacity(want);
            while picked.len() < want {
                let l = listeners[rng.below(listeners.len() as u64) as usize];
                if l != dialer && !picked.contains(&l) {
                    picked.push(l);
                }
            }
            edges.extend(picked.into_iter().map(|listener| Edge { dialer, listener }));
        }
        Topology { listening, edges }
    }

    /// Outbound connections planned for `node`.
    pub fn outbound_of(&self, node: usize) -> usize {
        self.edges.iter().filter(|e| e.dialer == node).count()
    }

    /// Inbound connections planned for `node`.
    pub fn inbound_of(&self, node: usize) -> usize {
        self.edges.iter().filter(|e| e.listener == node).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_dials_its_outbound_count_of_listeners_only() {
        let t = Topology::random(7, 200, 8, 0.3);
        assert_eq!(t.listening.iter().filter(|l| **l).count(), 60);
        for n in 0..200 {
            assert_eq!(t.outbound_of(n), 8, "node {n}");
            if !t.listening[n] {
                assert_eq!(t.inbound_of(n), 0, "node {n} does not listen");
            }
        }
        for e in &t.edges {
            assert!(t.listening[e.listener] && e.listener != e.dialer, "{e:?}");
        }
        let mut pairs = t.edges.clone();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(pairs.len(), t.edges.len(), "no node dials the same listener twice");
    }

    #[test]
    fn the_seed_decides_the_graph() {
        assert_eq!(Topology::random(1, 50, 8, 0.5), Topology::random(1, 50, 8, 0.5));
        assert_ne!(Topology::random(1, 50, 8, 0.5), Topology::random(2, 50, 8, 0.5));
    }

    #[test]
    fn few_listeners_cap_the_outbound_count() {
        let t = Topology::random(3, 10, 8, 0.3);
        assert_eq!(t.listening.iter().filter(|l| **l).count(), 3);
        for n in 0..10 {
            let expect = if t.listening[n] { 2 } else { 3 };
            assert_eq!(t.outbound_of(n), expect, "node {n}");
        }
    }
}
