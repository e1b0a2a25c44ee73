//! One connection's BIP324 receive side as a byte-pushing state machine, with the handshake bytes
//! it must send as it goes: the responder's v1 detection on the first 16 bytes, the 64-byte key,
//! garbage up to its terminator, the version packet, then packets turned into the same
//! [`RawFrame`]s the v1 framer makes. The bridge feeds it socket bytes, the simulator pipe bytes.
//!
//! It takes bytes only as far as the step at hand needs (16 for detection, 64 for the key, one at
//! a time through garbage, 3 for a length, then exactly the packet), and stops at every point the
//! caller must act on: bytes to send, a packet length to make room for, a frame.

use super::cipher::{KeyExchange, RecvCipher, SendCipher, SessionInfo, KEY_LEN, LENGTH_LEN, TAG_LEN, TERMINATOR_LEN};
use super::ids::{command_of, write_command, NAME_LEN};
use crate::wire::{Command, FrameHeader, HeaderError, Network, RawFrame, HEADER_LEN, MAX_PAYLOAD_BYTES};

/// Most garbage either side may send before its terminator (BIP324).
pub const MAX_GARBAGE_LEN: usize = 4095;
/// The v1 prefix a responder compares: magic, "version", five NULs.
pub const V1_PREFIX_LEN: usize = 16;
/// Largest packet contents accepted: the long naming and the largest payload. A longer length is
/// refused before a byte of its packet is read.
pub const MAX_CONTENTS_LEN: usize = 1 + NAME_LEN + MAX_PAYLOAD_BYTES as usize;

/// Why a v2 connection is closed. Each has its own label for counters and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum V2Error {
    /// A responder got a v1 `version` header with another network's magic.
    WrongNetwork,
    /// No garbage terminator within 4,095 bytes of garbage.
    NoTerminator,
    /// A packet length over [`MAX_CONTENTS_LEN`].
    TooLarge,
    /// A packet whose tag did not match (tampered bytes, wrong keys, wrong garbage as AAD).
    BadTag,
    /// A message over its command's own bound, as a v1 header would be refused.
    Oversized,
}

impl V2Error {
    /// Every kind; the index of each is `as usize`.
    pub const ALL: [V2Error; 5] =
        [V2Error::WrongNetwork, V2Error::NoTerminator, V2Error::TooLarge, V2Error::BadTag, V2Error::Oversized];

    /// Label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            V2Error::WrongNetwork => "v1_wrong_network",
            V2Error::NoTerminator => "missing_garbage_terminator",
            V2Error::TooLarge => "packet_too_large",
            V2Error::BadTag => "decryption_failure",
            V2Error::Oversized => "oversized",
        }
    }

    /// The header error a v1 connection would report for the same fault, if there is one.
    pub fn as_header_error(self) -> Option<HeaderError> {
        (self == V2Error::Oversized).then_some(HeaderError::Oversized)
    }
}

/// What the caller must do after a push.
pub enum Step {
    /// Everything offered was taken; push more when it arrives.
    More,
    /// (Responder) the peer opened with a v1 `version` header: these 16 bytes, and all after
    /// them, are a v1 stream.
    V1([u8; V1_PREFIX_LEN]),
    /// (Responder) the peer is not v1: send our key and garbage now.
    Send(Vec<u8>),
    /// The peer's key arrived: send these bytes (our terminator and version packet), then seal
    /// every message with this cipher.
    Keyed(Vec<u8>, SendCipher),
    /// A packet of this many contents bytes follows: make room before pushing its bytes.
    Packet(usize),
    /// A decoy packet of this many contents bytes was read, authenticated and dropped.
    Decoy(usize),
    /// The peer's version packet arrived (its contents ignored): the session is up.
    Established(SessionInfo),
    /// A message, framed as v1 frames are; an unknown command's payload is dropped, a naming
    /// Core rejects is an unknown command with `bad_name` (dropped and counted, as v1).
    Frame(RawFrame),
}

