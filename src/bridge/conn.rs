//! One connection's IO: a reader task that frames the stream and a writer task that writes what the
//! world hands it. The reader checks each 24-byte header before the payload buffer exists, refusing a
//! wrong magic from the first four bytes (so a BIP324 v2 attempt is closed at once and the dialer
//! can retry v1), and honours pause/resume between frames.

use super::{Ending, Inner};
use oni_systems::components::ConnId;
use oni_systems::resources::NetEvent;
use oni_systems::wire::{FrameHeader, HeaderError, Network, RawFrame, HEADER_LEN};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Read buffer per connection: fewer syscalls for small frames, bounded memory per socket.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Write buffer per connection: small frames queued in one tick go out in one syscall.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The controls the world-facing side keeps for one connection.
pub(super) struct ConnCtl {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    paused: watch::Sender<bool>,
    closed: watch::Sender<bool>,
}

/// The ends the IO tasks take once the socket exists.
pub(super) struct ConnTasks {
    writer: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl ConnCtl {
    /// Controls and task ends for a new connection. The writer channel is unbounded in frames
    /// because the world bounds it in bytes (its writer window, credited by `Written`).
    pub(super) fn new() -> (Arc<ConnCtl>, ConnTasks) {
        let (writer, writer_rx) = mpsc::unbounded_channel();
        let (paused, _) = watch::channel(false);
        let (closed, _) = watch::channel(false);
        (Arc::new(ConnCtl { writer, paused, closed }), ConnTasks { writer: writer_rx })
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
    /// The world is gone.
    WorldGone,
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
) {
    use tracing::Instrument;
    let (rd, wr) = stream.into_split();
    let runtime = inner.runtime.clone();
    runtime.spawn(reader(inner.clone(), conn, rd, ctl.paused.subscribe(), ctl.closed()).instrument(span.clone()));
    runtime.spawn(writer(inner, conn, wr, tasks.writer, ctl.closed()).instrument(span));
}

async fn reader<R: AsyncRead + Unpin>(
    inner: Arc<Inner>,
    conn: ConnId,
    rd: R,
    paused: watch::Receiver<bool>,
    mut closed: watch::Receiver<bool>,
) {
    let mut rd = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
    let end = tokio::select! {
        _ = closed.wait_for(|c| *c) => return,
        end = read_frames(&inner, conn, &mut rd, paused) => end,
    };
    match end {
        ReadEnd::Closed => inner.end(conn, Ending::Closed { connect_failed: false }),
        ReadEnd::BadHeader(error) => {
            // Close first (a v2 dialer retries v1 only if we close quickly), then tell the world why.
            inner.end(conn, Ending::AlreadyReported);
            tracing::debug!(peer = conn.0, error = error.label(), "header refused");
            let _ = inner.events.send_async(NetEvent::BadHeader { conn, error }).await;
        }
        ReadEnd::WorldGone => inner.end(conn, Ending::Quiet),
    }
}

/// Reads frames until the stream ends or a header is refused.
async fn read_frames<R: AsyncRead + Unpin>(
    inner: &Inner,
    conn: ConnId,
    rd: &mut R,
    mut paused: watch::Receiver<bool>,
) -> ReadEnd {
    let network = inner.config.network;
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return ReadEnd::WorldGone;
        }
        let frame = match read_frame(rd, network).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return ReadEnd::BadHeader(e),
            Err(_) => return ReadEnd::Closed,
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
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    network: Network,
) -> std::io::Result<Result<RawFrame, HeaderError>> {
    let mut head = [0u8; HEADER_LEN];
    rd.read_exact(&mut head[..4]).await?;
    if head[..4] != network.magic() {
        return Ok(Err(HeaderError::BadMagic));
    }
    rd.read_exact(&mut head[4..]).await?;
    let header = match FrameHeader::parse(&head, network) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let len = header.len as usize;
    let mut payload = Vec::with_capacity(len.min(PAYLOAD_CHUNK_BYTES));
    while payload.len() < len {
        let have = payload.len();
        let next = (len - have).min(PAYLOAD_CHUNK_BYTES.max(have));
        payload.resize(have + next, 0);
        rd.read_exact(&mut payload[have..]).await?;
    }
    Ok(Ok(RawFrame { header, payload }))
}

async fn writer<W: tokio::io::AsyncWrite + Unpin>(
    inner: Arc<Inner>,
    conn: ConnId,
    wr: W,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    mut closed: watch::Receiver<bool>,
) {
    // Frames queued together leave in one write; a frame larger than the buffer bypasses it.
    let mut wr = BufWriter::with_capacity(WRITE_BUFFER_BYTES, wr);
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
                    bytes += frame.len();
                    wr.write_all(&frame).await?;
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
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
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

    #[test]
    fn eof_mid_payload_is_an_io_error() {
        let mut bytes = Vec::new();
        Message::Ping(42).encode_frame(Network::Regtest, &mut bytes);
        bytes.truncate(bytes.len() - 1);
        let mut rd: &[u8] = &bytes;
        assert!(block_on(read_frame(&mut rd, Network::Regtest)).is_err());
    }
}
