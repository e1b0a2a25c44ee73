//! Pool admission: one one-input P2WPKH transaction of Core's fixture mempool through every check —
//! standardness, coins from the real LMDB coin store holding the fixture chain, fees, limits — with
//! Core's script engine and with scripts skipped (the rest of the pipeline's own cost), then taken
//! out again so every iteration sees the same pool. Also the whole 53-transaction fixture mempool
//! (chains up to 4 deep) into an empty pool. Short runs: `cargo bench --bench mempool -- --quick`.
//! Figures go in benches/REPORT-tx-relay.md.

use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::Transaction;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oni::coins::{CoinStore, KernelScripts};
use oni::validation::fixture::Fixture;
use oni_systems::mempool::accept::{accept, AcceptInputs};
use oni_systems::mempool::policy::PolicyConfig;
use oni_systems::mempool::pool::{Mempool, Removal};
use oni_systems::mempool::{CoinView, ScriptVerifier, SkipScripts};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn mempool() -> Vec<Transaction> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/regtest-core/mempool.hex");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| deserialize_hex(l).unwrap())
        .collect()
}

fn inputs<'a>(
    coins: &'a dyn CoinView,
    scripts: &'a dyn ScriptVerifier,
    policy: &'a PolicyConfig,
    mtp: &'a dyn Fn(u32) -> i64,
) -> AcceptInputs<'a> {
    AcceptInputs { coins, scripts, policy, tip_height: 2_100, tip_mtp: 1_800_000_000, mtp_at: mtp, now_ms: 0 }
}

fn bench(c: &mut Criterion) {
    let f = Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
    let store = CoinStore::open(dir.path(), genesis).unwrap();
    for (i, b) in f.chain.iter().enumerate() {
        store.connect(&bitcoin::consensus::deserialize(&b.raw).unwrap(), i as u32 + 1).unwrap();
    }
    let txs = mempool();
    let p2wpkh = txs
        .iter()
        .find(|t| {
            t.input.len() == 1
                && store.coin(&t.input[0].previous_output).is_some_and(|c| c.output.script_pubkey.is_p2wpkh())
        })
        .expect("a one-input P2WPKH spend in the fixture mempool")
        .clone();
    let policy = PolicyConfig::default();
    let mtp = |_h: u32| 1_700_000_000i64;

    let mut g = c.benchmark_group("mempool_accept_p2wpkh_one_input");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (name, scripts) in [("with_scripts", &KernelScripts as &dyn ScriptVerifier), ("scripts_skipped", &SkipScripts)]
    {
        let ctx = inputs(&store, scripts, &policy, &mtp);
        let mut pool = Mempool::default();
        let tx = Arc::new(p2wpkh.clone());
        g.bench_function(name, |b| {
            b.iter(|| {
                let done = accept(&mut pool, tx.clone(), &ctx, false).unwrap();
                pool.remove_with_descendants(&done.txid, Removal::Replaced);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("mempool_accept_fixture_pool");
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    let ctx = inputs(&store, &KernelScripts, &policy, &mtp);
    let arcs: Vec<Arc<Transaction>> = txs.iter().cloned().map(Arc::new).collect();
    g.bench_function("53_txs_with_scripts", |b| {
        b.iter_batched(
            Mempool::default,
            |mut pool| {
                for tx in &arcs {
                    accept(&mut pool, tx.clone(), &ctx, false).unwrap();
                }
                assert_eq!(pool.len(), 53);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
