//! rust-bitcoin's reading of a transaction compared with oni's, shared by the `tx` and `block`
//! differential targets.

use bitcoin::consensus::deserialize_partial;
use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, Transaction, TxOut};
use oni_systems::mempool::policy::sigop_cost;
use oni_systems::mempool::Coin;
use oni_systems::wire::Tx;

/// Asserts that rust-bitcoin, when it reads `data` (a tx and maybe trailing bytes) at all, sees
/// the transaction oni decoded as `tx`: same length, ids, weight, base size and sigop cost.
/// rust-bitcoin refuses one shape Core reads, a transaction with no inputs and no outputs
/// (`00 00` after the version, which it takes for a segwit marker with flag 0); that is the only
/// refusal allowed.
pub fn agrees(tx: &Tx, data: &[u8]) {
    let theirs: Result<(Transaction, usize), _> = deserialize_partial(data);
    let Ok((theirs, used)) = theirs else {
        assert!(
            tx.raw().get(4..6) == Some(&[0, 0][..]),
            "rust-bitcoin refused a tx oni and Core read: {:?}",
            deserialize_partial::<Transaction>(data).err()
        );
        return;
    };
    assert_eq!(used, tx.raw().len(), "rust-bitcoin read another length");
    assert_eq!(theirs.compute_txid().to_byte_array(), tx.txid().to_byte_array());
    assert_eq!(theirs.compute_wtxid().to_byte_array(), tx.wtxid().to_byte_array());
    assert_eq!(theirs.weight().to_wu(), tx.weight(), "weight differs from rust-bitcoin's");
    assert_eq!(theirs.base_size(), tx.span().base_len(), "stripped size differs from rust-bitcoin's");

    // Sigops need the spent outputs: take them from the tx's own outputs, round robin, so P2SH,
    // P2WSH and P2WPKH spends appear whenever the fuzzer writes such outputs.
    let spent: Vec<TxOut> = (0..theirs.input.len())
        .map(|i| {
            theirs
                .output
                .get(i % theirs.output.len().max(1))
                .cloned()
                .unwrap_or(TxOut { value: bitcoin::Amount::ZERO, script_pubkey: bitcoin::ScriptBuf::new() })
        })
        .collect();
    let coins: Vec<Coin> = spent.iter().map(|o| Coin { output: o.clone(), height: 1, coinbase: false }).collect();
    // A coinbase's null prevout spends nothing (Core counts only its legacy sigops).
    let by_outpoint = |op: &OutPoint| -> Option<TxOut> {
        if op.is_null() {
            return None;
        }
        theirs.input.iter().position(|i| i.previous_output == *op).map(|i| spent[i].clone())
    };
    let duplicate_prevouts = {
        let mut ops: Vec<OutPoint> = theirs.input.iter().map(|i| i.previous_output).collect();
        ops.sort();
        ops.windows(2).any(|w| w[0] == w[1])
    };
    // rust-bitcoin counts a P2SH spend's sigops in the scriptSig's last push even when the
    // scriptSig has other opcodes; Core (GetP2SHSigOpCount) counts none then, and oni follows
    // Core. Found by this target; compared only where the two rules agree.
    let p2sh_not_push_only =
        theirs.input.iter().zip(&spent).any(|(i, o)| o.script_pubkey.is_p2sh() && !i.script_sig.is_push_only());
    if !duplicate_prevouts && !p2sh_not_push_only {
        assert_eq!(
            sigop_cost(&theirs, &coins),
            theirs.total_sigop_cost(by_outpoint) as u64,
            "sigop cost differs from rust-bitcoin's"
        );
    }
}
