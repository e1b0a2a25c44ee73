//! The network simulator: N oni nodes on one virtual clock, joined by [`Pipe`]s along a seeded
//! [`Topology`]. Nothing here reads the wall clock; every map it iterates is ordered (nodes and
//! connections are vectors), so a seed replays the run and its trace hash.
//!
//! One tick at virtual time `t`: connections due open (both worlds hear `Connected`), pools due
//! are filled, blocks due are mined and submitted at their miner, every world runs its schedule
//! and its IO commands are carried out (bytes into writers, closes, read pauses), every validator
//! takes its queue (chain changes move the node's coins and pool, and are timed for the
//! propagation figures), every writer drains at the link's bandwidth (the sender hears `Written`),
//! and every reader takes what is due (the receiver gets the frames, or the close once all before
//! it arrived).

use super::coins::Ledger;
use super::figures::{BlockFigures, Propagation};
use super::node::{node_addr, ChainMove, SharedBlocks, SimNode};
use super::pipe::{Framed, Pipe};
use super::spec::{Miner, NetworkSpec};
use super::topology::Topology;
use super::txs::{TxPlan, FEE_SAT};
use crate::node::submit::submit_block;
use crate::scenario::spec::NetModel;
use crate::scenario::trace::TraceHash;
use crate::scenario::Scenario;
use ahash::AHashMap;
use bitcoin::{BlockHash, Transaction};
use oni_systems::components::{ConnId, Direction};
use oni_systems::mempool::{BlockTxEvent, BlockTxInbox};
use oni_systems::resources::{DisconnectReason, Inbox, IoCarrier, NetEvent, Outbox, Rng};
use oni_systems::wire::Network;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// Trace tags of the network simulator.
mod tag {
    /// A connection opened: t, conn.
    pub const OPEN: u8 = 20;
    /// A frame reached a node: t, conn, receiver, command, bytes, checksum.
    pub const FRAME: u8 = 21;
    /// A node closed a connection: t, conn, node, reason.
    pub const CLOSE: u8 = 22;
    /// A block was mined: t, miner, height, then its hash.
    pub const MINED: u8 = 23;
    /// A node's active chain moved: t, node, height, connected (1) or not (0).
    pub const CHAIN: u8 = 24;
}

/// One node-to-node connection: `a` dialed `b`; both worlds call it `ConnId(index + 1)`.
struct Conn {
    a: usize,
    b: usize,
    open_ms: u64,
    /// a → b and b → a.
    pipes: [Pipe; 2],
    /// Whether each side closed it.
    closed: [bool; 2],
    /// Whether each side was told the other closed.
    told: [bool; 2],
}

impl Conn {
    /// The side `node` is on (0: the dialer).
    fn side(&self, node: usize) -> usize {
        usize::from(node != self.a)
    }

    fn node(&self, side: usize) -> usize {
        if side == 0 {
            self.a
        } else {
            self.b
        }
    }
}

/// A block the simulator mined.
struct Mined {
    index: usize,
    txs: Arc<Vec<Transaction>>,
}

/// When each planned block is mined, where, with which transactions.
struct Planned {
    at_ms: u64,
    miner: usize,
    fill_at_ms: u64,
    /// Nodes whose pool lacks some of its transactions, and which (indices into the block's).
    missing: AHashMap<usize, Vec<usize>>,
}

/// What a network run produced.
pub struct NetOutcome {
    /// The nodes at the end (their worlds, for tests and dumps).
    pub nodes: Vec<SimNode>,
    /// The graph it ran on.
    pub topology: Topology,
    /// The propagation figures.
    pub propagation: Propagation,
    /// Virtual ms covered.
    pub end_ms: u64,
    /// Ticks run.
    pub ticks: u64,
    /// Hash of the run's events; equal for equal seeds.
    pub trace_hash: u64,
    /// Transactions put into pools, and those the pools refused (should be 0).
    pub pool_fills: (u64, u64),
}

/// One node's commands carried out on its connections' pipes, closes recorded in the trace.
struct PipeCarrier<'a> {
    conns: &'a mut [Conn],
    hash: &'a mut TraceHash,
    node: usize,
    now: u64,
}

