//! Prometheus text exposition (format 0.0.4) of the world's telemetry: the `Metrics` resource
//! (counters by command, direction and reason; latency histograms with cumulative buckets and
//! `le="+Inf"`), peer gauges, bans, per-peer traffic and score, and the shell's tick timings.
//! Names start with `oni_`; times are in seconds, as Prometheus expects.

use super::timings::SystemTimings;
use crate::node::progress::ChainSnapshot;
use bevy_ecs::prelude::*;
use oni_systems::components::{Direction, PeerState, Score, SendQueue, Socket, Stats};
use oni_systems::mempool::orphanage::Orphanage;
use oni_systems::mempool::policy::TxReject;
use oni_systems::mempool::pool::Mempool;
use oni_systems::resources::reasons::CompactOutcome;
use oni_systems::resources::TxAnnounceState;
use oni_systems::resources::{AnnounceKind, BanList, DisconnectReason, Histogram, Metrics, Misbehavior};
use oni_systems::wire::{Command, DecodeError, HeaderError};
use std::fmt::Write;
use std::net::SocketAddr;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds the text; one family at a time.
struct Out {
    s: String,
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.s, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.s.push_str(name);
        if !labels.is_empty() {
            self.s.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.s.push(',');
                }
                let _ = write!(self.s, "{k}=\"{}\"", escape(v));
            }
            self.s.push('}');
        }
        let _ = writeln!(self.s, " {value}");
    }

    /// A counter family with one label over `(label value, count)` pairs.
    fn labelled(&mut self, name: &str, help: &str, label: &str, values: impl Iterator<Item = (&'static str, u64)>) {
        self.family(name, "counter", help);
        for (l, v) in values {
            self.sample(name, &[(label, l)], v);
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }

    /// A millisecond histogram rendered in seconds: cumulative buckets, +Inf, sum and count.
    fn histogram_ms(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = match h.bounds.get(i) {
                Some(b) => format!("{}", *b as f64 / 1000.0),
                None => "+Inf".to_string(),
            };
            self.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative);
        }
        self.sample(&format!("{name}_sum"), &[], h.sum as f64 / 1000.0);
        self.sample(&format!("{name}_count"), &[], h.count);
    }

    /// A histogram of plain quantities (counts, bytes), rendered as recorded.
    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = h.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            self.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative);
        }
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

fn by_command(v: &[u64]) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    Command::ALL.iter().zip(v).map(|(c, n)| (c.name(), *n))
}

/// `Metrics` fields rendered above under their own names and labels.
const RENDERED: &[&str] = &[
    "msgs_in",
    "bytes_in",
    "msgs_out",
    "bytes_out",
    "unknown_commands",
    "header_errors",
    "transports",
    "v2_failures",
    "decode_errors",
    "disconnects",
    "misbehavior",
    "connections",
    "peers",
    "peers_ready",
    "handshakes",
    "handshake_ms",
    "ping_rtt_ms",
    "block_download_ms",
    "block_announcements",
    "block_relay_ms",
    "block_arrival_ms",
    "compact_outcomes",
    "compact_missing_txs",
    "compact_block_bytes",
    "tx_relay_ms",
    "tx_rejected",
    "tx_forward_ms",
    "discouraged",
    "bans_escalated",
    "recv_pauses",
    "ticks",
    "inbound_recv_pool_bytes",
    "inbound_recv_pool_peak_bytes",
];

/// Every other plain counter of `Metrics` as `oni_<field>_total`, so a counter added to the resource
/// is exported without touching this file (a test fails if a non-counter field is left out).
fn render_other_counters(m: &Metrics, o: &mut Out) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(m) else { return };
    for (name, v) in &fields {
        if RENDERED.contains(&name.as_str()) {
            continue;
        }
        if let Some(n) = v.as_u64() {
            let metric = format!("oni_{name}_total");
            o.single(&metric, "counter", &format!("Metrics.{name}."), n);
        }
    }
}

/// The pool's and the orphanage's state at a scrape.
#[derive(Clone, Debug, Default)]
pub struct PoolGauges {
    transactions: usize,
    vbytes: u64,
    usage_bytes: usize,
    max_bytes: usize,
    min_feerate_sat_per_kvb: u64,
    removed: [u64; 6],
    orphans: usize,
    orphan_weight: u64,
    relay_slowed: bool,
    relay_slowed_ticks: u64,
}

