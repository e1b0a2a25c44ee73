//! Checks that need the coins a transaction spends (`coins[i]` is what input `i` spends, as the
//! pool looked it up in the chain's coins or in the pool): amounts and coinbase maturity, the
//! standardness of the spent output types and of witnesses, and sigop cost.

use super::script::{self, ScriptType};
use super::{
    TxReject, COINBASE_MATURITY, MAX_MONEY_SAT, MAX_P2SH_SIGOPS, MAX_STANDARD_P2WSH_SCRIPT_BYTES,
    MAX_STANDARD_P2WSH_STACK_ITEMS, MAX_STANDARD_P2WSH_STACK_ITEM_BYTES, MAX_STANDARD_TAPSCRIPT_STACK_ITEM_BYTES,
    MAX_STANDARD_TX_SIGOPS_COST, MAX_TX_LEGACY_SIGOPS, WITNESS_SCALE_FACTOR,
};
use crate::mempool::coins::Coin;
use bitcoin::{Transaction, Witness};

/// Taproot annex marker: a last witness item starting with it is an annex (nonstandard for now).
const ANNEX_TAG: u8 = 0x50;
/// Leaf version of BIP342 tapscript in a control block.
const TAPSCRIPT_LEAF: u8 = 0xc0;

/// Core's CheckTxInputs for a transaction to be mined at `spend_height` (tip + 1): coinbase outputs
/// spent at least 100 blocks after their block, every coin value and the running input total within
/// 0..=21M BTC, inputs ≥ outputs. Returns the fee in satoshis. Expects [`super::check_transaction`]
/// passed; `coins` shorter or longer than the inputs counts as missing inputs.
pub fn check_inputs(tx: &Transaction, coins: &[Coin], spend_height: u32) -> Result<u64, TxReject> {
    if coins.len() != tx.input.len() {
        return Err(TxReject::MissingInputs);
    }
    let mut value_in: u64 = 0;
    for coin in coins {
        if coin.coinbase && (spend_height as i64 - coin.height as i64) < COINBASE_MATURITY as i64 {
            return Err(TxReject::PrematureCoinbaseSpend);
        }
        let value = coin.output.value.to_sat();
        value_in = value_in.saturating_add(value);
        if value > MAX_MONEY_SAT || value_in > MAX_MONEY_SAT {
            return Err(TxReject::InputValuesOutOfRange);
        }
    }
    let mut value_out: u64 = 0;
    for out in &tx.output {
        value_out = value_out.saturating_add(out.value.to_sat());
        if value_out > MAX_MONEY_SAT {
            return Err(TxReject::TxoutTotalTooLarge);
        }
    }
    value_in.checked_sub(value_out).ok_or(TxReject::InBelowOut)
}

