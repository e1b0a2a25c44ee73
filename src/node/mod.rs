//! A running node: the world on its own thread, the tokio bridge on a runtime, and a handle other
//! threads (tests, the CLI, RPC) use to dial, query the world and stop it.
//!
//! Start-up does everything that can fail for operator reasons (datadir, listening port) before any
//! thread starts, and returns a typed [`StartError`] so the CLI can print it and exit cleanly.

mod chain_io;
pub mod faults;
pub mod mempool_file;
pub mod persist;
pub mod progress;
pub mod seeds;
pub mod submit;
mod world_loop;

use crate::bridge::{Bridge, BridgeConfig, EVENT_CHANNEL_CAP, INBOUND_SOCKET_HEADROOM};
use crate::store::{Store, StoreError};
use bevy_ecs::world::World;
use oni_systems::components::{ConnId, Direction};
use oni_systems::resources::{Config, PeerPolicy};
use oni_systems::wire::Network;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use world_loop::{Control, WorldLoop};

/// Everything a node is started with. Fields are public so tests and the CLI build it directly.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Network, protocol identity and limits, handed to the world as is.
    pub config: Config,
    /// Where to accept peers; `None` accepts none (`--nolisten`).
    pub listen: Option<SocketAddr>,
    /// Where the node keeps its files; created at start. `None` keeps nothing on disk (tests).
    pub datadir: Option<PathBuf>,
    /// Peers to keep connected (`--connect`, `--addnode`): dialed as manual at start, redialed
    /// after each disconnect.
    pub manual_peers: Vec<SocketAddr>,
    /// Time an outbound dial may take (`--timeout`, Core's -timeout).
    pub connect_timeout_ms: u64,
    /// Idle seconds before TCP keepalive probes a P2P connection (`--keepalive`; 0: off).
    pub keepalive_idle_s: u64,
    /// Wait between a manual peer's disconnect and its redial.
    pub manual_redial_ms: u64,
    /// Longest time between two ticks when nothing happens (timeouts are checked on ticks).
    pub tick_interval_ms: u64,
    /// Events in flight from the IO tasks to the world; when full, readers wait (TCP backpressure).
    pub event_channel_cap: usize,
    /// Events moved into one tick at most, so one busy tick stays short.
    pub events_per_tick_max: usize,
    /// Frame bytes all inbound peers together may hold beyond their own small shares.
    pub inbound_recv_pool_bytes: usize,
    /// Peer Manager policy (outbound mix, discouragement, bans, whitelist); `manual_peers` and
    /// `manual_redial_ms` above are copied into it at start.
    pub policy: PeerPolicy,
    /// Ask DNS seeds for addresses when the address book is empty (never on regtest).
    pub dnsseed: bool,
    /// Move a damaged store aside and start with an empty one.
    pub reset_store: bool,
    /// In initial block download while the tip is older than this (Core's -maxtipage); `None`
    /// keeps the default (24 h).
    pub max_tip_age_s: Option<i64>,
    /// Overrides the network's minimum chain work (Core's -minimumchainwork): header chains
    /// below it go through PRESYNC. `None` keeps the network's.
    pub minimum_chain_work: Option<bitcoin::pow::Work>,
    /// Seed of the world's rng; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Tokio worker threads for the IO bridge.
    pub io_threads: usize,
    /// The transaction pool's bounds (`--maxmempool`, `--minrelaytxfee`).
    pub mempool: oni_systems::mempool::pool::PoolLimits,
    /// Standardness settings (`--minrelaytxfee`).
    pub tx_policy: oni_systems::mempool::policy::PolicyConfig,
}

impl NodeConfig {
    /// Defaults for `network`: listen on all interfaces at the network's port, no datadir.
    pub fn new(network: Network) -> NodeConfig {
        NodeConfig {
            config: Config::new(network),
            listen: Some(SocketAddr::from(([0, 0, 0, 0], network.default_port()))),
            datadir: None,
            manual_peers: Vec::new(),
            connect_timeout_ms: 5_000,
            keepalive_idle_s: 600,
            manual_redial_ms: 10_000,
            tick_interval_ms: 100,
            event_channel_cap: EVENT_CHANNEL_CAP,
            inbound_recv_pool_bytes: crate::bridge::INBOUND_RECV_POOL_BYTES,
            events_per_tick_max: 4096,
            policy: PeerPolicy::default(),
            dnsseed: true,
            reset_store: false,
            max_tip_age_s: None,
            minimum_chain_work: None,
            seed: None,
            io_threads: 2,
            mempool: Default::default(),
            tx_policy: Default::default(),
        }
    }
}

