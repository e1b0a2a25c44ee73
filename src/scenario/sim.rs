//! The sim mode: the node's own world and schedule on a virtual clock, bots joined to it by
//! in-memory byte pipes. Bot bytes reach the node through a [`FrameSplitter`](oni_systems::wire::FrameSplitter) exactly as the tokio
//! reader frames them; the node's `Send` bytes reach the bot through the same splitter and
//! `Message::decode`. Nothing here reads the wall clock, so a seed replays the run bit for bit.
//!
//! One tick, at virtual time `t`: deliver node→bot bytes that are due (bots react), tick every bot,
//! let the node's reader take due bot→node bytes (pausing as told), run the schedule, carry out its
//! IO commands, move written bytes onto the wire (instantly or at the modelled bandwidth, acked with
//! `Written`), sample the peaks.

use super::bots::{self, Behaviour, BotIo, Honest};
use super::host::{BotHost, Instance};
use super::link::{BotV2, Delivery, Link};
use super::outcome::{ChainFigures, EndState, Outcome, TxFigures};
use super::spec::{instance_addr, BotKind, ChainStart, NetModel, PeerSpec, Scenario};
use super::trace::{tag, Closed, ConnRecord, TraceHash};
use bevy_ecs::prelude::*;
use oni_systems::chain::{BlockReadInbox, BlockReads, ChainParams, InstantValidator, ValidationInbox, ValidationQueue};
use oni_systems::components::{ConnId, Direction, RecvBuffer, SendQueue};
use oni_systems::mempool::orphanage::Orphanage;
use oni_systems::mempool::pool::Mempool;
use oni_systems::resources::{Clock, Config, ConnIndex, DisconnectReason, Inbox, IoCarrier, NetEvent, Outbox};
use oni_systems::schedule::{build_schedule, build_world, WorldSettings};
use oni_systems::wire::v2::transport::V2Session;
use oni_systems::wire::{Command, Network};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

/// Virtual time zero on the node's clock (unix ms): January 2027, after the regtest fixture chain's
/// blocks (November 2026), so the node does not refuse their headers as from the future.
pub const EPOCH_MS: u64 = 1_800_000_000_000;
/// The label honest instances carry.
pub const HONEST: &str = "Honest";

/// The simulator.
pub struct Sim {
    world: World,
    schedule: Schedule,
    /// Validates and stores blocks instantly, as the harness does (the shell would run the kernel).
    validator: InstantValidator,
    network: Network,
    net: NetModel,
    now_ms: u64,
    end_ms: u64,
    ticks: u64,
    instances: Vec<Instance>,
    links: BTreeMap<u64, Link>,
    conns: Vec<ConnRecord>,
    peer_query: QueryState<(&'static SendQueue, &'static RecvBuffer)>,
    hash: TraceHash,
    peak_peers: u64,
    peak_send_bytes: u64,
    peak_recv_bytes: u64,
    peak_reader_bytes: u64,
    peak_tx_tracked: u64,
    tx: TxFigures,
    node_bad_frames: u64,
    dials: u64,
}

/// What a bot callback asked for, taken out of its [`BotIo`].
pub(crate) struct Actions {
    out: Vec<u8>,
    frames: u32,
    connect: bool,
    close: bool,
}

