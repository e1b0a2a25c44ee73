//! Transactions between the systems that receive them and the one that checks them, and what the
//! checker hands to the announcer. Bounded: when the checker lags, new arrivals are dropped and
//! counted (their announcers stay in the request tracker's memory, so nothing is asked twice), and
//! relay slows (see [`TxIntake::backlogged`]).

use bevy_ecs::prelude::*;
use bitcoin::{Transaction, Txid};
use std::collections::VecDeque;
use std::sync::Arc;

/// Transactions waiting for checks at most; beyond, arrivals are dropped.
pub const TX_INTAKE_MAX: usize = 5_000;
/// Intake length from which tx relay slows (fewer requests, slower trickles).
pub const TX_INTAKE_BACKLOG: usize = 1_000;
/// Inputs whose scripts one tick may verify (a tick's CPU budget for transactions); the rest
/// waits for the next tick.
pub const TX_INPUTS_PER_TICK: usize = 2_000;

/// Queues around the accept system.
#[derive(Resource, Debug, Default)]
pub struct TxIntake {
    /// From peers (or the operator when `None`), in arrival order.
    pub queue: VecDeque<(Option<Entity>, Arc<Transaction>)>,
    /// Orphans whose missing parent arrived, retried before new arrivals.
    pub retry: VecDeque<(Option<Entity>, Arc<Transaction>)>,
    /// Transactions of disconnected blocks, resubmitted once the chain settles.
    pub reorged: Vec<Arc<Transaction>>,
    /// The pool's own transactions after a reorg, checked again after the disconnected blocks'
    /// (their scripts were verified when they entered), so links and coins are right again.
    pub repool: Vec<Arc<Transaction>>,
    /// Accepted since the announcer last ran: it queues them for every peer.
    pub accepted: Vec<Txid>,
    /// Next sweep of expired pool entries and orphans (clock ms).
    pub next_expiry_ms: u64,
}

impl TxIntake {
    /// Queues an arrival unless the queue is full; `false` when dropped (the caller counts it).
    pub fn push(&mut self, from: Option<Entity>, tx: Arc<Transaction>) -> bool {
        if self.queue.len() >= TX_INTAKE_MAX {
            return false;
        }
        self.queue.push_back((from, tx));
        true
    }

    /// Whether checks lag behind arrivals (relay backs off).
    pub fn backlogged(&self) -> bool {
        self.queue.len() >= TX_INTAKE_BACKLOG
    }
}
