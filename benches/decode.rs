//! Frame decode throughput: oni's full path (FrameHeader::parse + checksum + Message::decode) beside
//! rust-bitcoin's `deserialize::<RawNetworkMessage>` on the same frame and a bare sha256d of the
//! payload (the floor any checksummed decoder pays). Frames: headers(2000) and a ~1 MB block built
//! from the regtest-core fixture's real transactions, inv(50000), ping. Figures: benches/REPORT.md.

use bitcoin::p2p::message::RawNetworkMessage;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oni_systems::wire::{
    checksum, sha256d, Block, FrameHeader, HeaderList, InvList, InvType, Message, Network, HEADER_LEN,
};
use std::hint::black_box;

const NET: Network = Network::Regtest;

fn unhex(s: &str) -> Vec<u8> {
    let nib = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not hex"),
    };
    s.as_bytes().chunks(2).map(|p| (nib(p[0]) << 4) | nib(p[1])).collect()
}

fn fixture_blocks() -> Vec<bitcoin::Block> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/regtest-core/chain.hex");
    let text = std::fs::read_to_string(path).expect("fixture chain.hex");
    text.lines().map(|l| bitcoin::consensus::deserialize(&unhex(l)).expect("fixture block")).collect()
}

fn frame(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_frame(NET, &mut out);
    out
}

/// A block of about `target_bytes` from the fixture's transactions (real scripts and witnesses).
fn big_block(blocks: &[bitcoin::Block], target_bytes: usize) -> bitcoin::Block {
    let mut b = blocks[blocks.len() - 1].clone();
    b.txdata.truncate(1);
    let mut size = bitcoin::consensus::serialize(&b).len();
    for tx in blocks.iter().flat_map(|b| b.txdata.iter().skip(1)).cycle() {
        if size >= target_bytes {
            break;
        }
        size += bitcoin::consensus::serialize(tx).len();
        b.txdata.push(tx.clone());
    }
    b.header.merkle_root = b.compute_merkle_root().expect("non-empty");
    b
}

/// Our whole path for one frame already in memory.
#[inline(never)]
fn oni_decode(frame: &[u8]) -> Option<Message> {
    let header = FrameHeader::parse(frame[..HEADER_LEN].try_into().ok()?, NET).ok()?;
    let payload = &frame[HEADER_LEN..];
    if checksum(payload) != header.checksum {
        return None;
    }
    Message::decode(header.command, payload).ok()?
}

/// The same, handing the payload buffer over (what the decode system can do with a RawFrame).
#[inline(never)]
fn oni_decode_owned(frame: &[u8], payload: Vec<u8>) -> Option<Message> {
    let header = FrameHeader::parse(frame[..HEADER_LEN].try_into().ok()?, NET).ok()?;
    if checksum(&payload) != header.checksum {
        return None;
    }
    Message::decode_owned(header.command, payload).ok()?
}

fn bench_frame(c: &mut Criterion, name: &str, frame: &[u8], owned_too: bool) {
    assert!(oni_decode(frame).is_some(), "{name} decodes with oni");
    assert!(bitcoin::consensus::deserialize::<RawNetworkMessage>(frame).is_ok(), "{name} decodes with rust-bitcoin");
    let mut g = c.benchmark_group(format!("decode/{name}"));
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("oni", |b| b.iter(|| oni_decode(black_box(frame))));
    if owned_too {
        g.bench_function("oni_owned", |b| {
            b.iter_batched(
                || frame[HEADER_LEN..].to_vec(),
                |p| oni_decode_owned(black_box(frame), p),
                BatchSize::LargeInput,
            )
        });
    }
    g.bench_function("rust_bitcoin", |b| {
        b.iter(|| bitcoin::consensus::deserialize::<RawNetworkMessage>(black_box(frame)).ok())
    });
    g.bench_function("sha256d", |b| b.iter(|| sha256d(black_box(&frame[HEADER_LEN..]))));
    // Our path minus the checksum: what structural parsing and copying cost on top of sha256d.
    let command = FrameHeader::parse(frame[..HEADER_LEN].try_into().expect("24 bytes"), NET).expect("header").command;
    g.bench_function("oni_parse_only", |b| b.iter(|| Message::decode(command, black_box(&frame[HEADER_LEN..]))));
    g.finish();
}

fn decode(c: &mut Criterion) {
    let blocks = fixture_blocks();
    let headers: Vec<_> = blocks.iter().take(2000).map(|b| b.header).collect();
    let headers = frame(&Message::Headers(HeaderList::from_headers(&headers)));
    let inv: InvList = (0..50_000u32)
        .map(|i| {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_le_bytes());
            hash[31] = 0x5a;
            oni_systems::wire::Inventory { kind: InvType::WTX, hash }
        })
        .collect();
    let inv = frame(&Message::Inv(inv));
    let big = big_block(&blocks, 1_000_000);
    let block = frame(&Message::Block(Block::from_bitcoin(&big).expect("big block encodes")));
    eprintln!(
        "frames: headers {} B, inv {} B, block {} B ({} txs), ping 32 B",
        headers.len(),
        inv.len(),
        block.len(),
        big.txdata.len()
    );
    bench_frame(c, "headers_2000", &headers, false);
    bench_frame(c, "inv_50000", &inv, false);
    bench_frame(c, "block_1mb", &block, true);
    bench_frame(c, "ping", &frame(&Message::Ping(0x0123_4567_89ab_cdef)), false);
}

criterion_group!(benches, decode);
criterion_main!(benches);
