//! Gossip floods after a correct handshake. InvStorm announces fresh random wtxids as fast as its
//! rate allows: a node that asked for no transactions disconnects it at the first one; a relaying
//! node tracks at most 5,000 of its announcements and has at most 100 requests out to it. AddrSpam
//! sends addr messages of fresh routable addresses: the token bucket takes one address per 10 s
//! from it, the rest are dropped and counted.

use super::{random_hash, Behaviour, BotIo, Paced};
use oni_systems::wire::{AddrEntry, InvList, InvType, Message, NetAddr};
use std::net::{Ipv4Addr, SocketAddr};

/// The inv flooder.
#[derive(Debug)]
pub struct InvStorm {
    per_msg: u32,
    life: Paced,
}

impl InvStorm {
    /// The scenario file's parameters: 1 to 50,000 entries an `inv` may carry.
    pub(crate) fn check(invs_per_msg: u32) -> Result<(), String> {
        if invs_per_msg == 0 || invs_per_msg > 50_000 {
            return Err(format!("InvStorm: invs_per_msg must be in 1..=50000, got {invs_per_msg}"));
        }
        Ok(())
    }
}

impl InvStorm {
    /// `msgs_per_s` inv messages of `invs_per_msg` entries each.
    pub fn new(invs_per_msg: u32, msgs_per_s: f64) -> Self {
        InvStorm { per_msg: invs_per_msg, life: Paced::new(msgs_per_s, true) }
    }
}

impl Behaviour for InvStorm {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let mut list = InvList::with_capacity(self.per_msg as usize);
            for _ in 0..self.per_msg {
                list.push(InvType::WTX, random_hash(io.rng));
            }
            if !io.send(&Message::Inv(list)) {
                break;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        // Requests for its made-up transactions are never answered.
        self.life.on_message(&msg, io);
    }
}

/// The addr spammer.
#[derive(Debug)]
pub struct AddrSpam {
    per_msg: u32,
    life: Paced,
}

impl AddrSpam {
    /// The scenario file's parameters: 1 to 1,000 addresses an `addr` may carry.
    pub(crate) fn check(addrs_per_msg: u32) -> Result<(), String> {
        if addrs_per_msg == 0 || addrs_per_msg > 1_000 {
            return Err(format!("AddrSpam: addrs_per_msg must be in 1..=1000, got {addrs_per_msg}"));
        }
        Ok(())
    }
}

impl AddrSpam {
    /// `msgs_per_s` addr messages of `addrs_per_msg` entries each.
    pub fn new(addrs_per_msg: u32, msgs_per_s: f64) -> Self {
        AddrSpam { per_msg: addrs_per_msg, life: Paced::new(msgs_per_s, true) }
    }
}

impl Behaviour for AddrSpam {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let entries = (0..self.per_msg)
                .map(|_| {
                    // Public unicast space only (1.0.0.0 – 99.255.255.255 minus 10/8), so every entry is worth keeping.
                    let mut ip = (io.rng.next_u64() as u32 % 0x6300_0000) + 0x0100_0000;
                    if ip >> 24 == 10 {
                        ip ^= 0x0300_0000;
                    }
                    let addr = SocketAddr::new(Ipv4Addr::from(ip).into(), 8333);
                    AddrEntry { time: io.unix_s as u32, addr: NetAddr::from_socket(addr, 9) }
                })
                .collect();
            if !io.send(&Message::Addr(entries)) {
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
