//! A node with no IO, driven by domain verbs: `connect`, `receive`, `elapse`, `sent_to`. Unit tests,
//! benches and the simulator use it; the writer is modelled as instant unless a peer is stalled.

use crate::chain::{BlockReadInbox, BlockReads, ChainParams, InstantValidator, ValidationInbox, ValidationQueue};
use crate::components::{ConnId, Direction, PeerState};
use crate::resources::{Clock, Config, ConnIndex, DisconnectReason, Inbox, IoCommand, Metrics, NetEvent, Outbox};
use crate::schedule::{build_schedule, build_world};
use crate::wire::{FrameSplitter, Message, NetAddr, Version, HEADER_LEN};
use ahash::{AHashMap, AHashSet};
use bevy_ecs::prelude::*;
use std::net::SocketAddr;

/// A world, its schedule, and what it sent to each connection.
pub struct TestNode {
    /// The world (inspect components and resources directly).
    pub world: World,
    schedule: Schedule,
    next_conn: u64,
    sent: AHashMap<ConnId, Vec<u8>>,
    closed: AHashMap<ConnId, DisconnectReason>,
    stalled: AHashSet<ConnId>,
    unwritten: ahash::AHashMap<ConnId, usize>,
    paused: AHashSet<ConnId>,
    dials: Vec<(SocketAddr, Direction)>,
    /// The validator and block store the shell would run: instant, in chain order.
    pub validator: InstantValidator,
}

impl TestNode {
    /// A node with `config`, its clock at `start_ms`, rng from `seed`.
    pub fn new(config: Config, seed: u64) -> Self {
        let mut world = build_world(config, seed);
        world.resource_mut::<Clock>().now_ms = 1_700_000_000_000;
        let genesis = world.resource::<ChainParams>().genesis.block_hash();
        TestNode {
            world,
            schedule: build_schedule(),
            next_conn: 1,
            sent: AHashMap::new(),
            closed: AHashMap::new(),
            stalled: AHashSet::new(),
            unwritten: ahash::AHashMap::new(),
            paused: AHashSet::new(),
            dials: Vec::new(),
            validator: InstantValidator::new(genesis),
        }
    }

    /// A regtest node with default limits.
    pub fn regtest() -> Self {
        Self::new(Config::new(crate::wire::Network::Regtest), 7)
    }

    fn event(&mut self, e: NetEvent) {
        self.world.resource_mut::<Inbox>().0.push(e);
    }

