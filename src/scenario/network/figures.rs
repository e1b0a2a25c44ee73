//! What a network run measured: for each mined block, when it was connected to each node's active
//! chain (hence the time until 50 / 90 / 100 % of the nodes had it), and the bytes the links
//! carried by command — over the whole run, and while at least one block was still on its way
//! (mined, not yet at every node): the block-relay cost the report divides per node and block.

use oni_systems::wire::Command;
use std::fmt;

/// Commands that carry block relay: announcements, headers, requests, blocks, and BIP152's.
pub const BLOCK_RELAY: [Command; 11] = [
    Command::Inv,
    Command::GetHeaders,
    Command::Headers,
    Command::GetData,
    Command::NotFound,
    Command::Block,
    Command::SendHeaders,
    Command::SendCmpct,
    Command::CmpctBlock,
    Command::GetBlockTxn,
    Command::BlockTxn,
];

/// One mined block's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockFigures {
    /// Its height.
    pub height: u32,
    /// The node that mined it.
    pub miner: usize,
    /// Transactions besides the coinbase.
    pub txs: usize,
    /// Its serialized size.
    pub bytes: usize,
    /// When it was mined (virtual ms).
    pub mined_ms: u64,
    /// For each node, ms after mining when it joined that node's active chain.
    pub reached_ms: Vec<Option<u64>>,
}

impl BlockFigures {
    /// Nodes that connected it.
    pub fn reached(&self) -> usize {
        self.reached_ms.iter().flatten().count()
    }

    /// Time until a share `q` of all nodes had it (`None`: never that many).
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let mut t: Vec<u64> = self.reached_ms.iter().flatten().copied().collect();
        t.sort_unstable();
        let need = ((q * self.reached_ms.len() as f64).ceil() as usize).max(1);
        t.get(need - 1).copied()
    }
}

/// The run's propagation figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Propagation {
    /// Nodes in the network.
    pub nodes: usize,
    /// Every mined block, in mining order.
    pub blocks: Vec<BlockFigures>,
    /// Frame bytes (header included) the links delivered, by command, over the whole run.
    pub bytes_all: Vec<u64>,
    /// The same while at least one block was still propagating.
    pub bytes_while_propagating: Vec<u64>,
}

impl Propagation {
    /// Empty figures for `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Propagation {
            nodes,
            blocks: Vec::new(),
            bytes_all: vec![0; Command::COUNT],
            bytes_while_propagating: vec![0; Command::COUNT],
        }
    }

    /// Whether every node connected every block.
    pub fn all_reached(&self) -> bool {
        self.blocks.iter().all(|b| b.reached() == self.nodes)
    }

    /// Bytes sent plus received per node per block while blocks propagated: every delivered byte
    /// was sent by one node and received by another, so it counts twice over the nodes.
    pub fn per_node_per_block(&self, commands: Option<&[Command]>) -> f64 {
        let sum: u64 = match commands {
            Some(cs) => cs.iter().map(|c| self.bytes_while_propagating[*c as usize]).sum(),
            None => self.bytes_while_propagating.iter().sum(),
        };
        if self.blocks.is_empty() || self.nodes == 0 {
            return 0.0;
        }
        2.0 * sum as f64 / self.nodes as f64 / self.blocks.len() as f64
    }

    /// Median over blocks of a per-block quantile (`None` when a block never got there).
    pub fn median_of(&self, q: f64) -> Option<u64> {
        let mut v: Vec<u64> = self.blocks.iter().map(|b| b.quantile_ms(q)).collect::<Option<Vec<_>>>()?;
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or("never".into(), |x| x.to_string())
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "block propagation ({} nodes): ms after mining until a share of the nodes connected it",
            self.nodes
        )?;
        writeln!(
            f,
            "  {:>6}  {:>6}  {:>6}  {:>9}  {:>9}  {:>7}  {:>7}  {:>7}",
            "height", "miner", "txs", "bytes", "reached", "p50", "p90", "p100"
        )?;
        for b in &self.blocks {
            writeln!(
                f,
                "  {:>6}  {:>6}  {:>6}  {:>9}  {:>9}  {:>7}  {:>7}  {:>7}",
                b.height,
                b.miner,
                b.txs,
                b.bytes,
                format!("{}/{}", b.reached(), self.nodes),
                ms(b.quantile_ms(0.5)),
                ms(b.quantile_ms(0.9)),
                ms(b.quantile_ms(1.0)),
            )?;
        }
        writeln!(
            f,
            "  median over blocks: p50 {} ms, p90 {} ms, p100 {} ms",
            ms(self.median_of(0.5)),
            ms(self.median_of(0.9)),
            ms(self.median_of(1.0))
        )?;
        writeln!(
            f,
            "  bytes sent+received per node per block while blocks propagated: {:.0} block relay, {:.0} all commands",
            self.per_node_per_block(Some(&BLOCK_RELAY)),
            self.per_node_per_block(None)
        )?;
        let mut by: Vec<(Command, u64)> = Command::ALL
            .iter()
            .map(|c| (*c, self.bytes_while_propagating[*c as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        by.sort_by_key(|(c, n)| (std::cmp::Reverse(*n), *c as usize));
        let parts: Vec<String> = by.iter().map(|(c, n)| format!("{} {}", c.name(), n)).collect();
        writeln!(f, "  link bytes by command while blocks propagated: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_count_all_nodes_not_only_those_reached() {
        let b = BlockFigures {
            height: 1,
            miner: 0,
            txs: 0,
            bytes: 0,
            mined_ms: 0,
            reached_ms: vec![Some(0), Some(30), Some(10), None],
        };
        assert_eq!(b.quantile_ms(0.5), Some(10));
        assert_eq!(b.quantile_ms(0.75), Some(30));
        assert_eq!(b.quantile_ms(1.0), None, "one node never got it");
        assert_eq!(b.reached(), 3);
    }
}
