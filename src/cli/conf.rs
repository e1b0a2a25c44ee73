//! `oni node --conf FILE`: reads a Bitcoin Core style configuration file (`key=value` lines, `#`
//! comments, `[main]`/`[test]`/`[testnet4]`/`[signet]`/`[regtest]` sections) so an operator can
//! move a `bitcoin.conf` over. Only the settings oni has are taken — under Core's name where oni
//! has Core's flag (`connect`, `maxmempool`, `rpcport`, ...), a few of Core's spellings mapped to
//! oni's (`bind`, `listen=0`, `server=0`, `maxtipage`, `chain`, `regtest=1`), and any `oni node` flag
//! by its own name; others are listed once as ignored. The command line wins: a setting given
//! there makes the file's lines for it ignored. The file becomes flags in front of the command
//! line's, so clap checks every value as if it had been typed.

use super::{Cli, NodeArgs};
use clap::{CommandFactory, Parser};
use std::ffi::OsString;

/// Why the command line could not be read.
#[derive(Debug)]
pub enum ArgsError {
    /// clap's own (bad flag, `--help`, `--version`): it prints and exits itself.
    Clap(clap::Error),
    /// The configuration file: unreadable, or a line that is not `key=value`.
    Conf(String),
}

/// What a configuration file turned into.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfArgs {
    /// Flags for `oni node`, in file order.
    pub args: Vec<String>,
    /// Keys oni has no setting for (listed once to the operator).
    pub ignored: Vec<String>,
}

/// Parses the command line, reading `--conf FILE` when given.
pub fn parse_cli(argv: Vec<OsString>) -> Result<(Cli, Vec<String>), ArgsError> {
    let cli = Cli::try_parse_from(&argv).map_err(ArgsError::Clap)?;
    let super::Command::Node(node) = &cli.command else { return Ok((cli, Vec::new())) };
    let Some(path) = &node.conf else { return Ok((cli, Vec::new())) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ArgsError::Conf(format!("cannot read the configuration file {}: {e}", path.display())))?;
    let at = argv.iter().position(|a| a == "node").map_or(argv.len(), |i| i + 1);
    let typed: Vec<String> = argv[at..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let conf = conf_args(&text, &typed).map_err(|e| ArgsError::Conf(format!("{}: {e}", path.display())))?;
    let mut merged: Vec<OsString> = argv[..at].to_vec();
    merged.extend(conf.args.iter().map(OsString::from));
    merged.extend(argv[at..].iter().cloned());
    let cli = Cli::try_parse_from(merged).map_err(ArgsError::Clap)?;
    Ok((cli, conf.ignored))
}

/// Core's spellings that differ from oni's flags: (Core key, oni flag). `listen`, `server` and the
/// chain selectors are handled by value.
const RENAMED: &[(&str, &str)] = &[("bind", "listen"), ("maxtipage", "max-tip-age")];

/// Turns the file `text` into `oni node` flags, leaving out what `typed` (the command line after
/// `node`) already sets.
pub fn conf_args(text: &str, typed: &[String]) -> Result<ConfArgs, String> {
    let cmd = NodeArgs::command_for_conf();
    let on_command_line = |flag: &str| {
        let long = format!("--{flag}");
        typed.iter().any(|a| *a == long || a.starts_with(&format!("{long}=")))
    };
    let mut lines = Vec::new();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected key=value, got {line:?}", n + 1));
        };
        let key = key.trim().trim_start_matches('-').to_string();
        lines.push((section.clone(), key, value.trim().to_string()));
    }
    // The network: the command line's, else the file's top-level selection (as Core).
    let network = if on_command_line("network") {
        typed.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix("--network=")
                .map(str::to_string)
                .or_else(|| (a == "--network").then(|| typed.get(i + 1).cloned()).flatten())
        })
    } else {
        lines.iter().filter(|l| l.0.is_none()).rev().find_map(|(_, k, v)| chain_selected(k, v))
    };
    let section_name = match network.as_deref().unwrap_or("main") {
        "testnet4" => "testnet4",
        "signet" => "signet",
        "regtest" => "regtest",
        _ => "main",
    };
    let mut out = ConfArgs::default();
    if let (Some(net), false) = (&network, on_command_line("network")) {
        out.args.push(format!("--network={net}"));
    }
    for (sec, key, value) in &lines {
        if sec.as_deref().is_some_and(|s| s != section_name) || chain_selected(key, value).is_some() || key == "chain" {
            continue;
        }
        let flag = RENAMED.iter().find(|(core, _)| core == key).map_or(key.as_str(), |(_, oni)| oni);
        let (flag, value) = match (flag, value.as_str()) {
            ("listen", "0") => ("nolisten", "1"),
            ("listen", "1") | ("server", "1") => continue,
            ("server", "0") => ("norpc", "1"),
            (f, v) => (f, v),
        };
        let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(flag)) else {
            if !out.ignored.contains(key) {
                out.ignored.push(key.clone());
            }
            continue;
        };
        if flag == "conf" {
            return Err("a configuration file cannot name another (conf=)".into());
        }
        if on_command_line(flag) {
            continue;
        }
        if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            match value {
                "1" | "true" | "" => out.args.push(format!("--{flag}")),
                "0" | "false" => {}
                v => return Err(format!("{key}={v}: expected 0 or 1")),
            }
        } else {
            out.args.push(format!("--{flag}={value}"));
        }
    }
    Ok(out)
}

