//! A minimal HTTP/1.1 server for the RPC and metrics endpoints: request line and headers bounded in
//! size, bodies only by `Content-Length` and bounded (413 over it), keep-alive by default, an idle
//! timeout, and a cap on concurrent connections (503 over it, as Core answers when its work queue is
//! full). Hand-written because two local endpoints need far less than a web framework brings.

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
    /// A keep-alive connection idle this long is closed (Core's `-rpcservertimeout` is 30 s).
    pub idle_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits { header_bytes_max: 8 * 1024, body_bytes_max: 1 << 20, connections_max: 32, idle_timeout_ms: 30_000 }
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
}

impl Response {
    /// A response with a body of `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("Content-Type", content_type.to_string())], body: body.into() }
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
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

/// Why no request could be read.
#[derive(Debug)]
enum ReadError {
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
    F: Future<Output = Response> + Send,
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
                tokio::spawn(async move {
                    connection(stream, peer, limits, handler).await;
                    drop(permit);
                });
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

async fn connection<H, F>(stream: TcpStream, peer: SocketAddr, limits: HttpLimits, handler: H)
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let request = match tokio::time::timeout(idle, read_request(&mut reader, peer, &limits)).await {
            Err(_) | Ok(Err(ReadError::Closed)) => return,
            Ok(Err(ReadError::Reject(status, why))) => {
                let r = Response::new(status, "text/plain", format!("{why}\n"));
                let _ = write_response(&mut write, &r, false).await;
                return;
            }
            Ok(Ok(r)) => r,
        };
        let keep_alive = request.keep_alive;
        let response = handler(request).await;
        if write_response(&mut write, &response, keep_alive).await.is_err() || !keep_alive {
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

async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
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
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v)| v.as_str());
    if find("transfer-encoding").is_some() {
        return Err(ReadError::Reject(501, "chunked bodies are not supported; send Content-Length"));
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
