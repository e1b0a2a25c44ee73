//! A node with no IO, driven by domain verbs: `connect`, `receive`, `elapse`, `sent_to`. The
//! core's unit tests, the benches and the world fuzz target use it (the scenario simulators build
//! their worlds with [`crate::schedule::build_world`] and carry the IO themselves); the writer is
//! modelled as instant unless a peer is stalled, and blocks are judged by an
//! [`InstantValidator`].

use crate::chain::{BlockReadInbox, BlockReads, ChainParams, InstantValidator, ValidationInbox, ValidationQueue};
use crate::components::{ConnId, Direction, PeerState};
use crate::resources::{Clock, Config, ConnIndex, DisconnectReason, Inbox, IoCarrier, Metrics, NetEvent, Outbox};
use crate::schedule::{build_schedule, build_world, WorldSettings};
use crate::wire::{FrameSplitter, Message, NetAddr, Version, HEADER_LEN};
use ahash::{AHashMap, AHashSet};
use bevy_ecs::prelude::*;
use std::net::SocketAddr;

/// The shell a test node has: every frame written at once (unless the test stalled the
/// connection), everything the world asked for kept for the test to read.
#[derive(Default)]
struct InstantShell {
    sent: AHashMap<ConnId, Vec<u8>>,
    closed: AHashMap<ConnId, DisconnectReason>,
    stalled: AHashSet<ConnId>,
    unwritten: AHashMap<ConnId, usize>,
    paused: AHashSet<ConnId>,
    dials: Vec<(SocketAddr, Direction)>,
    v2_dials: Vec<SocketAddr>,
    /// `Written` events for the next tick.
    written: Vec<NetEvent>,
}

impl IoCarrier for InstantShell {
    fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if !self.stalled.contains(&conn) {
            self.written.push(NetEvent::Written { conn, bytes: bytes.len() });
        } else {
            *self.unwritten.entry(conn).or_default() += bytes.len();
        }
        self.sent.entry(conn).or_default().extend_from_slice(&bytes);
    }

    fn close(&mut self, conn: ConnId, reason: DisconnectReason) {
        self.closed.insert(conn, reason);
    }

    fn set_paused(&mut self, conn: ConnId, paused: bool) {
        if paused {
            self.paused.insert(conn);
        } else {
            self.paused.remove(&conn);
        }
    }

    // Frames here are handed over whole and at once: no reader to give credit to.
    fn consumed(&mut self, _: ConnId, _: usize) {}

    fn recv_limit(&mut self, _: ConnId, _: usize) {}

    fn connect(&mut self, addr: SocketAddr, direction: Direction, v2: bool) {
        self.dials.push((addr, direction));
        if v2 {
            self.v2_dials.push(addr);
        }
    }
}

/// A world, its schedule, and what it sent to each connection.
pub struct TestNode {
    /// The world (inspect components and resources directly).
    pub world: World,
    schedule: Schedule,
    next_conn: u64,
    shell: InstantShell,
    /// The validator and block store the shell would run: instant, in chain order.
    pub validator: InstantValidator,
}