/// Why a node could not start; each names what the operator must fix.
#[derive(Debug)]
pub enum StartError {
    /// The datadir cannot be created or written.
    Datadir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The listening address cannot be bound (in use, not ours, no permission).
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The IO runtime or the world thread could not start.
    Runtime(std::io::Error),
    /// The store in the datadir cannot be used.
    Store(StoreError),
    /// The block validator (Core's engine) could not start.
    Validator(crate::validation::ValidatorError),
    /// The coin store in the datadir cannot be used.
    Coins(crate::coins::CoinsError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Datadir { path, source } => {
                write!(f, "cannot use datadir {}: {source}", path.display())
            }
            StartError::Listen { addr, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
                write!(f, "cannot listen on {addr}: address already in use (is another node running?)")
            }
            StartError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Runtime(e) => write!(f, "cannot start the IO runtime: {e}"),
            StartError::Store(e) => write!(f, "{e}"),
            StartError::Validator(e) => write!(f, "cannot start block validation: {e}"),
            StartError::Coins(e) => write!(f, "cannot open the coin store: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The node is no longer running (shut down, or its world thread ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeGone;

impl std::fmt::Display for NodeGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the node is not running")
    }
}

impl std::error::Error for NodeGone {}

/// Starts nodes.
pub struct Node;

impl Node {
    /// Prepares the datadir, binds the listener, then starts the IO runtime and the world thread.
    pub fn start(cfg: NodeConfig) -> Result<NodeHandle, StartError> {
        if let Some(dir) = &cfg.datadir {
            prepare_datadir(dir).map_err(|source| StartError::Datadir { path: dir.clone(), source })?;
        }
        let store = match &cfg.datadir {
            Some(dir) => Some(open_store(&dir.join("store"), cfg.reset_store)?),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.io_threads.max(1))
            .thread_name("oni-io")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        // Bound with std (no block_on), so a node can start from inside another runtime (async tests,
        // an RPC server's handler), then handed to this node's runtime.
        let listener = match cfg.listen {
            Some(addr) => {
                let bind = || {
                    let l = std::net::TcpListener::bind(addr)?;
                    l.set_nonblocking(true)?;
                    let _in_runtime = runtime.enter();
                    tokio::net::TcpListener::from_std(l)
                };
                Some(bind().map_err(|source| StartError::Listen { addr, source })?)
            }
            None => None,
        };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let (events_tx, events_rx) = flume::bounded(cfg.event_channel_cap.max(1));
        let bridge_cfg = BridgeConfig {
            network: cfg.config.network,
            connect_timeout_ms: cfg.connect_timeout_ms,
            max_inbound_sockets: cfg.config.limits.max_inbound + INBOUND_SOCKET_HEADROOM,
            inbound_recv_pool_bytes: cfg.inbound_recv_pool_bytes,
            v2: cfg.config.v2(),
            keepalive_idle_s: cfg.keepalive_idle_s,
        };
        let bridge = Bridge::new(bridge_cfg, runtime.handle().clone(), events_tx);
        if let Some(listener) = listener {
            bridge.listen(listener);
        }
        match local_addr {
            Some(addr) => tracing::info!(network = cfg.config.network.name(), "listening on {addr}"),
            None => tracing::info!(network = cfg.config.network.name(), "not listening (--nolisten)"),
        }
        let (control_tx, control_rx) = flume::unbounded();
        let io = runtime.handle().clone();
        // Disconnects (its sender is dropped) once the node has fully stopped.
        let (stopped_tx, stopped_rx) = flume::bounded::<()>(0);
        let world_loop = WorldLoop::new(&cfg, bridge, events_rx, control_rx, store)?;
        let seeds_wanted = world_loop.wants_seeds(&cfg);
        let thread = std::thread::Builder::new()
            .name("oni-world".into())
            .spawn(move || {
                world_loop.run();
                // Sockets are closed by now; give tasks a moment to drop them, never hang.
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
                drop(stopped_tx);
            })
            .map_err(StartError::Runtime)?;
        let handle = NodeHandle {
            control: control_tx,
            local_addr,
            io,
            stopped: stopped_rx,
            thread: Arc::new(Mutex::new(Some(thread))),
        };
        if seeds_wanted {
            seeds::query_dns_seeds(&handle, cfg.config.network);
        }
        Ok(handle)
    }
}

/// Opens the store, or with `reset` moves a damaged one aside first.
fn open_store(dir: &std::path::Path, reset: bool) -> Result<Store, StartError> {
    match Store::open(dir) {
        Ok(s) => Ok(s),
        Err(StoreError::Corrupt { .. }) if reset => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let aside = Store::reset(dir, now).map_err(StartError::Store)?;
            if let Some(a) = aside {
                tracing::warn!(kept = %a.display(), "damaged store moved aside; starting with an empty one");
            }
            Store::open(dir).map_err(StartError::Store)
        }
        Err(e) => Err(StartError::Store(e)),
    }
}

