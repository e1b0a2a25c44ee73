//! `oni node`: its flags (grouped in `--help` as Core's `-help`), the configuration they make, and
//! running the node until a signal or an RPC `stop`.

use super::{default_datadir, init_logging, AddrArg, NetworkArg, EXIT_USAGE};
use crate::node::{Node, NodeConfig};
use oni_systems::resources::Subnet;
use oni_systems::wire::Network;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `oni node`, grouped in `--help` as Core's `-help` groups them.
#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
pub struct NodeArgs {
    /// Read settings from a Bitcoin Core style file (`key=value` lines, `[regtest]`-style
    /// sections): the flags below by Core's or oni's name; the command line wins.
    #[arg(long, help_heading = "General options", value_name = "FILE")]
    pub conf: Option<PathBuf>,
    /// Which network.
    #[arg(long, help_heading = "Chain selection options", value_enum, default_value = "main")]
    pub network: NetworkArg,
    /// Where the node keeps its files [default: ~/.oni/<network>].
    #[arg(long, help_heading = "General options", value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Address to accept peers on [default: 0.0.0.0:<network's P2P port>]; port 0 picks a free one.
    #[arg(long, help_heading = "Connection options", value_name = "ADDR:PORT", conflicts_with = "nolisten")]
    pub listen: Option<AddrArg>,
    /// Accept no inbound peers.
    #[arg(long, help_heading = "Connection options")]
    pub nolisten: bool,
    /// Connect only to this peer (repeatable): no automatic outbound connections, as in Core;
    /// redialed after disconnects.
    #[arg(long, help_heading = "Connection options", value_name = "ADDR:PORT")]
    pub connect: Vec<AddrArg>,
    /// Keep a connection to this peer (repeatable) besides the automatic ones; redialed after
    /// disconnects.
    #[arg(long, help_heading = "Connection options", value_name = "ADDR:PORT")]
    pub addnode: Vec<AddrArg>,
    /// Ask DNS seeds for addresses when the address book is empty (0 to never).
    #[arg(long, help_heading = "Connection options", value_name = "0|1", default_value = "1", value_parser = parse_flag)]
    pub dnsseed: bool,
    /// Discourage misbehaving loopback peers too (by default they are only disconnected).
    #[arg(long, help_heading = "Connection options")]
    pub discourage_local: bool,
    /// Give peers from this subnet `noban` (repeatable): scored, never disconnected for it.
    #[arg(long, help_heading = "Connection options", value_name = "SUBNET")]
    pub whitelist: Vec<Subnet>,
    /// Seconds an escalated ban lasts.
    #[arg(long, help_heading = "Connection options", value_name = "SECONDS", default_value_t = 86_400)]
    pub bantime: i64,
    /// Move a damaged store aside (kept as store.corrupt-<time>) and start with an empty one.
    #[arg(long, help_heading = "General options")]
    pub reset_store: bool,
    /// In initial block download while the tip is older than this many seconds (Core's
    /// -maxtipage; default 86400).
    #[arg(long, help_heading = "Chain selection options", value_name = "SECONDS")]
    pub max_tip_age: Option<i64>,
    /// Least total work a header chain must show to be stored at once, hex (Core's
    /// -minimumchainwork; default: the network's). A chain below it is synced in two passes
    /// (PRESYNC) that keep commitments, not headers; on regtest, whose own is zero, it makes a
    /// low-work header flood meet that defence.
    #[arg(long, help_heading = "Chain selection options", value_name = "HEX", value_parser = parse_chain_work)]
    pub minimumchainwork: Option<bitcoin::pow::Work>,
    /// Most inbound peers.
    #[arg(long, help_heading = "Connection options", value_name = "N")]
    pub max_inbound: Option<usize>,
    /// Most outbound peers (manual ones not counted).
    #[arg(long, help_heading = "Connection options", value_name = "N")]
    pub max_outbound: Option<usize>,
    /// Memory bound of the transaction pool, in MB (Core's -maxmempool; at least 5).
    #[arg(long, help_heading = "Node relay options", value_name = "MB", default_value_t = 300, value_parser = parse_maxmempool)]
    pub maxmempool: u64,
    /// Relay no transactions: peers are told not to announce any (Core's -blocksonly).
    #[arg(long, help_heading = "Node relay options")]
    pub blocksonly: bool,
    /// Seconds a new connection has to finish its handshake (v2 key exchange, version and verack)
    /// before it is dropped (Core's -peertimeout; at least 1).
    #[arg(long, help_heading = "Connection options", value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub peertimeout: u64,
    /// Milliseconds an outbound dial may take before it counts as failed (Core's -timeout; at
    /// least 1).
    #[arg(long, help_heading = "Connection options", value_name = "MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Seconds a ping of ours may go unanswered before the peer is dropped (Core: 20 minutes).
    #[arg(long, help_heading = "Connection options", value_name = "SECONDS", default_value_t = 1_200, value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_timeout: u64,
    /// Seconds a ready peer may send nothing at all before it is dropped (Core: 20 minutes).
    #[arg(long, help_heading = "Connection options", value_name = "SECONDS", default_value_t = 1_200, value_parser = clap::value_parser!(u64).range(1..))]
    pub inactivity_timeout: u64,
    /// Idle seconds before the kernel sends TCP keepalive probes on a P2P connection; 0 turns
    /// them off.
    #[arg(long, help_heading = "Connection options", value_name = "SECONDS", default_value_t = 600)]
    pub keepalive: u64,
    /// BIP324 v2 encrypted transport (Core's -v2transport): advertise NODE_P2P_V2, answer v2
    /// dials, dial v2 to peers that advertise it (once more with v1 if one hangs up on it).
    #[arg(long, help_heading = "Connection options", value_name = "BOOL", default_value = "1", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub v2transport: bool,
    /// Lowest feerate the pool accepts and relays, in BTC/kvB (Core's -minrelaytxfee; default
    /// 0.000001).
    #[arg(long, help_heading = "Node relay options", value_name = "BTC/kvB", value_parser = parse_minrelaytxfee)]
    pub minrelaytxfee: Option<u64>,
    /// Log filter (e.g. `debug`, `oni=trace`); overrides RUST_LOG [default: RUST_LOG, else info].
    #[arg(long, help_heading = "General options", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// JSON-RPC and metrics endpoints.
    #[command(flatten)]
    pub operator: super::operator::OperatorArgs,
}