impl TestNode {
    /// A node with `config`, its clock at `start_ms`, rng from `seed`.
    pub fn new(config: Config, seed: u64) -> Self {
        let world = build_world(WorldSettings { start_ms: 1_700_000_000_000, ..WorldSettings::new(config, seed) });
        let genesis = world.resource::<ChainParams>().genesis.block_hash();
        TestNode {
            world,
            schedule: build_schedule(),
            next_conn: 1,
            shell: InstantShell::default(),
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
    /// payloads no [`Message`](enum@Message) encodes: malformed, short, or with bytes after the
    /// message.
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

    /// The shell reports an event about `conn` (a settled transport, a v2 failure...) and ticks.
    pub fn report(&mut self, e: NetEvent) {
        self.event(e);
        self.tick();
    }

    /// The peer's socket closes.
    pub fn close(&mut self, conn: ConnId) {
        self.event(NetEvent::Closed { conn, connect_failed: false });
        self.tick();
    }

    /// The peer stops reading: frames handed to its writer are never reported written.
    pub fn stall_reader(&mut self, conn: ConnId) {
        self.shell.stalled.insert(conn);
    }

    /// The stalled peer reads again: everything handed to its writer is written, and it ticks.
    pub fn resume_reader(&mut self, conn: ConnId) {
        self.shell.stalled.remove(&conn);
        if let Some(bytes) = self.shell.unwritten.remove(&conn) {
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
        Outbox::carry_out(&mut self.world, &mut self.shell);
        let written = std::mem::take(&mut self.shell.written);
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
        let bytes = self.shell.sent.remove(&conn).unwrap_or_default();
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
        self.shell.sent.get(&conn).map_or(0, Vec::len)
    }

    /// Why `conn` was closed, if it was.
    pub fn closed_reason(&self, conn: ConnId) -> Option<DisconnectReason> {
        self.shell.closed.get(&conn).copied()
    }

    /// Whether the node asked to stop reading `conn`.
    pub fn is_read_paused(&self, conn: ConnId) -> bool {
        self.shell.paused.contains(&conn)
    }

    /// Every address the node asked to dial with BIP324 v2 first.
    pub fn v2_dials(&self) -> &[SocketAddr] {
        &self.shell.v2_dials
    }

    /// Outbound dials the node asked for and nobody answered yet.
    pub fn dials(&self) -> &[(SocketAddr, Direction)] {
        &self.shell.dials
    }

    /// Forgets the pending dials (the test answered them itself).
    pub fn take_dials(&mut self) -> Vec<(SocketAddr, Direction)> {
        std::mem::take(&mut self.shell.dials)
    }

    /// Answers every pending dial: each socket connects, and the peer completes the handshake
    /// offering `services`. Returns the new connections.
    pub fn complete_dials(&mut self, services: u64) -> Vec<(ConnId, SocketAddr, Direction)> {
        let dials = std::mem::take(&mut self.shell.dials);
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

    /// Asserts the memory table's bounds and the indexes they count from ([`check_bounds`]).
    pub fn check_bounds(&mut self) {
        check_bounds(&mut self.world);
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

/// Asserts every per-peer and node-wide bound of the memory table (benches/REPORT-memory.md) that
/// lives in the world, as it must hold after any tick, and the consistency of the indexes the
/// bounds are counted from; panics naming the bound that does not hold. For unit tests and the
/// `world` fuzz target (which calls it after every tick of arbitrary peer input).
#[doc(hidden)]
pub fn check_bounds(world: &mut World) {
    use crate::chain::{PeerBlocks, ServeQueue, SyncConfig};
    use crate::components::{Disconnect, Received, RecvBuffer, SendQueue, Socket, TxInventory};
    use crate::mempool::intake::{TxIntake, TX_INTAKE_BYTES_MAX, TX_INTAKE_MAX};
    use crate::mempool::orphanage::Orphanage;
    use crate::resources::banlist::{AUTOMATIC_BANS_MAX, DISCOURAGED_MAX};
    use crate::resources::tx_requests::{TxRequests, MAX_PEER_ANNOUNCEMENTS, MAX_PEER_IN_FLIGHT};
    use crate::resources::{BanList, BanReason};
    use crate::systems::{GETDATA_QUEUE_MAX, TO_SEND_MAX};
    use crate::wire::{MAX_ADDR_ENTRIES, MAX_PAYLOAD_BYTES};

    let limits = world.resource::<Config>().limits.clone();
    let sync = world.resource::<SyncConfig>().clone();
    let mut peers = world.query::<(
        Entity,
        &Socket,
        &SendQueue,
        &RecvBuffer,
        &Received,
        &TxInventory,
        &crate::components::AddrRelay,
        Option<&ServeQueue>,
        Option<&PeerBlocks>,
        Has<Disconnect>,
    )>();
    let index = &world.resource::<ConnIndex>().0;
    let requests = world.resource::<TxRequests>();
    let mut held_total = 0usize;
    let mut count = 0usize;
    for (e, socket, sq, rb, received, inv, addr, serve, blocks, marked) in peers.iter(world) {
        let conn = socket.conn.0;
        count += 1;
        assert!(!marked, "peer {conn}: marked for disconnect but not torn down");
        assert_eq!(index.get(&socket.conn), Some(&e), "peer {conn}: not in the connection index");
        // Send: egress drops a peer over its hard bound; the writer takes frames while under its window.
        assert!(
            sq.bytes() <= limits.send_queue_bytes_hard,
            "peer {conn}: send queue {} over the hard bound {}",
            sq.bytes(),
            limits.send_queue_bytes_hard
        );
        let frame_max = MAX_PAYLOAD_BYTES as usize + HEADER_LEN;
        assert!(
            sq.in_writer_bytes < limits.writer_window_bytes + frame_max,
            "peer {conn}: {} bytes handed to the writer, window {}",
            sq.in_writer_bytes,
            limits.writer_window_bytes
        );
        held_total += sq.bytes() + sq.in_writer_bytes;
        // Receive: the buffer counts what it holds, and over its bound the reader is paused.
        let held: usize = rb.frames.iter().map(|f| f.held_len()).sum();
        assert_eq!(rb.bytes, held, "peer {conn}: receive buffer counts {} bytes, holds {held}", rb.bytes);
        assert!(
            rb.bytes <= limits.recv_buffer_bytes_max || rb.paused,
            "peer {conn}: receive buffer {} over {} and reading not paused",
            rb.bytes,
            limits.recv_buffer_bytes_max
        );
        assert!(received.0.is_empty(), "peer {conn}: {} decoded messages outlived the tick", received.0.len());
        // Per-peer queues of the world.
        assert!(
            inv.getdata.len() <= GETDATA_QUEUE_MAX,
            "peer {conn}: tx getdata queue {} over {GETDATA_QUEUE_MAX}",
            inv.getdata.len()
        );
        assert!(
            inv.to_send.len() <= 2 * TO_SEND_MAX,
            "peer {conn}: announcement queue {} over {}",
            inv.to_send.len(),
            2 * TO_SEND_MAX
        );
        assert!(
            addr.queued.len() <= MAX_ADDR_ENTRIES,
            "peer {conn}: address relay queue {} over {MAX_ADDR_ENTRIES}",
            addr.queued.len()
        );
        if let Some(s) = serve {
            assert!(
                s.pending.len() <= sync.serve_queue_max,
                "peer {conn}: block getdata queue {} over {}",
                s.pending.len(),
                sync.serve_queue_max
            );
            assert!(
                s.reads.len() <= sync.serve_reads_max,
                "peer {conn}: {} block reads out, at most {}",
                s.reads.len(),
                sync.serve_reads_max
            );
            assert!(
                s.txn_requests() <= ServeQueue::TXN_REQUESTS_MAX,
                "peer {conn}: {} getblocktxn waiting, at most {}",
                s.txn_requests(),
                ServeQueue::TXN_REQUESTS_MAX
            );
        }
        if let Some(b) = blocks {
            assert!(
                b.in_flight.len() <= sync.max_in_flight_per_peer,
                "peer {conn}: {} blocks in flight, at most {}",
                b.in_flight.len(),
                sync.max_in_flight_per_peer
            );
        }
        assert!(
            requests.announced_by(e) <= MAX_PEER_ANNOUNCEMENTS,
            "peer {conn}: {} tx announcements tracked, at most {MAX_PEER_ANNOUNCEMENTS}",
            requests.announced_by(e)
        );
        let cap = if requests.in_flight_cap == 0 { MAX_PEER_IN_FLIGHT } else { requests.in_flight_cap };
        assert!(
            requests.in_flight(e) <= cap.max(MAX_PEER_IN_FLIGHT),
            "peer {conn}: {} tx requests in flight, at most {cap}",
            requests.in_flight(e)
        );
    }
    assert_eq!(index.len(), count, "connection index has {} entries for {count} peers", index.len());
    assert!(
        held_total <= limits.send_bytes_total_max,
        "all send queues hold {held_total}, node-wide bound {}",
        limits.send_bytes_total_max
    );
    // Node-wide structures.
    let intake = world.resource::<TxIntake>();
    assert!(intake.len() <= TX_INTAKE_MAX, "tx check queue {} over {TX_INTAKE_MAX}", intake.len());
    assert!(
        intake.bytes() <= TX_INTAKE_BYTES_MAX,
        "tx check queue {} bytes over {TX_INTAKE_BYTES_MAX}",
        intake.bytes()
    );
    let compact = world.resource::<crate::chain::CompactRelay>();
    assert!(
        compact.hb_to.len() <= crate::chain::compact_relay::HB_PEERS_MAX,
        "{} high-bandwidth compact block peers",
        compact.hb_to.len()
    );
    let orphans = world.resource::<Orphanage>();
    assert!(
        orphans.total_weight() <= orphans.max_total_weight(),
        "orphanage weight {} over {}",
        orphans.total_weight(),
        orphans.max_total_weight()
    );
    assert!(
        orphans.latency_score() <= orphans.limits().max_latency_score,
        "orphanage latency score {} over {}",
        orphans.latency_score(),
        orphans.limits().max_latency_score
    );
    let bans = world.resource::<BanList>();
    assert!(bans.discouraged_len() <= DISCOURAGED_MAX, "{} addresses discouraged", bans.discouraged_len());
    let automatic = bans.bans().filter(|(_, b)| b.reason == BanReason::Escalated).count();
    assert!(automatic <= AUTOMATIC_BANS_MAX, "{automatic} automatic bans");
}
