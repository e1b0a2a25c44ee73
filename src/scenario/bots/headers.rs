//! Header attacks after a correct handshake. UnconnectingHeaders sends `headers` whose first
//! header's parent nobody knows (each with valid regtest proof of work, so only the connection
//! check can catch it): the node asks for the gap each time and scores every 10th such message
//! (20 points), so the fifth score disconnects it. InvalidHeaders sends headers that do connect
//! (to genesis) but claim mainnet difficulty their hash does not meet: scored 100 at once.

use super::{Behaviour, BotIo, Handshaker, HsState, Paced, Pacer};
use bitcoin::hashes::Hash;
use oni_systems::chain::pow::check_pow;
use oni_systems::chain::ChainParams;
use oni_systems::wire::headers::block_hash;
use oni_systems::wire::{HeaderList, Message};

/// Regtest's compact target (its proof-of-work limit): about every other hash meets it.
const REGTEST_BITS: u32 = 0x207f_ffff;
/// Mainnet's lowest difficulty: a hash meets it about once in 2^32 tries, so a random one never does.
const MAINNET_BITS: u32 = 0x1d00_ffff;

/// Fills a header with version, `prev`, a random merkle root, `time` and `bits`; nonce 0.
fn header(io: &mut BotIo, prev: &[u8; 32], time: u32, bits: u32) -> [u8; 80] {
    let mut h = [0u8; 80];
    h[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
    h[4..36].copy_from_slice(prev);
    for c in h[36..68].chunks_mut(8) {
        c.copy_from_slice(&io.rng.next_u64().to_le_bytes());
    }
    h[68..72].copy_from_slice(&time.to_le_bytes());
    h[72..76].copy_from_slice(&bits.to_le_bytes());
    h
}

/// Bumps the nonce until the header meets its own target (a few tries at regtest difficulty).
fn grind(h: &mut [u8; 80], params: &ChainParams) {
    let bits = u32::from_le_bytes([h[72], h[73], h[74], h[75]]);
    for nonce in 0u32.. {
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        if check_pow(&block_hash(h).to_byte_array(), bits, params).is_ok() {
            return;
        }
    }
}

/// Which header attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Unconnecting,
    Invalid,
}

/// Both header attackers: handshake, then `headers` messages at a rate.
#[derive(Debug)]
pub struct HeaderAttack {
    flavour: Flavour,
    per_msg: u32,
    life: Paced,
    params: ChainParams,
}

impl HeaderAttack {
    /// The scenario file's parameters for the unconnecting kind: 1 to 2,000 headers a message.
    pub(crate) fn check_unconnecting(headers_per_msg: u32) -> Result<(), String> {
        if headers_per_msg == 0 || headers_per_msg > 2_000 {
            return Err(format!("UnconnectingHeaders: headers_per_msg must be in 1..=2000, got {headers_per_msg}"));
        }
        Ok(())
    }
}

impl HeaderAttack {
    /// `msgs_per_s` messages of `headers_per_msg` chained headers whose first parent is unknown.
    pub fn unconnecting(headers_per_msg: u32, msgs_per_s: f64) -> Self {
        Self::new(Flavour::Unconnecting, headers_per_msg, msgs_per_s)
    }

    /// `msgs_per_s` messages of one header on genesis whose hash misses its claimed target.
    pub fn invalid(msgs_per_s: f64) -> Self {
        Self::new(Flavour::Invalid, 1, msgs_per_s)
    }

    fn new(flavour: Flavour, per_msg: u32, msgs_per_s: f64) -> Self {
        HeaderAttack {
            flavour,
            per_msg,
            life: Paced::new(msgs_per_s, true),
            params: ChainParams::for_network(oni_systems::wire::Network::Regtest),
        }
    }

    fn message(&self, io: &mut BotIo) -> Message {
        let time = io.unix_s as u32;
        let mut list = HeaderList::default();
        match self.flavour {
            Flavour::Unconnecting => {
                let mut prev = [0u8; 32];
                for c in prev.chunks_mut(8) {
                    c.copy_from_slice(&io.rng.next_u64().to_le_bytes());
                }
                for _ in 0..self.per_msg {
                    let mut h = header(io, &prev, time, REGTEST_BITS);
                    grind(&mut h, &self.params);
                    prev = block_hash(&h).to_byte_array();
                    list.push_raw(h);
                }
            }
            Flavour::Invalid => {
                let genesis = self.params.genesis.block_hash().to_byte_array();
                list.push_raw(header(io, &genesis, time, MAINNET_BITS));
            }
        }
        Message::Headers(list)
    }
}

impl Behaviour for HeaderAttack {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let m = self.message(io);
            if !io.send(&m) {
                break;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        // The node's getheaders for the gap are never answered.
        self.life.on_message(&msg, io);
    }
}

/// A long chain of valid regtest headers from genesis, 2,000 per message, each message sent when
/// the node asks for more (paced). Meant for a node whose minimum chain work is set above what
/// the chain can show: the node must keep only PRESYNC's commitments, never the headers.
#[derive(Debug)]
pub struct LowWorkHeaders {
    rate: Pacer,
    hs: Handshaker,
    started: bool,
    params: ChainParams,
    /// The last header sent and its time: the next message continues from it.
    tip: [u8; 32],
    time: u32,
    /// The node asked for more and has not got it yet.
    owed: bool,
}

impl LowWorkHeaders {
    /// Answers at most `msgs_per_s` of the node's requests per second.
    pub fn new(msgs_per_s: f64) -> Self {
        let params = ChainParams::for_network(oni_systems::wire::Network::Regtest);
        LowWorkHeaders {
            rate: Pacer::new(msgs_per_s),
            hs: Handshaker::default(),
            started: false,
            tip: params.genesis.block_hash().to_byte_array(),
            time: params.genesis.time,
            params,
            owed: false,
        }
    }

    fn batch(&mut self, io: &mut BotIo) -> Message {
        let mut list = HeaderList::default();
        for _ in 0..oni_systems::wire::MAX_HEADERS {
            // One second apart: above the median of the last 11, far from the future.
            self.time += 1;
            let mut h = header(io, &self.tip, self.time, REGTEST_BITS);
            grind(&mut h, &self.params);
            self.tip = block_hash(&h).to_byte_array();
            list.push_raw(h);
        }
        Message::Headers(list)
    }
}

impl Behaviour for LowWorkHeaders {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() {
            if !self.started {
                self.started = true;
                io.connect();
            }
            return;
        }
        if self.hs.state != HsState::Ready || !self.owed {
            return;
        }
        if self.rate.due(io.now_ms) > 0 {
            let m = self.batch(io);
            if io.send(&m) {
                self.owed = false;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.hs.start(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        if self.hs.on_message(&msg, io) {
            // Announce unasked: the first full message starts the node's low-work sync.
            self.owed = true;
        }
        if matches!(msg, Message::GetHeaders(_)) {
            self.owed = true;
        }
    }
}
