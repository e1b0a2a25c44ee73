//! Live floods, oni next to Bitcoin Core in the same run: each target (the `oni` binary, then a
//! `bitcoind`) is started fresh on regtest, an honest peer pings it every 100 ms, and 8 flooders
//! push one kind of abuse for a while; a flooder the target drops connects again at once (the
//! attack goes on, as a real one would). Reported per row: what the flooders got the target to
//! read, their connections, the target's peak RSS (VmHWM) and CPU time during the flood, the
//! honest peer's ping p50/p99/max, and for oni its schedule's tick p99 (from its `/metrics`
//! histogram, so a bucket's upper bound). A table, not a timed test: `cargo bench --bench flood`
//! (bitcoind from `BITCOIND_EXE` or `../shared/bin`). `FLOOD_SECONDS` (default 15), `FLOODS`
//! (comma-separated name prefixes) and `FLOOD_TARGETS` (`oni`, `bitcoind` or both) narrow a run.
//!
//! The block-requester row needs blocks on the target: a feeder peer serves it the regtest fixture
//! chain (`../shared/fixtures/regtest-core/chain.hex`, 2,100 blocks made by Core) over P2P first,
//! announcing the headers and answering getdata, until the target serves the tip back.

use bitcoin::hashes::Hash;
use oni_systems::chain::pow::check_pow;
use oni_systems::chain::ChainParams;
use oni_systems::harness::TestNode;
use oni_systems::wire::headers::block_hash;
use oni_systems::wire::v2::transport::{seal_frame, Step, V2Session};
use oni_systems::wire::v2::{KeyExchange, SendCipher};
use oni_systems::wire::{
    checksum, Command, FrameHeader, FrameSplitter, HeaderList, InvList, InvType, Message, Network,
};
use oni_systems::wire::{AddrEntry, AddrV2Addr, AddrV2Entry, AddrV2List, NetAddr, RawFrame, HEADER_LEN};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const NET: Network = Network::Regtest;
const FLOODERS: usize = 8;
/// Minimum chain work for the low-work row: 10 million regtest blocks' worth (2 each), far above
/// what a flooder's chain reaches, so both targets must take it through PRESYNC.
const MIN_WORK_HEX: &str = "1312d00";
/// Regtest's compact target: about every other hash meets it.
const REGTEST_BITS: u32 = 0x207f_ffff;

/// A node under test, in its own process.
struct Target {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// Its JSON-RPC port (cookie in the datadir, where bitcoin-cli looks).
    rpc: u16,
    /// oni's Prometheus endpoint.
    metrics: Option<SocketAddr>,
    dir: tempfile::TempDir,
}

/// Whether targets run on CPU 1 and the bench on CPU 0 (`FLOOD_PIN=0` turns it off): on a small
/// machine the flooders' own work (8 writers, their readers, the kernel's loopback copies) would
/// otherwise take the target's CPU, and the honest figures would measure the bench as much as the
/// target.
fn pin() -> bool {
    std::env::var("FLOOD_PIN").map_or(true, |v| v != "0")
}