impl PipeCarrier<'_> {
    /// The connection and this node's side of it.
    fn conn(&mut self, conn: ConnId) -> Option<(&mut Conn, usize)> {
        let c = self.conns.get_mut((conn.0 as usize).checked_sub(1)?)?;
        let side = c.side(self.node);
        Some((c, side))
    }
}

impl IoCarrier for PipeCarrier<'_> {
    fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let Some((c, s)) = self.conn(conn) else { return };
        if !c.closed[s] && !c.closed[1 - s] {
            c.pipes[s].write(&bytes);
        }
    }

    fn close(&mut self, conn: ConnId, reason: DisconnectReason) {
        let Some((c, s)) = self.conn(conn) else { return };
        if c.closed[s] {
            return;
        }
        c.closed[s] = true;
        // What was coming to the closer is lost; what it sent still arrives, then the close.
        c.pipes[1 - s].drop_all();
        self.hash.event(tag::CLOSE, &[self.now, conn.0, self.node as u64, reason as u64]);
    }

    fn set_paused(&mut self, conn: ConnId, paused: bool) {
        if let Some((c, s)) = self.conn(conn) {
            c.pipes[1 - s].paused = paused;
        }
    }

    // Frames are handed over whole here: there is no reader to give credit to.
    fn consumed(&mut self, _: ConnId, _: usize) {}

    fn recv_limit(&mut self, _: ConnId, _: usize) {}

    // Nodes dial nobody by themselves: the topology is the simulator's.
    fn connect(&mut self, _: SocketAddr, _: Direction, _: bool) {}
}

/// The simulator.
pub struct NetSim {
    nodes: Vec<SimNode>,
    topology: Topology,
    conns: Vec<Conn>,
    /// Connections not yet opened, by open time then index (popped from the back).
    to_open: Vec<usize>,
    net: NetModel,
    /// Each node's shared upload budget (bytes/s; 0: none).
    uplink_bytes_per_s: u64,
    plan: Vec<Planned>,
    txs: TxPlan,
    ledger: Arc<RwLock<Ledger>>,
    mined: AHashMap<BlockHash, Mined>,
    blocks: SharedBlocks,
    next_block: usize,
    next_fill: usize,
    prop: Propagation,
    /// Blocks mined and not yet at every node.
    propagating: usize,
    hash: TraceHash,
    now_ms: u64,
    end_ms: u64,
    ticks: u64,
    pool_fills: (u64, u64),
}

impl NetSim {
    /// The network of `scenario` (whose `network` section must be set), not started.
    pub fn new(scenario: &Scenario) -> Result<NetSim, String> {
        let spec: &NetworkSpec = scenario.network.as_ref().ok_or("not a network scenario")?;
        let n = spec.nodes;
        let topology = Topology::random(scenario.seed, n, spec.outbound, spec.listen_fraction);
        let txs = TxPlan::new(scenario.seed, spec.blocks.len(), spec.txs_per_block);
        let ledger = Arc::new(RwLock::new(Ledger::funded(txs.funding.clone())));
        let nodes: Vec<SimNode> = (0..n)
            .map(|i| SimNode::new(i, scenario.seed, &scenario.node, spec.compact_blocks, ledger.clone()))
            .collect();
        let mut rng = Rng::seeded(scenario.seed ^ 0x0b10_c4ed_5eed);
        // Gaps in the pools draw from their own generator: turning them on keeps the same miners.
        let mut gaps = Rng::seeded(scenario.seed ^ 0x6a95_00ff_f00d);
        let jitter = scenario.net.start_jitter_ms;
        let conns: Vec<Conn> = topology
            .edges
            .iter()
            .map(|e| Conn {
                a: e.dialer,
                b: e.listener,
                open_ms: if jitter > 0 { rng.below(jitter) } else { 0 },
                pipes: [Pipe::new(Network::Regtest), Pipe::new(Network::Regtest)],
                closed: [false; 2],
                told: [false; 2],
            })
            .collect();
        let mut to_open: Vec<usize> = (0..conns.len()).collect();
        to_open.sort_by_key(|&c| std::cmp::Reverse((conns[c].open_ms, c)));
        let plan = spec
            .blocks
            .iter()
            .map(|b| {
                let at_ms = (b.at_s * 1_000.0).round() as u64;
                let miner = match b.node {
                    Miner::Node(m) => m,
                    Miner::Random => rng.below(n as u64) as usize,
                };
                let mut missing = AHashMap::new();
                let lacking = (spec.missing.nodes_fraction * (n - 1) as f64).round() as usize;
                let per = (spec.missing.txs_fraction * spec.txs_per_block as f64).round() as usize;
                if lacking > 0 && per > 0 {
                    let mut others: Vec<usize> = (0..n).filter(|&i| i != miner).collect();
                    partial_shuffle(&mut others, lacking, &mut gaps);
                    for &node in &others[..lacking] {
                        let mut idx: Vec<usize> = (0..spec.txs_per_block).collect();
                        partial_shuffle(&mut idx, per, &mut gaps);
                        idx.truncate(per);
                        idx.sort_unstable();
                        missing.insert(node, idx);
                    }
                }
                Planned { at_ms, miner, fill_at_ms: at_ms.saturating_sub(spec.tx_lead_ms), missing }
            })
            .collect();
        Ok(NetSim {
            prop: Propagation::new(n),
            nodes,
            topology,
            conns,
            to_open,
            net: scenario.net.clone(),
            uplink_bytes_per_s: spec.uplink_bytes_per_s,
            plan,
            txs,
            ledger,
            mined: AHashMap::new(),
            blocks: SharedBlocks::default(),
            next_block: 0,
            next_fill: 0,
            propagating: 0,
            hash: TraceHash::default(),
            now_ms: 0,
            end_ms: scenario.duration_s * 1_000,
            ticks: 0,
            pool_fills: (0, 0),
        })
    }

