//! A minimal HTTP/1.1 server for the RPC and metrics endpoints: request line and headers bounded in
//! size, bodies only by `Content-Length` and bounded (413 over it), keep-alive by default, an idle
//! timeout, and a cap on concurrent connections (503 over it, as Core answers when its work queue is
//! full). Hand-written, not hyper: two loopback endpoints need far less than a framework brings
//! (a dozen more crates), and what they do need is Core's own behaviour, which a framework would
//! have to be bent to — a wrong password answered after 250 ms without holding a connection slot,
//! a deadline for the request, one for the call and one for taking the answer, header lines
//! bounded one by one (a fuzz finding: 50 KB per 4 KB of budget before), `Expect: 100-continue`
//! answered, two `Content-Length` headers refused.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Bounds of one server.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Request line plus headers.
    pub header_bytes_max: usize,
    /// Body (`Content-Length`); over it the answer is 413 and the connection closes.
    pub body_bytes_max: usize,
    /// Connections served at once; more are answered 503 and closed.
    pub connections_max: usize,
    /// A keep-alive connection idle this long is closed, and a request must arrive whole within it
    /// (Core's `-rpcservertimeout` is 30 s).
    pub idle_timeout_ms: u64,
    /// A handler running this long is answered 503 (the slot is not held forever).
    pub handler_timeout_ms: u64,
    /// A response not taken by the client within this is abandoned and the connection closed.
    pub write_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_bytes_max: 8 * 1024,
            body_bytes_max: 1 << 20,
            connections_max: 32,
            idle_timeout_ms: 30_000,
            handler_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
        }
    }
}

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/` or `/metrics`.
    pub path: String,
    /// Headers with lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open after the answer.
    pub keep_alive: bool,
    /// Who sent it.
    pub peer: SocketAddr,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers (Content-Length and Connection are added when written).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Sent only after this long, on a connection that no longer holds a slot and closes after
    /// (a failed login slows its sender, not everyone else).
    pub delay_ms: u64,
}

impl Response {
    /// A response with a body of `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("Content-Type", content_type.to_string())], body: body.into(), delay_ms: 0 }
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new(), delay_ms: 0 }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Sent after `ms`, the connection's slot freed meanwhile, then closed.
    pub fn delayed(mut self, ms: u64) -> Response {
        self.delay_ms = ms;
        self
    }
}

/// The reason phrase of the codes we send.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Header lines one request may have (as common servers, 100). Without it the header budget alone
/// bounds them, and each costs ~48 bytes of bookkeeping however short: 4,000 empty `:` lines in an
/// 8 KB budget held 400 KB.
pub const HEADERS_MAX: usize = 100;

/// Why no request could be read. Public for the `rpc_http` fuzz target, which drives
/// [`read_request`] over in-memory streams.
#[derive(Debug)]
pub enum ReadError {
    /// The connection ended (or idled out) between requests: close quietly.
    Closed,
    /// A malformed or unacceptable request: answer with this status and close.
    Reject(u16, &'static str),
}

/// Serves `listener` until the runtime stops: each connection runs its requests through `handler`
/// one after another (keep-alive), at most `limits.connections_max` connections at once.
pub async fn serve<H, F>(listener: TcpListener, limits: HttpLimits, handler: H)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(connection(stream, peer, limits, handler, permit));
            }
            Err(_) => {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let r = Response::new(503, "text/plain", "too many connections\n");
                    let _ = write_response(&mut stream, &r, false).await;
                });
            }
        }
    }
}

async fn connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    limits: HttpLimits,
    handler: H,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let write_limit = Duration::from_millis(limits.write_timeout_ms);
    loop {
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let reading = read_request(&mut reader, &mut write, peer, &limits);
        let request = match tokio::time::timeout(idle, reading).await {
            Err(_) | Ok(Err(ReadError::Closed)) => return,
            Ok(Err(ReadError::Reject(status, why))) => {
                let r = Response::new(status, "text/plain", format!("{why}\n"));
                let _ = tokio::time::timeout(write_limit, write_response(&mut write, &r, false)).await;
                return;
            }
            Ok(Ok(r)) => r,
        };
        let keep_alive = request.keep_alive;
        let handling = tokio::time::timeout(Duration::from_millis(limits.handler_timeout_ms), handler(request));
        let response = handling.await.unwrap_or_else(|_| Response::new(503, "text/plain", "request timed out\n"));
        if response.delay_ms > 0 {
            drop(permit);
            tokio::time::sleep(Duration::from_millis(response.delay_ms)).await;
            let _ = tokio::time::timeout(write_limit, write_response(&mut write, &response, false)).await;
            return;
        }
        let written = tokio::time::timeout(write_limit, write_response(&mut write, &response, keep_alive)).await;
        if !matches!(written, Ok(Ok(()))) || !keep_alive {
            return;
        }
    }
}

/// Reads one line (ending in `\n`) into `buf`, counting it against `budget`.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    budget: &mut usize,
) -> Result<usize, ReadError> {
    buf.clear();
    let limit = (*budget as u64).saturating_add(1);
    let n = (&mut *reader).take(limit).read_until(b'\n', buf).await.map_err(|_| ReadError::Closed)?;
    if n > *budget {
        return Err(ReadError::Reject(431, "request headers too large"));
    }
    *budget -= n;
    Ok(n)
}