/// A command for `exe`, started on CPU 1 when pinning.
fn pinned(exe: impl AsRef<std::ffi::OsStr>) -> Process {
    if pin() {
        let mut c = Process::new("taskset");
        c.args(["-c", "1"]).arg(exe);
        c
    } else {
        Process::new(exe)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Target {
    fn oni(min_work: bool) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let rpc = free_port();
        let child = pinned(env!("CARGO_BIN_EXE_oni"))
            .args(["node", "--network", "regtest", "--max-tip-age", "4000000000", "--datadir"])
            .arg(dir.path())
            .args(["--rpcport", &rpc.to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics", &metrics.to_string()])
            .args(if min_work { vec!["--minimumchainwork", MIN_WORK_HEX] } else { vec![] })
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut t = Target::ready("oni", child, port, rpc, dir);
        t.metrics = Some(metrics);
        t
    }

    fn core(min_work: bool) -> Target {
        let exe = std::env::var_os("BITCOIND_EXE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bin/bitcoind")));
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let rpc = free_port();
        let child = pinned(exe)
            .arg("-regtest")
            .arg(format!("-datadir={}", dir.path().display()))
            .arg(format!("-port={port}"))
            .arg(format!("-rpcport={rpc}"))
            .args(["-listen=1", "-bind=127.0.0.1", "-listenonion=0", "-dnsseed=0", "-fixedseeds=0"])
            .args(["-maxtipage=4000000000", "-printtoconsole=0", "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1"])
            .args(if min_work { vec![format!("-minimumchainwork={MIN_WORK_HEX}")] } else { vec![] })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Target::ready("bitcoind", child, port, rpc, dir)
    }

    fn ready(name: &'static str, child: Child, port: u16, rpc: u16, dir: tempfile::TempDir) -> Target {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "{name} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the probe connection's disconnect settle.
        std::thread::sleep(Duration::from_millis(300));
        Target { name, child, addr, rpc, metrics: None, dir }
    }

    /// Peak resident set (VmHWM), MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }

    /// Resident anonymous and file-backed memory now (RssAnon, RssFile), MiB: mapped store pages
    /// count in RSS too.
    fn rss_split_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb = |key: &str| -> f64 {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        (kb("RssAnon:") / 1024.0, kb("RssFile:") / 1024.0)
    }

    /// The best header's height (`getblockchaininfo` through bitcoin-cli), if it answers.
    fn best_header_height(&self) -> Option<u64> {
        let cli = std::env::var_os("BITCOIN_CLI_EXE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bin/bitcoin-cli")));
        let out = Process::new(cli)
            .arg("-regtest")
            .arg(format!("-datadir={}", self.dir.path().display()))
            .arg(format!("-rpcport={}", self.rpc))
            .arg("-rpcclienttimeout=60")
            .arg("getblockchaininfo")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let at = text.find("\"headers\":")? + "\"headers\":".len();
        text[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }

    /// User + system CPU time so far, seconds.
    fn cpu_s(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
        if f.len() < 13 {
            return f64::NAN;
        }
        (f[11] + f[12]) / 100.0
    }

    /// oni's tick-duration histogram: (upper bound in seconds, cumulative count).
    fn tick_histogram(&self) -> Option<Vec<(f64, u64)>> {
        let mut s = TcpStream::connect(self.metrics?).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let buckets = text
            .lines()
            .filter_map(|l| l.strip_prefix("oni_tick_seconds_bucket{le=\""))
            .filter_map(|l| {
                let (le, count) = l.split_once("\"} ")?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, count.trim().parse().ok()?))
            })
            .collect::<Vec<_>>();
        (!buckets.is_empty()).then_some(buckets)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bucket bound under which 99% of the ticks between two scrapes fell, in ms.
