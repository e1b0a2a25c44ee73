//! The live mode: a real node ([`Node::start`]) on a loopback port, the scenario's bots on real TCP
//! sockets, the wall clock. One runner thread drives every bot with non-blocking std sockets, one
//! pass every `net.tick_ms`: read what the node sent (framed and decoded as a peer would), tick the
//! bots, flush their writes, sample the node.
//!
//! What it measures, and how:
//! - Who closed a connection and why: the wire carries no reason, so the runner adds an observer to
//!   the node's world that logs the peer address and [`Disconnect`] reason of every peer teardown
//!   despawns; a bot connection is matched to the log by its local address (the node's
//!   `Socket.addr`). Time and sent counts of a node close are read when the runner next looks, up to
//!   one runner pass late.
//! - Peaks (peers, per-peer send and receive buffers, tracked transactions): sampled on the world
//!   thread once per runner pass, between node ticks, so a peak inside one node tick can be missed.
//! - The orphanage (peaks, and the orphans TxRelayer connections hold, matched by address) in the
//!   same samples; the pool's transactions and the header tree's heights at the end.
//! - Block scenarios (BlockServer, BlockStall) run the node with a scratch datadir, so Core's engine
//!   validates the blocks (the datadir-less structure checker refuses a block whose parent it has
//!   not seen, and a download around a staller is out of order). `chain: Fixture` puts the fixture's
//!   headers and coins into the world before the first tick; the validator is not told, so a
//!   fixture scenario exchanges transactions, not blocks.
//! - Peak RSS: `/proc/self/status` (VmRSS each pass, VmHWM at the end). It is the whole process's:
//!   node, runner and bots, and in a test binary any test running beside it.
//!
//! What it cannot: replay (no trace hash; timing is the OS's), source addresses (every bot is
//! 127.0.0.1, so netgroup and per-address rules see one peer group, and loopback peers are never
//! discouraged unless the policy says so), "per tick" bounds in the node's sense (they count per
//! runner pass), the modelled network (`latency_ms`, bandwidth and read budget are ignored; the
//! kernel's buffers stand in).

use super::bots::BotIo;
use super::dump::{self, WorldDump};
use super::host::{BotHost, Instance};
use super::outcome::{ChainFigures, EndState, Outcome, TxFigures};
use super::sim::spawn_instances;
use super::spec::{BotKind, ChainStart, Scenario};
use super::trace::{Closed, ConnRecord};
use crate::node::{Node, NodeConfig, NodeHandle};
use bevy_ecs::lifecycle::Remove;
use bevy_ecs::prelude::*;
use oni_systems::components::{Disconnect, RecvBuffer, SendQueue, Socket};
use oni_systems::mempool::orphanage::Orphanage;
use oni_systems::mempool::pool::Mempool;
use oni_systems::resources::tx_requests::TxRequests;
use oni_systems::resources::{Clock, DisconnectReason, ScoreTable};
use oni_systems::wire::v2::transport::V2Session;
use oni_systems::wire::{FrameSplitter, Message, Network};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most bot sockets open at once: a live run is bounded by the machine's file descriptors.
pub const MAX_OPEN_CONNS: usize = 1_000;
/// Bytes read from one socket per pass, so one flooded socket cannot starve the others.
const READ_PER_PASS_BYTES: usize = 1 << 20;
/// Node closes the observer keeps between two passes; beyond it, closes go unattributed.
const CLOSE_LOG_MAX: usize = 100_000;

/// One node close, as the observer saw it.
struct CloseEntry {
    addr: SocketAddr,
    reason: DisconnectReason,
    at_ms: u64,
}

/// Shared between the node's world thread (the observer) and the runner.
type CloseLog = Arc<Mutex<Vec<CloseEntry>>>;

