//! One connection's IO: a reader task that frames the stream and a writer task that writes what the
//! world hands it. On v1 the reader checks each 24-byte header before the payload buffer exists,
//! refusing a wrong magic from the first four bytes, and honours pause/resume between frames. On
//! BIP324 v2 the reader drives the session ([`V2Session`]): it detects a v1 peer on the first 16
//! bytes (inbound), runs the handshake, makes room for each packet from its decrypted length
//! before reading it, and hands the writer the bytes the handshake owes and then the sending
//! cipher, with which the writer seals each frame the world queues.

use super::{Ending, Inner};
use oni_systems::components::ConnId;
use oni_systems::components::Transport;
use oni_systems::resources::NetEvent;
use oni_systems::wire::v2::transport::{seal_frame, Step, V2Error, V2Session};
use oni_systems::wire::v2::{KeyExchange, SendCipher};
use oni_systems::wire::{skips_payload, FrameHeader, HeaderError, Network, RawFrame, HEADER_LEN};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

/// Read buffer per connection: fewer syscalls for small frames, bounded memory per socket.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Write buffer per connection: small frames queued in one tick go out in one syscall.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Frame bytes a connection's reader may hold before the world has taken them, until the peer's
/// handshake is done (then the world raises it to the peer's receive limit): a handshake needs a
/// few hundred bytes, so a socket not yet admitted or handshaken never makes us hold a 4 MB frame.
pub const PRE_HANDSHAKE_RECV_BYTES: usize = 256 * 1024;

/// Frame bytes all inbound connections together may hold beyond each one's own share
/// ([`INBOUND_RECV_OWN_BYTES`]). Each peer may still hold up to its receive limit (5 MB), but 114
/// inbound peers at 5 MB would be 570 MB: together they get this much, a frame taking its part
/// before its payload is read (so a reserved frame always completes and the pool never
/// deadlocks). Outbound peers — chosen by us, our block sources — never draw on it.
pub const INBOUND_RECV_POOL_BYTES: usize = 160 << 20;

/// Frame bytes an inbound connection holds without the shared pool: pings, invs and most
/// transactions never wait for it, whoever holds the pool.
pub const INBOUND_RECV_OWN_BYTES: usize = 64 * 1024;

/// The inbound connections' shared allowance of held frame bytes.
pub(super) struct RecvPool {
    used: AtomicUsize,
    peak: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl RecvPool {
    /// A pool of `limit` bytes.
    pub(super) fn new(limit: usize) -> RecvPool {
        RecvPool { used: AtomicUsize::new(0), peak: AtomicUsize::new(0), limit, freed: Notify::new() }
    }

    fn try_take(&self, bytes: usize) -> bool {
        match self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| (u + bytes <= self.limit).then_some(u + bytes))
        {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::AcqRel);
                true
            }
            Err(_) => false,
        }
    }

    fn give(&self, bytes: usize) {
        if bytes > 0 {
            let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(bytes)));
            self.freed.notify_waiters();
        }
    }

    /// Bytes taken now.
    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most bytes ever taken at once.
    pub(super) fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }
}

/// What part of `held` bytes an inbound connection draws from the pool.
fn pooled(held: usize) -> usize {
    held.saturating_sub(INBOUND_RECV_OWN_BYTES)
}

/// How many frame bytes the reader has handed to the world that the world has not taken out of the
/// peer's receive buffer yet, and how many it may. The reader waits for credit after a frame's
/// header and before its payload, so the payload stays in the kernel's socket buffer (TCP
/// backpressure) and this connection never holds more than its limit, whatever the world's pace.
/// An inbound connection's bytes beyond its own share also come from the shared [`RecvPool`].
pub(super) struct Credit {
    /// Bytes held and the limit, changed together with the pool's share.
    state: std::sync::Mutex<(usize, usize)>,
    freed: Notify,
    pool: Option<Arc<RecvPool>>,
}

impl Credit {
    #[cfg(test)]
    fn new(limit: usize) -> Credit {
        Credit::with_pool(limit, None)
    }