fn tick_p99_ms(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<f64> {
    let d: Vec<(f64, u64)> =
        after.iter().map(|&(le, c)| (le, c - before.iter().find(|b| b.0 == le).map_or(0, |b| b.1))).collect();
    let total = d.last()?.1;
    let want = (total as f64 * 0.99).ceil() as u64;
    d.iter().find(|(_, c)| *c >= want.max(1)).map(|(le, _)| le * 1000.0)
}

fn frame(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_frame(NET, &mut out);
    out
}

/// A raw frame with any command name and payload, checksum right.
fn raw_frame(name: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut head = [0u8; HEADER_LEN];
    FrameHeader::write(NET, Command::Unknown, payload.len() as u32, checksum(payload), &mut head);
    head[4..16].fill(0);
    head[4..4 + name.len()].copy_from_slice(name);
    let mut out = head.to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads what is there (or waits the socket's read timeout) and hands each whole frame to `on`.
/// `None` when the connection closed.
fn read_some(s: &mut TcpStream, split: &mut FrameSplitter, buf: &mut [u8], mut on: impl FnMut(RawFrame)) -> Option<()> {
    let n = match s.read(buf) {
        Ok(0) => return None,
        Ok(n) => n,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return Some(()),
        Err(_) => return None,
    };
    let mut at = 0;
    while at < n {
        let (used, f) = split.push(&buf[at..n]);
        at += used;
        if let Ok(Some(f)) = f {
            on(f);
        }
    }
    Some(())
}

/// Completes the handshake on `s` (reading until the target's verack); `addrv2` sends sendaddrv2.
fn handshake_on(mut s: TcpStream, nonce: u64, addrv2: bool) -> Option<(TcpStream, FrameSplitter)> {
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut hello = frame(&TestNode::peer_version(nonce));
    hello.extend(frame(&Message::WtxidRelay));
    if addrv2 {
        hello.extend(frame(&Message::SendAddrV2));
    }
    hello.extend(frame(&Message::Verack));
    s.write_all(&hello).ok()?;
    let mut split = FrameSplitter::new(NET);
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut ready = false;
    while !ready && start.elapsed() < Duration::from_secs(10) {
        read_some(&mut s, &mut split, &mut buf, |f| ready |= f.header.command == Command::Verack)?;
    }
    ready.then_some((s, split))
}

/// Connects with BIP324 v2 and completes both handshakes (keys, then version/verack sealed);
/// returns the socket and the sending cipher.
fn v2_handshake(addr: SocketAddr, nonce: u64) -> Option<(TcpStream, SendCipher)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&nonce.to_le_bytes());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    seed[8..24].copy_from_slice(&now.as_nanos().to_le_bytes());
    seed[24..].copy_from_slice(&(std::process::id() as u64 ^ 0x5eed).to_le_bytes());
    let (kex, garbage) = KeyExchange::from_seed(seed);
    let (mut session, first) = V2Session::initiator(NET, kex, garbage);
    s.write_all(&first).ok()?;
    let mut send: Option<SendCipher> = None;
    let mut buf = vec![0u8; 65536];
    let mut packet = Vec::new();
    let (mut hello_sent, mut ready) = (false, false);
    let start = Instant::now();
    while !ready && start.elapsed() < Duration::from_secs(10) {
        let n = match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => 0,
            Err(_) => return None,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, step) = session.push(rest).ok()?;
            rest = &rest[used..];
            match step {
                Step::Keyed(bytes, cipher) => {
                    s.write_all(&bytes).ok()?;
                    send = Some(cipher);
                }
                Step::Frame(f) => ready |= f.header.command == Command::Verack,
                _ => {}
            }
        }
        if let (Some(cipher), false) = (send.as_mut(), hello_sent) {
            for m in [TestNode::peer_version(nonce), Message::WtxidRelay, Message::Verack] {
                seal_frame(cipher, &frame(&m), &mut packet);
                s.write_all(&packet).ok()?;
            }
            hello_sent = true;
        }
    }
    Some((s, send?)).filter(|_| ready)
}

/// Connects and completes the handshake.
fn handshake(addr: SocketAddr, nonce: u64, addrv2: bool) -> Option<(TcpStream, FrameSplitter)> {
    handshake_on(TcpStream::connect(addr).ok()?, nonce, addrv2)
}

/// The honest peer: a ping every 100 ms, round trips in ms (a lost pong counts as the run's end).
fn honest(addr: SocketAddr, stop: Arc<AtomicBool>) -> (Vec<f64>, bool) {
    let Some((mut s, mut split)) = handshake(addr, 0x4040, false) else { return (vec![], true) };
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut rtts = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut nonce = 1u64;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if s.write_all(&frame(&Message::Ping(nonce))).is_err() {
            return (rtts, true);
        }
        let mut got = false;
        let mut pings = Vec::new();
        while !got && sent.elapsed() < Duration::from_secs(30) && !stop.load(Ordering::Relaxed) {
            let read =
                read_some(&mut s, &mut split, &mut buf, |f| match Message::decode(f.header.command, &f.payload) {
                    Ok(Some(Message::Pong(p))) => got |= p == nonce,
                    Ok(Some(Message::Ping(p))) => pings.push(p),
                    _ => {}
                });
            if read.is_none() {
                return (rtts, true);
            }
            for p in pings.drain(..) {
                let _ = s.write_all(&frame(&Message::Pong(p)));
            }
        }
        // A ping still unanswered when the flood ends counts with its age so far: a target that
        // stops answering must not look prompt for having answered only early pings.
        if got || stop.load(Ordering::Relaxed) {
            rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        nonce += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    (rtts, false)
}

/// A flooder's source of frames: called for each batch to write, keeps its own state.
type Gen = Box<dyn FnMut() -> Vec<u8> + Send>;

/// What the flooders do.
#[derive(Clone, Copy)]
enum Attack {
    /// Handshake (sendaddrv2 too when `addrv2`), then the generator's frames as fast as the target
    /// takes them; whatever the target sends is drained.
    Frames { make: fn(usize) -> Gen, addrv2: bool },
    /// Handshake, then getdata for every fixture block, again and again, and never a byte read.
    NeverReads,
    /// Connect from 127.0.0.x (x from 2 to 251), handshake, close; again at once.
    Churn,
    /// BIP324 handshake and version/verack over v2, then 1 MB decoy packets as fast as the target
    /// opens them: decoys never reach a node's message handling, only its decryption.
    V2Decoys,
}

/// One flood: a name, what its flooders do, and whether the targets get a minimum chain work.
struct Flood {
    name: &'static str,
    attack: Attack,
    min_work: bool,
}

/// A frame generator from a maker of the i-th frame for flooder `f`.
fn numbered(f: usize, make: fn(usize, u64) -> Vec<u8>) -> Gen {
    let mut i = 0u64;
    Box::new(move || {
        i += 1;
        make(f, i - 1)
    })
}

/// A small deterministic generator (splitmix64): frames differ between flooders and batches.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn hash(&mut self) -> [u8; 32] {
        let mut h = [0u8; 32];
        for c in h.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        h
    }
}