impl Sim {
    /// A simulator for `scenario`: the node's world with its limits, and every instance, not started.
    pub fn new(scenario: &Scenario) -> Self {
        let network = Network::Regtest;
        let mut config = Config::new(network);
        config.limits = scenario.node.clone();
        config.relay = scenario.relay;
        // BIP324 only when the scenario asks (the live runner's node does the same).
        if !scenario.v2transport {
            config.services &= !oni_systems::wire::services::NODE_P2P_V2;
        }
        let mut settings = WorldSettings::new(config, scenario.seed);
        settings.score_threshold = scenario.score_threshold;
        settings.minimum_chain_work = scenario.min_chain_work_blocks.map(regtest_work);
        if let Some(ms) = scenario.stalling_timeout_ms {
            settings.sync.stalling_timeout_min_ms = ms;
        }
        // A node that relays transactions is at the tip: out of initial block download.
        settings.out_of_ibd = scenario.relay;
        settings.start_ms = EPOCH_MS;
        settings.orphans = scenario.orphanage.limits();
        let mut world = build_world(settings);
        if scenario.chain == ChainStart::Fixture {
            // Checked by the scenario's validation; a failure here leaves the node at genesis, which
            // every transaction expectation then shows.
            if let Err(e) = super::fixture_chain::load(&mut world, (EPOCH_MS / 1_000) as i64) {
                tracing::error!(%e, "the fixture chain did not load");
            }
        }
        let peer_query = world.query::<(&SendQueue, &RecvBuffer)>();
        let mut sim = Sim {
            world,
            schedule: build_schedule(),
            validator: InstantValidator::new(ChainParams::for_network(network).genesis.block_hash()),
            network,
            net: scenario.net.clone(),
            now_ms: 0,
            end_ms: scenario.duration_s * 1_000,
            ticks: 0,
            instances: Vec::new(),
            links: BTreeMap::new(),
            conns: Vec::new(),
            peer_query,
            hash: TraceHash::default(),
            peak_peers: 0,
            peak_send_bytes: 0,
            peak_recv_bytes: 0,
            peak_reader_bytes: 0,
            peak_tx_tracked: 0,
            tx: TxFigures::default(),
            node_bad_frames: 0,
            dials: 0,
        };
        sim.instances = spawn_instances(scenario);
        sim
    }

    /// Runs to the end and hands back what happened.
    pub fn run(mut self) -> Outcome {
        while self.now_ms <= self.end_ms {
            self.step();
        }
        self.finish()
    }

    /// One tick at the current virtual time, then the clock advances by `tick_ms`.
    pub fn step(&mut self) {
        let now = self.now_ms;
        self.world.resource_mut::<Clock>().now_ms = EPOCH_MS + now;
        self.deliver_to_bots(now);
        self.tick_bots(now);
        self.read_into_node(now);
        self.schedule.run(&mut self.world);
        // As the node's world loop: removal messages live two ticks, not for good.
        self.world.clear_trackers();
        self.ticks += 1;
        self.carry_out_commands(now);
        self.validate();
        self.write_to_bots(now);
        self.sample();
        self.links.retain(|_, l| !l.finished());
        self.now_ms += self.net.tick_ms;
    }

    fn deliver_to_bots(&mut self, now: u64) {
        let ids: Vec<u64> = self.links.keys().copied().collect();
        for c in ids {
            let Some(link) = self.links.get_mut(&c) else { continue };
            let i = link.instance;
            link.bot_reads = self.instances[i].behaviour.reads();
            let Delivery { msgs, bytes, bad_frames, eof, wire_out } = link.deliver(c, now, &mut self.hash);
            // A v2 bot's handshake answer (and frames it held for it) go back at once.
            link.bot_writes_wire(now + self.net.latency_ms, wire_out);
            self.node_bad_frames += bad_frames;
            let rec = &mut self.conns[c as usize - 1];
            rec.msgs_recv += msgs.len() as u64;
            rec.bytes_recv += bytes;
            if bytes > 0 && self.instances[i].conn == Some(c) {
                let a = self.call(i, now, |b, io| b.on_bytes(bytes, io));
                self.apply(i, now, a);
            }
            self.hand_to_bot(i, c, msgs, eof, now);
        }
    }

    fn tick_bots(&mut self, now: u64) {
        for i in 0..self.instances.len() {
            if now < self.instances[i].start_ms {
                continue;
            }
            let a = self.call(i, now, |b, io| b.tick(io));
            self.apply(i, now, a);
        }
    }

    fn read_into_node(&mut self, now: u64) {
        let budget = self.net.read_bytes_per_tick;
        let mut events = Vec::new();
        for (&c, link) in self.links.iter_mut() {
            link.node_reads(ConnId(c), now, budget, &mut events);
        }
        self.world.resource_mut::<Inbox>().0.extend(events);
    }

