//! Bot behaviours: each instance is a state machine the simulator calls on its ticks and with the
//! messages the node sent it. Bots speak bytes through the real codec ([`BotIo::send`] encodes a
//! frame; [`BotIo::write_raw`] writes anything), so framing is attacked too.
//!
//! Adding an attack: a variant in [`BotKind`] (`kind.rs`, with its parameter checks), a file here,
//! an arm in [`spawn`].

mod blocks;
mod eclipse;
pub(crate) mod fixture;
mod flood;
mod framing;
mod fuzz;
mod getdata;
mod gossip;
mod handshake_abuse;
mod headers;
mod honest;
mod invalid_txs;
mod kind;
mod txs;
mod v2;

pub use honest::{Honest, PingLog, PingRecord};
pub use kind::BotKind;
pub use txs::{random_orphan, TxLog};

use oni_systems::resources::Rng;
use oni_systems::wire::{services, Message, NetAddr, Network, Version};

/// What a bot can do during one callback. The simulator applies it afterwards: bytes go into the
/// connection's pipe towards the node, a connect opens a new inbound connection, a close ends it.
pub struct BotIo<'a> {
    /// Virtual ms since the run started.
    pub now_ms: u64,
    /// The virtual wall clock, unix seconds (for version timestamps).
    pub unix_s: i64,
    /// This instance's own seeded generator.
    pub rng: &'a mut Rng,
    /// The network whose magic frames carry.
    pub network: Network,
    connected: bool,
    window_free: usize,
    pub(crate) out: Vec<u8>,
    pub(crate) frames: u32,
    pub(crate) want_connect: bool,
    pub(crate) want_close: bool,
}

impl<'a> BotIo<'a> {
    /// A callback context; `window_free` is what the bot may still write before its writes block.
    pub(crate) fn new(
        now_ms: u64,
        unix_s: i64,
        rng: &'a mut Rng,
        network: Network,
        connected: bool,
        window_free: usize,
    ) -> Self {
        BotIo {
            now_ms,
            unix_s,
            rng,
            network,
            connected,
            window_free,
            out: Vec::new(),
            frames: 0,
            want_connect: false,
            want_close: false,
        }
    }

    /// Whether this instance has a live connection (and has not asked to close it).
    pub fn connected(&self) -> bool {
        self.connected && !self.want_close
    }

    /// Bytes that can still be written before the send window is full.
    pub fn window_free(&self) -> usize {
        self.window_free
    }

    /// Encodes and writes one message; false (nothing written) when not connected or the window is full.
    pub fn send(&mut self, msg: &Message) -> bool {
        let mut frame = Vec::new();
        msg.encode_frame(self.network, &mut frame);
        self.write_raw(&frame, 1)
    }

    /// Writes raw bytes counted as `frames` messages; false when not connected or the window is full.
    pub fn write_raw(&mut self, bytes: &[u8], frames: u32) -> bool {
        if !self.connected() || bytes.len() > self.window_free {
            return false;
        }
        self.window_free -= bytes.len();
        self.out.extend_from_slice(bytes);
        self.frames += frames;
        true
    }

    /// Opens a connection to the node (accepted at once; the node may still refuse it).
    pub fn connect(&mut self) {
        if !self.connected {
            self.want_connect = true;
        }
    }

    /// Closes the connection after what was written (TCP FIN).
    pub fn close(&mut self) {
        if self.connected {
            self.want_close = true;
        }
    }
}