enum State {
    /// Responder: fewer than 16 bytes, all matching the v1 prefix so far.
    MaybeV1,
    /// Reading the peer's 64-byte key.
    Key,
    /// Reading garbage up to the terminator.
    Garbage,
    /// Expecting a packet's 3 length bytes (`version` says whether it is the version packet).
    Length { version: bool },
    /// Reading a packet of `len` contents bytes.
    Body { version: bool, len: usize },
}

/// The receiving side of one v2 connection (and the handshake bytes it owes the peer).
pub struct V2Session {
    network: Network,
    initiating: bool,
    state: State,
    buf: Vec<u8>,
    /// Our key exchange until the peer's key arrives.
    kex: Option<KeyExchange>,
    /// A responder's seed for its key and garbage, used only once the peer is not v1.
    seed: Option<[u8; 32]>,
    /// Our garbage until the version packet authenticates it.
    garbage: Vec<u8>,
    /// The peer's garbage, authenticated by its first packet.
    aad: Vec<u8>,
    recv: Option<RecvCipher>,
    /// Derived with the keys; the session counts as up only once the version packet opened.
    info: Option<SessionInfo>,
    up: bool,
    received: usize,
}

impl V2Session {
    /// We dial: returns the session and the bytes to send at once (our key and garbage).
    /// `garbage` is at most [`MAX_GARBAGE_LEN`] random bytes.
    pub fn initiator(network: Network, kex: KeyExchange, garbage: Vec<u8>) -> (V2Session, Vec<u8>) {
        let first = [kex.our_key().as_slice(), &garbage].concat();
        (V2Session::new(network, true, State::Key, kex, garbage), first)
    }

    /// We were dialed: nothing is sent until the first bytes show the peer is not v1.
    pub fn responder(network: Network, kex: KeyExchange, garbage: Vec<u8>) -> V2Session {
        V2Session::new(network, false, State::MaybeV1, kex, garbage)
    }

    /// The same with our key and garbage made from `seed` ([`KeyExchange::from_seed`]) only
    /// when the first bytes show the peer is not v1: a v1 peer, or a flood of connections that
    /// never send a byte, costs no elliptic-curve work.
    pub fn responder_from_seed(network: Network, seed: [u8; 32]) -> V2Session {
        V2Session {
            network,
            initiating: false,
            state: State::MaybeV1,
            buf: Vec::new(),
            kex: None,
            seed: Some(seed),
            garbage: Vec::new(),
            aad: Vec::new(),
            recv: None,
            info: None,
            up: false,
            received: 0,
        }
    }

    fn new(network: Network, initiating: bool, state: State, kex: KeyExchange, garbage: Vec<u8>) -> V2Session {
        debug_assert!(garbage.len() <= MAX_GARBAGE_LEN);
        V2Session {
            network,
            initiating,
            state,
            buf: Vec::new(),
            kex: Some(kex),
            seed: None,
            garbage,
            aad: Vec::new(),
            recv: None,
            info: None,
            up: false,
            received: 0,
        }
    }

    /// Whether we dialed.
    pub fn is_initiator(&self) -> bool {
        self.initiating
    }

    /// Whether the peer has sent us anything: a dial refused before any byte came back is the
    /// sign of a v1-only peer (retry with v1).
    pub fn received_any(&self) -> bool {
        self.received > 0
    }

    /// The session once the version packet arrived.
    pub fn established(&self) -> Option<&SessionInfo> {
        self.info.as_ref().filter(|_| self.up)
    }

    /// Bytes of buffer the session holds now (a packet in progress, garbage): what receive bounds
    /// and the fuzzer's heap check weigh.
    pub fn held(&self) -> usize {
        self.buf.capacity() + self.garbage.capacity() + self.aad.capacity()
    }

