//! The regtest chain block bots serve: the first blocks of `shared/fixtures/regtest-core/chain.hex`
//! (real blocks made by Bitcoin Core; line i is block i, witness serialization), and the 53
//! transactions of `mempool.hex` beside it (valid on top of the chain's tip, parents first) that
//! transaction relayers hold. Found through `ONI_REGTEST_CHAIN` or next to the workspace; read once
//! per process.

use bitcoin::hashes::Hash;
use oni_systems::wire::headers::block_hash;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One fixture block: its hash, header and bytes.
#[derive(Debug)]
pub struct FixtureBlock {
    /// Block hash (internal byte order).
    pub hash: [u8; 32],
    /// The 80-byte header.
    pub header: [u8; 80],
    /// The whole block, witness serialization.
    pub bytes: Vec<u8>,
}

/// Where the chain file is: `ONI_REGTEST_CHAIN` if set, else `../shared/...` from this crate.
pub fn path() -> PathBuf {
    match std::env::var_os("ONI_REGTEST_CHAIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/regtest-core/chain.hex"),
    }
}

static CHAIN: OnceLock<Result<Vec<FixtureBlock>, String>> = OnceLock::new();

/// Every fixture block, heights 1.. in order, or why the file could not be read.
pub fn chain() -> Result<&'static [FixtureBlock], String> {
    CHAIN.get_or_init(load).as_deref().map_err(Clone::clone)
}

fn load() -> Result<Vec<FixtureBlock>, String> {
    let p = path();
    let text = std::fs::read_to_string(&p)
        .map_err(|e| format!("regtest chain fixture {}: {e} (set ONI_REGTEST_CHAIN to its path)", p.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let bytes = decode_hex(line.trim()).ok_or_else(|| format!("{}: line {} is not hex", p.display(), i + 1))?;
            let header: [u8; 80] = bytes
                .get(..80)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| format!("{}: line {} is shorter than a header", p.display(), i + 1))?;
            Ok(FixtureBlock { hash: block_hash(&header).to_byte_array(), header, bytes })
        })
        .collect()
}

/// `mempool.hex`, next to the chain file.
pub fn mempool_path() -> PathBuf {
    path().with_file_name("mempool.hex")
}

static MEMPOOL: OnceLock<Result<Vec<bitcoin::Transaction>, String>> = OnceLock::new();

/// The fixture's unconfirmed transactions in file order (parents before children), or why not.
pub fn mempool() -> Result<&'static [bitcoin::Transaction], String> {
    MEMPOOL.get_or_init(load_mempool).as_deref().map_err(Clone::clone)
}

fn load_mempool() -> Result<Vec<bitcoin::Transaction>, String> {
    let p = mempool_path();
    let text = std::fs::read_to_string(&p).map_err(|e| {
        format!("regtest mempool fixture {}: {e} (set ONI_REGTEST_CHAIN to chain.hex beside it)", p.display())
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let bytes = decode_hex(line.trim()).ok_or_else(|| format!("{}: line {} is not hex", p.display(), i + 1))?;
            bitcoin::consensus::deserialize(&bytes)
                .map_err(|e| format!("{}: line {} is not a transaction: {e}", p.display(), i + 1))
        })
        .collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes().chunks(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_and_refuses_junk() {
        assert_eq!(decode_hex("00ff7A"), Some(vec![0, 255, 0x7a]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }

    #[test]
    fn the_fixture_chains_from_regtest_genesis() {
        let c = chain().unwrap();
        assert_eq!(c.len(), 2_100, "heights 1..=2100");
        let genesis = oni_systems::chain::ChainParams::for_network(oni_systems::wire::Network::Regtest).genesis;
        assert_eq!(c[0].header[4..36], genesis.block_hash().to_byte_array());
        assert!(c.windows(2).all(|w| w[1].header[4..36] == w[0].hash));
    }

    #[test]
    fn the_fixture_mempool_has_parents_before_children() {
        let m = mempool().unwrap();
        assert_eq!(m.len(), 53);
        let txids: Vec<_> = m.iter().map(|t| t.compute_txid()).collect();
        let mut children = 0;
        for (i, tx) in m.iter().enumerate() {
            for input in &tx.input {
                if let Some(p) = txids.iter().position(|t| *t == input.previous_output.txid) {
                    assert!(p < i, "parent {p} after child {i}");
                    children += 1;
                }
            }
        }
        assert!(children > 0, "the fixture has chains");
    }
}