    fn with_pool(limit: usize, pool: Option<Arc<RecvPool>>) -> Credit {
        Credit { state: std::sync::Mutex::new((0, limit)), freed: Notify::new(), pool }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, usize)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `len` if the connection's limit (and the pool, for its part) allow it now.
    fn try_reserve(&self, len: usize) -> bool {
        let mut state = self.lock();
        let (held, limit) = *state;
        if !(held + len <= limit || (held == 0 && limit > PRE_HANDSHAKE_RECV_BYTES)) {
            return false;
        }
        if let Some(pool) = &self.pool {
            if !pool.try_take(pooled(held + len) - pooled(held)) {
                return false;
            }
        }
        state.0 = held + len;
        true
    }

    /// Waits until a frame of `len` bytes fits, then counts it. A frame larger than the whole limit
    /// passes alone once nothing is outstanding, but only after the handshake raised the limit.
    async fn reserve(&self, len: usize) {
        loop {
            let freed = self.freed.notified();
            let pool_freed = self.pool.as_ref().map(|p| p.freed.notified());
            if self.try_reserve(len) {
                return;
            }
            match pool_freed {
                Some(pool_freed) => {
                    tokio::select! {
                        _ = freed => {}
                        _ = pool_freed => {}
                    }
                }
                None => freed.await,
            }
        }
    }

    /// The world took `bytes`.
    fn release(&self, bytes: usize) {
        {
            let mut state = self.lock();
            let held = state.0;
            state.0 = held.saturating_sub(bytes);
            if let Some(pool) = &self.pool {
                pool.give(pooled(held) - pooled(state.0));
            }
        }
        self.freed.notify_one();
    }

    /// The world set the limit (the peer finished its handshake).
    fn set_limit(&self, bytes: usize) {
        self.lock().1 = bytes;
        self.freed.notify_one();
    }

    /// Frame bytes held now.
    #[cfg(test)]
    fn outstanding(&self) -> usize {
        self.lock().0
    }
}

impl Drop for Credit {
    /// A closed connection's frames no longer count against the pool.
    fn drop(&mut self) {
        let held = self.lock().0;
        if let Some(pool) = &self.pool {
            pool.give(pooled(held));
        }
    }
}

/// The controls the world-facing side keeps for one connection.
pub(super) struct ConnCtl {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    paused: watch::Sender<bool>,
    closed: watch::Sender<bool>,
    pub(super) credit: Arc<Credit>,
    /// Accepted (counted against the bridge's inbound socket cap) rather than dialed.
    pub(super) inbound: bool,
}

