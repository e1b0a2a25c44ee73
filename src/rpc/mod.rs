//! JSON-RPC over HTTP, shaped like Bitcoin Core's so `bitcoin-cli` and operators' scripts work
//! unchanged. The server runs on the node's IO runtime and reads the world only through
//! [`NodeHandle::with_world_async`].
//!
//! - [`auth`]: cookie file / fixed user and password, Basic auth.
//! - [`jsonrpc`]: 1.0 and 2.0 envelopes, batches, Core's error codes and HTTP statuses.
//! - [`params`]: positional and named parameters.
//! - [`methods`]: the calls.
//! - [`client`]: a small client (`oni dump` talks to a running node with it).
//! - [`endpoints`]: starting RPC and metrics beside a node (their flags are `crate::cli::operator`).

pub mod auth;
pub mod client;
pub mod endpoints;
pub mod jsonrpc;
pub mod methods;
pub mod params;

use crate::http::{self, HttpLimits, Request, Response};
use crate::node::NodeHandle;
use auth::Credentials;
use jsonrpc::{codes, parse_call, reply, RpcError, Version};
use oni_systems::resources::Subnet;
use oni_systems::wire::Network;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Delay before answering wrong credentials (Core's), to slow down guessing.
pub const WRONG_AUTH_DELAY_MS: u64 = 250;

/// How the RPC server is set up.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Where to listen (Core: 127.0.0.1 and the network's RPC port); port 0 picks a free one.
    pub bind: SocketAddr,
    /// Fixed credentials; `None` writes a cookie file instead.
    pub user_password: Option<(String, String)>,
    /// Where the cookie goes (Core's place under the datadir, see [`auth::core_cookie_path`]).
    pub cookie_path: Option<PathBuf>,
    /// Request and connection bounds.
    pub limits: HttpLimits,
    /// Clients allowed besides loopback (Core's `-rpcallowip`). Binding anything but a loopback
    /// address needs at least one: an exposed RPC port must be a choice, not an accident.
    pub allow: Vec<Subnet>,
}

impl RpcConfig {
    /// Core's defaults for `network`: loopback, Core's port, cookie where Core keeps it.
    pub fn new(network: Network, datadir: Option<&std::path::Path>) -> RpcConfig {
        RpcConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], network.default_rpc_port())),
            user_password: None,
            cookie_path: datadir.map(|d| auth::core_cookie_path(d, network)),
            limits: HttpLimits::default(),
            allow: Vec::new(),
        }
    }
}

/// Why the RPC server could not start.
#[derive(Debug)]
pub enum RpcStartError {
    /// The address cannot be bound.
    Bind(SocketAddr, std::io::Error),
    /// The cookie cannot be written (or no place for it and no user/password).
    Cookie(String),
    /// A non-loopback address to bind and nobody allowed to use it.
    Exposed(SocketAddr),
}

impl std::fmt::Display for RpcStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcStartError::Bind(a, e) => write!(f, "cannot listen for RPC on {a}: {e}"),
            RpcStartError::Cookie(e) => write!(f, "cannot set up RPC credentials: {e}"),
            RpcStartError::Exposed(a) => write!(
                f,
                "RPC on {a} would be reachable from other hosts: name who may connect with --rpcallowip SUBNET"
            ),
        }
    }
}

impl std::error::Error for RpcStartError {}

/// A running RPC server. Dropping it removes the cookie; the server itself stops with the node's
/// runtime.
pub struct RpcServer {
    local_addr: SocketAddr,
    cookie_path: Option<PathBuf>,
    stop_requested: Arc<AtomicBool>,
}

