//! Node-wide transaction relay state shared by several systems (inv_filter, tx_accept,
//! tx_announce) and by the pool's local submissions: what was seen, rejected or confirmed lately,
//! and the announcer's pacing.

use super::rolling_filter::RollingFilter;
use super::Rng;
use crate::mempool::policy::TxReject;
use bevy_ecs::prelude::*;

/// Entries of the node-wide recently seen / rejected filters (Core: 120,000).
pub const RECENT_TXS: usize = 120_000;

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
    /// Filters keyed from the node's rng. All three share size and keys, so a lookup hashes once.
    pub fn new(rng: &mut Rng) -> Self {
        let keys = [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()];
        TxRelayState {
            seen: RollingFilter::new(RECENT_TXS, 1e-6, keys),
            rejected: RollingFilter::new(RECENT_TXS, 1e-6, keys),
            confirmed: RollingFilter::new(RECENT_TXS, 1e-6, keys),
        }
    }

    /// Whether `hash` needs no request.
    #[inline]
    pub fn already_have(&self, hash: &[u8; 32]) -> bool {
        let at = self.seen.locate(hash);
        self.seen.contains_at(at) || self.rejected.contains_at(at) || self.confirmed.contains_at(at)
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