impl PoolGauges {
    fn capture(world: &World) -> PoolGauges {
        let mut g = PoolGauges::default();
        if let Some(pool) = world.get_resource::<Mempool>() {
            g.transactions = pool.len();
            g.vbytes = pool.total_vsize();
            g.usage_bytes = pool.usage_bytes();
            g.max_bytes = pool.limits().max_bytes;
            // Without decaying it: a scrape changes nothing.
            g.min_feerate_sat_per_kvb = pool.rolling_min_feerate().max(pool.limits().min_relay_feerate);
            g.removed = pool.removed;
        }
        if let Some(o) = world.get_resource::<Orphanage>() {
            g.orphans = o.len();
            g.orphan_weight = o.total_weight();
        }
        if let Some(a) = world.get_resource::<TxAnnounceState>() {
            g.relay_slowed = a.slowed;
            g.relay_slowed_ticks = a.slowed_ticks;
        }
        g
    }

    fn render(&self, o: &mut Out) {
        o.single("oni_mempool_transactions", "gauge", "Transactions in the pool.", self.transactions);
        o.single("oni_mempool_vbytes", "gauge", "Sum of the pool's sigop-adjusted virtual sizes.", self.vbytes);
        o.single("oni_mempool_usage_bytes", "gauge", "Memory the pool accounts for.", self.usage_bytes);
        o.single("oni_mempool_max_bytes", "gauge", "The pool's memory bound (--maxmempool).", self.max_bytes);
        o.single(
            "oni_mempool_min_feerate_sat_per_kvb",
            "gauge",
            "Feerate a new transaction must pay now (rolling minimum or relay floor).",
            self.min_feerate_sat_per_kvb,
        );
        o.labelled(
            "oni_mempool_removed_total",
            "Transactions that left the pool, by reason.",
            "reason",
            REMOVALS.iter().zip(&self.removed).map(|(r, n)| (*r, *n)),
        );
        o.single("oni_orphanage_transactions", "gauge", "Transactions waiting for a parent.", self.orphans);
        o.single("oni_orphanage_weight", "gauge", "Total weight of the orphanage's transactions.", self.orphan_weight);
        o.single(
            "oni_tx_relay_slowed",
            "gauge",
            "1 while transaction relay is slowed (checks lag behind arrivals).",
            u8::from(self.relay_slowed),
        );
        o.single(
            "oni_tx_relay_slowed_ticks_total",
            "counter",
            "Ticks that ran with relay slowed.",
            self.relay_slowed_ticks,
        );
    }
}

/// Labels of `Mempool::removed`, in `Removal` order.
const REMOVALS: [&str; 6] = ["block", "conflict", "replaced", "size_limit", "expiry", "reorg"];

