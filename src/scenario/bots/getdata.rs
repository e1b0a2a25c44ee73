//! GetdataAmplification: after a correct handshake, asks for many blocks at a rate (random hashes
//! the node does not hold) while the network lets it read the answers only slowly. Each request of
//! 36 bytes per entry costs the node a `notfound` entry of the same size; the node must look
//! entries up only while that peer's send queue is under its soft bound and queue at most
//! `serve_queue_max` entries, so what it holds for the peer stays bounded however much is asked.

use super::{Behaviour, BotIo, Handshaker, HsState, Pacer};
use oni_systems::wire::{InvList, InvType, Message};

/// The getdata flooder.
#[derive(Debug)]
pub struct GetdataAmplification {
    per_msg: u32,
    rate: Pacer,
    hs: Handshaker,
    started: bool,
}

impl GetdataAmplification {
    /// `msgs_per_s` getdata messages of `entries_per_msg` witness-block entries each.
    pub fn new(entries_per_msg: u32, msgs_per_s: f64) -> Self {
        GetdataAmplification {
            per_msg: entries_per_msg,
            rate: Pacer::new(msgs_per_s),
            hs: Handshaker::default(),
            started: false,
        }
    }
}

impl Behaviour for GetdataAmplification {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() {
            if !self.started {
                self.started = true;
                io.connect();
            }
            return;
        }
        if self.hs.state != HsState::Ready {
            self.rate.restart();
            return;
        }
        for _ in 0..self.rate.due(io.now_ms) {
            let mut list = InvList::with_capacity(self.per_msg as usize);
            for _ in 0..self.per_msg {
                let mut h = [0u8; 32];
                for c in h.chunks_mut(8) {
                    c.copy_from_slice(&io.rng.next_u64().to_le_bytes());
                }
                list.push(InvType::WITNESS_BLOCK, h);
            }
            if !io.send(&Message::GetData(list)) {
                break;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.hs.start(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.hs.on_message(&msg, io);
    }
}