/// The ends the IO tasks take once the socket exists.
pub(super) struct ConnTasks {
    writer: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl ConnCtl {
    /// Controls and task ends for a new connection. The writer channel is unbounded in frames
    /// because the world bounds it in bytes (its writer window, credited by `Written`).
    /// Inbound connections draw on `pool` beyond their own share.
    pub(super) fn new(pool: Option<Arc<RecvPool>>) -> (Arc<ConnCtl>, ConnTasks) {
        let inbound = pool.is_some();
        let (writer, writer_rx) = mpsc::unbounded_channel();
        let (paused, _) = watch::channel(false);
        let (closed, _) = watch::channel(false);
        let credit = Arc::new(Credit::with_pool(PRE_HANDSHAKE_RECV_BYTES, pool));
        (Arc::new(ConnCtl { writer, paused, closed, credit, inbound }), ConnTasks { writer: writer_rx })
    }

    /// The world took `bytes` of this peer's frames.
    pub(super) fn consumed(&self, bytes: usize) {
        self.credit.release(bytes);
    }

    /// The world set this peer's receive limit.
    pub(super) fn set_recv_limit(&self, bytes: usize) {
        self.credit.set_limit(bytes);
    }

    /// Queues a frame for the writer (dropped if the writer is gone: the connection is ending).
    pub(super) fn send(&self, frame: Vec<u8>) {
        let _ = self.writer.send(frame);
    }

    /// Pauses or resumes the reader between frames.
    pub(super) fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Tells both tasks (and a dial in progress) to stop; the socket closes when both have.
    pub(super) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A receiver that turns true at close.
    pub(super) fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// Why the reader stopped on its own.
enum ReadEnd {
    /// EOF or an IO error.
    Closed,
    /// A header we refuse; nothing after it is framed.
    BadHeader(HeaderError),
    /// The v2 session failed.
    V2(V2Error),
    /// We dialed v2 and the peer hung up before sending a byte: it likely speaks only v1.
    V2Refused,
    /// The world is gone.
    WorldGone,
}

/// How a connection's bytes are framed from its first byte.
pub(super) enum Start {
    /// Plain v1 (v2 off, or the v1 retry of a refused v2 dial).
    V1,
    /// We dialed with v2: our key and garbage go out first.
    Initiator,
    /// We were dialed and speak v2: v1 or v2, as the peer's first 16 bytes say.
    Responder,
}

/// What the reader tells the writer as a v2 handshake goes (v1 needs no word).
enum Setup {
    /// Write these bytes now (the responder's key and garbage).
    Raw(Vec<u8>),
    /// Write these bytes (terminator and version packet), then seal every frame with the cipher.
    Sealed(Vec<u8>, Box<SendCipher>),
    /// The peer is v1: frames go out as they are.
    Plain,
}

/// A fresh v2 session whose key and garbage come from 32 bytes of the OS's randomness; the bytes
/// to send at once for an initiator. A responder makes its key only once the peer turns out not
/// to be v1, so accepting a connection costs no elliptic-curve work.
fn new_session(network: Network, initiating: bool) -> (V2Session, Vec<u8>) {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        // Only on a broken system: keys must still differ per connection.
        tracing::error!("no OS randomness for a BIP324 key; using a per-process fallback");
        seed = fallback_seed();
    }
    if initiating {
        let (kex, garbage) = KeyExchange::from_seed(seed);
        V2Session::initiator(network, kex, garbage)
    } else {
        (V2Session::responder_from_seed(network, seed), Vec::new())
    }
}

/// A seed from std's per-process random hash keys and a counter, for when the OS gives none.
fn fallback_seed() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(COUNTER.fetch_add(1, Ordering::Relaxed) ^ i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

/// Starts the reader and writer of an established connection, both inside the peer's span (peer
/// id, address, direction), so every IO log line names its peer.
pub(super) fn spawn(
    inner: Arc<Inner>,
    conn: ConnId,
    stream: TcpStream,
    ctl: Arc<ConnCtl>,
    tasks: ConnTasks,
    span: tracing::Span,
    start: Start,
) {
    use tracing::Instrument;
    let (rd, wr) = stream.into_split();
    let runtime = inner.runtime.clone();
    let network = inner.config.network;
    let (session, first) = match start {
        Start::V1 => (None, Vec::new()),
        Start::Initiator => {
            let (s, first) = new_session(network, true);
            (Some(s), first)
        }
        Start::Responder => (Some(new_session(network, false).0), Vec::new()),
    };
    let (setup_tx, setup_rx) = mpsc::unbounded_channel();
    let plain = session.is_none();
    let reading =
        reader(inner.clone(), conn, rd, ctl.paused.subscribe(), ctl.closed(), ctl.credit.clone(), session, setup_tx);
    runtime.spawn(reading.instrument(span.clone()));
    let writing = writer(inner, conn, wr, tasks.writer, ctl.closed(), (!plain).then_some((first, setup_rx)));
    runtime.spawn(writing.instrument(span));
}

#[allow(clippy::too_many_arguments)]
async fn reader<R: AsyncRead + Unpin>(
    inner: Arc<Inner>,
    conn: ConnId,
    rd: R,
    paused: watch::Receiver<bool>,
    mut closed: watch::Receiver<bool>,
    credit: Arc<Credit>,
    session: Option<V2Session>,
    setup: mpsc::UnboundedSender<Setup>,
) {
    let mut rd = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
    let end = tokio::select! {
        _ = closed.wait_for(|c| *c) => return,
        end = async {
            match session {
                None => {
                    if inner.events.send_async(NetEvent::Transport { conn, transport: Transport::V1 }).await.is_err() {
                        return ReadEnd::WorldGone;
                    }
                    read_frames(&inner, conn, &mut rd, paused, &credit).await
                }
                Some(session) => read_v2(&inner, conn, &mut rd, paused, &credit, session, &setup).await,
            }
        } => end,
    };
    match end {
        ReadEnd::Closed => inner.end(conn, Ending::Closed { connect_failed: false }),
        ReadEnd::BadHeader(error) => {
            // Close first (a v2 dialer retries v1 only if we close quickly), then tell the world why.
            inner.end(conn, Ending::AlreadyReported);
            tracing::debug!(peer = conn.0, error = error.label(), "header refused");
            let _ = inner.events.send_async(NetEvent::BadHeader { conn, error }).await;
        }
        ReadEnd::V2(error) => {
            inner.end(conn, Ending::AlreadyReported);
            tracing::debug!(peer = conn.0, error = error.label(), "v2 transport failed");
            let event = match error.as_header_error() {
                Some(error) => NetEvent::BadHeader { conn, error },
                None => NetEvent::TransportFailed { conn, error },
            };
            let _ = inner.events.send_async(event).await;
        }
        ReadEnd::V2Refused => {
            inner.end(conn, Ending::AlreadyReported);
            tracing::debug!(peer = conn.0, "v2 dial closed before a byte came back: the world may retry v1");
            let _ = inner.events.send_async(NetEvent::V2Refused { conn }).await;
        }
        ReadEnd::WorldGone => inner.end(conn, Ending::Quiet),
    }
}

/// Runs a v2 session: handshake, then packets as frames, or v1 frames if a responder's peer
/// turns out to speak v1.
async fn read_v2<R: AsyncBufRead + AsyncRead + Unpin>(
    inner: &Inner,
    conn: ConnId,
    rd: &mut R,
    mut paused: watch::Receiver<bool>,
    credit: &Credit,
    mut session: V2Session,
    setup: &mpsc::UnboundedSender<Setup>,
) -> ReadEnd {
    let initiating = session.is_initiator();
    // Frame bytes counted for the packet being read (from its length until it is handed over).
    let mut reserved = 0usize;
    loop {
        if reserved == 0 && paused.wait_for(|p| !*p).await.is_err() {
            return ReadEnd::WorldGone;
        }
        let buf = match rd.fill_buf().await {
            Ok(buf) if !buf.is_empty() => buf,
            _ if initiating && !session.received_any() => return ReadEnd::V2Refused,
            _ => return ReadEnd::Closed,
        };
        let (used, step) = match session.push(buf) {
            Ok(r) => r,
            Err(e) => return ReadEnd::V2(e),
        };
        rd.consume(used);
        let event = match step {
            Step::More => continue,
            Step::V1(prefix) => {
                let _ = setup.send(Setup::Plain);
                if inner.events.send_async(NetEvent::Transport { conn, transport: Transport::V1 }).await.is_err() {
                    return ReadEnd::WorldGone;
                }
                let mut v1 = (&prefix[..]).chain(rd);
                return read_frames(inner, conn, &mut v1, paused, credit).await;
            }
            Step::Send(bytes) => {
                let _ = setup.send(Setup::Raw(bytes));
                continue;
            }
            Step::Keyed(bytes, cipher) => {
                let _ = setup.send(Setup::Sealed(bytes, Box::new(cipher)));
                continue;
            }
            Step::Packet(len) => {
                reserved = HEADER_LEN + len;
                credit.reserve(reserved).await;
                continue;
            }
            Step::Decoy(len) => {
                // Handed to the world as a frame with nothing kept: its room is given back when
                // the world's decode budget passes it, so decoys are paced like frames.
                debug_assert_eq!(reserved, HEADER_LEN + len);
                reserved = 0;
                NetEvent::Frame { conn, frame: oni_systems::wire::v2::transport::decoy_frame(len) }
            }
            Step::Established(info) => {
                credit.release(std::mem::take(&mut reserved));
                NetEvent::Transport { conn, transport: Transport::V2 { session_id: info.session_id } }
            }
            Step::Frame(frame) => {
                // The world gives back what it holds; the rest of the room goes back now.
                credit.release(std::mem::take(&mut reserved).saturating_sub(frame.held_len()));
                NetEvent::Frame { conn, frame }
            }
        };
        if inner.events.send_async(event).await.is_err() {
            return ReadEnd::WorldGone;
        }
    }
}

/// Reads frames until the stream ends or a header is refused.
async fn read_frames<R: AsyncRead + Unpin>(
    inner: &Inner,
    conn: ConnId,
    rd: &mut R,
    mut paused: watch::Receiver<bool>,
    credit: &Credit,
) -> ReadEnd {
    let network = inner.config.network;
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return ReadEnd::WorldGone;
        }
        let header = match read_header(rd, network).await {
            Ok(Ok(header)) => header,
            Ok(Err(e)) => return ReadEnd::BadHeader(e),
            Err(_) => return ReadEnd::Closed,
        };
        let frame = if skips_payload(&header) {
            // Nothing reads it: skipped as it arrives, never held, only counted by the world.
            credit.reserve(HEADER_LEN).await;
            if skip_payload(rd, header.len as usize).await.is_err() {
                return ReadEnd::Closed;
            }
            RawFrame::new(header, Vec::new())
        } else {
            credit.reserve(HEADER_LEN + header.len as usize).await;
            let Ok(payload) = read_payload(rd, header.len as usize).await else { return ReadEnd::Closed };
            RawFrame::new(header, payload)
        };
        if inner.events.send_async(NetEvent::Frame { conn, frame }).await.is_err() {
            return ReadEnd::WorldGone;
        }
    }
}