/// One real connection from the bot's side.
struct LiveLink {
    instance: usize,
    stream: TcpStream,
    reader: FrameSplitter,
    reader_failed: bool,
    pending_out: Vec<u8>,
    eof: bool,
    /// A write failed: the node closed it (how a bot that does not read learns of it).
    write_failed: bool,
    /// A v2 bot's session.
    v2: Option<super::link::BotV2>,
    /// A raw v2 abuser: what the node sends is counted, not framed.
    raw: bool,
    packet: Vec<u8>,
}

/// What a bot callback asked for.
pub(crate) struct Actions {
    out: Vec<u8>,
    frames: u32,
    connect: bool,
    close: bool,
}

/// Node-side figures sampled between node ticks.
#[derive(Default)]
struct Sample {
    peers: u64,
    send_bytes: u64,
    recv_bytes: u64,
    tx_tracked: u64,
}

/// The live runner.
struct Live {
    node: NodeHandle,
    node_addr: SocketAddr,
    network: Network,
    window_bytes: usize,
    started: Instant,
    instances: Vec<Instance>,
    links: Vec<Option<LiveLink>>,
    conns: Vec<ConnRecord>,
    /// Each connection's local address (the node's `Socket.addr` for it), by conn id - 1.
    locals: Vec<SocketAddr>,
    /// Links still held (`links` entries that are `Some`).
    open: usize,
    read_buf: Vec<u8>,
    log: CloseLog,
    peak: Sample,
    tx: TxFigures,
    peak_rss_kb: u64,
    node_bad_frames: u64,
    connect_failures: u64,
    passes: u64,
}

/// Runs `scenario` against a real node on 127.0.0.1 for `duration_s` of wall time. Fails only when
/// the node cannot start or stops under the runner.
pub fn run_live(scenario: &Scenario) -> Result<Outcome, String> {
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.config.limits = scenario.node.clone();
    cfg.config.relay = scenario.relay;
    // BIP324 only when the scenario asks, as in the simulator: a v2 responder reads a v1 abuser's
    // first bytes other than `version` as the start of a v2 handshake (Core's behaviour too).
    if !scenario.v2transport {
        cfg.config.services &= !oni_systems::wire::services::NODE_P2P_V2;
    }
    cfg.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    // Without a datadir the node checks blocks with the structure checker, which refuses a block
    // whose parent it has not seen; a download around a staller delivers them out of order. Block
    // scenarios get Core's engine in a scratch directory instead.
    let scratch = if needs_kernel(scenario) { Some(ScratchDir::new()?) } else { None };
    cfg.datadir = scratch.as_ref().map(|d| d.0.clone());
    cfg.dnsseed = false;
    cfg.seed = Some(scenario.seed);
    // Addresses a bot gossips must never be dialed for real.
    cfg.policy.auto_outbound = false;
    let node = Node::start(cfg).map_err(|e| format!("cannot start the node: {e}"))?;
    let result = drive(scenario, node.clone());
    node.shutdown();
    drop(scratch);
    result
}

/// Whether the scenario's bots deliver blocks the node must validate and connect.
fn needs_kernel(scenario: &Scenario) -> bool {
    scenario.peers.iter().any(|p| {
        matches!(p, super::spec::PeerSpec::Bot { kind: BotKind::BlockServer { .. } | BotKind::BlockStall { .. }, .. })
    })
}

