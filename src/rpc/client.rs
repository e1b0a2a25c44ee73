//! A small blocking JSON-RPC client over one HTTP/1.1 request per call: enough for `oni dump` to
//! ask a running node, with the same credentials `bitcoin-cli` would use.

use super::auth::base64_encode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest reply accepted (a dump of many peers is a few MB).
pub const REPLY_BYTES_MAX: usize = 256 << 20;

/// Calls `method` with `params` at `addr` using `user:password`; returns `result`, or the error
/// object / transport failure as text.
pub fn call(addr: SocketAddr, user_password: &str, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        base64_encode(user_password.as_bytes()),
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).map_err(|e| e.to_string())?;
    let status: u16 = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    if status == 401 {
        return Err("authorization failed: wrong RPC user/password or cookie".into());
    }
    let length = length.ok_or_else(|| format!("HTTP {status} without Content-Length"))?;
    if length > REPLY_BYTES_MAX {
        return Err(format!("reply of {length} bytes is too large"));
    }
    let mut buf = vec![0u8; length];
    r.read_exact(&mut buf).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&buf).map_err(|e| format!("HTTP {status}: reply is not JSON: {e}"))?;
    match v.get("error") {
        Some(e) if !e.is_null() => Err(format!("error {}: {}", e["code"], e["message"].as_str().unwrap_or(""))),
        _ => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
    }
}
