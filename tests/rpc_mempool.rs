//! The pool calls against an in-process node holding Core's fixture chain: Core's 53 pool
//! transactions sent with `sendrawtransaction` and read back (`getrawmempool`, `getmempoolentry`,
//! `getmempoolinfo`, `getrawtransaction`) with figures that agree with each other and with the
//! transactions; Core's error codes and reasons for what the pool refuses; `testmempoolaccept`
//! leaving the pool as it was.

mod rpc_support;

use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Amount, Transaction};
use oni::node::NodeConfig;
use oni_systems::wire::Network;
use rpc_support::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A node without a datadir (scripts skipped, no block store) holding the fixture chain.
fn pool_node(dir: &std::path::Path) -> TestRpcNode {
    let n = TestRpcNode::start_node(NodeConfig::new(Network::Regtest), dir, |_| {});
    load_fixture_chain(&n.node);
    n
}

/// The error object of a call that must fail.
fn call_err(n: &TestRpcNode, method: &str, params: Value) -> (i64, String) {
    let (_, v) = post(
        n.rpc.local_addr(),
        Some(&n.auth),
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
    );
    let e = &v["error"];
    assert!(e.is_object(), "{method} should fail: {v}");
    (e["code"].as_i64().unwrap(), e["message"].as_str().unwrap().to_string())
}

fn tx_of(hex: &str) -> Transaction {
    deserialize_hex(hex).unwrap()
}

fn sat(v: &Value) -> u64 {
    let text = v.to_string();
    let (w, f) = text.split_once('.').unwrap();
    assert_eq!(f.len(), 8, "amounts carry eight decimals: {text}");
    w.parse::<u64>().unwrap() * 100_000_000 + f.parse::<u64>().unwrap()
}

