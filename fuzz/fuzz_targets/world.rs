//! Target: the whole world. Up to four peers (inbound and outbound of every kind) connect, shake
//! hands or not, and send arbitrary frames (any command with any payload, correctly framed), raw
//! garbage through a persistent frame splitter as the shell's reader has, pings, large synthetic
//! inv/getdata/notfound and addr/addrv2 lists, headers of a regtest chain mined on the fly; the
//! clock moves, sockets close, readers stall. Bytes reach the world as the shell hands them over:
//! nothing while the world asked to pause a socket, and at most the receive bound of frames not
//! yet taken. At most [`MSGS_MAX`] messages and [`TICKS_MAX`] ticks per input, on a world built
//! per input.
//!
//! Asserts, after every tick: no panic (also none in the harness, which decodes everything the
//! node sends: the node never sends a bad frame); every bound of the memory table that lives in
//! the world (`harness::check_bounds`); a refused header or a closed socket ends its peer within
//! the tick; the schedule never stalls — a peer whose decode is not held back (send queue under
//! its soft bound, no block getdata waiting) and whose next frame is small has at least one frame
//! decoded in every tick, and a ping from a ready peer is answered within [`PING_TICKS_MAX`] such
//! ticks (unless raw bytes went before it: a partial frame may swallow it).

#![no_main]

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::{CompactTarget, TxMerkleNode};
use libfuzzer_sys::fuzz_target;
use oni_systems::chain::{Ibd, ServeQueue, SyncConfig};
use oni_systems::components::{ConnId, Direction, PeerState, RecvBuffer, SendQueue};
use oni_systems::harness::{check_bounds, TestNode};
use oni_systems::resources::{Clock, Config, DisconnectReason, Inbox, Limits, NetEvent};
use oni_systems::wire::{encode_frame_with, Command, FrameSplitter, Message, Network};

/// Messages (frames the driver builds, or raw chunks) per input.
const MSGS_MAX: usize = 32;
/// Ticks per input, besides the drain at the end.
const TICKS_MAX: usize = 16;
/// Ticks at the end to let what was sent be decoded and answered.
const DRAIN_TICKS_MAX: usize = 100;
/// Ticks a ready peer's ping may wait for its pong while its decode is not held back. Ahead of it
/// are at most `MSGS_MAX` messages of up to ten frames each (raw chunks are at most 255 bytes),
/// decoded at least eight a tick, a getdata ending its peer's turn: 32 × 10 / 8 + 32 = 72.
const PING_TICKS_MAX: usize = 80;
/// Frames up to this size are always decoded, whatever the tick's node-wide budget
/// (`decode::SMALL_FRAME_BYTES`).
const SMALL_FRAME_BYTES: usize = 4 * 1024;
/// The fixture chain's tip time (`regtest-core/chain.hex` block 2100) plus an hour: seeds send
/// its headers and blocks, whose times must not be in the future.
const START_S: i64 = 1_795_619_708 + 3_600;
const SLOTS: usize = 4;
const NETWORK: Network = Network::Regtest;

/// One peer slot: its connection and what it sent that the shell has not handed over yet.
#[derive(Default)]
struct Slot {
    conn: Option<ConnId>,
    /// Bytes on the wire not yet framed.
    backlog: Vec<u8>,
    splitter: Option<FrameSplitter>,
    /// The stream was refused at a header: nothing more is read.
    dead: bool,
    /// A refused header that must end the peer, handed to the world this tick.
    refused: Option<DisconnectReason>,
    stalled: bool,
    /// Raw bytes were sent: the stream may be out of step (a partial frame swallowing what
    /// follows), so later pings are not expected to be answered.
    raw: bool,
    /// Pings sent while the peer was ready, with the eligible ticks each has waited.
    pings: Vec<(u64, usize)>,
}

struct Driver<'a> {
    node: TestNode,
    slots: [Slot; SLOTS],
    input: &'a [u8],
    msgs: usize,
    ticks: usize,
    generation: u8,
    /// A regtest header chain mined on genesis, extended and forked by the input.
    chain: Vec<Header>,
}

