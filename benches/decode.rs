//! Frame decode throughput: oni's full path (FrameHeader::parse + checksum + Message::decode) beside
//! rust-bitcoin's `deserialize::<RawNetworkMessage>` on the same frame and a bare sha256d of the
//! payload (the floor any checksummed decoder pays). Frames: see `common/frames.rs`. Figures and
//! the interleaved ratio measurement (`decode_ratio`): benches/REPORT.md.

#[path = "common/frames.rs"]
mod frames;

use bitcoin::p2p::message::RawNetworkMessage;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use frames::{oni_decode, NET};
use oni_systems::wire::{checksum, sha256d, FrameHeader, Message, HEADER_LEN};
use std::hint::black_box;

/// The same, handed the payload buffer (what the decode system can do with a `RawFrame`).
#[inline(never)]
pub fn oni_decode_owned(frame: &[u8], payload: Vec<u8>) -> Option<Message> {
    let header = FrameHeader::parse(frame[..HEADER_LEN].try_into().ok()?, NET).ok()?;
    if checksum(&payload) != header.checksum {
        return None;
    }
    Message::decode_owned(header.command, payload).ok()?.0
}

fn bench_frame(c: &mut Criterion, name: &str, frame: &[u8]) {
    assert!(oni_decode(frame).is_some(), "{name} decodes with oni");
    assert!(bitcoin::consensus::deserialize::<RawNetworkMessage>(frame).is_ok(), "{name} decodes with rust-bitcoin");
    let mut g = c.benchmark_group(format!("decode/{name}"));
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("oni", |b| b.iter(|| oni_decode(black_box(frame))));
    if name.starts_with("block") {
        g.bench_function("oni_owned", |b| {
            b.iter_batched(
                || frame[HEADER_LEN..].to_vec(),
                |p| oni_decode_owned(black_box(frame), p),
                BatchSize::SmallInput,
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
    for (name, frame) in frames::frames() {
        eprintln!("frame {name}: {} bytes", frame.len());
        bench_frame(c, name, &frame);
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
