//! The block scheduler's step over a full 1,024-block window and 125 peers (target ≤ 50 µs):
//! once in steady state (every block of the window in flight, nothing to hand out), and once when
//! a peer's 16 requests come free and are handed out again (a disconnect or timeout).

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::SingleThreadedExecutor;
use criterion::{criterion_group, criterion_main, Criterion};
use oni_systems::chain::{ChainParams, HeaderTree, PeerBlocks, PeerChain, ServeQueue, SyncState};
use oni_systems::components::{ConnId, Direction, PeerBundle, PeerState, SendQueue, Socket};
use oni_systems::resources::{Clock, Config, ConnIndex};
use oni_systems::schedule::build_world;
use oni_systems::systems::block_download;
use oni_systems::wire::headers::block_hash;
use oni_systems::wire::Network;
use std::time::{Duration, Instant};

const PEERS: u64 = 125;
const CHAIN: usize = 3_000;

fn mine_chain(params: &ChainParams) -> Vec<[u8; 80]> {
    let mut prev = params.genesis.block_hash();
    let mut out = Vec::with_capacity(CHAIN);
    for i in 0..CHAIN as u32 {
        let mut raw = [0u8; 80];
        raw[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
        raw[4..36].copy_from_slice(bitcoin::hashes::Hash::as_byte_array(&prev));
        raw[68..72].copy_from_slice(&(params.genesis.time + 1 + i).to_le_bytes());
        raw[72..76].copy_from_slice(&0x207fffffu32.to_le_bytes());
        for nonce in 0u32.. {
            raw[76..80].copy_from_slice(&nonce.to_le_bytes());
            if bitcoin::hashes::Hash::as_byte_array(&block_hash(&raw))[31] & 0x80 == 0 {
                break;
            }
        }
        prev = block_hash(&raw);
        out.push(raw);
    }
    out
}

fn world() -> (World, Schedule) {
    let config = Config::new(Network::Regtest);
    let mut world = build_world(oni_systems::schedule::WorldSettings::new(config, 1));
    world.resource_mut::<Clock>().now_ms = 1_800_000_000_000;
    let params = world.resource::<ChainParams>().clone();
    let mut tree = HeaderTree::new(&params);
    for raw in mine_chain(&params) {
        tree.accept(&raw, block_hash(&raw), &params, 1_800_000_000).expect("valid");
    }
    let tip = tree.best();
    world.insert_resource(tree);
    for i in 1..=PEERS {
        let socket = Socket {
            conn: ConnId(i),
            addr: format!("10.0.{}.{}:18444", i / 200, i % 200 + 1).parse().expect("addr"),
            local: None,
            connected_ms: 0,
        };
        let e = world
            .spawn((
                PeerBundle::new(socket, PeerState::Ready, Direction::OutboundFullRelay),
                PeerChain { best_known: Some(tip), ..Default::default() },
                PeerBlocks::default(),
                ServeQueue::default(),
            ))
            .id();
        world.resource_mut::<ConnIndex>().0.insert(ConnId(i), e);
    }
    let mut schedule = Schedule::default();
    schedule.set_executor(SingleThreadedExecutor::new());
    schedule.add_systems(block_download);
    schedule.run(&mut world);
    assert_eq!(world.resource::<SyncState>().in_flight.len(), 1024, "window filled");
    (world, schedule)
}

fn clear_send_queues(world: &mut World) {
    let mut q = world.query::<&mut SendQueue>();
    for mut sq in q.iter_mut(world) {
        while sq.pop().is_some() {}
    }
}

fn bench(c: &mut Criterion) {
    let (mut world, mut schedule) = world();
    clear_send_queues(&mut world);
    let mut g = c.benchmark_group("block download");
    g.bench_function("step, 1,024-block window in flight over 125 peers", |b| b.iter(|| schedule.run(&mut world)));
    g.bench_function("step, 16 freed requests handed out again", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // free the first peer's requests, as if it had gone
                let mut q = world.query::<(&Socket, &mut PeerBlocks)>();
                let mut freed = vec![];
                for (s, mut pb) in q.iter_mut(&mut world) {
                    if !pb.in_flight.is_empty() {
                        freed.extend(pb.in_flight.drain(..).map(|r| r.hash));
                        let _ = s;
                        break;
                    }
                }
                let mut st = world.resource_mut::<SyncState>();
                for h in freed {
                    st.in_flight.remove(&h);
                }
                clear_send_queues(&mut world);
                let t = Instant::now();
                schedule.run(&mut world);
                total += t.elapsed();
            }
            total
        })
    });
    assert_eq!(world.resource::<SyncState>().in_flight.len(), 1024);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