impl Driver<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.input.split_first()?;
        self.input = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.input.len());
        let (a, b) = self.input.split_at(n);
        self.input = b;
        a
    }

    /// The slot a byte names, if its peer is connected.
    fn live(&self, b: u8) -> Option<usize> {
        let s = b as usize % SLOTS;
        self.slots[s].conn.map(|_| s)
    }

    /// Reads a slot byte: the slot, if its peer is connected.
    fn slot(&mut self) -> Option<usize> {
        let b = self.byte()?;
        self.live(b)
    }

    fn queue(&mut self, slot: usize, command: Command, payload: &[u8]) {
        encode_frame_with(NETWORK, command, &mut self.slots[slot].backlog, |o| o.extend_from_slice(payload));
        self.msgs += 1;
    }

    fn queue_message(&mut self, slot: usize, m: &Message) {
        m.encode_frame(NETWORK, &mut self.slots[slot].backlog);
        self.msgs += 1;
    }

    fn ready(&self, slot: usize) -> bool {
        self.slots[slot].conn.is_some_and(|c| self.node.state(c) == Some(PeerState::Ready))
    }

    /// Runs one op; `None` when the input ran out.
    fn step(&mut self) -> Option<()> {
        match self.byte()? % 13 {
            0 | 1 => {
                let s = self.byte()? as usize % SLOTS;
                let direction = Direction::ALL[self.byte()? as usize % Direction::ALL.len()];
                if self.slots[s].conn.is_some() {
                    return Some(());
                }
                self.generation = self.generation.wrapping_add(1);
                let g = self.generation;
                let conn = if direction == Direction::Inbound {
                    self.node.connect_inbound(&format!("{}.{g}.7.1:{}", 20 + s, 40_000 + g as u16))
                } else {
                    self.node.connect_outbound(&format!("{}.{g}.9.1:18444", 30 + s), direction)
                };
                self.slots[s] =
                    Slot { conn: Some(conn), splitter: Some(FrameSplitter::new(NETWORK)), ..Slot::default() };
                self.after_tick();
            }
            2 => {
                let s = self.slot()?;
                let flags = self.byte()?;
                let Message::Version(mut v) = TestNode::peer_version(0x5eed ^ u64::from(flags)) else { unreachable!() };
                if flags & 0x80 != 0 {
                    v.services = u64::from(flags & 0x0f);
                    v.version = 60_000 + i32::from(flags & 0x70) * 200;
                }
                v.relay = flags & 0x08 == 0;
                self.queue_message(s, &Message::Version(v));
                if flags & 1 != 0 {
                    self.queue_message(s, &Message::WtxidRelay);
                }
                if flags & 2 != 0 {
                    self.queue_message(s, &Message::SendAddrV2);
                }
                self.queue_message(s, &Message::Verack);
                if flags & 4 != 0 {
                    self.queue_message(s, &Message::SendHeaders);
                    self.queue_message(s, &Message::SendCmpct { announce: 0, version: 2 });
                    self.queue_message(s, &Message::FeeFilter(1_000));
                }
            }
            3 => {
                let s = self.slot()?;
                // Any command but `Unknown`, whose name the driver cannot write.
                let command = Command::ALL[self.byte()? as usize % (Command::COUNT - 1)];
                let len = self.u16()? as usize;
                let payload = self.take(len).to_vec();
                self.queue(s, command, &payload);
            }
            4 => {
                let s = self.slot()?;
                let len = self.byte()? as usize;
                let raw = self.take(len).to_vec();
                self.slots[s].backlog.extend_from_slice(&raw);
                self.slots[s].raw = true;
                self.msgs += 1;
            }
            5 => {
                let s = self.slot()?;
                let nonce = u64::from(self.byte()?) | 0x1_0000;
                if self.ready(s) && !self.slots[s].raw {
                    self.slots[s].pings.push((nonce, 0));
                }
                self.queue_message(s, &Message::Ping(nonce));
            }
            6 => {
                let s = self.slot()?;
                let which = self.byte()?;
                let kind = [1u32, 2, 5, 0x4000_0001, 0x4000_0002, 4, 3, 0][(which >> 2) as usize % 8];
                let count = self.u16()? as usize % 6_001;
                let seed = self.byte()?;
                let mut payload = compact_size(count);
                for i in 0..count as u32 {
                    payload.extend_from_slice(&kind.to_le_bytes());
                    let mut hash = [seed; 32];
                    hash[..4].copy_from_slice(&i.to_le_bytes());
                    payload.extend_from_slice(&hash);
                }
                let command = [Command::Inv, Command::GetData, Command::NotFound][which as usize % 3];
                self.queue(s, command, &payload);
            }
            7 => {
                let s = self.slot()?;
                let v2 = self.byte()? & 1 == 1;
                let count = self.u16()? as usize % 1_002;
                let seed = self.byte()?;
                let now_s = (self.node.world.resource::<Clock>().now_ms / 1000) as u32;
                let mut payload = compact_size(count);
                for i in 0..count as u32 {
                    let ip = [40 + seed % 100, (i >> 8) as u8, i as u8, 1];
                    payload.extend_from_slice(&now_s.wrapping_sub(i * 60).to_le_bytes());
                    if v2 {
                        payload.extend_from_slice(&[9, 1, 4]);
                        payload.extend_from_slice(&ip);
                    } else {
                        payload.extend_from_slice(&9u64.to_le_bytes());
                        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
                        payload.extend_from_slice(&ip);
                    }
                    payload.extend_from_slice(&8333u16.to_be_bytes());
                }
                self.queue(s, if v2 { Command::AddrV2 } else { Command::Addr }, &payload);
            }
            8 => self.tick(),
            9 => {
                let ms = u64::from(self.u16()?) * 100;
                self.node.world.resource_mut::<Clock>().now_ms += ms;
                self.tick();
            }
            10 => {
                let s = self.slot()?;
                let conn = self.slots[s].conn?;
                self.node.world.resource_mut::<Inbox>().0.push(NetEvent::Closed { conn, connect_failed: false });
                self.tick();
                assert!(self.node.peer(conn).is_none(), "peer {} outlived its closed socket", conn.0);
            }
            11 => {
                let s = self.slot()?;
                let conn = self.slots[s].conn?;
                if self.slots[s].stalled {
                    self.slots[s].stalled = false;
                    self.node.resume_reader(conn);
                    self.ticks += 1;
                    self.after_tick();
                } else {
                    self.slots[s].stalled = true;
                    self.node.stall_reader(conn);
                }
            }
            _ => {
                let s = self.slot()?;
                let count = 1 + self.byte()? as usize % 64;
                let fork = self.byte()?;
                let from = fork as usize % (self.chain.len() + 1);
                self.chain.truncate(from);
                for _ in 0..count {
                    let header = mine(self.chain.last(), fork);
                    self.chain.push(header);
                }
                let mut payload = compact_size(self.chain.len() - from);
                for h in &self.chain[from..] {
                    payload.extend_from_slice(&bitcoin::consensus::serialize(h));
                    payload.push(0);
                }
                self.queue(s, Command::Headers, &payload);
            }
        }
        Some(())
    }

    /// Hands the peers' bytes to the world as the shell's readers would, runs one tick, and checks.
    fn tick(&mut self) {
        let recv_max = self.node.world.resource::<Config>().limits.recv_buffer_bytes_max;
        let soft = self.node.world.resource::<Config>().limits.send_queue_bytes_soft;
        // (slot, frames held before the tick, whether the next frame is small), for peers whose
        // decode nothing holds back.
        let mut expect_progress = Vec::new();
        for s in 0..SLOTS {
            let Some(conn) = self.slots[s].conn else { continue };
            let Some(peer) = self.node.peer(conn) else { continue };
            let (held_bytes, front) = {
                let rb = self.node.world.get::<RecvBuffer>(peer).expect("a peer has a receive buffer");
                (rb.bytes, rb.frames.front().map(|f| f.payload.len()))
            };
            let mut frames = self.node.world.get::<RecvBuffer>(peer).map_or(0, |rb| rb.frames.len());
            let mut front = front;
            if !self.node.is_read_paused(conn) && !self.slots[s].dead {
                let slot = &mut self.slots[s];
                let splitter = slot.splitter.get_or_insert_with(|| FrameSplitter::new(NETWORK));
                let mut at = 0;
                let mut given = held_bytes;
                let mut events = Vec::new();
                while at < slot.backlog.len() && given < recv_max {
                    let (used, r) = splitter.push(&slot.backlog[at..]);
                    at += used;
                    match r {
                        Ok(Some(frame)) => {
                            given += frame.held_len();
                            frames += 1;
                            front.get_or_insert(frame.payload.len());
                            events.push(NetEvent::Frame { conn, frame });
                        }
                        Ok(None) => {}
                        Err(error) => {
                            events.push(NetEvent::BadHeader { conn, error });
                            slot.dead = true;
                            slot.refused = DisconnectReason::from_header(error);
                            // What follows a refused header is never read, pings included.
                            slot.pings.clear();
                            at = slot.backlog.len();
                        }
                    }
                }
                slot.backlog.drain(..at);
                self.node.world.resource_mut::<Inbox>().0.extend(events);
            }
            let sq = self.node.world.get::<SendQueue>(peer).map_or(0, SendQueue::bytes);
            let serving =
                self.node.world.get::<ServeQueue>(peer).is_some_and(|q| !q.pending.is_empty() || !q.reads.is_empty());
            if sq <= soft && !serving {
                expect_progress.push((s, frames, front.is_some_and(|f| f <= SMALL_FRAME_BYTES)));
            }
        }
        self.node.tick();
        self.ticks += 1;
        for slot in &mut self.slots {
            let (Some(conn), Some(reason)) = (slot.conn, slot.refused.take()) else { continue };
            assert!(self.node.peer(conn).is_none(), "peer {} outlived a refused header ({reason:?})", conn.0);
        }
        for (s, before, small) in expect_progress {
            let Some(conn) = self.slots[s].conn else { continue };
            let Some(peer) = self.node.peer(conn) else { continue };
            let after = self.node.world.get::<RecvBuffer>(peer).map_or(0, |rb| rb.frames.len());
            if before > 0 && small {
                assert!(
                    after < before,
                    "peer {}: {before} frames held, next one small, none decoded this tick",
                    conn.0
                );
            }
            // A stalled reader's writer holds the pong back: only free ticks count.
            if !self.slots[s].stalled {
                for p in &mut self.slots[s].pings {
                    p.1 += 1;
                }
            }
        }
        self.after_tick();
    }

    /// Checks after any tick: bounds, peers gone when they should be, pings answered.
    fn after_tick(&mut self) {
        check_bounds(&mut self.node.world);
        for s in 0..SLOTS {
            let Some(conn) = self.slots[s].conn else { continue };
            let sent = self.node.sent_to(conn);
            let slot = &mut self.slots[s];
            for m in sent {
                if let Message::Pong(n) = m {
                    if let Some(i) = slot.pings.iter().position(|p| p.0 == n) {
                        slot.pings.remove(i);
                    }
                }
            }
            if let Some(reason) = self.node.closed_reason(conn) {
                assert!(self.node.peer(conn).is_none(), "peer {} closed ({reason:?}) but still in the world", conn.0);
                *slot = Slot::default();
                continue;
            }
            if let Some(p) = slot.pings.iter().find(|p| p.1 > PING_TICKS_MAX) {
                panic!("peer {}: ping {} unanswered after {} ticks free to decode", conn.0, p.0, p.1);
            }
        }
    }

    fn pending(&self) -> bool {
        self.slots.iter().any(|s| s.conn.is_some() && (!s.pings.is_empty() || (!s.backlog.is_empty() && !s.dead)))
    }
}

