//! Faults the node lives through without losing anything, made visible while they last: a disk
//! write that fails (disk full, LMDB map full) is kept and retried, and until it succeeds the
//! operator sees it in RPC `warnings` (`getblockchaininfo`, `getnetworkinfo`, as Core 28+ lists
//! its own warnings there), in a counter, and in the log.
//!
//! - [`NodeWarnings`]: the registry the failing side sets and clears and RPC reads.
//! - [`Backoff`]: the pacing of the retries, so a lasting fault costs a few writes and log lines a
//!   minute, not one per tick.

use bevy_ecs::prelude::Resource;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a warning is about: one entry per source, replaced while the fault lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WarningSource {
    /// The coin follower cannot write the coin store: the pool hears of no new block meanwhile.
    CoinStore,
    /// Accepted headers cannot be saved: they are kept in memory and retried.
    HeaderStore,
}

/// The node's current warnings, shared between the threads that raise them (the coin follower,
/// the world loop) and RPC, which reads them through the world (this is also a world resource).
/// Cheap to clone; clones share the entries.
#[derive(Resource, Clone, Debug, Default)]
pub struct NodeWarnings(Arc<Mutex<BTreeMap<WarningSource, String>>>);

impl NodeWarnings {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<WarningSource, String>> {
        // A panic while holding the lock left a complete map behind (each call is one insert or
        // remove): keep using it.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Raises (or rewords) the warning of `source`.
    pub fn set(&self, source: WarningSource, text: String) {
        self.entries().insert(source, text);
    }

    /// The fault of `source` is over.
    pub fn clear(&self, source: WarningSource) {
        self.entries().remove(&source);
    }

    /// Whether `source` has a warning up.
    pub fn is_set(&self, source: WarningSource) -> bool {
        self.entries().contains_key(&source)
    }

    /// The warnings as RPC lists them, in a fixed order (by source).
    pub fn list(&self) -> Vec<String> {
        self.entries().values().cloned().collect()
    }
}

/// First wait after a failed write.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two attempts: a fault that clears is noticed within this.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Waits between attempts at a failing write: [`RETRY_FIRST`], doubling to [`RETRY_MAX`].
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
    /// Failed attempts since the last success.
    pub failures: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: RETRY_FIRST, failures: 0 }
    }
}

impl Backoff {
    /// An attempt failed: how long to wait before the next one.
    pub fn failed(&mut self) -> Duration {
        self.failures += 1;
        let wait = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        wait
    }

    /// An attempt succeeded: the next failure starts from the shortest wait again. Returns the
    /// failures that came before it.
    pub fn succeeded(&mut self) -> u64 {
        std::mem::take(self).failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_restarts_after_a_success() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.succeeded(), 8);
        assert_eq!(b.failed(), RETRY_FIRST);
    }

    #[test]
    fn warnings_are_one_per_source_and_shared_by_clones() {
        let w = NodeWarnings::default();
        let seen_by_rpc = w.clone();
        w.set(WarningSource::HeaderStore, "headers".into());
        w.set(WarningSource::CoinStore, "coins, first".into());
        w.set(WarningSource::CoinStore, "coins".into());
        assert_eq!(seen_by_rpc.list(), ["coins", "headers"]);
        w.clear(WarningSource::CoinStore);
        assert_eq!(seen_by_rpc.list(), ["headers"]);
        assert!(!seen_by_rpc.is_set(WarningSource::CoinStore));
    }
}