/// A directory of its own under the system's temp dir, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> Result<Self, String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("oni-scenario-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn drive(scenario: &Scenario, node: NodeHandle) -> Result<Outcome, String> {
    let node_addr = node.local_addr().ok_or("the node is not listening")?;
    let started = Instant::now();
    let log: CloseLog = Arc::new(Mutex::new(Vec::new()));
    let threshold = scenario.score_threshold;
    let relay = scenario.relay;
    let stalling_ms = scenario.stalling_timeout_ms;
    let min_work = scenario.min_chain_work_blocks.map(super::sim::regtest_work);
    let orphan_limits = scenario.orphanage.limits();
    let fixture = scenario.chain == ChainStart::Fixture;
    let log_w = log.clone();
    node.with_world(move |w| {
        w.insert_resource(Orphanage::new(orphan_limits));
        if fixture {
            let now_s = w.resource::<Clock>().unix_s();
            super::fixture_chain::load(w, now_s)?;
        }
        if let Some(t) = threshold {
            w.resource_mut::<ScoreTable>().threshold = t;
        }
        // A node that relays transactions is at the tip: out of initial block download.
        if relay {
            w.resource_mut::<oni_systems::chain::Ibd>().active = false;
        }
        if let Some(work) = min_work {
            w.resource_mut::<oni_systems::chain::ChainParams>().minimum_chain_work = work;
        }
        if let Some(ms) = stalling_ms {
            w.resource_mut::<oni_systems::chain::SyncConfig>().stalling_timeout_min_ms = ms;
            w.resource_mut::<oni_systems::chain::SyncState>().stalling_timeout_ms = ms;
        }
        w.add_observer(move |ev: On<Remove<Disconnect>>, peers: Query<(&Socket, &Disconnect)>| {
            let Ok((socket, d)) = peers.get(ev.event().entity) else { return };
            let at_ms = started.elapsed().as_millis() as u64;
            if let Ok(mut log) = log_w.lock() {
                if log.len() < CLOSE_LOG_MAX {
                    log.push(CloseEntry { addr: socket.addr, reason: d.reason, at_ms });
                }
            }
        });
        Ok::<(), String>(())
    })
    .map_err(|e| e.to_string())??;
    let mut live = Live {
        node,
        node_addr,
        network: Network::Regtest,
        window_bytes: scenario.net.bot_send_window_bytes,
        started,
        instances: spawn_instances(scenario),
        links: Vec::new(),
        conns: Vec::new(),
        locals: Vec::new(),
        open: 0,
        read_buf: vec![0u8; 64 * 1024],
        log,
        peak: Sample::default(),
        tx: TxFigures::default(),
        peak_rss_kb: 0,
        node_bad_frames: 0,
        connect_failures: 0,
        passes: 0,
    };
    let end_ms = scenario.duration_s * 1_000;
    let tick = Duration::from_millis(scenario.net.tick_ms);
    let mut next = Instant::now();
    loop {
        let now = live.now_ms();
        if now > end_ms {
            break;
        }
        live.pass(now)?;
        next += tick;
        let wait = next.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            next = Instant::now(); // behind: do not try to catch up in a burst
        } else {
            std::thread::sleep(wait);
        }
    }
    live.finish()
}

impl Live {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// One runner pass.
    fn pass(&mut self, now: u64) -> Result<(), String> {
        self.attribute_closes();
        self.read_all(now);
        for i in 0..self.instances.len() {
            if now >= self.instances[i].start_ms {
                let a = self.call(i, now, |b, io| b.tick(io));
                self.apply(i, now, a);
            }
        }
        for link in self.links.iter_mut().flatten() {
            flush(link);
        }
        self.sample()?;
        for l in self.links.iter_mut() {
            if l.as_ref().is_some_and(|l| l.eof && self.instances[l.instance].conn.is_none()) {
                *l = None;
                self.open -= 1;
            }
        }
        self.passes += 1;
        Ok(())
    }