/// First allocation for a payload; the buffer then at most doubles with each chunk that arrives.
pub(crate) const PAYLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// Reads one frame: magic (checked alone), the rest of the header (checked), then exactly the
/// payload the header announced. The buffer grows with the bytes that really arrive, a chunk at a
/// time, so a header that claims 4 MB and sends nothing costs at most one chunk.
#[cfg(test)]
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    network: Network,
) -> std::io::Result<Result<RawFrame, HeaderError>> {
    let header = match read_header(rd, network).await? {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let payload = read_payload(rd, header.len as usize).await?;
    Ok(Ok(RawFrame::new(header, payload)))
}

/// Reads and checks a frame's 24-byte header (its magic first, alone).
async fn read_header<R: AsyncRead + Unpin>(
    rd: &mut R,
    network: Network,
) -> std::io::Result<Result<FrameHeader, HeaderError>> {
    let mut head = [0u8; HEADER_LEN];
    rd.read_exact(&mut head[..4]).await?;
    if head[..4] != network.magic() {
        return Ok(Err(HeaderError::BadMagic));
    }
    rd.read_exact(&mut head[4..]).await?;
    Ok(FrameHeader::parse(&head, network))
}

/// Reads and drops `len` payload bytes through a small stack buffer.
async fn skip_payload<R: AsyncRead + Unpin>(rd: &mut R, mut len: usize) -> std::io::Result<()> {
    let mut scratch = [0u8; 8 * 1024];
    while len > 0 {
        let n = len.min(scratch.len());
        rd.read_exact(&mut scratch[..n]).await?;
        len -= n;
    }
    Ok(())
}

/// Reads exactly `len` payload bytes, growing the buffer with what arrives.
async fn read_payload<R: AsyncRead + Unpin>(rd: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(len.min(PAYLOAD_CHUNK_BYTES));
    while payload.len() < len {
        let have = payload.len();
        let next = (len - have).min(PAYLOAD_CHUNK_BYTES.max(have));
        payload.resize(have + next, 0);
        rd.read_exact(&mut payload[have..]).await?;
    }
    Ok(payload)
}

/// Writes the v2 handshake as the reader reports it: the initiator's `first` bytes at once, then
/// what each [`Setup`] says. Returns the cipher to seal frames with (`None`: the peer is v1), or
/// `Err` when the connection ended first.
async fn handshake<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    first: Vec<u8>,
    setup: &mut mpsc::UnboundedReceiver<Setup>,
    closed: &mut watch::Receiver<bool>,
) -> Result<Option<Box<SendCipher>>, ()> {
    let mut pending = first;
    loop {
        if !pending.is_empty() {
            let written = tokio::select! {
                biased;
                _ = closed.wait_for(|c| *c) => return Err(()),
                r = async { wr.write_all(&pending).await?; wr.flush().await } => r,
            };
            written.map_err(|_| ())?;
        }
        let next = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => return Err(()),
            next = setup.recv() => next,
        };
        match next.ok_or(())? {
            Setup::Raw(bytes) => pending = bytes,
            Setup::Plain => return Ok(None),
            Setup::Sealed(bytes, cipher) => {
                let written = tokio::select! {
                    biased;
                    _ = closed.wait_for(|c| *c) => return Err(()),
                    r = async { wr.write_all(&bytes).await?; wr.flush().await } => r,
                };
                written.map_err(|_| ())?;
                return Ok(Some(cipher));
            }
        }
    }
}

