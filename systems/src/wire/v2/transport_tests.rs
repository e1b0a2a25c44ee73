//! The v2 session between two in-memory ends, and each abuse BIP324 and Core's
//! p2p_v2_misbehaving name: v1 detection byte by byte, another network's v1, garbage and its
//! terminator, tampered garbage, decoys anywhere, a version packet with contents, oversized
//! lengths and messages, unknown ids, rekeying.

use super::cipher::*;
use super::transport::*;
use crate::wire::{Command, HeaderError, Message, Network, RawFrame};

const NET: Network = Network::Regtest;

fn kex(seed: u8) -> KeyExchange {
    KeyExchange::new([seed; 32], [seed ^ 0x55; 32]).unwrap()
}

/// One end: its session and everything it produced.
struct End {
    s: V2Session,
    send: Option<SendCipher>,
    out: Vec<u8>,
    info: Option<SessionInfo>,
    frames: Vec<RawFrame>,
    v1: Option<[u8; 16]>,
    packets: Vec<usize>,
    decoys: usize,
}

impl End {
    fn new(s: V2Session, out: Vec<u8>) -> End {
        End { s, send: None, out, info: None, frames: Vec::new(), v1: None, packets: Vec::new(), decoys: 0 }
    }

    fn initiator(seed: u8, garbage: Vec<u8>) -> End {
        let (s, out) = V2Session::initiator(NET, kex(seed), garbage);
        End::new(s, out)
    }

    fn responder(seed: u8, garbage: Vec<u8>) -> End {
        End::new(V2Session::responder(NET, kex(seed), garbage), Vec::new())
    }

    /// Pushes `bytes` as they would arrive in one read.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), V2Error> {
        let mut input = bytes;
        while !input.is_empty() && self.v1.is_none() {
            let (n, step) = self.s.push(input)?;
            assert!(n > 0, "progress");
            input = &input[n..];
            match step {
                Step::More => {}
                Step::V1(p) => self.v1 = Some(p),
                Step::Send(b) => self.out.extend_from_slice(&b),
                Step::Keyed(b, c) => {
                    self.out.extend_from_slice(&b);
                    self.send = Some(c);
                }
                Step::Packet(len) => self.packets.push(len),
                Step::Decoy(_) => self.decoys += 1,
                Step::Established(i) => self.info = Some(i),
                Step::Frame(f) => self.frames.push(f),
            }
        }
        Ok(())
    }

    /// Pushes `bytes` one at a time.
    fn trickle(&mut self, bytes: &[u8]) -> Result<(), V2Error> {
        bytes.iter().try_for_each(|b| self.feed(std::slice::from_ref(b)))
    }

    fn take_out(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Seals a message as the writer would.
    fn message(&mut self, m: &Message) -> Vec<u8> {
        let mut frame = Vec::new();
        m.encode_frame(NET, &mut frame);
        let mut out = Vec::new();
        seal_frame(self.send.as_mut().unwrap(), &frame, &mut out);
        out
    }

    /// Seals raw contents with a header byte and AAD.
    fn raw(&mut self, header: u8, contents: &[u8], aad: &[u8]) -> Vec<u8> {
        raw(self.send.as_mut().unwrap(), header, contents, aad)
    }
}

/// Seals raw contents with a header byte and AAD.
fn raw(send: &mut SendCipher, header: u8, contents: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; LENGTH_LEN];
    buf.push(header);
    buf.extend_from_slice(contents);
    send.seal(&mut buf, aad);
    buf
}

/// A responder that got an initiator's key and `garbage`, and that initiator's sending half
/// before it sealed anything, with its terminator: to send the responder packets in any order.
fn responder_keyed(garbage: &[u8]) -> (End, SendCipher, [u8; TERMINATOR_LEN]) {
    let mut b = End::responder(2, vec![]);
    b.feed(&[kex(1).our_key().as_slice(), garbage].concat()).unwrap();
    let b_key: [u8; KEY_LEN] = b.take_out()[..KEY_LEN].try_into().unwrap();
    let (send, _, info) = kex(1).finish(&b_key, true, NET.magic());
    (b, send, info.send_terminator)
}

/// Exchanges bytes until neither side has more to say.
fn settle(a: &mut End, b: &mut End) {
    for _ in 0..8 {
        let (x, y) = (a.take_out(), b.take_out());
        if x.is_empty() && y.is_empty() {
            return;
        }
        b.feed(&x).unwrap();
        a.feed(&y).unwrap();
    }
}

