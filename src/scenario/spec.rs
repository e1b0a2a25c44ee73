//! The scenario file: what a run is made of (node limits, honest peers, bots with parameters, the
//! network model) and what must hold at its end. RON, strict: an unknown field, a bad value or an
//! unknown label is an error that names the line and column.

pub use super::bots::BotKind;
use super::ScenarioError;
use oni_systems::resources::{DisconnectReason, Limits, Misbehavior};
use oni_systems::wire::{Command, DecodeError};
use serde::{de, Deserialize, Deserializer};
use std::net::Ipv4Addr;
use std::path::Path;

/// Longest run a file may ask for: a day of virtual time.
pub const MAX_DURATION_S: u64 = 86_400;
/// Most peer instances (honest + bots) in one scenario.
pub const MAX_INSTANCES: u64 = 100_000;

/// One scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the report.
    pub name: String,
    /// Seeds the node's rng and every bot's; same seed, same run.
    pub seed: u64,
    /// Virtual seconds to run.
    pub duration_s: u64,
    /// Overrides of the node's limits (any `Limits` field; the rest keep their defaults).
    #[serde(default)]
    pub node: Limits,
    /// Overrides the misbehavior score threshold (default: the core's table, 100).
    #[serde(default)]
    pub score_threshold: Option<u32>,
    /// Sets the node's minimum chain work to this many regtest blocks' worth (regtest's own is 0,
    /// which leaves low-work header chains nothing to fall short of).
    #[serde(default)]
    pub min_chain_work_blocks: Option<u64>,
    /// Overrides the node's first block stalling timeout (default: Core's 2 s).
    #[serde(default)]
    pub stalling_timeout_ms: Option<u64>,
    /// Whether the node asks peers for transaction relay (its version's relay flag).
    #[serde(default)]
    pub relay: bool,
    /// Whether the node speaks BIP324 v2 (`--v2transport 1`): it advertises NODE_P2P_V2 and answers
    /// every connection as a v2 responder (v1 peers detected on their first 16 bytes). Off by
    /// default: the older scenarios' abusers open with v1 bytes other than `version`.
    #[serde(default)]
    pub v2transport: bool,
    /// The chain the node starts with.
    #[serde(default)]
    pub chain: ChainStart,
    /// Overrides of the node's orphanage bounds (the rest keep Core's).
    #[serde(default)]
    pub orphanage: OrphanageSpec,
    /// How the simulated network behaves.
    #[serde(default)]
    pub net: NetModel,
    /// Many oni nodes instead of one node and its peers (sim mode only): `peers` and `expect`
    /// stay empty, the run is judged on block propagation (see [`super::network`]).
    #[serde(default)]
    pub network: Option<super::network::NetworkSpec>,
    /// Who connects to the node.
    pub peers: Vec<PeerSpec>,
    /// What must hold at the end.
    pub expect: Vec<Expectation>,
}

/// The chain a scenario's node starts with.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum ChainStart {
    /// Regtest genesis only, in initial block download (unless `relay`).
    #[default]
    Genesis,
    /// The regtest fixture's 2,100 blocks, validated, with their coins, out of initial block
    /// download: the fixture mempool is valid for it.
    Fixture,
}

/// The node's orphanage bounds; unset fields keep Core's (3,000 latency score in all, 404,000
/// weight units reserved per peer holding orphans).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OrphanageSpec {
    /// Global latency-score bound, divided among peers holding orphans.
    pub max_latency_score: u64,
    /// Weight each peer holding orphans reserves; the global weight bound is this times those peers.
    pub reserved_weight_per_peer: u64,
}

impl Default for OrphanageSpec {
    fn default() -> Self {
        let l = oni_systems::mempool::orphanage::OrphanLimits::default();
        OrphanageSpec { max_latency_score: l.max_latency_score, reserved_weight_per_peer: l.reserved_weight_per_peer }
    }
}

impl OrphanageSpec {
    /// The orphanage's limits with these bounds.
    pub fn limits(&self) -> oni_systems::mempool::orphanage::OrphanLimits {
        oni_systems::mempool::orphanage::OrphanLimits {
            max_latency_score: self.max_latency_score,
            reserved_weight_per_peer: self.reserved_weight_per_peer,
            ..Default::default()
        }
    }
}

