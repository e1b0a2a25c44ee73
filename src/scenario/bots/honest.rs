//! Honest: a well-behaved modern peer. Completes the handshake, answers the node's pings, and pings
//! the node on an interval, timing each pong in virtual time: the "is the node still serving honest
//! peers" figure every attack scenario is judged by.

use super::{Behaviour, BotIo, Handshaker, HsState};
use oni_systems::wire::Message;

/// One ping an honest peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingRecord {
    /// Its nonce.
    pub nonce: u64,
    /// When it was written (virtual ms).
    pub sent_ms: u64,
    /// Round trip, once its pong came back.
    pub rtt_ms: Option<u64>,
}

/// Every ping an honest peer sent and what came of it.
#[derive(Clone, Debug, Default)]
pub struct PingLog {
    /// In send order.
    pub pings: Vec<PingRecord>,
}

/// The honest peer.
#[derive(Debug)]
pub struct Honest {
    hs: Handshaker,
    interval_ms: u64,
    next_ping_ms: Option<u64>,
    log: PingLog,
    finished: bool,
}

impl Honest {
    /// Pings the node every `interval_ms` once ready.
    pub fn new(interval_ms: u64) -> Self {
        Honest { hs: Handshaker::default(), interval_ms, next_ping_ms: None, log: PingLog::default(), finished: false }
    }
}

impl Behaviour for Honest {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() {
            // Honest peers connect once; a closed connection is a finding, not something to retry.
            if !self.finished && self.hs.state == HsState::Idle {
                io.connect();
            }
            return;
        }
        let Some(next) = self.next_ping_ms else { return };
        if io.now_ms >= next {
            let nonce = io.rng.next_u64();
            if io.send(&Message::Ping(nonce)) {
                self.log.pings.push(PingRecord { nonce, sent_ms: io.now_ms, rtt_ms: None });
            }
            self.next_ping_ms = Some(next + self.interval_ms);
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.hs.start(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        if self.hs.on_message(&msg, io) {
            // Seeded phase so honest peers do not ping in lockstep.
            self.next_ping_ms = Some(io.now_ms + io.rng.below(self.interval_ms));
        }
        if let Message::Pong(nonce) = msg {
            if let Some(p) = self.log.pings.iter_mut().rev().find(|p| p.nonce == nonce && p.rtt_ms.is_none()) {
                p.rtt_ms = Some(io.now_ms - p.sent_ms);
            }
        }
    }

    fn on_closed(&mut self, _io: &mut BotIo) {
        self.finished = true;
        self.next_ping_ms = None;
    }

    fn ping_log(&self) -> Option<&PingLog> {
        Some(&self.log)
    }
}
