//! GetdataAmplification: after a correct handshake, asks for many blocks at a rate (random hashes
//! the node does not hold) while the network lets it read the answers only slowly. Each request of
//! 36 bytes per entry costs the node a `notfound` entry of the same size; the node must look
//! entries up only while that peer's send queue is under its soft bound and queue at most
//! `serve_queue_max` entries, so what it holds for the peer stays bounded however much is asked.

use super::{random_hash, Behaviour, BotIo, Paced};
use oni_systems::wire::{InvList, InvType, Message};

/// The getdata flooder.
#[derive(Debug)]
pub struct GetdataAmplification {
    per_msg: u32,
    life: Paced,
}

impl GetdataAmplification {
    /// `msgs_per_s` getdata messages of `entries_per_msg` witness-block entries each.
    pub fn new(entries_per_msg: u32, msgs_per_s: f64) -> Self {
        GetdataAmplification { per_msg: entries_per_msg, life: Paced::new(msgs_per_s, true) }
    }
}

impl Behaviour for GetdataAmplification {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let mut list = InvList::with_capacity(self.per_msg as usize);
            for _ in 0..self.per_msg {
                list.push(InvType::WITNESS_BLOCK, random_hash(io.rng));
            }
            if !io.send(&Message::GetData(list)) {
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