/// The simulated network between the bots and the node. Every figure is virtual.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetModel {
    /// Virtual time between two runs of the node's schedule.
    pub tick_ms: u64,
    /// One-way delay of every byte, both directions.
    pub latency_ms: u64,
    /// Per connection, node → bot; 0 = the writer drains instantly (`Written` at once).
    pub node_write_bytes_per_s: u64,
    /// Per connection, bytes the node's reader takes from a socket per tick (a read-buffer model).
    pub read_bytes_per_tick: usize,
    /// Bytes a bot may have in flight towards the node before its writes block (TCP send buffer).
    pub bot_send_window_bytes: usize,
    /// Bytes from the node a bot that stopped reading lets pile up (its socket's buffers) before
    /// the node's writer stalls.
    pub bot_recv_window_bytes: usize,
    /// Each instance starts at its `start_s` plus a seeded delay below this.
    pub start_jitter_ms: u64,
}

impl Default for NetModel {
    fn default() -> Self {
        NetModel {
            tick_ms: 10,
            latency_ms: 10,
            node_write_bytes_per_s: 0,
            read_bytes_per_tick: 128 * 1024,
            bot_send_window_bytes: 1024 * 1024,
            bot_recv_window_bytes: 1024 * 1024,
            start_jitter_ms: 1_000,
        }
    }
}

/// A group of peers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum PeerSpec {
    /// Well-behaved modern peers: full handshake, answer pings, ping the node and time the pongs.
    Honest {
        /// How many.
        count: u32,
        /// When they connect (virtual seconds from the start).
        #[serde(default)]
        start_s: f64,
        /// Interval between their pings to the node.
        #[serde(default = "default_honest_ping_ms")]
        ping_interval_ms: u64,
        /// They connect with BIP324 v2 (their messages sealed, the node's opened).
        #[serde(default)]
        v2: bool,
    },
    /// Adversaries of one kind.
    Bot {
        /// The behaviour and its parameters.
        kind: BotKind,
        /// How many instances.
        count: u32,
        /// When they start (virtual seconds from the start).
        #[serde(default)]
        start_s: f64,
        /// They connect with BIP324 v2: the frames they send are sealed (other bytes go out as
        /// they are), the node's packets opened.
        #[serde(default)]
        v2: bool,
    },
}

fn default_honest_ping_ms() -> u64 {
    1_000
}

/// What must hold at the end of the run. Each is evaluated with the figure it measured.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum Expectation {
    /// Every connection of `bot` was closed by the node for `reason` within `within_s` of opening.
    Disconnected {
        /// The bot kind.
        #[serde(deserialize_with = "de_bot_name")]
        bot: String,
        /// Deadline from each connection's opening.
        within_s: f64,
        /// The reason label (as in metrics: "handshake_timeout", "misbehavior"...).
        #[serde(deserialize_with = "de_reason")]
        reason: DisconnectReason,
    },
    /// At least `at_least` connections of `bot` were closed by the node for `reason`.
    DisconnectedCount {
        /// The bot kind.
        #[serde(deserialize_with = "de_bot_name")]
        bot: String,
        /// The reason label.
        #[serde(deserialize_with = "de_reason")]
        reason: DisconnectReason,
        /// Minimum number of such closes.
        at_least: u64,
    },
    /// `bot` opened at least `at_least` connections: proof the attack really ran.
    ConnectionsAtLeast {
        /// The bot kind.
        #[serde(deserialize_with = "de_bot_name")]
        bot: String,
        /// Minimum connections.
        at_least: u64,
    },
    /// No instance of `bot` received more than `at_most` messages of `command` in one tick.
    ReceivedPerTickAtMost {
        /// The bot kind.
        #[serde(deserialize_with = "de_bot_name")]
        bot: String,
        /// The command name ("pong"...).
        #[serde(deserialize_with = "de_command")]
        command: Command,
        /// Bound per instance per tick.
        at_most: u64,
    },
    /// Share of honest pings (older than the grace period at the end) that got their pong.
    HonestServed {
        /// In [0, 1].
        min_share: f64,
    },
    /// 99th percentile of honest ping round trips, strictly below this.
    HonestPingP99BelowMs(u64),
    /// The node closed no honest connection.
    NoHonestDisconnected,
    /// The node closed no connection of `bot` (a well-behaved bot, such as TxRelayer).
    NeverDisconnected {
        /// The bot kind.
        #[serde(deserialize_with = "de_bot_name")]
        bot: String,
    },
    /// No connection of `bot` got more than `at_most` bytes written toward the node: what the node
    /// took in (and the bot's send window) stays bounded when the node stops reading it.
    SentBytesAtMost {
        /// The bot kind.
        #[serde(deserialize_with = "de_bot_name")]
        bot: String,
        /// Bound per connection.
        at_most: u64,
    },
    /// No connection of `bot` got more than `at_most` bytes from the node (0: the node said
    /// nothing, e.g. while a v1 prefix could still become a `version` header).
    ReceivedBytesAtMost {
        /// The bot kind.
        #[serde(deserialize_with = "de_bot_name")]
        bot: String,
        /// Bound per connection.
        at_most: u64,
    },
    /// Peers the node held after any tick.
    PeakPeersAtMost(u64),
    /// Largest per-peer send backlog after any tick: queued plus handed to the writer and unacked.
    PeakSendQueueBytesAtMost(u64),
    /// Largest per-peer receive buffer after any tick.
    PeakRecvBufferBytesAtMost(u64),
    /// Largest payload allocation the node's reader held for one frame in progress, after any tick.
    /// Sim mode only (live mode's reader is the bridge's, not sampled): the row reads "n/a" live.
    PeakReaderBytesAtMost(u64),
    /// At the end: the conn index matches the peer entities, no nonce outlives its handshake.
    NoLeakedState,
    /// Transactions the request tracker held after any tick.
    PeakTxTrackedAtMost(u64),
    /// The node's validated chain reached at least this height by the end (blocks really arrived).
    ValidatedHeightAtLeast(u32),
    /// Entries in the node's header tree at the end (it never shrinks, so this is its peak).
    HeaderTreeAtMost(u64),
    /// Live mode: the process's peak resident memory (node and runner) stayed below this many MB.
    /// Sim mode does not measure it: the row reads "n/a" and passes, so one file serves both modes.
    RssBelowMb(u64),
    /// After every tick the orphanage's latency score was at most `latency_score` and its weight at
    /// most `weight_per_peer` times the peers holding orphans (Core: 3,000 and 404,000).
    OrphanageWithinBounds {
        /// Bound on the total latency score.
        latency_score: u64,
        /// Bound on the total weight per peer holding orphans.
        weight_per_peer: u64,
    },
    /// Orphans the orphanage evicted to stay within its bounds, at least this: the flood pressed them.
    OrphansEvictedAtLeast(u64),
    /// Every transaction a TxRelayer held is in the node's pool at the end, including those that
    /// first arrived as orphans: honest transactions got through.
    HonestTxsInPool,
    /// A node counter at the end is at least this (names: see [`METRICS`]).
    MetricAtLeast {
        /// Counter name.
        #[serde(deserialize_with = "de_metric")]
        metric: String,
        /// Bound.
        at_least: u64,
    },
    /// A node counter at the end is at most this.
    MetricAtMost {
        /// Counter name.
        #[serde(deserialize_with = "de_metric")]
        metric: String,
        /// Bound.
        at_most: u64,
    },
}

