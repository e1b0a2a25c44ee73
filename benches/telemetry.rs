//! Telemetry costs: the telemetry system over 10,000 peers per tick (target ≤ 100 µs), and the
//! Prometheus scrape of a node with 1,000 peers: the copy taken on the world thread, and the text
//! rendered from it off that thread.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::SingleThreadedExecutor;
use criterion::{criterion_group, criterion_main, Criterion};
use oni_systems::components::{ConnId, Direction, PeerBundle, PeerState, Socket};
use oni_systems::resources::{Clock, Config};
use oni_systems::schedule::build_world;
use oni_systems::systems::telemetry;
use oni_systems::wire::{Command, Network};
use std::hint::black_box;
use std::net::SocketAddr;

/// A world with `n` peers, a mix of directions and states, with traffic in their counters.
fn world_with_peers(n: usize) -> World {
    let mut world = build_world(oni_systems::schedule::WorldSettings::new(Config::new(Network::Regtest), 1));
    world.resource_mut::<Clock>().now_ms = 1_700_000_000_000;
    for i in 0..n {
        let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8333));
        let socket = Socket { conn: ConnId(i as u64 + 1), addr, local: None, connected_ms: 1_700_000_000_000 };
        let dir = Direction::ALL[i % Direction::ALL.len()];
        let state = if i % 7 == 0 { PeerState::Handshaking } else { PeerState::Ready };
        let mut b = PeerBundle::new(socket, state, dir);
        b.stats.bytes_in = 1_000 + i as u64;
        b.stats.bytes_out = 2_000 + i as u64;
        b.stats.msgs_in[Command::Ping as usize] = 3;
        b.stats.ping_rtt_ms = Some(i as u64 % 500);
        world.spawn(b);
    }
    world
}

fn bench(c: &mut Criterion) {
    let mut world = world_with_peers(10_000);
    let mut schedule = Schedule::default();
    schedule.set_executor(SingleThreadedExecutor::new());
    schedule.add_systems(telemetry);
    schedule.run(&mut world);
    c.bench_function("telemetry system, 10000 peers", |b| b.iter(|| schedule.run(black_box(&mut world))));

    let mut world = world_with_peers(1_000);
    let text = oni::telemetry::prometheus::render(&mut world);
    println!("render of 1000 peers: {} bytes, {} lines", text.len(), text.lines().count());
    use oni::telemetry::prometheus::Snapshot;
    c.bench_function("prometheus snapshot (world thread), 1000 peers", |b| {
        b.iter(|| black_box(Snapshot::capture(black_box(&mut world))))
    });
    let snapshot = Snapshot::capture(&mut world);
    c.bench_function("prometheus render (off the world thread), 1000 peers", |b| {
        b.iter(|| black_box(black_box(&snapshot).render()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