/// A 3.9 MB transaction (24,000 inputs, a 2.9 MB witness item): shaped like a valid one, refused
/// by policy as `tx-size`. Each (flooder, i) gets its own locktime, so its own txid and wtxid.
fn big_tx(f: usize, i: u64) -> Vec<u8> {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        use bitcoin::{absolute::LockTime, transaction::Version, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};
        let tx = bitcoin::Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: (0..24_000u32)
                .map(|n| TxIn {
                    previous_output: OutPoint { txid: bitcoin::Txid::from_byte_array([3; 32]), vout: n },
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: if n == 0 { Witness::from_slice(&[vec![7u8; 2_900_000]]) } else { Witness::new() },
                })
                .collect(),
            output: vec![TxOut { value: bitcoin::Amount::from_sat(1_000), script_pubkey: ScriptBuf::new() }],
        };
        bitcoin::consensus::serialize(&tx)
    });
    let mut payload = base.clone();
    let n = payload.len();
    payload[n - 4..].copy_from_slice(&((f as u32) << 24 | (i as u32 & 0xff_ffff)).to_le_bytes());
    raw_frame(b"tx", &payload)
}

/// 500 small non-standard (version 4) transactions in a row, each its own.
fn small_txs(f: usize, i: u64) -> Vec<u8> {
    use bitcoin::{absolute::LockTime, transaction::Version, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};
    let mut out = Vec::new();
    for k in 0..500u64 {
        let tag = (f as u64) << 48 | i << 16 | k;
        let tx = bitcoin::Transaction {
            version: Version(4),
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint { txid: bitcoin::Txid::from_byte_array([9; 32]), vout: tag as u32 },
                script_sig: ScriptBuf::from_bytes(tag.to_le_bytes().to_vec()),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut { value: bitcoin::Amount::from_sat(5_000), script_pubkey: ScriptBuf::new() }],
        };
        out.extend(raw_frame(b"tx", &bitcoin::consensus::serialize(&tx)));
    }
    out
}

/// A 4 MB frame of a command nobody speaks.
fn junk(_f: usize, _i: u64) -> Vec<u8> {
    static J: OnceLock<Vec<u8>> = OnceLock::new();
    J.get_or_init(|| raw_frame(b"junkjunk", &vec![0u8; 4_000_000])).clone()
}

/// inv of 50,000 wtxids nobody has (the per-message limit).
fn inv_storm(f: usize, i: u64) -> Vec<u8> {
    let mut l = InvList::with_capacity(50_000);
    for k in 0..50_000u64 {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&((f as u64) << 56 | i << 20 | k).to_le_bytes());
        l.push(InvType::WTX, h);
    }
    frame(&Message::Inv(l))
}

