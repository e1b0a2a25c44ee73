//! One transaction through every check, in Core's order: context-free consensus checks, then
//! standardness, finality, what the pool already holds, the coins it spends (chain or pool), fees
//! and amounts, relative lock-times, input standardness and sigops, the feerate floors, chain
//! limits and replacement rules, and last (the costly part) scripts. Only then does the pool
//! change. Pure: coins, scripts and the chain's position come in through [`AcceptInputs`].

use crate::mempool::coins::{Coin, CoinView, ScriptVerifier};
use crate::mempool::policy::{self, PolicyConfig, TxReject};
use crate::mempool::pool::{fee_for, Mempool, PoolRefusal};
use ahash::AHashSet;
use bitcoin::{Transaction, Txid};
use std::sync::Arc;

/// Height given to coins of pooled transactions: they confirm in the next block at the earliest.
pub const MEMPOOL_HEIGHT: u32 = 0x7FFF_FFFF;

/// What the checks need from outside the pool.
pub struct AcceptInputs<'a> {
    /// The chain's unspent outputs.
    pub coins: &'a dyn CoinView,
    /// The script engine.
    pub scripts: &'a dyn ScriptVerifier,
    /// Standardness settings.
    pub policy: &'a PolicyConfig,
    /// Height of the active tip (the next block is one more).
    pub tip_height: u32,
    /// Median time past of the tip.
    pub tip_mtp: i64,
    /// Median time past of the block at a height of the active chain (relative time locks).
    pub mtp_at: &'a dyn Fn(u32) -> i64,
    /// Now, for entry times and the rolling floor.
    pub now_ms: u64,
}

/// Why a transaction did not enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// Refused for this reason (see [`TxReject::is_consensus`] for whether the sender is blamed).
    Reject(TxReject),
    /// Some inputs are unknown: these parents (txids) may still come. An orphan.
    MissingInputs(Vec<Txid>),
}

impl From<TxReject> for AcceptError {
    fn from(r: TxReject) -> Self {
        AcceptError::Reject(r)
    }
}

/// What entering did.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The transaction's txid.
    pub txid: Txid,
    /// Fee paid.
    pub fee_sat: u64,
    /// Sigop-adjusted virtual size.
    pub vsize: u64,
    /// Transactions it replaced (with their descendants).
    pub replaced: Vec<Arc<Transaction>>,
    /// Transactions evicted to make room.
    pub evicted: Vec<Arc<Transaction>>,
}

fn refusal(r: PoolRefusal) -> TxReject {
    match r {
        PoolRefusal::ChainTooLong => TxReject::TooLongMempoolChain,
        PoolRefusal::TooManyReplacements => TxReject::TooManyReplacements,
        PoolRefusal::InsufficientFee => TxReject::InsufficientFee,
        PoolRefusal::FeerateNotHigher => TxReject::InsufficientFee,
        PoolRefusal::SpendsConflicting => TxReject::ReplacementFailed,
    }
}

/// Runs every check; with `test_only` the pool is left as it was (RPC `testmempoolaccept`).
pub fn accept(
    pool: &mut Mempool,
    tx: Arc<Transaction>,
    inputs: &AcceptInputs<'_>,
    test_only: bool,
) -> Result<Accepted, AcceptError> {
    policy::check_transaction(&tx)?;
    if tx.is_coinbase() {
        return Err(TxReject::Coinbase.into());
    }
    policy::is_standard_tx(&tx, inputs.policy)?;
    let next_height = inputs.tip_height + 1;
    policy::check_final_for_next_block(&tx, inputs.tip_height, inputs.tip_mtp)?;
    let txid = tx.compute_txid();
    if pool.get_by_wtxid(&tx.compute_wtxid()).is_some() {
        return Err(TxReject::AlreadyInMempool.into());
    }
    if pool.get(&txid).is_some() {
        return Err(TxReject::SameNonwitnessDataInMempool.into());
    }
    let conflicts = pool.conflicts_of(&tx);
    let mut coins: Vec<Coin> = Vec::with_capacity(tx.input.len());
    let mut missing: Vec<Txid> = Vec::new();
    for input in &tx.input {
        let prev = &input.previous_output;
        if let Some(out) = pool.output(prev) {
            coins.push(Coin { output: out.clone(), height: MEMPOOL_HEIGHT, coinbase: false });
        } else if let Some(coin) = inputs.coins.coin(prev) {
            coins.push(coin);
        } else if !missing.contains(&prev.txid) {
            missing.push(prev.txid);
        }
    }
    if !missing.is_empty() {
        // Outputs of this very transaction in the chain: it confirmed already, nothing to wait for.
        let confirmed =
            (0..tx.output.len() as u32).any(|vout| inputs.coins.coin(&bitcoin::OutPoint { txid, vout }).is_some());
        if confirmed {
            return Err(TxReject::AlreadyKnown.into());
        }
        return Err(AcceptError::MissingInputs(missing));
    }
    let fee_sat = policy::check_inputs(&tx, &coins, next_height)?;
    let heights: Vec<u32> =
        coins.iter().map(|c| if c.height == MEMPOOL_HEIGHT { next_height } else { c.height }).collect();
    let locks = policy::sequence_locks(&tx, &heights, next_height, inputs.mtp_at);
    policy::check_sequence_locks(&locks, next_height, inputs.tip_mtp)?;
    policy::are_inputs_standard(&tx, &coins)?;
    policy::is_witness_standard(&tx, &coins)?;
    let sigops = policy::sigop_cost(&tx, &coins);
    policy::check_sigop_cost(sigops)?;
    let vsize = policy::sigop_adjusted_vsize(tx.weight().to_wu(), sigops, inputs.policy.bytes_per_sigop);
    policy::check_ephemeral_dust_fee(&tx, fee_sat, inputs.policy)?;
    if fee_sat < fee_for(pool.limits().min_relay_feerate, vsize) {
        return Err(TxReject::MinRelayFeeNotMet.into());
    }
    if fee_sat < fee_for(pool.min_feerate(inputs.now_ms), vsize) {
        return Err(TxReject::MempoolMinFeeNotMet.into());
    }
    let ancestors = pool.ancestors_of_inputs(tx.input.iter().map(|i| &i.previous_output));
    let replaced_set: AHashSet<Txid> = if conflicts.is_empty() {
        AHashSet::new()
    } else {
        pool.check_replacement(fee_sat, vsize, &conflicts, &ancestors).map_err(refusal)?
    };
    pool.check_chain_limits(&ancestors, &replaced_set).map_err(refusal)?;
    let spent: Vec<bitcoin::TxOut> = coins.iter().map(|c| c.output.clone()).collect();
    if inputs.scripts.verify(&tx, &spent).is_err() {
        // A copy stripped of its witness fails too, through no fault of whoever relayed it.
        let stripped =
            tx.input.iter().all(|i| i.witness.is_empty()) && policy::spends_non_anchor_witness_program(&tx, &coins);
        return Err(if stripped { TxReject::WitnessStripped } else { TxReject::ConsensusScriptFailed }.into());
    }
    if test_only {
        return Ok(Accepted { txid, fee_sat, vsize, replaced: Vec::new(), evicted: Vec::new() });
    }
    let mut replaced = Vec::new();
    for r in &replaced_set {
        replaced.extend(pool.remove_replaced(r));
    }
    pool.insert(tx, fee_sat, vsize, inputs.now_ms, inputs.tip_height);
    let evicted = pool.trim(inputs.now_ms);
    if pool.get(&txid).is_none() {
        return Err(TxReject::MempoolFull.into());
    }
    Ok(Accepted { txid, fee_sat, vsize, replaced, evicted })
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
