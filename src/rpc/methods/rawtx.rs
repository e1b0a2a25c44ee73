//! Raw transaction calls in Core's shapes: `sendrawtransaction` (the operator's transaction into the
//! pool and out to peers, through `submit_local`), `testmempoolaccept` (the same checks, nothing
//! changes; several transactions are tested as a package) and `getrawtransaction` (pool transactions only: oni keeps no transaction index).
//! Errors carry Core's codes: -22 undecodable, -26 rejected with Core's reason, -25 missing inputs
//! or over the caller's fee ceiling, -27 already confirmed, -5 unknown.

use super::package::{test_package, PackageOutcome};
use super::values::{btc, parse_amount, parse_feerate, parse_hash};
use super::{gone, Ctx};
use crate::rpc::jsonrpc::{codes, RpcError};
use crate::rpc::params::Args;
use bevy_ecs::world::World;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::script::Instruction;
use bitcoin::{Script, Transaction, Txid};
use oni_systems::mempool::accept::{AcceptError, Accepted};
use oni_systems::mempool::intake::TxIntake;
use oni_systems::mempool::local::submit_local;
use oni_systems::mempool::policy::{fee_at_rate, TxReject};
use oni_systems::mempool::pool::Mempool;
use oni_systems::mempool::ChainCoins;
use oni_systems::wire::Network;
use serde_json::{json, Map, Value};

/// Core's default `maxfeerate`: 0.10 BTC/kvB, in sat/kvB.
pub const DEFAULT_MAX_RAW_TX_FEE_RATE: u64 = 10_000_000;
/// Core's bound on `testmempoolaccept`'s array (its package size limit).
pub const MAX_PACKAGE_COUNT: usize = 25;
/// Core's error code for a transaction or block refused during submission.
const VERIFY_ERROR: i32 = -25;
/// Core's error code for a transaction refused by the network's rules.
const VERIFY_REJECTED: i32 = -26;
/// Core's error code for a transaction whose outputs are already in the UTXO set.
const VERIFY_ALREADY_IN_UTXO_SET: i32 = -27;
/// Core's error code for bytes that do not decode.
const DESERIALIZATION_ERROR: i32 = -22;

/// Hex to a transaction (witness serialization or legacy).
fn decode_tx(hex: &str) -> Option<Transaction> {
    let bytes = Vec::<u8>::from_hex(hex.trim()).ok()?;
    deserialize(&bytes).ok()
}

/// The maxfeerate argument at `i` (default 0.10 BTC/kvB), in sat/kvB.
fn max_feerate(args: &Args, i: usize) -> Result<u64, RpcError> {
    args.get(i).map_or(Ok(DEFAULT_MAX_RAW_TX_FEE_RATE), parse_feerate)
}

/// Core's `IsUnspendable() || !HasValidOps()`: outputs that burn their value.
fn burns(script: &Script) -> bool {
    script.is_op_return()
        || script.len() > 10_000
        || script.instructions().any(|i| match i {
            Err(_) => true,
            Ok(Instruction::Op(op)) => op.to_u8() > 0xb9,
            Ok(Instruction::PushBytes(_)) => false,
        })
}

/// A pool refusal as Core's `sendrawtransaction` reports it.
fn submit_error(e: AcceptError) -> RpcError {
    match e {
        AcceptError::MissingInputs(_) | AcceptError::Reject(TxReject::MissingInputs) => {
            RpcError::new(VERIFY_ERROR, TxReject::MissingInputs.label())
        }
        AcceptError::Reject(r) => RpcError::new(VERIFY_REJECTED, r.label()),
    }
}

/// Whether any output of `txid` (of `outputs` outputs) is an unspent chain coin: it confirmed.
fn confirmed(world: &World, txid: Txid, outputs: usize) -> bool {
    let coins = &world.resource::<ChainCoins>().0;
    (0..outputs as u32).any(|vout| coins.coin(&bitcoin::OutPoint { txid, vout }).is_some())
}