#[test]
fn cores_pool_goes_in_and_reads_back_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let n = pool_node(dir.path());
    let hexes = fixture_mempool_hex();
    assert_eq!(hexes.len(), 53);
    let mut txids = Vec::new();
    for h in &hexes {
        let txid = n.call("sendrawtransaction", json!([h]));
        assert_eq!(txid, tx_of(h).compute_txid().to_string());
        txids.push(txid.as_str().unwrap().to_string());
    }
    // Sent again: Core answers with the txid and changes nothing.
    assert_eq!(n.call("sendrawtransaction", json!([hexes[0]])), json!(txids[0]));

    let info = n.call("getmempoolinfo", json!([]));
    assert_eq!(info["size"], 53, "{info}");
    assert_eq!(info["loaded"], true);
    assert_eq!(info["fullrbf"], true);
    assert_eq!(info["unbroadcastcount"], 53, "no peer asked for any");
    assert_eq!(info["maxmempool"], 300_000_000);
    assert_eq!(info["minrelaytxfee"].to_string(), "0.00000100");
    assert_eq!(info["incrementalrelayfee"].to_string(), "0.00000100");
    assert_eq!(info["mempoolminfee"].to_string(), "0.00000100");
    assert!(info["usage"].as_u64().unwrap() > info["bytes"].as_u64().unwrap());

    // Arrival order.
    assert_eq!(n.call("getrawmempool", json!([])), json!(txids));
    let seq = n.call("getrawmempool", json!([false, true]));
    assert_eq!(seq["txids"], json!(txids));
    assert_eq!(seq["mempool_sequence"], 53);
    let (code, msg) = call_err(&n, "getrawmempool", json!([true, true]));
    assert_eq!((code, msg.as_str()), (-8, "Verbose results cannot contain mempool sequence values."));

    let verbose = n.call("getrawmempool", json!([true]));
    let entries = verbose.as_object().unwrap();
    assert_eq!(entries.len(), 53);
    let by_txid: BTreeMap<String, Transaction> =
        hexes.iter().map(|h| (tx_of(h).compute_txid().to_string(), tx_of(h))).collect();
    // Ancestors from `depends`, walked here.
    let ancestors = |txid: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![txid.to_string()];
        while let Some(t) = stack.pop() {
            for d in entries[&t]["depends"].as_array().unwrap() {
                if seen.insert(d.as_str().unwrap().to_string()) {
                    stack.push(d.as_str().unwrap().to_string());
                }
            }
        }
        seen
    };
    let (mut vbytes, mut fees, mut deepest) = (0, 0, 0);
    for (txid, e) in entries {
        let tx = &by_txid[txid];
        assert_eq!(e["wtxid"], tx.compute_wtxid().to_string());
        assert_eq!(e["weight"], tx.weight().to_wu());
        assert!(e["vsize"].as_u64().unwrap() >= tx.vsize() as u64);
        assert_eq!(e["height"], 2100);
        assert_eq!(e["unbroadcast"], true);
        assert!(e["bip125-replaceable"].is_boolean());
        assert_eq!(e["fees"]["base"], e["fees"]["modified"]);
        vbytes += e["vsize"].as_u64().unwrap();
        fees += sat(&e["fees"]["base"]);
        // In-pool parents are exactly the inputs' transactions that are in the pool.
        let parents: BTreeSet<String> =
            tx.input.iter().map(|i| i.previous_output.txid.to_string()).filter(|t| entries.contains_key(t)).collect();
        let depends: BTreeSet<String> =
            e["depends"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
        assert_eq!(depends, parents, "{txid}");
        for p in &parents {
            assert!(entries[p]["spentby"].as_array().unwrap().contains(&json!(txid)), "spentby mirrors depends");
        }
        let anc = ancestors(txid);
        assert_eq!(e["ancestorcount"], anc.len() + 1, "{txid}");
        let anc_size: u64 = anc.iter().map(|a| entries[a]["vsize"].as_u64().unwrap()).sum();
        assert_eq!(e["ancestorsize"], anc_size + e["vsize"].as_u64().unwrap());
        let anc_fee: u64 = anc.iter().map(|a| sat(&entries[a]["fees"]["base"])).sum();
        assert_eq!(sat(&e["fees"]["ancestor"]), anc_fee + sat(&e["fees"]["base"]));
        let desc: Vec<&String> = entries.keys().filter(|t| ancestors(t).contains(txid)).collect();
        assert_eq!(e["descendantcount"], desc.len() + 1, "{txid}");
        let desc_fee: u64 = desc.iter().map(|d| sat(&entries[*d]["fees"]["base"])).sum();
        assert_eq!(sat(&e["fees"]["descendant"]), desc_fee + sat(&e["fees"]["base"]));
        deepest = deepest.max(anc.len() + 1);
    }
    assert!(deepest >= 3, "the fixture has chains: deepest ancestor count {deepest}");
    assert_eq!(info["bytes"], vbytes);
    assert_eq!(sat(&info["total_fee"]), fees);

    // One entry alone is the same object.
    assert_eq!(n.call("getmempoolentry", json!([txids[5]])), entries[&txids[5]]);
    let absent = "00".repeat(32);
    assert_eq!(call_err(&n, "getmempoolentry", json!([absent])), (-5, "Transaction not in mempool".into()));
    let (code, msg) = call_err(&n, "getmempoolentry", json!(["abc"]));
    assert_eq!((code, msg.as_str()), (-8, "txid must be of length 64 (not 3, for 'abc')"));

    // getrawtransaction: the bytes as sent, or decoded.
    assert_eq!(n.call("getrawtransaction", json!([txids[7]])), json!(hexes[7]));
    let d = n.call("getrawtransaction", json!([txids[7], true]));
    assert_eq!(d, n.call("getrawtransaction", json!([txids[7], 1])));
    let tx = tx_of(&hexes[7]);
    assert_eq!(d["txid"], txids[7]);
    assert_eq!(d["hash"], tx.compute_wtxid().to_string());
    assert_eq!(d["hex"], hexes[7]);
    assert_eq!(d["size"], hexes[7].len() / 2);
    assert_eq!(d["vin"].as_array().unwrap().len(), tx.input.len());
    for (o, out) in d["vout"].as_array().unwrap().iter().zip(&tx.output) {
        assert_eq!(sat(&o["value"]), out.value.to_sat());
        assert!(o["scriptPubKey"]["type"].is_string());
    }
    let (code, msg) = call_err(&n, "getrawtransaction", json!([absent]));
    assert_eq!(code, -5);
    assert!(msg.starts_with("No such mempool transaction. Use -txindex"), "{msg}");
}