impl RpcServer {
    /// Binds, writes the cookie (when no user/password was given) and starts serving.
    pub fn start(node: &NodeHandle, network: Network, cfg: RpcConfig) -> Result<RpcServer, RpcStartError> {
        if !cfg.bind.ip().is_loopback() && cfg.allow.is_empty() {
            return Err(RpcStartError::Exposed(cfg.bind));
        }
        let rt = node.runtime().clone();
        let listener = rt
            .block_on(async { tokio::net::TcpListener::bind(cfg.bind).await })
            .map_err(|e| RpcStartError::Bind(cfg.bind, e))?;
        let local_addr = listener.local_addr().map_err(|e| RpcStartError::Bind(cfg.bind, e))?;
        let (creds, cookie_path) = match &cfg.user_password {
            Some((u, p)) => (Credentials::new(u, p), None),
            None => {
                let path = cfg
                    .cookie_path
                    .clone()
                    .ok_or_else(|| RpcStartError::Cookie("no datadir for the cookie and no --rpcpassword".into()))?;
                let c = Credentials::random_cookie().map_err(|e| RpcStartError::Cookie(e.to_string()))?;
                auth::write_cookie(&path, &c).map_err(|e| RpcStartError::Cookie(format!("{}: {e}", path.display())))?;
                (c, Some(path))
            }
        };
        let stop_requested = Arc::new(AtomicBool::new(false));
        let ctx = Arc::new(methods::Ctx {
            node: node.clone(),
            network,
            started: Instant::now(),
            stop_requested: stop_requested.clone(),
        });
        let creds = Arc::new(creds);
        let allow: Arc<[Subnet]> = cfg.allow.clone().into();
        let handler = move |req: Request| {
            let (ctx, creds, allow) = (ctx.clone(), creds.clone(), allow.clone());
            async move {
                let ip = req.peer.ip();
                if !ip.is_loopback() && !ip.to_canonical().is_loopback() && !allow.iter().any(|s| s.contains(ip)) {
                    tracing::warn!(from = %req.peer, "RPC: connection from a host not allowed (--rpcallowip)");
                    return Response::new(403, "text/plain", "not allowed\n");
                }
                handle(&ctx, &creds, req).await
            }
        };
        rt.spawn(http::serve(listener, cfg.limits, handler));
        tracing::info!("RPC listening on {local_addr}");
        Ok(RpcServer { local_addr, cookie_path, stop_requested })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The cookie file, when cookie auth is used.
    pub fn cookie_path(&self) -> Option<&std::path::Path> {
        self.cookie_path.as_deref()
    }

    /// Whether a client called `stop` (the node then stops by request, not by failure).
    pub fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        if let Some(p) = &self.cookie_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn json_response(status: u16, v: &Value) -> Response {
    let mut body = v.to_string().into_bytes();
    body.push(b'\n');
    Response::new(status, "application/json", body)
}

/// One HTTP request: method and auth checks, then one call or a batch.
async fn handle(ctx: &methods::Ctx, creds: &Credentials, req: Request) -> Response {
    let www = ("WWW-Authenticate", "Basic realm=\"jsonrpc\"".to_string());
    let auth = req.header("authorization");
    if auth.is_none() {
        return Response::empty(401).with_header(www.0, www.1);
    }
    if !creds.check(auth) {
        tracing::warn!(from = %req.peer, "RPC: incorrect password attempt");
        // Slows the guesser (as Core) without holding one of the server's slots meanwhile.
        return Response::empty(401).with_header(www.0, www.1).delayed(WRONG_AUTH_DELAY_MS);
    }
    if req.method != "POST" {
        return Response::new(405, "text/plain", "JSONRPC server handles only POST requests");
    }
    let parsed: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            let e = RpcError::new(codes::PARSE_ERROR, "Parse error");
            return json_response(e.http_status(), &reply(Err(e), None, Version::Legacy));
        }
    };
    match parsed {
        Value::Object(_) => single(ctx, &parsed).await,
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in &items {
                let (v, notification) = match parse_call(item) {
                    Ok(call) => {
                        let r = methods::dispatch(ctx, &call.method, &call.params).await;
                        (reply(r, call.id.clone(), call.version), call.is_notification())
                    }
                    Err((e, p)) => (reply(Err(e), p.id, p.version), false),
                };
                if !notification {
                    out.push(v);
                }
            }
            if out.is_empty() && !items.is_empty() {
                return Response::empty(204);
            }
            json_response(200, &Value::Array(out))
        }
        _ => {
            let e = RpcError::new(codes::PARSE_ERROR, "Top-level object parse error");
            json_response(e.http_status(), &reply(Err(e), None, Version::Legacy))
        }
    }
}

/// One request object: legacy failures are HTTP errors too, 2.0 failures answer 200.
async fn single(ctx: &methods::Ctx, v: &Value) -> Response {
    let call = match parse_call(v) {
        Ok(c) => c,
        // Core answers a malformed request object with its HTTP status in both versions.
        Err((e, p)) => return json_response(e.http_status(), &reply(Err(e), p.id, p.version)),
    };
    let r = methods::dispatch(ctx, &call.method, &call.params).await;
    if call.is_notification() {
        return Response::empty(204);
    }
    let status = match (&r, call.version) {
        (Err(e), Version::Legacy) => e.http_status(),
        _ => 200,
    };
    json_response(status, &reply(r, call.id, call.version))
}