/// Core's ValidateInputsStandardness: at most 2,500 potentially executed legacy sigops (BIP54,
/// counted over scriptSigs and the scripts they spend), no spent output of unknown type or undefined
/// witness program, and P2SH redeem scripts present with at most 15 sigops. Expects the scriptSigs
/// push-only (checked by [`super::is_standard_tx`] first, as in Core).
pub fn are_inputs_standard(tx: &Transaction, coins: &[Coin]) -> Result<(), TxReject> {
    if tx.is_coinbase() {
        return Ok(());
    }
    if coins.len() != tx.input.len() {
        return Err(TxReject::MissingInputs);
    }
    let mut legacy: u32 = 0;
    for (input, coin) in tx.input.iter().zip(coins) {
        let sig = input.script_sig.as_bytes();
        legacy = legacy
            .saturating_add(script::sigop_count(sig, true))
            .saturating_add(script::spend_sigop_count(coin.output.script_pubkey.as_bytes(), sig));
        if legacy > MAX_TX_LEGACY_SIGOPS {
            return Err(TxReject::LegacySigopsOverLimit);
        }
    }
    for (input, coin) in tx.input.iter().zip(coins) {
        match script::classify(coin.output.script_pubkey.as_bytes()) {
            ScriptType::NonStandard => return Err(TxReject::InputScriptUnknown),
            ScriptType::WitnessUnknown => return Err(TxReject::InputWitnessProgramUnknown),
            ScriptType::ScriptHash => {
                let redeem = script::push_only_stack_top(input.script_sig.as_bytes())
                    .map_err(|_| TxReject::P2shScriptSigMalformed)?
                    .ok_or(TxReject::P2shRedeemScriptMissing)?;
                if script::sigop_count(redeem, true) > MAX_P2SH_SIGOPS {
                    return Err(TxReject::P2shSigopsOverLimit);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Core's IsWitnessStandard: a witness only where a witness program is spent (never on P2A), P2WSH
/// within 3,600 script bytes, 100 items, 80 bytes per item, and taproot spends with no annex and
/// tapscript items of at most 80 bytes.
pub fn is_witness_standard(tx: &Transaction, coins: &[Coin]) -> Result<(), TxReject> {
    if tx.is_coinbase() {
        return Ok(());
    }
    if coins.len() != tx.input.len() {
        return Err(TxReject::MissingInputs);
    }
    for (input, coin) in tx.input.iter().zip(coins) {
        if input.witness.is_empty() {
            continue;
        }
        if !witness_standard(input.script_sig.as_bytes(), coin.output.script_pubkey.as_bytes(), &input.witness) {
            return Err(TxReject::WitnessNonstandard);
        }
    }
    Ok(())
}

fn witness_standard(script_sig: &[u8], spent: &[u8], witness: &Witness) -> bool {
    if script::is_p2a(spent) {
        return false; // witness stuffing
    }
    let (program_script, p2sh) = if script::is_p2sh(spent) {
        match script::push_only_stack_top(script_sig) {
            Ok(Some(redeem)) => (redeem, true),
            _ => return false,
        }
    } else {
        (spent, false)
    };
    let Some((version, program)) = script::witness_program(program_script) else {
        return false; // a witness on a non-witness spend
    };
    let n = witness.len(); // ≥ 1: empty witnesses are skipped by the caller
    if version == 0 && program.len() == 32 {
        let script_too_big = witness.last().is_some_and(|ws| ws.len() > MAX_STANDARD_P2WSH_SCRIPT_BYTES);
        if script_too_big || n - 1 > MAX_STANDARD_P2WSH_STACK_ITEMS {
            return false;
        }
        if witness.iter().take(n - 1).any(|item| item.len() > MAX_STANDARD_P2WSH_STACK_ITEM_BYTES) {
            return false;
        }
    }
    if version == 1 && program.len() == 32 && !p2sh {
        if n >= 2 {
            // Last item: an annex (refused) or else the control block; the one before is the script.
            let Some(control) = witness.last() else { return false };
            let Some(first) = control.first() else { return false };
            if *first == ANNEX_TAG {
                return false;
            }
            let tapscript = first & 0xfe == TAPSCRIPT_LEAF;
            if tapscript && witness.iter().take(n - 2).any(|i| i.len() > MAX_STANDARD_TAPSCRIPT_STACK_ITEM_BYTES) {
                return false;
            }
        } else if n == 0 {
            return false;
        }
    }
    true
}

/// Core's GetTransactionSigOpCost with the standard flags (P2SH and witness): legacy sigops of
/// every scriptSig and output (× 4), plus the P2SH redeem scripts' (× 4), plus witness sigops (× 1).
pub fn sigop_cost(tx: &Transaction, coins: &[Coin]) -> u64 {
    let legacy: u64 = tx.input.iter().map(|i| script::sigop_count(i.script_sig.as_bytes(), false) as u64).sum::<u64>()
        + tx.output.iter().map(|o| script::sigop_count(o.script_pubkey.as_bytes(), false) as u64).sum::<u64>();
    let mut cost = legacy * WITNESS_SCALE_FACTOR;
    if tx.is_coinbase() {
        return cost;
    }
    for (input, coin) in tx.input.iter().zip(coins) {
        let spent = coin.output.script_pubkey.as_bytes();
        let sig = input.script_sig.as_bytes();
        if script::is_p2sh(spent) {
            cost += script::p2sh_sigop_count(sig) as u64 * WITNESS_SCALE_FACTOR;
        }
        cost += witness_sigops(sig, spent, &input.witness);
    }
    cost
}

fn witness_sigops(script_sig: &[u8], spent: &[u8], witness: &Witness) -> u64 {
    let program_script = if script::witness_program(spent).is_some() {
        spent
    } else if script::is_p2sh(spent) {
        match script::last_push(script_sig) {
            Some(redeem) => redeem,
            None => return 0,
        }
    } else {
        return 0;
    };
    match script::witness_program(program_script) {
        Some((0, program)) if program.len() == 20 => 1,
        Some((0, program)) if program.len() == 32 => {
            witness.last().map_or(0, |ws| script::sigop_count(ws, true) as u64)
        }
        _ => 0,
    }
}

/// Refuses a sigop cost over the standard 16,000.
pub fn check_sigop_cost(cost: u64) -> Result<(), TxReject> {
    if cost > MAX_STANDARD_TX_SIGOPS_COST {
        return Err(TxReject::TooManySigops);
    }
    Ok(())
}

/// Core's GetVirtualTransactionSize: weight, or sigop cost × `bytes_per_sigop` when larger, in
/// virtual bytes rounded up. The pool's feerates use it so sigop-heavy transactions pay for the
/// block space their sigops take.
pub fn sigop_adjusted_vsize(weight_wu: u64, sigop_cost: u64, bytes_per_sigop: u32) -> u64 {
    weight_wu.max(sigop_cost * bytes_per_sigop as u64).div_ceil(WITNESS_SCALE_FACTOR)
}

/// Core's SpendsNonAnchorWitnessProg: whether any input spends a witness program (directly or
/// P2SH-wrapped) other than P2A. When scripts fail on a transaction without witness that does, the
/// witness may have been stripped in transit ([`TxReject::WitnessStripped`]).
pub fn spends_non_anchor_witness_program(tx: &Transaction, coins: &[Coin]) -> bool {
    if tx.is_coinbase() {
        return false;
    }
    tx.input.iter().zip(coins).any(|(input, coin)| {
        let spent = coin.output.script_pubkey.as_bytes();
        if script::witness_program(spent).is_some() && !script::is_p2a(spent) {
            return true;
        }
        script::is_p2sh(spent)
            && matches!(script::push_only_stack_top(input.script_sig.as_bytes()),
                Ok(Some(redeem)) if script::witness_program(redeem).is_some())
    })
}
