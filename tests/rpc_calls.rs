//! Every RPC call against an in-process node with real peers: getpeerinfo's figures against what a
//! raw peer really sent and received (bytes with headers, per command, exactly), the network calls,
//! bans that take effect and survive a restart, chain calls that answer only what is real, store
//! faults shown in `warnings` while they last, stop.

mod rpc_support;

use bitcoin::p2p::message::NetworkMessage;
use rpc_support::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

/// A raw peer through the handshake with the node, plus `pings` pings.
fn handshaken_peer(n: &TestRpcNode, pings: u64) -> RawPeer {
    let mut p = RawPeer::connect(n.node.local_addr().unwrap());
    let v = p.version();
    p.send(v);
    p.send(NetworkMessage::Verack);
    for i in 0..pings {
        p.send(NetworkMessage::Ping(i));
    }
    p
}

fn peer_by_port(n: &TestRpcNode, port: u16) -> Option<Value> {
    let peers = n.call("getpeerinfo", json!([]));
    peers.as_array().unwrap().iter().find(|p| p["addr"].as_str().unwrap().ends_with(&format!(":{port}"))).cloned()
}

fn per_msg(map: &BTreeMap<String, (u64, u64)>) -> Value {
    Value::Object(map.iter().map(|(k, (_, b))| (k.clone(), json!(b))).collect())
}

#[test]
fn getpeerinfo_agrees_exactly_with_what_the_peer_sent_and_got() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    let mut p = handshaken_peer(&n, 3);
    let port = p.stream.local_addr().unwrap().port();
    // Our pings are answered: wait for the three pongs, then compare both directions.
    let info = wait_for(10, "three pongs and the counts to settle", || {
        p.drain(Duration::from_millis(100));
        if p.received.get("pong").map_or(0, |e| e.0) < 3 {
            return None;
        }
        let info = peer_by_port(&n, port)?;
        // Nothing in flight: what the node counts as sent is what we have read.
        (info["bytessent_per_msg"] == per_msg(&p.received)).then_some(info)
    });
    assert_eq!(info["bytesrecv_per_msg"], per_msg(&p.sent), "{info}");
    let sent_total: u64 = p.sent.values().map(|e| e.1).sum();
    let got_total: u64 = p.received.values().map(|e| e.1).sum();
    assert_eq!(info["bytesrecv"], sent_total);
    assert_eq!(info["bytessent"], got_total);
    assert_eq!(info["bytesrecv_per_msg"]["verack"], 24, "a verack is a bare 24-byte header");
    assert_eq!(info["bytesrecv_per_msg"]["ping"], 3 * 32);
    assert_eq!(info["msgsrecv_per_msg"], json!({"version": 1, "verack": 1, "ping": 3}));
    // The rest of Core's fields, with their types.
    assert_eq!(info["subver"], "/rawpeer:1.0/");
    assert_eq!(info["version"], 70016);
    assert_eq!(info["services"], "0000000000000009");
    assert_eq!(info["servicesnames"], json!(["NETWORK", "WITNESS"]));
    assert_eq!(info["inbound"], true);
    assert_eq!(info["connection_type"], "inbound");
    assert_eq!(info["network"], "not_publicly_routable");
    assert_eq!(info["relaytxes"], true);
    assert_eq!(info["synced_headers"], -1);
    assert_eq!(info["inflight"], json!([]));
    assert_eq!(info["transport_protocol_type"], "v1");
    assert_eq!(info["session_id"], "");
    assert_eq!(info["state"], "ready");
    assert_eq!(info["score"], 0);
    assert_eq!(info["sendqueue_bytes"], 0);
    assert_eq!(info["addr_rate_limited"], 0);
    assert_eq!(info["addr_processed"], 0);
    assert_eq!((info["last_block"].as_u64(), info["last_transaction"].as_u64()), (Some(0), Some(0)), "none yet");
    assert!(info["handshake_ms"].is_u64());
    assert_eq!(info["addrlocal"], n.node.local_addr().unwrap().to_string());
    for f in ["id", "lastsend", "lastrecv", "conntime", "startingheight"] {
        assert!(info[f].is_number(), "{f}: {info}");
    }
    // Totals cover this peer.
    let totals = n.call("getnettotals", json!([]));
    assert_eq!(totals["totalbytesrecv"], sent_total);
    assert_eq!(totals["totalbytessent"], got_total);
    assert!(totals["timemillis"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(totals["uploadtarget"]["target"], 0);
}

#[test]
fn network_info_counts_and_disconnects() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    let a = handshaken_peer(&n, 0);
    let b = handshaken_peer(&n, 0);
    wait_for(10, "two peers", || (n.call("getconnectioncount", json!([])) == 2).then_some(()));
    let info = n.call("getnetworkinfo", json!([]));
    assert_eq!((info["connections"].clone(), info["connections_in"].clone()), (json!(2), json!(2)));
    assert_eq!(info["connections_out"], 0);
    assert_eq!(info["protocolversion"], 70016);
    assert!(info["subversion"].as_str().unwrap().starts_with("/oni:"));
    // NETWORK | WITNESS from the start, as Core advertises them while it syncs; P2P_V2 (BIP324).
    assert_eq!(info["localservices"], "0000000000000809");
    assert_eq!(info["localservicesnames"], serde_json::json!(["NETWORK", "WITNESS", "P2P_V2"]));
    assert_eq!(info["networkactive"], true);
    assert_eq!(info["networks"].as_array().unwrap().len(), 5);
    // By id...
    let a_port = a.stream.local_addr().unwrap().port();
    let id = peer_by_port(&n, a_port).unwrap()["id"].clone();
    assert_eq!(n.call("disconnectnode", json!({"nodeid": id})), Value::Null);
    wait_for(10, "a gone", || peer_by_port(&n, a_port).is_none().then_some(()));
    // ...and by address.
    let b_addr = b.stream.local_addr().unwrap().to_string();
    assert_eq!(n.call("disconnectnode", json!([b_addr])), Value::Null);
    wait_for(10, "b gone", || (n.call("getconnectioncount", json!([])) == 0).then_some(()));
    let (_, v) = n.call_legacy("disconnectnode", json!(["", 999]));
    assert_eq!(v["error"], json!({"code": -29, "message": "Node not found in connected nodes"}));
    let (_, v) = n.call_legacy("disconnectnode", json!(["1.2.3.4:5", 3]));
    assert_eq!(v["error"]["code"], -8);
    let (_, v) = n.call_legacy("disconnectnode", json!([]));
    assert_eq!(v["error"]["code"], -8);
    let disconnects = n.call("dumpcomponents", json!([]))["resources"]["metrics"]["disconnects"].clone();
    assert!(disconnects.as_array().unwrap().iter().any(|d| d == 2), "two manual disconnects counted: {disconnects}");
}

