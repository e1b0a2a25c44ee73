//! Simulator and schedule costs: virtual seconds per wall second with 1,000 bots, and the cost of
//! one schedule run over 100 / 1,000 / 10,000 idle Ready peers (target: ≤ 1 ms at 10,000).
//! Figures are written up in benches/REPORT-sim.md.

use bevy_ecs::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use oni::scenario::{simulate, Scenario};
use oni_systems::components::{ConnId, Direction, PeerState};
use oni_systems::harness::TestNode;
use oni_systems::resources::{Clock, Config, Inbox, NetEvent, Outbox};
use oni_systems::schedule::{build_schedule, build_world};
use oni_systems::wire::{FrameSplitter, Message, Network};
use std::hint::black_box;
use std::time::Duration;

const SIM_SECONDS: u64 = 10;

fn thousand_bots() -> Scenario {
    let text = format!(
        r#"Scenario(
            name: "bench_1000",
            seed: 1,
            duration_s: {SIM_SECONDS},
            node: (max_inbound: 1100),
            peers: [
                Honest(count: 800),
                Bot(kind: PingFlood(pings_per_s: 1000), count: 50),
                Bot(kind: ReconnectChurn(hold_ms: 500), count: 50),
                Bot(kind: HandshakeNeverCompletes, count: 50),
                Bot(kind: MalformedFuzz(msgs_per_s: 2), count: 50),
            ],
            expect: [NoHonestDisconnected, HonestServed(min_share: 1.0)],
        )"#
    );
    Scenario::parse(&text, "bench").unwrap()
}

fn bench_sim(c: &mut Criterion) {
    let s = thousand_bots();
    let mut g = c.benchmark_group("sim");
    // Throughput in "elements" = virtual seconds: criterion then prints virtual s per wall s.
    g.throughput(Throughput::Elements(SIM_SECONDS));
    g.bench_function("1000_bots_10_virtual_s", |b| b.iter(|| black_box(simulate(&s)).ticks));
    g.finish();
}

/// A world holding `n` inbound peers that completed the modern handshake and answered nothing
/// since: every system runs over them, none has work.
fn idle_ready_world(n: u64) -> (World, Schedule) {
    let mut config = Config::new(Network::Regtest);
    config.limits.max_inbound = n as usize + 1;
    let mut world = build_world(oni_systems::schedule::WorldSettings::new(config, 7));
    world.resource_mut::<Clock>().now_ms = 1_700_000_000_000;
    let mut schedule = build_schedule();
    let mut handshake = Vec::new();
    for m in [TestNode::peer_version(1), Message::WtxidRelay, Message::SendAddrV2, Message::Verack] {
        m.encode_frame(Network::Regtest, &mut handshake);
    }
    let mut inbox = Vec::new();
    for i in 0..n {
        let conn = ConnId(i + 1);
        let addr = format!("10.{}.{}.{}:8333", i >> 16 & 255, i >> 8 & 255, i & 255).parse().unwrap();
        inbox.push(NetEvent::Connected { conn, addr, local: None, direction: Direction::Inbound });
        let mut splitter = FrameSplitter::new(Network::Regtest);
        let mut rest = &handshake[..];
        while !rest.is_empty() {
            let (used, r) = splitter.push(rest);
            rest = &rest[used..];
            if let Some(frame) = r.unwrap() {
                inbox.push(NetEvent::Frame { conn, frame });
            }
        }
    }
    world.resource_mut::<Inbox>().0 = inbox;
    for _ in 0..3 {
        schedule.run(&mut world);
        world.resource_mut::<Outbox>().0.clear();
    }
    let ready = world.query::<&PeerState>().iter(&world).filter(|s| **s == PeerState::Ready).count();
    assert_eq!(ready as u64, n, "every peer is Ready before measuring");
    (world, schedule)
}

fn bench_idle_tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule_tick_idle_ready");
    for n in [100u64, 1_000, 10_000] {
        let (mut world, mut schedule) = idle_ready_world(n);
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                schedule.run(&mut world);
                world.resource_mut::<Outbox>().0.clear();
            })
        });
    }
    g.finish();
}

/// Each system alone over 10,000 idle Ready peers: where the tick goes.
fn bench_idle_systems(c: &mut Criterion) {
    use oni_systems::systems::*;
    let (mut world, _) = idle_ready_world(10_000);
    let mut g = c.benchmark_group("system_idle_10000");
    macro_rules! one {
        ($($name:ident),*) => {$(
            let mut s = Schedule::default();
            s.add_systems($name);
            g.bench_function(stringify!($name), |b| b.iter(|| s.run(&mut world)));
        )*};
    }
    one!(
        ingest,
        admission,
        decode,
        handshake,
        addr_relay,
        inv_filter,
        tx_request,
        tx_accept,
        ping,
        headers_sync,
        block_download,
        block_announce,
        serve_blocks,
        serve_txs,
        tx_announce,
        scoring,
        discipline,
        connections,
        egress,
        teardown,
        telemetry
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_sim, bench_idle_tick, bench_idle_systems
}
criterion_main!(benches);