impl NodeArgs {
    /// The node's configuration from these flags.
    pub fn node_config(&self) -> NodeConfig {
        let network = Network::from(self.network);
        let port = network.default_port();
        let mut cfg = NodeConfig::new(network);
        cfg.listen = if self.nolisten {
            None
        } else {
            Some(self.listen.map_or(SocketAddr::from(([0, 0, 0, 0], port)), |a| a.resolve(port)))
        };
        cfg.datadir = Some(self.datadir.clone().unwrap_or_else(|| default_datadir(network)));
        cfg.manual_peers = self.connect.iter().chain(&self.addnode).map(|a| a.resolve(port)).collect();
        cfg.policy.auto_outbound = self.connect.is_empty();
        cfg.policy.discourage_local = self.discourage_local;
        cfg.policy.whitelist = self.whitelist.clone();
        cfg.policy.ban_s = self.bantime;
        cfg.dnsseed = self.dnsseed;
        cfg.reset_store = self.reset_store;
        cfg.max_tip_age_s = self.max_tip_age;
        cfg.minimum_chain_work = self.minimumchainwork;
        if let Some(n) = self.max_inbound {
            cfg.config.limits.max_inbound = n;
        }
        if let Some(n) = self.max_outbound {
            cfg.config.limits.max_outbound = n;
        }
        cfg.mempool.max_bytes = (self.maxmempool * 1_000_000) as usize;
        if self.blocksonly {
            cfg.config.relay = false;
        }
        cfg.config.limits.handshake_timeout_ms = self.peertimeout * 1000;
        cfg.config.limits.ping_timeout_ms = self.ping_timeout * 1000;
        cfg.config.limits.inactivity_timeout_ms = self.inactivity_timeout * 1000;
        cfg.connect_timeout_ms = self.timeout;
        cfg.keepalive_idle_s = self.keepalive;
        if !self.v2transport {
            cfg.config.services &= !oni_systems::wire::services::NODE_P2P_V2;
        }
        if let Some(rate) = self.minrelaytxfee {
            cfg.mempool.min_relay_feerate = rate;
            cfg.tx_policy.min_relay_feerate_sat_per_kvb = rate;
        }
        cfg
    }
}