/// A regtest header on `prev` with a merkle root from `mix`, ground until it meets its target.
fn mined_header(prev: &[u8; 32], time: u32, mix: &mut Mix) -> [u8; 80] {
    static PARAMS: OnceLock<ChainParams> = OnceLock::new();
    let params = PARAMS.get_or_init(|| ChainParams::for_network(NET));
    let mut h = [0u8; 80];
    h[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
    h[4..36].copy_from_slice(prev);
    h[36..68].copy_from_slice(&mix.hash());
    h[68..72].copy_from_slice(&time.to_le_bytes());
    h[72..76].copy_from_slice(&REGTEST_BITS.to_le_bytes());
    for nonce in 0u32.. {
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        if check_pow(&block_hash(&h).to_byte_array(), REGTEST_BITS, params).is_ok() {
            break;
        }
    }
    h
}

fn unix_now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// headers of 2,000 chained headers (valid regtest proof of work) whose first parent nobody has:
/// 16 such messages per flooder, made before the flood (grinding them live would take the CPU the
/// targets need) and sent in turn; a target keeps nothing of an unconnecting message to recognise it.
fn unconnecting_headers(f: usize) -> Gen {
    let mut mix = Mix(0x4eade5 ^ (f as u64) << 40);
    let time = unix_now();
    let msgs: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let mut prev = mix.hash();
            let mut list = HeaderList::default();
            for _ in 0..2_000 {
                let h = mined_header(&prev, time, &mut mix);
                prev = block_hash(&h).to_byte_array();
                list.push_raw(h);
            }
            frame(&Message::Headers(list))
        })
        .collect();
    let mut i = 0;
    Box::new(move || {
        i += 1;
        msgs[(i - 1) % msgs.len()].clone()
    })
}

/// An endless chain of valid headers from genesis, 2,000 per message, one chain per flooder (its
/// connections continue it). Regtest asks for no minimum chain work, so both targets store them
/// unless one is set (then they are low-work: PRESYNC keeps commitments only).
/// The first 100 messages are made before the flood, the rest (if a target takes that many) live.
fn genesis_headers(f: usize) -> Gen {
    let params = ChainParams::for_network(NET);
    let mut tip = params.genesis.block_hash().to_byte_array();
    let mut time = params.genesis.time;
    let mut mix = Mix(0x9e4e515 ^ (f as u64) << 40);
    let mut next = move || {
        let mut list = HeaderList::default();
        for _ in 0..2_000 {
            // One second apart: above the median of the last 11, far from the future.
            time += 1;
            let h = mined_header(&tip, time, &mut mix);
            tip = block_hash(&h).to_byte_array();
            list.push_raw(h);
        }
        frame(&Message::Headers(list))
    };
    let mut made: std::collections::VecDeque<Vec<u8>> = (0..100).map(|_| next()).collect();
    Box::new(move || made.pop_front().unwrap_or_else(&mut next))
}

/// A routable IPv4 address (1.0.0.0 – 99.255.255.255 minus 10/8).
fn routable(mix: &mut Mix) -> [u8; 4] {
    let mut ip = (mix.next() as u32 % 0x6300_0000) + 0x0100_0000;
    if ip >> 24 == 10 {
        ip ^= 0x0300_0000;
    }
    ip.to_be_bytes()
}

/// addr of 1,000 fresh routable addresses.
fn addr_flood(f: usize) -> Gen {
    let mut mix = Mix(0xadd7 ^ (f as u64) << 40);
    Box::new(move || {
        let time = unix_now();
        let entries: Vec<AddrEntry> = (0..1_000)
            .map(|_| {
                let ip = Ipv4Addr::from(routable(&mut mix));
                AddrEntry { time, addr: NetAddr::from_socket(SocketAddr::new(ip.into(), 8333), 9) }
            })
            .collect();
        frame(&Message::Addr(entries))
    })
}

/// addrv2 of 1,000 fresh routable addresses (the flooder sent sendaddrv2).
fn addrv2_flood(f: usize) -> Gen {
    let mut mix = Mix(0xadd72 ^ (f as u64) << 40);
    Box::new(move || {
        let time = unix_now();
        let entries = (0..1_000)
            .map(|_| AddrV2Entry { time, services: 9, addr: AddrV2Addr::Ipv4(routable(&mut mix)), port: 8333 })
            .collect();
        frame(&Message::AddrV2(AddrV2List { entries, skipped: 0 }))
    })
}

/// A fixture block: its hash, header and bytes.
type FixtureBlock = ([u8; 32], [u8; 80], Vec<u8>);

