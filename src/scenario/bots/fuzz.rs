//! MalformedFuzz: seeded random messages whose envelope is valid (right magic, known command,
//! length within the command's bound, correct checksum) and whose payload is not: truncated fixed
//! fields, a version whose user-agent CompactSize is non-canonical, over 256 or past the end, or
//! cut inside a field. Core's reads fail on each and it drops the message; the node must drop and
//! count each too, never disconnect for it, crash or allocate past the frame.
//!
//! Bytes after a message are not in the mix: Core and oni take the message and ignore them (and on
//! an empty-payload command such as verack the per-command bound makes them an oversized *header*,
//! refused at once: OversizedFrame covers that).

use super::{modern_version, Behaviour, BotIo, Paced};
use oni_systems::resources::Rng;
use oni_systems::wire::reader::write_compact_size;
use oni_systems::wire::{encode_frame_with, Command, Message, Network};

/// Bytes of a version payload before the user agent.
const VERSION_PREFIX_BYTES: usize = 4 + 8 + 8 + 26 + 26 + 8;

/// One malformed frame and what is wrong with it.
pub fn malformed_frame(rng: &mut Rng, network: Network, template: &Message) -> (Vec<u8>, &'static str) {
    let mut valid_version = Vec::new();
    template.encode_payload(&mut valid_version);
    // `below` bytes at most, random length and content.
    let random = |rng: &mut Rng, below: u64| {
        let n = rng.below(below) as usize;
        (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()
    };
    let (command, payload, what) = match rng.below(9) {
        0 => (Command::Ping, random(rng, 8), "truncated ping"),
        1 => (Command::GetHeaders, random(rng, 37), "truncated getheaders"),
        2 => (Command::FeeFilter, random(rng, 8), "truncated feefilter"),
        3 => (Command::SendCmpct, random(rng, 9), "truncated sendcmpct"),
        4 => {
            let mut p = valid_version[..VERSION_PREFIX_BYTES].to_vec();
            p.push(0xfd);
            p.extend_from_slice(&(rng.below(0xfd) as u16).to_le_bytes());
            p.extend(random(rng, 9));
            (Command::Version, p, "version user agent: non-canonical CompactSize")
        }
        5 => {
            let mut p = valid_version[..VERSION_PREFIX_BYTES].to_vec();
            write_compact_size(&mut p, 257 + rng.below(10_000));
            (Command::Version, p, "version user agent: over 256 bytes")
        }
        6 => {
            let mut p = valid_version[..VERSION_PREFIX_BYTES].to_vec();
            let n = 20 + rng.below(200);
            write_compact_size(&mut p, n);
            p.extend(random(rng, n));
            (Command::Version, p, "version user agent: past the end")
        }
        7 => {
            // Through the user agent, then one to three bytes of the four of the start height.
            let ua_len = valid_version[VERSION_PREFIX_BYTES] as usize;
            let height_at = VERSION_PREFIX_BYTES + 1 + ua_len;
            let cut = height_at + 1 + rng.below(3) as usize;
            (Command::Version, valid_version[..cut].to_vec(), "version: start height cut short")
        }
        _ => {
            // Inside a field before the user agent (a version may end after the receiver's
            // address, byte 46, and is then whole).
            let cut = match rng.below(VERSION_PREFIX_BYTES as u64) as usize {
                46 => 45,
                c => c,
            };
            (Command::Version, valid_version[..cut].to_vec(), "version: truncated before the user agent")
        }
    };
    let mut frame = Vec::new();
    encode_frame_with(network, command, &mut frame, |o| o.extend_from_slice(&payload));
    (frame, what)
}

/// The fuzzer.
#[derive(Debug)]
pub struct MalformedFuzz {
    life: Paced,
}

impl MalformedFuzz {
    /// `msgs_per_s` malformed messages per second, after a handshake if asked.
    pub fn new(msgs_per_s: f64, handshake: bool) -> Self {
        MalformedFuzz { life: Paced::new(msgs_per_s, handshake) }
    }
}

impl Behaviour for MalformedFuzz {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let template = modern_version(io);
            let (frame, _) = malformed_frame(io.rng, io.network, &template);
            if !io.write_raw(&frame, 1) {
                break;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::wire::{FrameSplitter, HEADER_LEN};

    #[test]
    fn every_fuzz_frame_has_a_valid_envelope_and_an_invalid_payload() {
        let mut rng = Rng::seeded(3);
        let mut io_rng = Rng::seeded(4);
        let mut io = BotIo::new(0, 1_700_000_000, &mut io_rng, Network::Regtest, true, usize::MAX);
        let template = modern_version(&mut io);
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let (frame, what) = malformed_frame(&mut rng, Network::Regtest, &template);
            kinds.insert(what);
            let mut s = FrameSplitter::new(Network::Regtest);
            let (used, r) = s.push(&frame);
            assert_eq!(used, frame.len(), "{what}");
            let f = r.expect("header must pass").expect("one whole frame");
            assert_eq!(f.header.checksum, oni_systems::wire::checksum(&f.payload), "{what}");
            assert_eq!(f.payload.len(), frame.len() - HEADER_LEN);
            assert!(Message::decode(f.header.command, &f.payload).is_err(), "{what} decoded");
        }
        assert_eq!(kinds.len(), 9, "every case is generated: {kinds:?}");
    }
}