/// One instance's behaviour.
pub trait Behaviour {
    /// Called every tick from the instance's start time on.
    fn tick(&mut self, io: &mut BotIo);
    /// The connection asked for by [`BotIo::connect`] is open.
    fn on_connected(&mut self, _io: &mut BotIo) {}
    /// A message the node sent arrived.
    fn on_message(&mut self, msg: Message, io: &mut BotIo);
    /// The node closed the connection (EOF after everything it sent).
    fn on_closed(&mut self, _io: &mut BotIo) {}
    /// Honest peers keep a ping log for the report.
    fn ping_log(&self) -> Option<&PingLog> {
        None
    }
    /// Transaction relayers keep a log of what they offered the node.
    fn tx_log(&self) -> Option<&TxLog> {
        None
    }
    /// Whether it reads what the node sends now; a bot that stops reading leaves the node's bytes
    /// in its socket (sim: a modelled receive window) until the node's writes to it stall.
    fn reads(&self) -> bool {
        true
    }

    /// Whether it writes and reads the wire itself (a raw BIP324 abuser): the node's bytes reach
    /// it uncounted as frames, and nothing it writes is framed for it.
    fn raw_transport(&self) -> bool {
        false
    }

    /// `n` bytes from the node reached it (raw bots see no messages, only this).
    fn on_bytes(&mut self, _n: u64, _io: &mut BotIo) {}
}

/// Builds a fresh instance of `kind`.
pub fn spawn(kind: &BotKind) -> Box<dyn Behaviour> {
    match kind {
        BotKind::OversizedFrame { command, len, handshake } => {
            Box::new(framing::OversizedFrame::new(command, *len, *handshake))
        }
        BotKind::BadChecksum { msgs_per_s, handshake } => Box::new(framing::BadChecksum::new(*msgs_per_s, *handshake)),
        BotKind::GarbageBytes { bytes_per_s, handshake } => {
            Box::new(framing::GarbageBytes::new(*bytes_per_s, *handshake))
        }
        BotKind::Slowloris { byte_interval_ms } => Box::new(handshake_abuse::Slowloris::new(*byte_interval_ms)),
        BotKind::VersionFlood { conns_per_s } => Box::new(handshake_abuse::VersionFlood::new(*conns_per_s)),
        BotKind::HandshakeNeverCompletes => Box::new(handshake_abuse::HandshakeNeverCompletes::default()),
        BotKind::PingFlood { pings_per_s } => Box::new(flood::PingFlood::new(*pings_per_s)),
        BotKind::ReconnectChurn { hold_ms, pause_ms } => {
            Box::new(handshake_abuse::ReconnectChurn::new(*hold_ms, *pause_ms))
        }
        BotKind::NetgroupEclipse { retry_ms, .. } => Box::new(eclipse::NetgroupEclipse::new(*retry_ms)),
        BotKind::MalformedFuzz { msgs_per_s, handshake } => Box::new(fuzz::MalformedFuzz::new(*msgs_per_s, *handshake)),
        BotKind::InvStorm { invs_per_msg, msgs_per_s } => Box::new(gossip::InvStorm::new(*invs_per_msg, *msgs_per_s)),
        BotKind::AddrSpam { addrs_per_msg, msgs_per_s } => Box::new(gossip::AddrSpam::new(*addrs_per_msg, *msgs_per_s)),
        BotKind::UnconnectingHeaders { headers_per_msg, msgs_per_s } => {
            Box::new(headers::HeaderAttack::unconnecting(*headers_per_msg, *msgs_per_s))
        }
        BotKind::InvalidHeaders { msgs_per_s } => Box::new(headers::HeaderAttack::invalid(*msgs_per_s)),
        BotKind::LowWorkHeaders { msgs_per_s } => Box::new(headers::LowWorkHeaders::new(*msgs_per_s)),
        BotKind::BlockStall { blocks } => Box::new(blocks::ChainPeer::new(*blocks, false)),
        BotKind::BlockServer { blocks } => Box::new(blocks::ChainPeer::new(*blocks, true)),
        BotKind::GetdataAmplification { entries_per_msg, msgs_per_s } => {
            Box::new(getdata::GetdataAmplification::new(*entries_per_msg, *msgs_per_s))
        }
        BotKind::OrphanFlood { orphans_per_s, orphans, inputs_per_tx, pad_bytes } => {
            Box::new(txs::OrphanFlood::new(*orphans_per_s, *orphans, *inputs_per_tx, *pad_bytes))
        }
        BotKind::TxRelayer { txs_per_s, answer_delay_ms } => {
            Box::new(txs::TxRelayer::new(*txs_per_s, *answer_delay_ms))
        }
        BotKind::LargeTx { tx_bytes, txs_per_s } => Box::new(invalid_txs::LargeTx::new(*tx_bytes, *txs_per_s)),
        BotKind::NonStandardTxs { txs_per_s, distinct } => {
            Box::new(invalid_txs::NonStandardTxs::new(*txs_per_s, *distinct))
        }
        BotKind::UnknownCommand { len, msgs_per_s, handshake } => {
            Box::new(framing::UnknownCommand::new(*len, *msgs_per_s, *handshake))
        }
        BotKind::BlockRequester { blocks, msgs_per_s } => Box::new(getdata::BlockRequester::new(*blocks, *msgs_per_s)),
        BotKind::V2Garbage { garbage } => Box::new(v2::V2Garbage::new(*garbage)),
        BotKind::V2Prefix { bytes } => Box::new(v2::V2Prefix::new(*bytes)),
        BotKind::V2EarlyKey { wait_ms } => Box::new(v2::V2EarlyKey::new(*wait_ms)),
    }
}

