//! Command-line values several commands share: the network, an address with an optional port,
//! the default datadir.

use clap::ValueEnum;
use oni_systems::wire::Network;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// A network name on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkArg {
    /// The real network.
    Main,
    /// testnet4.
    Testnet4,
    /// The default signet.
    Signet,
    /// Local regression testing.
    Regtest,
}

impl From<NetworkArg> for Network {
    fn from(n: NetworkArg) -> Network {
        match n {
            NetworkArg::Main => Network::Main,
            NetworkArg::Testnet4 => Network::Testnet4,
            NetworkArg::Signet => Network::Signet,
            NetworkArg::Regtest => Network::Regtest,
        }
    }
}

/// An address from the command line; without a port it takes the network's default port, as in
/// Bitcoin Core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrArg {
    ip: IpAddr,
    port: Option<u16>,
}

impl AddrArg {
    /// The socket address, with `default_port` filled in when none was given.
    pub fn resolve(self, default_port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(default_port))
    }
}

impl std::str::FromStr for AddrArg {
    type Err = String;

    fn from_str(s: &str) -> Result<AddrArg, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(AddrArg { ip: a.ip(), port: Some(a.port()) });
        }
        if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(AddrArg { ip, port: None });
        }
        Err(format!("'{s}' is not an IP address with an optional port (e.g. 127.0.0.1:18444 or [::1]:18444)"))
    }
}

/// `~/.oni/<network>` (or `./.oni/<network>` when there is no home).
pub fn default_datadir(network: Network) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".oni").join(network.name())
}
