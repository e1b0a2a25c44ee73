//! Transactions between the systems that receive them and the one that checks them, and what the
//! checker hands to the announcer. Bounded in count and in bytes: when the checker lags, new
//! arrivals are dropped and
//! counted (their announcers stay in the request tracker's memory, so nothing is asked twice), and
//! relay slows (see [`TxIntake::backlogged`]).

use bevy_ecs::prelude::*;
use bitcoin::{Transaction, Txid};
use std::collections::VecDeque;
use std::sync::Arc;

/// Transactions waiting for checks at most; beyond, arrivals are dropped.
pub const TX_INTAKE_MAX: usize = 5_000;
/// Serialized bytes waiting for checks at most (decoded, they take about twice that); beyond,
/// arrivals are dropped. Forty transactions of the largest standard size, or thousands of
/// ordinary ones.
pub const TX_INTAKE_BYTES_MAX: usize = 16 << 20;
/// Intake length from which tx relay slows (fewer requests, slower trickles).
pub const TX_INTAKE_BACKLOG: usize = 1_000;
/// Check work one tick may do: a unit is one input (its script check) or 4,000 weight units of
/// transaction (its decode, hashing and policy walk), so neither many small transactions nor a few
/// large ones can stall a tick; the rest waits for the next tick.
pub const TX_CHECK_UNITS_PER_TICK: usize = 2_000;

/// The check work of a transaction, in [`TX_CHECK_UNITS_PER_TICK`] units (at least one).
pub fn check_units(tx: &Transaction) -> usize {
    (tx.input.len() + tx.weight().to_wu() as usize / 4_000).max(1)
}

/// The work of checking a pool entry again after a reorg (its scripts are not run again).
pub fn recheck_units(tx: &Transaction) -> usize {
    1 + tx.weight().to_wu() as usize / 4_000
}

/// Queues around the accept system.
#[derive(Resource, Debug)]
pub struct TxIntake {
    /// From peers (or the operator when `None`), in arrival order, with each one's serialized size.
    queue: VecDeque<(Option<Entity>, Arc<Transaction>, usize)>,
    /// Sum of the queued sizes.
    queue_bytes: usize,
    /// Orphans whose missing parent arrived, retried before new arrivals.
    pub retry: VecDeque<(Option<Entity>, Arc<Transaction>)>,
    /// Transactions of disconnected blocks, resubmitted once the chain settles.
    pub reorged: VecDeque<Arc<Transaction>>,
    /// The pool's own transactions after a reorg, checked again after the disconnected blocks'
    /// (their scripts were verified when they entered), so links and coins are right again.
    pub repool: VecDeque<Arc<Transaction>>,
    /// The pool saved at the last clean stop, checked again (scripts too) once the coins stand at
    /// the tip, before new arrivals; not bounded like arrivals (they were ours already).
    pub restored: VecDeque<Arc<Transaction>>,
    /// Check work a tick may do ([`TX_CHECK_UNITS_PER_TICK`]; lower in tests).
    pub check_units_per_tick: usize,
    /// Accepted since the announcer last ran: it queues them for every peer.
    pub accepted: Vec<Txid>,
    /// Next sweep of expired pool entries and orphans (clock ms).
    pub next_expiry_ms: u64,
}

impl Default for TxIntake {
    fn default() -> Self {
        TxIntake {
            queue: VecDeque::new(),
            queue_bytes: 0,
            retry: VecDeque::new(),
            reorged: VecDeque::new(),
            repool: VecDeque::new(),
            restored: VecDeque::new(),
            check_units_per_tick: TX_CHECK_UNITS_PER_TICK,
            accepted: Vec::new(),
            next_expiry_ms: 0,
        }
    }
}

impl TxIntake {
    /// Queues an arrival unless the queue is full in count or bytes; `false` when dropped (the
    /// caller counts it).
    pub fn push(&mut self, from: Option<Entity>, tx: Arc<Transaction>) -> bool {
        let size = tx.total_size();
        if self.queue.len() >= TX_INTAKE_MAX || self.queue_bytes + size > TX_INTAKE_BYTES_MAX {
            return false;
        }
        self.queue_bytes += size;
        self.queue.push_back((from, tx, size));
        true
    }

    /// The oldest arrival.
    pub fn pop(&mut self) -> Option<(Option<Entity>, Arc<Transaction>)> {
        let (from, tx, size) = self.queue.pop_front()?;
        self.queue_bytes -= size;
        Some((from, tx))
    }

    /// Drops every arrival (in IBD nothing is checked).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queue_bytes = 0;
    }

    /// Arrivals waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no arrival waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Serialized bytes of the arrivals waiting.
    pub fn bytes(&self) -> usize {
        self.queue_bytes
    }

    /// Whether checks lag behind arrivals (relay backs off).
    pub fn backlogged(&self) -> bool {
        self.queue.len() >= TX_INTAKE_BACKLOG
    }
}
