//! The world's side of the node-wide memory budget, measured: 125 peers (114 inbound, 11 outbound,
//! Core's defaults) each do what a peer can to make the world hold state for it — 50,000
//! transaction announcements, 50,000-entry transaction and block getdata, 1,000 fresh addresses,
//! all while never reading — and the heap the world grew by (counted by this
//! binary's allocator) must stay within the per-peer figure `benches/REPORT-memory.md` states.
//! Raise any of the bounds it crosses (getdata queues, announcement tracker, serve queue, address
//! relay queues) and it fails. Each step prints what it cost per peer.

use oni_systems::chain::Ibd;
use oni_systems::components::{ConnId, Direction};
use oni_systems::harness::TestNode;
use oni_systems::wire::{AddrEntry, InvList, InvType, Message, NetAddr, MAX_INV_ENTRIES};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What the world may hold per peer once every per-peer bound this test reaches is reached, as
/// the report's table adds it up: announcement tracker (5,000 × ~300 B with its maps' slack) and
/// known-inventory filter (0.4 MB), transaction getdata (5,000 × 36 B) and the `notfound`s queued
/// for it, block getdata (1,000 × 36 B), components, rounded up. (Measured: 2.26 MB.)
const PER_PEER_BUDGET: usize = 3_000_000;

const NOW_S: i64 = 1_800_000_000;

fn hash(peer: u64, kind: u64, i: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&peer.to_le_bytes());
    h[8..16].copy_from_slice(&kind.to_le_bytes());
    h[16..24].copy_from_slice(&i.to_le_bytes());
    h[31] = 0x5a;
    h
}

/// `entries` fresh hashes: an `inv` (tag 0) or a `getdata`.
fn list(peer: u64, kind: InvType, tag: u64, entries: usize) -> Message {
    let mut l = InvList::with_capacity(entries);
    for i in 0..entries as u64 {
        l.push(kind, hash(peer, tag, i));
    }
    match tag {
        0 => Message::Inv(l),
        _ => Message::GetData(l),
    }
}

fn addrs(peer: u64) -> Message {
    let entries = (0..1_000u64)
        .map(|i| {
            let mut ip = [0u8; 16];
            ip[10] = 0xff;
            ip[11] = 0xff;
            ip[12..].copy_from_slice(&[23, (peer % 250) as u8, (i >> 8) as u8, (i & 0xff) as u8 | 1]);
            AddrEntry { time: NOW_S as u32, addr: NetAddr { services: 1 | 8, ip, port: 8333 } }
        })
        .collect();
    Message::Addr(entries)
}

fn ready_outbound(node: &mut TestNode, i: u64) -> ConnId {
    let conn = node.connect_outbound(&format!("31.0.{i}.1:8333"), Direction::OutboundFullRelay);
    node.receive(conn, &TestNode::peer_version(0xabc0 ^ i));
    node.receive(conn, &Message::WtxidRelay);
    node.receive(conn, &Message::SendAddrV2);
    node.receive(conn, &Message::Verack);
    node.sent_to(conn);
    conn
}

#[test]
fn a_hundred_and_twenty_five_peers_at_every_per_peer_bound_stay_within_the_stated_budget() {
    let mut node = TestNode::regtest();
    node.set_time_s(NOW_S);
    node.world.resource_mut::<Ibd>().active = false;
    let mut peers: Vec<ConnId> =
        (0..114).map(|i| node.ready_inbound(&format!("41.{}.{}.9:1", i / 200, i % 200))).collect();
    peers.extend((0..11).map(|i| ready_outbound(&mut node, i)));
    for _ in 0..5 {
        node.elapse(1_000);
    }
    for &p in &peers {
        node.sent_to(p);
    }
    let start = LIVE.load(Ordering::Relaxed);
    let mut last = start;
    let mut step = |node: &mut TestNode, what: &str, msg: &dyn Fn(u64) -> Message| {
        for (i, &p) in peers.iter().enumerate() {
            node.stall_reader(p);
            node.receive(p, &msg(i as u64));
        }
        // Trickles, getdata answers as far as the queues allow, request timers.
        for _ in 0..10 {
            node.elapse(1_000);
        }
        // The frames the harness recorded as sent are the test's, not the node's.
        for &p in &peers {
            node.sent_to(p);
        }
        let now = LIVE.load(Ordering::Relaxed);
        println!("{what}: {} bytes per peer", now.saturating_sub(last) / peers.len());
        last = now;
    };
    // Ten times each bound (the tracker's 5,000 announcements and 5,000 waiting tx getdata
    // entries), fifty times the 1,000 waiting block entries, 1,000 addresses: without any one of
    // these bounds a peer's share would pass the budget.
    step(&mut node, "50,000 tx announcements", &|i| list(i, InvType::WTX, 0, MAX_INV_ENTRIES));
    step(&mut node, "50,000-entry tx getdata", &|i| list(i, InvType::WTX, 1, MAX_INV_ENTRIES));
    step(&mut node, "50,000-entry block getdata", &|i| list(i, InvType::WITNESS_BLOCK, 2, MAX_INV_ENTRIES));
    step(&mut node, "1,000 addresses", &addrs);
    let grown = LIVE.load(Ordering::Relaxed).saturating_sub(start);
    let per_peer = grown / peers.len();
    println!("world heap grew {grown} bytes for {} peers: {per_peer} per peer", peers.len());
    assert!(peers.iter().all(|&p| node.closed_reason(p).is_none()), "nothing here is a reason to disconnect");
    assert!(per_peer <= PER_PEER_BUDGET, "{per_peer} bytes per peer, budget {PER_PEER_BUDGET}");
    // And the bounds were reached, so the figure means something.
    assert!(per_peer >= 1_000_000, "only {per_peer} bytes per peer: the attack did not land");
}
