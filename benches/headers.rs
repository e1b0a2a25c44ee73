//! Header validation throughput: the fixture chain's 2,100 real regtest headers hashed (sha256d
//! with SHA-NI through the sha2 crate) and validated in full — PoW, retarget rule, median time
//! past, future time, version floors — then stored in the header tree (target ≥ 2 M headers/s on
//! one core); the check alone without storing; and PRESYNC's per-header cost (what a low-work
//! flood costs us).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oni_systems::chain::tree::check_header;
use oni_systems::chain::{ChainParams, HeaderTree, HeadersPresync};
use oni_systems::wire::headers::block_hash;
use oni_systems::wire::Network;
use std::hint::black_box;

const NOW_S: i64 = 1_800_000_000;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn fixture_headers() -> Vec<[u8; 80]> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/regtest-core/chain.hex");
    let text = std::fs::read_to_string(path).expect("fixture chain.hex");
    text.lines().map(|l| unhex(&l[..160]).try_into().expect("80 bytes")).collect()
}

fn bench(c: &mut Criterion) {
    let params = ChainParams::for_network(Network::Regtest);
    let headers = fixture_headers();
    let mut g = c.benchmark_group("headers");
    g.throughput(Throughput::Elements(headers.len() as u64));
    g.bench_function("hash + validate + store, 2,100 fixture headers", |b| {
        b.iter_batched(
            || HeaderTree::new(&params),
            |mut tree| {
                for raw in &headers {
                    let hash = block_hash(raw);
                    black_box(tree.accept(raw, hash, &params, NOW_S).expect("valid"));
                }
                tree
            },
            BatchSize::LargeInput,
        )
    });
    let mut full = HeaderTree::new(&params);
    for raw in &headers {
        full.accept(raw, block_hash(raw), &params, NOW_S).expect("valid");
    }
    let parents: Vec<u32> = (0..headers.len() as u32).collect();
    g.bench_function("hash + validate only (no store)", |b| {
        b.iter(|| {
            for (raw, parent) in headers.iter().zip(&parents) {
                let hash = block_hash(raw);
                black_box(check_header(raw, &hash, &full.view(*parent), &params, NOW_S).is_ok());
            }
        })
    });
    g.bench_function("sha256d alone", |b| {
        b.iter(|| {
            for raw in &headers {
                black_box(block_hash(raw));
            }
        })
    });
    let hashed: Vec<_> = headers.iter().map(|r| (*r, block_hash(r))).collect();
    let min = bitcoin::pow::Work::from_be_bytes([0xff; 32]);
    g.bench_function("presync (low-work chain), per header", |b| {
        b.iter_batched(
            || HeadersPresync::new(&full, 0, &params, min, NOW_S, [1, 2, 3, 4]),
            |mut ps| {
                for chunk in hashed.chunks(2_000) {
                    black_box(ps.process(chunk, true, &params));
                }
                ps
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
