//! The Prometheus endpoint, read with a third-party text-format parser (prometheus-parse): every
//! line parses, histograms come out as histograms with cumulative buckets ending at +Inf, and the
//! counters move by exactly what a raw peer sent.

mod rpc_support;

use bitcoin::p2p::message::NetworkMessage;
use oni::telemetry::MetricsServer;
use prometheus_parse::{LineInfo, Scrape, Value as PV};
use rpc_support::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// GETs /metrics and returns the raw text, checking the content type.
fn fetch(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// Parses strictly: no line may be one the parser does not recognise.
fn scrape(text: &str) -> Scrape {
    for line in text.lines() {
        let info = LineInfo::parse(line);
        assert!(
            !matches!(info, LineInfo::Ignored) || line.starts_with("# HELP"),
            "line the parser does not take: {line:?}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {metric} {labels:?}"));
    match &sample.value {
        PV::Counter(v) | PV::Gauge(v) | PV::Untyped(v) => *v,
        other => panic!("{metric} is not a number: {other:?}"),
    }
}

fn histogram(s: &Scrape, metric: &str) -> Vec<(f64, f64)> {
    let sample = s.samples.iter().find(|x| x.metric == metric).unwrap_or_else(|| panic!("no {metric}"));
    match &sample.value {
        PV::Histogram(h) => h.iter().map(|b| (b.less_than, b.count)).collect(),
        other => panic!("{metric} is not a histogram: {other:?}"),
    }
}

#[test]
fn counters_move_as_traffic_flows_and_the_text_parses() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    let m = MetricsServer::start(&n.node, "127.0.0.1:0".parse().unwrap()).unwrap();
    let before = scrape(&fetch(m.local_addr()));
    assert_eq!(value(&before, "oni_messages_received_total", &[("command", "ping")]), 0.0);
    assert_eq!(value(&before, "oni_peers", &[("direction", "inbound")]), 0.0);
    let ticks_before = value(&before, "oni_ticks_total", &[]);

    let mut p = RawPeer::connect(n.node.local_addr().unwrap());
    let v = p.version();
    p.send(v);
    p.send(NetworkMessage::Verack);
    for i in 0..5 {
        p.send(NetworkMessage::Ping(i));
    }
    let sent: u64 = p.sent.values().map(|e| e.1).sum();
    let after = wait_for(10, "the pings counted", || {
        p.drain(Duration::from_millis(20));
        let s = scrape(&fetch(m.local_addr()));
        (value(&s, "oni_messages_received_total", &[("command", "ping")]) == 5.0
            && value(&s, "oni_messages_sent_total", &[("command", "pong")]) == 5.0)
            .then_some(s)
    });
    assert_eq!(value(&after, "oni_received_bytes_total", &[("command", "ping")]), 5.0 * 32.0);
    assert_eq!(value(&after, "oni_received_bytes_total", &[("command", "verack")]), 24.0);
    assert_eq!(value(&after, "oni_messages_received_total", &[("command", "version")]), 1.0);
    assert_eq!(value(&after, "oni_peers", &[("direction", "inbound")]), 1.0);
    assert_eq!(value(&after, "oni_peers_ready", &[]), 1.0);
    assert_eq!(value(&after, "oni_connections_total", &[("direction", "inbound")]), 1.0);
    assert_eq!(value(&after, "oni_handshakes_total", &[]), 1.0);
    assert!(value(&after, "oni_ticks_total", &[]) > ticks_before);
    let port = p.stream.local_addr().unwrap().port().to_string();
    let peer = after
        .samples
        .iter()
        .find(|x| {
            x.metric == "oni_peer_received_bytes_total" && x.labels.get("addr").is_some_and(|a| a.ends_with(&port))
        })
        .expect("a per-peer series");
    assert_eq!(peer.value, PV::Counter(sent as f64));
    assert_eq!(peer.labels.get("direction"), Some("inbound"));

    // Histograms: cumulative buckets ending at +Inf, equal to _count.
    let h = histogram(&after, "oni_handshake_duration_seconds");
    assert_eq!(h.last().unwrap().0, f64::INFINITY);
    assert!(h.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{h:?}");
    assert_eq!(h.last().unwrap().1, 1.0);
    assert_eq!(value(&after, "oni_handshake_duration_seconds_count", &[]), 1.0);
    let ticks = histogram(&after, "oni_tick_seconds");
    assert_eq!(ticks.last().unwrap().1, value(&after, "oni_tick_seconds_count", &[]));
    assert!(ticks.last().unwrap().1 > 0.0);
    // Every system is timed.
    for system in ["ingest", "decode", "handshake", "ping", "egress", "teardown", "telemetry"] {
        assert!(value(&after, "oni_system_runs_total", &[("system", system)]) > 0.0, "{system}");
    }

    // A disconnect is counted under its reason.
    let id = n.call("getpeerinfo", json!([]))[0]["id"].clone();
    n.call("disconnectnode", json!({"nodeid": id}));
    let gone = wait_for(10, "the disconnect counted", || {
        let s = scrape(&fetch(m.local_addr()));
        (value(&s, "oni_disconnects_total", &[("reason", "manual")]) == 1.0).then_some(s)
    });
    assert_eq!(value(&gone, "oni_peers", &[("direction", "inbound")]), 0.0);
    assert_eq!(value(&gone, "oni_disconnects_total", &[("reason", "peer_closed")]), 0.0);
}

#[test]
fn only_get_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start(dir.path());
    let m = MetricsServer::start(&n.node, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut s = TcpStream::connect(m.local_addr()).unwrap();
    let r = exchange(&mut s, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    let mut s = TcpStream::connect(m.local_addr()).unwrap();
    let r = exchange(&mut s, b"POST /metrics HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_eq!(r.status, 413, "the metrics endpoint takes no body");
}

#[test]
fn pool_metrics_follow_the_pool_and_announcements_are_timed() {
    use oni::node::NodeConfig;
    use oni_systems::wire::Network;
    let dir = tempfile::tempdir().unwrap();
    let n = TestRpcNode::start_node(NodeConfig::new(Network::Regtest), dir.path(), |_| {});
    load_fixture_chain(&n.node);
    let m = MetricsServer::start(&n.node, "127.0.0.1:0".parse().unwrap()).unwrap();
    let before = scrape(&fetch(m.local_addr()));
    assert_eq!(value(&before, "oni_mempool_transactions", &[]), 0.0);
    // The chain's figures, as getblockchaininfo gives them.
    let chain = n.call("getblockchaininfo", json!([]));
    assert_eq!(value(&before, "oni_chain_height", &[]), chain["blocks"].as_f64().unwrap());
    assert_eq!(value(&before, "oni_chain_headers", &[]), chain["headers"].as_f64().unwrap());
    assert_eq!(value(&before, "oni_chain_height", &[]), 2100.0);
    assert_eq!(value(&before, "oni_chain_verification_progress", &[]), chain["verificationprogress"].as_f64().unwrap());
    assert_eq!(value(&before, "oni_chain_verification_progress", &[]), 1.0);
    assert_eq!(value(&before, "oni_peers_downloading_blocks", &[]), 0.0);
    assert_eq!(value(&before, "oni_mempool_min_feerate_sat_per_kvb", &[]), 100.0);
    assert_eq!(value(&before, "oni_mempool_max_bytes", &[]), 300e6);
    assert_eq!(value(&before, "oni_tx_relay_slowed", &[]), 0.0);
    assert_eq!(value(&before, "oni_orphanage_transactions", &[]), 0.0);
    assert_eq!(value(&before, "oni_mempool_removed_total", &[("reason", "size_limit")]), 0.0);
    // Core's shared reason strings stay apart by cause.
    assert_eq!(value(&before, "oni_tx_rejected_total", &[("reason", "dust"), ("cause", "dust_with_fee")]), 0.0);
    assert_eq!(
        value(&before, "oni_tx_rejected_total", &[("reason", "bad-txns-in-belowout"), ("cause", "in_below_out")]),
        0.0
    );
    assert_eq!(histogram(&before, "oni_tx_forward_seconds").last().unwrap(), &(f64::INFINITY, 0.0));
    histogram(&before, "oni_tx_relay_seconds");

    // A peer that takes transactions, then the fixture's pool through the RPC.
    let mut p = RawPeer::connect(n.node.local_addr().unwrap());
    let v = p.version();
    p.send(v);
    p.send(NetworkMessage::Verack);
    wait_for(10, "the peer ready", || (n.call("getpeerinfo", json!([]))[0]["state"] == "ready").then_some(()));
    for h in fixture_mempool_hex() {
        n.call("sendrawtransaction", json!([h]));
    }
    let info = n.call("getmempoolinfo", json!([]));
    let s = scrape(&fetch(m.local_addr()));
    assert_eq!(value(&s, "oni_mempool_transactions", &[]), 53.0);
    assert_eq!(value(&s, "oni_mempool_vbytes", &[]), info["bytes"].as_f64().unwrap());
    assert_eq!(value(&s, "oni_mempool_usage_bytes", &[]), info["usage"].as_f64().unwrap());
    assert_eq!(value(&s, "oni_tx_accepted_total", &[]), 53.0);
    // Announced to the peer on its trickle: each first announcement is timed.
    let s = wait_for(40, "the pool announced", || {
        p.drain(Duration::from_millis(100));
        let s = scrape(&fetch(m.local_addr()));
        (value(&s, "oni_tx_forward_seconds_count", &[]) == 53.0).then_some(s)
    });
    let h = histogram(&s, "oni_tx_forward_seconds");
    assert_eq!(h.last().unwrap(), &(f64::INFINITY, 53.0));
    assert!(h.windows(2).all(|w| w[0].1 <= w[1].1), "{h:?}");
    assert!(value(&s, "oni_tx_announced_total", &[]) >= 53.0);
    assert!(p.received.get("inv").is_some_and(|e| e.0 >= 1), "{:?}", p.received);
}
