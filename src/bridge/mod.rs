//! The tokio IO bridge: owns every socket. It accepts inbound connections, dials outbound ones, runs
//! one reader task and one writer task per connection, reports [`NetEvent`]s to the world through a
//! bounded flume channel, and carries out the world's IO commands ([`BridgeCarrier`]). It makes no decisions: which
//! peer to close, pause or dial is the systems' call.
//!
//! Connection ids come from one counter here, for inbound and outbound alike, and are never reused.
//! A connection ends once: by the world's `Close` (no event back: the world already knows) or on its
//! own (peer closed, IO error, refused header, failed dial), reported exactly once.

mod conn;

pub use conn::INBOUND_RECV_POOL_BYTES;
use conn::{ConnCtl, ConnTasks, Start};
use oni_systems::components::{ConnId, Direction};
use oni_systems::resources::{DisconnectReason, IoCarrier, NetEvent};
use oni_systems::wire::Network;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// Default bound of events in flight from the IO tasks to the world. Bounded so a flood of frames
/// waits in the sockets' kernel buffers (TCP backpressure) rather than in our memory while the world
/// catches up.
pub const EVENT_CHANNEL_CAP: usize = 1024;

/// What the bridge needs to know about the node.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// Frames must open with this network's magic.
    pub network: Network,
    /// How long an outbound dial may take before it counts as failed.
    pub connect_timeout_ms: u64,
    /// Inbound sockets open at most (accepted, not yet closed): more are closed at accept.
    pub max_inbound_sockets: usize,
    /// Frame bytes inbound connections together hold beyond their own shares
    /// ([`INBOUND_RECV_POOL_BYTES`] by default).
    pub inbound_recv_pool_bytes: usize,
    /// Answer BIP324 v2 on inbound connections (v1 peers are still detected and served).
    pub v2: bool,
    /// Idle seconds before the kernel probes a silent connection (SO_KEEPALIVE); 0 leaves it off.
    pub keepalive_idle_s: u64,
}

/// Socket options every P2P connection gets, dialed or accepted: TCP_NODELAY (small frames such as
/// ping, inv and headers go out at once instead of waiting for Nagle's delayed ACK, as Core sets
/// it) and, when `keepalive_idle_s` > 0, SO_KEEPALIVE probing after that much silence, so a peer
/// whose host vanished is noticed by the kernel even when we have nothing to send it.
pub fn tune_socket(stream: &TcpStream, keepalive_idle_s: u64) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    if keepalive_idle_s == 0 {
        return sock.set_keepalive(false);
    }
    let idle = Duration::from_secs(keepalive_idle_s);
    sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle))
}

/// Inbound sockets the bridge keeps open beyond the world's inbound slots: newcomers the world
/// has yet to admit, evict for, or refuse.
pub const INBOUND_SOCKET_HEADROOM: usize = 16;

/// The bridge: a handle any thread can use to carry out IO commands.
pub struct Bridge {
    inner: Arc<Inner>,
}

/// State shared by the bridge handle and its tasks.
struct Inner {
    config: BridgeConfig,
    runtime: Handle,
    events: flume::Sender<NetEvent>,
    conns: Mutex<HashMap<ConnId, Arc<ConnCtl>>>,
    next_conn: AtomicU64,
    /// Inbound sockets open now.
    inbound_open: AtomicUsize,
    /// Frame bytes inbound connections hold beyond their own shares.
    inbound_pool: Arc<conn::RecvPool>,
    /// Flipped once at shutdown: the accept loop and every dial stop.
    stopping: watch::Sender<bool>,
}

/// How a connection ended, for the one event reported about it.
enum Ending {
    /// The world asked (Close) or the node is stopping: report nothing.
    Quiet,
    /// The reader already reported `BadHeader`: nothing more to say.
    AlreadyReported,
    /// The socket ended on its own, or the dial failed.
    Closed {
        /// True when the dial itself failed.
        connect_failed: bool,
    },
}

impl Bridge {
    /// A bridge spawning its tasks on `runtime` and reporting into `events`.
    pub fn new(config: BridgeConfig, runtime: Handle, events: flume::Sender<NetEvent>) -> Bridge {
        let (stopping, _) = watch::channel(false);
        let inner = Inner {
            inbound_pool: Arc::new(conn::RecvPool::new(config.inbound_recv_pool_bytes)),
            config,
            runtime,
            events,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            inbound_open: AtomicUsize::new(0),
            stopping,
        };
        Bridge { inner: Arc::new(inner) }
    }

