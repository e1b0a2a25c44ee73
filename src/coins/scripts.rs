//! [`KernelScripts`]: the pool's [`ScriptVerifier`] on Bitcoin Core's own script interpreter
//! (libbitcoinkernel's `verify`), so a transaction's scripts pass in oni exactly when they pass in
//! Core's consensus check.
//!
//! Flags are `VERIFY_ALL` (P2SH, DERSIG, NULLDUMMY, CLTV, CSV, segwit, taproot): every consensus
//! rule, all buried on every network oni runs. Core's mempool additionally applies its *policy*
//! script flags (low-S, clean stack, minimal pushes, ...); the kernel API does not expose those, so
//! such non-standard-but-valid spends are left to the pool's standardness checks. The engine gets
//! the hashes precomputed once per transaction from all spent outputs (taproot signs them all).

use bitcoin::consensus::serialize;
use bitcoin::{Transaction, TxOut};
use bitcoinkernel::{KernelError, PrecomputedTransactionData, ScriptPubkey, ScriptVerifyError, VERIFY_ALL};
use oni_systems::mempool::{ScriptFailure, ScriptVerifier};

/// Core's consensus script checks; stateless and thread-safe.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelScripts;

fn what(e: &KernelError) -> &'static str {
    match e {
        KernelError::ScriptVerify(ScriptVerifyError::Invalid) => "script_invalid",
        KernelError::ScriptVerify(ScriptVerifyError::SpentOutputsRequired) => "spent_outputs_required",
        KernelError::ScriptVerify(ScriptVerifyError::TxInputIndex) => "input_index",
        KernelError::ScriptVerify(ScriptVerifyError::InvalidFlags)
        | KernelError::ScriptVerify(ScriptVerifyError::InvalidFlagsCombination) => "invalid_flags",
        _ => "engine_error",
    }
}

impl ScriptVerifier for KernelScripts {
    fn verify(&self, tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptFailure> {
        if spent.len() != tx.input.len() {
            return Err(ScriptFailure { input: spent.len().min(tx.input.len()), what: "spent_outputs_mismatch" });
        }
        let ktx = bitcoinkernel::Transaction::new(&serialize(tx))
            .map_err(|_| ScriptFailure { input: 0, what: "undecodable_tx" })?;
        let mut scripts = Vec::with_capacity(spent.len());
        let mut outputs = Vec::with_capacity(spent.len());
        for (input, out) in spent.iter().enumerate() {
            let script = ScriptPubkey::new(out.script_pubkey.as_bytes())
                .map_err(|_| ScriptFailure { input, what: "undecodable_script" })?;
            outputs.push(bitcoinkernel::TxOut::new(&script, out.value.to_sat() as i64));
            scripts.push(script);
        }
        let txdata =
            PrecomputedTransactionData::new(&ktx, &outputs).map_err(|e| ScriptFailure { input: 0, what: what(&e) })?;
        for (input, (script, out)) in scripts.iter().zip(spent).enumerate() {
            bitcoinkernel::verify(script, Some(out.value.to_sat() as i64), &ktx, input, Some(VERIFY_ALL), &txdata)
                .map_err(|e| ScriptFailure { input, what: what(&e) })?;
        }
        Ok(())
    }
}
