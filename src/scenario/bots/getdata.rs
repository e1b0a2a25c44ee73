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
    /// The scenario file's parameters: 1 to 50,000 entries a `getdata` may carry.
    pub(crate) fn check(entries_per_msg: u32) -> Result<(), String> {
        if entries_per_msg == 0 || entries_per_msg > 50_000 {
            return Err(format!("GetdataAmplification: entries_per_msg must be in 1..=50000, got {entries_per_msg}"));
        }
        Ok(())
    }
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

/// After a correct handshake, asks for the first `blocks` fixture blocks (witness serialization)
/// at a rate and never reads another byte: what the node sends piles up in the socket, then in its
/// send queue. The node must stop serving it at its soft bound and take no more of its requests
/// while earlier ones wait (Core handles nothing more from a peer until its getdata is done), so
/// its receive buffer fills, the reader stops, and what the bot gets in stays bounded.
#[derive(Debug)]
pub struct BlockRequester {
    life: Paced,
    frame: Vec<u8>,
}

impl BlockRequester {
    /// The scenario file's parameters: 1 to 2,100 of the fixture chain's blocks, which must load.
    pub(crate) fn check(blocks: u32) -> Result<(), String> {
        if !(1..=2_100).contains(&blocks) {
            return Err(format!("BlockRequester: blocks must be in 1..=2100, got {blocks}"));
        }
        super::fixture_chain()?;
        Ok(())
    }
}

impl BlockRequester {
    /// `msgs_per_s` getdata messages for the first `blocks` fixture blocks (an empty request if the
    /// fixture cannot be read; the scenario's validation reports that first).
    pub fn new(blocks: u32, msgs_per_s: f64) -> Self {
        let chain = super::fixture::chain().unwrap_or(&[]);
        let mut list = InvList::with_capacity(blocks as usize);
        for b in chain.iter().take(blocks as usize) {
            list.push(InvType::WITNESS_BLOCK, b.hash);
        }
        let mut frame = Vec::new();
        Message::GetData(list).encode_frame(oni_systems::wire::Network::Regtest, &mut frame);
        BlockRequester { life: Paced::new(msgs_per_s, true), frame }
    }
}

impl Behaviour for BlockRequester {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            if !io.write_raw(&self.frame, 1) {
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

    /// Only until the handshake is done.
    fn reads(&self) -> bool {
        self.life.hs.state != super::HsState::Ready
    }
}