#[test]
fn addnode_keeps_a_manual_peer_and_onetry_dials_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = target.local_addr().unwrap().to_string();
    assert_eq!(n.call("addnode", json!([t, "add"])), Value::Null);
    let (_, v) = n.call_legacy("addnode", json!([t, "add"]));
    assert_eq!(v["error"], json!({"code": -23, "message": "Error: Node already added"}));
    // The connections system dials it.
    let (_s, _) = target.accept().unwrap();
    let added = wait_for(10, "the added node connected", || {
        let a = n.call("getaddednodeinfo", json!([]));
        (a[0]["connected"] == true).then_some(a)
    });
    assert_eq!(added[0]["addednode"], t);
    assert_eq!(added[0]["addresses"][0], json!({"address": t, "connected": "outbound"}));
    let peer = n.call("getpeerinfo", json!([]))[0].clone();
    assert_eq!((peer["connection_type"].clone(), peer["inbound"].clone()), (json!("manual"), json!(false)));
    assert_eq!(n.call("getaddednodeinfo", json!([t]))[0]["addednode"], t);
    assert_eq!(n.call("addnode", json!({"node": t, "command": "remove"})), Value::Null);
    let (_, v) = n.call_legacy("addnode", json!([t, "remove"]));
    assert_eq!(v["error"]["code"], -24);
    let (_, v) = n.call_legacy("getaddednodeinfo", json!([t]));
    assert_eq!(v["error"], json!({"code": -24, "message": "Error: Node has not been added."}));
    assert_eq!(n.call("getaddednodeinfo", json!([])), json!([]));
    // onetry: one dial, not remembered.
    let once = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = once.local_addr().unwrap().to_string();
    assert_eq!(n.call("addnode", json!([o, "onetry"])), Value::Null);
    let _ = once.accept().unwrap();
    assert_eq!(n.call("getaddednodeinfo", json!([])), json!([]));
    let (_, v) = n.call_legacy("addnode", json!(["not-an-ip", "add"]));
    assert_eq!(v["error"]["code"], -8);
}