    /// A peer connects to us from `addr`.
    pub fn connect_inbound(&mut self, addr: &str) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let addr = addr.parse().unwrap_or_else(|_| panic!("bad test address {addr}"));
        self.event(NetEvent::Connected { conn, addr, local: None, direction: Direction::Inbound });
        self.tick();
        conn
    }

    /// We dial `addr` and it answers.
    pub fn connect_outbound(&mut self, addr: &str, direction: Direction) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let addr = addr.parse().unwrap_or_else(|_| panic!("bad test address {addr}"));
        self.event(NetEvent::Dialing { conn, addr, direction });
        self.event(NetEvent::Connected { conn, addr, local: None, direction });
        self.tick();
        conn
    }

    /// The peer sends `msg` (through the real codec and frame splitter).
    pub fn receive(&mut self, conn: ConnId, msg: &Message) {
        let network = self.world.resource::<Config>().network;
        let mut bytes = Vec::new();
        msg.encode_frame(network, &mut bytes);
        self.receive_bytes(conn, &bytes);
    }

    /// The peer sends a frame of `command` carrying `payload` as given (right checksum), for
    /// payloads no [`Message`] encodes: malformed, short, or with bytes after the message.
    pub fn receive_payload(&mut self, conn: ConnId, command: crate::wire::Command, payload: &[u8]) {
        let network = self.world.resource::<Config>().network;
        let mut bytes = Vec::new();
        crate::wire::encode_frame_with(network, command, &mut bytes, |o| o.extend_from_slice(payload));
        self.receive_bytes(conn, &bytes);
    }

    /// The peer sends raw bytes; they are framed like the shell's reader frames them.
    pub fn receive_bytes(&mut self, conn: ConnId, mut bytes: &[u8]) {
        let network = self.world.resource::<Config>().network;
        let mut splitter = FrameSplitter::new(network);
        while !bytes.is_empty() {
            let (used, r) = splitter.push(bytes);
            bytes = &bytes[used..];
            match r {
                Ok(Some(frame)) => self.event(NetEvent::Frame { conn, frame }),
                Ok(None) => {}
                Err(error) => {
                    self.event(NetEvent::BadHeader { conn, error });
                    break;
                }
            }
        }
        self.tick();
    }

    /// The peer's socket closes.
    pub fn close(&mut self, conn: ConnId) {
        self.event(NetEvent::Closed { conn, connect_failed: false });
        self.tick();
    }

    /// The peer stops reading: frames handed to its writer are never reported written.
    pub fn stall_reader(&mut self, conn: ConnId) {
        self.stalled.insert(conn);
    }

    /// The stalled peer reads again: everything handed to its writer is written, and it ticks.
    pub fn resume_reader(&mut self, conn: ConnId) {
        self.stalled.remove(&conn);
        if let Some(bytes) = self.unwritten.remove(&conn) {
            self.event(NetEvent::Written { conn, bytes });
        }
        self.tick();
    }

    /// Advances the clock by `ms` and ticks.
    pub fn elapse(&mut self, ms: u64) {
        self.world.resource_mut::<Clock>().now_ms += ms;
        self.tick();
    }

    /// Runs the schedule once and carries out its IO commands like an instant shell.
    pub fn tick(&mut self) {
        self.schedule.run(&mut self.world);
        // As the node's world loop: removal messages live two ticks, not for good.
        self.world.clear_trackers();
        let cmds = std::mem::take(&mut self.world.resource_mut::<Outbox>().0);
        let mut written = Vec::new();
        for c in cmds {
            match c {
                IoCommand::Send { conn, bytes } => {
                    if !self.stalled.contains(&conn) {
                        written.push(NetEvent::Written { conn, bytes: bytes.len() });
                    } else {
                        *self.unwritten.entry(conn).or_default() += bytes.len();
                    }
                    self.sent.entry(conn).or_default().extend_from_slice(&bytes);
                }
                IoCommand::Close { conn, reason } => {
                    self.closed.insert(conn, reason);
                }
                IoCommand::PauseRead { conn } => {
                    self.paused.insert(conn);
                }
                IoCommand::ResumeRead { conn } => {
                    self.paused.remove(&conn);
                }
                // Frames here are handed over whole and at once: no reader to give credit to.
                IoCommand::Consumed { .. } | IoCommand::RecvLimit { .. } => {}
                IoCommand::Connect { addr, direction } => self.dials.push((addr, direction)),
            }
        }
        self.world.resource_mut::<Inbox>().0.extend(written);
        self.world.resource_scope(|world, mut queue: Mut<ValidationQueue>| {
            let mut inbox = world.resource_mut::<ValidationInbox>();
            self.validator.run(&mut queue, &mut inbox);
        });
        self.world.resource_scope(|world, mut reads: Mut<BlockReads>| {
            let mut inbox = world.resource_mut::<BlockReadInbox>();
            self.validator.serve(&mut reads, &mut inbox);
        });
    }

    /// Sets the clock to `unix_s` (e.g. just after a fixture chain's tip) without ticking.
    pub fn set_time_s(&mut self, unix_s: i64) {
        self.world.resource_mut::<Clock>().now_ms = unix_s as u64 * 1000;
    }

    /// Messages the node sent to `conn` since the last call, decoded.
    pub fn sent_to(&mut self, conn: ConnId) -> Vec<Message> {
        let network = self.world.resource::<Config>().network;
        let bytes = self.sent.remove(&conn).unwrap_or_default();
        let mut out = Vec::new();
        let mut splitter = FrameSplitter::new(network);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (used, r) = splitter.push(rest);
            rest = &rest[used..];
            match r {
                Ok(Some(f)) => {
                    if let Ok(Some(m)) = Message::decode(f.header.command, &f.payload) {
                        out.push(m);
                    }
                }
                Ok(None) => {}
                Err(e) => panic!("node sent a bad frame: {e:?}"),
            }
        }
        out
    }

    /// Raw bytes sent to `conn` and not yet read by `sent_to`.
    pub fn sent_bytes(&self, conn: ConnId) -> usize {
        self.sent.get(&conn).map_or(0, Vec::len)
    }

    /// Why `conn` was closed, if it was.
    pub fn closed_reason(&self, conn: ConnId) -> Option<DisconnectReason> {
        self.closed.get(&conn).copied()
    }

    /// Whether the node asked to stop reading `conn`.
    pub fn is_read_paused(&self, conn: ConnId) -> bool {
        self.paused.contains(&conn)
    }

    /// Outbound dials the node asked for and nobody answered yet.
    pub fn dials(&self) -> &[(SocketAddr, Direction)] {
        &self.dials
    }

    /// Answers every pending dial: each socket connects, and the peer completes the handshake
    /// offering `services`. Returns the new connections.
    pub fn complete_dials(&mut self, services: u64) -> Vec<(ConnId, SocketAddr, Direction)> {
        let dials = std::mem::take(&mut self.dials);
        let mut out = Vec::new();
        for (addr, direction) in dials {
            let conn = ConnId(self.next_conn);
            self.next_conn += 1;
            self.event(NetEvent::Dialing { conn, addr, direction });
            self.event(NetEvent::Connected { conn, addr, local: None, direction });
            self.tick();
            let Message::Version(mut v) = Self::peer_version(0xbeef ^ conn.0) else { unreachable!() };
            v.services = services;
            self.receive(conn, &Message::Version(v));
            self.receive(conn, &Message::Verack);
            self.sent_to(conn);
            out.push((conn, addr, direction));
        }
        out
    }

    /// A resource, mutably (policy, ban list, address book...).
    pub fn resource_mut<R: Resource + Component<Mutability = bevy_ecs::component::Mutable>>(&mut self) -> Mut<'_, R> {
        self.world.resource_mut::<R>()
    }

    /// The peer entity of `conn`, while it exists.
    pub fn peer(&self, conn: ConnId) -> Option<Entity> {
        self.world.resource::<ConnIndex>().0.get(&conn).copied()
    }

    /// A component of `conn`'s entity.
    pub fn get<C: Component>(&self, conn: ConnId) -> Option<&C> {
        self.world.get::<C>(self.peer(conn)?)
    }

    /// The peer's lifecycle state.
    pub fn state(&self, conn: ConnId) -> Option<PeerState> {
        self.get::<PeerState>(conn).copied()
    }

    /// Node-wide metrics.
    pub fn metrics(&self) -> &Metrics {
        self.world.resource::<Metrics>()
    }

    /// A modern peer's version message (what Core 30 sends, give or take).
    pub fn peer_version(nonce: u64) -> Message {
        Message::Version(Version {
            version: 70016,
            services: crate::wire::services::NODE_NETWORK | crate::wire::services::NODE_WITNESS,
            timestamp: 1_700_000_000,
            receiver: NetAddr::default(),
            sender: NetAddr::default(),
            nonce,
            user_agent: b"/Satoshi:30.0.0/".as_slice().into(),
            start_height: 100,
            relay: true,
        })
    }

    /// Connects an inbound peer and completes the modern handshake; clears what it was sent.
    pub fn ready_inbound(&mut self, addr: &str) -> ConnId {
        let conn = self.connect_inbound(addr);
        self.receive(conn, &Self::peer_version(0xfeed ^ conn.0));
        self.receive(conn, &Message::WtxidRelay);
        self.receive(conn, &Message::SendAddrV2);
        self.receive(conn, &Message::Verack);
        self.sent_to(conn);
        conn
    }
}

/// Bytes of one frame header, re-exported for tests that count.
pub const FRAME_HEADER_BYTES: usize = HEADER_LEN;