#[test]
fn refusals_carry_cores_codes_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let n = pool_node(dir.path());
    let hexes = fixture_mempool_hex();
    // A transaction whose parent is in the fixture's pool, sent before that parent.
    let child = hexes.iter().find(|h| {
        let tx = tx_of(h);
        tx.input.iter().any(|i| hexes.iter().any(|p| tx_of(p).compute_txid() == i.previous_output.txid))
    });
    let child = child.expect("the fixture has chains");
    assert_eq!(call_err(&n, "sendrawtransaction", json!([child])), (-25, "bad-txns-inputs-missingorspent".into()));
    // Spending more than its inputs (scripts are not checked here, amounts are).
    let mut over = tx_of(&hexes[0]);
    over.output[0].value = Amount::from_btc(20_000_000.0).unwrap();
    let (code, msg) = call_err(&n, "sendrawtransaction", json!([serialize_hex(&over)]));
    assert_eq!(code, -26);
    assert!(msg.starts_with("bad-txns-in-belowout"), "{msg}");
    // Undecodable.
    let (code, msg) = call_err(&n, "sendrawtransaction", json!(["00zz"]));
    assert_eq!((code, msg.as_str()), (-22, "TX decode failed. Make sure the tx has at least one input."));
    // Over the caller's fee ceiling: refused, nothing enters.
    let (code, msg) = call_err(&n, "sendrawtransaction", json!([hexes[0], 0.00000001]));
    assert_eq!((code, msg.as_str()), (-25, "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"));
    let (code, msg) = call_err(&n, "sendrawtransaction", json!([hexes[0], 1]));
    assert_eq!((code, msg.as_str()), (-8, "Fee rates larger than or equal to 1BTC/kvB are not accepted"));
    let (code, msg) = call_err(&n, "sendrawtransaction", json!([hexes[0], "x"]));
    assert_eq!((code, msg.as_str()), (-3, "Invalid amount"));
    assert_eq!(n.call("getmempoolinfo", json!([]))["size"], 0);
    // No ceiling at all (0) lets it in.
    let txid = tx_of(&hexes[0]).compute_txid().to_string();
    assert_eq!(n.call("sendrawtransaction", json!([hexes[0], 0])), json!(txid));
    // The tip's coinbase: its outputs are in the chain's coins.
    let tip = fixture_lines("chain.hex").pop().unwrap();
    let block: bitcoin::Block = deserialize_hex(&tip).unwrap();
    let coinbase = serialize_hex(&block.txdata[0]);
    assert_eq!(
        call_err(&n, "sendrawtransaction", json!([coinbase])),
        (-27, "Transaction outputs already in utxo set".into())
    );
}

#[test]
fn testmempoolaccept_reports_without_changing_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let n = pool_node(dir.path());
    let hexes = fixture_mempool_hex();
    let tx = tx_of(&hexes[0]);
    let rows = n.call("testmempoolaccept", json!([[hexes[0]]]));
    let r = &rows[0];
    assert_eq!(r["txid"], tx.compute_txid().to_string());
    assert_eq!(r["wtxid"], tx.compute_wtxid().to_string());
    assert_eq!(r["allowed"], true, "{r}");
    let vsize = r["vsize"].as_u64().unwrap();
    assert!(vsize >= tx.vsize() as u64);
    let fee = sat(&r["fees"]["base"]);
    assert!(fee > 0);
    assert_eq!(sat(&r["fees"]["effective-feerate"]), fee * 1000 / vsize);
    assert_eq!(r["fees"]["effective-includes"], json!([tx.compute_wtxid().to_string()]));
    assert_eq!(n.call("getmempoolinfo", json!([]))["size"], 0, "only a test");
    assert_eq!(n.call("getrawmempool", json!([])), json!([]));

    // A ceiling below its feerate: refused, and what follows is left unchecked (as Core).
    let rows = n.call("testmempoolaccept", json!([[hexes[0], hexes[1]], "0.00000001"]));
    assert_eq!(rows[0]["allowed"], false);
    assert_eq!(rows[0]["reject-reason"], "max-fee-exceeded");
    assert!(rows[1].get("allowed").is_none(), "{rows}");
    assert_eq!(rows[1]["txid"], tx_of(&hexes[1]).compute_txid().to_string());

    // A parent and its child (the parent spending only chain coins) pass as a package, not alone.
    let in_fixture = |t: &bitcoin::Txid| hexes.iter().position(|h| tx_of(h).compute_txid() == *t);
    let (parent, child) = hexes
        .iter()
        .find_map(|h| {
            let c = tx_of(h);
            let parents: BTreeSet<usize> = c.input.iter().filter_map(|i| in_fixture(&i.previous_output.txid)).collect();
            let p = *parents.iter().next()?;
            let roots = tx_of(&hexes[p]).input.iter().all(|i| in_fixture(&i.previous_output.txid).is_none());
            (parents.len() == 1 && roots).then(|| (hexes[p].clone(), h.clone()))
        })
        .expect("a parent of chain coins with one child");
    let rows = n.call("testmempoolaccept", json!([[parent, child]]));
    assert_eq!(rows[0]["allowed"], true, "{rows}");
    assert_eq!(rows[1]["allowed"], true, "{rows}");
    assert!(rows[1]["fees"]["base"].is_number());
    let rows = n.call("testmempoolaccept", json!([[child]]));
    assert_eq!(rows[0]["allowed"], false);
    assert_eq!(rows[0]["reject-reason"], "missing-inputs");
    let rows = n.call("testmempoolaccept", json!([[child, parent]]));
    for r in rows.as_array().unwrap() {
        assert_eq!(r["package-error"], "package-not-sorted", "{rows}");
        assert!(r.get("allowed").is_none());
    }
    // A failure leaves the rest of the package unreported.
    let mut over = tx_of(&parent);
    over.output[0].value = Amount::from_btc(20_000_000.0).unwrap();
    let rows = n.call("testmempoolaccept", json!([[serialize_hex(&over), hexes[1]]]));
    assert_eq!(rows[0]["allowed"], false);
    assert_eq!(rows[0]["reject-reason"], "bad-txns-in-belowout");
    assert!(rows[1].get("allowed").is_none(), "{rows}");
    assert_eq!(n.call("getmempoolinfo", json!([]))["size"], 0, "packages are only tests too");

    // Once in the pool it is a duplicate.
    n.call("sendrawtransaction", json!([hexes[0]]));
    let rows = n.call("testmempoolaccept", json!([[hexes[0]]]));
    assert_eq!(rows[0]["allowed"], false);
    assert_eq!(rows[0]["reject-reason"], "txn-already-in-mempool");
    assert_eq!(rows[0]["reject-details"], "txn-already-in-mempool");
    assert_eq!(n.call("getmempoolinfo", json!([]))["size"], 1);

    // The array's bounds and decoding.
    let e = call_err(&n, "testmempoolaccept", json!([[]]));
    assert_eq!(e, (-8, "Array must contain between 1 and 25 transactions.".into()));
    let e = call_err(&n, "testmempoolaccept", json!([vec![hexes[0].clone(); 26]]));
    assert_eq!(e.0, -8);
    let e = call_err(&n, "testmempoolaccept", json!([["beef"]]));
    assert_eq!(e, (-22, "TX decode failed: beef Make sure the tx has at least one input.".into()));
    let e = call_err(&n, "testmempoolaccept", json!(["notanarray"]));
    assert_eq!(e.0, -3);
}

