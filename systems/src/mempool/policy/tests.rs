//! Tests of the transaction-only checks: every limit crossed with Core's exact reason, the dust
//! thresholds per output type, reason strings and their consensus classification.

use super::*;
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};

pub(super) fn input(n: u8) -> TxIn {
    TxIn {
        previous_output: OutPoint { txid: Txid::from_byte_array([n; 32]), vout: 0 },
        script_sig: ScriptBuf::new(),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    }
}

pub(super) fn out(value_sat: u64, script: Vec<u8>) -> TxOut {
    TxOut { value: Amount::from_sat(value_sat), script_pubkey: ScriptBuf::from_bytes(script) }
}

pub(super) fn p2wpkh() -> Vec<u8> {
    let mut s = vec![0x00, 0x14];
    s.extend([7; 20]);
    s
}

pub(super) fn p2pkh() -> Vec<u8> {
    let mut s = vec![0x76, 0xa9, 0x14];
    s.extend([7; 20]);
    s.extend([0x88, 0xac]);
    s
}

pub(super) fn p2sh() -> Vec<u8> {
    let mut s = vec![0xa9, 0x14];
    s.extend([7; 20]);
    s.push(0x87);
    s
}

pub(super) fn p2tr() -> Vec<u8> {
    let mut s = vec![0x51, 0x20];
    s.extend([7; 32]);
    s
}

pub(super) fn p2wsh_of(witness_script: &[u8]) -> Vec<u8> {
    let mut s = vec![0x00, 0x20];
    s.extend(bitcoin::hashes::sha256::Hash::hash(witness_script).to_byte_array());
    s
}

/// An `OP_RETURN` script of exactly `len` bytes: OP_RETURN then one PUSHDATA2 (or PUSHDATA4) push.
fn op_return(len: usize) -> Vec<u8> {
    let mut s = vec![0x6a];
    if len - 4 <= 0xffff {
        s.push(0x4d);
        s.extend(((len - 4) as u16).to_le_bytes());
    } else {
        s.push(0x4e);
        s.extend(((len - 6) as u32).to_le_bytes());
    }
    s.resize(len, 0xaa);
    s
}

/// A push-only script of exactly `len` bytes (one PUSHDATA2 push).
pub(super) fn pushes(len: usize) -> Vec<u8> {
    let n = len - 3;
    let mut s = vec![0x4d];
    s.extend((n as u16).to_le_bytes());
    s.extend(vec![0x01; n]);
    s
}

fn multisig(required: u8, keys: u8) -> Vec<u8> {
    let mut s = vec![0x50 + required];
    for _ in 0..keys {
        s.push(33);
        s.push(0x02);
        s.extend([9; 32]);
    }
    s.extend([0x50 + keys, 0xae]);
    s
}

pub(super) fn tx(version: i32, input: Vec<TxIn>, output: Vec<TxOut>) -> Transaction {
    Transaction { version: Version(version), lock_time: LockTime::ZERO, input, output }
}

/// One input, one P2WPKH output: a plain standard transaction to vary.
pub(super) fn plain() -> Transaction {
    tx(2, vec![input(1)], vec![out(10_000, p2wpkh())])
}

fn standard(t: &Transaction) -> Result<(), TxReject> {
    is_standard_tx(t, &PolicyConfig::default())
}

#[test]
fn a_plain_transaction_passes_both_checks() {
    let t = plain();
    assert_eq!(check_transaction(&t), Ok(()));
    assert_eq!(standard(&t), Ok(()));
}

#[test]
fn empty_inputs_or_outputs_are_consensus_invalid() {
    assert_eq!(check_transaction(&tx(2, vec![], vec![out(1, p2wpkh())])), Err(TxReject::VinEmpty));
    assert_eq!(check_transaction(&tx(2, vec![input(1)], vec![])), Err(TxReject::VoutEmpty));
}

#[test]
fn stripped_size_over_a_quarter_of_the_block_weight_is_oversize() {
    // 4 + 1 + 41 + 1 + (8 + 5 + script) + 4 = 64 + script bytes stripped.
    let fits = tx(2, vec![input(1)], vec![out(0, op_return(1_000_000 - 64))]);
    assert_eq!(fits.base_size(), 1_000_000);
    assert_eq!(check_transaction(&fits), Ok(()));
    let over = tx(2, vec![input(1)], vec![out(0, op_return(1_000_000 - 63))]);
    assert_eq!(over.base_size(), 1_000_001);
    assert_eq!(check_transaction(&over), Err(TxReject::Oversize));
}

