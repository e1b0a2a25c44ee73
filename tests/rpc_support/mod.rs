//! Shared by the RPC and metrics tests: an in-process regtest node with its RPC server on a free
//! loopback port, a minimal HTTP/1.1 client written here (not the node's own), and a raw P2P peer
//! that frames its messages with rust-bitcoin's codec and counts every byte it sends and receives.
#![allow(dead_code)]

use bitcoin::consensus::encode::serialize;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use oni::node::{Node, NodeConfig, NodeHandle};
use oni::rpc::{RpcConfig, RpcServer};
use oni_systems::wire::Network;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// A node and its RPC server.
pub struct TestRpcNode {
    pub node: NodeHandle,
    pub rpc: RpcServer,
    pub auth: String,
}

impl TestRpcNode {
    /// A regtest node on `datadir`, P2P and RPC on free loopback ports, cookie auth.
    pub fn start(datadir: &Path) -> TestRpcNode {
        Self::start_with(datadir, |_| {})
    }

    /// Same, with the RPC config adjusted by `f`.
    pub fn start_with(datadir: &Path, f: impl FnOnce(&mut RpcConfig)) -> TestRpcNode {
        let mut cfg = NodeConfig::new(Network::Regtest);
        cfg.datadir = Some(datadir.to_path_buf());
        Self::start_node(cfg, datadir, f)
    }

    /// A regtest node started from `cfg` (loopback, fast ticks and a fixed seed set here), its RPC
    /// cookie in `rpc_dir`.
    pub fn start_node(mut cfg: NodeConfig, rpc_dir: &Path, f: impl FnOnce(&mut RpcConfig)) -> TestRpcNode {
        cfg.listen = Some("127.0.0.1:0".parse().unwrap());
        cfg.tick_interval_ms = 20;
        cfg.seed = Some(7);
        let node = Node::start(cfg).unwrap();
        let datadir = rpc_dir;
        let mut rc = RpcConfig::new(Network::Regtest, Some(datadir));
        rc.bind = "127.0.0.1:0".parse().unwrap();
        f(&mut rc);
        let rpc = RpcServer::start(&node, Network::Regtest, rc).unwrap();
        let auth = match rpc.cookie_path() {
            Some(p) => std::fs::read_to_string(p).unwrap(),
            None => String::new(),
        };
        TestRpcNode { node, rpc, auth }
    }

    /// Calls `method` (JSON-RPC 2.0); panics on an error reply.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let (status, v) = post(
            self.rpc.local_addr(),
            Some(&self.auth),
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
        );
        assert_eq!(status, 200, "{method}: {v}");
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// Calls `method` in legacy 1.0 and returns the HTTP status and the whole reply.
    pub fn call_legacy(&self, method: &str, params: Value) -> (u16, Value) {
        post(
            self.rpc.local_addr(),
            Some(&self.auth),
            &json!({"id": "t", "method": method, "params": params}).to_string(),
        )
    }
}

impl Drop for TestRpcNode {
    fn drop(&mut self) {
        self.node.shutdown();
    }
}