/// The regtest fixture chain, heights from 1.
fn fixture_chain() -> &'static [FixtureBlock] {
    static CHAIN: OnceLock<Vec<FixtureBlock>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/regtest-core/chain.hex");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let bytes: Vec<u8> =
                    (0..l.len() / 2).map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).unwrap()).collect();
                let header: [u8; 80] = bytes[..80].try_into().unwrap();
                (block_hash(&header).to_byte_array(), header, bytes)
            })
            .collect()
    })
}

/// Serves the fixture chain to the target over P2P (headers announced, getdata and getheaders
/// answered) until the target serves its tip back: then it holds all 2,100 blocks, validated.
fn load_chain(target: &Target) {
    let chain = fixture_chain();
    let started = Instant::now();
    let (mut s, mut split) = handshake(target.addr, 0xfeed, false).expect("feeder handshake");
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let headers_after = |from: usize| {
        let mut l = HeaderList::default();
        for b in chain.iter().skip(from).take(2_000) {
            l.push_raw(b.1);
        }
        frame(&Message::Headers(l))
    };
    s.write_all(&headers_after(0)).unwrap();
    let tip = chain.last().unwrap().0;
    let mut buf = vec![0u8; 1 << 20];
    let mut asked = Instant::now();
    let mut done = false;
    while !done {
        assert!(started.elapsed() < Duration::from_secs(180), "{} did not take the fixture chain", target.name);
        let mut out = Vec::new();
        let read = read_some(&mut s, &mut split, &mut buf, |f| match f.header.command {
            Command::Block => {
                done |= f.payload.len() >= 80 && block_hash(f.payload[..80].try_into().unwrap()).to_byte_array() == tip
            }
            _ => match Message::decode(f.header.command, &f.payload) {
                Ok(Some(Message::GetData(list))) => {
                    for e in list.iter() {
                        if let Some(b) = chain.iter().find(|b| b.0 == e.hash) {
                            out.extend(raw_frame(b"block", &b.2));
                        }
                    }
                }
                Ok(Some(Message::GetHeaders(loc))) => {
                    let from = loc
                        .hashes
                        .iter()
                        .find_map(|h| chain.iter().position(|b| &b.0 == h.as_byte_array()).map(|i| i + 1))
                        .unwrap_or(0);
                    out.extend(headers_after(from));
                }
                Ok(Some(Message::Ping(n))) => out.extend(frame(&Message::Pong(n))),
                _ => {}
            },
        });
        assert!(read.is_some(), "{} dropped the feeder", target.name);
        if asked.elapsed() > Duration::from_millis(500) {
            let mut l = InvList::with_capacity(1);
            l.push(InvType::WITNESS_BLOCK, tip);
            out.extend(frame(&Message::GetData(l)));
            asked = Instant::now();
        }
        s.write_all(&out).unwrap();
    }
    println!("  ({} took the 2,100 fixture blocks in {:.1} s)", target.name, started.elapsed().as_secs_f64());
}

/// getdata for every fixture block (witness serialization), 2,100 entries.
fn getdata_all_blocks() -> &'static [u8] {
    static F: OnceLock<Vec<u8>> = OnceLock::new();
    F.get_or_init(|| {
        let mut l = InvList::with_capacity(2_100);
        for b in fixture_chain() {
            l.push(InvType::WITNESS_BLOCK, b.0);
        }
        frame(&Message::GetData(l))
    })
}

/// Counters the flooders share.
#[derive(Default)]
struct Tally {
    /// Bytes the target took.
    took: AtomicU64,
    /// Connections that completed the handshake.
    conns: AtomicU64,
}

/// Writes `bytes` until done, `stop`, or the connection fails (false).
fn push(s: &mut TcpStream, bytes: &[u8], stop: &AtomicBool, tally: &Tally) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() && !stop.load(Ordering::Relaxed) {
        match s.write(rest) {
            Ok(0) => return false,
            Ok(n) => {
                tally.took.fetch_add(n as u64, Ordering::Relaxed);
                rest = &rest[n..];
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads and drops whatever the target sends on `s` until `stop` or the socket ends, on its own
/// thread: a flooder that wrote without reading would stall on the target's send window.
fn drain_in_background(s: &TcpStream, stop: &Arc<AtomicBool>) {
    let mut reader = s.try_clone().unwrap();
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while !stop.load(Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return,
                _ => {}
            }
        }
    });
}