#[test]
fn network_calls_report_the_pools_fees_and_help_lists_the_pool_calls() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(Network::Regtest);
    cfg.mempool.min_relay_feerate = 2_000;
    cfg.mempool.max_bytes = 5_000_000;
    let n = TestRpcNode::start_node(cfg, dir.path(), |_| {});
    let info = n.call("getnetworkinfo", json!([]));
    assert_eq!(info["relayfee"].to_string(), "0.00002000");
    assert_eq!(info["incrementalfee"].to_string(), "0.00000100");
    let pool = n.call("getmempoolinfo", json!([]));
    assert_eq!(pool["maxmempool"], 5_000_000);
    assert_eq!(pool["minrelaytxfee"].to_string(), "0.00002000");
    let help = n.call("help", json!([]));
    let help = help.as_str().unwrap();
    for m in ["getmempoolinfo", "getrawmempool", "getmempoolentry", "testmempoolaccept", "sendrawtransaction"] {
        assert!(help.contains(m), "{m} in {help}");
    }
    assert!(help.contains("== Rawtransactions =="), "{help}");
}

#[test]
fn the_pool_and_our_unbroadcast_transactions_survive_a_clean_restart() {
    use oni_systems::mempool::local::Unbroadcast;
    use oni_systems::mempool::pool::Mempool;
    use oni_systems::mempool::CoinsTip;
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut cfg = NodeConfig::new(Network::Regtest);
        cfg.datadir = Some(dir.path().to_path_buf());
        let n = TestRpcNode::start_node(cfg, dir.path(), |_| {});
        load_fixture_chain(&n.node);
        // The fixture's coins are given directly (the coin store has no blocks here).
        n.node.with_world(|w| w.insert_resource(CoinsTip(None))).unwrap();
        n
    };
    let n = start();
    for h in fixture_mempool_hex() {
        n.call("sendrawtransaction", json!([h]));
    }
    let before: BTreeSet<String> =
        n.call("getrawmempool", json!([])).as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    assert_eq!(before.len(), 53);
    n.node.shutdown();
    assert!(dir.path().join("mempool.dat").exists(), "saved at the clean stop");
    drop(n);
    let n = start();
    let after = wait_for(30, "the saved pool back in", || {
        let v = n.call("getrawmempool", json!([]));
        let txids: BTreeSet<String> = v.as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
        (txids.len() == 53).then_some(txids)
    });
    assert_eq!(after, before);
    let (unbroadcast, restored) = n
        .node
        .with_world(|w| {
            (w.resource::<Unbroadcast>().txids.len(), w.resource::<oni_systems::resources::Metrics>().tx_restored)
        })
        .unwrap();
    assert_eq!(unbroadcast, 53, "our own transactions are still to be broadcast");
    assert_eq!(restored, 53);
    assert_eq!(n.node.with_world(|w| w.resource::<Mempool>().len()).unwrap(), 53);
}