    /// Reads every socket, hands decoded messages to the bots, and tells a bot when its socket ended.
    fn read_all(&mut self, now: u64) {
        let mut buf = std::mem::take(&mut self.read_buf);
        for idx in 0..self.links.len() {
            let Some(link) = self.links[idx].as_mut() else { continue };
            if link.eof {
                continue;
            }
            if !self.instances[link.instance].behaviour.reads() {
                // What the node sends stays in the socket; its close shows when a write fails.
                if link.write_failed {
                    link.eof = true;
                    let i = link.instance;
                    self.hand_to_bot(i, idx as u64 + 1, Vec::new(), true, now);
                }
                continue;
            }
            let mut msgs = Vec::new();
            let mut read = 0usize;
            while read < READ_PER_PASS_BYTES {
                match link.stream.read(&mut buf) {
                    Ok(0) => {
                        link.eof = true;
                        break;
                    }
                    Ok(n) => {
                        read += n;
                        if !link.reader_failed {
                            self.node_bad_frames += decode_into(link, &buf[..n], &mut msgs);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        link.eof = true;
                        break;
                    }
                }
            }
            let (i, eof) = (link.instance, link.eof);
            let rec = &mut self.conns[idx];
            rec.msgs_recv += msgs.len() as u64;
            rec.bytes_recv += read as u64;
            if read > 0 && self.instances[i].conn == Some(idx as u64 + 1) {
                let a = self.call(i, now, |b, io| b.on_bytes(read as u64, io));
                self.apply(i, now, a);
            }
            self.hand_to_bot(i, idx as u64 + 1, msgs, eof, now);
        }
        self.read_buf = buf;
    }

    /// Matches the node's logged closes to bot connections by address: the open connection from that
    /// address opened before the close.
    fn attribute_closes(&mut self) {
        let entries = match self.log.lock() {
            Ok(mut log) => std::mem::take(&mut *log),
            Err(_) => return,
        };
        for e in entries {
            let found = self
                .conns
                .iter()
                .enumerate()
                .rev()
                .find(|(idx, r)| r.closed.is_none() && r.opened_ms <= e.at_ms && self.locals[*idx] == e.addr);
            if let Some((idx, _)) = found {
                let rec = &mut self.conns[idx];
                rec.closed = Some(Closed::ByNode {
                    at_ms: e.at_ms,
                    reason: e.reason,
                    frames_sent: rec.frames_sent,
                    bytes_sent: rec.bytes_sent,
                });
            }
        }
    }

    /// Peaks from the world thread, and the process's resident memory.
    fn sample(&mut self) -> Result<(), String> {
        let mut tx = std::mem::take(&mut self.tx);
        let relayers: Vec<SocketAddr> = self
            .instances
            .iter()
            .filter(|i| i.label == "TxRelayer")
            .filter_map(|i| Some(self.locals[i.conn? as usize - 1]))
            .collect();
        let (s, tx) = self
            .node
            .with_world(move |w| {
                let mut s = Sample::default();
                let mut q = w.query::<(&SendQueue, &RecvBuffer)>();
                for (sq, rb) in q.iter(w) {
                    s.peers += 1;
                    s.send_bytes = s.send_bytes.max((sq.bytes() + sq.in_writer_bytes) as u64);
                    s.recv_bytes = s.recv_bytes.max(rb.bytes as u64);
                }
                s.tx_tracked = w.resource::<TxRequests>().len() as u64;
                let orphans = w.resource::<Orphanage>();
                tx.sample(orphans);
                if !orphans.is_empty() && !relayers.is_empty() {
                    let mut q = w.query::<(Entity, &Socket)>();
                    let held: u64 = q
                        .iter(w)
                        .filter(|(_, sock)| relayers.contains(&sock.addr))
                        .map(|(e, _)| w.resource::<Orphanage>().usage_of(e).announcements)
                        .sum();
                    tx.peak_relayer_orphans = tx.peak_relayer_orphans.max(held);
                }
                (s, tx)
            })
            .map_err(|e| format!("node stopped mid-run: {e}"))?;
        self.tx = tx;
        self.peak.peers = self.peak.peers.max(s.peers);
        self.peak.send_bytes = self.peak.send_bytes.max(s.send_bytes);
        self.peak.recv_bytes = self.peak.recv_bytes.max(s.recv_bytes);
        self.peak.tx_tracked = self.peak.tx_tracked.max(s.tx_tracked);
        if let Some(kb) = proc_status_kb("VmRSS:") {
            self.peak_rss_kb = self.peak_rss_kb.max(kb);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Outcome, String> {
        let end_ms = self.now_ms();
        let mut tx = std::mem::take(&mut self.tx);
        let (end, snapshot, tx, chain) = self
            .node
            .with_world(move |w| {
                let end = EndState::of(w);
                tx.finish(w.resource::<Orphanage>(), w.resource::<Mempool>());
                let chain = ChainFigures::of(w.resource::<oni_systems::chain::HeaderTree>());
                (end, dump::collect(w), tx, chain)
            })
            .map_err(|e| format!("node stopped mid-run: {e}"))?;
        self.attribute_closes();
        if let Some(kb) = proc_status_kb("VmHWM:") {
            self.peak_rss_kb = self.peak_rss_kb.max(kb);
        }
        let instances = self.instances.iter().map(Instance::info).collect();
        Ok(Outcome {
            world: world_from(snapshot),
            instances,
            conns: self.conns,
            end_ms,
            ticks: self.passes,
            peak_peers: self.peak.peers,
            peak_send_bytes: self.peak.send_bytes,
            peak_recv_bytes: self.peak.recv_bytes,
            peak_reader_bytes: None,
            peak_tx_tracked: self.peak.tx_tracked,
            tx,
            chain,
            end,
            node_bad_frames: self.node_bad_frames,
            dials: 0,
            trace_hash: 0,
            live: Some(super::outcome::LiveFigures {
                peak_rss_kb: (self.peak_rss_kb > 0).then_some(self.peak_rss_kb),
                connect_failures: self.connect_failures,
            }),
        })
    }
}

/// Connects to the node: loopback, so a blocking connect with a short timeout is enough.
fn dial(node: SocketAddr) -> Option<(TcpStream, SocketAddr)> {
    let stream = TcpStream::connect_timeout(&node, Duration::from_secs(2)).ok()?;
    stream.set_nonblocking(true).ok()?;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok()?;
    Some((stream, local))
}

/// Writes what the socket takes now; the rest waits for the next pass. A dead socket drops it.
fn flush(link: &mut LiveLink) {
    while !link.pending_out.is_empty() {
        match link.stream.write(&link.pending_out) {
            Ok(0) => break,
            Ok(n) => {
                link.pending_out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                link.pending_out.clear();
                link.write_failed = true;
                break;
            }
        }
    }
}

/// Frames and decodes bytes from the node; returns frames that failed (a node bug if ever non-zero).
fn decode_into(link: &mut LiveLink, mut rest: &[u8], msgs: &mut Vec<Message>) -> u64 {
    if link.raw {
        return 0;
    }
    if let Some(bot) = link.v2.as_mut() {
        let mut wire = Vec::new();
        let bad = bot.incoming(rest, &mut link.packet, msgs, &mut wire);
        link.pending_out.extend_from_slice(&wire);
        if bad > 0 {
            link.reader_failed = true;
        }
        return bad;
    }
    let mut bad = 0;
    while !rest.is_empty() {
        let (used, r) = link.reader.push(rest);
        rest = &rest[used..];
        match r {
            Ok(Some(f)) => match Message::decode(f.header.command, &f.payload) {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => {}
                Err(_) => bad += 1,
            },
            Ok(None) => {}
            Err(_) => {
                link.reader_failed = true;
                return bad + 1;
            }
        }
    }
    bad
}

/// A world holding what the judge and `--dump` read: the node's resources as captured at the end
/// (the address book only as counts: its entries stay with the node) and its peers.
fn world_from(snapshot: WorldDump) -> World {
    let r = snapshot.resources;
    let mut w = oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(r.config.clone(), 0));
    w.insert_resource(r.metrics);
    w.insert_resource(r.score_table);
    w.insert_resource(r.peer_policy);
    w.insert_resource(r.chain_tip);
    w.insert_resource(oni_systems::resources::BanList::load(r.bans.into_iter().map(|b| (b.subnet, b.entry))));
    w.insert_resource(Clock { now_ms: snapshot.clock_ms });
    for p in snapshot.peers {
        let mut peer = oni_systems::components::PeerBundle::new(p.socket, p.state, p.direction);
        peer.stats = p.stats;
        peer.score = p.score;
        peer.negotiated = p.negotiated;
        peer.handshake = p.handshake;
        peer.ping = p.ping;
        peer.permissions = p.permissions;
        if let Some(a) = p.addr_relay {
            peer.addr_relay = a;
        }
        w.spawn(peer);
    }
    w
}

/// A `kB` figure from /proc/self/status (Linux); `None` elsewhere.
pub fn proc_status_kb(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

impl super::host::BotHost for Live {
    type Actions = Actions;

    fn instance_mut(&mut self, i: usize) -> &mut Instance {
        &mut self.instances[i]
    }

    fn call(&mut self, i: usize, now: u64, f: impl FnOnce(&mut dyn super::bots::Behaviour, &mut BotIo)) -> Actions {
        let window = match self.instances[i].conn.and_then(|c| self.links[c as usize - 1].as_ref()) {
            Some(l) => self.window_bytes.saturating_sub(l.pending_out.len()),
            None => 0,
        };
        let unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let inst = &mut self.instances[i];
        let mut io = BotIo::new(now, unix_s, &mut inst.rng, self.network, inst.conn.is_some(), window);
        f(inst.behaviour.as_mut(), &mut io);
        Actions { out: std::mem::take(&mut io.out), frames: io.frames, connect: io.want_connect, close: io.want_close }
    }

    /// Bytes, then close, then a new connection (whose `on_connected` runs at once), as in sim mode.
    fn apply(&mut self, i: usize, now: u64, a: Actions) {
        if let Some(c) = self.instances[i].conn {
            let idx = c as usize - 1;
            if !a.out.is_empty() {
                let rec = &mut self.conns[idx];
                rec.frames_sent += a.frames as u64;
                rec.bytes_sent += a.out.len() as u64;
                if let Some(link) = self.links[idx].as_mut() {
                    match link.v2.as_mut() {
                        Some(bot) => {
                            let wire = bot.outgoing(&a.out, &mut link.packet);
                            link.pending_out.extend_from_slice(&wire);
                        }
                        None => link.pending_out.extend_from_slice(&a.out),
                    }
                    flush(link);
                }
            }
            if a.close {
                self.instances[i].conn = None;
                if let Some(mut link) = self.links[idx].take() {
                    self.open -= 1;
                    flush(&mut link);
                    let _ = link.stream.shutdown(std::net::Shutdown::Both);
                }
                let rec = &mut self.conns[idx];
                if rec.closed.is_none() {
                    rec.closed = Some(Closed::ByBot { at_ms: now });
                }
            }
        }
        if a.connect && self.instances[i].conn.is_none() {
            let Some((stream, local)) = (self.open < MAX_OPEN_CONNS).then(|| dial(self.node_addr)).flatten() else {
                self.connect_failures += 1;
                return;
            };
            self.conns.push(ConnRecord::opened(i, now));
            self.locals.push(local);
            self.open += 1;
            let mut link = LiveLink {
                instance: i,
                stream,
                reader: FrameSplitter::new(self.network),
                reader_failed: false,
                pending_out: Vec::new(),
                eof: false,
                write_failed: false,
                v2: None,
                raw: self.instances[i].behaviour.raw_transport(),
                packet: Vec::new(),
            };
            if self.instances[i].v2 {
                let (kex, garbage) = super::v2::keys(&mut self.instances[i].rng);
                let (session, first) = V2Session::initiator(self.network, kex, garbage);
                let (bot, first) = super::link::BotV2::initiator(session, first);
                link.v2 = Some(bot);
                link.pending_out.extend_from_slice(&first);
                flush(&mut link);
            }
            self.links.push(Some(link));
            self.instances[i].conn = Some(self.conns.len() as u64);
            let a = self.call(i, now, |b, io| b.on_connected(io));
            self.apply(i, now, a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_from_proc() {
        let rss = proc_status_kb("VmRSS:").unwrap();
        let hwm = proc_status_kb("VmHWM:").unwrap();
        assert!(rss > 0 && hwm >= rss, "rss {rss} kB, hwm {hwm} kB");
        assert_eq!(proc_status_kb("NoSuchKey:"), None);
    }
}