#[test]
fn output_amounts_must_stay_within_21_million_btc() {
    let max = MAX_MONEY_SAT;
    assert_eq!(check_transaction(&tx(2, vec![input(1)], vec![out(max, p2wpkh())])), Ok(()));
    assert_eq!(check_transaction(&tx(2, vec![input(1)], vec![out(max + 1, p2wpkh())])), Err(TxReject::VoutTooLarge));
    assert_eq!(
        check_transaction(&tx(2, vec![input(1)], vec![out(max, p2wpkh()), out(1, p2wpkh())])),
        Err(TxReject::TxoutTotalTooLarge)
    );
    // A value with the sign bit set is negative on the wire.
    assert_eq!(check_transaction(&tx(2, vec![input(1)], vec![out(1 << 63, p2wpkh())])), Err(TxReject::VoutNegative));
}

#[test]
fn spending_one_outpoint_twice_is_refused() {
    let t = tx(2, vec![input(1), input(2), input(1)], vec![out(1_000, p2wpkh())]);
    assert_eq!(check_transaction(&t), Err(TxReject::InputsDuplicate));
    let t = tx(2, vec![input(1), input(2)], vec![out(1_000, p2wpkh())]);
    assert_eq!(check_transaction(&t), Ok(()));
}

#[test]
fn coinbase_script_sig_is_2_to_100_bytes_and_null_prevouts_only_in_coinbases() {
    let coinbase = |len: usize| {
        let mut i = input(0);
        i.previous_output = OutPoint::null();
        i.script_sig = ScriptBuf::from_bytes(vec![0x51; len]);
        tx(2, vec![i], vec![out(1_000, p2wpkh())])
    };
    assert_eq!(check_transaction(&coinbase(1)), Err(TxReject::CoinbaseLength));
    assert_eq!(check_transaction(&coinbase(2)), Ok(()));
    assert_eq!(check_transaction(&coinbase(100)), Ok(()));
    assert_eq!(check_transaction(&coinbase(101)), Err(TxReject::CoinbaseLength));
    // A valid coinbase is still no loose transaction, and consensus failures come first.
    assert_eq!(check_loose_tx(&coinbase(2), &PolicyConfig::default()), Err(TxReject::Coinbase));
    assert_eq!(check_loose_tx(&coinbase(1), &PolicyConfig::default()), Err(TxReject::CoinbaseLength));
    assert_eq!(check_loose_tx(&plain(), &PolicyConfig::default()), Ok(()));
    let mut null = input(0);
    null.previous_output = OutPoint::null();
    let t = tx(2, vec![input(1), null], vec![out(1_000, p2wpkh())]);
    assert_eq!(check_transaction(&t), Err(TxReject::PrevoutNull));
}

#[test]
fn versions_1_to_3_are_standard() {
    for v in [1, 2, 3] {
        assert_eq!(standard(&tx(v, vec![input(1)], vec![out(10_000, p2wpkh())])), Ok(()), "version {v}");
    }
    for v in [0, 4, -1] {
        assert_eq!(
            standard(&tx(v, vec![input(1)], vec![out(10_000, p2wpkh())])),
            Err(TxReject::Version),
            "version {v}"
        );
    }
}

#[test]
fn weight_400_000_is_standard_and_400_001_is_not() {
    let with_witness = |bytes: usize| {
        let mut t = plain();
        t.input[0].witness = Witness::from_slice(&[vec![0u8; bytes]]);
        t
    };
    let base = with_witness(100_000).weight().to_wu();
    let t = with_witness(100_000 + (400_000 - base) as usize);
    assert_eq!(t.weight().to_wu(), 400_000);
    assert_eq!(standard(&t), Ok(()));
    let t = with_witness(100_000 + (400_001 - base) as usize);
    assert_eq!(t.weight().to_wu(), 400_001);
    assert_eq!(standard(&t), Err(TxReject::TxSize));
}

#[test]
fn a_64_byte_stripped_transaction_is_too_small_and_65_is_not() {
    // 4 + 1 + 41 + 1 + (8 + 1 + script) + 4 = 60 + script bytes.
    let t = tx(2, vec![input(1)], vec![out(0, vec![0x6a, 0x02, 0xaa, 0xbb])]);
    assert_eq!(t.base_size(), 64);
    assert_eq!(standard(&t), Err(TxReject::TxSizeSmall));
    let t = tx(2, vec![input(1)], vec![out(0, vec![0x6a, 0x03, 0xaa, 0xbb, 0xcc])]);
    assert_eq!(t.base_size(), 65);
    assert_eq!(standard(&t), Ok(()));
}