/// Reads one request; answers `Expect: 100-continue` on `write` before reading the body. Public for
/// the `rpc_http` fuzz target (the request line, headers and body are what a client controls).
pub async fn read_request<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    reader: &mut BufReader<R>,
    write: &mut W,
    peer: SocketAddr,
    limits: &HttpLimits,
) -> Result<Request, ReadError> {
    let mut budget = limits.header_bytes_max;
    let mut line = Vec::new();
    // Tolerate empty lines before a request (RFC 9112 §2.2).
    loop {
        if read_line(reader, &mut line, &mut budget).await? == 0 {
            return Err(ReadError::Closed);
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            break;
        }
    }
    let text = std::str::from_utf8(&line).map_err(|_| ReadError::Reject(400, "request line is not text"))?;
    let mut parts = text.split_ascii_whitespace();
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Reject(400, "malformed request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Reject(400, "unsupported HTTP version")),
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = Vec::new();
    loop {
        if read_line(reader, &mut line, &mut budget).await? == 0 {
            return Err(ReadError::Closed);
        }
        let text = std::str::from_utf8(&line).map_err(|_| ReadError::Reject(400, "header is not text"))?;
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(ReadError::Reject(400, "malformed header"));
        };
        if headers.len() == HEADERS_MAX {
            return Err(ReadError::Reject(431, "too many headers"));
        }
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v)| v.as_str());
    if find("transfer-encoding").is_some() {
        return Err(ReadError::Reject(501, "chunked bodies are not supported; send Content-Length"));
    }
    // Two lengths: which one frames the body is a question for request smugglers, not for us.
    if headers.iter().filter(|(h, _)| h == "content-length").count() > 1 {
        return Err(ReadError::Reject(400, "duplicate Content-Length"));
    }
    let length = match find("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| ReadError::Reject(400, "bad Content-Length"))?,
        None if method == "POST" => return Err(ReadError::Reject(411, "Content-Length required")),
        None => 0,
    };
    if length > limits.body_bytes_max {
        return Err(ReadError::Reject(413, "request body too large"));
    }
    let connection = find("connection").map(|v| v.to_ascii_lowercase());
    let keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => http11,
    };
    // curl and others wait (a second, for curl) for leave to send a body over 1 KB.
    if length > 0 && find("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.map_err(|_| ReadError::Closed)?;
        write.flush().await.map_err(|_| ReadError::Closed)?;
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await.map_err(|_| ReadError::Closed)?;
    Ok(Request { method, path, headers, body, keep_alive, peer })
}

async fn write_response<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    r: &Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (n, v) in &r.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: {}\r\n\r\n",
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(&r.body);
    w.write_all(&out).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server on a free loopback port with `limits`, whose handler waits `handler_ms` and answers
    /// `body_bytes` bytes.
    fn server(rt: &tokio::runtime::Runtime, limits: HttpLimits, handler_ms: u64, body_bytes: usize) -> SocketAddr {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(serve(listener, limits, move |_req| async move {
            tokio::time::sleep(Duration::from_millis(handler_ms)).await;
            Response::new(200, "text/plain", vec![b'x'; body_bytes])
        }));
        addr
    }

    fn status_of(addr: SocketAddr) -> Option<u16> {
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    /// Reads one request from `bytes` with `limits`.
    fn read(bytes: &[u8], limits: HttpLimits) -> Result<Request, ReadError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut reader = BufReader::new(bytes);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        rt.block_on(read_request(&mut reader, &mut Vec::new(), peer, &limits))
    }

    /// Found by the `rpc_http` fuzz target: 2,000 `:` lines within a 4 KB header budget held
    /// 50 KB of header bookkeeping.
    #[test]
    fn a_request_with_more_than_headers_max_header_lines_is_refused_431() {
        let limits = HttpLimits { header_bytes_max: 4_000, ..HttpLimits::default() };
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.extend(b":\n".repeat(HEADERS_MAX));
        req.extend(b"\r\n");
        assert_eq!(read(&req, limits).unwrap().headers.len(), HEADERS_MAX);
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.extend(b":\n".repeat(HEADERS_MAX + 1));
        req.extend(b"\r\n");
        assert!(matches!(read(&req, limits), Err(ReadError::Reject(431, _))));
    }

    #[test]
    fn a_handler_that_runs_too_long_is_answered_503() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let limits = HttpLimits { handler_timeout_ms: 50, ..HttpLimits::default() };
        let addr = server(&rt, limits, 5_000, 10);
        assert_eq!(status_of(addr), Some(503));
    }

    #[test]
    fn a_client_that_never_reads_its_answer_loses_its_slot_after_the_write_timeout() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        // The timeout is long enough that a loaded CI machine cannot let it pass before the second
        // client asks; the slot's return is then polled for rather than slept for.
        let limits = HttpLimits { connections_max: 1, write_timeout_ms: 2_000, ..HttpLimits::default() };
        // 64 MB answers: far more than the sockets' buffers hold.
        let addr = server(&rt, limits, 0, 64 << 20);
        let mut stuck = std::net::TcpStream::connect(addr).unwrap();
        stuck.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let asked = std::time::Instant::now();
        assert_eq!(status_of(addr), Some(503), "the only slot is taken by the stuck reader");
        let mut status = status_of(addr);
        while status != Some(200) && asked.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
            status = status_of(addr);
        }
        assert_eq!(status, Some(200), "the slot came back after the write timeout");
        drop(stuck);
    }
}