    /// Runs until every block was mined and reached every node (plus one tick, so every world
    /// takes its validator's last reports), or the scenario's end.
    pub fn run(mut self) -> NetOutcome {
        while self.now_ms <= self.end_ms {
            self.step();
            let done = self.next_block == self.plan.len() && self.propagating == 0;
            self.now_ms += self.net.tick_ms;
            if done {
                self.step();
                break;
            }
        }
        NetOutcome {
            end_ms: self.now_ms.min(self.end_ms),
            nodes: self.nodes,
            topology: self.topology,
            propagation: self.prop,
            ticks: self.ticks,
            trace_hash: self.hash.value(),
            pool_fills: self.pool_fills,
        }
    }

    /// One tick at the current virtual time.
    pub fn step(&mut self) {
        let now = self.now_ms;
        self.open_due(now);
        self.fill_due(now);
        self.mine_due(now);
        for i in 0..self.nodes.len() {
            self.nodes[i].tick(now);
            self.carry_out_commands(i, now);
        }
        for i in 0..self.nodes.len() {
            let moves = self.nodes[i].validate(&mut self.blocks);
            self.chain_moved(i, now, moves);
        }
        self.drain_writers(now);
        self.read_due(now);
        self.ticks += 1;
    }

    fn open_due(&mut self, now: u64) {
        while let Some(&c) = self.to_open.last() {
            if self.conns[c].open_ms > now {
                break;
            }
            self.to_open.pop();
            let (a, b) = (self.conns[c].a, self.conns[c].b);
            let conn = ConnId(c as u64 + 1);
            // The dialer's side comes from an ephemeral port of its address.
            let from = SocketAddr::new(node_addr(a).ip(), 40_000 + (c % 20_000) as u16);
            inbox(&mut self.nodes[a]).push(NetEvent::Connected {
                conn,
                addr: node_addr(b),
                local: None,
                direction: Direction::OutboundFullRelay,
            });
            inbox(&mut self.nodes[b]).push(NetEvent::Connected {
                conn,
                addr: from,
                local: None,
                direction: Direction::Inbound,
            });
            self.hash.event(tag::OPEN, &[now, conn.0]);
        }
    }