#[test]
fn an_honest_handshake_agrees_on_a_session_and_carries_messages_both_ways() {
    let mut a = End::initiator(1, vec![0xAA; 100]);
    let mut b = End::responder(2, vec![0xBB; 4095]);
    assert_eq!(a.out.len(), KEY_LEN + 100, "the initiator sends its key and garbage at once");
    settle(&mut a, &mut b);
    let (ia, ib) = (a.info.expect("a up"), b.info.expect("b up"));
    assert_eq!(ia.session_id, ib.session_id);
    assert_eq!(a.s.established(), Some(&ia));
    for (m, cmd) in [
        (Message::Ping(7), Command::Ping),
        (Message::Verack, Command::Verack),
        (Message::SendHeaders, Command::SendHeaders),
        (Message::FeeFilter(1000), Command::FeeFilter),
    ] {
        let p = a.message(&m);
        b.feed(&p).unwrap();
        let f = b.frames.pop().unwrap();
        assert_eq!(f.header.command, cmd);
        assert!(f.header.authenticated);
        let mut v1 = Vec::new();
        m.encode_frame(NET, &mut v1);
        assert_eq!(f.payload, v1[24..], "{}", cmd.name());
        let p = b.message(&m);
        a.trickle(&p).unwrap();
        assert_eq!(a.frames.pop().unwrap().payload, v1[24..]);
    }
    assert!(b.v1.is_none() && a.v1.is_none());
}

#[test]
fn a_ping_is_a_short_id_packet_and_version_the_long_form() {
    let mut a = End::initiator(1, vec![]);
    let mut b = End::responder(2, vec![]);
    settle(&mut a, &mut b);
    assert_eq!(a.message(&Message::Ping(1)).len(), EXPANSION + 1 + 8, "one id byte");
    assert_eq!(a.message(&Message::Verack).len(), EXPANSION + 13, "0 and the 12-byte name");
}

#[test]
fn a_responder_detects_v1_on_sixteen_bytes_without_sending_anything_first() {
    let mut frame = Vec::new();
    Message::Verack.encode_frame(NET, &mut frame);
    let mut version_head = NET.magic().to_vec();
    version_head.extend_from_slice(b"version\0\0\0\0\0");
    let mut b = End::responder(2, vec![1; 10]);
    b.trickle(&version_head[..15]).unwrap();
    assert!(b.v1.is_none() && b.out.is_empty(), "15 matching bytes: still detecting, nothing sent");
    b.feed(&version_head[15..]).unwrap();
    assert_eq!(b.v1, Some(version_head[..16].try_into().unwrap()));
    assert!(b.out.is_empty(), "a v1 peer never sees our key");
}

#[test]
fn the_first_byte_that_differs_from_the_v1_prefix_makes_the_responder_send_its_key() {
    let mut b = End::responder(2, vec![3; 7]);
    let mut near = NET.magic().to_vec();
    near.extend_from_slice(b"verb");
    b.trickle(&near[..7]).unwrap();
    assert!(b.out.is_empty());
    b.feed(&near[7..8]).unwrap();
    assert_eq!(b.out.len(), KEY_LEN + 7, "key and garbage at the first mismatch");
}

#[test]
fn a_v1_peer_of_another_network_is_refused_at_its_sixteenth_byte() {
    let mut head = Network::Main.magic().to_vec();
    head.extend_from_slice(b"version\0\0\0\0\0");
    let mut b = End::responder(2, vec![]);
    b.trickle(&head[..15]).unwrap();
    assert_eq!(b.feed(&head[15..16]), Err(V2Error::WrongNetwork));
}

#[test]
fn garbage_of_4095_bytes_passes_and_one_more_without_a_terminator_is_refused() {
    // Exactly the limit: accepted.
    let mut a = End::initiator(1, vec![0x11; MAX_GARBAGE_LEN]);
    let mut b = End::responder(2, vec![]);
    settle(&mut a, &mut b);
    assert!(b.info.is_some());

    // The responder sends its key; the initiator then gets 4,095 + 16 bytes with no terminator.
    let mut a = End::initiator(1, vec![]);
    let mut b = End::responder(2, vec![]);
    b.feed(&a.take_out()).unwrap();
    let key = b.take_out();
    a.feed(&key[..KEY_LEN]).unwrap();
    let junk = vec![0x22; MAX_GARBAGE_LEN + TERMINATOR_LEN];
    a.feed(&junk[..junk.len() - 1]).unwrap();
    assert_eq!(a.feed(&junk[junk.len() - 1..]), Err(V2Error::NoTerminator));
}

#[test]
fn a_wrong_terminator_is_searched_only_within_the_garbage_bound() {
    let mut a = End::initiator(1, vec![]);
    let mut b = End::responder(2, vec![]);
    b.feed(&a.take_out()).unwrap();
    let mut reply = b.take_out();
    // Flip the responder's terminator: it is now garbage, and so is everything after it.
    reply[KEY_LEN] ^= 1;
    a.feed(&reply).unwrap();
    assert!(a.info.is_none());
    let filler = vec![0u8; MAX_GARBAGE_LEN + TERMINATOR_LEN];
    let left = MAX_GARBAGE_LEN + TERMINATOR_LEN - (reply.len() - KEY_LEN);
    a.feed(&filler[..left - 1]).unwrap();
    assert_eq!(a.feed(&filler[..1]), Err(V2Error::NoTerminator));
}