    fn carry_out_commands(&mut self, now: u64) {
        let mut carrier = SimCarrier {
            links: &mut self.links,
            conns: &mut self.conns,
            hash: &mut self.hash,
            dials: &mut self.dials,
            now,
        };
        Outbox::carry_out(&mut self.world, &mut carrier);
    }

    /// The validator's turn, as the shell's worker would take it: blocks queued this tick are
    /// validated and block reads answered; the node sees the results next tick.
    fn validate(&mut self) {
        let validator = &mut self.validator;
        self.world.resource_scope(|world, mut queue: Mut<ValidationQueue>| {
            validator.run(&mut queue, &mut world.resource_mut::<ValidationInbox>());
        });
        self.world.resource_scope(|world, mut reads: Mut<BlockReads>| {
            validator.serve(&mut reads, &mut world.resource_mut::<BlockReadInbox>());
        });
    }

    fn write_to_bots(&mut self, now: u64) {
        let budget = match self.net.node_write_bytes_per_s {
            0 => usize::MAX,
            bps => ((bps * self.net.tick_ms) / 1_000).max(1) as usize,
        };
        let mut written = Vec::new();
        for (&c, link) in self.links.iter_mut() {
            let n = link.node_writer_drains(now + self.net.latency_ms, budget);
            if n > 0 {
                written.push(NetEvent::Written { conn: ConnId(c), bytes: n });
            }
        }
        self.world.resource_mut::<Inbox>().0.extend(written);
    }

    fn sample(&mut self) {
        let mut peers = 0u64;
        for (sq, rb) in self.peer_query.iter(&self.world) {
            peers += 1;
            self.peak_send_bytes = self.peak_send_bytes.max((sq.bytes() + sq.in_writer_bytes) as u64);
            self.peak_recv_bytes = self.peak_recv_bytes.max(rb.bytes as u64);
        }
        self.peak_peers = self.peak_peers.max(peers);
        for link in self.links.values() {
            self.peak_reader_bytes = self.peak_reader_bytes.max(link.reader_held() as u64);
        }
        let tracked = self.world.resource::<oni_systems::resources::tx_requests::TxRequests>().len() as u64;
        self.peak_tx_tracked = self.peak_tx_tracked.max(tracked);
        let orphans = self.world.resource::<Orphanage>();
        self.tx.sample(orphans);
        if !orphans.is_empty() {
            let index = &self.world.resource::<ConnIndex>().0;
            let held: u64 = self
                .instances
                .iter()
                .filter(|i| i.label == "TxRelayer")
                .filter_map(|i| index.get(&ConnId(i.conn?)))
                .map(|e| orphans.usage_of(*e).announcements)
                .sum();
            self.tx.peak_relayer_orphans = self.tx.peak_relayer_orphans.max(held);
        }
    }

    fn finish(mut self) -> Outcome {
        for (c, rec) in self.conns.iter().enumerate() {
            self.hash
                .event(tag::RECORD, &[c as u64 + 1, rec.frames_sent, rec.bytes_sent, rec.msgs_recv, rec.bytes_recv]);
        }
        let end = EndState::of(&mut self.world);
        let instances = self.instances.iter().map(Instance::info).collect();
        self.tx.finish(self.world.resource::<Orphanage>(), self.world.resource::<Mempool>());
        let chain = ChainFigures::of(self.world.resource::<oni_systems::chain::HeaderTree>());
        Outcome {
            instances,
            conns: self.conns,
            end_ms: self.now_ms.saturating_sub(self.net.tick_ms),
            ticks: self.ticks,
            peak_peers: self.peak_peers,
            peak_send_bytes: self.peak_send_bytes,
            peak_recv_bytes: self.peak_recv_bytes,
            peak_reader_bytes: Some(self.peak_reader_bytes),
            peak_tx_tracked: self.peak_tx_tracked,
            tx: self.tx,
            chain,
            end,
            node_bad_frames: self.node_bad_frames,
            dials: self.dials,
            trace_hash: self.hash.value(),
            world: self.world,
            live: None,
        }
    }
}

