//! Tests of the checks that need spent coins (amounts, maturity, input and witness standardness,
//! sigops, vsize), of time locks, and of the whole pipeline on Core's own regtest mempool.

use super::tests::{input, out, p2pkh, p2sh, p2tr, p2wpkh, p2wsh_of, plain, pushes, tx};
use super::*;
use crate::mempool::coins::{Coin, CoinView, MemoryCoins};
use bitcoin::absolute::LockTime;
use bitcoin::consensus::deserialize;
use bitcoin::{Block, OutPoint, ScriptBuf, Sequence, Transaction, Witness};

fn coin(value_sat: u64, script: Vec<u8>, height: u32, coinbase: bool) -> Coin {
    Coin { output: out(value_sat, script), height, coinbase }
}

fn p2wpkh_coin(value_sat: u64) -> Coin {
    coin(value_sat, p2wpkh(), 10, false)
}

#[test]
fn fee_is_inputs_minus_outputs_and_in_below_out_is_refused() {
    let t = plain(); // pays 10,000
    assert_eq!(check_inputs(&t, &[p2wpkh_coin(10_500)], 200), Ok(500));
    assert_eq!(check_inputs(&t, &[p2wpkh_coin(10_000)], 200), Ok(0));
    assert_eq!(check_inputs(&t, &[p2wpkh_coin(9_999)], 200), Err(TxReject::InBelowOut));
    assert_eq!(check_inputs(&t, &[], 200), Err(TxReject::MissingInputs));
}

#[test]
fn input_values_must_stay_within_21_million_btc() {
    let t = tx(2, vec![input(1), input(2)], vec![out(1_000, p2wpkh())]);
    let max = MAX_MONEY_SAT;
    assert_eq!(check_inputs(&t, &[p2wpkh_coin(max - 1_000), p2wpkh_coin(1_000)], 200), Ok(max - 1_000));
    assert_eq!(check_inputs(&t, &[p2wpkh_coin(max), p2wpkh_coin(1)], 200), Err(TxReject::InputValuesOutOfRange));
    assert_eq!(check_inputs(&t, &[p2wpkh_coin(max + 1), p2wpkh_coin(1)], 200), Err(TxReject::InputValuesOutOfRange));
}

#[test]
fn a_coinbase_output_is_spendable_100_blocks_after_its_block() {
    let t = plain();
    let cb = coin(50_000, p2wpkh(), 1_000, true);
    assert_eq!(check_inputs(&t, std::slice::from_ref(&cb), 1_099), Err(TxReject::PrematureCoinbaseSpend)); // depth 99
    assert_eq!(check_inputs(&t, &[cb], 1_100), Ok(40_000)); // depth 100
    let not_cb = coin(50_000, p2wpkh(), 1_000, false);
    assert_eq!(check_inputs(&t, &[not_cb], 1_001), Ok(40_000));
}

/// A P2SH spend whose scriptSig pushes `redeem`.
fn p2sh_spend(redeem: &[u8]) -> (Transaction, Vec<Coin>) {
    let mut t = plain();
    let mut sig = vec![0x4d];
    sig.extend((redeem.len() as u16).to_le_bytes());
    sig.extend(redeem);
    t.input[0].script_sig = ScriptBuf::from_bytes(sig);
    (t, vec![coin(20_000, p2sh(), 10, false)])
}

#[test]
fn p2sh_redeem_scripts_may_have_15_sigops_not_16() {
    let (t, coins) = p2sh_spend(&[0xac; 15]);
    assert_eq!(are_inputs_standard(&t, &coins), Ok(()));
    let (t, coins) = p2sh_spend(&[0xac; 16]);
    assert_eq!(are_inputs_standard(&t, &coins), Err(TxReject::P2shSigopsOverLimit));
    // OP_3 CHECKMULTISIG counts 3 when counted accurately, 20 otherwise.
    let (t, coins) = p2sh_spend(&[0x53, 0xae, 0x5c, 0xae]);
    assert_eq!(are_inputs_standard(&t, &coins), Ok(()));
    let (t, coins) = p2sh_spend(&[0x00, 0xae]);
    assert_eq!(are_inputs_standard(&t, &coins), Err(TxReject::P2shSigopsOverLimit));
}