#[test]
fn tampered_garbage_fails_the_version_packets_tag() {
    let mut a = End::initiator(1, vec![5; 40]);
    let mut b = End::responder(2, vec![]);
    let mut first = a.take_out();
    first[KEY_LEN + 3] ^= 0x40;
    b.feed(&first).unwrap();
    a.feed(&b.take_out()).unwrap();
    assert_eq!(b.feed(&a.take_out()), Err(V2Error::BadTag));
}

#[test]
fn decoys_are_dropped_anywhere_and_the_garbage_authenticates_only_the_first_packet() {
    let garbage = vec![9u8; 33];
    let (mut b, mut send, terminator) = responder_keyed(&garbage);
    let mut stream = terminator.to_vec();
    stream.extend(raw(&mut send, IGNORE_BIT, b"decoy one", &garbage));
    stream.extend(raw(&mut send, 0, b"", &[]));
    stream.extend(raw(&mut send, IGNORE_BIT, &[0u8; 500], &[]));
    stream.extend(raw(&mut send, 0, &[18, 99, 0, 0, 0, 0, 0, 0, 0], &[]));
    b.feed(&stream).unwrap();
    assert!(b.info.is_some(), "the version packet came after a decoy");
    assert_eq!(b.decoys, 2);
    assert_eq!(b.frames.len(), 1);
    assert_eq!(b.frames[0].header.command, Command::Ping);
    assert_eq!(b.frames[0].payload, 99u64.to_le_bytes());
}

#[test]
fn a_version_packet_without_the_garbage_as_aad_is_refused() {
    let garbage = vec![1u8; 20];
    let (mut b, mut send, terminator) = responder_keyed(&garbage);
    let mut stream = terminator.to_vec();
    stream.extend(raw(&mut send, 0, b"", &[]));
    assert_eq!(b.feed(&stream), Err(V2Error::BadTag));
}

#[test]
fn a_version_packet_with_contents_is_accepted_and_its_contents_ignored() {
    let (mut b, mut send, terminator) = responder_keyed(&[]);
    let mut stream = terminator.to_vec();
    stream.extend(raw(&mut send, 0, b"future extension data", &[]));
    stream.extend(raw(&mut send, 0, &[18, 5, 0, 0, 0, 0, 0, 0, 0], &[]));
    b.feed(&stream).unwrap();
    assert!(b.info.is_some());
    assert_eq!(b.frames.len(), 1, "the version packet is not a message");
}

fn up() -> (End, End) {
    let mut a = End::initiator(1, vec![]);
    let mut b = End::responder(2, vec![]);
    settle(&mut a, &mut b);
    (a, b)
}

#[test]
fn a_length_over_the_largest_message_is_refused_before_its_packet_is_read() {
    let (mut a, mut b) = up();
    let p = a.raw(0, &vec![0u8; MAX_CONTENTS_LEN + 1], &[]);
    // Only the three length bytes go in.
    assert_eq!(b.feed(&p[..LENGTH_LEN]), Err(V2Error::TooLarge));
    let (mut a, mut b) = up();
    let p = a.raw(0, &vec![0u8; MAX_CONTENTS_LEN], &[]);
    b.feed(&p[..LENGTH_LEN]).unwrap();
    // (The first announced length was the version packet's.)
    assert_eq!(b.packets, vec![0, MAX_CONTENTS_LEN], "the largest length is announced for room first");
}

#[test]
fn a_message_over_its_commands_bound_is_oversized_as_in_v1() {
    let (mut a, mut b) = up();
    let mut contents = vec![18u8]; // ping
    contents.extend_from_slice(&[0u8; 9]);
    let p = a.raw(0, &contents, &[]);
    let err = b.feed(&p).unwrap_err();
    assert_eq!(err, V2Error::Oversized);
    assert_eq!(err.as_header_error(), Some(HeaderError::Oversized));
}