/// Parses Core-style boolean flags: 0/1, true/false.
fn parse_flag(s: &str) -> Result<bool, String> {
    match s {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("expected 0 or 1, got '{s}'")),
    }
}

/// `--minimumchainwork`: up to 64 hex digits (a `0x` prefix allowed), as Core parses it.
fn parse_chain_work(s: &str) -> Result<bitcoin::pow::Work, String> {
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{s}' is not a hex number of at most 64 digits"));
    }
    let padded = format!("{hex:0>64}");
    let mut b = [0u8; 32];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(bitcoin::pow::Work::from_be_bytes(b))
}

/// Smallest pool Core allows: 40 times the largest package (101 kvB), rounded up.
pub const MIN_MAXMEMPOOL_MB: u64 = 5;

/// `--maxmempool`: whole megabytes, at least [`MIN_MAXMEMPOOL_MB`], at most a million.
fn parse_maxmempool(s: &str) -> Result<u64, String> {
    let mb: u64 = s.parse().map_err(|_| format!("'{s}' is not a whole number of MB"))?;
    if mb < MIN_MAXMEMPOOL_MB {
        return Err(format!("--maxmempool must be at least {MIN_MAXMEMPOOL_MB} MB"));
    }
    if mb > 1_000_000 {
        return Err("--maxmempool is over 1,000,000 MB".to_string());
    }
    Ok(mb)
}

/// `--minrelaytxfee`: an amount in BTC/kvB (as Core parses money), in sat/kvB.
fn parse_minrelaytxfee(s: &str) -> Result<u64, String> {
    let rate = crate::rpc::methods::values::parse_amount(&serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("Invalid amount for --minrelaytxfee=<amount>: '{s}'"))?;
    if rate >= crate::rpc::methods::values::COIN_SAT {
        return Err(format!("--minrelaytxfee {s} is 1 BTC/kvB or more: nothing would relay"));
    }
    Ok(rate)
}

/// Runs `oni node` until Ctrl-C or SIGTERM; returns the process exit code.
pub fn run_node(args: &NodeArgs) -> i32 {
    if let Err(e) = init_logging(args.log_level.as_deref()) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    if !crate::allocator::tune() {
        tracing::debug!("the C library's allocator keeps its own settings");
    }
    // Signal handlers first: a Ctrl-C that arrives while the node starts (after it says it is
    // listening) must stop it cleanly, not kill it with the default action.
    let signals = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot wait for signals: {e}");
            return 1;
        }
    };
    let mut stop_signals = {
        let _in_runtime = signals.enter();
        StopSignals::install()
    };
    let cfg = args.node_config();
    let (network, datadir) = (cfg.config.network, cfg.datadir.clone());
    let handle = match Node::start(cfg) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    // RPC and metrics (held until exit: dropping them removes the RPC cookie).
    let op = &args.operator;
    let rpc = op.rpc_config(network, datadir.as_deref());
    let endpoints = match crate::rpc::endpoints::start_endpoints(&handle, network, rpc, op.rpc_explicit(), op.metrics) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            handle.shutdown();
            return EXIT_USAGE;
        }
    };
    let stopped_alone = signals.block_on(async {
        tokio::select! {
            _ = stop_signals.recv() => false,
            _ = handle.stopped() => true,
        }
    });
    if stopped_alone && endpoints.stop_requested() {
        tracing::info!("stopped by RPC");
        return 0;
    }
    if stopped_alone {
        tracing::error!("the node stopped unexpectedly");
        return 1;
    }
    tracing::info!("signal received");
    handle.shutdown();
    tracing::info!("stopped");
    0
}