/// Creates the datadir and proves it writable, so a read-only disk fails at start, not mid-run.
fn prepare_datadir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".oni-write-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// A running node. Cheap to clone; the node stops at [`NodeHandle::shutdown`] or when every
/// handle is dropped.
#[derive(Clone)]
pub struct NodeHandle {
    control: flume::Sender<Control>,
    local_addr: Option<SocketAddr>,
    io: tokio::runtime::Handle,
    stopped: flume::Receiver<()>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl NodeHandle {
    /// The address the node accepts peers on (the real port when started on port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The IO runtime, for servers that belong to the node (RPC): they stop with it.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.io
    }

    /// Dials `addr` as `direction`; returns the connection's id once the dial has started. Blocks:
    /// not for use inside [`NodeHandle::with_world`] closures (push `IoCommand::Connect` there).
    pub fn connect(&self, addr: SocketAddr, direction: Direction) -> Result<ConnId, NodeGone> {
        let (tx, rx) = flume::bounded(1);
        self.control.send(Control::Connect { addr, direction, reply: tx }).map_err(|_| NodeGone)?;
        rx.recv().map_err(|_| NodeGone)
    }

    /// Runs `f` on the world thread between two ticks and returns its result. The world is the
    /// node's only state, so this is how tests, RPC and dumps read it (or change it: IO commands
    /// pushed to the `Outbox` are carried out after the next tick). Blocks until `f` has run, so `f`
    /// must not call back into the handle.
    pub fn with_world<R, F>(&self, f: F) -> Result<R, NodeGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut World) -> R + Send + 'static,
    {
        self.call(f)?.recv().map_err(|_| NodeGone)
    }

    /// [`NodeHandle::with_world`] for async callers (RPC handlers): awaits instead of blocking.
    pub async fn with_world_async<R, F>(&self, f: F) -> Result<R, NodeGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut World) -> R + Send + 'static,
    {
        self.call(f)?.recv_async().await.map_err(|_| NodeGone)
    }

    fn call<R, F>(&self, f: F) -> Result<flume::Receiver<R>, NodeGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut World) -> R + Send + 'static,
    {
        let (tx, rx) = flume::bounded(1);
        let job: world_loop::Job = Box::new(move |world: &mut World| {
            let _ = tx.send(f(world));
        });
        self.control.send(Control::Call(job)).map_err(|_| NodeGone)?;
        Ok(rx)
    }

    /// Whether the world thread is still running.
    pub fn is_running(&self) -> bool {
        !self.stopped.is_disconnected()
    }

    /// Stops the node: no more accepts or dials, every socket closed without writing anything more,
    /// the world thread and runtime ended. Waits for that, except when called on the world thread.
    pub fn shutdown(&self) {
        let _ = self.control.send(Control::Shutdown);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }

    /// Blocks until the node stops (shut down by another handle, or its world thread ended).
    pub fn wait(&self) {
        let _ = self.stopped.recv();
    }

    /// [`NodeHandle::wait`] for async callers.
    pub async fn stopped(&self) {
        let _ = self.stopped.recv_async().await;
    }
}