    /// The most bytes the current step takes: what a reader may pull from its socket for it.
    pub fn wants(&self) -> usize {
        match self.state {
            State::MaybeV1 => V1_PREFIX_LEN - self.buf.len(),
            State::Key => KEY_LEN - self.buf.len(),
            State::Garbage => 1,
            State::Length { .. } => LENGTH_LEN - self.buf.len(),
            State::Body { len, .. } => 1 + len + TAG_LEN - self.buf.len(),
        }
    }

    /// Takes bytes from `input` up to the next point the caller must act on. Returns how many were
    /// taken and the step; after an error the connection must close.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Step), V2Error> {
        let mut used = 0;
        while used < input.len() {
            let wants = self.wants();
            let take = wants.min(input.len() - used);
            if self.buf.capacity() - self.buf.len() < take {
                // Room grows with what arrives, never past the packet: at most twice the bytes
                // received, and exactly the packet once it is whole.
                let have = self.buf.len();
                self.buf.reserve_exact(take.max(have.min(wants - take)));
            }
            self.buf.extend_from_slice(&input[used..used + take]);
            used += take;
            self.received += take;
            let step = self.advance()?;
            if !matches!(step, Step::More) {
                return Ok((used, step));
            }
        }
        Ok((used, Step::More))
    }

    /// Acts on the bytes buffered for the current state.
    fn advance(&mut self) -> Result<Step, V2Error> {
        match self.state {
            State::MaybeV1 => Ok(self.detect()),
            State::Key => self.key(),
            State::Garbage => self.garbage(),
            State::Length { version } => {
                if self.buf.len() < LENGTH_LEN {
                    return Ok(Step::More);
                }
                let enc = [self.buf[0], self.buf[1], self.buf[2]];
                let len = self.recv.as_mut().map_or(0, |r| r.open_len(enc)) as usize;
                if len > MAX_CONTENTS_LEN {
                    return Err(V2Error::TooLarge);
                }
                self.buf = Vec::new();
                self.state = State::Body { version, len };
                Ok(Step::Packet(len))
            }
            State::Body { version, len } => {
                if self.buf.len() < 1 + len + TAG_LEN {
                    return Ok(Step::More);
                }
                self.packet(version, len)
            }
        }
    }

    fn v1_prefix(&self) -> [u8; V1_PREFIX_LEN] {
        let mut p = [0u8; V1_PREFIX_LEN];
        p[..4].copy_from_slice(&self.network.magic());
        p[4..11].copy_from_slice(b"version");
        p
    }

    fn detect(&mut self) -> Step {
        let prefix = self.v1_prefix();
        if self.buf[..] != prefix[..self.buf.len()] {
            // Not v1: these bytes begin the peer's key; ours and our garbage go out now.
            self.state = State::Key;
            if let Some(seed) = self.seed.take() {
                let (kex, garbage) = KeyExchange::from_seed(seed);
                self.kex = Some(kex);
                self.garbage = garbage;
            }
            let kex = self.kex.as_ref().map(|k| k.our_key().to_vec()).unwrap_or_default();
            return Step::Send([kex.as_slice(), &self.garbage].concat());
        }
        if self.buf.len() == V1_PREFIX_LEN {
            self.buf = Vec::new();
            return Step::V1(prefix);
        }
        Step::More
    }

    fn key(&mut self) -> Result<Step, V2Error> {
        // A responder that sees "version" and NULs after another network's magic has a v1 peer
        // of that network: say so rather than answer it with a key.
        if !self.initiating && self.buf.len() >= V1_PREFIX_LEN && self.buf[4..V1_PREFIX_LEN] == self.v1_prefix()[4..] {
            return Err(V2Error::WrongNetwork);
        }
        if self.buf.len() < KEY_LEN {
            return Ok(Step::More);
        }
        let mut theirs = [0u8; KEY_LEN];
        theirs.copy_from_slice(&self.buf);
        self.buf = Vec::with_capacity(64);
        let Some(kex) = self.kex.take() else { return Ok(Step::More) };
        let (mut send, recv, info) = kex.finish(&theirs, self.initiating, self.network.magic());
        self.recv = Some(recv);
        let mut out = Vec::with_capacity(TERMINATOR_LEN + super::cipher::EXPANSION);
        out.extend_from_slice(&info.send_terminator);
        // The version packet: empty contents, our garbage as its AAD.
        let mut packet = vec![0u8; LENGTH_LEN + 1];
        send.seal(&mut packet, &std::mem::take(&mut self.garbage));
        out.extend_from_slice(&packet);
        self.info = Some(info);
        self.state = State::Garbage;
        Ok(Step::Keyed(out, send))
    }

    fn garbage(&mut self) -> Result<Step, V2Error> {
        let terminator = self.info.map(|i| i.recv_terminator).unwrap_or_default();
        if self.buf.ends_with(&terminator) {
            self.buf.truncate(self.buf.len() - TERMINATOR_LEN);
            self.aad = std::mem::take(&mut self.buf);
            self.state = State::Length { version: true };
        } else if self.buf.len() >= MAX_GARBAGE_LEN + TERMINATOR_LEN {
            return Err(V2Error::NoTerminator);
        }
        Ok(Step::More)
    }

    fn packet(&mut self, version: bool, len: usize) -> Result<Step, V2Error> {
        let mut body = std::mem::take(&mut self.buf);
        let aad = std::mem::take(&mut self.aad);
        let decoy = self.recv.as_mut().and_then(|r| r.open(&mut body, &aad)).ok_or(V2Error::BadTag)?;
        self.state = State::Length { version: version && decoy };
        if decoy {
            return Ok(Step::Decoy(len));
        }
        if version {
            self.up = true;
            return Ok(self.info.map_or(Step::More, Step::Established));
        }
        let contents = &body[1..1 + len];
        let Some((command, naming)) = command_of(contents) else {
            let header = packet_header(Command::Unknown, true, len);
            return Ok(Step::Frame(RawFrame::new(header, Vec::new())));
        };
        let payload_len = len - naming;
        if payload_len > command.max_payload() as usize {
            return Err(V2Error::Oversized);
        }
        let header = packet_header(command, false, payload_len);
        let payload = if crate::wire::skips_payload(&header) {
            Vec::new()
        } else {
            body.copy_within(1 + naming..1 + len, 0);
            body.truncate(payload_len);
            body
        };
        Ok(Step::Frame(RawFrame::new(header, payload)))
    }
}

