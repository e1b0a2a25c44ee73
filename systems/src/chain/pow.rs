//! Proof of work and difficulty: does a hash meet its header's target, and which `bits` must the
//! next header carry (Core's pow.cpp rules: 2016-block retarget clamped to ×4, testnet's 20-minute
//! min-difficulty exception, BIP94's retarget from the period's first block, regtest's none).
//! Pure functions over an [`Ancestry`]: the header tree implements it, tests use plain vectors.

use super::params::{median_time, ChainParams, MEDIAN_TIME_SPAN};
use super::u256::{CompactError, U256};

/// What the checks need to know about the chain a new header extends: the `bits` and time of the
/// block at any height up to its parent.
pub trait Ancestry {
    /// Height of the parent (the chain's last block).
    fn tip_height(&self) -> u32;
    /// `(bits, time)` of the block at `height` (≤ `tip_height`) on this chain.
    fn at(&self, height: u32) -> (u32, u32);

    /// Median of the last 11 block times ending at the parent (Core's GetMedianTimePast).
    fn median_time_past(&self) -> i64 {
        let top = self.tip_height();
        median_time((top.saturating_sub(MEDIAN_TIME_SPAN as u32 - 1)..=top).rev().map(|h| self.at(h).1))
    }
}

/// Why a header's proof of work is unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowError {
    /// `bits` does not decode to a positive target (negative, overflow, zero).
    BadBits(CompactError),
    /// The target is easier than the network allows.
    AboveLimit,
    /// The hash is above the target.
    HashAboveTarget,
}

/// The target of `bits`, checked against the network's limit (Core's DeriveTarget).
#[inline]
pub fn derive_target(bits: u32, params: &ChainParams) -> Result<U256, PowError> {
    let t = U256::from_compact(bits).map_err(PowError::BadBits)?;
    if t > params.pow_limit {
        return Err(PowError::AboveLimit);
    }
    Ok(t)
}

/// Whether `hash` (internal byte order) meets `bits` (Core's CheckProofOfWork).
#[inline]
pub fn check_pow(hash: &[u8; 32], bits: u32, params: &ChainParams) -> Result<(), PowError> {
    let target = derive_target(bits, params)?;
    if U256::from_le_bytes(hash) > target {
        return Err(PowError::HashAboveTarget);
    }
    Ok(())
}

/// The retarget itself: `base` scaled by the period's actual timespan, clamped to [¼, 4] of the
/// target timespan, capped at the limit (Core's CalculateNextWorkRequired).
pub fn calculate_next_work(params: &ChainParams, base_bits: u32, first_time: i64, last_time: i64) -> u32 {
    if params.no_retargeting {
        return base_bits;
    }
    let span = params.target_timespan_s;
    let actual = (last_time - first_time).clamp(span / 4, span * 4);
    let base = U256::from_compact(base_bits).unwrap_or(params.pow_limit);
    let new = base.mul_u64(actual as u64).div_u64(span as u64);
    if new > params.pow_limit {
        params.pow_limit_bits
    } else {
        new.to_compact()
    }
}

/// The `bits` a header at `chain.tip_height() + 1` with timestamp `time` must carry.
pub fn next_work_required(params: &ChainParams, chain: &impl Ancestry, time: u32) -> u32 {
    let last_h = chain.tip_height();
    let (last_bits, last_time) = chain.at(last_h);
    let interval = params.interval();
    // regtest: with no retargeting and a genesis at the limit, every valid block is at the limit
    // (by induction over the two rules below), so the walk back could only find the limit again.
    if params.no_retargeting && last_bits == params.pow_limit_bits {
        return last_bits;
    }
    if !(last_h + 1).is_multiple_of(interval) {
        if params.allow_min_difficulty {
            if time as i64 > last_time as i64 + params.target_spacing_s * 2 {
                return params.pow_limit_bits;
            }
            // The last block that did not use the min-difficulty exception.
            let mut h = last_h;
            let mut bits = last_bits;
            while h > 0 && !h.is_multiple_of(interval) && bits == params.pow_limit_bits {
                h -= 1;
                bits = chain.at(h).0;
            }
            return bits;
        }
        return last_bits;
    }
    let first_h = last_h + 1 - interval;
    let (first_bits, first_time) = chain.at(first_h);
    // BIP94: the period's first block never uses the exception, so its bits are the real difficulty.
    let base = if params.enforce_bip94 { first_bits } else { last_bits };
    calculate_next_work(params, base, first_time as i64, last_time as i64)
}

/// Whether `new_bits` at `height` could follow `old_bits` under any timestamps (Core's
/// PermittedDifficultyTransition): what PRESYNC can check without the full chain.
pub fn permitted_transition(params: &ChainParams, height: u32, old_bits: u32, new_bits: u32) -> bool {
    if params.allow_min_difficulty {
        return true;
    }
    if !height.is_multiple_of(params.interval()) {
        return old_bits == new_bits;
    }
    let Ok(observed) = U256::from_compact(new_bits) else { return false };
    let old = U256::from_compact(old_bits).unwrap_or(params.pow_limit);
    let span = params.target_timespan_s as u64;
    let bound = |factor_num: u64, factor_den: u64| {
        let t = old.mul_u64(span * factor_num / factor_den).div_u64(span);
        let t = if t > params.pow_limit { params.pow_limit } else { t };
        U256::from_compact(t.to_compact()).unwrap_or(U256::ZERO)
    };
    observed <= bound(4, 1) && observed >= bound(1, 4)
}

#[cfg(test)]
#[path = "pow_tests.rs"]
mod tests;