#[test]
fn script_sig_of_1650_bytes_is_standard_and_1651_is_not() {
    let mut t = plain();
    t.input[0].script_sig = ScriptBuf::from_bytes(pushes(1_650));
    assert_eq!(standard(&t), Ok(()));
    t.input[0].script_sig = ScriptBuf::from_bytes(pushes(1_651));
    assert_eq!(standard(&t), Err(TxReject::ScriptSigSize));
}

#[test]
fn script_sig_must_be_push_only() {
    let mut t = plain();
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x01, 0xaa, 0x76]); // push, OP_DUP
    assert_eq!(standard(&t), Err(TxReject::ScriptSigNotPushOnly));
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x02, 0xaa]); // push running past the end
    assert_eq!(standard(&t), Err(TxReject::ScriptSigNotPushOnly));
    // OP_0, OP_1NEGATE, OP_RESERVED, OP_16 all count as pushes, as in Core.
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x00, 0x4f, 0x50, 0x60]);
    assert_eq!(standard(&t), Ok(()));
}

#[test]
fn every_standard_output_type_passes_and_unknown_scripts_do_not() {
    let mut p2pk = vec![33, 0x03];
    p2pk.extend([5; 32]);
    p2pk.push(0xac);
    let anchor = vec![0x51, 0x02, 0x4e, 0x73];
    let mut p2wsh = vec![0x00, 0x20];
    p2wsh.extend([1; 32]);
    let mut v2 = vec![0x52, 0x20];
    v2.extend([1; 32]);
    for spk in [p2pkh(), p2sh(), p2wpkh(), p2wsh, p2tr(), p2pk, multisig(1, 3), multisig(3, 3), v2] {
        let t = tx(2, vec![input(1)], vec![out(100_000, spk.clone())]);
        assert_eq!(standard(&t), Ok(()), "{spk:02x?}");
    }
    let t = tx(2, vec![input(1)], vec![out(100_000, p2wpkh()), out(240, anchor)]);
    assert_eq!(standard(&t), Ok(()));
    let mut v0_other = vec![0x00, 0x15];
    v0_other.extend([1; 21]);
    for spk in [vec![0x76], vec![], multisig(1, 4), multisig(4, 3), v0_other, vec![33, 0x05, 0xac]] {
        let t = tx(2, vec![input(1)], vec![out(100_000, spk.clone())]);
        assert_eq!(standard(&t), Err(TxReject::ScriptPubKey), "{spk:02x?}");
    }
}

#[test]
fn bare_multisig_is_refused_when_not_permitted() {
    let t = tx(2, vec![input(1)], vec![out(100_000, multisig(1, 2))]);
    let cfg = PolicyConfig { permit_bare_multisig: false, ..PolicyConfig::default() };
    assert_eq!(is_standard_tx(&t, &cfg), Err(TxReject::BareMultisig));
    assert_eq!(standard(&t), Ok(()));
}

#[test]
fn op_return_bytes_share_one_budget() {
    // Default budget (100,000 vbytes) is only bounded by the weight limit in practice.
    let big = tx(2, vec![input(1)], vec![out(0, op_return(99_000)), out(1_000, p2wpkh())]);
    assert_eq!(standard(&big), Ok(()));
    let cfg = PolicyConfig { max_datacarrier_bytes: Some(83), ..PolicyConfig::default() };
    let t = tx(2, vec![input(1)], vec![out(0, op_return(44)), out(0, op_return(39)), out(1_000, p2wpkh())]);
    assert_eq!(is_standard_tx(&t, &cfg), Ok(())); // 44 + 39 = 83
    let t = tx(2, vec![input(1)], vec![out(0, op_return(44)), out(0, op_return(40)), out(1_000, p2wpkh())]);
    assert_eq!(is_standard_tx(&t, &cfg), Err(TxReject::Datacarrier)); // 84
    let off = PolicyConfig { max_datacarrier_bytes: None, ..PolicyConfig::default() };
    let t = tx(2, vec![input(1)], vec![out(0, vec![0x6a]), out(1_000, p2wpkh())]);
    assert_eq!(is_standard_tx(&t, &off), Err(TxReject::Datacarrier));
    assert_eq!(standard(&t), Ok(()));
}