/// `addnode`'s `v2transport` argument, read off the wire: the dialed socket's first bytes are a
/// v1 `version` header with `false`, a BIP324 key (not the magic) by default; asking for v2 on a
/// node without it is Core's error.
#[test]
fn addnode_v2transport_decides_what_the_dial_opens_with() {
    use std::io::Read;
    let first_bytes = |l: &TcpListener| {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 16];
        s.read_exact(&mut b).unwrap();
        b
    };
    let mut v1_head = oni_systems::wire::Network::Regtest.magic().to_vec();
    v1_head.extend_from_slice(b"version\0\0\0\0\0");
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = plain.local_addr().unwrap().to_string();
    assert_eq!(n.call("addnode", json!([p, "add", false])), Value::Null);
    assert_eq!(first_bytes(&plain).to_vec(), v1_head, "v2transport=false: a v1 version first");
    let v2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let q = v2.local_addr().unwrap().to_string();
    assert_eq!(n.call("addnode", json!({"node": q, "command": "onetry"})), Value::Null);
    let key = first_bytes(&v2);
    assert_ne!(key[..4], v1_head[..4], "default: a BIP324 key, not a v1 header");
    // A node with v2 off refuses to be asked for it.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg = oni::node::NodeConfig::new(oni_systems::wire::Network::Regtest);
    cfg.datadir = Some(dir2.path().to_path_buf());
    cfg.config.services &= !oni_systems::wire::services::NODE_P2P_V2;
    let off = TestRpcNode::start_node(cfg, dir2.path(), |_| {});
    let (_, v) = off.call_legacy("addnode", json!([p, "onetry", true]));
    assert_eq!(
        v["error"],
        json!({"code": -8, "message": "Error: v2transport requested but not enabled (see -v2transport)"})
    );
}

#[test]
fn setban_drops_the_peer_and_bans_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let n = TestRpcNode::start(dir.path());
        let _p = handshaken_peer(&n, 0);
        wait_for(10, "the peer", || (n.call("getconnectioncount", json!([])) == 1).then_some(()));
        assert_eq!(n.call("setban", json!(["127.0.0.1", "add", 3600])), Value::Null);
        wait_for(10, "the banned peer dropped", || (n.call("getconnectioncount", json!([])) == 0).then_some(()));
        let (_, v) = n.call_legacy("setban", json!(["127.0.0.1", "add"]));
        assert_eq!(v["error"], json!({"code": -23, "message": "Error: IP/Subnet already banned"}));
        let until = 4_000_000_000i64;
        assert_eq!(n.call("setban", json!(["2001:db8::/32", "add", until, true])), Value::Null);
        let (_, v) = n.call_legacy("setban", json!(["10.0.0.1", "add", 5, true]));
        assert_eq!(v["error"]["code"], -8, "absolute time in the past");
        assert_eq!(n.call("setban", json!(["192.168.0.0/16", "add"])), Value::Null);
        assert_eq!(n.call("setban", json!(["192.168.0.0/16", "remove"])), Value::Null);
        let (_, v) = n.call_legacy("setban", json!(["192.168.0.0/16", "remove"]));
        assert_eq!(v["error"]["code"], -30);
        // A banned address cannot connect.
        let mut again = RawPeer::connect(n.node.local_addr().unwrap());
        let v = again.version();
        again.send(v);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(n.call("getconnectioncount", json!([])), 0);
    }
    let n = TestRpcNode::start(dir.path());
    let bans = n.call("listbanned", json!([]));
    let bans = bans.as_array().unwrap();
    assert_eq!(bans.len(), 2, "{bans:?}");
    let v4 = bans.iter().find(|b| b["address"] == "127.0.0.1/32").expect("the host ban survived");
    assert_eq!(v4["ban_duration"], 3600);
    let rem = v4["time_remaining"].as_i64().unwrap();
    assert!((3590..=3600).contains(&rem), "{rem}");
    assert_eq!(v4["banned_until"].as_i64().unwrap() - v4["ban_created"].as_i64().unwrap(), 3600);
    let v6 = bans.iter().find(|b| b["address"] == "2001:db8::/32").unwrap();
    assert_eq!(v6["banned_until"], 4_000_000_000i64);
    assert_eq!(n.call("clearbanned", json!([])), Value::Null);
    assert_eq!(n.call("listbanned", json!([])), json!([]));
    drop(n);
    let n = TestRpcNode::start(dir.path());
    assert_eq!(n.call("listbanned", json!([])), json!([]), "clearbanned is durable too");
}