async fn writer<W: tokio::io::AsyncWrite + Unpin>(
    inner: Arc<Inner>,
    conn: ConnId,
    wr: W,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    mut closed: watch::Receiver<bool>,
    v2: Option<(Vec<u8>, mpsc::UnboundedReceiver<Setup>)>,
) {
    // Frames queued together leave in one write; a frame larger than the buffer bypasses it.
    let mut wr = BufWriter::with_capacity(WRITE_BUFFER_BYTES, wr);
    // On v2, the world's frames wait in their channel until the handshake gives us a cipher.
    let mut cipher = match v2 {
        None => None,
        Some((first, mut setup)) => match handshake(&mut wr, first, &mut setup, &mut closed).await {
            Ok(cipher) => cipher,
            // The reader reports how the connection ended.
            Err(()) => return,
        },
    };
    let mut packet = Vec::new();
    loop {
        let frame = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => return,
            frame = frames.recv() => frame,
        };
        let Some(mut frame) = frame else { return };
        let mut bytes = 0;
        let written = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => return,
            r = async {
                loop {
                    // The world's window counts its own (v1) frame sizes, whatever goes out.
                    bytes += frame.len();
                    match cipher.as_mut() {
                        Some(cipher) => {
                            seal_frame(cipher, &frame, &mut packet);
                            wr.write_all(&packet).await?;
                            if packet.capacity() > WRITE_BUFFER_BYTES {
                                // A block's worth kept per peer would be 4 MB each, idle.
                                packet = Vec::new();
                            }
                        }
                        None => wr.write_all(&frame).await?,
                    }
                    match frames.try_recv() {
                        Ok(next) if bytes < WRITE_BUFFER_BYTES => frame = next,
                        Ok(next) => {
                            wr.flush().await?;
                            report_written(&inner, conn, std::mem::take(&mut bytes)).await;
                            frame = next;
                        }
                        Err(_) => break,
                    }
                }
                wr.flush().await
            } => r,
        };
        if let Err(e) = written {
            tracing::debug!(peer = conn.0, error = %e, "write failed");
            inner.end(conn, Ending::Closed { connect_failed: false });
            return;
        }
        report_written(&inner, conn, bytes).await;
    }
}

