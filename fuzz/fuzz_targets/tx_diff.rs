//! Target 2: the same `tx` payload read by oni (`Tx::decode_message`), by rust-bitcoin and by
//! Bitcoin Core's own parser (libbitcoinkernel). oni and Core accept the same inputs and agree on
//! the transaction's bytes, txid and wtxid; where rust-bitcoin reads it too, its ids, weight,
//! sizes and sigop cost equal oni's.

#![no_main]

use bitcoin::hashes::Hash;
use bitcoinkernel::prelude::*;
use libfuzzer_sys::fuzz_target;
use oni_fuzz::rust_bitcoin_tx;
use oni_systems::wire::{sha256d, Tx};

fuzz_target!(|data: &[u8]| {
    let ours = Tx::decode_message(data.to_vec());
    let core = bitcoinkernel::Transaction::new(data);
    assert_eq!(ours.is_ok(), core.is_ok(), "oni {:?} and Core disagree on whether the tx reads", ours.as_ref().err());
    let (Ok((tx, ignored)), Ok(core)) = (ours, core) else { return };

    // Core's re-serialization is the transaction's own bytes: what oni keeps, trailing bytes cut.
    let core_bytes = core.consensus_encode().expect("Core serializes what it parsed");
    assert_eq!(tx.raw(), &core_bytes[..], "oni keeps other bytes than Core read");
    assert_eq!(tx.raw().len() + ignored, data.len());
    assert_eq!(tx.txid().to_byte_array(), core.txid().to_bytes(), "txid differs from Core's");
    assert_eq!(tx.wtxid().to_byte_array(), sha256d(&core_bytes), "wtxid differs from Core's");
    assert_eq!(tx.span().has_witness(), core.inputs().any(|i| !i.witness_stack().is_empty()));

    rust_bitcoin_tx::agrees(&tx, data);
});
