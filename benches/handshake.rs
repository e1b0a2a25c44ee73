//! Full inbound handshakes per second through the world with no IO: a peer connects, sends
//! version, wtxidrelay, sendaddrv2 and verack through the real codec, and is Ready. Figures:
//! benches/REPORT.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oni_systems::components::{ConnId, PeerState};
use oni_systems::harness::TestNode;
use oni_systems::wire::Message;

/// Handshakes per fresh node: under the default inbound limit, so no peer is refused.
const PER_NODE: u64 = 100;

fn handshake(node: &mut TestNode, i: u64) -> ConnId {
    let conn = node.connect_inbound(&format!("10.{}.{}.1:{}", (i / 250) % 250, i % 250, 40_000 + i % 20_000));
    node.receive(conn, &TestNode::peer_version(0xbeef ^ i));
    node.receive(conn, &Message::WtxidRelay);
    node.receive(conn, &Message::SendAddrV2);
    node.receive(conn, &Message::Verack);
    assert_eq!(node.state(conn), Some(PeerState::Ready));
    std::hint::black_box(node.sent_to(conn));
    conn
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(PER_NODE));
    g.bench_function("inbound_x100_fresh_node", |b| {
        b.iter_batched(
            TestNode::regtest,
            |mut node| {
                for i in 0..PER_NODE {
                    handshake(&mut node, i);
                }
                node
            },
            BatchSize::PerIteration,
        )
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("inbound_then_close", |b| {
        let mut node = TestNode::regtest();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let conn = handshake(&mut node, i);
            node.close(conn);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
