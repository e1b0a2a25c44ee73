//! BIP324 abusers that write the wire themselves (raw: nothing they send is framed for them, and
//! what the node sends reaches them as bytes): garbage with no terminator, a stalled v1 prefix,
//! and Core's early-key check.

use super::{Behaviour, BotIo};
use oni_systems::wire::Message;

/// A fresh v2 key (64 bytes) from the bot's rng.
fn key(io: &mut BotIo) -> Vec<u8> {
    let (kex, _) = crate::scenario::v2::keys(io.rng);
    kex.our_key().to_vec()
}

/// Connects on the first tick and never again; whether connected now.
fn connect_once(started: &mut bool, io: &mut BotIo) -> bool {
    if !io.connected() && !*started {
        *started = true;
        io.connect();
    }
    io.connected()
}

/// Bytes to write as the send window allows.
#[derive(Debug, Default)]
struct Outgoing {
    bytes: Vec<u8>,
    sent: usize,
}

impl Outgoing {
    fn start(&mut self, bytes: Vec<u8>, io: &mut BotIo) {
        *self = Outgoing { bytes, sent: 0 };
        self.push(io);
    }

    fn push(&mut self, io: &mut BotIo) {
        let n = (self.bytes.len() - self.sent).min(io.window_free());
        if n > 0 && io.write_raw(&self.bytes[self.sent..self.sent + n], 0) {
            self.sent += n;
        }
    }
}

/// A real key, then `garbage` random bytes, then silence.
#[derive(Debug)]
pub struct V2Garbage {
    garbage: u32,
    out: Outgoing,
    started: bool,
}

impl V2Garbage {
    /// The scenario file's parameters: at most 1 MB of garbage.
    pub(crate) fn check(garbage: u32) -> Result<(), String> {
        if garbage > 1_000_000 {
            return Err(format!("V2Garbage: garbage must be at most 1000000, got {garbage}"));
        }
        Ok(())
    }
}

impl V2Garbage {
    /// `garbage` bytes after the key.
    pub fn new(garbage: u32) -> Self {
        V2Garbage { garbage, out: Outgoing::default(), started: false }
    }
}

impl Behaviour for V2Garbage {
    fn on_connected(&mut self, io: &mut BotIo) {
        let mut bytes = key(io);
        bytes.extend(crate::scenario::v2::bytes(io.rng, self.garbage as usize));
        self.out.start(bytes, io);
    }

    fn tick(&mut self, io: &mut BotIo) {
        if connect_once(&mut self.started, io) {
            self.out.push(io);
        }
    }

    fn on_message(&mut self, _msg: Message, _io: &mut BotIo) {}

    fn raw_transport(&self) -> bool {
        true
    }
}

/// This network's v1 `version` header prefix (magic, "version", NULs), its first 16 bytes.
fn v1_prefix(io: &BotIo) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..4].copy_from_slice(&io.network.magic());
    p[4..11].copy_from_slice(b"version");
    p
}

/// The first `bytes` of the v1 prefix, then a stall.
#[derive(Debug)]
pub struct V2Prefix {
    bytes: u8,
    started: bool,
}

impl V2Prefix {
    /// The scenario file's parameters: 1 to 15 bytes of the v1 prefix.
    pub(crate) fn check(bytes: u8) -> Result<(), String> {
        if !(1..=15).contains(&bytes) {
            return Err(format!("V2Prefix: bytes must be in 1..=15, got {bytes}"));
        }
        Ok(())
    }
}

impl V2Prefix {
    /// Sends `bytes` (1..=15) prefix bytes.
    pub fn new(bytes: u8) -> Self {
        V2Prefix { bytes, started: false }
    }
}

impl Behaviour for V2Prefix {
    fn on_connected(&mut self, io: &mut BotIo) {
        let prefix = v1_prefix(io);
        io.write_raw(&prefix[..self.bytes as usize], 0);
    }

    fn tick(&mut self, io: &mut BotIo) {
        connect_once(&mut self.started, io);
    }

    fn on_message(&mut self, _msg: Message, _io: &mut BotIo) {}

    fn raw_transport(&self) -> bool {
        true
    }
}

/// The network magic as a key's first 4 bytes, then, `wait_ms` later, the rest of a key and some
/// garbage. Bytes from the node before the rest went out mean it answered while the connection
/// could still be v1: the bot hangs up, which fails any expectation that the node closed it.
#[derive(Debug)]
pub struct V2EarlyKey {
    wait_ms: u64,
    rest_at_ms: Option<u64>,
    rest_sent: bool,
    out: Outgoing,
    started: bool,
}

impl V2EarlyKey {
    /// Waits `wait_ms` between the magic and the rest.
    pub fn new(wait_ms: u64) -> Self {
        V2EarlyKey { wait_ms, rest_at_ms: None, rest_sent: false, out: Outgoing::default(), started: false }
    }
}

impl Behaviour for V2EarlyKey {
    fn on_connected(&mut self, io: &mut BotIo) {
        io.write_raw(&io.network.magic(), 0);
        self.rest_at_ms = Some(io.now_ms + self.wait_ms);
        self.rest_sent = false;
    }

    fn tick(&mut self, io: &mut BotIo) {
        if !connect_once(&mut self.started, io) {
            return;
        }
        if !self.rest_sent && self.rest_at_ms.is_some_and(|t| io.now_ms >= t) {
            // A key whose first 4 bytes we already sent as the magic: the node sees one key.
            let mut rest = key(io)[4..].to_vec();
            rest.extend(crate::scenario::v2::bytes(io.rng, 100));
            self.rest_sent = true;
            self.out.start(rest, io);
        } else if self.rest_sent {
            self.out.push(io);
        }
    }

    fn on_bytes(&mut self, _n: u64, io: &mut BotIo) {
        if !self.rest_sent {
            io.close();
        }
    }

    fn on_message(&mut self, _msg: Message, _io: &mut BotIo) {}

    fn raw_transport(&self) -> bool {
        true
    }
}
