//! Compact block work, per block: building the `cmpctblock` we send (short ids of every
//! transaction), reading one, and rebuilding the block from a pool that holds its transactions
//! (every pool entry's short id computed, as Core does) with the result checked against its header.
//! Blocks of 2,000 and 4,000 transactions against pools of 5,000, 50,000 and 300,000 (a full
//! default pool is ~300,000 small transactions).

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness, Wtxid};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use oni_systems::chain::reconstruct::PartialBlock;
use oni_systems::wire::{Block, CmpctBlock};
use std::sync::Arc;
use std::time::Duration;

/// A one-input, two-output segwit spend, distinct per `i`.
fn tx(i: u32) -> Transaction {
    let mut prev = [0u8; 32];
    prev[..4].copy_from_slice(&i.to_le_bytes());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array(prev), vout: i % 3 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x30; 72], vec![0x02; 33]]),
        }],
        output: vec![
            TxOut { value: Amount::from_sat(10_000 + u64::from(i)), script_pubkey: ScriptBuf::from_bytes(vec![0; 22]) },
            TxOut { value: Amount::from_sat(5_000), script_pubkey: ScriptBuf::from_bytes(vec![1; 22]) },
        ],
    }
}

/// A block of a coinbase and `n` transactions, with its merkle root and witness commitment (no
/// proof of work needed here).
fn block(n: u32) -> Block {
    let mut coinbase = tx(u32::MAX);
    coinbase.input[0].previous_output = OutPoint::null();
    coinbase.input[0].witness = Witness::from_slice(&[[0u8; 32]]);
    let txdata: Vec<Transaction> = std::iter::once(coinbase).chain((0..n).map(tx)).collect();
    let header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let mut b = bitcoin::Block { header, txdata };
    let root = b.witness_root().expect("transactions");
    let commitment = bitcoin::Block::compute_witness_commitment(&root, &[0u8; 32]);
    let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    script.extend_from_slice(commitment.as_byte_array());
    b.txdata[0].output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(script) });
    b.header.merkle_root = b.compute_merkle_root().expect("transactions");
    assert!(b.check_merkle_root() && b.check_witness_commitment());
    Block::from_bitcoin(&b).expect("encodes")
}

/// The pool: the block's transactions among `size` in all.
fn pool(block_txs: u32, size: u32) -> Vec<(Wtxid, Arc<Transaction>)> {
    (0..size.max(block_txs))
        .map(|i| tx(if i < block_txs { i } else { 1_000_000 + i }))
        .map(|t| (t.compute_wtxid(), Arc::new(t)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("compact_blocks");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in [2_000u32, 4_000] {
        let b = block(n);
        g.bench_with_input(BenchmarkId::new("build", n), &b, |bench, b| bench.iter(|| CmpctBlock::from_block(b, 7)));
        let cmpct = CmpctBlock::from_block(&b, 7);
        let mut payload = Vec::new();
        cmpct.encode(&mut payload);
        g.bench_with_input(BenchmarkId::new("decode", n), &payload, |bench, p| {
            bench.iter(|| CmpctBlock::decode_message(p.clone()).expect("decodes"))
        });
        for size in [5_000u32, 50_000, 300_000] {
            let p = pool(n, size);
            // Checked once outside the timing: it rebuilds with nothing missing.
            let partial = PartialBlock::new(cmpct.clone(), p.iter().map(|(w, t)| (*w, t))).expect("rebuilds");
            assert!(partial.missing().is_empty());
            assert_eq!(partial.fill(None).expect("matches"), b);
            g.bench_with_input(BenchmarkId::new(format!("rebuild_{n}_txs"), size), &p, |bench, p| {
                bench.iter(|| {
                    let partial = PartialBlock::new(cmpct.clone(), p.iter().map(|(w, t)| (*w, t))).expect("rebuilds");
                    partial.fill(None).expect("matches")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
