//! Loader for the regtest fixture chain made by Bitcoin Core (`shared/fixtures/regtest-core`, see
//! its README): 2,100 blocks, a heavier 7-block fork, and the figures a correct node reproduces.
//! Tests, benches and the scenario runner all read it through here so they agree on its shape.

use bitcoin::consensus::deserialize;
use bitcoin::hashes::hex::FromHex;
use bitcoin::{Block, BlockHash};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One fixture block: its hash and raw bytes.
#[derive(Clone, Debug)]
pub struct FixtureBlock {
    /// The block's hash.
    pub hash: BlockHash,
    /// Raw block, witness serialization.
    pub raw: Vec<u8>,
}

/// `meta.json`'s fork section.
#[derive(Clone, Debug, Deserialize)]
pub struct ForkMeta {
    /// Height of the fork's first block.
    pub first_height: u32,
    /// Number of fork blocks.
    pub blocks: u32,
    /// Fork tip hash (display hex).
    pub tip: String,
    /// Fork tip height.
    pub tip_height: u32,
    /// Chainwork at the fork tip (64 hex digits, big-endian).
    pub chainwork: String,
}

/// `meta.json`: what a node holding the chain must report.
#[derive(Clone, Debug, Deserialize)]
pub struct FixtureMeta {
    /// Network name ("regtest").
    pub network: String,
    /// Tip height.
    pub height: u32,
    /// Tip hash (display hex).
    pub tip: String,
    /// Chainwork at the tip (64 hex digits, big-endian).
    pub chainwork: String,
    /// Transactions in the chain, coinbases included (genesis excluded).
    pub txcount: u64,
    /// Unspent, spendable outputs at the tip (Core's `gettxoutsetinfo` txouts).
    pub utxo_txouts: u64,
    /// Their total, in BTC with 8 decimals.
    pub utxo_total_amount: String,
    /// The competing branch.
    pub fork: ForkMeta,
}

/// The whole fixture in memory (~1.8 MB of blocks).
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Blocks at heights 1..=2100, in order.
    pub chain: Vec<FixtureBlock>,
    /// The fork's blocks, parent first.
    pub fork: Vec<FixtureBlock>,
    /// The expected figures.
    pub meta: FixtureMeta,
}

impl FixtureMeta {
    /// Tip hash parsed.
    pub fn tip_hash(&self) -> Result<BlockHash, String> {
        BlockHash::from_str(&self.tip).map_err(|e| e.to_string())
    }

    /// Fork tip hash parsed.
    pub fn fork_tip_hash(&self) -> Result<BlockHash, String> {
        BlockHash::from_str(&self.fork.tip).map_err(|e| e.to_string())
    }

    /// UTXO total in satoshis.
    pub fn utxo_total_sat(&self) -> Result<u64, String> {
        bitcoin::Amount::from_str_in(&self.utxo_total_amount, bitcoin::Denomination::Bitcoin)
            .map(|a| a.to_sat())
            .map_err(|e| e.to_string())
    }
}

/// Big-endian chainwork hex (as `meta.json` and Core's RPC write it) to bytes.
pub fn chainwork_bytes(hex: &str) -> Result<[u8; 32], String> {
    <[u8; 32]>::from_hex(hex).map_err(|e| e.to_string())
}

impl Fixture {
    /// Where the fixture lives relative to a crate root in this repository's layout.
    pub fn default_dir(manifest_dir: &Path) -> PathBuf {
        manifest_dir.join("../shared/fixtures/regtest-core")
    }

    /// Read and decode the fixture from `dir`.
    pub fn load(dir: &Path) -> Result<Fixture, String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let meta: FixtureMeta = serde_json::from_str(&read("meta.json")?).map_err(|e| e.to_string())?;
        Ok(Fixture { chain: blocks(&read("chain.hex")?)?, fork: blocks(&read("fork.hex")?)?, meta })
    }
}

fn blocks(text: &str) -> Result<Vec<FixtureBlock>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let raw = Vec::<u8>::from_hex(line.trim()).map_err(|e| format!("line {}: {e}", i + 1))?;
            let block: Block = deserialize(&raw).map_err(|e| format!("line {}: {e}", i + 1))?;
            Ok(FixtureBlock { hash: block.block_hash(), raw })
        })
        .collect()
}
