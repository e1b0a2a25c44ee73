//! Checks of a transaction on its own: Core's context-free consensus checks and its standardness
//! rules for versions, sizes, scriptSigs, output types, data carriers and dust.

use super::script::{self, ScriptType};
use super::{
    fee_at_rate, PolicyConfig, TxReject, MAX_BLOCK_WEIGHT, MAX_DUST_OUTPUTS_PER_TX, MAX_MONEY_SAT,
    MAX_STANDARD_SCRIPTSIG_BYTES, TX_STANDARD_VERSIONS, WITNESS_SCALE_FACTOR,
};
use bitcoin::{Transaction, TxOut, VarInt};
use std::collections::HashSet;

/// Core's CheckTransaction: what makes a transaction invalid whatever the chain (empty inputs or
/// outputs, oversize, amounts out of range, duplicate inputs, coinbase scriptSig length, null
/// prevouts). Every failure is consensus.
pub fn check_transaction(tx: &Transaction) -> Result<(), TxReject> {
    if tx.input.is_empty() {
        return Err(TxReject::VinEmpty);
    }
    if tx.output.is_empty() {
        return Err(TxReject::VoutEmpty);
    }
    if tx.base_size() as u64 * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT {
        return Err(TxReject::Oversize);
    }
    let mut total: u64 = 0;
    for out in &tx.output {
        let value = out.value.to_sat();
        if (value as i64) < 0 {
            return Err(TxReject::VoutNegative);
        }
        if value > MAX_MONEY_SAT {
            return Err(TxReject::VoutTooLarge);
        }
        total += value; // both ≤ MAX_MONEY: no overflow
        if total > MAX_MONEY_SAT {
            return Err(TxReject::TxoutTotalTooLarge);
        }
    }
    if tx.input.len() > 1 {
        let mut seen = HashSet::with_capacity(tx.input.len());
        if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
            return Err(TxReject::InputsDuplicate);
        }
    }
    if tx.is_coinbase() {
        if !(2..=100).contains(&tx.input[0].script_sig.len()) {
            return Err(TxReject::CoinbaseLength);
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(TxReject::PrevoutNull);
    }
    Ok(())
}

/// The checks a transaction passes before any coin is looked up, in Core's order: the consensus
/// checks, no coinbase (only valid inside a block), then standardness.
pub fn check_loose_tx(tx: &Transaction, cfg: &PolicyConfig) -> Result<(), TxReject> {
    check_transaction(tx)?;
    if tx.is_coinbase() {
        return Err(TxReject::Coinbase);
    }
    is_standard_tx(tx, cfg)
}

/// Core's IsStandardTx followed by its minimum stripped size: version, weight, scriptSig size and
/// push-only, output types (bare multisig ≤ 3 keys, only when permitted), the OP_RETURN byte budget,
/// at most one dust output (ephemeral dust; the pool must then require a zero fee, see
/// [`check_ephemeral_dust_fee`]), and the 65-byte minimum stripped size.
pub fn is_standard_tx(tx: &Transaction, cfg: &PolicyConfig) -> Result<(), TxReject> {
    if !TX_STANDARD_VERSIONS.contains(&tx.version.0) {
        return Err(TxReject::Version);
    }
    if tx.weight().to_wu() > cfg.max_standard_tx_weight {
        return Err(TxReject::TxSize);
    }
    for input in &tx.input {
        let sig = input.script_sig.as_bytes();
        if sig.len() > MAX_STANDARD_SCRIPTSIG_BYTES {
            return Err(TxReject::ScriptSigSize);
        }
        if !script::is_push_only(sig) {
            return Err(TxReject::ScriptSigNotPushOnly);
        }
    }
    let mut datacarrier_left = cfg.max_datacarrier_bytes.unwrap_or(0) as usize;
    for out in &tx.output {
        let spk = out.script_pubkey.as_bytes();
        match script::classify(spk) {
            ScriptType::NonStandard => return Err(TxReject::ScriptPubKey),
            ScriptType::Multisig { required, keys } => {
                if !(1..=3).contains(&keys) || !(1..=keys).contains(&required) {
                    return Err(TxReject::ScriptPubKey);
                }
                if !cfg.permit_bare_multisig {
                    return Err(TxReject::BareMultisig);
                }
            }
            ScriptType::NullData => {
                datacarrier_left = datacarrier_left.checked_sub(spk.len()).ok_or(TxReject::Datacarrier)?;
            }
            _ => {}
        }
    }
    if dust_output_count(tx, cfg) > MAX_DUST_OUTPUTS_PER_TX {
        return Err(TxReject::Dust);
    }
    if tx.base_size() < cfg.min_standard_tx_nonwitness_bytes {
        return Err(TxReject::TxSizeSmall);
    }
    Ok(())
}

/// The value below which `out` is dust: what spending it would cost at the dust feerate, counting
/// the output plus a typical input spending it (148 bytes; 67 vbytes for witness programs, sized
/// for P2WPKH). Unspendable outputs have no threshold.
pub fn dust_threshold(out: &TxOut, cfg: &PolicyConfig) -> u64 {
    let spk = out.script_pubkey.as_bytes();
    if script::is_unspendable(spk) {
        return 0;
    }
    let output_bytes = 8 + VarInt(spk.len() as u64).size() + spk.len();
    let input_bytes = if script::witness_program(spk).is_some() {
        32 + 4 + 1 + 107 / WITNESS_SCALE_FACTOR as usize + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    fee_at_rate(cfg.dust_relay_feerate_sat_per_kvb, (output_bytes + input_bytes) as u64)
}

/// Whether `out` is worth less than spending it costs.
pub fn is_dust(out: &TxOut, cfg: &PolicyConfig) -> bool {
    out.value.to_sat() < dust_threshold(out, cfg)
}

/// How many of `tx`'s outputs are dust.
pub fn dust_output_count(tx: &Transaction, cfg: &PolicyConfig) -> usize {
    tx.output.iter().filter(|o| is_dust(o, cfg)).count()
}

/// Core's ephemeral-dust precheck: a transaction carrying a dust output must pay no fee (base or
/// prioritised), so no miner takes it without the child that spends the dust.
pub fn check_ephemeral_dust_fee(tx: &Transaction, fee_sat: u64, cfg: &PolicyConfig) -> Result<(), TxReject> {
    if fee_sat != 0 && dust_output_count(tx, cfg) > 0 {
        return Err(TxReject::DustWithFee);
    }
    Ok(())
}
