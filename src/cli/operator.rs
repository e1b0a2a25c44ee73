//! `oni node`'s operator endpoint flags (RPC and metrics), with Core's names, and the RPC
//! configuration they ask for.

use super::AddrArg;
use crate::rpc::RpcConfig;
use oni_systems::wire::Network;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// RPC and metrics flags, flattened into `oni node`'s.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OperatorArgs {
    /// Address for JSON-RPC [default: 127.0.0.1]; a port here overrides --rpcport.
    #[arg(long, help_heading = "RPC server options", value_name = "ADDR[:PORT]")]
    pub rpcbind: Option<AddrArg>,
    /// JSON-RPC port [default: Bitcoin Core's for the network: 8332, 48332, 38332, 18443]; 0 picks a
    /// free one (logged).
    #[arg(long, help_heading = "RPC server options", value_name = "PORT")]
    pub rpcport: Option<u16>,
    /// JSON-RPC user (with --rpcpassword); without them a cookie file is written where
    /// bitcoin-cli looks: <datadir>/.cookie on main, <datadir>/<network>/.cookie otherwise.
    #[arg(long, help_heading = "RPC server options", value_name = "USER", requires = "rpcpassword")]
    pub rpcuser: Option<String>,
    /// JSON-RPC password.
    #[arg(long, help_heading = "RPC server options", value_name = "PW", requires = "rpcuser")]
    pub rpcpassword: Option<String>,
    /// Where to write the cookie instead.
    #[arg(long, help_heading = "RPC server options", value_name = "FILE")]
    pub rpccookiefile: Option<PathBuf>,
    /// Allow JSON-RPC clients from this subnet besides loopback (repeatable; Core's
    /// -rpcallowip). Needed to bind --rpcbind to anything but a loopback address.
    #[arg(long, help_heading = "RPC server options", value_name = "SUBNET")]
    pub rpcallowip: Vec<oni_systems::resources::Subnet>,
    /// Run no JSON-RPC server.
    #[arg(long, help_heading = "RPC server options")]
    pub norpc: bool,
    /// Serve Prometheus metrics over HTTP at this address (e.g. 127.0.0.1:9332).
    #[arg(long, help_heading = "Metrics options", value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
}

impl OperatorArgs {
    /// Whether the operator chose the RPC address (then failing to bind it is fatal).
    pub fn rpc_explicit(&self) -> bool {
        self.rpcbind.is_some() || self.rpcport.is_some()
    }

    /// The RPC configuration these flags ask for, or `None` with `--norpc`.
    pub fn rpc_config(&self, network: Network, datadir: Option<&Path>) -> Option<RpcConfig> {
        if self.norpc {
            return None;
        }
        let mut cfg = RpcConfig::new(network, datadir);
        let port = self.rpcport.unwrap_or(network.default_rpc_port());
        cfg.bind = match self.rpcbind {
            Some(a) => a.resolve(port),
            None => SocketAddr::from(([127, 0, 0, 1], port)),
        };
        if let (Some(u), Some(p)) = (&self.rpcuser, &self.rpcpassword) {
            cfg.user_password = Some((u.clone(), p.clone()));
        }
        if let Some(c) = &self.rpccookiefile {
            cfg.cookie_path = Some(c.clone());
        }
        cfg.allow = self.rpcallowip.clone();
        Some(cfg)
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use oni_systems::wire::Network;
    use std::path::Path;

    fn operator(args: &[&str]) -> super::OperatorArgs {
        let mut argv = vec!["oni", "node", "--network", "regtest"];
        argv.extend_from_slice(args);
        let Command::Node(a) = Cli::try_parse_from(argv).unwrap().command else { panic!("not node") };
        a.operator
    }

    #[test]
    fn defaults_are_cores_loopback_port_and_cookie_place() {
        let o = operator(&[]);
        assert!(!o.rpc_explicit());
        let c = o.rpc_config(Network::Regtest, Some(Path::new("/d"))).unwrap();
        assert_eq!(c.bind, "127.0.0.1:18443".parse().unwrap());
        assert_eq!(c.cookie_path.as_deref(), Some(Path::new("/d/regtest/.cookie")));
        assert!(c.user_password.is_none());
        assert!(o.metrics.is_none());
    }

    #[test]
    fn flags_override_and_norpc_disables() {
        let o = operator(&["--rpcbind", "0.0.0.0", "--rpcport", "7000", "--rpcuser", "u", "--rpcpassword", "p"]);
        assert!(o.rpc_explicit());
        let c = o.rpc_config(Network::Regtest, None).unwrap();
        assert_eq!(c.bind, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(c.user_password, Some(("u".into(), "p".into())));
        let c = operator(&["--rpcbind", "[::1]:7001"]).rpc_config(Network::Main, None).unwrap();
        assert_eq!(c.bind, "[::1]:7001".parse().unwrap(), "a port in --rpcbind wins");
        let c = operator(&["--rpccookiefile", "/x/c"]).rpc_config(Network::Main, Some(Path::new("/d"))).unwrap();
        assert_eq!(c.cookie_path.as_deref(), Some(Path::new("/x/c")));
        assert!(operator(&["--norpc"]).rpc_config(Network::Main, None).is_none());
        assert_eq!(operator(&["--metrics", "127.0.0.1:9332"]).metrics, Some("127.0.0.1:9332".parse().unwrap()));
        let bad = Cli::try_parse_from(["oni", "node", "--rpcuser", "u"]);
        assert!(bad.is_err(), "a user needs a password");
    }
}
