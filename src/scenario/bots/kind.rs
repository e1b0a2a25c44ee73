//! The bot kinds a scenario file may name and their parameters: the file format's view of the
//! behaviours implemented beside this file. Each bot checks its own parameters (a `check` beside
//! it); the rate checks every kind shares are here.

use super::{blocks, framing, getdata, gossip, headers, invalid_txs, txs, v2};
use serde::{de, Deserialize, Deserializer};

/// An adversary's behaviour, as a scenario file names it with its parameters. Each variant is
/// implemented in a file beside this one; a new attack adds a variant here, a name in
/// [`BotKind::NAMES`], its file, and an arm in [`super::spawn`].
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum BotKind {
    /// Sends one frame header whose length is over the command's bound.
    OversizedFrame {
        /// The command in the header.
        #[serde(default = "default_oversized_command")]
        command: String,
        /// The length it claims.
        #[serde(default = "default_oversized_len")]
        len: u32,
        /// Complete the handshake first.
        #[serde(default)]
        handshake: bool,
    },
    /// Repeats well-framed pings whose checksum is wrong.
    BadChecksum {
        /// Frames per second.
        msgs_per_s: f64,
        /// Complete the handshake first.
        #[serde(default)]
        handshake: bool,
    },
    /// Sends random bytes.
    GarbageBytes {
        /// Bytes per second.
        bytes_per_s: u64,
        /// Complete the handshake first.
        #[serde(default)]
        handshake: bool,
    },
    /// Trickles its version message one byte at a time.
    Slowloris {
        /// Time between two bytes.
        byte_interval_ms: u64,
    },
    /// Connects, sends version, drops as soon as the node answered, again and again.
    VersionFlood {
        /// Connections per second per instance (one at a time).
        conns_per_s: f64,
    },
    /// Sends version (and the pre-verack features) but never verack.
    HandshakeNeverCompletes,
    /// Completes the handshake, then pings as fast as its rate and send window allow.
    PingFlood {
        /// Pings per second.
        pings_per_s: u64,
    },
    /// Completes the handshake, holds the connection, drops it, reconnects.
    ReconnectChurn {
        /// Time it stays after the handshake.
        hold_ms: u64,
        /// Time between dropping and reconnecting.
        #[serde(default)]
        pause_ms: u64,
    },
    /// Many well-behaved-looking inbounds from one /16, to take every inbound slot.
    NetgroupEclipse {
        /// The /16 they come from, e.g. "203.0".
        #[serde(deserialize_with = "de_subnet16")]
        subnet16: [u8; 2],
        /// Time before retrying after the node closed it; 0 = never retry.
        #[serde(default)]
        retry_ms: u64,
    },
    /// Seeded random messages with a valid envelope and an invalid payload.
    MalformedFuzz {
        /// Messages per second.
        msgs_per_s: f64,
        /// Complete the handshake first.
        #[serde(default)]
        handshake: bool,
    },
    /// After a correct handshake, `inv` messages of `invs_per_msg` fresh random wtxids.
    InvStorm {
        /// Entries per inv (1..=50,000).
        invs_per_msg: u32,
        /// Messages per second.
        msgs_per_s: f64,
    },
    /// After a correct handshake, `addr` messages of `addrs_per_msg` fresh routable addresses.
    AddrSpam {
        /// Entries per addr (1..=1,000).
        addrs_per_msg: u32,
        /// Messages per second.
        msgs_per_s: f64,
    },
    /// After a correct handshake, `headers` whose first header's parent is unknown.
    UnconnectingHeaders {
        /// Chained headers per message (1..=2,000).
        headers_per_msg: u32,
        /// Messages per second.
        msgs_per_s: f64,
    },
    /// After a correct handshake, an endless chain of valid headers from genesis, 2,000 per
    /// message, one message per request of the node (paced); low-work when `min_chain_work_blocks`
    /// is set above what it sends.
    LowWorkHeaders {
        /// Most messages per second.
        msgs_per_s: f64,
    },
    /// After a correct handshake, one header on genesis whose hash misses its claimed target.
    InvalidHeaders {
        /// Messages per second.
        msgs_per_s: f64,
    },
    /// Announces the first `blocks` regtest fixture blocks, takes `getdata` for them, never delivers.
    BlockStall {
        /// Fixture blocks it claims (1..=2,000).
        blocks: u32,
    },
    /// Announces the first `blocks` regtest fixture blocks and serves them: the download that works.
    BlockServer {
        /// Fixture blocks it serves (1..=2,000).
        blocks: u32,
    },
    /// After a correct handshake, `getdata` of `entries_per_msg` unknown blocks.
    GetdataAmplification {
        /// Entries per getdata (1..=50,000).
        entries_per_msg: u32,
        /// Messages per second.
        msgs_per_s: f64,
    },
    /// After a correct handshake, well-formed standard-looking `tx` messages spending random
    /// outpoints nobody has: each lands in the orphanage; the node's requests for parents go unanswered.
    OrphanFlood {
        /// Transactions per second.
        orphans_per_s: f64,
        /// Transactions in all (1..=10,000,000).
        orphans: u64,
        /// Inputs of each (1..=500); an orphan's latency score is 1 + inputs / 10.
        #[serde(default = "default_one")]
        inputs_per_tx: u32,
        /// Bytes of an OP_RETURN output added to each (0..=90,000; 0 = none): orphan weight.
        #[serde(default)]
        pad_bytes: u32,
    },
    /// An honest peer relaying the fixture mempool (`mempool.hex`): pushes the transactions that
    /// have parents there first (so they arrive as orphans), announces the rest by `inv`, and
    /// answers `getdata` for any of them. Needs `chain: Fixture`, so the node knows their coins.
    TxRelayer {
        /// Pushes or announcements per second.
        txs_per_s: f64,
        /// Time it takes to answer a `getdata` (a slow link: its orphans wait that long).
        #[serde(default)]
        answer_delay_ms: u64,
    },
    /// After a correct handshake, one transaction of `tx_bytes` non-witness bytes (weight four times
    /// that) again and again: over the standard weight, refused as `tx-size`.
    LargeTx {
        /// Its size (100,001..=3,999,000: over 400,000 WU, within a message).
        tx_bytes: u32,
        /// Copies per second.
        txs_per_s: f64,
    },
    /// After a correct handshake, small version-4 (non-standard) transactions, each refused as
    /// `version`.
    NonStandardTxs {
        /// Transactions per second.
        txs_per_s: f64,
        /// How many different ones it cycles through (0: every one new); a copy sent again is
        /// dropped as recently rejected.
        #[serde(default)]
        distinct: u32,
    },
    /// Frames of a command nobody speaks (`junkjunk`) with `len` payload bytes each.
    UnknownCommand {
        /// Payload bytes (1..=4,000,000).
        len: u32,
        /// Frames per second.
        msgs_per_s: f64,
        /// Complete the handshake first.
        #[serde(default)]
        handshake: bool,
    },
    /// After a correct handshake, getdata for the first `blocks` fixture blocks at a rate, and
    /// never a byte read after the handshake. Pair it with a BlockServer so the node holds them.
    BlockRequester {
        /// Fixture blocks asked for in each getdata (1..=2,100).
        blocks: u32,
        /// Messages per second.
        msgs_per_s: f64,
    },
    /// BIP324 abuse: a real v2 key, then `garbage` random bytes and nothing more. Over 4,095 the
    /// node gives up on the terminator (`v2_missing_garbage_terminator`); at or under it, the
    /// bytes read as garbage with a wrong terminator and the handshake times out.
    V2Garbage {
        /// Garbage bytes after the key.
        garbage: u32,
    },
    /// BIP324 abuse: the first `bytes` (1..=15) of this network's v1 `version` header, then a
    /// stall: the node is still detecting, must send nothing and drops it at the handshake timeout.
    V2Prefix {
        /// Prefix bytes sent.
        bytes: u8,
    },
    /// Core's early-key check: the first 4 bytes of a v2 key equal to the network magic, then
    /// after `wait_ms` the rest of the key and garbage. The node must stay silent until a byte
    /// differs from the v1 prefix; a byte from it before that makes the bot hang up (so an
    /// expectation that the node closed it fails).
    V2EarlyKey {
        /// Pause between the magic and the rest.
        wait_ms: u64,
    },
}

