//! oni's full frame decode against a bare sha256d of the same payload, measured interleaved
//! (A, B, A, B, ... keeping each one's best round) so that load from other processes on a shared
//! machine hits both sides alike; criterion's sequential runs drift too much for a ratio. Prints
//! the figure: oni throughput / sha256d throughput (target ≥ 0.75 on the block).

#[path = "common/frames.rs"]
mod frames;

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
    println!("| frame | bytes | sha256d µs | oni full µs | oni / sha256d throughput |");
    println!("|---|---:|---:|---:|---:|");
    for (name, frame) in frames::frames() {
        assert!(oni_decode(&frame).is_some());
        let payload = &frame[HEADER_LEN..];
        let iters = (20_000_000 / frame.len().max(1_000)).clamp(5, 20_000) as u32;
        let (mut sha, mut oni) = (f64::MAX, f64::MAX);
        for _ in 0..60 {
            sha = sha.min(round(iters, &mut || {
                black_box(sha256d(black_box(payload)));
            }));
            oni = oni.min(round(iters, &mut || {
                black_box(oni_decode(black_box(&frame)));
            }));
        }
        println!("| {name} | {} | {:.2} | {:.2} | {:.2} |", frame.len(), sha * 1e6, oni * 1e6, sha / oni);
    }
}