/// The work of `blocks` regtest blocks at its proof-of-work limit (2 each).
pub(crate) fn regtest_work(blocks: u64) -> bitcoin::pow::Work {
    let mut b = [0u8; 32];
    b[16..].copy_from_slice(&(blocks as u128 * 2).to_be_bytes());
    bitcoin::pow::Work::from_be_bytes(b)
}

/// Every instance of `scenario`, not started: seeded rngs, start times with their jitter, addresses.
pub(crate) fn spawn_instances(scenario: &Scenario) -> Vec<Instance> {
    let mut instances: Vec<Instance> = Vec::new();
    let (mut honest_n, mut bot_n) = (0u32, 0u32);
    for spec in &scenario.peers {
        let (count, start_s) = match spec {
            PeerSpec::Honest { count, start_s, .. } | PeerSpec::Bot { count, start_s, .. } => (*count, *start_s),
        };
        let v2 = match spec {
            PeerSpec::Honest { v2, .. } | PeerSpec::Bot { v2, .. } => *v2,
        };
        for k in 0..count {
            let global = instances.len() as u64;
            let mut rng =
                oni_systems::resources::Rng::seeded(scenario.seed ^ (global + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let jitter = if scenario.net.start_jitter_ms > 0 { rng.below(scenario.net.start_jitter_ms) } else { 0 };
            let start_ms = (start_s * 1_000.0).round() as u64 + jitter;
            let (label, ip, behaviour): (&'static str, Ipv4Addr, Box<dyn Behaviour>) = match spec {
                PeerSpec::Honest { ping_interval_ms, .. } => {
                    honest_n += 1;
                    (HONEST, instance_addr(44, honest_n - 1), Box::new(Honest::new(*ping_interval_ms)))
                }
                PeerSpec::Bot { kind, .. } => {
                    bot_n += 1;
                    let ip = match kind {
                        BotKind::NetgroupEclipse { subnet16: [a, b], .. } => {
                            let [_, _, hi, lo] = k.to_be_bytes();
                            Ipv4Addr::new(*a, *b, hi, lo)
                        }
                        _ => instance_addr(60, bot_n - 1),
                    };
                    (kind.name(), ip, bots::spawn(kind))
                }
            };
            let addr = SocketAddr::new(ip.into(), 20_000 + (global % 40_000) as u16);
            instances.push(Instance {
                label,
                addr,
                start_ms,
                behaviour,
                rng,
                conn: None,
                v2,
                max_per_tick: [0; Command::COUNT],
                recv_total: [0; Command::COUNT],
            });
        }
    }
    instances
}

impl super::host::BotHost for Sim {
    type Actions = Actions;

    fn instance_mut(&mut self, i: usize) -> &mut Instance {
        &mut self.instances[i]
    }

    /// Calls one behaviour with a fresh [`BotIo`] and returns what it asked for.
    fn call(&mut self, i: usize, now: u64, f: impl FnOnce(&mut dyn Behaviour, &mut BotIo)) -> Actions {
        let window = self.instances[i]
            .conn
            .and_then(|c| self.links.get(&c))
            .map_or(0, |l| self.net.bot_send_window_bytes.saturating_sub(l.to_node_bytes));
        let inst = &mut self.instances[i];
        let unix_s = ((EPOCH_MS + now) / 1_000) as i64;
        let mut io = BotIo::new(now, unix_s, &mut inst.rng, self.network, inst.conn.is_some(), window);
        f(inst.behaviour.as_mut(), &mut io);
        Actions { out: std::mem::take(&mut io.out), frames: io.frames, connect: io.want_connect, close: io.want_close }
    }

    /// Carries out a callback's actions: bytes, then close, then a new connection (whose
    /// `on_connected` runs at once).
    fn apply(&mut self, i: usize, now: u64, a: Actions) {
        if let Some(c) = self.instances[i].conn {
            if !a.out.is_empty() {
                let rec = &mut self.conns[c as usize - 1];
                rec.frames_sent += a.frames as u64;
                rec.bytes_sent += a.out.len() as u64;
                if let Some(link) = self.links.get_mut(&c) {
                    link.bot_writes(now + self.net.latency_ms, a.out);
                }
            }
            if a.close {
                self.instances[i].conn = None;
                if let Some(link) = self.links.get_mut(&c) {
                    link.bot_closes();
                }
                let rec = &mut self.conns[c as usize - 1];
                if rec.closed.is_none() {
                    rec.closed = Some(Closed::ByBot { at_ms: now });
                }
                self.hash.event(tag::BOT_CLOSE, &[now, c]);
            }
        }
        if a.connect && self.instances[i].conn.is_none() {
            let c = self.conns.len() as u64 + 1;
            self.conns.push(ConnRecord::opened(i, now));
            let mut link = Link::new(i, self.network);
            link.recv_window = self.net.bot_recv_window_bytes;
            link.bot_raw = self.instances[i].behaviour.raw_transport();
            if self.world.resource::<Config>().v2() {
                // As the bridge: a seed now (from the node's own rng: the same seed, the same run),
                // the key only if the peer is not v1.
                let mut rng = self.world.resource_mut::<oni_systems::resources::Rng>();
                let seed: [u8; 32] = super::v2::bytes(&mut rng, 32).try_into().unwrap_or([1; 32]);
                link.node_speaks_v2(V2Session::responder_from_seed(self.network, seed));
            }
            if self.instances[i].v2 {
                let (kex, garbage) = super::v2::keys(&mut self.instances[i].rng);
                let (session, first) = V2Session::initiator(self.network, kex, garbage);
                let (bot, first) = BotV2::initiator(session, first);
                link.bot_speaks_v2(now + self.net.latency_ms, bot, first);
            }
            self.links.insert(c, link);
            self.instances[i].conn = Some(c);
            let addr = self.instances[i].addr;
            self.world.resource_mut::<Inbox>().0.push(NetEvent::Connected {
                conn: ConnId(c),
                addr,
                local: None,
                direction: Direction::Inbound,
            });
            self.hash.event(tag::CONNECT, &[now, c, i as u64]);
            let a = self.call(i, now, |b, io| b.on_connected(io));
            self.apply(i, now, a);
        }
    }
}

/// The node's commands carried out on the simulated links, recorded in the trace.
struct SimCarrier<'a> {
    links: &'a mut BTreeMap<u64, Link>,
    conns: &'a mut Vec<ConnRecord>,
    hash: &'a mut TraceHash,
    dials: &'a mut u64,
    now: u64,
}

impl IoCarrier for SimCarrier<'_> {
    fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if let Some(link) = self.links.get_mut(&conn.0) {
            link.node_writes(&bytes);
        }
    }

    fn close(&mut self, conn: ConnId, reason: DisconnectReason) {
        let Some(link) = self.links.get_mut(&conn.0) else { return };
        if !link.node_closes() {
            return;
        }
        let rec = &mut self.conns[conn.0 as usize - 1];
        if rec.closed.is_none() {
            rec.closed = Some(Closed::ByNode {
                at_ms: self.now,
                reason,
                frames_sent: rec.frames_sent,
                bytes_sent: rec.bytes_sent,
            });
        }
        self.hash.event(tag::NODE_CLOSE, &[self.now, conn.0, reason as u64]);
    }

    fn set_paused(&mut self, conn: ConnId, paused: bool) {
        if let Some(link) = self.links.get_mut(&conn.0) {
            link.paused = paused;
        }
    }

    // Frames here are handed over whole and at once: no reader to give credit to.
    fn consumed(&mut self, _: ConnId, _: usize) {}

    fn recv_limit(&mut self, _: ConnId, _: usize) {}

    // The simulated node dials nobody (its peers are the scenario's); dials are only counted.
    fn connect(&mut self, _: SocketAddr, _: Direction, _: bool) {
        *self.dials += 1;
    }
}