fn default_one() -> u32 {
    1
}

fn default_oversized_command() -> String {
    "block".to_string()
}

fn default_oversized_len() -> u32 {
    4_000_001
}

impl BotKind {
    /// Every kind's name, as written in `kind:` and in expectations' `bot:`.
    pub const NAMES: &'static [&'static str] = &[
        "OversizedFrame",
        "BadChecksum",
        "GarbageBytes",
        "Slowloris",
        "VersionFlood",
        "HandshakeNeverCompletes",
        "PingFlood",
        "ReconnectChurn",
        "NetgroupEclipse",
        "MalformedFuzz",
        "InvStorm",
        "AddrSpam",
        "UnconnectingHeaders",
        "InvalidHeaders",
        "LowWorkHeaders",
        "GetdataAmplification",
        "BlockStall",
        "BlockServer",
        "OrphanFlood",
        "TxRelayer",
        "LargeTx",
        "NonStandardTxs",
        "UnknownCommand",
        "BlockRequester",
        "V2Garbage",
        "V2Prefix",
        "V2EarlyKey",
    ];

    /// This kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            BotKind::OversizedFrame { .. } => "OversizedFrame",
            BotKind::BadChecksum { .. } => "BadChecksum",
            BotKind::GarbageBytes { .. } => "GarbageBytes",
            BotKind::Slowloris { .. } => "Slowloris",
            BotKind::VersionFlood { .. } => "VersionFlood",
            BotKind::HandshakeNeverCompletes => "HandshakeNeverCompletes",
            BotKind::PingFlood { .. } => "PingFlood",
            BotKind::ReconnectChurn { .. } => "ReconnectChurn",
            BotKind::NetgroupEclipse { .. } => "NetgroupEclipse",
            BotKind::MalformedFuzz { .. } => "MalformedFuzz",
            BotKind::InvStorm { .. } => "InvStorm",
            BotKind::AddrSpam { .. } => "AddrSpam",
            BotKind::UnconnectingHeaders { .. } => "UnconnectingHeaders",
            BotKind::InvalidHeaders { .. } => "InvalidHeaders",
            BotKind::LowWorkHeaders { .. } => "LowWorkHeaders",
            BotKind::GetdataAmplification { .. } => "GetdataAmplification",
            BotKind::BlockStall { .. } => "BlockStall",
            BotKind::BlockServer { .. } => "BlockServer",
            BotKind::OrphanFlood { .. } => "OrphanFlood",
            BotKind::TxRelayer { .. } => "TxRelayer",
            BotKind::LargeTx { .. } => "LargeTx",
            BotKind::NonStandardTxs { .. } => "NonStandardTxs",
            BotKind::UnknownCommand { .. } => "UnknownCommand",
            BotKind::BlockRequester { .. } => "BlockRequester",
            BotKind::V2Garbage { .. } => "V2Garbage",
            BotKind::V2Prefix { .. } => "V2Prefix",
            BotKind::V2EarlyKey { .. } => "V2EarlyKey",
        }
    }

    /// Whether the parameters are in range (and the fixture data a kind needs loads).
    pub fn check(&self) -> Result<(), String> {
        let rate = |r: f64, what: &str| {
            if r.is_finite() && r > 0.0 && r <= 1_000_000.0 {
                Ok(())
            } else {
                Err(format!("{}: {what} must be in (0, 1000000], got {r}", self.name()))
            }
        };
        match self {
            BotKind::OversizedFrame { command, .. } => framing::OversizedFrame::check(command),
            BotKind::BadChecksum { msgs_per_s, .. } | BotKind::MalformedFuzz { msgs_per_s, .. } => {
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::GarbageBytes { bytes_per_s, .. } => rate(*bytes_per_s as f64, "bytes_per_s"),
            BotKind::V2Garbage { garbage } => v2::V2Garbage::check(*garbage),
            BotKind::V2Prefix { bytes } => v2::V2Prefix::check(*bytes),
            BotKind::V2EarlyKey { .. } => Ok(()),
            BotKind::Slowloris { byte_interval_ms } => rate(*byte_interval_ms as f64, "byte_interval_ms"),
            BotKind::VersionFlood { conns_per_s } => rate(*conns_per_s, "conns_per_s"),
            BotKind::PingFlood { pings_per_s } => rate(*pings_per_s as f64, "pings_per_s"),
            BotKind::InvStorm { invs_per_msg, msgs_per_s } => {
                gossip::InvStorm::check(*invs_per_msg)?;
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::AddrSpam { addrs_per_msg, msgs_per_s } => {
                gossip::AddrSpam::check(*addrs_per_msg)?;
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::UnconnectingHeaders { headers_per_msg, msgs_per_s } => {
                headers::HeaderAttack::check_unconnecting(*headers_per_msg)?;
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::InvalidHeaders { msgs_per_s } | BotKind::LowWorkHeaders { msgs_per_s } => {
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::GetdataAmplification { entries_per_msg, msgs_per_s } => {
                getdata::GetdataAmplification::check(*entries_per_msg)?;
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::BlockStall { blocks } | BotKind::BlockServer { blocks } => {
                blocks::ChainPeer::check(self.name(), *blocks)
            }
            BotKind::OrphanFlood { orphans_per_s, orphans, inputs_per_tx, pad_bytes } => {
                txs::OrphanFlood::check(*orphans, *inputs_per_tx, *pad_bytes)?;
                rate(*orphans_per_s, "orphans_per_s")
            }
            BotKind::TxRelayer { txs_per_s, answer_delay_ms } => {
                txs::TxRelayer::check(*answer_delay_ms)?;
                rate(*txs_per_s, "txs_per_s")
            }
            BotKind::LargeTx { tx_bytes, txs_per_s } => {
                invalid_txs::LargeTx::check(*tx_bytes)?;
                rate(*txs_per_s, "txs_per_s")
            }
            BotKind::NonStandardTxs { txs_per_s, .. } => rate(*txs_per_s, "txs_per_s"),
            BotKind::UnknownCommand { len, msgs_per_s, .. } => {
                framing::UnknownCommand::check(*len)?;
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::BlockRequester { blocks, msgs_per_s } => {
                getdata::BlockRequester::check(*blocks)?;
                rate(*msgs_per_s, "msgs_per_s")
            }
            BotKind::HandshakeNeverCompletes | BotKind::ReconnectChurn { .. } | BotKind::NetgroupEclipse { .. } => {
                Ok(())
            }
        }
    }
}

/// `"203.0"`: the first two octets of a /16.
fn de_subnet16<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 2], D::Error> {
    let s = String::deserialize(d)?;
    let bad = || de::Error::custom(format!("subnet16 {s:?} is not two octets like \"203.0\""));
    let (a, b) = s.split_once('.').ok_or_else(bad)?;
    Ok([a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?])
}
