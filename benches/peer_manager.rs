//! Peer Manager costs: the scoring tick and eviction choice over 10,000 peers, and the address book
//! at 100,000 entries (insert; select an address to dial). Targets: scoring ≤ 200 µs per tick,
//! select ≤ 5 µs.

use bevy_ecs::prelude::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use oni_systems::components::{ConnId, Direction, PeerBundle, PeerState, Socket, Violations};
use oni_systems::resources::{AddrBook, Config, Misbehavior, PeerAddr, Rng};
use oni_systems::schedule::build_world;
use oni_systems::systems::eviction::{select_to_evict, EvictionCandidate};
use oni_systems::systems::scoring;
use oni_systems::wire::Network;
use std::hint::black_box;

const NOW_S: i64 = 1_700_000_000;

fn world_with_peers(n: u64) -> World {
    let mut world = build_world(oni_systems::schedule::WorldSettings::new(Config::new(Network::Regtest), 1));
    for i in 0..n {
        let addr = format!("10.{}.{}.1:8333", (i >> 8) & 255, i & 255).parse().unwrap();
        let socket = Socket { conn: ConnId(i), addr, local: None, connected_ms: i };
        world.spawn(PeerBundle::new(socket, PeerState::Ready, Direction::Inbound));
    }
    world
}

fn scoring_tick(c: &mut Criterion) {
    let mut world = world_with_peers(10_000);
    let mut schedule = Schedule::default();
    schedule.add_systems(scoring);
    let mut q = world.query::<&mut Violations>();
    // 1 % of peers misbehave each tick (a busy node), the rest are idle.
    c.bench_function("scoring tick, 10k peers, 100 violations", |b| {
        b.iter(|| {
            for (i, mut v) in q.iter_mut(&mut world).enumerate() {
                if i % 100 == 0 {
                    v.0.push(Misbehavior::DuplicateVerack);
                }
            }
            schedule.run(&mut world);
        })
    });
}

fn eviction(c: &mut Criterion) {
    let mut world = World::new();
    let cands: Vec<EvictionCandidate> = (0..10_000u64)
        .map(|i| EvictionCandidate {
            entity: world.spawn_empty().id(),
            connected_ms: i * 7 % 10_000,
            min_ping_ms: i * 13 % 997,
            last_tx_ms: i % 50,
            last_block_ms: i % 30,
            relay_txs: i % 3 != 0,
            group: [1, (i % 200) as u8, 0, 0, 0],
            keyed_group: (i % 200) * 2_654_435_761 % 1_000_003,
            is_local: false,
            prefer_evict: false,
        })
        .collect();
    c.bench_function("eviction choice, 10k inbound", |b| {
        b.iter_batched(|| cands.clone(), |c| black_box(select_to_evict(c)), BatchSize::LargeInput)
    });
}

fn addr_of(i: u32) -> PeerAddr {
    let b = i.to_be_bytes();
    PeerAddr::from_socket(format!("{}.{}.{}.{}:8333", 11 + b[1] % 200, b[2], b[3], b[0]).parse().unwrap())
}

fn address_book(c: &mut Criterion) {
    let mut rng = Rng::seeded(9);
    let mut book = AddrBook::random(&mut rng);
    for i in 0..100_000u32 {
        book.add(addr_of(i), 9, NOW_S - 600, [1, (i % 97) as u8, (i % 89) as u8, 0, 0], NOW_S);
    }
    for i in (0..100_000u32).step_by(10) {
        book.good(&addr_of(i), NOW_S);
    }
    let (new, tried) = book.counts();
    println!("address book: {new} new, {tried} tried");
    c.bench_function("address book select (100k offered)", |b| {
        b.iter(|| black_box(book.select(&mut rng, false, NOW_S).map(|i| i.addr)))
    });
    let mut i = 200_000u32;
    c.bench_function("address book insert (100k offered)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(book.add(addr_of(i), 9, NOW_S - 600, [1, (i % 97) as u8, 0, 0, 0], NOW_S))
        })
    });
}

criterion_group!(benches, scoring_tick, eviction, address_book);
criterion_main!(benches);