/// Standard base64, written here so the test does not lean on the server's own.
pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() { T[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// One HTTP response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Sends raw bytes on `s` and reads one response.
pub fn exchange(s: &mut TcpStream, request: &[u8]) -> HttpReply {
    s.write_all(request).unwrap();
    read_reply(s)
}

/// [`exchange`] that gives None on any IO failure (a server that closed the connection).
pub fn try_exchange(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(request).ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads one response (status line, headers, Content-Length body).
pub fn read_reply(s: &mut TcpStream) -> HttpReply {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap_or_else(|| panic!("no status in {line:?}")).parse().unwrap();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').unwrap();
        headers.insert(n.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    HttpReply { status, headers, body }
}

/// A POST request's bytes.
pub fn request(auth: Option<&str>, body: &str, keep_alive: bool) -> Vec<u8> {
    let mut head = String::from("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: Basic {}\r\n", b64(a.as_bytes())));
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// POSTs `body` on a fresh connection; returns the status and the parsed JSON (Null when empty).
pub fn post(addr: SocketAddr, auth: Option<&str>, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let r = exchange(&mut s, &request(auth, body, false));
    let v = if r.body.is_empty() { Value::Null } else { serde_json::from_slice(&r.body).unwrap() };
    (r.status, v)
}

/// Polls `f` until it returns Some, for at most `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw P2P peer: frames with rust-bitcoin, counts wire bytes by command both ways.
pub struct RawPeer {
    pub stream: TcpStream,
    pub sent: BTreeMap<String, (u64, u64)>,
    pub received: BTreeMap<String, (u64, u64)>,
    /// Every message received that rust-bitcoin decodes, in order (for peers that answer).
    pub inbox: Vec<NetworkMessage>,
    buf: Vec<u8>,
}

impl RawPeer {
    pub fn connect(addr: SocketAddr) -> RawPeer {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        RawPeer { stream, sent: BTreeMap::new(), received: BTreeMap::new(), inbox: Vec::new(), buf: Vec::new() }
    }

    /// Sends one message; records its full frame length under its command.
    pub fn send(&mut self, msg: NetworkMessage) {
        let raw = RawNetworkMessage::new(Magic::REGTEST, msg);
        let bytes = serialize(&raw);
        let e = self.sent.entry(raw.cmd().to_string()).or_default();
        e.0 += 1;
        e.1 += bytes.len() as u64;
        self.stream.write_all(&bytes).unwrap();
    }

    /// A version as a modern peer sends it.
    pub fn version(&self) -> NetworkMessage {
        let local = self.stream.local_addr().unwrap();
        let remote = self.stream.peer_addr().unwrap();
        let mut v = VersionMessage::new(
            ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
            Address::new(&remote, ServiceFlags::NONE),
            Address::new(&local, ServiceFlags::NONE),
            0x5eed,
            "/rawpeer:1.0/".to_string(),
            0,
        );
        v.version = 70016;
        v.relay = true;
        NetworkMessage::Version(v)
    }

    /// Reads whatever arrives within `wait`, splitting frames by their headers and counting them.
    pub fn drain(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        while self.buf.len() >= 24 {
            let len = u32::from_le_bytes(self.buf[16..20].try_into().unwrap()) as usize;
            if self.buf.len() < 24 + len {
                break;
            }
            let cmd: String = self.buf[4..16].iter().take_while(|&&b| b != 0).map(|&b| b as char).collect();
            let e = self.received.entry(cmd).or_default();
            e.0 += 1;
            e.1 += 24 + len as u64;
            let frame: Vec<u8> = self.buf.drain(..24 + len).collect();
            if let Ok(m) = bitcoin::consensus::deserialize::<RawNetworkMessage>(&frame) {
                self.inbox.push(m.payload().clone());
            }
        }
    }
}

/// Lines of a file of the Core-made regtest fixture (`../shared/fixtures/regtest-core`).
pub fn fixture_lines(name: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/regtest-core");
    let text = std::fs::read_to_string(dir.join(name)).expect("fixture present");
    text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The fixture's 53 pool transactions (parents before children), hex.
pub fn fixture_mempool_hex() -> Vec<String> {
    fixture_lines("mempool.hex")
}

/// Gives the node's world the fixture chain: every header accepted and marked validated (no
/// block store, so no validator is asked) and its coins as the chain's UTXO set, out of IBD. The
/// fixture's pool transactions are then valid on top of it (scripts are skipped without a datadir).
pub fn load_fixture_chain(node: &NodeHandle) {
    use oni_systems::chain::{ChainParams, HeaderTree, Ibd};
    use oni_systems::mempool::{ChainCoins, MemoryCoins};
    let blocks: Vec<bitcoin::Block> =
        fixture_lines("chain.hex").iter().map(|l| bitcoin::consensus::encode::deserialize_hex(l).unwrap()).collect();
    node.with_world(move |world| {
        let params = ChainParams::for_network(Network::Regtest);
        let mut coins = MemoryCoins::default();
        let mut tree = world.resource_mut::<HeaderTree>();
        for (i, block) in blocks.iter().enumerate() {
            let raw: [u8; 80] = bitcoin::consensus::encode::serialize(&block.header).try_into().unwrap();
            let hash = block.block_hash();
            tree.accept(&raw, hash, &params, 1_800_000_000).unwrap();
            tree.mark_validated(&hash);
            coins.connect(block, i as u32 + 1);
        }
        assert_eq!(tree.entry(tree.validated_tip()).height, 2100);
        world.insert_resource(ChainCoins(Box::new(coins)));
        world.resource_mut::<Ibd>().active = false;
    })
    .unwrap();
}