    /// Bytes the inbound peers hold from their shared pool now, and the most they ever held.
    pub fn inbound_pool_bytes(&self) -> (usize, usize) {
        (self.inner.inbound_pool.used(), self.inner.inbound_pool.peak())
    }

    /// Starts accepting on an already-bound listener (bound by the caller, so a port in use is an
    /// error at start, not a log line later).
    pub fn listen(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        self.inner.runtime.spawn(async move { inner.accept_loop(listener).await });
    }

    /// The carrier for one tick's commands. Never blocks: events that must reach the world before
    /// any task's (`Dialing`) are pushed to `immediate` for the caller to put in the inbox.
    pub fn carrier<'a>(&'a self, immediate: &'a mut Vec<NetEvent>) -> BridgeCarrier<'a> {
        BridgeCarrier { bridge: self, immediate }
    }

    /// Dials `addr` (with BIP324 v2 first when `v2`); returns the new connection's id. `Dialing`
    /// goes to `immediate` so the world sees it before the dial's outcome.
    pub fn dial(&self, addr: SocketAddr, direction: Direction, v2: bool, immediate: &mut Vec<NetEvent>) -> ConnId {
        let conn = self.inner.alloc();
        let (ctl, tasks) = ConnCtl::new(None);
        self.inner.lock().insert(conn, ctl.clone());
        immediate.push(NetEvent::Dialing { conn, addr, direction });
        let inner = self.inner.clone();
        let start = if v2 { Start::Initiator } else { Start::V1 };
        self.inner.runtime.spawn(async move { inner.dial(conn, addr, direction, ctl, tasks, start).await });
        conn
    }

    /// Stops accepting and dialing and closes every socket without writing anything more.
    pub fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        let conns: Vec<ConnId> = self.inner.lock().keys().copied().collect();
        for conn in conns {
            self.inner.end(conn, Ending::Quiet);
        }
    }
}

/// The bridge carrying out the world's commands: each one reaches the connection's tasks through
/// its control block; a command for a connection already gone is dropped.
pub struct BridgeCarrier<'a> {
    bridge: &'a Bridge,
    immediate: &'a mut Vec<NetEvent>,
}

impl BridgeCarrier<'_> {
    fn ctl(&self, conn: ConnId) -> Option<Arc<ConnCtl>> {
        self.bridge.inner.get(conn)
    }
}

