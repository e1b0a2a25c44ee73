//! Node-wide transaction relay state shared by several systems (inv_filter, tx_accept,
//! tx_announce) and by the pool's local submissions: what was seen, rejected or confirmed lately,
//! and the announcer's pacing.

use super::rolling_filter::RollingFilter;
use super::Rng;
use crate::mempool::policy::TxReject;
use bevy_ecs::prelude::*;

/// Entries of the node-wide recently seen / rejected filters (Core: 120,000).
pub const RECENT_TXS: usize = 120_000;
/// Entries of the recently confirmed filter (Core: 48,000): some six full blocks' txids and
/// wtxids, all a peer could still be announcing after a block; more only costs memory (0.9 MB
/// at 120,000, all of it touched as every block inserts).
pub const RECENT_CONFIRMED_TXS: usize = 48_000;

/// Node-wide memory of transactions, so a replayed or rejected one is never requested twice.
#[derive(Resource, Debug)]
pub struct TxRelayState {
    /// Transactions we received lately.
    pub seen: RollingFilter,
    /// Transactions we rejected lately (reset on a new tip, as Core does).
    pub rejected: RollingFilter,
    /// Transactions confirmed lately.
    pub confirmed: RollingFilter,
}

impl TxRelayState {
    /// Filters keyed from the node's rng. Seen and rejected share size and keys, so a lookup
    /// hashes once for both.
    pub fn new(rng: &mut Rng) -> Self {
        let keys = [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()];
        TxRelayState {
            seen: RollingFilter::new(RECENT_TXS, 1e-6, keys),
            rejected: RollingFilter::new(RECENT_TXS, 1e-6, keys),
            confirmed: RollingFilter::new(RECENT_CONFIRMED_TXS, 1e-6, keys),
        }
    }

    /// Whether `hash` needs no request.
    #[inline]
    pub fn already_have(&self, hash: &[u8; 32]) -> bool {
        let at = self.seen.locate(hash);
        self.seen.contains_at(at) || self.rejected.contains_at(at) || self.confirmed.contains(hash)
    }

    /// Remembers a rejection: the wtxid always, the txid too unless the witness may be what failed
    /// (then a copy with another witness may still be good). A witness-stripped copy says nothing
    /// about the real transaction and is not remembered (as Core).
    pub fn remember_rejected(&mut self, txid: &[u8; 32], wtxid: &[u8; 32], reason: TxReject) {
        if reason == TxReject::WitnessStripped {
            return;
        }
        self.rejected.insert(wtxid);
        if !reason.may_be_witness_specific() {
            self.rejected.insert(txid);
        }
    }
}

/// Node-wide announcer state.
#[derive(Resource, Debug, Default)]
pub struct TxAnnounceState {
    /// The shared inbound trickle (clock ms).
    pub next_inbound_ms: u64,
    /// Whether relay is slowed now (exported as a gauge).
    pub slowed: bool,
    /// Ticks that ran slowed (a counter for operators).
    pub slowed_ticks: u64,
    /// Earliest per-peer trickle or feefilter time found by the last scan: until then (and with
    /// nothing new to announce, no new peer, no inbound trickle, no big floor move) a tick skips
    /// the scan over peers.
    pub earliest_due_ms: u64,
    /// The floor the last scan saw.
    pub scanned_floor: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u32, salt: u8) -> [u8; 32] {
        let mut h = [salt; 32];
        h[..4].copy_from_slice(&i.to_le_bytes());
        h[28..].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        h
    }

    #[test]
    fn the_last_48_000_confirmed_need_no_request_in_a_third_of_the_memory() {
        let mut state = TxRelayState::new(&mut Rng::seeded(7));
        for i in 0..100_000 {
            state.confirmed.insert(&hash(i, 1));
        }
        assert!((100_000 - RECENT_CONFIRMED_TXS as u32..100_000).all(|i| state.already_have(&hash(i, 1))));
        assert!(!state.already_have(&hash(0, 1)), "the oldest confirmed were forgotten");
        assert!((0..50_000).all(|i| !state.already_have(&hash(i, 2))), "nothing else is had");
        assert!(state.confirmed.memory_bytes() * 2 < state.seen.memory_bytes());
        // Seen and rejected still answer through the shared location.
        state.seen.insert(&hash(5, 3));
        state.remember_rejected(&hash(6, 3), &hash(7, 3), TxReject::VinEmpty);
        assert!(state.already_have(&hash(5, 3)) && state.already_have(&hash(6, 3)) && state.already_have(&hash(7, 3)));
    }
}
