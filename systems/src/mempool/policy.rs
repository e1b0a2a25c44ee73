//! Which transactions the pool accepts, as pure functions over a transaction and the coins it
//! spends: the context-free consensus checks ([`check_transaction`]), Bitcoin Core's standardness
//! rules ([`is_standard_tx`], [`are_inputs_standard`], [`is_witness_standard`]), input amounts and
//! coinbase maturity ([`check_inputs`]), sigop cost and the sigop-adjusted virtual size the pool's
//! feerates use, and time locks for the next block ([`is_final_tx`], [`sequence_locks`]). Every
//! refusal is a [`TxReject`]. Facts (limits, orders of checks, reason strings) follow Core; the pool
//! runs the checks in Core's order: [`check_loose_tx`] (check_transaction, coinbase, is_standard_tx),
//! finality, coins, BIP68, check_inputs, are_inputs_standard, is_witness_standard, sigops,
//! ephemeral dust, fees (the fixture test in `tests_inputs.rs` walks that order).

mod inputs;
mod locks;
mod reject;
pub mod script;
mod tx;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_inputs;
#[cfg(test)]
mod tests_script;

pub use inputs::{
    are_inputs_standard, check_inputs, check_sigop_cost, is_witness_standard, sigop_adjusted_vsize, sigop_cost,
    spends_non_anchor_witness_program,
};
pub use locks::{check_final_for_next_block, check_sequence_locks, is_final_tx, sequence_locks, LockPoints};
pub use reject::TxReject;
pub use tx::{
    check_ephemeral_dust_fee, check_loose_tx, check_transaction, dust_output_count, dust_threshold, is_dust,
    is_standard_tx,
};

/// Most satoshis that can exist (21 million BTC); amounts outside 0..=this are invalid.
pub const MAX_MONEY_SAT: u64 = 21_000_000 * 100_000_000;
/// Consensus block weight limit; a transaction's stripped size × 4 may not exceed it.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Blocks a coinbase output must wait before it is spent.
pub const COINBASE_MATURITY: u32 = 100;
/// Most sigop cost a standard transaction may have (a fifth of the block's 80,000).
pub const MAX_STANDARD_TX_SIGOPS_COST: u64 = 16_000;
/// Most potentially executed legacy sigops in a standard transaction (BIP54).
pub const MAX_TX_LEGACY_SIGOPS: u32 = 2_500;
/// Most sigops a standard P2SH redeem script may have.
pub const MAX_P2SH_SIGOPS: u32 = 15;
/// Largest standard scriptSig (a 15-of-15 P2SH multisig fits, with room).
pub const MAX_STANDARD_SCRIPTSIG_BYTES: usize = 1_650;
/// Most witness stack items (besides the script) in a standard P2WSH spend.
pub const MAX_STANDARD_P2WSH_STACK_ITEMS: usize = 100;
/// Largest witness stack item in a standard P2WSH spend.
pub const MAX_STANDARD_P2WSH_STACK_ITEM_BYTES: usize = 80;
/// Largest stack item in a standard tapscript spend.
pub const MAX_STANDARD_TAPSCRIPT_STACK_ITEM_BYTES: usize = 80;
/// Largest standard P2WSH witness script.
pub const MAX_STANDARD_P2WSH_SCRIPT_BYTES: usize = 3_600;
/// Dust outputs a standard transaction may carry (ephemeral dust, spent by a child in the same package).
pub const MAX_DUST_OUTPUTS_PER_TX: usize = 1;
/// Lowest and highest standard transaction versions (3 is TRUC).
pub const TX_STANDARD_VERSIONS: std::ops::RangeInclusive<i32> = 1..=3;
/// Weight units per virtual byte.
pub const WITNESS_SCALE_FACTOR: u64 = 4;

/// The node's relay policy knobs (Core's `-datacarrier*`, `-permitbaremultisig`, `-dustrelayfee`,
/// `-minrelaytxfee`, `-incrementalrelayfee`, `-bytespersigop`), defaulting to Core's values so an oni
/// node accepts and refuses what a default Core node does.
#[derive(bevy_ecs::prelude::Resource, Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Heaviest standard transaction (CPU cost of signature hashing grows with inputs × size).
    pub max_standard_tx_weight: u64,
    /// Smallest standard stripped size (64 bytes could pose as a Merkle node).
    pub min_standard_tx_nonwitness_bytes: usize,
    /// Feerate defining dust: an output worth less than spending it costs at this rate.
    pub dust_relay_feerate_sat_per_kvb: u64,
    /// Lowest feerate relayed at all.
    pub min_relay_feerate_sat_per_kvb: u64,
    /// Feerate a replacement or a full pool's new entry must add, for the bandwidth it costs again.
    pub incremental_relay_feerate_sat_per_kvb: u64,
    /// Total OP_RETURN script bytes allowed per transaction; `None` relays no data carriers.
    pub max_datacarrier_bytes: Option<u32>,
    /// Whether bare (non-P2SH) multisig outputs are standard.
    pub permit_bare_multisig: bool,
    /// Virtual bytes charged per sigop when sigops outweigh size (feerates of sigop-heavy txs).
    pub bytes_per_sigop: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_standard_tx_weight: 400_000,
            min_standard_tx_nonwitness_bytes: 65,
            dust_relay_feerate_sat_per_kvb: 3_000,
            min_relay_feerate_sat_per_kvb: 100,
            incremental_relay_feerate_sat_per_kvb: 100,
            // Core's MAX_OP_RETURN_RELAY: the standard weight in vbytes, i.e. no separate cap.
            max_datacarrier_bytes: Some(100_000),
            permit_bare_multisig: true,
            bytes_per_sigop: 20,
        }
    }
}

/// The fee `vbytes` must pay at `rate_sat_per_kvb`, rounded up as Core's feerates do (so a fee
/// below it is under the rate).
pub fn fee_at_rate(rate_sat_per_kvb: u64, vbytes: u64) -> u64 {
    (rate_sat_per_kvb * vbytes).div_ceil(1000)
}
