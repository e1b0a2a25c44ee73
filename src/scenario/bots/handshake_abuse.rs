//! Handshake abuse: holding a connection without finishing the handshake (slowloris, never-verack),
//! making the node do handshake work and dropping (version flood), and connection churn. The node
//! must time the first two out and keep no state behind for the last two.

use super::{modern_version, Behaviour, BotIo, Handshaker, HsState, Pacer};
use oni_systems::wire::Message;

/// Trickles version, wtxidrelay, sendaddrv2 and verack one byte at a time.
#[derive(Debug)]
pub struct Slowloris {
    rate: Pacer,
    stream: Vec<u8>,
    frame_ends: Vec<usize>,
    pos: usize,
    started: bool,
}

impl Slowloris {
    /// One byte every `byte_interval_ms`.
    pub fn new(byte_interval_ms: u64) -> Self {
        Slowloris {
            rate: Pacer::new(1_000.0 / byte_interval_ms as f64),
            stream: Vec::new(),
            frame_ends: Vec::new(),
            pos: 0,
            started: false,
        }
    }
}

impl Behaviour for Slowloris {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() {
            if !self.started {
                self.started = true;
                io.connect();
            }
            return;
        }
        for _ in 0..self.rate.due(io.now_ms) {
            let Some(&b) = self.stream.get(self.pos) else { return };
            let completes = self.frame_ends.contains(&(self.pos + 1)) as u32;
            if !io.write_raw(&[b], completes) {
                return;
            }
            self.pos += 1;
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.rate.restart();
        for m in [modern_version(io), Message::WtxidRelay, Message::SendAddrV2, Message::Verack] {
            m.encode_frame(io.network, &mut self.stream);
            self.frame_ends.push(self.stream.len());
        }
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        if let Message::Ping(n) = msg {
            io.send(&Message::Pong(n));
        }
    }
}

/// Connects, sends version, and drops as soon as the node has answered with its own.
#[derive(Debug)]
pub struct VersionFlood {
    rate: Pacer,
    opened_ms: u64,
}

/// A flood connection the node never answers is dropped after this long.
const VERSION_FLOOD_GIVE_UP_MS: u64 = 5_000;

impl VersionFlood {
    /// At most `conns_per_s` connections per second, one at a time.
    pub fn new(conns_per_s: f64) -> Self {
        VersionFlood { rate: Pacer::new(conns_per_s), opened_ms: 0 }
    }
}

impl Behaviour for VersionFlood {
    fn tick(&mut self, io: &mut BotIo) {
        let due = self.rate.due(io.now_ms) > 0;
        if !io.connected() {
            if due {
                io.connect();
            }
        } else if io.now_ms - self.opened_ms >= VERSION_FLOOD_GIVE_UP_MS {
            io.close();
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.opened_ms = io.now_ms;
        let v = modern_version(io);
        io.send(&v);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        if matches!(msg, Message::Version(_)) {
            io.close();
        }
    }
}

/// Sends version, wtxidrelay and sendaddrv2, answers the node's version, and never sends verack.
#[derive(Debug, Default)]
pub struct HandshakeNeverCompletes {
    started: bool,
}

impl Behaviour for HandshakeNeverCompletes {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() && !self.started {
            self.started = true;
            io.connect();
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        let v = modern_version(io);
        io.send(&v);
        io.send(&Message::WtxidRelay);
        io.send(&Message::SendAddrV2);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        if let Message::Ping(n) = msg {
            io.send(&Message::Pong(n));
        }
    }
}

/// Completes the handshake, holds the connection, drops it, and comes back.
#[derive(Debug)]
pub struct ReconnectChurn {
    hold_ms: u64,
    pause_ms: u64,
    hs: Handshaker,
    ready_ms: Option<u64>,
    reconnect_ms: u64,
}

impl ReconnectChurn {
    /// Stays `hold_ms` after each handshake, waits `pause_ms` before the next connection.
    pub fn new(hold_ms: u64, pause_ms: u64) -> Self {
        ReconnectChurn { hold_ms, pause_ms, hs: Handshaker::default(), ready_ms: None, reconnect_ms: 0 }
    }

    fn ended(&mut self, now_ms: u64) {
        self.hs.reset();
        self.ready_ms = None;
        self.reconnect_ms = now_ms + self.pause_ms;
    }
}

impl Behaviour for ReconnectChurn {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() {
            if io.now_ms >= self.reconnect_ms && self.hs.state == HsState::Idle {
                io.connect();
            }
            return;
        }
        if self.ready_ms.is_some_and(|r| io.now_ms - r >= self.hold_ms) {
            io.close();
            self.ended(io.now_ms);
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.hs.start(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        if self.hs.on_message(&msg, io) {
            self.ready_ms = Some(io.now_ms);
        }
    }

    fn on_closed(&mut self, io: &mut BotIo) {
        self.ended(io.now_ms);
    }
}