/// Checks that the regtest fixture chain block bots serve can be read (the error names the path).
pub fn fixture_chain() -> Result<usize, String> {
    fixture::chain().map(|c| c.len())
}

/// Checks that the fixture mempool relayers hold can be read (the error names the path).
pub fn fixture_mempool() -> Result<usize, String> {
    fixture::mempool().map(|m| m.len())
}

/// A modern peer's version (what Core 30 sends), with a fresh random nonce.
pub fn modern_version(io: &mut BotIo) -> Message {
    let nonce = io.rng.next_u64() | 1;
    Message::Version(Version {
        version: 70016,
        services: services::NODE_NETWORK | services::NODE_WITNESS,
        timestamp: io.unix_s,
        receiver: NetAddr::default(),
        sender: NetAddr::default(),
        nonce,
        user_agent: b"/Satoshi:30.0.0/".as_slice().into(),
        start_height: 0,
        relay: true,
    })
}

/// The life most flooding bots share: connect once, complete the modern handshake when asked to,
/// then act at a paced rate. Each bot keeps only what it sends.
#[derive(Debug)]
pub struct Paced {
    rate: Pacer,
    handshake: bool,
    started: bool,
    /// The handshake (answers pings in every state).
    pub hs: Handshaker,
}

impl Paced {
    /// `per_s` events a second, after a handshake when `handshake`.
    pub fn new(per_s: f64, handshake: bool) -> Self {
        Paced { rate: Pacer::new(per_s), handshake, started: false, hs: Handshaker::default() }
    }

    /// Events due this tick: 0 until connected (and through the handshake, when asked).
    pub fn due(&mut self, io: &mut BotIo) -> u64 {
        if !io.connected() {
            if !self.started {
                self.started = true;
                io.connect();
            }
            return 0;
        }
        if self.handshake && self.hs.state != HsState::Ready {
            self.rate.restart();
            return 0;
        }
        self.rate.due(io.now_ms)
    }

    /// The connection is open: start the handshake when asked to.
    pub fn on_connected(&mut self, io: &mut BotIo) {
        if self.handshake {
            self.hs.start(io);
        }
    }

    /// A message from the node: the handshake and pings are answered.
    pub fn on_message(&mut self, msg: &Message, io: &mut BotIo) {
        self.hs.on_message(msg, io);
    }
}

/// 32 random bytes: a hash nobody has.
pub fn random_hash(rng: &mut Rng) -> [u8; 32] {
    let mut h = [0u8; 32];
    for c in h.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    h
}