#[test]
fn p2sh_spends_need_a_redeem_script_that_evaluates() {
    let mut t = plain();
    let coins = vec![coin(20_000, p2sh(), 10, false)];
    assert_eq!(are_inputs_standard(&t, &coins), Err(TxReject::P2shRedeemScriptMissing));
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x00; 1_000]);
    assert_eq!(are_inputs_standard(&t, &coins), Ok(()));
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x00; 1_001]); // stack over 1,000 items
    assert_eq!(are_inputs_standard(&t, &coins), Err(TxReject::P2shScriptSigMalformed));
    t.input[0].script_sig = ScriptBuf::from_bytes(pushes(3 + 520));
    assert_eq!(are_inputs_standard(&t, &coins), Ok(()));
    t.input[0].script_sig = ScriptBuf::from_bytes(pushes(3 + 521)); // element over 520 bytes
    assert_eq!(are_inputs_standard(&t, &coins), Err(TxReject::P2shScriptSigMalformed));
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x50]); // OP_RESERVED fails when run
    assert_eq!(are_inputs_standard(&t, &coins), Err(TxReject::P2shScriptSigMalformed));
}

#[test]
fn spending_unknown_scripts_or_undefined_witness_programs_is_nonstandard() {
    let t = plain();
    assert_eq!(are_inputs_standard(&t, &[coin(1, vec![0x76], 1, false)]), Err(TxReject::InputScriptUnknown));
    let mut v2 = vec![0x52, 0x20];
    v2.extend([1; 32]);
    assert_eq!(are_inputs_standard(&t, &[coin(1, v2, 1, false)]), Err(TxReject::InputWitnessProgramUnknown));
    // A bare 1-of-20 multisig is no standard output, but spending one is.
    let mut ms = vec![0x51];
    for _ in 0..20 {
        ms.push(33);
        ms.push(0x02);
        ms.extend([9; 32]);
    }
    ms.extend([0x01, 20, 0xae]); // 20 as a minimal one-byte push
    assert_eq!(script::classify(&ms), script::ScriptType::Multisig { required: 1, keys: 20 });
    for spk in [p2pkh(), p2wpkh(), p2tr(), ms, vec![0x51, 0x02, 0x4e, 0x73]] {
        assert_eq!(are_inputs_standard(&t, &[coin(1, spk.clone(), 1, false)]), Ok(()), "{spk:02x?}");
    }
}

#[test]
fn legacy_sigops_over_2500_per_transaction_are_nonstandard() {
    // Bare outputs of 500 CHECKSIGs: nonstandard to spend, but the BIP54 count comes first.
    let heavy = coin(1_000, vec![0xac; 500], 1, false);
    let t = tx(2, (1..=5).map(input).collect(), vec![out(1_000, p2wpkh())]);
    assert_eq!(are_inputs_standard(&t, &vec![heavy.clone(); 5]), Err(TxReject::InputScriptUnknown)); // 2,500
    let mut t = t;
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x01, 0xac]); // a pushed byte is no sigop
    assert_eq!(are_inputs_standard(&t, &vec![heavy.clone(); 5]), Err(TxReject::InputScriptUnknown));
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0xac]); // 2,501
    assert_eq!(are_inputs_standard(&t, &vec![heavy; 5]), Err(TxReject::LegacySigopsOverLimit));
}

fn with_witness(spk: Vec<u8>, items: Vec<Vec<u8>>) -> (Transaction, Vec<Coin>) {
    let mut t = plain();
    t.input[0].witness = Witness::from_slice(&items);
    (t, vec![coin(20_000, spk, 10, false)])
}

fn witness_ok(spk: Vec<u8>, items: Vec<Vec<u8>>) -> Result<(), TxReject> {
    let (t, coins) = with_witness(spk, items);
    is_witness_standard(&t, &coins)
}

#[test]
fn p2wsh_witness_limits_are_3600_script_bytes_100_items_80_bytes_each() {
    let ws = |n: usize| vec![0x51; n];
    assert_eq!(witness_ok(p2wsh_of(&ws(3_600)), vec![ws(3_600)]), Ok(()));
    assert_eq!(witness_ok(p2wsh_of(&ws(3_601)), vec![ws(3_601)]), Err(TxReject::WitnessNonstandard));
    let items = |count: usize, size: usize| {
        let mut v = vec![vec![0u8; size]; count];
        v.push(ws(10));
        v
    };
    assert_eq!(witness_ok(p2wsh_of(&ws(10)), items(100, 80)), Ok(()));
    assert_eq!(witness_ok(p2wsh_of(&ws(10)), items(101, 1)), Err(TxReject::WitnessNonstandard));
    assert_eq!(witness_ok(p2wsh_of(&ws(10)), items(1, 81)), Err(TxReject::WitnessNonstandard));
}