#[test]
fn chain_calls_answer_from_the_header_tree() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    // A fresh regtest node: genesis only.
    let genesis = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
    assert_eq!(n.call("getblockcount", json!([])), 0);
    assert_eq!(n.call("getbestblockhash", json!([])), genesis);
    assert_eq!(n.call("getblockhash", json!([0])), genesis);
    let info = n.call("getblockchaininfo", json!([]));
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 0);
    assert_eq!(info["headers"], 0);
    assert_eq!(info["bestblockhash"], genesis);
    assert_eq!(info["chainwork"], format!("{:064x}", 2));
    let h = n.call("getblockheader", json!([genesis]));
    assert_eq!(h["height"], 0);
    assert_eq!(h["confirmations"], 1);
    assert_eq!(h["bits"], "207fffff");
    assert_eq!(h["merkleroot"], "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
    assert!(h.get("previousblockhash").is_none());
    let raw = n.call("getblockheader", json!([genesis, false]));
    assert_eq!(raw.as_str().map(str::len), Some(160));
    let (_, v) = n.call_legacy("getblockhash", json!([1]));
    assert_eq!(v["error"], json!({"code": -8, "message": "Block height out of range"}));
    let (_, v) = n.call_legacy("getblockheader", json!(["00".repeat(32)]));
    assert_eq!(v["error"], json!({"code": -5, "message": "Block not found"}));
    let (_, v) = n.call_legacy("getblockheader", json!(["zz"]));
    assert_eq!(v["error"]["code"], -8);
}

/// (header saves failed, coin store writes failed, the height the pool's coins are at).
fn fault_figures(n: &TestRpcNode) -> (u64, u64, Option<u32>) {
    n.node
        .with_world(|w| {
            let m = w.resource::<oni_systems::resources::Metrics>();
            let tip = w.resource::<oni_systems::mempool::CoinsTip>().0;
            (m.header_save_failures, m.coin_store_write_failures, tip)
        })
        .unwrap()
}

