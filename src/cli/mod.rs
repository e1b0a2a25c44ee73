//! The `oni` command line: `oni node` runs a node until Ctrl-C, `oni dump` prints a running node's
//! components, `oni scenario run` replays scenario files. Operator mistakes (bad flags, unparsable
//! addresses, a port in use, an unwritable datadir, a bad `--conf` line) end with a one-line message
//! and exit code 2, never a panic. Everything the command line knows lives here and depends on
//! the rest of the shell, never the other way round.
//!
//! - [`args`]: what several commands share (network, addresses, datadir).
//! - [`node`]: `oni node`'s flags and running it; [`conf`]: `--conf` files; [`operator`]: its RPC
//!   and metrics flags.
//! - [`dump`]: `oni dump`; [`scenario`]: `oni scenario`; [`chaingen`]: `oni chaingen`.

pub mod args;
pub mod chaingen;
pub mod conf;
pub mod dump;
pub mod node;
pub mod operator;
pub mod scenario;

pub use args::{default_datadir, AddrArg, NetworkArg};
pub use node::{run_node, NodeArgs};

use clap::{Parser, Subcommand};

/// Exit code for operator errors (clap uses the same for bad flags).
pub const EXIT_USAGE: i32 = 2;

/// oni: a Bitcoin P2P node built as an ECS.
#[derive(Parser, Debug)]
#[command(name = "oni", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
// Parsed once at start-up: the size of the node's flags does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run a node until Ctrl-C.
    Node(NodeArgs),
    /// Print a running node's peers with all their components and its resources (RPC
    /// `dumpcomponents`), as RON or JSON.
    Dump(dump::DumpArgs),
    /// Attack and workload scenarios (RON files).
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Write a heavy regtest chain (signed transactions of several kinds) for IBD measurements.
    Chaingen(chaingen::ChainGenArgs),
}

/// Sets up logging to stderr: `--log-level`, else RUST_LOG, else info.
pub fn init_logging(level: Option<&str>) -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("invalid --log-level '{l}': {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // bevy's per-system spans (feature `trace`, used for tick timings) would otherwise be built and
    // logged every tick; they are opt-in by naming bevy_ecs in the filter.
    let named = level.map(str::to_string).or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_default();
    let filter = match "bevy_ecs=warn".parse() {
        Ok(d) if !named.contains("bevy_ecs") => filter.add_directive(d),
        _ => filter,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}
