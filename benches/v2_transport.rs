//! BIP324 v2 framing next to v1 framing, per message and both directions (what the node does with
//! one message besides decoding it), and next to the machine's ChaCha20-Poly1305 limit (RustCrypto's
//! AEAD alone, encrypt and decrypt in place). Messages: a 1 MB payload and a 61-byte one (one
//! inv entry's frame size). Plus the cost of a whole v2 handshake (both ends in memory: two key
//! generations, two ECDHs, the key schedule and the version packets), and the two primitives alone on
//! a small payload (`parts`). Figures: benches/REPORT-v2.md.
//!
//! - v1: write the frame (header, checksum = sha256d of the payload, payload), split it back out of
//!   the byte stream and check its checksum.
//! - v2: seal the queued frame as a packet (as the writer does), push the packet through the
//!   receiving session (as the reader does) and get the frame back; no checksum on either side.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oni_systems::wire::v2::transport::{seal_frame, Step, V2Session};
use oni_systems::wire::v2::{KeyExchange, SendCipher};
use oni_systems::wire::{checksum, encode_frame_with, Command, FrameSplitter, Network, RawFrame};
use std::hint::black_box;

const NET: Network = Network::Regtest;

/// Pushes `bytes` through `s`, answering nothing; returns the frames and the sending cipher if the
/// handshake produced one.
fn pump(s: &mut V2Session, mut bytes: &[u8], out: &mut Vec<u8>) -> (Vec<RawFrame>, Option<SendCipher>) {
    let (mut frames, mut cipher) = (Vec::new(), None);
    while !bytes.is_empty() {
        let (n, step) = s.push(bytes).expect("honest bytes");
        bytes = &bytes[n..];
        match step {
            Step::Send(b) => out.extend_from_slice(&b),
            Step::Keyed(b, c) => {
                out.extend_from_slice(&b);
                cipher = Some(c);
            }
            Step::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    (frames, cipher)
}

/// Two sessions through their handshake: (initiator's sending half, responder's session).
fn session_pair(seed: u8) -> (SendCipher, V2Session, SendCipher, V2Session) {
    let kex = |s: u8| KeyExchange::new([s; 32], [s ^ 0x5a; 32]).unwrap();
    let (mut a, first) = V2Session::initiator(NET, kex(seed), vec![1; 100]);
    let mut b = V2Session::responder(NET, kex(seed.wrapping_add(1)), vec![2; 100]);
    let mut to_a = Vec::new();
    let (_, b_send) = pump(&mut b, &first, &mut to_a);
    let mut to_b = Vec::new();
    let (_, a_send) = pump(&mut a, &to_a, &mut to_b);
    let mut rest = Vec::new();
    pump(&mut b, &to_b, &mut rest);
    assert!(a.established().is_some() && b.established().is_some());
    (a_send.unwrap(), b, b_send.unwrap(), a)
}

/// A v1 frame of `command` carrying `payload` (checksum included).
fn v1_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame_with(NET, Command::Block, &mut frame, |o| o.extend_from_slice(payload));
    frame
}

/// v1 both ways: encode (checksum), split, check.
fn v1_round(payload: &[u8], splitter: &mut FrameSplitter) -> usize {
    let frame = v1_frame(payload);
    let (_, got) = splitter.push(&frame);
    let f = got.unwrap().unwrap();
    assert!(checksum(&f.payload) == f.header.checksum);
    f.payload.len()
}

/// v2 both ways: the queued frame (the world's, its checksum unused) sealed, pushed, opened.
fn v2_round(frame: &[u8], send: &mut SendCipher, recv: &mut V2Session, packet: &mut Vec<u8>) -> usize {
    seal_frame(send, frame, packet);
    let mut bytes = &packet[..];
    let mut len = 0;
    while !bytes.is_empty() {
        let (n, step) = recv.push(bytes).unwrap();
        bytes = &bytes[n..];
        if let Step::Frame(f) = step {
            len = f.payload.len();
        }
    }
    len
}

fn bench_size(c: &mut Criterion, name: &str, payload_len: usize) {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
    let mut g = c.benchmark_group(format!("framing/{name}"));
    g.throughput(Throughput::Bytes(payload_len as u64));

    let mut splitter = FrameSplitter::new(NET);
    assert_eq!(v1_round(&payload, &mut splitter), payload_len);
    g.bench_function("v1", |b| b.iter(|| v1_round(black_box(&payload), &mut splitter)));

    // As the node runs v2 today: the world still writes the v1 frame with its checksum.
    let (mut send, mut recv, _, _) = session_pair(1);
    let mut packet = Vec::new();
    g.bench_function("v2", |b| {
        b.iter(|| {
            let frame = v1_frame(black_box(&payload));
            v2_round(&frame, &mut send, &mut recv, &mut packet)
        })
    });

    // The transport alone: the frame built without a checksum (what v2 needs of the world).
    let (mut send, mut recv, _, _) = session_pair(3);
    g.bench_function("v2_no_checksum", |b| {
        b.iter(|| {
            let mut frame = Vec::with_capacity(24 + payload_len);
            frame.extend_from_slice(&[0u8; 24]);
            frame[4..9].copy_from_slice(b"block");
            frame.extend_from_slice(black_box(&payload));
            v2_round(&frame, &mut send, &mut recv, &mut packet)
        })
    });

    let aead = ChaCha20Poly1305::new(&[9u8; 32].into());
    let mut buf = payload.clone();
    g.bench_function("chacha20poly1305_alone", |b| {
        b.iter(|| {
            let nonce = [0u8; 12].into();
            let tag = aead.encrypt_in_place_detached(&nonce, &[], &mut buf).unwrap();
            aead.decrypt_in_place_detached(&nonce, &[], &mut buf, &tag).unwrap();
            black_box(buf.len())
        })
    });
    g.finish();
}

fn framing(c: &mut Criterion) {
    bench_size(c, "1MB", 1_000_000);
    bench_size(c, "61B", 61 - 24);
}

fn handshake(c: &mut Criterion) {
    let mut seed = 0u8;
    c.bench_function("v2_handshake/both_ends", |b| {
        b.iter(|| {
            seed = seed % 250 + 2; // never 0: not a secret key
            black_box(session_pair(seed))
        })
    });
}

criterion_group!(benches, framing, handshake);
criterion_main!(benches, parts_group);

/// Where a small packet's time goes: ChaCha20 and Poly1305 alone on one inv-sized payload.
fn parts(c: &mut Criterion) {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    use poly1305::universal_hash::KeyInit as _;
    let mut buf = [0u8; 37];
    c.bench_function("parts/chacha20_37B", |b| {
        b.iter(|| {
            let mut s = chacha20::ChaCha20::new(&[1u8; 32].into(), &[0u8; 12].into());
            s.apply_keystream(black_box(&mut buf));
        })
    });
    c.bench_function("parts/poly1305_37B", |b| {
        b.iter(|| {
            let p = poly1305::Poly1305::new(&[1u8; 32].into());
            black_box(p.compute_unpadded(black_box(&buf)))
        })
    });
}
criterion_group!(parts_group, parts);