/// Where a bot's handshake stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HsState {
    /// Nothing sent.
    #[default]
    Idle,
    /// Our version is out; waiting for the node's version and verack.
    VersionSent,
    /// Both veracks exchanged.
    Ready,
}

/// The modern handshake as Core does it from the dialing side: version; on the node's version,
/// wtxidrelay + sendaddrv2 + verack; on its verack, sendheaders + sendcmpct + feefilter. Answers
/// pings in every state. Bots that misbehave after a correct handshake reuse it.
#[derive(Debug, Default)]
pub struct Handshaker {
    /// Progress.
    pub state: HsState,
}

impl Handshaker {
    /// Sends our version.
    pub fn start(&mut self, io: &mut BotIo) {
        let v = modern_version(io);
        io.send(&v);
        self.state = HsState::VersionSent;
    }

    /// Handles a handshake message or a ping; true when this message completed the handshake.
    pub fn on_message(&mut self, msg: &Message, io: &mut BotIo) -> bool {
        match msg {
            Message::Version(_) if self.state == HsState::VersionSent => {
                io.send(&Message::WtxidRelay);
                io.send(&Message::SendAddrV2);
                io.send(&Message::Verack);
                false
            }
            Message::Verack if self.state == HsState::VersionSent => {
                self.state = HsState::Ready;
                io.send(&Message::SendHeaders);
                io.send(&Message::SendCmpct { announce: 0, version: 2 });
                io.send(&Message::FeeFilter(1_000));
                true
            }
            Message::Ping(n) => {
                io.send(&Message::Pong(*n));
                false
            }
            _ => false,
        }
    }

    /// Forgets the connection (for bots that reconnect).
    pub fn reset(&mut self) {
        self.state = HsState::Idle;
    }
}

/// Spreads events at a rate over virtual time, in integer microseconds so a seed replays exactly.
/// The first event is due at the first poll (or the first poll after [`Pacer::restart`]).
#[derive(Debug)]
pub struct Pacer {
    interval_us: u64,
    next_us: Option<u64>,
}

/// Most events one pacer yields in one tick, whatever the rate: bounds a tick's work.
pub const PACER_MAX_PER_TICK: u64 = 100_000;

impl Pacer {
    /// `per_s` events per second.
    pub fn new(per_s: f64) -> Self {
        let interval_us = (1_000_000.0 / per_s).round().max(1.0) as u64;
        Pacer { interval_us, next_us: None }
    }

    /// Events due by `now_ms` (at most [`PACER_MAX_PER_TICK`]; the excess is dropped, not owed).
    pub fn due(&mut self, now_ms: u64) -> u64 {
        let now_us = now_ms * 1_000;
        let next = *self.next_us.get_or_insert(now_us);
        if next > now_us {
            return 0;
        }
        let n = (now_us - next) / self.interval_us + 1;
        self.next_us = Some(next + n * self.interval_us);
        n.min(PACER_MAX_PER_TICK)
    }

    /// Starts the schedule over: the next poll yields one event.
    pub fn restart(&mut self) {
        self.next_us = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spreads_events_at_the_rate() {
        let mut p = Pacer::new(5.0);
        let total: u64 = (100..=200).map(|t| p.due(t * 10)).sum();
        assert_eq!(total, 6, "5/s over [1000, 2000] ms inclusive is 6 events, the first at the first poll");
        let mut p = Pacer::new(20_000.0);
        assert_eq!(p.due(7_000), 1);
        assert_eq!(p.due(7_050), 1_000, "50 ms at 20k/s");
        p.restart();
        assert_eq!(p.due(9_000), 1, "a restart forgets the gap");
    }

    #[test]
    fn pacer_caps_one_tick() {
        let mut p = Pacer::new(1_000_000.0);
        p.due(0);
        assert_eq!(p.due(1_000_000), PACER_MAX_PER_TICK);
    }
}
