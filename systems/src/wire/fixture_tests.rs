//! The codec against a real chain made by Bitcoin Core (../shared/fixtures/regtest-core): every
//! block decodes, the tx counts add up to meta.json's figure, computed merkle roots match headers,
//! and the blocks chain to meta.json's tip.

use super::*;
use bitcoin::hashes::Hash;
use std::path::PathBuf;
use std::sync::OnceLock;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/regtest-core")
}

fn unhex(s: &str) -> Vec<u8> {
    let nib = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not hex: {c}"),
    };
    assert_eq!(s.len() % 2, 0);
    s.as_bytes().chunks(2).map(|p| nib(p[0]) << 4 | nib(p[1])).collect()
}

/// The raw blocks of chain.hex (heights 1..=2100), read once per test binary.
pub(super) fn chain_raw() -> &'static [Vec<u8>] {
    static RAW: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    RAW.get_or_init(|| {
        let text = std::fs::read_to_string(fixture_dir().join("chain.hex")).expect("fixture chain.hex is present");
        text.lines().filter(|l| !l.is_empty()).map(unhex).collect()
    })
}

/// Every block of chain.hex, decoded by our codec.
pub(super) fn chain_blocks() -> Vec<Block> {
    chain_raw().iter().map(|raw| Block::decode(raw).unwrap()).collect()
}

/// A number after `"key":` in meta.json (enough JSON for a fixture figure).
fn meta_number(key: &str) -> u64 {
    meta_field(key).parse().unwrap()
}

fn meta_field(key: &str) -> String {
    let meta = std::fs::read_to_string(fixture_dir().join("meta.json")).unwrap();
    let at = meta.find(&format!("\"{key}\"")).unwrap_or_else(|| panic!("{key} in meta.json"));
    let rest = meta[at + key.len() + 2..].trim_start().trim_start_matches(':').trim_start();
    rest.chars().take_while(|c| !matches!(c, ',' | '\n' | '}')).collect::<String>().trim().trim_matches('"').to_string()
}

#[test]
fn all_2100_blocks_decode_with_matching_tx_count_merkle_roots_and_tip() {
    let raw = chain_raw();
    assert_eq!(raw.len() as u64, meta_number("height"));
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    let mut prev = genesis.block_hash();
    let mut txs = 0u64;
    for (i, bytes) in raw.iter().enumerate() {
        let b = Message::decode(Command::Block, bytes).unwrap();
        let Some(Message::Block(b)) = b else { panic!("block {i}") };
        assert_eq!(b.header().prev_blockhash, prev, "block {} chains", i + 1);
        assert_eq!(b.compute_merkle_root(), Some(b.header().merkle_root), "merkle root of block {}", i + 1);
        let spans_total: usize = b.tx_spans().iter().map(|s| s.len()).sum();
        assert!(spans_total < bytes.len(), "spans lie inside the block");
        txs += b.tx_count() as u64;
        prev = b.block_hash();
    }
    // meta.json's txcount is Core's chain tx count, which includes the genesis coinbase.
    assert_eq!(txs + genesis.txdata.len() as u64, meta_number("txcount"));
    assert_eq!(prev.to_string(), meta_field("tip"));
}

#[test]
fn fixture_txids_match_rust_bitcoin_including_witness_ones() {
    let mut witness = 0;
    for raw in chain_raw().iter().step_by(7) {
        let ours = Block::decode(raw).unwrap();
        let theirs = ours.to_bitcoin().unwrap();
        assert_eq!(ours.block_hash(), theirs.block_hash());
        for (i, tx) in theirs.txdata.iter().enumerate() {
            assert_eq!(ours.txid(i), Some(tx.compute_txid()));
            assert_eq!(ours.wtxid(i), Some(tx.compute_wtxid()));
            witness += ours.tx_spans()[i].has_witness() as usize;
        }
        assert_eq!(ours.weight(), theirs.weight().to_wu() as usize);
    }
    assert!(witness > 100, "fixture has segwit txs ({witness})");
}

#[test]
fn mempool_fixture_txs_decode_as_tx_messages() {
    let text = std::fs::read_to_string(fixture_dir().join("mempool.hex")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let raw = unhex(line);
        let Ok((Some(Message::Tx(tx)), 0)) = Message::decode_owned(Command::Tx, raw.clone()) else { panic!("tx {n}") };
        let theirs: bitcoin::Transaction = bitcoin::consensus::deserialize(&raw).unwrap();
        assert_eq!(tx.txid(), theirs.compute_txid());
        assert_eq!(tx.txid().to_byte_array(), theirs.compute_txid().to_byte_array());
        n += 1;
    }
    assert_eq!(n, meta_number("count"));
}
