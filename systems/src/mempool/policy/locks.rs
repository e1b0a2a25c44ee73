//! Absolute (nLockTime) and relative (BIP68 nSequence) time locks, evaluated for the next block:
//! the pool holds only transactions that block could include. Median-time-past is read through a
//! closure so the chain side decides where it comes from.

use super::TxReject;
use bitcoin::Transaction;

/// nLockTime values below this are heights, at or above it Unix times.
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// nSequence that opts an input out of every lock.
pub const SEQUENCE_FINAL: u32 = 0xffff_ffff;
/// Set in nSequence: no relative lock for this input.
pub const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
/// Set in nSequence: the relative lock counts time (units of 512 s), not blocks.
pub const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;
/// The lock value bits of nSequence.
pub const SEQUENCE_LOCKTIME_MASK: u32 = 0x0000_ffff;
/// Time locks are in units of 2^9 = 512 seconds.
pub const SEQUENCE_LOCKTIME_GRANULARITY: u32 = 9;

/// Core's IsFinalTx: whether `tx`'s nLockTime lets it into a block at `height` whose lock time
/// (median-time-past of its parent, BIP113) is `time`. Locks below the height/time, or inputs all
/// at SEQUENCE_FINAL, make it final.
pub fn is_final_tx(tx: &Transaction, height: u32, time: i64) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 {
        return true;
    }
    let bound = if lock < LOCKTIME_THRESHOLD { height as i64 } else { time };
    if (lock as i64) < bound {
        return true;
    }
    tx.input.iter().all(|i| i.sequence.0 == SEQUENCE_FINAL)
}

/// Refuses `tx` when its nLockTime keeps it out of the block after the tip at `tip_height`, whose
/// median-time-past is `tip_mtp`.
pub fn check_final_for_next_block(tx: &Transaction, tip_height: u32, tip_mtp: i64) -> Result<(), TxReject> {
    if is_final_tx(tx, tip_height.saturating_add(1), tip_mtp) {
        Ok(())
    } else {
        Err(TxReject::NonFinal)
    }
}

/// What a transaction's relative locks require, in nLockTime's "last invalid" terms: the block
/// height and the parent's median-time-past must both exceed these (-1 = no lock). The pool keeps
/// them per entry and re-checks after reorgs; `max_input_height` is the highest confirmed input
/// height they were computed from (a reorg below it invalidates them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPoints {
    /// Last height at which the transaction is still locked.
    pub height: i64,
    /// Last median-time-past at which the transaction is still locked.
    pub time: i64,
    /// Highest height among inputs confirmed in the chain (pool inputs and disabled locks excluded).
    pub max_input_height: u32,
}

/// Core's CalculateSequenceLocks for the block at `next_height` (tip + 1). `coin_heights[i]` is
/// the height of the coin input `i` spends (`next_height` for one created by a pool transaction);
/// `mtp_at(h)` is the median-time-past of the active chain's block at height `h` (≤ tip). Locks
/// apply only from version 2, and not to inputs with the disable flag.
pub fn sequence_locks(
    tx: &Transaction,
    coin_heights: &[u32],
    next_height: u32,
    mtp_at: impl Fn(u32) -> i64,
) -> LockPoints {
    let mut lp = LockPoints { height: -1, time: -1, max_input_height: 0 };
    let enforce = tx.version.0 >= 2;
    for (input, coin_height) in tx.input.iter().zip(coin_heights) {
        let sequence = input.sequence.0;
        if enforce && sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
            continue; // its height does not matter, as if 0
        }
        if *coin_height != next_height {
            lp.max_input_height = lp.max_input_height.max(*coin_height);
        }
        if !enforce {
            continue;
        }
        let value = (sequence & SEQUENCE_LOCKTIME_MASK) as i64;
        if sequence & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
            // Measured from the earliest time the coin's block could have: its parent's MTP.
            let coin_time = mtp_at(coin_height.saturating_sub(1));
            lp.time = lp.time.max(coin_time + (value << SEQUENCE_LOCKTIME_GRANULARITY) - 1);
        } else {
            lp.height = lp.height.max(*coin_height as i64 + value - 1);
        }
    }
    lp
}

/// Core's CheckSequenceLocksAtTip: refuses when the next block (height `next_height`, parent MTP
/// `tip_mtp`) is still within `lp`.
pub fn check_sequence_locks(lp: &LockPoints, next_height: u32, tip_mtp: i64) -> Result<(), TxReject> {
    if lp.height >= next_height as i64 || lp.time >= tip_mtp {
        return Err(TxReject::NonBip68Final);
    }
    Ok(())
}
