//! Transaction relay costs: the inv filter's per-entry work (known-inventory insert plus the
//! node-wide seen/rejected/confirmed lookups; target ≥ 20 M entries/s on one core) and a request
//! scheduler step with 100,000 outstanding announcements over 125 peers.

use bevy_ecs::world::World;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oni_systems::resources::rolling_filter::RollingFilter;
use oni_systems::resources::tx_requests::TxRequests;
use oni_systems::resources::Rng;
use oni_systems::resources::TxRelayState;
use std::hint::black_box;

fn hashes(n: usize, seed: u64) -> Vec<[u8; 32]> {
    let mut rng = Rng::seeded(seed);
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            for c in h.chunks_mut(8) {
                c.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            h
        })
        .collect()
}

fn inv_filter(c: &mut Criterion) {
    let mut rng = Rng::seeded(1);
    let recent = TxRelayState::new(&mut rng);
    let mut known = RollingFilter::new(50_000, 1e-6, [1, 2, 3, 4]);
    let entries = hashes(50_000, 2);
    let mut g = c.benchmark_group("inv filter");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("known insert + recent lookups, 50k-entry inv", |b| {
        b.iter(|| {
            let mut fresh = 0u32;
            for h in &entries {
                known.insert(h);
                fresh += !recent.already_have(h) as u32;
            }
            black_box(fresh)
        })
    });
    g.finish();
}

fn scheduler(c: &mut Criterion) {
    let mut world = World::new();
    let peers: Vec<_> = (0..125).map(|_| world.spawn_empty().id()).collect();
    let all = hashes(100_000, 3);
    let build = || {
        let mut t = TxRequests::new(9);
        for (i, h) in all.iter().enumerate() {
            // each tx announced by its peer and, for one in four, by a second one
            t.announce(peers[i % 125], *h, true, i % 3 == 0, 0, 0);
            if i % 4 == 0 {
                t.announce(peers[(i + 1) % 125], *h, true, false, 0, 2_000);
            }
        }
        let first = t.step(0);
        (t, first)
    };
    c.bench_function("scheduler: 100k announcements, first step (all ready)", |b| {
        b.iter_batched_ref(
            || {
                let mut t = TxRequests::new(9);
                for (i, h) in all.iter().enumerate() {
                    t.announce(peers[i % 125], *h, true, i % 3 == 0, 0, 0);
                }
                t
            },
            |t| black_box(t.step(0).len()),
            BatchSize::LargeInput,
        )
    });
    c.bench_function("scheduler: step after 125 answers, 100k outstanding", |b| {
        b.iter_batched_ref(
            build,
            |(t, first)| {
                for r in first.iter().step_by(100) {
                    t.response(r.peer, &r.hash, 10);
                }
                black_box(t.step(10).len())
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, inv_filter, scheduler);
criterion_main!(benches);
