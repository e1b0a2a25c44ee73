//! The pool's chainstate costs: Core's script engine on one-input transactions from the fixture
//! mempool (P2WPKH and P2TR key path, transactions per second), coin lookups in the LMDB coin store
//! holding the fixture's 5,145 coins (hit and miss), and applying the 2,100-block fixture chain to
//! an empty store (one fsync'd write transaction per block). Short runs:
//! `cargo bench --bench coins -- --quick`. Figures go in benches/REPORT-coins.md.

use bitcoin::consensus::deserialize;
use bitcoin::hashes::hex::FromHex;
use bitcoin::{Block, OutPoint, Transaction, TxOut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oni::coins::{CoinStore, KernelScripts};
use oni::validation::fixture::Fixture;
use oni_systems::mempool::{CoinView, ScriptVerifier};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn genesis() -> bitcoin::BlockHash {
    bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest).block_hash()
}

fn mempool() -> Vec<Transaction> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/regtest-core/mempool.hex");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| deserialize(&Vec::<u8>::from_hex(l.trim()).unwrap()).unwrap())
        .collect()
}

fn apply(store: &CoinStore, blocks: &[Block]) {
    for (i, b) in blocks.iter().enumerate() {
        store.connect(b, i as u32 + 1).unwrap();
    }
}

/// A one-input transaction of the fixture mempool spending a confirmed output of the given kind.
fn one_input(store: &CoinStore, txs: &[Transaction], kind: fn(&bitcoin::Script) -> bool) -> (Transaction, Vec<TxOut>) {
    txs.iter()
        .find_map(|tx| {
            let coin = (tx.input.len() == 1).then(|| store.coin(&tx.input[0].previous_output)).flatten()?;
            kind(&coin.output.script_pubkey).then(|| (tx.clone(), vec![coin.output]))
        })
        .expect("a one-input spend of that kind in the fixture mempool")
}

fn bench(c: &mut Criterion) {
    let f = Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap();
    let blocks: Vec<Block> = f.chain.iter().map(|b| deserialize(&b.raw).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = CoinStore::open(dir.path(), genesis()).unwrap();
    apply(&store, &blocks);
    let txs = mempool();

    let mut g = c.benchmark_group("scripts_one_input");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (name, kind) in
        [("p2wpkh", bitcoin::Script::is_p2wpkh as fn(&bitcoin::Script) -> bool), ("p2tr", bitcoin::Script::is_p2tr)]
    {
        let (tx, spent) = one_input(&store, &txs, kind);
        assert_eq!(KernelScripts.verify(&tx, &spent), Ok(()));
        g.bench_function(name, |b| b.iter(|| KernelScripts.verify(black_box(&tx), black_box(&spent))));
    }
    g.finish();

    let mut g = c.benchmark_group("coin_lookup");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let present: Vec<OutPoint> = store.all().unwrap().into_iter().map(|(op, _)| op).collect();
    let mut i = 0usize;
    g.bench_function("hit", |b| {
        b.iter(|| {
            // A stride through the set, so lookups do not all hit the same page.
            i = (i + 769) % present.len();
            assert!(store.coin(black_box(&present[i])).is_some());
        })
    });
    let missing = OutPoint { txid: present[0].txid, vout: 9_999 };
    g.bench_function("miss", |b| b.iter(|| assert!(store.coin(black_box(&missing)).is_none())));
    g.finish();

    let mut g = c.benchmark_group("apply_fixture_chain");
    g.throughput(Throughput::Elements(blocks.len() as u64));
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    g.bench_function("connect_2100_blocks", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |d| {
                let s = CoinStore::open(d.path(), genesis()).unwrap();
                apply(&s, &blocks);
                assert_eq!(s.len().unwrap(), 5145);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