fn compact_size(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    oni_systems::wire::reader::write_compact_size(&mut out, n as u64);
    out
}

/// A regtest header on `prev` (genesis when `None`) with valid proof of work; `salt` makes
/// branches differ.
fn mine(prev: Option<&Header>, salt: u8) -> Header {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let parent = prev.copied().unwrap_or(genesis);
    let mut h = Header {
        version: BlockVersion::from_consensus(0x2000_0000),
        prev_blockhash: prev.map_or(genesis.block_hash(), Header::block_hash),
        merkle_root: TxMerkleNode::from_byte_array([salt; 32]),
        time: parent.time + 1,
        bits: CompactTarget::from_consensus(0x207f_ffff),
        nonce: 0,
    };
    while h.validate_pow(h.target()).is_err() {
        h.nonce += 1;
    }
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&config_byte, input)) = data.split_first() else { return };
    let mut config = Config::new(NETWORK);
    if config_byte & 1 != 0 {
        // Small bounds, so a few messages cross them.
        config.limits = Limits {
            decode_msgs_per_tick: 8,
            decode_bytes_per_tick: 64 * 1024,
            recv_buffer_bytes_max: 4 * 1024,
            send_queue_bytes_soft: 2 * 1024,
            send_queue_bytes_hard: 64 * 1024,
            writer_window_bytes: 1024,
            send_bytes_total_max: 128 * 1024,
            ..Limits::default()
        };
    }
    let mut node = TestNode::new(config, u64::from(config_byte >> 4));
    node.set_time_s(START_S);
    if config_byte & 2 != 0 {
        node.world.resource_mut::<Ibd>().active = false;
    }
    if config_byte & 4 != 0 {
        let mut sync = node.world.resource_mut::<SyncConfig>();
        sync.serve_queue_max = 8;
        sync.serve_reads_max = 2;
    }
    let mut d = Driver { node, slots: Default::default(), input, msgs: 0, ticks: 0, generation: 0, chain: Vec::new() };
    while d.msgs < MSGS_MAX && d.ticks < TICKS_MAX && !d.input.is_empty() {
        let _ = d.step();
    }
    d.tick();
    let mut drained = 0;
    while d.pending() && drained < DRAIN_TICKS_MAX {
        d.tick();
        drained += 1;
    }
});