    fn fill_due(&mut self, now: u64) {
        while self.next_fill < self.plan.len() && self.plan[self.next_fill].fill_at_ms <= now {
            let k = self.next_fill;
            self.next_fill += 1;
            let all = &self.txs.per_block[k];
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let txs: Vec<Arc<Transaction>> = match self.plan[k].missing.get(&i) {
                    None => all.clone(),
                    Some(lacking) => all
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| lacking.binary_search(j).is_err())
                        .map(|(_, t)| t.clone())
                        .collect(),
                };
                let entered = node.fill_pool(&txs) as u64;
                self.pool_fills.0 += entered;
                self.pool_fills.1 += txs.len() as u64 - entered;
            }
        }
    }

    fn mine_due(&mut self, now: u64) {
        while self.next_block < self.plan.len() && self.plan[self.next_block].at_ms <= now {
            let k = self.next_block;
            self.next_block += 1;
            let miner = self.plan[k].miner;
            let (tip, height, mtp) = self.nodes[miner].tip();
            let now_s = ((crate::scenario::sim::EPOCH_MS + now) / 1_000) as i64;
            let time = now_s.max(mtp + 1) as u32;
            let txs = &self.txs.per_block[k];
            let fees = FEE_SAT * txs.len() as u64;
            let block = super::mine::build_block(tip, height + 1, time, txs, fees, k as u64);
            let hash = block.block_hash();
            if let Ok(mut l) = self.ledger.write() {
                l.mined(&block, height + 1);
            }
            self.prop.blocks.push(BlockFigures {
                height: height + 1,
                miner,
                txs: txs.len(),
                bytes: bitcoin::consensus::serialize(&block).len(),
                mined_ms: now,
                reached_ms: vec![None; self.nodes.len()],
            });
            self.hash.event(tag::MINED, &[now, miner as u64, height as u64 + 1]);
            self.hash.bytes(bitcoin::hashes::Hash::as_byte_array(&hash));
            self.propagating += 1;
            if let Err(e) = submit_block(&mut self.nodes[miner].world, &block) {
                tracing::warn!(?e, %hash, "the simulator's block was refused by its miner");
            }
            self.mined.insert(hash, Mined { index: self.prop.blocks.len() - 1, txs: Arc::new(block.txdata) });
        }
    }

    fn carry_out_commands(&mut self, i: usize, now: u64) {
        let mut carrier = PipeCarrier { conns: &mut self.conns, hash: &mut self.hash, node: i, now };
        Outbox::carry_out(&mut self.nodes[i].world, &mut carrier);
    }

    fn chain_moved(&mut self, i: usize, now: u64, moves: Vec<ChainMove>) {
        for m in moves {
            let (hash, height, connected) = match m {
                ChainMove::Connected(h, height) => (h, height, true),
                ChainMove::Disconnected(h, height) => (h, height, false),
            };
            self.hash.event(tag::CHAIN, &[now, i as u64, height as u64, u64::from(connected)]);
            let Some(mined) = self.mined.get(&hash) else { continue };
            let txs = mined.txs.clone();
            let event = if connected {
                BlockTxEvent::Connected { hash, height, txs }
            } else {
                BlockTxEvent::Disconnected { hash, height, txs }
            };
            self.nodes[i].world.resource_mut::<BlockTxInbox>().0.push(event);
            let b = &mut self.prop.blocks[mined.index];
            if connected && b.reached_ms[i].is_none() {
                b.reached_ms[i] = Some(now - b.mined_ms);
                if b.reached() == self.prop.nodes {
                    self.propagating -= 1;
                }
            }
        }
    }

    fn drain_writers(&mut self, now: u64) {
        let link = match self.net.node_write_bytes_per_s {
            0 => usize::MAX,
            bps => ((bps * self.net.tick_ms) / 1_000).max(1) as usize,
        };
        let allowance = self.uplink_shares(link);
        let ready = now + self.net.latency_ms;
        for (ci, c) in self.conns.iter_mut().enumerate() {
            for s in 0..2 {
                let budget = allowance.as_ref().map_or(link, |a| a[2 * ci + s]);
                let n = c.pipes[s].drain(ready, budget);
                if n > 0 {
                    let conn = ConnId(ci as u64 + 1);
                    inbox(&mut self.nodes[c.node(s)]).push(NetEvent::Written { conn, bytes: n });
                }
            }
        }
    }

    /// With a shared uplink, what each pipe (index `2 × conn + side`) may put on the wire this
    /// tick: the node's budget split evenly among its connections with bytes waiting, what one
    /// cannot use going to the others (each still within `link`). `None`: no uplink limit.
    fn uplink_shares(&self, link: usize) -> Option<Vec<usize>> {
        if self.uplink_bytes_per_s == 0 {
            return None;
        }
        let tick_budget = (self.uplink_bytes_per_s * self.net.tick_ms / 1_000).max(1) as usize;
        let mut waiting: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.nodes.len()];
        for (ci, c) in self.conns.iter().enumerate() {
            for s in 0..2 {
                let unsent = c.pipes[s].unsent();
                if unsent > 0 {
                    waiting[c.node(s)].push((unsent.min(link), 2 * ci + s));
                }
            }
        }
        let mut allowance = vec![0; 2 * self.conns.len()];
        for pipes in waiting {
            share_uplink(tick_budget, pipes, &mut allowance);
        }
        Some(allowance)
    }

    fn read_due(&mut self, now: u64) {
        let budget = self.net.read_bytes_per_tick;
        let counting = self.propagating > 0;
        let NetSim { conns, nodes, prop, hash, .. } = self;
        let mut events = Vec::new();
        for (ci, c) in conns.iter_mut().enumerate() {
            let conn = ConnId(ci as u64 + 1);
            for s in 0..2 {
                // Pipe `s` carries side s's bytes to the other side.
                let to = 1 - s;
                if c.closed[to] {
                    continue;
                }
                let receiver = c.node(to);
                let mut seen = |f: Framed| {
                    prop.bytes_all[f.command as usize] += f.wire_bytes as u64;
                    if counting {
                        prop.bytes_while_propagating[f.command as usize] += f.wire_bytes as u64;
                    }
                    hash.event(
                        tag::FRAME,
                        &[
                            now,
                            conn.0,
                            receiver as u64,
                            f.command as u64,
                            f.wire_bytes as u64,
                            u32::from_le_bytes(f.checksum) as u64,
                        ],
                    );
                };
                c.pipes[s].read(conn, now, budget, &mut events, &mut seen);
                if c.closed[s] && !c.told[to] && c.pipes[s].is_empty() {
                    c.told[to] = true;
                    events.push(NetEvent::Closed { conn, connect_failed: false });
                }
                if !events.is_empty() {
                    inbox(&mut nodes[receiver]).append(&mut events);
                }
            }
        }
    }
}