/// `sendrawtransaction "hexstring" ( maxfeerate maxburnamount )`.
pub async fn sendrawtransaction(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let tx = decode_tx(args.str(0).unwrap_or("")).ok_or_else(|| {
        RpcError::new(DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input.")
    })?;
    let max_burn = args.get(2).map_or(Ok(0), parse_amount)?;
    if tx.output.iter().any(|o| burns(&o.script_pubkey) && o.value.to_sat() > max_burn) {
        return Err(RpcError::new(
            VERIFY_ERROR,
            "Unspendable output exceeds maximum configured by user (maxburnamount)",
        ));
    }
    let rate = max_feerate(args, 1)?;
    // Core's ceiling uses the plain virtual size (no sigop adjustment), rounded up.
    let max_fee = fee_at_rate(rate, tx.vsize() as u64);
    let r = ctx.node.with_world_async(move |world| {
        let txid = tx.compute_txid();
        if confirmed(world, txid, tx.output.len()) {
            return Err(RpcError::new(VERIFY_ALREADY_IN_UTXO_SET, "Transaction outputs already in utxo set"));
        }
        if world.resource::<Mempool>().get(&txid).is_some() {
            // Already held (maybe with another witness): announce it again, as Core does.
            world.resource_mut::<TxIntake>().accepted.push(txid);
            return Ok(txid);
        }
        if max_fee > 0 {
            let tested = submit_local(world, tx.clone(), true).map_err(submit_error)?;
            if tested.fee_sat > max_fee {
                return Err(RpcError::new(
                    VERIFY_ERROR,
                    "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                ));
            }
        }
        submit_local(world, tx, false).map(|a| a.txid).map_err(submit_error)
    });
    Ok(json!(r.await.map_err(gone)??.to_string()))
}

/// A row with only the ids, plus `extra`.
fn with_ids(tx: &Transaction, extra: &[(&str, Value)]) -> Value {
    let mut o = Map::new();
    o.insert("txid".into(), json!(tx.compute_txid().to_string()));
    o.insert("wtxid".into(), json!(tx.compute_wtxid().to_string()));
    for (k, v) in extra {
        o.insert(k.to_string(), v.clone());
    }
    Value::Object(o)
}

/// One `testmempoolaccept` row.
fn test_row(tx: &Transaction, outcome: Result<Accepted, AcceptError>, max_rate: u64) -> Value {
    let mut o = Map::new();
    o.insert("txid".into(), json!(tx.compute_txid().to_string()));
    let wtxid = tx.compute_wtxid().to_string();
    o.insert("wtxid".into(), json!(wtxid));
    match outcome {
        Ok(a) if rate_exceeded(a.fee_sat, a.vsize, max_rate) => {
            o.insert("allowed".into(), json!(false));
            o.insert("reject-reason".into(), json!("max-fee-exceeded"));
        }
        Ok(a) => {
            o.insert("allowed".into(), json!(true));
            o.insert("vsize".into(), json!(a.vsize));
            let effective = a.fee_sat.saturating_mul(1000) / a.vsize.max(1);
            o.insert(
                "fees".into(),
                json!({"base": btc(a.fee_sat), "effective-feerate": btc(effective), "effective-includes": [wtxid]}),
            );
        }
        Err(AcceptError::MissingInputs(_) | AcceptError::Reject(TxReject::MissingInputs)) => {
            o.insert("allowed".into(), json!(false));
            o.insert("reject-reason".into(), json!("missing-inputs"));
        }
        Err(AcceptError::Reject(r)) => {
            o.insert("allowed".into(), json!(false));
            o.insert("reject-reason".into(), json!(r.label()));
            o.insert("reject-details".into(), json!(r.label()));
        }
    }
    Value::Object(o)
}

/// Whether `fee` over `vsize` passes the caller's ceiling (0: none).
fn rate_exceeded(fee_sat: u64, vsize: u64, max_rate: u64) -> bool {
    let max_fee = fee_at_rate(max_rate, vsize);
    max_fee > 0 && fee_sat > max_fee
}

/// `testmempoolaccept ["rawtx",...] ( maxfeerate )`: one transaction against the pool, or several
/// as a package (see `package`). After a transaction over the fee ceiling the rest are left
/// unchecked, as in Core.
pub async fn testmempoolaccept(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let raw = args.get(0).and_then(Value::as_array).cloned().unwrap_or_default();
    if raw.is_empty() || raw.len() > MAX_PACKAGE_COUNT {
        return Err(RpcError::new(
            codes::INVALID_PARAMETER,
            format!("Array must contain between 1 and {MAX_PACKAGE_COUNT} transactions."),
        ));
    }
    let max_rate = max_feerate(args, 1)?;
    let mut txs = Vec::with_capacity(raw.len());
    for r in &raw {
        let text = r.as_str().unwrap_or("");
        let tx = decode_tx(text).ok_or_else(|| {
            RpcError::new(
                DESERIALIZATION_ERROR,
                format!("TX decode failed: {text} Make sure the tx has at least one input."),
            )
        })?;
        txs.push(tx);
    }
    let rows = ctx.node.with_world_async(move |world| {
        let outcomes = if txs.len() == 1 {
            vec![Some(submit_local(world, txs[0].clone(), true))]
        } else {
            match test_package(world, &txs) {
                PackageOutcome::Tested(o) => o,
                PackageOutcome::Malformed(reason) => {
                    return txs.iter().map(|tx| with_ids(tx, &[("package-error", json!(reason))])).collect();
                }
            }
        };
        let mut rows = Vec::with_capacity(txs.len());
        let mut stop = false;
        for (tx, outcome) in txs.iter().zip(outcomes) {
            match outcome {
                Some(outcome) if !stop => {
                    stop = matches!(&outcome, Ok(a) if rate_exceeded(a.fee_sat, a.vsize, max_rate));
                    rows.push(test_row(tx, outcome, max_rate));
                }
                // Not fully validated: only the ids, as in Core.
                _ => rows.push(with_ids(tx, &[])),
            }
        }
        rows
    });
    Ok(Value::Array(rows.await.map_err(gone)?))
}

/// Core's name for the kind of an output script.
pub fn script_type(s: &Script) -> &'static str {
    let b = s.as_bytes();
    if s.is_p2pkh() {
        "pubkeyhash"
    } else if s.is_p2sh() {
        "scripthash"
    } else if s.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if s.is_p2wsh() {
        "witness_v0_scripthash"
    } else if s.is_p2tr() {
        "witness_v1_taproot"
    } else if b == [0x51, 0x02, 0x4e, 0x73] {
        "anchor"
    } else if s.is_witness_program() {
        "witness_unknown"
    } else if s.is_op_return() {
        "nulldata"
    } else if s.is_p2pk() {
        "pubkey"
    } else if s.is_multisig() {
        "multisig"
    } else {
        "nonstandard"
    }
}

/// A transaction as Core's `TxToUniv` writes it, without `asm` and `desc` (oni does not render
/// scripts; `hex`, `type` and `address` are given).
pub fn tx_json(tx: &Transaction, network: Network) -> Value {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|i| {
            let mut o = Map::new();
            if tx.is_coinbase() {
                o.insert("coinbase".into(), json!(i.script_sig.as_bytes().to_lower_hex_string()));
            } else {
                o.insert("txid".into(), json!(i.previous_output.txid.to_string()));
                o.insert("vout".into(), json!(i.previous_output.vout));
                o.insert("scriptSig".into(), json!({"hex": i.script_sig.as_bytes().to_lower_hex_string()}));
            }
            if !i.witness.is_empty() {
                let items: Vec<String> = i.witness.iter().map(|w| w.to_lower_hex_string()).collect();
                o.insert("txinwitness".into(), json!(items));
            }
            o.insert("sequence".into(), json!(i.sequence.0));
            Value::Object(o)
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, out)| {
            let s = &out.script_pubkey;
            let mut spk = Map::new();
            spk.insert("hex".into(), json!(s.as_bytes().to_lower_hex_string()));
            if let Ok(a) = bitcoin::Address::from_script(s, network.to_bitcoin()) {
                spk.insert("address".into(), json!(a.to_string()));
            }
            spk.insert("type".into(), json!(script_type(s)));
            json!({"value": btc(out.value.to_sat()), "n": n, "scriptPubKey": spk})
        })
        .collect();
    let raw = serialize(tx);
    json!({
        "txid": tx.compute_txid().to_string(),
        "hash": tx.compute_wtxid().to_string(),
        "version": tx.version.0,
        "size": raw.len(),
        "vsize": tx.vsize(),
        "weight": tx.weight().to_wu(),
        "locktime": tx.lock_time.to_consensus_u32(),
        "vin": vin,
        "vout": vout,
        "hex": raw.to_lower_hex_string(),
    })
}

/// `getrawtransaction "txid" ( verbosity )`: a pool transaction's hex, or (verbosity ≥ 1 or true)
/// its decoded form. Not in the pool: Core's answer for a node without a transaction index.
pub async fn getrawtransaction(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let txid: Txid = parse_hash(args.str(0).unwrap_or(""), "txid")?;
    let verbose = match args.get(1) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => args.int(1)?.unwrap_or(0) != 0,
    };
    let network = ctx.network;
    let found = ctx.node.with_world_async(move |world| world.resource::<Mempool>().get(&txid).map(|e| e.tx.clone()));
    let tx = found.await.map_err(gone)?.ok_or_else(|| {
        RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries",
        )
    })?;
    if verbose {
        Ok(tx_json(&tx, network))
    } else {
        Ok(json!(serialize(&*tx).to_lower_hex_string()))
    }
}