/// `TxReject`'s variant name in snake case (`InBelowOut` → `in_below_out`): unique per variant,
/// where Core's reason strings are shared by several.
pub fn cause_label(r: TxReject) -> String {
    let name = format!("{r:?}");
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rejections as `oni_tx_rejected_total{reason="<Core's string>",cause="<variant>"}`: `reason` is
/// what Core operators know (several causes share one), `cause` keeps each series unique.
fn render_rejects(m: &Metrics, o: &mut Out) {
    let name = "oni_tx_rejected_total";
    o.family(name, "counter", "Transactions refused by the pool, by Core's reason and oni's cause.");
    for (r, n) in TxReject::ALL.iter().zip(&m.tx_rejected) {
        o.sample(name, &[("reason", r.label()), ("cause", &cause_label(*r))], n);
    }
}

/// What one scrape needs, copied out of the world in one short step so the text itself is built off
/// the world thread.
#[derive(Clone, Debug)]
pub struct Snapshot {
    metrics: Metrics,
    bans: usize,
    discouraged: usize,
    timings: Option<SystemTimings>,
    peers: Vec<PeerRow>,
    pool: PoolGauges,
    /// Heights, sync share and downloading peers (none in a world without a header tree).
    chain: Option<ChainSnapshot>,
}

/// One peer's series.
#[derive(Clone, Debug)]
struct PeerRow {
    id: u64,
    addr: SocketAddr,
    direction: Direction,
    bytes_in: u64,
    bytes_out: u64,
    msgs_in: u64,
    msgs_out: u64,
    score: u32,
    send_queue_bytes: usize,
    ping_rtt_ms: Option<u64>,
}

/// Renders the exposition from `world` (capture and render in one go).
pub fn render(world: &mut World) -> String {
    Snapshot::capture(world).render()
}

impl Snapshot {
    /// Copies what a scrape shows; peers by id, dialing ones left out.
    pub fn capture(world: &mut World) -> Snapshot {
        let mut q = world.query::<(&Socket, &Direction, &PeerState, &Stats, &Score, &SendQueue)>();
        let mut peers: Vec<PeerRow> = q
            .iter(world)
            .filter(|r| *r.2 != PeerState::Connecting)
            .map(|(so, d, _, st, sc, sq)| PeerRow {
                id: so.conn.0,
                addr: so.addr,
                direction: *d,
                bytes_in: st.bytes_in,
                bytes_out: st.bytes_out,
                msgs_in: st.msgs_in.iter().map(|&n| n as u64).sum(),
                msgs_out: st.msgs_out.iter().map(|&n| n as u64).sum(),
                score: sc.points,
                send_queue_bytes: sq.bytes(),
                ping_rtt_ms: st.ping_rtt_ms,
            })
            .collect();
        peers.sort_unstable_by_key(|p| p.id);
        let bans = world.resource::<BanList>();
        Snapshot {
            metrics: world.resource::<Metrics>().clone(),
            bans: bans.bans().count(),
            discouraged: bans.discouraged_len(),
            timings: world.get_resource::<SystemTimings>().cloned(),
            peers,
            pool: PoolGauges::capture(world),
            chain: world.contains_resource::<oni_systems::chain::HeaderTree>().then(|| ChainSnapshot::of(world)),
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut o = Out { s: String::with_capacity(16 * 1024 + self.peers.len() * 700) };
        let m = &self.metrics;
        o.labelled("oni_messages_received_total", "Messages received, by command.", "command", by_command(&m.msgs_in));
        o.labelled(
            "oni_received_bytes_total",
            "Wire bytes received (24-byte headers included), by command.",
            "command",
            by_command(&m.bytes_in),
        );
        o.labelled("oni_messages_sent_total", "Messages sent, by command.", "command", by_command(&m.msgs_out));
        o.labelled("oni_sent_bytes_total", "Wire bytes sent, by command.", "command", by_command(&m.bytes_out));
        o.single(
            "oni_unknown_commands_total",
            "counter",
            "Well-formed frames with commands oni does not know.",
            m.unknown_commands,
        );
        o.labelled(
            "oni_header_errors_total",
            "Frames refused from their header, by reason.",
            "reason",
            HeaderError::ALL.iter().zip(&m.header_errors).map(|(e, n)| (e.label(), *n)),
        );
        o.labelled(
            "oni_transport_connections_total",
            "Connections whose transport settled, by transport (v1, or an established BIP324 v2 session).",
            "transport",
            ["v1", "v2"].into_iter().zip(m.transports),
        );
        o.labelled(
            "oni_v2_failures_total",
            "BIP324 v2 connections closed for a transport fault, by reason.",
            "reason",
            oni_systems::wire::v2::transport::V2Error::ALL.iter().zip(&m.v2_failures).map(|(e, n)| (e.label(), *n)),
        );
        o.labelled(
            "oni_decode_errors_total",
            "Payloads refused, by reason.",
            "reason",
            DecodeError::ALL.iter().zip(&m.decode_errors).map(|(e, n)| (e.label(), *n)),
        );
        o.labelled(
            "oni_disconnects_total",
            "Peers disconnected, by reason.",
            "reason",
            DisconnectReason::ALL.iter().zip(&m.disconnects).map(|(r, n)| (r.label(), *n)),
        );
        o.labelled(
            "oni_misbehavior_total",
            "Protocol violations, by kind.",
            "reason",
            Misbehavior::ALL.iter().zip(&m.misbehavior).map(|(r, n)| (r.label(), *n)),
        );
        o.labelled(
            "oni_connections_total",
            "Connections opened, by direction.",
            "direction",
            Direction::ALL.iter().zip(&m.connections).map(|(d, n)| (d.label(), *n)),
        );
        o.family("oni_peers", "gauge", "Peers now, by direction.");
        for (d, n) in Direction::ALL.iter().zip(&m.peers) {
            o.sample("oni_peers", &[("direction", d.label())], n);
        }
        o.single("oni_peers_ready", "gauge", "Peers now past the handshake.", m.peers_ready);
        o.single(
            "oni_inbound_recv_pool_bytes",
            "gauge",
            "Frame bytes inbound peers hold from their shared receive pool.",
            m.inbound_recv_pool_bytes,
        );
        o.single(
            "oni_inbound_recv_pool_peak_bytes",
            "gauge",
            "The most frame bytes inbound peers ever held from their shared receive pool.",
            m.inbound_recv_pool_peak_bytes,
        );
        o.single("oni_handshakes_total", "counter", "Handshakes completed.", m.handshakes);
        o.histogram_ms("oni_handshake_duration_seconds", "Time from connection to verack.", &m.handshake_ms);
        o.histogram_ms("oni_ping_rtt_seconds", "Ping round trips.", &m.ping_rtt_ms);
        o.histogram_ms("oni_block_download_seconds", "Block request to arrival.", &m.block_download_ms);
        o.labelled(
            "oni_block_announcements_total",
            "New blocks announced to peers, by kind (headers or inv).",
            "kind",
            AnnounceKind::ALL.iter().zip(&m.block_announcements).map(|(k, n)| (k.label(), *n)),
        );
        o.histogram_ms(
            "oni_block_relay_seconds",
            "Time from a block's header first heard of to its first announcement onward.",
            &m.block_relay_ms,
        );
        o.histogram_ms(
            "oni_block_arrival_seconds",
            "Time from a new block's header first heard of to the block connected to our chain.",
            &m.block_arrival_ms,
        );
        o.labelled(
            "oni_compact_blocks_total",
            "Blocks announced as cmpctblock and completed, by how (no round trip, one getblocktxn, fetched whole).",
            "outcome",
            CompactOutcome::ALL.iter().zip(&m.compact_outcomes).map(|(k, n)| (k.label(), *n)),
        );
        o.histogram(
            "oni_compact_missing_txs",
            "Transactions a compact block left us to ask for, per block rebuilt.",
            &m.compact_missing_txs,
        );
        o.histogram(
            "oni_compact_block_bytes",
            "Bytes received for a block rebuilt from a compact block (cmpctblock and blocktxn).",
            &m.compact_block_bytes,
        );
        o.histogram_ms("oni_tx_relay_seconds", "First announcement of a transaction to its arrival.", &m.tx_relay_ms);
        o.histogram_ms(
            "oni_tx_forward_seconds",
            "Time from a transaction entering the pool to our first announcement of it.",
            &m.tx_forward_ms,
        );
        render_rejects(m, &mut o);
        self.pool.render(&mut o);
        o.single("oni_discouraged_total", "counter", "Addresses discouraged for misbehavior.", m.discouraged);
        o.single("oni_bans_escalated_total", "counter", "Bans made by escalation.", m.bans_escalated);
        o.single("oni_recv_pauses_total", "counter", "Socket reads paused for a full receive buffer.", m.recv_pauses);
        o.single("oni_ticks_total", "counter", "Schedule runs.", m.ticks);
        render_other_counters(m, &mut o);
        if let Some(c) = &self.chain {
            o.single("oni_chain_height", "gauge", "Height of the validated tip.", c.height);
            o.single("oni_chain_headers", "gauge", "Height of the best header chain.", c.headers);
            o.single(
                "oni_chain_verification_progress",
                "gauge",
                "The validated tip's share of the best header chain's work (getblockchaininfo's verificationprogress).",
                c.work_share,
            );
            o.single("oni_chain_ibd", "gauge", "1 in initial block download.", u8::from(c.ibd));
            o.single("oni_peers_downloading_blocks", "gauge", "Peers with block requests in flight.", c.downloading);
        }
        o.single("oni_bans", "gauge", "Subnets banned now.", self.bans);
        o.single("oni_discouraged", "gauge", "Addresses discouraged now.", self.discouraged);
        if let Some(t) = &self.timings {
            t.render_into(&mut o.s);
        }
        self.render_peers(&mut o);
        o.s
    }

    fn render_peers(&self, o: &mut Out) {
        // Each peer's label set is formatted once and reused by all its series.
        let labels: Vec<String> = self
            .peers
            .iter()
            .map(|p| format!("{{peer=\"{}\",addr=\"{}\",direction=\"{}\"}}", p.id, p.addr, p.direction.label()))
            .collect();
        type Series = (&'static str, &'static str, &'static str, fn(&PeerRow) -> u64);
        let series: [Series; 6] = [
            ("oni_peer_received_bytes_total", "counter", "Wire bytes received from the peer.", |p| p.bytes_in),
            ("oni_peer_sent_bytes_total", "counter", "Wire bytes sent to the peer.", |p| p.bytes_out),
            ("oni_peer_messages_received_total", "counter", "Messages received from the peer.", |p| p.msgs_in),
            ("oni_peer_messages_sent_total", "counter", "Messages sent to the peer.", |p| p.msgs_out),
            ("oni_peer_score", "gauge", "The peer's misbehavior points.", |p| p.score as u64),
            ("oni_peer_send_queue_bytes", "gauge", "Bytes queued for the peer.", |p| p.send_queue_bytes as u64),
        ];
        for (name, kind, help, f) in series {
            o.family(name, kind, help);
            for (p, l) in self.peers.iter().zip(&labels) {
                let _ = writeln!(o.s, "{name}{l} {}", f(p));
            }
        }
        o.family("oni_peer_ping_seconds", "gauge", "The peer's last ping round trip.");
        for (p, l) in self.peers.iter().zip(&labels) {
            if let Some(rtt) = p.ping_rtt_ms {
                let _ = writeln!(o.s, "oni_peer_ping_seconds{l} {}", rtt as f64 / 1000.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metrics_field_is_exported() {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(Metrics::default()) else { panic!() };
        let text = Snapshot {
            metrics: Metrics::default(),
            bans: 0,
            discouraged: 0,
            timings: None,
            peers: Vec::new(),
            pool: PoolGauges::default(),
            chain: None,
        }
        .render();
        for (name, v) in fields {
            assert!(
                RENDERED.contains(&name.as_str()) || v.is_u64(),
                "Metrics.{name} is neither rendered by name nor a plain counter: give it a family"
            );
            if !RENDERED.contains(&name.as_str()) {
                assert!(text.contains(&format!("\noni_{name}_total 0\n")), "{name} missing");
            }
        }
    }

    #[test]
    fn histograms_are_cumulative_with_inf_and_labels_are_escaped() {
        let mut h = Histogram::with_bounds(&[10, 100]);
        for v in [1, 50, 500] {
            h.record(v);
        }
        let mut o = Out { s: String::new() };
        o.histogram_ms("x_seconds", "h", &h);
        assert!(o.s.contains("x_seconds_bucket{le=\"0.01\"} 1\n"), "{}", o.s);
        assert!(o.s.contains("x_seconds_bucket{le=\"0.1\"} 2\n"));
        assert!(o.s.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(o.s.contains("x_seconds_sum 0.551\n"));
        assert!(o.s.contains("x_seconds_count 3\n"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn reject_series_are_unique_and_carry_cores_reason() {
        assert_eq!(cause_label(TxReject::InBelowOut), "in_below_out");
        assert_eq!(cause_label(TxReject::NonBip68Final), "non_bip68_final");
        let mut m = Metrics::default();
        m.tx_rejected[TxReject::DustWithFee as usize] = 3;
        let text = Snapshot {
            metrics: m,
            bans: 0,
            discouraged: 0,
            timings: None,
            peers: Vec::new(),
            pool: PoolGauges::default(),
            chain: None,
        }
        .render();
        assert!(text.contains("oni_tx_rejected_total{reason=\"dust\",cause=\"dust_with_fee\"} 3\n"), "{text}");
        assert!(text.contains("oni_tx_rejected_total{reason=\"dust\",cause=\"dust\"} 0\n"));
        let causes: std::collections::BTreeSet<String> = TxReject::ALL.iter().map(|r| cause_label(*r)).collect();
        assert_eq!(causes.len(), TxReject::COUNT, "one series per cause");
    }
}
