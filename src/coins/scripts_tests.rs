//! Core's script engine on real transactions: every fixture mempool transaction whose inputs are
//! confirmed verifies with the coins the store holds (those spend P2PKH, P2SH-P2WPKH, P2WPKH and
//! P2TR key-path outputs), and fails once a signature byte is flipped, a spent amount is wrong or
//! a spent output is missing.

use super::scripts::KernelScripts;
use super::store::CoinStore;
use super::store_tests::{chain, genesis};
use bitcoin::consensus::deserialize;
use bitcoin::hashes::hex::FromHex;
use bitcoin::{Amount, Transaction, TxOut};
use oni_systems::mempool::{CoinView, ScriptVerifier};
use std::path::Path;

pub(crate) fn mempool_txs() -> Vec<Transaction> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/regtest-core/mempool.hex");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| deserialize(&Vec::<u8>::from_hex(l.trim()).unwrap()).unwrap())
        .collect()
}

/// Flips a byte inside input 0's signature (witness or scriptSig).
fn corrupt_signature(tx: &mut Transaction) {
    let input = &mut tx.input[0];
    let mut items: Vec<Vec<u8>> = input.witness.iter().map(<[u8]>::to_vec).collect();
    if let Some(sig) = items.iter_mut().find(|i| i.len() >= 60) {
        sig[10] ^= 0x01;
        input.witness = bitcoin::Witness::from_slice(&items);
    } else {
        let mut script = input.script_sig.to_bytes();
        script[10] ^= 0x01;
        input.script_sig = bitcoin::ScriptBuf::from_bytes(script);
    }
}

#[test]
fn confirmed_mempool_transactions_verify_and_a_flipped_signature_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = CoinStore::open(dir.path(), genesis()).unwrap();
    for (i, b) in chain().chain.iter().enumerate() {
        store.connect(b, i as u32 + 1).unwrap();
    }
    let scripts = KernelScripts;
    let mut checked = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for tx in mempool_txs() {
        let spent: Option<Vec<TxOut>> =
            tx.input.iter().map(|i| store.coin(&i.previous_output).map(|c| c.output)).collect();
        let Some(spent) = spent else { continue };
        for s in &spent {
            let s = &s.script_pubkey;
            kinds.insert(if s.is_p2pkh() {
                "p2pkh"
            } else if s.is_p2sh() {
                "p2sh"
            } else if s.is_p2wpkh() {
                "p2wpkh"
            } else if s.is_p2wsh() {
                "p2wsh"
            } else if s.is_p2tr() {
                "p2tr"
            } else {
                "other"
            });
        }
        assert_eq!(scripts.verify(&tx, &spent), Ok(()), "{}", tx.compute_txid());
        let mut bad = tx.clone();
        corrupt_signature(&mut bad);
        let failure = scripts.verify(&bad, &spent).unwrap_err();
        assert_eq!((failure.input, failure.what), (0, "script_invalid"), "{}", tx.compute_txid());
        checked += 1;
    }
    eprintln!("{checked} fixture transactions with confirmed inputs verified");
    assert!(checked >= 20, "only {checked} fixture transactions had confirmed inputs");
    for kind in ["p2pkh", "p2sh", "p2wpkh", "p2tr"] {
        assert!(kinds.contains(kind), "no {kind} spend among the checked transactions: {kinds:?}");
    }
}

#[test]
fn wrong_amounts_and_missing_spent_outputs_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = CoinStore::open(dir.path(), genesis()).unwrap();
    for (i, b) in chain().chain.iter().enumerate() {
        store.connect(b, i as u32 + 1).unwrap();
    }
    let segwit = mempool_txs()
        .into_iter()
        .find_map(|tx| {
            let spent: Vec<TxOut> =
                tx.input.iter().map(|i| store.coin(&i.previous_output).map(|c| c.output)).collect::<Option<_>>()?;
            (spent[0].script_pubkey.is_p2wpkh() || spent[0].script_pubkey.is_p2tr()).then_some((tx, spent))
        })
        .expect("a confirmed segwit spend in the fixture mempool");
    let (tx, mut spent) = segwit;
    assert_eq!(KernelScripts.verify(&tx, &spent[..spent.len() - 1]).unwrap_err().what, "spent_outputs_mismatch");
    // Segwit and taproot sign the amount: one satoshi more and the signature no longer matches.
    spent[0].value += Amount::from_sat(1);
    assert_eq!(
        KernelScripts.verify(&tx, &spent).unwrap_err(),
        oni_systems::mempool::ScriptFailure { input: 0, what: "script_invalid" }
    );
}