/// Credits the world's writer window with bytes now on the socket.
async fn report_written(inner: &Inner, conn: ConnId, bytes: usize) {
    if bytes > 0 {
        let _ = inner.events.send_async(NetEvent::Written { conn, bytes }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::wire::Message;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    #[test]
    fn reads_a_frame_exactly() {
        let mut bytes = Vec::new();
        Message::Ping(42).encode_frame(Network::Regtest, &mut bytes);
        bytes.extend_from_slice(b"next");
        let mut rd: &[u8] = &bytes;
        let frame = block_on(read_frame(&mut rd, Network::Regtest)).unwrap().unwrap();
        assert_eq!(frame.payload, 42u64.to_le_bytes());
        assert_eq!(rd, b"next", "only the frame's bytes are consumed");
    }

    #[test]
    fn wrong_magic_is_refused_from_four_bytes() {
        // Only four bytes exist: the reader must decide without waiting for the rest of a header.
        let mut rd: &[u8] = &Network::Main.magic();
        let r = block_on(read_frame(&mut rd, Network::Regtest)).unwrap();
        assert_eq!(r, Err(HeaderError::BadMagic));
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload() {
        let mut head = [0u8; HEADER_LEN];
        FrameHeader::write(Network::Regtest, oni_systems::wire::Command::Block, 4_000_001, [0; 4], &mut head);
        // No payload follows: a reader that allocated and waited for it would report EOF instead.
        let mut rd: &[u8] = &head;
        let r = block_on(read_frame(&mut rd, Network::Regtest)).unwrap();
        assert_eq!(r, Err(HeaderError::Oversized));
    }

    /// Whether `reserve(len)` completes within a short wait.
    async fn fits(credit: &Credit, len: usize) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), credit.reserve(len)).await.is_ok()
    }

    #[test]
    fn before_the_handshake_a_reader_holds_at_most_the_small_limit_and_never_a_4_mb_frame() {
        block_on(async {
            let credit = Credit::new(PRE_HANDSHAKE_RECV_BYTES);
            assert!(fits(&credit, 200_000).await);
            assert!(!fits(&credit, 100_000).await, "over the pre-handshake limit: waits");
            credit.release(200_000);
            assert!(!fits(&credit, 4_000_024).await, "a block-sized frame waits even with nothing held");
            assert_eq!(credit.outstanding(), 0);
            // The handshake is done: the peer's full limit applies.
            credit.set_limit(5_000_000);
            assert!(fits(&credit, 4_000_024).await);
            assert!(!fits(&credit, 1_000_000).await, "5 MB held at most");
            credit.release(4_000_024);
            assert!(fits(&credit, 1_000_000).await);
            assert_eq!(credit.outstanding(), 1_000_000);
        });
    }

    #[test]
    fn a_waiting_reader_goes_on_when_the_world_takes_frames() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let credit = Arc::new(Credit::new(1_000));
            credit.reserve(900).await;
            let waiting = tokio::spawn({
                let credit = credit.clone();
                async move { credit.reserve(500).await }
            });
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(!waiting.is_finished());
            credit.release(900);
            tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
            assert_eq!(credit.outstanding(), 500);
        });
    }

    #[test]
    fn inbound_connections_share_one_pool_beyond_their_own_small_shares() {
        block_on(async {
            let pool = Arc::new(RecvPool::new(1_000_000));
            let a = Credit::with_pool(5_000_000, Some(pool.clone()));
            let b = Credit::with_pool(5_000_000, Some(pool.clone()));
            // A holds 900 KB: all but its own share comes from the pool.
            assert!(fits(&a, 900_000).await);
            assert_eq!(pool.used(), 900_000 - INBOUND_RECV_OWN_BYTES);
            // B's large frame does not fit what is left, though B holds nothing: it waits.
            assert!(!fits(&b, 400_000).await, "the pool is the bound, not each peer's limit");
            assert_eq!(b.outstanding(), 0);
            // Small frames within B's own share pass whoever holds the pool.
            assert!(fits(&b, 1_000).await);
            assert!(fits(&b, 30_000).await);
            assert_eq!(pool.used(), 900_000 - INBOUND_RECV_OWN_BYTES);
            // The world takes A's frames: B's large frame fits now.
            a.release(900_000);
            assert_eq!(pool.used(), 0);
            assert!(fits(&b, 400_000).await);
            assert_eq!(pool.used(), 431_000 - INBOUND_RECV_OWN_BYTES);
            assert!(pool.peak() <= 1_000_000);
            // A connection that closes gives its part back.
            drop(b);
            assert_eq!(pool.used(), 0);
        });
    }

    #[test]
    fn a_reader_waiting_for_the_pool_goes_on_when_another_connection_frees_it() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let pool = Arc::new(RecvPool::new(4_000_000 + 24));
            let a = Arc::new(Credit::with_pool(5_000_000, Some(pool.clone())));
            let b = Arc::new(Credit::with_pool(5_000_000, Some(pool.clone())));
            a.reserve(4_000_024).await;
            let waiting = tokio::spawn({
                let b = b.clone();
                async move { b.reserve(4_000_024).await }
            });
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(!waiting.is_finished());
            a.release(4_000_024);
            tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
            assert_eq!(b.outstanding(), 4_000_024);
        });
    }

    #[test]
    fn eof_mid_payload_is_an_io_error() {
        let mut bytes = Vec::new();
        Message::Ping(42).encode_frame(Network::Regtest, &mut bytes);
        bytes.truncate(bytes.len() - 1);
        let mut rd: &[u8] = &bytes;
        assert!(block_on(read_frame(&mut rd, Network::Regtest)).is_err());
    }
}
