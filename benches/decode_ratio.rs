//! oni's full frame decode against a bare sha256d of the same payload, measured interleaved
//! (A, B, A, B, ... keeping each one's best round) so that load from other processes on a shared
//! machine hits both sides alike; criterion's sequential runs drift too much for a ratio. Prints
//! the figures: oni throughput / sha256d throughput (target ≥ 0.75 on the block) and oni's
//! speed-up over rust-bitcoin's `deserialize::<RawNetworkMessage>` (target ≥ 2× on inv).

#[path = "common/frames.rs"]
mod frames;

use bitcoin::p2p::message::RawNetworkMessage;
use frames::oni_decode;
use oni_systems::wire::{sha256d, HEADER_LEN};
use std::hint::black_box;
use std::time::Instant;

/// Seconds per call, averaged over one round of `iters` calls.
fn round(iters: u32, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / iters as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| frame | bytes | sha256d µs | oni full µs | rust-bitcoin µs | oni / sha256d throughput | oni msgs/s | oni speed-up vs rust-bitcoin |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, frame) in frames::frames() {
        assert!(oni_decode(&frame).is_some());
        let payload = &frame[HEADER_LEN..];
        // Short rounds, many of them: the best round is one the neighbours left alone.
        let iters = (2_000_000 / frame.len().max(1_000)).clamp(1, 2_000) as u32;
        let (mut sha, mut oni, mut rb) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..300 {
            sha = sha.min(round(iters, &mut || {
                black_box(sha256d(black_box(payload)));
            }));
            oni = oni.min(round(iters, &mut || {
                black_box(oni_decode(black_box(&frame)));
            }));
            rb = rb.min(round(iters, &mut || {
                black_box(bitcoin::consensus::deserialize::<RawNetworkMessage>(black_box(&frame)).ok());
            }));
        }
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2}× |",
            frame.len(),
            sha * 1e6,
            oni * 1e6,
            rb * 1e6,
            sha / oni,
            1.0 / oni,
            rb / oni
        );
    }
}