#[test]
fn dust_thresholds_match_cores_per_output_type() {
    let cfg = PolicyConfig::default();
    let anchor = vec![0x51, 0x02, 0x4e, 0x73];
    for (spk, threshold) in [(p2pkh(), 546), (p2sh(), 540), (p2wpkh(), 294), (p2tr(), 330), (anchor, 240)] {
        assert_eq!(dust_threshold(&out(0, spk.clone()), &cfg), threshold, "{spk:02x?}");
        assert!(is_dust(&out(threshold - 1, spk.clone()), &cfg));
        assert!(!is_dust(&out(threshold, spk), &cfg));
    }
    assert_eq!(dust_threshold(&out(0, vec![0x6a, 0x01, 0x01]), &cfg), 0);
    // Rounded up: a 1 sat/kvB dust rate still charges 1 sat for the 182 bytes of a P2PKH spend.
    let low = PolicyConfig { dust_relay_feerate_sat_per_kvb: 1, ..PolicyConfig::default() };
    assert_eq!(dust_threshold(&out(0, p2pkh()), &low), 1);
}

#[test]
fn one_dust_output_is_allowed_as_ephemeral_dust_but_two_are_not() {
    let two_at_threshold = tx(2, vec![input(1)], vec![out(294, p2wpkh()), out(294, p2wpkh())]);
    assert_eq!(standard(&two_at_threshold), Ok(()));
    let one_below = tx(2, vec![input(1)], vec![out(293, p2wpkh()), out(294, p2wpkh())]);
    assert_eq!(standard(&one_below), Ok(()));
    let two_below = tx(2, vec![input(1)], vec![out(293, p2wpkh()), out(293, p2wpkh())]);
    assert_eq!(standard(&two_below), Err(TxReject::Dust));
    // The one dust output is ephemeral: its transaction must pay no fee.
    let cfg = PolicyConfig::default();
    assert_eq!(check_ephemeral_dust_fee(&one_below, 0, &cfg), Ok(()));
    assert_eq!(check_ephemeral_dust_fee(&one_below, 1, &cfg), Err(TxReject::DustWithFee));
    assert_eq!(check_ephemeral_dust_fee(&two_at_threshold, 1, &cfg), Ok(()));
}

#[test]
fn fee_at_rate_rounds_up() {
    assert_eq!(fee_at_rate(100, 1_000), 100);
    assert_eq!(fee_at_rate(100, 141), 15);
    assert_eq!(fee_at_rate(100, 140), 14);
    assert_eq!(fee_at_rate(0, 500), 0);
}

#[test]
fn reasons_carry_cores_strings_and_only_consensus_failures_are_consensus() {
    let consensus = [
        (TxReject::VinEmpty, "bad-txns-vin-empty"),
        (TxReject::InputsDuplicate, "bad-txns-inputs-duplicate"),
        (TxReject::InBelowOut, "bad-txns-in-belowout"),
        (TxReject::InputValuesOutOfRange, "bad-txns-inputvalues-outofrange"),
        (TxReject::Coinbase, "coinbase"),
        (TxReject::ConsensusScriptFailed, "mandatory-script-verify-flag-failed"),
    ];
    for (r, s) in consensus {
        assert_eq!(r.label(), s);
        assert!(r.is_consensus(), "{r:?}");
    }
    let not = [
        (TxReject::Version, "version"),
        (TxReject::TxSize, "tx-size"),
        (TxReject::Dust, "dust"),
        (TxReject::DustWithFee, "dust"),
        (TxReject::TxSizeSmall, "tx-size-small"),
        (TxReject::PrematureCoinbaseSpend, "bad-txns-premature-spend-of-coinbase"),
        (TxReject::NonFinal, "non-final"),
        (TxReject::NonBip68Final, "non-BIP68-final"),
        (TxReject::MissingInputs, "bad-txns-inputs-missingorspent"),
        (TxReject::P2shSigopsOverLimit, "bad-txns-nonstandard-inputs"),
        (TxReject::LegacySigopsOverLimit, "bad-txns-nonstandard-inputs"),
        (TxReject::WitnessNonstandard, "bad-witness-nonstandard"),
        (TxReject::TooManySigops, "bad-txns-too-many-sigops"),
        (TxReject::ScriptFailed, "mempool-script-verify-flag-failed"),
        (TxReject::WitnessStripped, "mempool-script-verify-flag-failed"),
        (TxReject::AlreadyInMempool, "txn-already-in-mempool"),
        (TxReject::MempoolConflict, "txn-mempool-conflict"),
        (TxReject::MinRelayFeeNotMet, "min relay fee not met"),
        (TxReject::MempoolMinFeeNotMet, "mempool min fee not met"),
        (TxReject::InsufficientFee, "insufficient fee"),
        (TxReject::TooLongMempoolChain, "too-long-mempool-chain"),
    ];
    for (r, s) in not {
        assert_eq!(r.label(), s);
        assert!(!r.is_consensus(), "{r:?}");
    }
    assert_eq!(TxReject::Datacarrier.to_string(), "datacarrier");
}