#[test]
fn taproot_witnesses_carry_no_annex_and_small_tapscript_items() {
    let sig = vec![1u8; 64];
    assert_eq!(witness_ok(p2tr(), vec![sig.clone()]), Ok(()));
    assert_eq!(witness_ok(p2tr(), vec![sig.clone(), vec![0x50, 1]]), Err(TxReject::WitnessNonstandard));
    let control = |leaf: u8| {
        let mut c = vec![leaf];
        c.extend([2; 32]);
        c
    };
    let leaf_script = vec![0xac];
    assert_eq!(witness_ok(p2tr(), vec![vec![0; 80], leaf_script.clone(), control(0xc0)]), Ok(()));
    assert_eq!(
        witness_ok(p2tr(), vec![vec![0; 81], leaf_script.clone(), control(0xc1)]),
        Err(TxReject::WitnessNonstandard)
    );
    // Another leaf version has no item limit yet.
    assert_eq!(witness_ok(p2tr(), vec![vec![0; 81], leaf_script.clone(), control(0xc2)]), Ok(()));
    assert_eq!(witness_ok(p2tr(), vec![vec![], leaf_script, vec![]]), Err(TxReject::WitnessNonstandard));
}

#[test]
fn witnesses_only_where_a_witness_program_is_spent() {
    assert_eq!(witness_ok(p2wpkh(), vec![vec![1; 72], vec![2; 33]]), Ok(()));
    assert_eq!(witness_ok(p2pkh(), vec![vec![1]]), Err(TxReject::WitnessNonstandard));
    assert_eq!(witness_ok(vec![0x51, 0x02, 0x4e, 0x73], vec![vec![1]]), Err(TxReject::WitnessNonstandard));
    // P2SH-wrapped P2WPKH: the redeem script is the witness program.
    let (mut t, coins) = with_witness(p2sh(), vec![vec![1; 72], vec![2; 33]]);
    let mut sig = vec![22];
    sig.extend(p2wpkh());
    t.input[0].script_sig = ScriptBuf::from_bytes(sig);
    assert_eq!(is_witness_standard(&t, &coins), Ok(()));
    assert!(spends_non_anchor_witness_program(&t, &coins));
    t.input[0].script_sig = ScriptBuf::new();
    assert_eq!(is_witness_standard(&t, &coins), Err(TxReject::WitnessNonstandard));
}

#[test]
fn sigop_cost_counts_legacy_p2sh_and_witness_sigops_as_core_does() {
    // Legacy: scriptSig and outputs, inaccurate, × 4. A P2PKH output has one CHECKSIG.
    let t = tx(2, vec![input(1)], vec![out(1_000, p2pkh()), out(1_000, vec![0x53, 0xae])]);
    assert_eq!(sigop_cost(&t, &[p2wpkh_coin(5_000)]), 4 + 80 + 1);
    // P2SH redeem script (accurate, × 4): OP_3 CHECKMULTISIG + CHECKSIG = 4 → 16.
    let (t, coins) = p2sh_spend(&[0x53, 0xae, 0xac]);
    assert_eq!(sigop_cost(&t, &coins), 16);
    // P2SH-P2WPKH: 1, witness scale.
    let (mut t, coins) = with_witness(p2sh(), vec![vec![1; 72], vec![2; 33]]);
    let mut sig = vec![22];
    sig.extend(p2wpkh());
    t.input[0].script_sig = ScriptBuf::from_bytes(sig);
    assert_eq!(sigop_cost(&t, &coins), 1);
    // P2WSH: the witness script's accurate count, × 1.
    let ws = vec![0x52, 0xae, 0xac];
    let (t, coins) = with_witness(p2wsh_of(&ws), vec![vec![], ws]);
    assert_eq!(sigop_cost(&t, &coins), 3);
    // Taproot has no sigop cost.
    let (t, coins) = with_witness(p2tr(), vec![vec![1; 64]]);
    assert_eq!(sigop_cost(&t, &coins), 0);
}