fn inbox(node: &mut SimNode) -> &mut Vec<NetEvent> {
    &mut node.world.resource_mut::<Inbox>().into_inner().0
}

/// Splits one node's `budget` among its pipes `(want, index)`: evenly, what a pipe wants less than
/// its share of going to the others (max-min fairness); writes each pipe's part at its index.
fn share_uplink(budget: usize, mut pipes: Vec<(usize, usize)>, allowance: &mut [usize]) {
    // Smallest wants first, so what they leave is shared among the rest.
    pipes.sort_unstable();
    let mut left = budget;
    let count = pipes.len();
    for (k, (want, pipe)) in pipes.into_iter().enumerate() {
        let give = want.min(left / (count - k));
        allowance[pipe] = give;
        left -= give;
    }
}

/// Moves a seeded choice of `k` elements to the front of `v`.
fn partial_shuffle<T>(v: &mut [T], k: usize, rng: &mut Rng) {
    for i in 0..k.min(v.len()) {
        let j = i + rng.below((v.len() - i) as u64) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::share_uplink;

    #[test]
    fn an_uplink_is_shared_evenly_and_what_one_leaves_goes_to_the_others() {
        let mut a = vec![0; 4];
        share_uplink(900, vec![(1_000, 0), (1_000, 1), (1_000, 2)], &mut a);
        assert_eq!(a, [300, 300, 300, 0], "three equal shares");
        let mut a = vec![0; 4];
        share_uplink(900, vec![(1_000, 3), (100, 1), (1_000, 0)], &mut a);
        assert_eq!(a, [400, 100, 0, 400], "the small want is met, the rest split");
        let mut a = vec![0; 3];
        share_uplink(1_000, vec![(10, 0), (20, 1), (30, 2)], &mut a);
        assert_eq!(a, [10, 20, 30], "under the budget: every want met");
        let mut a = vec![0; 3];
        share_uplink(2, vec![(10, 0), (10, 1), (10, 2)], &mut a);
        assert!(a.iter().sum::<usize>() <= 2, "never past the budget: {a:?}");
    }
}
