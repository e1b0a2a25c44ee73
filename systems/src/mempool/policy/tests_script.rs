//! Tests of the script reader at the edges where Core's rules are particular: truncated pushes,
//! what counts as a push, minimal numbers in multisig, witness-program shapes, sigop counting.

use super::script::*;

fn key(prefix: u8, len: usize) -> Vec<u8> {
    let mut k = vec![len as u8, prefix];
    k.extend(vec![9; len - 1]);
    k
}

#[test]
fn the_parser_yields_pushes_and_stops_at_a_truncated_one() {
    let script = [0x00, 0x02, 0xaa, 0xbb, 0x4c, 0x01, 0xcc, 0x51, 0x4d, 0x05, 0x00, 0xdd];
    let parsed: Vec<_> = ops(&script).collect();
    assert_eq!(parsed.len(), 5);
    assert_eq!(parsed[1], Ok(Op { opcode: 0x02, data: &[0xaa, 0xbb] }));
    assert_eq!(parsed[2], Ok(Op { opcode: 0x4c, data: &[0xcc] }));
    assert_eq!(parsed[3], Ok(Op { opcode: 0x51, data: &[] }));
    assert_eq!(parsed[4], Err(()));
    assert!(!is_push_only(&script));
    assert!(is_push_only(&script[..8]));
    assert!(!is_push_only(&[0x4e, 0xff, 0xff, 0xff, 0xff])); // PUSHDATA4 past the end
}

#[test]
fn output_types_follow_cores_solver() {
    let mut p2pk_uncompressed = key(0x04, 65);
    p2pk_uncompressed.push(0xac);
    assert_eq!(classify(&p2pk_uncompressed), ScriptType::PubKey);
    let mut wrong_prefix = key(0x05, 65);
    wrong_prefix.push(0xac);
    assert_eq!(classify(&wrong_prefix), ScriptType::NonStandard);
    let mut v0_21 = vec![0x00, 21];
    v0_21.extend([1; 21]);
    assert_eq!(classify(&v0_21), ScriptType::NonStandard);
    let mut v1_20 = vec![0x51, 20];
    v1_20.extend([1; 20]);
    assert_eq!(classify(&v1_20), ScriptType::WitnessUnknown);
    assert_eq!(classify(&[0x51, 0x02, 0x4e, 0x73]), ScriptType::Anchor);
    assert_eq!(classify(&[0x52, 0x02, 0x4e, 0x73]), ScriptType::WitnessUnknown);
    assert_eq!(classify(&[0x6a]), ScriptType::NullData);
    assert_eq!(classify(&[0x6a, 0x51, 0x01, 0x00]), ScriptType::NullData);
    assert_eq!(classify(&[0x6a, 0x76]), ScriptType::NonStandard);
    assert_eq!(classify(&[0x6a, 0x02, 0x00]), ScriptType::NonStandard);
    // A 41-byte program is no witness program.
    let mut long = vec![0x51, 41];
    long.extend([1; 41]);
    assert_eq!(witness_program(&long), None);
    assert_eq!(witness_program(&[0x00, 0x02, 1, 2]), Some((0, &[1u8, 2][..])));
}

#[test]
fn multisig_counts_must_be_small_minimal_numbers_matching_the_keys() {
    let ms = |m: &[u8], n: &[u8]| {
        let mut s = m.to_vec();
        s.extend(key(0x02, 33));
        s.extend(key(0x03, 33));
        s.extend(n);
        s.push(0xae);
        s
    };
    assert_eq!(classify(&ms(&[0x51], &[0x52])), ScriptType::Multisig { required: 1, keys: 2 });
    assert_eq!(classify(&ms(&[0x51], &[0x53])), ScriptType::NonStandard); // says 3 keys, names 2
    assert_eq!(classify(&ms(&[0x01, 0x01], &[0x52])), ScriptType::NonStandard); // 1 pushed, not OP_1
    assert_eq!(classify(&ms(&[0x00], &[0x52])), ScriptType::NonStandard); // 0 of 2
    let mut trailing = ms(&[0x51], &[0x52]);
    trailing.insert(trailing.len() - 1, 0x61); // OP_NOP before CHECKMULTISIG
    assert_eq!(classify(&trailing), ScriptType::NonStandard);
}

#[test]
fn sigops_are_counted_as_core_counts_them() {
    assert_eq!(sigop_count(&[0xac, 0xad, 0xae], false), 22);
    assert_eq!(sigop_count(&[0x52, 0xae, 0x60, 0xaf], true), 18);
    assert_eq!(sigop_count(&[0x52, 0xae], false), 20);
    // Found by the tx_diff fuzz target against rust-bitcoin, which keeps OP_7 as "last" across
    // the CHECKMULTISIGs that follow it (7 each): for Core each opcode is the next one's "last".
    assert_eq!(sigop_count(&[0x57, 0xaf, 0xaf, 0xaf], true), 7 + 20 + 20);
    assert_eq!(sigop_count(&[0x01, 0xac, 0xac], false), 1); // the first 0xac is pushed data
    assert_eq!(sigop_count(&[0xac, 0x4c, 0x05, 0xac], false), 1); // stops at the truncated push
                                                                  // P2SH: the last push is the redeem script; a non-push scriptSig counts nothing.
    assert_eq!(p2sh_sigop_count(&[0x00, 0x02, 0xac, 0xac]), 2);
    assert_eq!(p2sh_sigop_count(&[0x02, 0xac, 0xac, 0x51]), 0);
    assert_eq!(p2sh_sigop_count(&[0x02, 0xac, 0xac, 0x76]), 0);
}

#[test]
fn a_push_only_script_sig_leaves_its_last_push_on_top() {
    assert_eq!(push_only_stack_top(&[]), Ok(None));
    assert_eq!(push_only_stack_top(&[0x01, 0xaa, 0x00]), Ok(Some(&[][..])));
    assert_eq!(push_only_stack_top(&[0x00, 0x4f]), Ok(Some(&[0x81u8][..])));
    assert_eq!(push_only_stack_top(&[0x60]), Ok(Some(&[16u8][..])));
    assert_eq!(push_only_stack_top(&[0x76]), Err(PushEvalError::BadOpcode));
    assert_eq!(push_only_stack_top(&vec![0x00; 10_001]), Err(PushEvalError::ScriptSize));
    assert!(is_unspendable(&vec![0x51; 10_001]));
    assert!(!is_unspendable(&vec![0x51; 10_000]));
}
