//! The block announcer's pass when the validated tip moves by one block, over 125 and 10,000
//! ready peers (half of them `sendheaders`, each one or two blocks behind), and its idle tick (the tip
//! did not move) over 10,000 peers, which must cost next to nothing.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::SingleThreadedExecutor;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use oni_systems::chain::{ChainParams, HeaderTree, Ibd, PeerChain};
use oni_systems::components::{ConnId, Direction, Negotiated, PeerBundle, PeerState, SendQueue, Socket};
use oni_systems::resources::{Clock, Config, ConnIndex};
use oni_systems::schedule::build_world;
use oni_systems::systems::block_announce;
use oni_systems::wire::headers::block_hash;
use oni_systems::wire::Network;
use std::time::{Duration, Instant};

const CHAIN: u32 = 200;

fn mine(prev: &bitcoin::BlockHash, time: u32) -> [u8; 80] {
    let mut raw = [0u8; 80];
    raw[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
    raw[4..36].copy_from_slice(bitcoin::hashes::Hash::as_byte_array(prev));
    raw[68..72].copy_from_slice(&time.to_le_bytes());
    raw[72..76].copy_from_slice(&0x207fffffu32.to_le_bytes());
    for nonce in 0u32.. {
        raw[76..80].copy_from_slice(&nonce.to_le_bytes());
        if bitcoin::hashes::Hash::as_byte_array(&block_hash(&raw))[31] & 0x80 == 0 {
            break;
        }
    }
    raw
}

/// A world out of IBD whose validated tip is block `CHAIN - 1`, with `peers` ready peers at
/// `CHAIN - 2`; returns the blocks at `CHAIN - 1` and `CHAIN` to move the tip between.
fn world(peers: u64) -> (World, Schedule, [bitcoin::BlockHash; 2]) {
    let mut world = build_world(oni_systems::schedule::WorldSettings::new(Config::new(Network::Regtest), 1));
    world.resource_mut::<Clock>().now_ms = 1_800_000_000_000;
    world.resource_mut::<Ibd>().active = false;
    let params = world.resource::<ChainParams>().clone();
    let mut tree = HeaderTree::new(&params);
    let mut prev = params.genesis.block_hash();
    let mut hashes = Vec::new();
    for i in 0..CHAIN {
        let raw = mine(&prev, params.genesis.time + 1 + i);
        prev = block_hash(&raw);
        tree.accept(&raw, prev, &params, 1_800_000_000).expect("valid");
        hashes.push(prev);
    }
    let behind = hashes[CHAIN as usize - 2];
    tree.mark_validated(&behind);
    // The peers are one block behind `behind`: either tip is news to all of them.
    let known = tree.get(&hashes[CHAIN as usize - 3]);
    world.insert_resource(tree);
    for i in 1..=peers {
        let socket = Socket {
            conn: ConnId(i),
            addr: format!("10.{}.{}.{}:18444", i / 60_000, (i / 200) % 250, i % 200 + 1).parse().expect("addr"),
            local: None,
            connected_ms: 0,
        };
        let mut bundle = PeerBundle::new(socket, PeerState::Ready, Direction::Inbound);
        bundle.negotiated = Negotiated { sendheaders: i % 2 == 0, ..Default::default() };
        let e = world.spawn((bundle, PeerChain { best_known: known, ..Default::default() })).id();
        world.resource_mut::<ConnIndex>().0.insert(ConnId(i), e);
    }
    let mut schedule = Schedule::default();
    schedule.set_executor(SingleThreadedExecutor::new());
    schedule.add_systems(block_announce);
    schedule.run(&mut world);
    (world, schedule, [behind, hashes[CHAIN as usize - 1]])
}

/// Forgets what was sent, so the next tip move is news to every peer again.
fn reset(world: &mut World) {
    let mut q = world.query::<(&mut PeerChain, &mut SendQueue)>();
    for (mut pc, mut sq) in q.iter_mut(world) {
        pc.best_sent = None;
        while sq.pop().is_some() {}
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("block announce");
    for peers in [125u64, 10_000] {
        let (mut world, mut schedule, [behind, tip]) = world(peers);
        g.bench_with_input(BenchmarkId::new("tip moves by one block", peers), &peers, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    reset(&mut world);
                    // Alternate the tip so it moves on every run; the peers stay one block behind it.
                    let to = if i % 2 == 0 { tip } else { behind };
                    world.resource_mut::<HeaderTree>().mark_validated(&to);
                    let t = Instant::now();
                    schedule.run(&mut world);
                    total += t.elapsed();
                }
                total
            })
        });
        if peers == 10_000 {
            schedule.run(&mut world);
            g.bench_function("idle tick, 10,000 peers", |b| b.iter(|| schedule.run(&mut world)));
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
