//! Target 3: the same `block` payload read by oni (`Block::decode_message`), by rust-bitcoin and
//! by Bitcoin Core's own parser (libbitcoinkernel). oni and Core accept the same inputs and agree
//! on the block's bytes, hash and every txid; oni's merkle root, witness root (from its wtxids),
//! weight and stripped size equal rust-bitcoin's; Core's merkle check passes only when oni's root
//! is the header's. The first input byte chooses whether the header's merkle root is first set to
//! the one the transactions give (so the matching-root paths are reached, not only mismatches).

#![no_main]

use bitcoin::hashes::Hash;
use bitcoinkernel::prelude::*;
use bitcoinkernel::{BlockCheckResult, ChainParams, ChainType, BLOCK_CHECK_BASE, BLOCK_CHECK_MERKLE};
use libfuzzer_sys::fuzz_target;
use oni_fuzz::rust_bitcoin_tx;
use oni_systems::wire::{sha256d, Block, Tx};

thread_local! {
    static PARAMS: ChainParams = ChainParams::new(ChainType::Regtest);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let mut payload = body.to_vec();
    if selector & 1 == 1 {
        if let Ok((block, _)) = Block::decode_message(payload.clone()) {
            if let Some(root) = block.compute_merkle_root() {
                payload[36..68].copy_from_slice(root.as_byte_array());
            }
        }
    }
    let ours = Block::decode_message(payload.clone());
    let core = bitcoinkernel::Block::new(&payload);
    assert_eq!(
        ours.is_ok(),
        core.is_ok(),
        "oni {:?} and Core disagree on whether the block reads",
        ours.as_ref().err()
    );
    let (Ok((block, ignored)), Ok(core)) = (ours, core) else { return };

    let core_bytes = core.consensus_encode().expect("Core serializes what it parsed");
    assert_eq!(block.raw(), &core_bytes[..], "oni keeps other bytes than Core read");
    assert_eq!(block.raw().len() + ignored, payload.len());
    assert_eq!(block.block_hash().to_byte_array(), core.hash().to_bytes(), "block hash differs from Core's");
    assert_eq!(block.tx_count(), core.transaction_count());
    for (i, core_tx) in core.transactions().enumerate() {
        assert_eq!(block.txid(i).map(|t| t.to_byte_array()), Some(core_tx.txid().to_bytes()), "txid {i}");
        let bytes = core_tx.consensus_encode().expect("Core serializes its tx");
        assert_eq!(block.wtxid(i).map(|w| w.to_byte_array()), Some(sha256d(&bytes)), "wtxid {i}");
        assert_eq!(block.tx_bytes(i), Some(&bytes[..]));
    }

    // Core's merkle check (on top of its base checks) passes only when oni's root is the header's.
    let root_matches = block.compute_merkle_root().map(|r| r.to_byte_array())
        == Some(block.header_bytes()[36..68].try_into().unwrap());
    PARAMS.with(|params| {
        let base = matches!(core.check(params, BLOCK_CHECK_BASE), BlockCheckResult::Valid);
        let merkle = matches!(core.check(params, BLOCK_CHECK_BASE | BLOCK_CHECK_MERKLE), BlockCheckResult::Valid);
        if base && merkle {
            assert!(root_matches, "Core's merkle check passed where oni's root differs from the header's");
        }
    });

    // Each transaction as rust-bitcoin reads it, then the whole block.
    for i in 0..block.tx_count() {
        let bytes = block.tx_bytes(i).expect("in range");
        let tx = Tx::decode(bytes).expect("a transaction of a decoded block decodes alone");
        rust_bitcoin_tx::agrees(&tx, bytes);
    }
    let Ok((theirs, used)) = bitcoin::consensus::deserialize_partial::<bitcoin::Block>(&payload) else {
        // rust-bitcoin refuses only blocks holding Core's empty transaction form (see rust_bitcoin_tx).
        assert!(
            (0..block.tx_count()).any(|i| block.tx_bytes(i).is_some_and(|b| b.len() == 10)),
            "rust-bitcoin refused a block oni and Core read"
        );
        return;
    };
    assert_eq!(used, block.raw().len());
    assert_eq!(theirs.block_hash(), block.block_hash());
    assert_eq!(theirs.compute_merkle_root(), block.compute_merkle_root(), "merkle root differs from rust-bitcoin's");
    assert_eq!(theirs.check_merkle_root(), root_matches);
    assert_eq!(theirs.weight().to_wu(), block.weight() as u64, "weight differs from rust-bitcoin's");
    let stripped = (block.weight() - block.raw().len()) / 3;
    assert_eq!(bitcoin::consensus::serialize(&strip(&theirs)).len(), stripped, "stripped size differs");
    assert_eq!(theirs.witness_root().map(|r| r.to_byte_array()), witness_root(&block), "witness root differs");
});

/// The block without witnesses (its stripped serialization).
fn strip(block: &bitcoin::Block) -> bitcoin::Block {
    let mut b = block.clone();
    for tx in &mut b.txdata {
        for input in &mut tx.input {
            input.witness.clear();
        }
    }
    b
}

/// BIP141's witness root from oni's wtxids (the coinbase's taken as zero), as the witness
/// commitment is checked against it.
fn witness_root(block: &Block) -> Option<[u8; 32]> {
    let mut level: Vec<[u8; 32]> = (0..block.tx_count())
        .map(|i| if i == 0 { [0; 32] } else { block.wtxid(i).expect("in range").to_byte_array() })
        .collect();
    if level.is_empty() {
        return None;
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&pair[0]);
                buf[32..].copy_from_slice(pair.get(1).unwrap_or(&pair[0]));
                sha256d(&buf)
            })
            .collect();
    }
    Some(level[0])
}
