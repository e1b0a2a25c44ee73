//! Live floods, oni next to Bitcoin Core in the same run: each target (the `oni` binary, then a
//! `bitcoind`) is started fresh on regtest, an honest peer pings it every 100 ms, and 8 flooders
//! push one kind of abuse for a while. Reported per row: what the flooders got the target to read,
//! the target's peak RSS (VmHWM), and the honest peer's ping p50/p99/max. A table, not a timed
//! test: `cargo bench --bench flood` (bitcoind from `BITCOIND_EXE` or `../shared/bin`).
//! `FLOOD_SECONDS` (default 15) and `FLOODS` (comma-separated names) narrow a run.

use bitcoin::hashes::Hash;
use oni_systems::harness::TestNode;
use oni_systems::wire::{checksum, Command, FrameHeader, FrameSplitter, InvList, InvType, Message, Network};
use oni_systems::wire::{RawFrame, HEADER_LEN};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NET: Network = Network::Regtest;
const FLOODERS: usize = 8;

/// A node under test, in its own process.
struct Target {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Target {
    fn oni() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Process::new(env!("CARGO_BIN_EXE_oni"))
            .args(["node", "--network", "regtest", "--norpc", "--max-tip-age", "4000000000", "--datadir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Target::ready("oni", child, port, dir)
    }

    fn core() -> Target {
        let exe = std::env::var_os("BITCOIND_EXE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bin/bitcoind")));
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let rpc = free_port();
        let child = Process::new(exe)
            .arg("-regtest")
            .arg(format!("-datadir={}", dir.path().display()))
            .arg(format!("-port={port}"))
            .arg(format!("-rpcport={rpc}"))
            .args(["-listen=1", "-bind=127.0.0.1", "-listenonion=0", "-dnsseed=0", "-fixedseeds=0"])
            .args(["-maxtipage=4000000000", "-printtoconsole=0", "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Target::ready("bitcoind", child, port, dir)
    }

    fn ready(name: &'static str, child: Child, port: u16, dir: tempfile::TempDir) -> Target {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "{name} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the probe connection's disconnect settle.
        std::thread::sleep(Duration::from_millis(300));
        Target { name, child, addr, _dir: dir }
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
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        Err(_) => return Some(()),
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

/// Connects and completes the handshake (reading until the target's verack).
fn handshake(addr: SocketAddr, nonce: u64) -> Option<(TcpStream, FrameSplitter)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    s.write_all(&frame(&TestNode::peer_version(nonce))).ok()?;
    s.write_all(&frame(&Message::WtxidRelay)).ok()?;
    s.write_all(&frame(&Message::Verack)).ok()?;
    let mut split = FrameSplitter::new(NET);
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut ready = false;
    while !ready && start.elapsed() < Duration::from_secs(10) {
        read_some(&mut s, &mut split, &mut buf, |f| ready |= f.header.command == Command::Verack)?;
    }
    ready.then_some((s, split))
}

/// The honest peer: a ping every 100 ms, round trips in ms (a lost pong counts as the run's end).
fn honest(addr: SocketAddr, stop: Arc<AtomicBool>) -> (Vec<f64>, bool) {
    let Some((mut s, mut split)) = handshake(addr, 0x4040) else { return (vec![], true) };
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
        if got {
            rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        nonce += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    (rtts, false)
}

/// One flood: a name and a maker of the i-th frame for flooder `f`.
struct Flood {
    name: &'static str,
    make: fn(f: usize, i: u64) -> Vec<u8>,
}

/// A 3.9 MB transaction (24,000 inputs, a 2.9 MB witness item): shaped like a valid one, refused
/// by policy as `tx-size`. Each (flooder, i) gets its own locktime, so its own txid and wtxid.
fn big_tx(f: usize, i: u64) -> Vec<u8> {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
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
    static J: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
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

/// Pushes `make`'s frames until `stop`; counts the bytes the target took. Reads are drained.
fn flooder(addr: SocketAddr, f: usize, make: fn(usize, u64) -> Vec<u8>, stop: Arc<AtomicBool>, took: Arc<AtomicU64>) {
    let Some((mut s, _)) = handshake(addr, 0x1000 + f as u64) else { return };
    let mut reader = s.try_clone().unwrap();
    let stop_r = stop.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while !stop_r.load(Ordering::Relaxed) {
            if matches!(reader.read(&mut buf), Ok(0)) {
                return;
            }
        }
    });
    s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let bytes = make(f, i);
        i += 1;
        let mut rest = &bytes[..];
        while !rest.is_empty() && !stop.load(Ordering::Relaxed) {
            match s.write(rest) {
                Ok(0) => return,
                Ok(n) => {
                    took.fetch_add(n as u64, Ordering::Relaxed);
                    rest = &rest[n..];
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
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
    let stop = Arc::new(AtomicBool::new(false));
    let took = Arc::new(AtomicU64::new(0));
    let honest_thread = {
        let stop = stop.clone();
        let addr = target.addr;
        std::thread::spawn(move || honest(addr, stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|f| {
            let (stop, took, addr, make) = (stop.clone(), took.clone(), target.addr, flood.make);
            std::thread::spawn(move || flooder(addr, f, make, stop, took))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in flooders {
        let _ = t.join();
    }
    let (mut rtts, lost) = honest_thread.join().unwrap();
    rtts.sort_by(|a, b| a.total_cmp(b));
    let row = format!(
        "| {} | {} | {:.0} | {:.0} | {:.1} / {:.1} / {:.1} ({} pings{}) |",
        flood.name,
        target.name,
        took.load(Ordering::Relaxed) as f64 / 1e6,
        target.peak_rss_mib(),
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99),
        rtts.last().copied().unwrap_or(f64::NAN),
        rtts.len(),
        if lost { ", honest peer dropped" } else { "" }
    );
    println!("{row}");
    row
}

fn main() {
    let seconds: u64 = std::env::var("FLOOD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let only = std::env::var("FLOODS").ok();
    let floods = [
        Flood { name: "3.9 MB txs (tx-size)", make: big_tx },
        Flood { name: "small non-standard txs", make: small_txs },
        Flood { name: "4 MB unknown-command frames", make: junk },
        Flood { name: "inv(50,000) storm", make: inv_storm },
    ];
    println!("{FLOODERS} flooders, {seconds} s each, honest ping every 100 ms");
    println!("| flood | target | MB the flooders got in | peak RSS MiB | honest ping p50 / p99 / max ms |");
    println!("|---|---|---:|---:|---|");
    for flood in &floods {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|n| flood.name.starts_with(n))) {
            continue;
        }
        run(Target::oni(), flood, seconds);
        run(Target::core(), flood, seconds);
    }
}
