//! The `network` section of a scenario file: how many oni nodes, how they are wired, when and
//! where blocks are mined, which transactions they carry and which pools lack some of them. The
//! link model (tick, latency, bandwidth, read budget, start jitter) is the scenario's `net`, the
//! node limits (inbound slots...) its `node`: one file format for one node and for many.

use serde::Deserialize;

/// Most nodes in one network scenario (memory: each is a whole world).
pub const MAX_NODES: usize = 5_000;
/// Most blocks one scenario may mine.
pub const MAX_BLOCKS: usize = 1_000;
/// Most transactions in one block (a 4 MWU block holds about 18,000 of ours).
pub const MAX_TXS_PER_BLOCK: usize = 10_000;

/// A simulated network of oni nodes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// How many nodes.
    pub nodes: usize,
    /// Outbound full-relay connections each node opens to listening nodes (Core: 8).
    #[serde(default = "default_outbound")]
    pub outbound: usize,
    /// Share of nodes that accept inbound connections (at least one always does).
    #[serde(default = "default_listen_fraction")]
    pub listen_fraction: f64,
    /// Blocks to mine, in time order.
    pub blocks: Vec<MineSpec>,
    /// Transactions in each mined block (besides its coinbase), from the shared pool.
    #[serde(default)]
    pub txs_per_block: usize,
    /// How long before its block a transaction enters the pools ("pools in sync").
    #[serde(default = "default_tx_lead_ms")]
    pub tx_lead_ms: u64,
    /// Which pools lack some of a block's transactions.
    #[serde(default)]
    pub missing: MissingSpec,
    /// Relay blocks as BIP152 compact blocks (the node's default); `false` moves them whole, the
    /// baseline (applied in `network::node::apply_compact_blocks`).
    #[serde(default = "default_compact_blocks")]
    pub compact_blocks: bool,
    /// Each node's upload capacity, shared by all its connections (bytes/s; 0: none beyond the
    /// per-connection `net.node_write_bytes_per_s`). A real node has one uplink: serving a whole
    /// block to 10 peers at once takes 10 times as long as to one.
    #[serde(default)]
    pub uplink_bytes_per_s: u64,
}

/// One block to mine.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MineSpec {
    /// When (virtual seconds from the start).
    pub at_s: f64,
    /// At which node.
    #[serde(default)]
    pub node: Miner,
}

/// Where a block is mined.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Miner {
    /// A node drawn from the seed.
    #[default]
    Random,
    /// This node (0-based).
    Node(usize),
}

/// Pools that lack part of a block's transactions when it is mined (never the miner's).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MissingSpec {
    /// Share of the other nodes whose pool lacks some of each block's transactions.
    pub nodes_fraction: f64,
    /// Share of the block's transactions each such pool lacks.
    pub txs_fraction: f64,
}

fn default_outbound() -> usize {
    8
}

fn default_listen_fraction() -> f64 {
    0.5
}

fn default_compact_blocks() -> bool {
    true
}

fn default_tx_lead_ms() -> u64 {
    1_000
}

impl NetworkSpec {
    /// Checks what the types cannot; `duration_s` is the scenario's.
    pub fn validate(&self, duration_s: u64) -> Result<(), String> {
        if !(2..=MAX_NODES).contains(&self.nodes) {
            return Err(format!("network.nodes must be in 2..={MAX_NODES}, got {}", self.nodes));
        }
        if self.outbound == 0 || self.outbound >= self.nodes {
            return Err(format!("network.outbound must be in 1..nodes, got {}", self.outbound));
        }
        let share = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        if !share(self.listen_fraction) || self.listen_fraction == 0.0 {
            return Err(format!("network.listen_fraction must be in (0, 1], got {}", self.listen_fraction));
        }
        if !share(self.missing.nodes_fraction) || !share(self.missing.txs_fraction) {
            return Err("network.missing fractions must be in [0, 1]".into());
        }
        if self.blocks.is_empty() || self.blocks.len() > MAX_BLOCKS {
            return Err(format!("network.blocks: 1..={MAX_BLOCKS} blocks, got {}", self.blocks.len()));
        }
        if self.txs_per_block > MAX_TXS_PER_BLOCK {
            return Err(format!("network.txs_per_block at most {MAX_TXS_PER_BLOCK}, got {}", self.txs_per_block));
        }
        let mut last = 0.0;
        for (i, b) in self.blocks.iter().enumerate() {
            if !b.at_s.is_finite() || b.at_s < last || b.at_s > duration_s as f64 {
                return Err(format!("network.blocks[{i}]: at_s must be in time order within [0, duration_s]"));
            }
            last = b.at_s;
            if let Miner::Node(n) = b.node {
                if n >= self.nodes {
                    return Err(format!("network.blocks[{i}]: node {n} does not exist ({} nodes)", self.nodes));
                }
            }
        }
        super::node::apply_compact_blocks(
            &mut oni_systems::resources::Config::new(oni_systems::wire::Network::Regtest),
            self.compact_blocks,
        )
    }
}