impl IoCarrier for BridgeCarrier<'_> {
    fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if let Some(ctl) = self.ctl(conn) {
            ctl.send(bytes);
        }
    }

    fn close(&mut self, conn: ConnId, reason: DisconnectReason) {
        tracing::debug!(peer = conn.0, reason = reason.label(), "closing socket");
        self.bridge.inner.end(conn, Ending::Quiet);
    }

    fn set_paused(&mut self, conn: ConnId, paused: bool) {
        if let Some(ctl) = self.ctl(conn) {
            ctl.set_paused(paused);
        }
    }

    fn consumed(&mut self, conn: ConnId, bytes: usize) {
        if let Some(ctl) = self.ctl(conn) {
            ctl.consumed(bytes);
        }
    }

    fn recv_limit(&mut self, conn: ConnId, bytes: usize) {
        if let Some(ctl) = self.ctl(conn) {
            ctl.set_recv_limit(bytes);
        }
    }

    fn connect(&mut self, addr: SocketAddr, direction: Direction, v2: bool) {
        self.bridge.dial(addr, direction, v2, self.immediate);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Arc<ConnCtl>>> {
        // A panic while holding this lock leaves the map itself consistent (single inserts/removes).
        self.conns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, conn: ConnId) -> Option<Arc<ConnCtl>> {
        self.lock().get(&conn).cloned()
    }

    fn alloc(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Ends `conn` once: signals its tasks to stop (dropping the socket) and reports per `ending`.
    fn end(&self, conn: ConnId, ending: Ending) {
        let Some(ctl) = self.lock().remove(&conn) else { return };
        ctl.close();
        if ctl.inbound {
            self.inbound_open.fetch_sub(1, Ordering::AcqRel);
        }
        if let Ending::Closed { connect_failed } = ending {
            // From a task or the world thread: never block the world thread on its own channel.
            if self.events.try_send(NetEvent::Closed { conn, connect_failed }).is_err() {
                let events = self.events.clone();
                self.runtime.spawn(async move {
                    let _ = events.send_async(NetEvent::Closed { conn, connect_failed }).await;
                });
            }
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut stopping = self.stopping.subscribe();
        loop {
            let accepted = tokio::select! {
                _ = stopping.wait_for(|s| *s) => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, addr)) => {
                    if self.inbound_open.load(Ordering::Acquire) >= self.config.max_inbound_sockets {
                        drop(stream);
                        let _ = self.events.send_async(NetEvent::Refused { addr }).await;
                        continue;
                    }
                    self.inbound_open.fetch_add(1, Ordering::AcqRel);
                    let conn = self.alloc();
                    let (ctl, tasks) = ConnCtl::new(Some(self.inbound_pool.clone()));
                    self.lock().insert(conn, ctl.clone());
                    tracing::debug!(peer = conn.0, %addr, "accepted");
                    let start = if self.config.v2 { Start::Responder } else { Start::V1 };
                    self.clone().run(conn, addr, stream, Direction::Inbound, ctl, tasks, start).await;
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn dial(
        self: Arc<Self>,
        conn: ConnId,
        addr: SocketAddr,
        direction: Direction,
        ctl: Arc<ConnCtl>,
        tasks: ConnTasks,
        start: Start,
    ) {
        let timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let mut closed = ctl.closed();
        let mut stopping = self.stopping.subscribe();
        let result = tokio::select! {
            _ = closed.wait_for(|c| *c) => return,
            _ = stopping.wait_for(|s| *s) => return,
            r = tokio::time::timeout(timeout, TcpStream::connect(addr)) => r,
        };
        match result {
            Ok(Ok(stream)) => self.run(conn, addr, stream, direction, ctl, tasks, start).await,
            Ok(Err(e)) => {
                tracing::debug!(peer = conn.0, %addr, error = %e, "dial failed");
                self.end(conn, Ending::Closed { connect_failed: true });
            }
            Err(_) => {
                tracing::debug!(peer = conn.0, %addr, timeout_ms = self.config.connect_timeout_ms, "dial timed out");
                self.end(conn, Ending::Closed { connect_failed: true });
            }
        }
    }

    /// Reports the connection and starts its reader and writer.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        self: Arc<Self>,
        conn: ConnId,
        addr: SocketAddr,
        stream: TcpStream,
        direction: Direction,
        ctl: Arc<ConnCtl>,
        tasks: ConnTasks,
        start: Start,
    ) {
        if let Err(e) = tune_socket(&stream, self.config.keepalive_idle_s) {
            tracing::debug!(peer = conn.0, %addr, error = %e, "socket options not set");
        }
        let local = stream.local_addr().ok();
        if self.events.send_async(NetEvent::Connected { conn, addr, local, direction }).await.is_err() {
            self.end(conn, Ending::Quiet);
            return;
        }
        let span = tracing::info_span!("peer", id = conn.0, %addr, direction = direction.label());
        conn::spawn(self, conn, stream, ctl, tasks, span, start);
    }
}

#[cfg(test)]
mod tests {
    use super::tune_socket;
    use std::time::Duration;

    /// A connected pair of real sockets on loopback: (dialed, accepted).
    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (dialed.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn p2p_sockets_get_nodelay_and_the_keepalive_idle_time_or_no_keepalive() {
        let (dialed, accepted) = pair().await;
        assert!(!dialed.nodelay().unwrap(), "the OS default is Nagle on");
        for s in [&dialed, &accepted] {
            tune_socket(s, 90).unwrap();
            assert!(s.nodelay().unwrap());
            let sock = socket2::SockRef::from(s);
            assert!(sock.keepalive().unwrap());
            assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(90));
        }
        tune_socket(&dialed, 0).unwrap();
        assert!(dialed.nodelay().unwrap());
        assert!(!socket2::SockRef::from(&dialed).keepalive().unwrap(), "0 turns keepalive off");
    }
}