/// One flooder until `stop`: connects (again whenever the target drops it) and attacks.
fn flooder(addr: SocketAddr, f: usize, attack: Attack, gen: Option<Gen>, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    match (attack, gen) {
        (Attack::Frames { addrv2, .. }, Some(mut gen)) => {
            while !stop.load(Ordering::Relaxed) {
                let Some((mut s, _)) = handshake(addr, 0x1000 + f as u64, addrv2) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                tally.conns.fetch_add(1, Ordering::Relaxed);
                drain_in_background(&s, &stop);
                s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
                while !stop.load(Ordering::Relaxed) && push(&mut s, &gen(), &stop, &tally) {}
            }
        }
        (Attack::Frames { .. }, None) => unreachable!("frames without a generator"),
        (Attack::NeverReads, _) => {
            while !stop.load(Ordering::Relaxed) {
                let Some((mut s, _)) = handshake(addr, 0x1000 + f as u64, false) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                tally.conns.fetch_add(1, Ordering::Relaxed);
                s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
                while !stop.load(Ordering::Relaxed) && push(&mut s, getdata_all_blocks(), &stop, &tally) {}
            }
        }
        (Attack::V2Decoys, _) => {
            while !stop.load(Ordering::Relaxed) {
                let Some((mut s, mut cipher)) = v2_handshake(addr, 0x3000 + f as u64) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                tally.conns.fetch_add(1, Ordering::Relaxed);
                drain_in_background(&s, &stop);
                s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
                loop {
                    let mut decoy = vec![0u8; 3];
                    decoy.push(0x80);
                    decoy.resize(4 + 1_000_000, 0);
                    cipher.seal(&mut decoy, &[]);
                    if stop.load(Ordering::Relaxed) || !push(&mut s, &decoy, &stop, &tally) {
                        break;
                    }
                }
            }
        }
        (Attack::Churn, _) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + ((f * 31 + k) % 250) as u8));
                let stream = rt.block_on(async {
                    let sock = tokio::net::TcpSocket::new_v4().ok()?;
                    sock.bind(SocketAddr::new(local, 0)).ok()?;
                    let s = tokio::time::timeout(Duration::from_secs(2), sock.connect(addr)).await.ok()?.ok()?;
                    s.into_std().ok()
                });
                let Some(stream) = stream else { continue };
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                let nonce = 0x2000_0000 + (f * 1_000_000 + k) as u64;
                if let Some((s, _)) = handshake_on(stream, nonce, false) {
                    tally.conns.fetch_add(1, Ordering::Relaxed);
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn run(target: Target, flood: &Flood, seconds: u64) -> String {
    if matches!(flood.attack, Attack::NeverReads) {
        load_chain(&target);
    }
    // Generators are made before the honest peer starts: what they precompute does not compete with the target.
    let mut gens: Vec<Option<Gen>> = (0..FLOODERS)
        .map(|f| match flood.attack {
            Attack::Frames { make, .. } => Some(make(f)),
            _ => None,
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let honest_thread = {
        let stop = stop.clone();
        let addr = target.addr;
        std::thread::spawn(move || honest(addr, stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    let ticks_before = target.tick_histogram();
    let cpu_before = target.cpu_s();
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|f| {
            let (stop, tally, addr, attack, gen) =
                (stop.clone(), tally.clone(), target.addr, flood.attack, gens[f].take());
            std::thread::spawn(move || flooder(addr, f, attack, gen, stop, tally))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = target.cpu_s() - cpu_before;
    let (anon, file) = target.rss_split_mib();
    let mut tick_detail = String::new();
    let tick_p99 = match (ticks_before, target.tick_histogram()) {
        (Some(b), Some(a)) => {
            let mut below = 0;
            for &(le, c) in &a {
                let n = c - b.iter().find(|x| x.0 == le).map_or(0, |x| x.1);
                tick_detail.push_str(&format!(" ≤{}ms:{}", le * 1000.0, n - below));
                below = n;
            }
            tick_p99_ms(&b, &a).map_or("?".to_string(), |ms| format!("≤ {ms}"))
        }
        _ => "–".to_string(),
    };
    stop.store(true, Ordering::Relaxed);
    for t in flooders {
        let _ = t.join();
    }
    let (mut rtts, lost) = honest_thread.join().unwrap();
    rtts.sort_by(|a, b| a.total_cmp(b));
    let row = format!(
        "| {} | {} | {:.0} | {} | {:.0} | {:.1} | {:.1} / {:.1} / {:.1} ({} pings{}) | {} |",
        flood.name,
        target.name,
        tally.took.load(Ordering::Relaxed) as f64 / 1e6,
        tally.conns.load(Ordering::Relaxed),
        target.peak_rss_mib(),
        cpu,
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99),
        rtts.last().copied().unwrap_or(f64::NAN),
        rtts.len(),
        if lost { ", honest peer dropped" } else { "" },
        tick_p99,
    );
    println!("{row}");
    // The chains from genesis: how far the target took them (one chain per flooder).
    let headers = match flood.name.contains("from genesis").then(|| target.best_header_height()).flatten() {
        Some(h) => format!("; best header height {h}: about {} headers taken", h * FLOODERS as u64),
        None => String::new(),
    };
    println!(
        "  ({} at the flood's end: RssAnon {anon:.0} MiB, RssFile {file:.0} MiB{headers}{})",
        target.name,
        if tick_detail.is_empty() { String::new() } else { format!("; ticks{tick_detail}") }
    );
    row
}

fn main() {
    let seconds: u64 = std::env::var("FLOOD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let only = std::env::var("FLOODS").ok();
    let targets: Vec<String> =
        std::env::var("FLOOD_TARGETS").unwrap_or("oni,bitcoind".into()).split(',').map(str::to_string).collect();
    if pin() {
        // Every thread the bench starts inherits this.
        let ok = Process::new("taskset")
            .args(["-p", "-c", "0", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "taskset failed (FLOOD_PIN=0 runs unpinned)");
    }
    let frames = |make: fn(usize) -> Gen| Attack::Frames { make, addrv2: false };
    let floods = [
        Flood { name: "3.9 MB txs (tx-size)", attack: frames(|f| numbered(f, big_tx)), min_work: false },
        Flood { name: "small non-standard txs", attack: frames(|f| numbered(f, small_txs)), min_work: false },
        Flood { name: "4 MB unknown-command frames", attack: frames(|f| numbered(f, junk)), min_work: false },
        Flood { name: "inv(50,000) storm", attack: frames(|f| numbered(f, inv_storm)), min_work: false },
        Flood { name: "unconnecting headers(2,000)", attack: frames(unconnecting_headers), min_work: false },
        Flood {
            name: "headers(2,000) chains from genesis, no minimum work",
            attack: frames(genesis_headers),
            min_work: false,
        },
        Flood { name: "low-work headers(2,000) chains from genesis", attack: frames(genesis_headers), min_work: true },
        Flood { name: "addr(1,000) routable", attack: frames(addr_flood), min_work: false },
        Flood {
            name: "addrv2(1,000) routable",
            attack: Attack::Frames { make: addrv2_flood, addrv2: true },
            min_work: false,
        },
        Flood { name: "block requester that never reads", attack: Attack::NeverReads, min_work: false },
        Flood { name: "connect churn from 127.0.0.2-251", attack: Attack::Churn, min_work: false },
        Flood { name: "v2 decoys (1 MB each)", attack: Attack::V2Decoys, min_work: false },
    ];
    let pinning = if pin() { "target on CPU 1, bench on CPU 0" } else { "unpinned" };
    println!("{FLOODERS} flooders, {seconds} s each, honest ping every 100 ms, {pinning}");
    println!(
        "| flood | target | MB the flooders got in | flooder connections | peak RSS MiB | target CPU s | honest ping p50 / p99 / max ms | tick p99 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---|---|");
    for flood in &floods {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|n| flood.name.starts_with(n))) {
            continue;
        }
        if targets.iter().any(|t| t == "oni") {
            run(Target::oni(flood.min_work), flood, seconds);
        }
        if targets.iter().any(|t| t == "bitcoind") {
            run(Target::core(flood.min_work), flood, seconds);
        }
    }
}
