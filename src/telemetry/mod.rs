//! Telemetry the operator can scrape: the Prometheus text endpoint (`--metrics ADDR:PORT`, GET
//! `/metrics`) and the tick timings behind it.
//!
//! - [`prometheus`]: renders the world's counters, histograms and per-peer series.
//! - [`timings`]: per-system and per-tick time, measured by the shell.

pub mod prometheus;
pub mod timings;

use crate::http::{self, HttpLimits, Request, Response};
use crate::node::NodeHandle;
use std::net::SocketAddr;

/// A running metrics endpoint; it stops with the node's runtime.
pub struct MetricsServer {
    local_addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves `/metrics` (any GET path answers the same, as node exporters do).
    pub fn start(node: &NodeHandle, addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let rt = node.runtime().clone();
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
        let local_addr = listener.local_addr()?;
        let node = node.clone();
        let handler = move |req: Request| {
            let node = node.clone();
            async move {
                if req.method != "GET" {
                    return Response::new(405, "text/plain", "GET only\n");
                }
                // Only the copy happens on the world thread; the text is built here.
                match node.with_world_async(prometheus::Snapshot::capture).await {
                    Ok(snapshot) => Response::new(200, prometheus::CONTENT_TYPE, snapshot.render()),
                    Err(_) => Response::new(503, "text/plain", "the node is shutting down\n"),
                }
            }
        };
        let limits = HttpLimits { body_bytes_max: 0, connections_max: 8, ..HttpLimits::default() };
        rt.spawn(http::serve(listener, limits, handler));
        tracing::info!("metrics on http://{local_addr}/metrics");
        Ok(MetricsServer { local_addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}
