//! The operator endpoints (RPC and metrics) started beside a running node, and held until it stops.

use super::{RpcConfig, RpcServer};
use crate::node::NodeHandle;
use crate::telemetry::MetricsServer;
use oni_systems::wire::Network;
use std::net::SocketAddr;

/// The endpoints running beside a node; dropping them removes the cookie.
#[derive(Default)]
pub struct Endpoints {
    /// The RPC server, if running.
    pub rpc: Option<RpcServer>,
    /// The metrics server, if running.
    pub metrics: Option<MetricsServer>,
}

impl Endpoints {
    /// Whether a client asked the node to stop over RPC.
    pub fn stop_requested(&self) -> bool {
        self.rpc.as_ref().is_some_and(RpcServer::stop_requested)
    }
}

/// Starts the RPC server `rpc` describes (none: `--norpc`) and the metrics server at `metrics`. An
/// address the operator gave (`rpc_explicit`) that cannot be used is an error; the default RPC port
/// being taken (another node, a test running beside) only disables RPC, loudly.
pub fn start_endpoints(
    node: &NodeHandle,
    network: Network,
    rpc: Option<RpcConfig>,
    rpc_explicit: bool,
    metrics: Option<SocketAddr>,
) -> Result<Endpoints, String> {
    let mut out = Endpoints::default();
    if let Some(cfg) = rpc {
        match RpcServer::start(node, network, cfg) {
            Ok(s) => out.rpc = Some(s),
            Err(e @ super::RpcStartError::Bind(..)) if !rpc_explicit => {
                tracing::error!("{e}; running without RPC (choose another with --rpcport)");
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(addr) = metrics {
        out.metrics =
            Some(MetricsServer::start(node, addr).map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?);
    }
    Ok(out)
}