#[test]
fn unknown_ids_are_dropped_and_counted_and_unknown_names_are_unknown_commands() {
    let (mut a, mut b) = up();
    let p = a.raw(0, &[30, 1, 2, 3], &[]);
    b.feed(&p).unwrap();
    let f = b.frames.pop().unwrap();
    assert!(f.header.bad_name && f.header.command == Command::Unknown && f.payload.is_empty());
    let mut named = vec![0u8];
    named.extend_from_slice(b"xyzzy\0\0\0\0\0\0\0");
    named.extend_from_slice(&[7u8; 1000]);
    let p = a.raw(0, &named, &[]);
    b.feed(&p).unwrap();
    let f = b.frames.pop().unwrap();
    assert!(!f.header.bad_name && f.header.command == Command::Unknown);
    assert!(f.payload.is_empty(), "never held");
    assert_eq!(f.header.len, 1000);
    assert!(b.s.established().is_some(), "the connection goes on");
}

#[test]
fn a_flipped_bit_in_a_message_closes_the_connection() {
    let (mut a, mut b) = up();
    let mut p = a.message(&Message::Ping(3));
    let last = p.len() - 1;
    p[last] ^= 1;
    assert_eq!(b.feed(&p), Err(V2Error::BadTag));
}

#[test]
fn sessions_stay_in_step_across_rekeys_in_both_ciphers() {
    let (mut a, mut b) = up();
    for i in 0..3 * REKEY_INTERVAL as u64 + 7 {
        let p = a.message(&Message::Ping(i));
        b.feed(&p).unwrap();
        assert_eq!(b.frames.pop().unwrap().payload, i.to_le_bytes());
        let p = b.message(&Message::Pong(i));
        a.feed(&p).unwrap();
        assert_eq!(a.frames.pop().unwrap().payload, i.to_le_bytes());
    }
}

#[test]
fn a_dialer_knows_whether_it_heard_anything() {
    let (s, first) = V2Session::initiator(NET, kex(1), vec![]);
    assert!(!s.received_any());
    assert!(first.len() >= 24, "a v1 peer reads a whole header of it and hangs up");
    let mut a = End::new(s, first);
    a.feed(&[1]).unwrap();
    assert!(a.s.received_any());
}

#[test]
fn a_seeded_responder_makes_its_key_only_when_the_peer_is_not_v1() {
    // v1: detected with no key made (nothing to send, nothing derived).
    let mut head = NET.magic().to_vec();
    head.extend_from_slice(b"version\0\0\0\0\0");
    let mut v1 = End::new(V2Session::responder_from_seed(NET, [3; 32]), Vec::new());
    v1.feed(&head).unwrap();
    assert!(v1.v1.is_some() && v1.out.is_empty());
    // v2: the key and garbage the seed gives, then an honest handshake.
    let mut a = End::initiator(1, vec![9; 10]);
    let mut b = End::new(V2Session::responder_from_seed(NET, [3; 32]), Vec::new());
    settle(&mut a, &mut b);
    assert!(a.info.is_some() && b.info.is_some());
    assert_eq!(a.info.unwrap().session_id, b.info.unwrap().session_id);
    // The seed decides the key and garbage: the same seed, the same first bytes; another, others.
    let first = |seed: u8| {
        let mut b = End::new(V2Session::responder_from_seed(NET, [seed; 32]), Vec::new());
        b.feed(&[0u8]).unwrap();
        b.out
    };
    assert_eq!(first(3), first(3));
    assert_ne!(first(3)[..KEY_LEN], first(4)[..KEY_LEN]);
    assert!(first(3).len() <= KEY_LEN + MAX_GARBAGE_LEN);
}

#[test]
fn a_packets_room_grows_with_its_bytes_and_ends_at_its_size() {
    let (mut a, mut b) = up();
    let p = a.raw(0, &vec![0u8; 1_000_000], &[]);
    // The length and the first 100 bytes: room for what came, not for the million announced.
    b.feed(&p[..LENGTH_LEN + 100]).unwrap();
    assert!(b.s.held() < 1_000, "held {} for 100 bytes", b.s.held());
    // Fed in 1 KB reads, the buffer never holds more than twice what arrived.
    let mut fed = LENGTH_LEN + 100;
    while fed < p.len() {
        let n = (p.len() - fed).min(1024);
        b.feed(&p[fed..fed + n]).unwrap();
        fed += n;
        assert!(b.s.held() <= 2 * fed, "held {} after {fed} bytes", b.s.held());
    }
    let f = b.frames.pop().unwrap();
    assert_eq!(f.header.command, Command::Unknown, "an empty long name: nothing we speak");
    // And a real message: its payload's allocation is the packet's size, not a doubled one.
    let mut m = vec![2u8]; // block
    m.extend_from_slice(&vec![7u8; 300_000]);
    let p = a.raw(0, &m, &[]);
    for chunk in p.chunks(4096) {
        b.feed(chunk).unwrap();
    }
    let f = b.frames.pop().unwrap();
    assert_eq!(f.payload.len(), 300_000);
    assert!(f.payload.capacity() <= 300_000 + 1 + 1 + TAG_LEN, "capacity {}", f.payload.capacity());
}
