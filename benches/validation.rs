//! Validation throughput on the regtest fixture chain (2,100 blocks made by Bitcoin Core):
//! libbitcoinkernel through the worker (what the node runs), the kernel called directly (on-disk
//! and in-memory databases), the structure-only checker, and the cost of one kernel checkpoint.
//! Short runs: `cargo bench --bench validation`. Figures go in benches/REPORT-validation.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oni::validation::fixture::Fixture;
use oni::validation::{
    BlockValidator, KernelConfig, KernelValidator, StructureChecker, SubmitError, ValidationEvent, ValidationWorker,
    WorkerConfig,
};
use oni_systems::wire::Network;
use std::path::Path;
use std::time::Duration;

fn load() -> Fixture {
    Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap()
}

fn sync_through_worker(f: &Fixture, dir: &Path) {
    let kernel = KernelConfig::new(Network::Regtest, dir);
    let worker = ValidationWorker::spawn(WorkerConfig::default(), move || KernelValidator::open(kernel)).unwrap();
    let last = f.chain[f.chain.len() - 1].hash;
    let is_last = |e: ValidationEvent| matches!(e, ValidationEvent::Connected { hash, .. } if hash == last);
    let mut done = false;
    for b in &f.chain {
        let mut raw = b.raw.clone();
        while let Err(SubmitError::Full { raw: back }) = worker.try_submit(b.hash, raw) {
            raw = back;
            done |= is_last(worker.events().recv().unwrap());
        }
    }
    while !done {
        done = is_last(worker.events().recv().unwrap());
    }
    assert_eq!(worker.tip().height, 2100);
}

fn sync_direct(f: &Fixture, dir: &Path, in_memory: bool) {
    let mut config = KernelConfig::new(Network::Regtest, dir);
    config.in_memory = in_memory;
    let mut kernel = KernelValidator::open(config).unwrap();
    let mut events = Vec::new();
    for b in &f.chain {
        kernel.submit(b.hash, &b.raw, &mut events);
    }
    assert_eq!(kernel.tip().height, 2100);
}

fn bench(c: &mut Criterion) {
    let f = load();
    let mut g = c.benchmark_group("validation_fixture_chain");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(f.chain.len() as u64));
    let tempdir = || tempfile::tempdir().unwrap();
    g.bench_function("kernel_worker_on_disk", |b| {
        b.iter_batched(tempdir, |dir| sync_through_worker(&f, dir.path()), BatchSize::PerIteration)
    });
    g.bench_function("kernel_direct_on_disk", |b| {
        b.iter_batched(tempdir, |dir| sync_direct(&f, dir.path(), false), BatchSize::PerIteration)
    });
    g.bench_function("kernel_direct_in_memory", |b| {
        b.iter_batched(tempdir, |dir| sync_direct(&f, dir.path(), true), BatchSize::PerIteration)
    });
    g.bench_function("structure_checker", |b| {
        b.iter(|| {
            let mut checker = StructureChecker::new(Network::Regtest);
            let mut events = Vec::new();
            for block in &f.chain {
                checker.submit(block.hash, &block.raw, &mut events);
            }
            assert_eq!(checker.tip().height, 2100);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("validation_checkpoint");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let mut kernel = KernelValidator::open(KernelConfig::new(Network::Regtest, dir.path())).unwrap();
    let mut events = Vec::new();
    for b in &f.chain {
        kernel.submit(b.hash, &b.raw, &mut events);
    }
    g.bench_function("kernel_checkpoint_at_2100", |b| b.iter(|| kernel.checkpoint().unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
