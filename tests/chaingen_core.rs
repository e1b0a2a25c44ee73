//! The heavy chain generator's figures hold in Bitcoin Core itself: a bitcoind that loads the
//! generated blocks by `submitblock` ends at the same tip, with the same transaction count
//! (`getchaintxstats`) and the same number of unspent outputs (`gettxoutsetinfo`) the generator
//! reports — the numbers the heavy chain's README states.

mod common;

use bitcoin::consensus::encode::serialize_hex;
use common::bitcoind::{Bitcoind, CoreExes};
use oni::chaingen::ChainGen;
use serde_json::Value;

#[test]
fn core_loads_the_generated_chain_and_agrees_on_tip_transactions_and_unspent_outputs() {
    let Some(exes) = CoreExes::find() else { return };
    let core = Bitcoind::start(&exes, &["-maxtipage=4000000000".to_string()]);
    let mut gen = ChainGen::new(3);
    let mut tip = String::new();
    for height in 1..=250u32 {
        let block = gen.next_block(40_000);
        let r = core.cli(&["submitblock", &serialize_hex(&block)]).unwrap();
        assert!(r.trim().is_empty(), "block {height} refused by Core: {r}");
        tip = block.block_hash().to_string();
    }
    let stats = gen.stats();
    assert_eq!(core.cli(&["getbestblockhash"]).unwrap().trim(), tip);
    let txstats: Value = serde_json::from_str(&core.cli(&["getchaintxstats"]).unwrap()).unwrap();
    // Core counts the genesis coinbase too.
    assert_eq!(txstats["txcount"].as_u64(), Some(stats.txs + 1), "{txstats}");
    let utxos: Value = serde_json::from_str(&core.cli(&["gettxoutsetinfo"]).unwrap()).unwrap();
    assert_eq!(utxos["txouts"].as_u64(), Some(stats.utxos), "{utxos}");
    assert!(stats.txs > 1_000 && stats.bytes > 2_000_000, "blocks that weigh something: {stats:?}");
}
