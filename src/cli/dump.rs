//! `oni dump`: asks a running node for its components over RPC (finding it as `bitcoin-cli`
//! does) and prints them as RON or JSON.

use crate::dump::Dump;

/// Output format of `oni dump`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// Rusty Object Notation: readable, and loadable with serde.
    Ron,
    /// JSON.
    Json,
}

/// Flags of `oni dump`: where the node's RPC is and how to log in (as `bitcoin-cli` finds them).
#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// The node's network (default RPC port and cookie place).
    #[arg(long, value_enum, default_value = "main")]
    pub network: super::NetworkArg,
    /// The node's datadir, where its cookie is [default: ~/.oni/<network>].
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<std::path::PathBuf>,
    /// The node's RPC address [default: 127.0.0.1].
    #[arg(long, value_name = "IP")]
    pub rpcconnect: Option<std::net::IpAddr>,
    /// The node's RPC port [default: the network's].
    #[arg(long, value_name = "PORT")]
    pub rpcport: Option<u16>,
    /// RPC user (with --rpcpassword) instead of the cookie.
    #[arg(long, value_name = "USER", requires = "rpcpassword")]
    pub rpcuser: Option<String>,
    /// RPC password.
    #[arg(long, value_name = "PW", requires = "rpcuser")]
    pub rpcpassword: Option<String>,
    /// The cookie file [default: where Core keeps it under the datadir].
    #[arg(long, value_name = "FILE")]
    pub rpccookiefile: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "ron")]
    pub format: DumpFormat,
}

/// Runs `oni dump`: asks the node over RPC and prints the dump; returns the exit code.
pub fn run_dump(args: &DumpArgs) -> i32 {
    match dump_text(args) {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The dump of the node `args` point at, formatted.
pub fn dump_text(args: &DumpArgs) -> Result<String, String> {
    let network = oni_systems::wire::Network::from(args.network);
    let creds = match (&args.rpcuser, &args.rpcpassword) {
        (Some(u), Some(p)) => format!("{u}:{p}"),
        _ => {
            let path = args.rpccookiefile.clone().unwrap_or_else(|| {
                let dir = args.datadir.clone().unwrap_or_else(|| super::default_datadir(network));
                crate::rpc::auth::core_cookie_path(&dir, network)
            });
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the RPC cookie {}: {e} (is the node running?)", path.display()))?
                .trim()
                .to_string()
        }
    };
    let ip = args.rpcconnect.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let addr = std::net::SocketAddr::new(ip, args.rpcport.unwrap_or(network.default_rpc_port()));
    let value = crate::rpc::client::call(addr, &creds, "dumpcomponents", serde_json::json!([]))?;
    let dump: Dump = serde_json::from_value(value).map_err(|e| format!("the node's dump does not load: {e}"))?;
    match args.format {
        DumpFormat::Ron => dump.to_ron().map_err(|e| e.to_string()),
        DumpFormat::Json => dump.to_json().map_err(|e| e.to_string()),
    }
}
