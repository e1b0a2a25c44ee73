//! The `oni` binary: two node processes connect; operator mistakes end with exit code 2 and a clear
//! message; Ctrl-C closes every socket without sending anything and exits 0.

mod common;

use common::OniProcess;
use std::io::Read;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn datadir(tmp: &tempfile::TempDir, name: &str) -> String {
    tmp.path().join(name).to_str().unwrap().to_string()
}

#[test]
fn two_node_processes_connect_and_both_log_peer_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = datadir(&tmp, "a");
    let mut a = OniProcess::spawn(&["node", "--network", "regtest", "--datadir", &a_dir, "--listen", "127.0.0.1:0"]);
    let port = a.listening_port();
    let target = format!("127.0.0.1:{port}");
    let b_dir = datadir(&tmp, "b");
    let mut b =
        OniProcess::spawn(&["node", "--network", "regtest", "--datadir", &b_dir, "--nolisten", "--connect", &target]);

    let b_ready = b.wait_for_line("peer ready", 10 * SECOND);
    let a_ready = a.wait_for_line("peer ready", 10 * SECOND);
    assert!(b_ready.as_deref().is_some_and(|l| l.contains("manual")), "b saw {:?}", b.seen);
    assert!(a_ready.as_deref().is_some_and(|l| l.contains("inbound")), "a saw {:?}", a.seen);
    assert!(std::path::Path::new(&a_dir).is_dir() && std::path::Path::new(&b_dir).is_dir(), "datadirs created");
}

#[test]
fn unparsable_address_exits_2_with_a_clear_message() {
    let mut p = OniProcess::spawn(&["node", "--network", "regtest", "--connect", "1.2.3"]);
    assert_eq!(p.wait_exit(5 * SECOND), Some(Some(2)));
    let err = p.drain(SECOND);
    assert!(err.contains("'1.2.3' is not an IP address"), "{err}");
}

#[test]
fn unknown_network_exits_2() {
    let mut p = OniProcess::spawn(&["node", "--network", "moon"]);
    assert_eq!(p.wait_exit(5 * SECOND), Some(Some(2)));
    assert!(p.drain(SECOND).contains("invalid value 'moon'"));
}

#[test]
fn port_in_use_exits_2_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = datadir(&tmp, "d");
    let mut p = OniProcess::spawn(&["node", "--network", "regtest", "--datadir", &dir, "--listen", &addr]);
    assert_eq!(p.wait_exit(5 * SECOND), Some(Some(2)));
    let err = p.drain(SECOND);
    assert!(err.contains(&format!("cannot listen on {addr}: address already in use")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unwritable_datadir_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dir = file.join("datadir");
    let dir = dir.to_str().unwrap();
    let mut p = OniProcess::spawn(&["node", "--network", "regtest", "--datadir", dir, "--listen", "127.0.0.1:0"]);
    assert_eq!(p.wait_exit(5 * SECOND), Some(Some(2)));
    let err = p.drain(SECOND);
    assert!(err.contains(&format!("cannot use datadir {dir}")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn ctrl_c_closes_sockets_without_sending_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = datadir(&tmp, "d");
    let mut p = OniProcess::spawn(&["node", "--network", "regtest", "--datadir", &dir, "--listen", "127.0.0.1:0"]);
    let port = p.listening_port();
    // An inbound peer that has not sent its version: the node owes it nothing yet.
    let mut peer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    peer.set_read_timeout(Some(5 * SECOND)).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    p.interrupt();
    assert_eq!(p.wait_exit(5 * SECOND), Some(Some(0)), "{:?}", p.seen);
    let mut got = Vec::new();
    let r = peer.read_to_end(&mut got);
    assert!(r.is_ok() && got.is_empty(), "the socket is closed with nothing sent: {r:?} {got:?}");
    assert!(p.drain(SECOND).contains("shutting down"));
}

#[test]
fn invalid_log_filter_exits_2() {
    let mut p = OniProcess::spawn(&["node", "--network", "regtest", "--log-level", "oni=loudest"]);
    assert_eq!(p.wait_exit(5 * SECOND), Some(Some(2)));
    assert!(p.drain(SECOND).contains("invalid --log-level 'oni=loudest'"));
}

#[test]
fn bad_pool_flags_exit_2_with_a_clear_message() {
    for (flag, value, says) in [
        ("--maxmempool", "4", "--maxmempool must be at least 5 MB"),
        ("--maxmempool", "lots", "'lots' is not a whole number of MB"),
        ("--minrelaytxfee", "cheap", "Invalid amount for --minrelaytxfee=<amount>: 'cheap'"),
        ("--minrelaytxfee", "2", "is 1 BTC/kvB or more"),
    ] {
        let mut p = OniProcess::spawn(&["node", "--network", "regtest", flag, value]);
        assert_eq!(p.wait_exit(5 * SECOND), Some(Some(2)), "{flag} {value}");
        let err = p.drain(SECOND);
        assert!(err.contains(says), "{flag} {value}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_bitcoin_conf_starts_the_node_on_its_settings_and_a_bad_one_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = datadir(&tmp, "n");
    let conf = tmp.path().join("bitcoin.conf");
    std::fs::write(&conf, "# from Core\nregtest=1\ntxindex=1\n[regtest]\nbind=127.0.0.1:0\nserver=0\n").unwrap();
    let conf_s = conf.to_str().unwrap();
    let mut p = OniProcess::spawn(&["node", "--conf", conf_s, "--datadir", &dir]);
    let line = p.wait_for_line("listening on", 10 * SECOND);
    assert!(line.as_deref().is_some_and(|l| l.contains("regtest") && l.contains("127.0.0.1:")), "{:?}", p.seen);
    assert!(p.seen.iter().any(|l| l.contains("txindex are not oni settings")), "{:?}", p.seen);
    assert!(p.wait_for_line("RPC listening", 2 * SECOND).is_none(), "server=0: no RPC: {:?}", p.seen);
    drop(p);
    std::fs::write(&conf, "regtest=1\nmaxmempool\n").unwrap();
    let mut bad = OniProcess::spawn(&["node", "--conf", conf_s, "--datadir", &dir]);
    assert_eq!(bad.wait_exit(5 * SECOND), Some(Some(2)));
    let err = bad.drain(SECOND);
    assert!(err.contains("line 2: expected key=value"), "{err}");
}

#[test]
fn chaingen_writes_the_blocks_it_counts_and_refuses_a_path_it_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("heavy.hex");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_oni"))
        .args(["chaingen", "--blocks", "120", "--block-bytes", "5000", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let said = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(said.starts_with("120 blocks, "), "{said}");
    let text = std::fs::read_to_string(&out).unwrap();
    let blocks: Vec<bitcoin::Block> =
        text.lines().map(|l| bitcoin::consensus::encode::deserialize_hex(l).unwrap()).collect();
    assert_eq!(blocks.len(), 120);
    assert!(blocks.windows(2).all(|w| w[1].header.prev_blockhash == w[0].block_hash()), "one chain, in order");
    let bytes: usize = blocks.iter().map(|b| bitcoin::consensus::serialize(b).len()).sum();
    assert!(said.contains(&format!(" {bytes} bytes")), "the size it states is the file's: {said}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_oni"))
        .args(["chaingen", "--blocks", "1", "--out", tmp.path().join("no/such/dir/x.hex").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot create"));
}