/// Node counters an expectation may name.
pub const METRICS: &[&str] = &[
    "tx_inv_received",
    "tx_announcements_dropped",
    "tx_requests_sent",
    "tx_orphaned",
    "tx_accepted",
    "addr_received",
    "addr_rate_limited",
    "addr_added",
    "discouraged",
    "bans_escalated",
    "bad_checksums",
    "malformed_payloads",
    "trailing_bytes_ignored",
    "unknown_commands",
    "unconnecting_headers",
    "getheaders_sent",
    "tx_rejected",
    "tx_rejected_size",
    "tx_recently_rejected",
    "tx_intake_dropped",
    "recv_pauses",
    "v1_sessions",
    "v2_sessions",
    "v2_failures",
    "v2_refused",
];

/// The value of a named counter.
pub fn metric_value(m: &oni_systems::resources::Metrics, name: &str) -> Option<u64> {
    Some(match name {
        "tx_inv_received" => m.tx_inv_received,
        "tx_announcements_dropped" => m.tx_announcements_dropped,
        "tx_requests_sent" => m.tx_requests_sent,
        "tx_orphaned" => m.tx_orphaned,
        "tx_accepted" => m.tx_accepted,
        "addr_received" => m.addr_received,
        "addr_rate_limited" => m.addr_rate_limited,
        "addr_added" => m.addr_added,
        "discouraged" => m.discouraged,
        "bans_escalated" => m.bans_escalated,
        "bad_checksums" => m.decode_errors[DecodeError::BadChecksum as usize],
        "malformed_payloads" => m
            .decode_errors
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != DecodeError::BadChecksum as usize && *i != DecodeError::TrailingBytes as usize)
            .map(|(_, n)| n)
            .sum(),
        "trailing_bytes_ignored" => m.decode_errors[DecodeError::TrailingBytes as usize],
        "unknown_commands" => m.unknown_commands,
        "unconnecting_headers" => m.misbehavior[Misbehavior::UnconnectingHeaders as usize],
        "getheaders_sent" => m.msgs_out[Command::GetHeaders as usize],
        "tx_rejected" => m.tx_rejected.iter().sum(),
        "tx_rejected_size" => {
            m.tx_rejected.get(oni_systems::mempool::policy::TxReject::TxSize as usize).copied().unwrap_or(0)
        }
        "tx_recently_rejected" => m.tx_recently_rejected,
        "tx_intake_dropped" => m.tx_intake_dropped,
        "recv_pauses" => m.recv_pauses,
        "v1_sessions" => m.transports[0],
        "v2_sessions" => m.transports[1],
        "v2_failures" => m.v2_failures.iter().sum(),
        "v2_refused" => m.v2_refused,
        _ => return None,
    })
}