#[test]
fn store_faults_show_in_warnings_while_they_last_and_nothing_is_lost_when_they_clear() {
    use bitcoin::p2p::message_blockdata::Inventory;
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    assert_eq!(n.call("getblockchaininfo", json!([]))["warnings"], json!([]));
    // A full disk under both stores, until cleared.
    n.node
        .with_world(|w| {
            w.resource::<oni::node::persist::DurableStore>().0.inject_header_save_failures(usize::MAX);
            w.resource::<oni::coins::CoinStoreHandle>().0.inject_write_failures(usize::MAX);
        })
        .unwrap();
    // A peer announces the fixture's first 20 blocks and serves them.
    let blocks: Vec<bitcoin::Block> = fixture_lines("chain.hex")[..20]
        .iter()
        .map(|l| bitcoin::consensus::encode::deserialize_hex(l).unwrap())
        .collect();
    let mut p = handshaken_peer(&n, 0);
    p.send(NetworkMessage::Headers(blocks.iter().map(|b| b.header).collect()));
    let mut served = 0;
    let warnings = wait_for(60, "both faults in warnings, with the chain validated all the same", || {
        p.drain(Duration::from_millis(50));
        for m in std::mem::take(&mut p.inbox) {
            let NetworkMessage::GetData(items) = m else { continue };
            for item in items {
                let hash = match item {
                    Inventory::Block(h) | Inventory::WitnessBlock(h) => h,
                    _ => continue,
                };
                if let Some(b) = blocks.iter().find(|b| b.block_hash() == hash) {
                    p.send(NetworkMessage::Block(b.clone()));
                    served += 1;
                }
            }
        }
        let info = n.call("getblockchaininfo", json!([]));
        let done = info["blocks"] == 20 && info["warnings"].as_array().is_some_and(|w| w.len() == 2);
        done.then(|| info["warnings"].clone())
    });
    assert!(served >= 20);
    let text = warnings.to_string();
    assert!(text.contains("coin store") && text.contains("block headers"), "{text}");
    assert_eq!(n.call("getnetworkinfo", json!([]))["warnings"], warnings, "the same list in both calls");
    // The coin follower's count reaches the world's metrics on the tick after it raised the warning.
    let (header_failures, coin_failures, pool_tip) = wait_for(10, "both failure counters", || {
        let f = fault_figures(&n);
        (f.0 >= 1 && f.1 >= 1).then_some(f)
    });
    assert!(header_failures >= 1 && coin_failures >= 1, "{header_failures} {coin_failures}");
    // Exported for scraping as counters, with the figures of the same moment.
    let (m, text) = n
        .node
        .with_world(|w| {
            let m = w.resource::<oni_systems::resources::Metrics>().clone();
            (m, oni::telemetry::prometheus::render(w))
        })
        .unwrap();
    for (name, v) in
        [("header_save_failures", m.header_save_failures), ("coin_store_write_failures", m.coin_store_write_failures)]
    {
        assert!(text.contains(&format!("\noni_{name}_total {v}\n")), "oni_{name}_total {v} missing");
    }
    assert_eq!(pool_tip, Some(0), "the pool has heard of no block while the coin store fails");

    // The disk has room again: within a backoff (5 s at most) the warnings are gone, both stores
    // hold the chain, and the pool heard of every block.
    n.node
        .with_world(|w| {
            w.resource::<oni::node::persist::DurableStore>().0.inject_header_save_failures(0);
            w.resource::<oni::coins::CoinStoreHandle>().0.inject_write_failures(0);
        })
        .unwrap();
    wait_for(30, "warnings cleared", || {
        (n.call("getblockchaininfo", json!([]))["warnings"] == json!([])).then_some(())
    });
    assert_eq!(n.call("getnetworkinfo", json!([]))["warnings"], json!([]));
    wait_for(10, "the pool at the tip", || (fault_figures(&n).2 == Some(20)).then_some(()));
    let (headers, coins) = n
        .node
        .with_world(|w| {
            let headers = w.resource::<oni::node::persist::DurableStore>().0.load_headers().unwrap();
            (headers.len(), w.resource::<oni::coins::CoinStoreHandle>().0.best().unwrap())
        })
        .unwrap();
    assert_eq!(headers, 20);
    assert_eq!((coins.height, coins.hash), (20, blocks[19].block_hash()));
}

#[test]
fn help_uptime_dump_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    let p = handshaken_peer(&n, 1);
    let sent: u64 = p.sent.values().map(|e| e.1).sum();
    let help = n.call("help", json!([]));
    let help = help.as_str().unwrap();
    for m in ["getpeerinfo", "setban", "listbanned", "stop", "dumpcomponents", "getblockcount"] {
        assert!(help.lines().any(|l| l.starts_with(m)), "{m} missing from help");
    }
    assert!(help.contains("== Network =="));
    assert_eq!(n.call("help", json!(["nope"])), "help: unknown command: nope");
    assert!(n.call("uptime", json!([])).is_u64());
    let dump = wait_for(10, "all of the peer's bytes counted", || {
        let d: oni::dump::Dump = serde_json::from_value(n.call("dumpcomponents", json!([]))).unwrap();
        (d.peers.len() == 1 && d.peers[0].stats.bytes_in == sent).then_some(d)
    });
    assert_eq!(dump.peers[0].negotiated.user_agent.as_slice(), b"/rawpeer:1.0/");
    assert!(dump.peers[0].addr_relay.is_some(), "the address gossip component is dumped");
    let timings = dump.resources.timings.expect("the node measures its systems");
    assert!(timings.systems.iter().any(|s| s.name.ends_with("::ingest") && s.runs > 0), "{timings:?}");
    assert!(timings.tick_us.count > 0);
    assert_eq!(dump.resources.config.network, oni_systems::wire::Network::Regtest);
    assert_eq!(n.call("stop", json!([])), "oni stopping");
    assert!(n.rpc.stop_requested());
    wait_for(10, "the node stopped", || (!n.node.is_running()).then_some(()));
}
