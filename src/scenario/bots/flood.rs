//! PingFlood: a peer that completes the handshake and then pings as fast as its rate and TCP send
//! window allow. Pings are legal (Core answers every one and does not score them), so the defence is
//! not a disconnect: it is bounded work per tick (the decode budget caps the pongs a flooder gets
//! per tick), bounded memory (a full receive buffer pauses reading the socket), and honest peers
//! served as before. The shipped scenario states exactly that.

use super::{Behaviour, BotIo, Paced};
use oni_systems::wire::Message;

/// Distinct ping frames a flooder cycles through: encoding (and hashing) each ping afresh would make
/// the simulator spend its time on the attacker's side.
const PING_FRAMES: usize = 256;

/// The flooder.
#[derive(Debug)]
pub struct PingFlood {
    life: Paced,
    frames: Vec<Vec<u8>>,
    next: usize,
}

impl PingFlood {
    /// Up to `pings_per_s` pings per second once the handshake is done.
    pub fn new(pings_per_s: u64) -> Self {
        PingFlood { life: Paced::new(pings_per_s as f64, true), frames: Vec::new(), next: 0 }
    }
}

impl Behaviour for PingFlood {
    fn tick(&mut self, io: &mut BotIo) {
        let due = self.life.due(io);
        if due == 0 {
            return;
        }
        if self.frames.is_empty() {
            self.frames = (0..PING_FRAMES)
                .map(|_| {
                    let mut f = Vec::new();
                    Message::Ping(io.rng.next_u64()).encode_frame(io.network, &mut f);
                    f
                })
                .collect();
        }
        for _ in 0..due {
            if !io.write_raw(&self.frames[self.next], 1) {
                break; // the send window is full: TCP would block this writer
            }
            self.next = (self.next + 1) % PING_FRAMES;
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
    }
}
