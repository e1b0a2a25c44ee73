//! Target: the BIP324 v2 session (`wire::v2::transport::V2Session`), the node's receive side of
//! every v2 connection. Two modes, by the first byte:
//! - raw: arbitrary bytes, in arbitrary chunks, pushed into a responder as a peer would send them:
//!   no panic, every push takes at least one byte until the session stops (v1 detected or an
//!   error), and the heap it holds never exceeds twice the bytes received plus a small constant
//!   (garbage is at most 4,095 + 16 bytes; a packet's room grows only with its bytes).
//! - pair: an honest initiator and responder with fuzz-chosen garbage, messages (any command,
//!   any payload up to its bound), decoys and chunking, then optionally one flipped bit anywhere in
//!   the stream: without the flip every message arrives, in order, byte for byte, and no decoy
//!   does; with it, what arrives is a prefix of what was sent (never a changed message), and the
//!   session stops with an error or waits for bytes that will not come.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oni_fuzz::peak_heap_of;
use oni_systems::wire::v2::transport::{seal_frame, Step, V2Session, MAX_GARBAGE_LEN};
use oni_systems::wire::v2::{KeyExchange, SendCipher};
use oni_systems::wire::{encode_frame_with, Command, Network};

const NET: Network = Network::Regtest;

fn kex(seed: u8) -> KeyExchange {
    KeyExchange::new([seed.max(1); 32], [seed; 32]).expect("a valid key")
}

/// Reads bytes off the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// What a push sequence produced.
#[derive(Default)]
struct Got {
    frames: Vec<(Command, Vec<u8>)>,
    send: Option<SendCipher>,
    out: Vec<u8>,
    error: bool,
    v1: bool,
}

/// Pushes `bytes` into `s` in chunks whose sizes come from `chunks` (cycled), recording steps.
fn feed(s: &mut V2Session, mut bytes: &[u8], chunks: &[u8], got: &mut Got) {
    let mut i = 0;
    while !bytes.is_empty() && !got.error && !got.v1 {
        let size = (chunks.get(i % chunks.len().max(1)).copied().unwrap_or(255) as usize).max(1);
        i += 1;
        let mut chunk = &bytes[..size.min(bytes.len())];
        bytes = &bytes[chunk.len()..];
        while !chunk.is_empty() {
            match s.push(chunk) {
                Ok((n, step)) => {
                    assert!(n > 0, "a push takes at least one byte");
                    chunk = &chunk[n..];
                    match step {
                        Step::V1(_) => {
                            got.v1 = true;
                            return;
                        }
                        Step::Send(b) => got.out.extend_from_slice(&b),
                        Step::Keyed(b, c) => {
                            got.out.extend_from_slice(&b);
                            got.send = Some(c);
                        }
                        Step::Frame(f) => got.frames.push((f.header.command, f.payload)),
                        Step::More | Step::Packet(_) | Step::Decoy(_) | Step::Established(_) => {}
                    }
                }
                Err(_) => {
                    got.error = true;
                    return;
                }
            }
        }
    }
}

fn raw(mut input: Input) {
    let chunks = input.take(8).to_vec();
    let bytes = input.0;
    let mut s = V2Session::responder(NET, kex(7), vec![3; 17]);
    let mut got = Got::default();
    let (_, peak) = peak_heap_of(|| feed(&mut s, bytes, &chunks, &mut got));
    // Our key and garbage (81 bytes) may go out, and the peer's bytes are held at most twice over.
    assert!(peak <= 2 * bytes.len() + 16 * 1024, "held {peak} bytes for {} received", bytes.len());
    assert!(
        s.held() <= 2 * bytes.len() + 8 * 1024,
        "the session keeps {} bytes for {} received",
        s.held(),
        bytes.len()
    );
    assert!(got.frames.is_empty() || got.send.is_some(), "no frame before the key exchange");
}

fn pair(mut input: Input) {
    // Garbage of fuzz-chosen lengths, its bytes a fixed pattern: an honest sender's garbage is
    // random, so it holds the terminator with probability 2^-128, while fuzz-chosen bytes would
    // find it (libFuzzer learns the comparison) and end the garbage early, as BIP324 says.
    let pattern = |len: usize, seed: u8| (0..len).map(|i| (i as u8).wrapping_mul(167).wrapping_add(seed)).collect();
    let garbage_a = pattern(input.u16() as usize % (MAX_GARBAGE_LEN + 1), input.byte());
    let garbage_b = pattern(input.u16() as usize % (MAX_GARBAGE_LEN + 1), input.byte());
    let chunks = input.take(4).to_vec();
    let (mut a, first) = V2Session::initiator(NET, kex(1), garbage_a);
    let mut b = V2Session::responder(NET, kex(2), garbage_b);
    let mut at_b = Got::default();
    feed(&mut b, &first, &chunks, &mut at_b);
    assert!(!at_b.error && !at_b.v1, "an honest key is never v1 or refused: error {} v1 {}", at_b.error, at_b.v1);
    let mut at_a = Got::default();
    feed(&mut a, &std::mem::take(&mut at_b.out), &chunks, &mut at_a);
    feed(&mut b, &std::mem::take(&mut at_a.out), &chunks, &mut at_b);
    assert!(a.established().is_some() && b.established().is_some(), "an honest handshake completes");
    assert_eq!(a.established().map(|i| i.session_id), b.established().map(|i| i.session_id));
    let mut send = at_a.send.take().expect("a's cipher");

    // Messages and decoys, sealed as the writer seals them.
    let mut stream = Vec::new();
    let mut sent = Vec::new();
    let mut packet = Vec::new();
    while input.0.len() > 1 {
        let op = input.byte();
        if op & 0x80 != 0 {
            let n = input.byte() as usize;
            let mut buf = vec![0u8; 3];
            buf.push(0x80);
            buf.extend_from_slice(input.take(n));
            send.seal(&mut buf, &[]);
            stream.extend_from_slice(&buf);
            continue;
        }
        let commands: Vec<Command> = Command::ALL.iter().copied().filter(|c| *c != Command::Unknown).collect();
        let command = commands[op as usize % commands.len()];
        let want = input.u16() as usize;
        let len = want.min(command.max_payload() as usize);
        let payload = input.take(len).to_vec();
        let mut frame = Vec::new();
        encode_frame_with(NET, command, &mut frame, |o| o.extend_from_slice(&payload));
        seal_frame(&mut send, &frame, &mut packet);
        stream.extend_from_slice(&packet);
        sent.push((command, payload));
    }
    let flip = input.take(2);
    let flipped = match (flip, stream.is_empty()) {
        ([at, bit], false) => {
            let at = (*at as usize * 257 + *bit as usize) % stream.len();
            stream[at] ^= 1 << (bit % 8);
            true
        }
        _ => false,
    };
    feed(&mut b, &stream, &chunks, &mut at_b);
    if flipped {
        assert!(at_b.frames.len() <= sent.len());
        assert_eq!(at_b.frames[..], sent[..at_b.frames.len()], "only untouched messages arrive");
    } else {
        assert!(!at_b.error, "honest packets never fail");
        assert_eq!(at_b.frames, sent, "every message, in order, byte for byte, no decoy");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    if input.byte() & 1 == 0 {
        raw(input);
    } else {
        pair(input);
    }
});