/// The network a chain-selection line picks (`chain=regtest`, `regtest=1`, `testnet4=1`,
/// `signet=1`; Core's `test` is testnet3, which oni does not run).
fn chain_selected(key: &str, value: &str) -> Option<String> {
    match (key, value) {
        ("chain", v) => Some(v.into()),
        ("regtest" | "testnet4" | "signet", "1") => Some(key.into()),
        _ => None,
    }
}

impl NodeArgs {
    /// The `oni node` subcommand, for the names of its flags.
    fn command_for_conf() -> clap::Command {
        Cli::command().find_subcommand("node").cloned().unwrap_or_else(|| clap::Command::new("node"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str, typed: &[&str]) -> ConfArgs {
        conf_args(text, &typed.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_bitcoin_conf_becomes_flags_with_its_network_section_and_unknown_keys_listed() {
        let conf = "# moved from Core\nregtest=1\nserver=1\ntxindex=1\ndbcache=4000\nmaxmempool=50\n\
                    connect=127.0.0.1:18445\nconnect=127.0.0.1:18446\nblocksonly=1\nlisten=0\n\
                    [main]\nrpcport=8332\n[regtest]\nrpcport=18500\nbind=127.0.0.1:0\n";
        let out = args(conf, &[]);
        assert_eq!(
            out.args,
            [
                "--network=regtest",
                "--maxmempool=50",
                "--connect=127.0.0.1:18445",
                "--connect=127.0.0.1:18446",
                "--blocksonly",
                "--nolisten",
                "--rpcport=18500",
                "--listen=127.0.0.1:0",
            ]
        );
        assert_eq!(out.ignored, ["txindex", "dbcache"]);
    }

    #[test]
    fn the_command_line_wins_and_picks_the_section() {
        let conf = "maxmempool=50\nconnect=10.0.0.1\n[signet]\nmaxmempool=70\n[regtest]\nmaxmempool=90\n";
        let out = args(conf, &["--network", "signet", "--connect", "10.0.0.2"]);
        assert_eq!(out.args, ["--maxmempool=50", "--maxmempool=70"], "connect from the command line only");
        let out = args(conf, &["--maxmempool=5"]);
        assert_eq!(out.args, ["--connect=10.0.0.1"]);
    }

    #[test]
    fn bad_lines_are_named() {
        let typed: Vec<String> = Vec::new();
        let e = conf_args("maxmempool=5\njust words\n", &typed).unwrap_err();
        assert!(e.contains("line 2") && e.contains("key=value"), "{e}");
        let e = conf_args("blocksonly=maybe\n", &typed).unwrap_err();
        assert!(e.contains("expected 0 or 1"), "{e}");
        assert!(conf_args("conf=/etc/other.conf\n", &typed).is_err());
    }

    #[test]
    fn the_file_goes_through_clap_so_bad_values_are_refused_as_if_typed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bitcoin.conf");
        std::fs::write(&path, "regtest=1\nmaxmempool=64\nping-timeout=30\nfoo=bar\n").unwrap();
        let argv = |extra: &[&str]| -> Vec<OsString> {
            let mut v: Vec<OsString> = ["oni", "node", "--conf"].iter().map(OsString::from).collect();
            v.push(path.clone().into_os_string());
            v.extend(extra.iter().map(OsString::from));
            v
        };
        let (cli, ignored) = parse_cli(argv(&["--maxmempool", "100"])).unwrap();
        let crate::cli::Command::Node(a) = cli.command else { panic!("node") };
        let cfg = a.node_config();
        assert_eq!(cfg.config.network, oni_systems::wire::Network::Regtest);
        assert_eq!(cfg.mempool.max_bytes, 100_000_000, "the command line wins");
        assert_eq!(cfg.config.limits.ping_timeout_ms, 30_000, "oni's own flag names work too");
        assert_eq!(ignored, ["foo"]);
        std::fs::write(&path, "maxmempool=1\n").unwrap();
        assert!(
            matches!(parse_cli(argv(&[])), Err(ArgsError::Clap(_))),
            "below the 5 MB floor, as on the command line"
        );
        std::fs::remove_file(&path).unwrap();
        let Err(ArgsError::Conf(e)) = parse_cli(argv(&[])) else { panic!("a missing file is an error") };
        assert!(e.contains("cannot read the configuration file"), "{e}");
    }
}
