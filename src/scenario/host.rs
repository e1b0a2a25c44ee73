//! What sim and live mode share in driving bots: a connection's decoded messages handed to its bot
//! one by one (stopping if the bot closes mid-way), counted per command for the report's
//! "most per tick" figures, then the node's close if it came. The two modes differ only in how a
//! callback's actions reach the link, which each supplies. [`Instance`] is one bot as both modes hold it.

use super::bots::{Behaviour, BotIo};
use super::outcome::InstanceInfo;
use oni_systems::wire::{Command, Message};
use std::net::SocketAddr;

/// One peer instance: its behaviour, its own rng, its connection as it sees it. Live mode drives
/// the same instances over real sockets.
pub(crate) struct Instance {
    pub(crate) label: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) start_ms: u64,
    pub(crate) behaviour: Box<dyn Behaviour>,
    pub(crate) rng: oni_systems::resources::Rng,
    pub(crate) conn: Option<u64>,
    /// It connects with BIP324 v2.
    pub(crate) v2: bool,
    pub(crate) max_per_tick: [u32; Command::COUNT],
    pub(crate) recv_total: [u64; Command::COUNT],
}

impl Instance {
    /// What the judge sees of it.
    pub(crate) fn info(&self) -> InstanceInfo {
        InstanceInfo {
            label: self.label,
            max_per_tick: self.max_per_tick,
            recv_total: self.recv_total,
            ping_log: self.behaviour.ping_log().cloned(),
            tx_log: self.behaviour.tx_log().cloned(),
        }
    }
}

/// A runner that owns bot instances and carries out their actions.
pub(crate) trait BotHost {
    /// What one callback asked for.
    type Actions;

    /// Instance `i`.
    fn instance_mut(&mut self, i: usize) -> &mut Instance;

    /// Calls instance `i`'s behaviour with a fresh [`BotIo`]; returns what it asked for.
    fn call(&mut self, i: usize, now: u64, f: impl FnOnce(&mut dyn Behaviour, &mut BotIo)) -> Self::Actions;

    /// Carries out a callback's actions.
    fn apply(&mut self, i: usize, now: u64, a: Self::Actions);

    /// Hands what connection `c` delivered to instance `i`, unless the bot already left it.
    fn hand_to_bot(&mut self, i: usize, c: u64, msgs: Vec<Message>, eof: bool, now: u64) {
        if self.instance_mut(i).conn != Some(c) {
            return; // the bot already closed this socket: the bytes fall on the floor
        }
        let mut per_cmd = [0u32; Command::COUNT];
        for m in msgs {
            let cmd = m.command() as usize;
            per_cmd[cmd] += 1;
            self.instance_mut(i).recv_total[cmd] += 1;
            let a = self.call(i, now, |b, io| b.on_message(m, io));
            self.apply(i, now, a);
            if self.instance_mut(i).conn != Some(c) {
                break;
            }
        }
        let inst = self.instance_mut(i);
        for (m, n) in inst.max_per_tick.iter_mut().zip(per_cmd) {
            *m = (*m).max(n);
        }
        if eof && inst.conn == Some(c) {
            inst.conn = None;
            let a = self.call(i, now, |b, io| b.on_closed(io));
            self.apply(i, now, a);
        }
    }
}