#[test]
fn a_p2sh_scriptsig_with_a_non_push_opcode_counts_no_redeem_script_sigops_as_core() {
    // Found by the tx_diff fuzz target: rust-bitcoin counts the last push's sigops whatever else
    // the scriptSig holds; Core's GetP2SHSigOpCount returns 0 at the first opcode above OP_16.
    let (mut t, coins) = p2sh_spend(&[0xac]);
    assert_eq!(sigop_cost(&t, &coins), 4);
    let mut sig = vec![0xfb]; // an opcode above OP_16, then the same push of CHECKSIG
    sig.extend_from_slice(t.input[0].script_sig.as_bytes());
    t.input[0].script_sig = ScriptBuf::from_bytes(sig);
    assert_eq!(sigop_cost(&t, &coins), 0);
    // OP_1..OP_16 are pushes for this rule: the redeem script still counts.
    let (mut t, coins) = p2sh_spend(&[0xac]);
    let mut sig = vec![0x60]; // OP_16
    sig.extend_from_slice(t.input[0].script_sig.as_bytes());
    t.input[0].script_sig = ScriptBuf::from_bytes(sig);
    assert_eq!(sigop_cost(&t, &coins), 4);
}

#[test]
fn sigop_cost_of_16000_is_standard_and_16001_is_not() {
    // 800 bare CHECKMULTISIGs in a witness script count 20 each: 16,000 at witness scale.
    let ws = vec![0xae; 800];
    let (t, coins) = with_witness(p2wsh_of(&ws), vec![ws]);
    assert_eq!(sigop_cost(&t, &coins), 16_000);
    assert_eq!(check_sigop_cost(sigop_cost(&t, &coins)), Ok(()));
    let mut ws = vec![0xae; 800];
    ws.push(0xac);
    let (t, coins) = with_witness(p2wsh_of(&ws), vec![ws]);
    assert_eq!(sigop_cost(&t, &coins), 16_001);
    assert_eq!(check_sigop_cost(sigop_cost(&t, &coins)), Err(TxReject::TooManySigops));
}

#[test]
fn vsize_is_weight_or_sigops_times_bytes_per_sigop_rounded_up() {
    assert_eq!(sigop_adjusted_vsize(401, 0, 20), 101);
    assert_eq!(sigop_adjusted_vsize(400, 20, 20), 100);
    assert_eq!(sigop_adjusted_vsize(400, 21, 20), 105);
    assert_eq!(sigop_adjusted_vsize(400, 100, 0), 100);
}

#[test]
fn locktime_must_be_below_the_next_blocks_height_or_time() {
    let mut t = plain();
    t.input[0].sequence = Sequence::ENABLE_LOCKTIME_NO_RBF;
    t.lock_time = LockTime::from_consensus(2_101);
    assert_eq!(check_final_for_next_block(&t, 2_100, 0), Err(TxReject::NonFinal)); // next block is 2,101
    assert_eq!(check_final_for_next_block(&t, 2_101, 0), Ok(()));
    t.lock_time = LockTime::from_consensus(1_700_000_000);
    assert!(!is_final_tx(&t, 5, 1_700_000_000));
    assert!(is_final_tx(&t, 5, 1_700_000_001));
    // Every input at SEQUENCE_FINAL disables the lock.
    t.input[0].sequence = Sequence::MAX;
    assert!(is_final_tx(&t, 5, 0));
}

#[test]
fn bip68_height_and_time_locks_count_from_the_coins_block() {
    let mtp = |h: u32| 1_000_000 + h as i64 * 600;
    let mut t = plain();
    t.input[0].sequence = Sequence(10); // 10 blocks after the coin's block at 100
    let lp = sequence_locks(&t, &[100], 109, mtp);
    assert_eq!((lp.height, lp.time, lp.max_input_height), (109, -1, 100));
    assert_eq!(check_sequence_locks(&lp, 109, mtp(108)), Err(TxReject::NonBip68Final));
    let lp = sequence_locks(&t, &[100], 110, mtp);
    assert_eq!(check_sequence_locks(&lp, 110, mtp(109)), Ok(()));
    // Time: 2 × 512 s after the MTP of the coin block's parent.
    t.input[0].sequence = Sequence(SEQUENCE_LOCKTIME_TYPE_FLAG_FOR_TESTS | 2);
    let lp = sequence_locks(&t, &[100], 200, mtp);
    assert_eq!(lp.time, mtp(99) + 1_024 - 1);
    assert_eq!(check_sequence_locks(&lp, 200, mtp(99) + 1_023), Err(TxReject::NonBip68Final));
    assert_eq!(check_sequence_locks(&lp, 200, mtp(99) + 1_024), Ok(()));
    // Version 1, or the disable flag, means no relative lock.
    t.input[0].sequence = Sequence(10);
    t.version = bitcoin::transaction::Version(1);
    assert_eq!(check_sequence_locks(&sequence_locks(&t, &[100], 101, mtp), 101, mtp(100)), Ok(()));
    t.version = bitcoin::transaction::Version(2);
    t.input[0].sequence = Sequence(10 | (1 << 31));
    let lp = sequence_locks(&t, &[100], 101, mtp);
    assert_eq!((lp.height, lp.max_input_height), (-1, 0));
    // A coin from the pool (height = next block) is excluded from max_input_height.
    t.input[0].sequence = Sequence(0);
    assert_eq!(sequence_locks(&t, &[101], 101, mtp).max_input_height, 0);
}