fn de_metric<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if METRICS.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(de::Error::custom(format!("unknown metric {s:?}; known: {}", METRICS.join(", "))))
    }
}

impl Expectation {
    /// The bot kind it is about, if any.
    pub fn bot(&self) -> Option<&str> {
        match self {
            Expectation::Disconnected { bot, .. }
            | Expectation::DisconnectedCount { bot, .. }
            | Expectation::ConnectionsAtLeast { bot, .. }
            | Expectation::ReceivedPerTickAtMost { bot, .. }
            | Expectation::SentBytesAtMost { bot, .. }
            | Expectation::ReceivedBytesAtMost { bot, .. }
            | Expectation::NeverDisconnected { bot } => Some(bot),
            _ => None,
        }
    }

    /// How the report names it.
    pub fn describe(&self) -> String {
        match self {
            Expectation::Disconnected { bot, within_s, reason } => {
                format!("Disconnected({bot}, within {within_s} s, {})", reason.label())
            }
            Expectation::DisconnectedCount { bot, reason, at_least } => {
                format!("DisconnectedCount({bot}, {}, >= {at_least})", reason.label())
            }
            Expectation::ConnectionsAtLeast { bot, at_least } => format!("ConnectionsAtLeast({bot}, {at_least})"),
            Expectation::ReceivedPerTickAtMost { bot, command, at_most } => {
                format!("ReceivedPerTickAtMost({bot}, {}, {at_most})", command.name())
            }
            Expectation::HonestServed { min_share } => format!("HonestServed(>= {min_share})"),
            Expectation::HonestPingP99BelowMs(ms) => format!("HonestPingP99BelowMs({ms})"),
            Expectation::NoHonestDisconnected => "NoHonestDisconnected".into(),
            Expectation::NeverDisconnected { bot } => format!("NeverDisconnected({bot})"),
            Expectation::SentBytesAtMost { bot, at_most } => format!("SentBytesAtMost({bot}, {at_most})"),
            Expectation::ReceivedBytesAtMost { bot, at_most } => format!("ReceivedBytesAtMost({bot}, {at_most})"),
            Expectation::PeakPeersAtMost(n) => format!("PeakPeersAtMost({n})"),
            Expectation::PeakSendQueueBytesAtMost(n) => format!("PeakSendQueueBytesAtMost({n})"),
            Expectation::PeakRecvBufferBytesAtMost(n) => format!("PeakRecvBufferBytesAtMost({n})"),
            Expectation::PeakReaderBytesAtMost(n) => format!("PeakReaderBytesAtMost({n})"),
            Expectation::NoLeakedState => "NoLeakedState".into(),
            Expectation::PeakTxTrackedAtMost(n) => format!("PeakTxTrackedAtMost({n})"),
            Expectation::ValidatedHeightAtLeast(n) => format!("ValidatedHeightAtLeast({n})"),
            Expectation::HeaderTreeAtMost(n) => format!("HeaderTreeAtMost({n})"),
            Expectation::RssBelowMb(n) => format!("RssBelowMb({n})"),
            Expectation::OrphanageWithinBounds { latency_score, weight_per_peer } => {
                format!("OrphanageWithinBounds({latency_score}, {weight_per_peer} WU/peer)")
            }
            Expectation::OrphansEvictedAtLeast(n) => format!("OrphansEvictedAtLeast({n})"),
            Expectation::HonestTxsInPool => "HonestTxsInPool".into(),
            Expectation::MetricAtLeast { metric, at_least } => format!("MetricAtLeast({metric}, {at_least})"),
            Expectation::MetricAtMost { metric, at_most } => format!("MetricAtMost({metric}, {at_most})"),
        }
    }
}

fn de_reason<'de, D: Deserializer<'de>>(d: D) -> Result<DisconnectReason, D::Error> {
    let s = String::deserialize(d)?;
    DisconnectReason::ALL.iter().copied().find(|r| r.label() == s).ok_or_else(|| {
        let all: Vec<_> = DisconnectReason::ALL.iter().map(|r| r.label()).collect();
        de::Error::custom(format!("unknown disconnect reason {s:?}; expected one of {}", all.join(", ")))
    })
}

fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
    let s = String::deserialize(d)?;
    match Command::from_name_bytes(s.as_bytes()) {
        Command::Unknown => Err(de::Error::custom(format!("unknown command {s:?}"))),
        c => Ok(c),
    }
}

fn de_bot_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if BotKind::NAMES.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(de::Error::custom(format!("unknown bot {s:?}; expected one of {}", BotKind::NAMES.join(", "))))
    }
}

/// The address an instance connects from: honest and bot groups each spread over many /16s, so
/// they never look like one netgroup by accident; eclipse bots stay inside theirs.
pub fn instance_addr(first_octet: u8, index: u32) -> Ipv4Addr {
    let [_, hi, mid, lo] = index.to_be_bytes();
    Ipv4Addr::new(first_octet.wrapping_add(hi), lo, mid, 1)
}

impl Scenario {
    /// Parses a scenario from RON text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let opts = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let scenario: Scenario = opts.from_str(text).map_err(|e| ScenarioError::Parse {
            origin: origin.to_string(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })?;
        scenario.validate().map_err(|message| ScenarioError::Invalid { origin: origin.to_string(), message })?;
        Ok(scenario)
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Checks what the types cannot: ranges, and that every expectation's bot is in `peers`.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration_s == 0 || self.duration_s > MAX_DURATION_S {
            return Err(format!("duration_s must be in 1..={MAX_DURATION_S}, got {}", self.duration_s));
        }
        if !(1..=1_000).contains(&self.net.tick_ms) {
            return Err(format!("net.tick_ms must be in 1..=1000, got {}", self.net.tick_ms));
        }
        if self.net.read_bytes_per_tick == 0 || self.net.bot_send_window_bytes == 0 {
            return Err("net.read_bytes_per_tick and net.bot_send_window_bytes must be > 0".into());
        }
        if self.chain == ChainStart::Fixture {
            super::fixture_chain::check()?;
        }
        if let Some(n) = &self.network {
            if !self.peers.is_empty() || !self.expect.is_empty() || self.chain != ChainStart::Genesis {
                return Err("a network scenario has no peers, no expect entries and starts at genesis".into());
            }
            n.validate(self.duration_s)?;
        }
        let mut total = 0u64;
        for (i, p) in self.peers.iter().enumerate() {
            let (count, start_s) = match p {
                PeerSpec::Honest { count, start_s, ping_interval_ms, v2 } => {
                    if *ping_interval_ms == 0 {
                        return Err(format!("peers[{i}]: ping_interval_ms must be > 0"));
                    }
                    if *v2 && !self.v2transport {
                        return Err(format!("peers[{i}]: v2 peers need the node's v2transport: true"));
                    }
                    (*count, *start_s)
                }
                PeerSpec::Bot { kind, count, start_s, v2 } => {
                    if *v2 && !self.v2transport {
                        return Err(format!("peers[{i}]: v2 peers need the node's v2transport: true"));
                    }
                    kind.check().map_err(|e| format!("peers[{i}]: {e}"))?;
                    if matches!(kind, BotKind::TxRelayer { .. }) && self.chain != ChainStart::Fixture {
                        return Err(format!(
                            "peers[{i}]: TxRelayer relays the fixture mempool: it needs `chain: Fixture`"
                        ));
                    }
                    (*count, *start_s)
                }
            };
            if !start_s.is_finite() || start_s < 0.0 || start_s > self.duration_s as f64 {
                return Err(format!("peers[{i}]: start_s must be in [0, duration_s], got {start_s}"));
            }
            total += count as u64;
        }
        if total > MAX_INSTANCES {
            return Err(format!("{total} peer instances; at most {MAX_INSTANCES}"));
        }
        for (i, e) in self.expect.iter().enumerate() {
            if let Some(bot) = e.bot() {
                let present = self.peers.iter().any(|p| matches!(p, PeerSpec::Bot { kind, .. } if kind.name() == bot));
                if !present {
                    return Err(format!("expect[{i}] {}: bot {bot} is not in peers", e.describe()));
                }
            }
            match e {
                Expectation::HonestServed { min_share } if !(0.0..=1.0).contains(min_share) => {
                    return Err(format!("expect[{i}]: min_share must be in [0, 1], got {min_share}"));
                }
                Expectation::Disconnected { within_s, .. } if !within_s.is_finite() || *within_s <= 0.0 => {
                    return Err(format!("expect[{i}]: within_s must be > 0, got {within_s}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