/// The header a frame opened from a packet carries: no checksum, the AEAD tag proved it.
fn packet_header(command: Command, bad_name: bool, len: usize) -> FrameHeader {
    FrameHeader { command, bad_name, len: len as u32, checksum: [0; 4], authenticated: true }
}

/// The frame a decoy of `len` contents bytes becomes for the world: no command, nothing kept, but
/// its contents counted as held and as decode work ([`RawFrame::skipped`]), so a peer's decoys
/// are paced by the same budgets as its frames.
pub fn decoy_frame(len: usize) -> RawFrame {
    let header = packet_header(Command::Unknown, false, len);
    RawFrame { header, payload: Vec::new(), skipped: len }
}

/// Seals one v1-encoded frame (24-byte header and payload, as the world queues them) as a v2
/// packet into `out` (cleared first): the command's short id or long name, then the payload.
pub fn seal_frame(send: &mut SendCipher, frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let Some((head, payload)) = frame.split_at_checked(HEADER_LEN) else { return };
    let mut name = [0u8; NAME_LEN];
    name.copy_from_slice(&head[4..16]);
    out.reserve(LENGTH_LEN + 2 + NAME_LEN + payload.len() + TAG_LEN);
    out.extend_from_slice(&[0u8; LENGTH_LEN + 1]);
    match Command::from_padded(&name) {
        Command::Unknown => {
            out.push(0);
            out.extend_from_slice(&name);
        }
        command => write_command(command, out),
    }
    out.extend_from_slice(payload);
    send.seal(out, &[]);
}