const SEQUENCE_LOCKTIME_TYPE_FLAG_FOR_TESTS: u32 = 1 << 22;

/// Median of the last 11 block times up to each height, genesis (regtest) included.
fn fixture_mtps(blocks: &[Block]) -> Vec<i64> {
    let mut times = vec![1_296_688_602i64];
    times.extend(blocks.iter().map(|b| b.header.time as i64));
    (0..times.len())
        .map(|h| {
            let mut w: Vec<i64> = times[h.saturating_sub(10)..=h].to_vec();
            w.sort();
            w[w.len() / 2]
        })
        .collect()
}

#[test]
fn cores_regtest_mempool_passes_every_check_in_pool_order() {
    use crate::chain::test_vectors::{chain_blocks, unhex};
    let blocks: Vec<Block> = chain_blocks().iter().map(|raw| deserialize(raw).unwrap()).collect();
    let mut chain = MemoryCoins::default();
    for (i, b) in blocks.iter().enumerate() {
        chain.connect(b, i as u32 + 1);
    }
    let mtps = fixture_mtps(&blocks);
    let tip = blocks.len() as u32;
    let next = tip + 1;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/regtest-core");
    let text = std::fs::read_to_string(dir.join("mempool.hex")).unwrap();
    let txs: Vec<Transaction> =
        text.lines().filter(|l| !l.is_empty()).map(|l| deserialize(&unhex(l)).unwrap()).collect();
    assert_eq!(txs.len(), 53);
    let cfg = PolicyConfig::default();
    let mut pool = MemoryCoins::default();
    let (mut from_pool, mut spends_witness, mut total_fee, mut total_sigops) = (0, 0, 0, 0);
    for t in &txs {
        assert_eq!(check_transaction(t), Ok(()));
        assert_eq!(is_standard_tx(t, &cfg), Ok(()));
        assert_eq!(check_loose_tx(t, &cfg), Ok(()));
        assert_eq!(check_final_for_next_block(t, tip, mtps[tip as usize]), Ok(()));
        let coins: Vec<Coin> = t
            .input
            .iter()
            .map(|i| {
                chain.coin(&i.previous_output).or_else(|| {
                    from_pool += 1;
                    pool.coin(&i.previous_output)
                })
            })
            .collect::<Option<_>>()
            .expect("every input in the chain or the pool");
        let heights: Vec<u32> = coins.iter().map(|c| c.height).collect();
        let lp = sequence_locks(t, &heights, next, |h| mtps[h as usize]);
        assert_eq!(check_sequence_locks(&lp, next, mtps[tip as usize]), Ok(()));
        let fee = check_inputs(t, &coins, next).unwrap();
        assert_eq!(are_inputs_standard(t, &coins), Ok(()));
        assert_eq!(is_witness_standard(t, &coins), Ok(()));
        let cost = sigop_cost(t, &coins);
        assert_eq!(check_sigop_cost(cost), Ok(()));
        total_sigops += cost;
        assert_eq!(check_ephemeral_dust_fee(t, fee, &cfg), Ok(()));
        let vsize = sigop_adjusted_vsize(t.weight().to_wu(), cost, cfg.bytes_per_sigop);
        assert_eq!(vsize, t.vsize() as u64, "no fixture tx is sigop-heavy");
        assert!(fee >= fee_at_rate(cfg.min_relay_feerate_sat_per_kvb, vsize));
        spends_witness += spends_non_anchor_witness_program(t, &coins) as usize;
        total_fee += fee;
        let txid = t.compute_txid();
        for (vout, o) in t.output.iter().enumerate() {
            let outpoint = OutPoint { txid, vout: vout as u32 };
            pool.insert(outpoint, Coin { output: o.clone(), height: next, coinbase: false });
        }
    }
    assert!(from_pool > 0, "the fixture chains pool transactions");
    assert!(spends_witness > 0);
    assert!(total_fee > 0);
    assert!(total_sigops > 0, "P2WPKH and P2PKH spends cost sigops");
}