/// SIGINT and SIGTERM, registered when installed (not when first awaited, as `ctrl_c()` is).
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Registers the handlers; must run inside a tokio runtime.
    fn install() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Waits for either signal.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.interrupt) => {}
                _ = next(&mut self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn addresses_parse_with_and_without_port() {
        let a: AddrArg = "127.0.0.1:1234".parse().unwrap();
        assert_eq!(a.resolve(18444), "127.0.0.1:1234".parse().unwrap());
        let a: AddrArg = "10.0.0.1".parse().unwrap();
        assert_eq!(a.resolve(18444), "10.0.0.1:18444".parse().unwrap());
        let a: AddrArg = "[::1]".parse().unwrap();
        assert_eq!(a.resolve(8333), "[::1]:8333".parse().unwrap());
        assert!("localhost:99999".parse::<AddrArg>().is_err());
        assert!("1.2.3.4:notaport".parse::<AddrArg>().is_err());
    }

    #[test]
    fn defaults_follow_the_network() {
        let cli = Cli::try_parse_from(["oni", "node", "--network", "regtest"]).unwrap();
        let Command::Node(args) = cli.command else { panic!("not node") };
        let cfg = args.node_config();
        assert_eq!(cfg.listen, Some("0.0.0.0:18444".parse().unwrap()));
        assert!(cfg.datadir.unwrap().ends_with(".oni/regtest"));
        assert_eq!(cfg.config.network, Network::Regtest);
    }

    #[test]
    fn flags_reach_the_config() {
        let cli = Cli::try_parse_from([
            "oni",
            "node",
            "--network",
            "signet",
            "--nolisten",
            "--connect",
            "1.2.3.4",
            "--addnode",
            "5.6.7.8:9",
            "--max-inbound",
            "3",
            "--max-outbound",
            "1",
        ])
        .unwrap();
        let Command::Node(args) = cli.command else { panic!("not node") };
        let cfg = args.node_config();
        assert_eq!(cfg.listen, None);
        assert!(!cfg.policy.auto_outbound, "--connect turns automatic outbound off");
        assert_eq!(cfg.manual_peers, vec!["1.2.3.4:38333".parse().unwrap(), "5.6.7.8:9".parse().unwrap()]);
        assert_eq!(cfg.config.limits.max_inbound, 3);
        assert_eq!(cfg.config.limits.max_outbound, 1);
        assert!(cfg.config.relay, "relay is on by default");
        assert_eq!(cfg.mempool.max_bytes, 300_000_000);
    }

    #[test]
    fn pool_flags_reach_the_config() {
        let cli =
            Cli::try_parse_from(["oni", "node", "--maxmempool", "5", "--blocksonly", "--minrelaytxfee", "0.00002"])
                .unwrap();
        let Command::Node(args) = cli.command else { panic!("not node") };
        let cfg = args.node_config();
        assert_eq!(cfg.mempool.max_bytes, 5_000_000);
        assert!(!cfg.config.relay);
        assert_eq!(cfg.mempool.min_relay_feerate, 2_000);
        assert_eq!(cfg.tx_policy.min_relay_feerate_sat_per_kvb, 2_000);
        for bad in [["--maxmempool", "4"], ["--maxmempool", "x"], ["--minrelaytxfee", "abc"], ["--minrelaytxfee", "1"]]
        {
            assert!(Cli::try_parse_from(["oni", "node", bad[0], bad[1]]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn minimum_chain_work_parses_hex_like_core() {
        let cfg = |v: &str| {
            let cli = Cli::try_parse_from(["oni", "node", "--minimumchainwork", v]).map_err(|e| e.to_string())?;
            let Command::Node(args) = cli.command else { panic!("not node") };
            Ok::<_, String>(args.node_config().minimum_chain_work)
        };
        let mut want = [0u8; 32];
        want[30..].copy_from_slice(&[0x12, 0x34]);
        assert_eq!(cfg("1234").unwrap(), Some(bitcoin::pow::Work::from_be_bytes(want)));
        assert_eq!(cfg("0x1234").unwrap(), Some(bitcoin::pow::Work::from_be_bytes(want)));
        assert_eq!(cfg(&"f".repeat(64)).unwrap(), Some(bitcoin::pow::Work::from_be_bytes([0xff; 32])));
        for bad in ["", "0x", "12g4", &"1".repeat(65)] {
            assert!(cfg(bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from(["oni", "node"]).unwrap();
        let Command::Node(args) = cli.command else { panic!("not node") };
        assert_eq!(args.node_config().minimum_chain_work, None, "the network's by default");
    }

    #[test]
    fn node_help_groups_flags_as_cores_help_does() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let help = cmd.find_subcommand_mut("node").unwrap().render_long_help().to_string();
        let headings = [
            "General options:",
            "Chain selection options:",
            "Connection options:",
            "Node relay options:",
            "RPC server options:",
            "Metrics options:",
        ];
        let at: Vec<usize> = headings.iter().map(|h| help.find(h).unwrap_or_else(|| panic!("{h} missing"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "in Core's order: {at:?}");
        // Every flag under its group.
        for (flag, group) in [
            ("--conf", 0),
            ("--network", 1),
            ("--connect", 2),
            ("--keepalive", 2),
            ("--maxmempool", 3),
            ("--rpcport", 4),
            ("--metrics", 5),
        ] {
            let pos = help.find(&format!("      {flag} ")).unwrap_or_else(|| panic!("{flag} missing"));
            assert!(
                pos > at[group] && at.get(group + 1).is_none_or(|&next| pos < next),
                "{flag} not under {}",
                headings[group]
            );
        }
    }

    #[test]
    fn timeouts_and_keepalive_have_cores_defaults_and_take_their_flags() {
        let cfg = |args: &[&str]| match Cli::try_parse_from([&["oni", "node"], args].concat()) {
            Ok(Cli { command: Command::Node(a), .. }) => Ok(a.node_config()),
            Ok(_) => unreachable!(),
            Err(e) => Err(e.to_string()),
        };
        let d = cfg(&[]).unwrap();
        assert_eq!(d.connect_timeout_ms, 5_000, "Core's -timeout default");
        assert_eq!(d.config.limits.ping_timeout_ms, 1_200_000, "Core's 20 minutes");
        assert_eq!(d.config.limits.inactivity_timeout_ms, 1_200_000);
        assert_eq!(d.keepalive_idle_s, 600);
        let c = cfg(&["--timeout", "250", "--ping-timeout", "30", "--inactivity-timeout", "45", "--keepalive", "0"])
            .unwrap();
        assert_eq!(c.connect_timeout_ms, 250);
        assert_eq!(c.config.limits.ping_timeout_ms, 30_000);
        assert_eq!(c.config.limits.inactivity_timeout_ms, 45_000);
        assert_eq!(c.keepalive_idle_s, 0);
        for bad in
            [&["--timeout", "0"][..], &["--ping-timeout", "0"], &["--inactivity-timeout", "x"], &["--keepalive", "-1"]]
        {
            assert!(cfg(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn v2transport_is_on_by_default_and_off_with_zero() {
        let on = match Cli::try_parse_from(["oni", "node"]).unwrap().command {
            Command::Node(a) => a.node_config(),
            _ => unreachable!(),
        };
        assert!(on.config.v2(), "on by default, as in Core");
        for off in ["--v2transport=0", "--v2transport=false"] {
            let cfg = match Cli::try_parse_from(["oni", "node", off]).unwrap().command {
                Command::Node(a) => a.node_config(),
                _ => unreachable!(),
            };
            assert!(!cfg.config.v2(), "{off}");
            assert_eq!(cfg.config.services & oni_systems::wire::services::NODE_P2P_V2, 0);
        }
        assert!(Cli::try_parse_from(["oni", "node", "--v2transport=maybe"]).is_err());
        assert_eq!(on.config.limits.handshake_timeout_ms, 60_000, "Core's -peertimeout default");
        let Command::Node(a) = Cli::try_parse_from(["oni", "node", "--peertimeout", "3"]).unwrap().command else {
            unreachable!()
        };
        assert_eq!(a.node_config().config.limits.handshake_timeout_ms, 3_000);
        assert!(Cli::try_parse_from(["oni", "node", "--peertimeout", "0"]).is_err(), "at least 1 s");
    }

    #[test]
    fn listen_and_nolisten_conflict() {
        assert!(Cli::try_parse_from(["oni", "node", "--nolisten", "--listen", "127.0.0.1:1"]).is_err());
    }
}
