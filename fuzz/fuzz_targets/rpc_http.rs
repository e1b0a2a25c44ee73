//! Target: bytes a client sends to the RPC/metrics HTTP server → `http::read_request`, again
//! and again on one stream as keep-alive pipelining reads them, with small fuzzer-chosen limits and
//! reads cut into fuzzer-chosen sizes. No panic; a request that passes kept to its budgets (request
//! line and headers within `header_bytes_max`, body within `body_bytes_max` and exactly its
//! Content-Length, no Transfer-Encoding, a POST only with a length) and consumed exactly its own
//! bytes; `100 Continue` only when asked for a body; the reader's heap stays within its limits plus
//! a constant.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oni::http::{read_request, HttpLimits, ReadError, HEADERS_MAX};
use oni_fuzz::peak_heap_of;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, BufReader, ReadBuf};

/// tokio's `BufReader` buffer, allocated once per connection.
const BUF_READER_BYTES: usize = 8 * 1024;
/// Besides the budgets: the request's small parts (method, path, the headers' `Vec`) and the
/// runtime's bookkeeping for one `block_on`.
const SLACK_BYTES: usize = 16 * 1024;
/// What the headers cost beyond their text: a `(String, String)` each in a `Vec` that doubles, at
/// most `HEADERS_MAX` of them.
const HEADERS_BOOKKEEPING_BYTES: usize = 2 * HEADERS_MAX * std::mem::size_of::<(String, String)>();

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

/// A client stream that hands over at most `chunk` bytes per read, as a socket may.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (head, stream) = data.split_at(5);
    let limits = HttpLimits {
        header_bytes_max: 8 + (u16::from_le_bytes([head[0], head[1]]) as usize % 4096),
        body_bytes_max: u16::from_le_bytes([head[2], head[3]]) as usize,
        ..HttpLimits::default()
    };
    let chunk = 1 + head[4] as usize;
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let bound = BUF_READER_BYTES
        + 3 * limits.header_bytes_max
        + HEADERS_BOOKKEEPING_BYTES
        + limits.body_bytes_max
        + SLACK_BYTES;

    let mut reader = BufReader::new(Chunked { data: stream, chunk });
    let mut left = stream.len();
    // Pipelined requests on one keep-alive connection, as `connection` reads them.
    for _ in 0..64 {
        let mut written = Vec::new();
        let (result, peak) =
            peak_heap_of(|| runtime().block_on(read_request(&mut reader, &mut written, peer, &limits)));
        let now_left = reader.get_ref().data.len() + reader.buffer().len();
        let consumed = left - now_left;
        left = now_left;
        assert!(peak <= bound, "reading a request held {peak} bytes (bound {bound}, limits {limits:?})");
        let request = match result {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(ReadError::Reject(status, why)) => {
                assert!(matches!(status, 400 | 411 | 413 | 431 | 501), "status {status} ({why})");
                assert!(written.is_empty(), "100 Continue before a rejection");
                return;
            }
        };
        assert!(request.body.len() <= limits.body_bytes_max, "a body over its limit passed");
        assert!(
            consumed <= limits.header_bytes_max + request.body.len(),
            "a request took {consumed} bytes: headers over {} or more than its body",
            limits.header_bytes_max
        );
        let length = request.header("content-length");
        assert_eq!(length.map(|l| l.parse::<usize>().ok()), length.map(|_| Some(request.body.len())));
        assert!(request.method != "POST" || length.is_some(), "a POST without Content-Length passed");
        assert!(request.header("transfer-encoding").is_none(), "a chunked body passed");
        assert!(request.headers.iter().filter(|(n, _)| n == "content-length").count() <= 1);
        assert!(request.headers.len() <= HEADERS_MAX, "{} headers passed", request.headers.len());
        assert!(request.headers.iter().all(|(n, _)| n.to_ascii_lowercase() == *n), "header names are lower case");
        let continued = written == b"HTTP/1.1 100 Continue\r\n\r\n";
        assert!(written.is_empty() || continued, "unexpected interim answer {written:?}");
        let asked = !request.body.is_empty()
            && request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        assert_eq!(continued, asked, "100 Continue iff a body was announced with Expect");
        if consumed == 0 {
            return;
        }
    }
});
