//! A real Bitcoin Core on regtest for interop tests: found like rust-bitcoin's tooling finds it
//! (`BITCOIND_EXE`, then `../shared/bin/bitcoind`, then PATH), started on free loopback ports in a
//! temp datadir, queried with `bitcoin-cli`, killed on drop.

use super::proc::{find_exe, free_port, repo_root, require, wait_for, Proc, WAIT};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The two Core executables.
#[derive(Clone, Debug)]
pub struct CoreExes {
    /// bitcoind.
    pub bitcoind: PathBuf,
    /// bitcoin-cli.
    pub cli: PathBuf,
}

impl CoreExes {
    /// Finds both, or skips loudly (panics in CI).
    pub fn find() -> Option<CoreExes> {
        let shared = repo_root().join("../shared/bin");
        let how = "set BITCOIND_EXE / BITCOIN_CLI_EXE or provide ../shared/bin";
        let bitcoind = require(find_exe("BITCOIND_EXE", &shared.join("bitcoind"), "bitcoind"), "bitcoind", how)?;
        // bitcoin-cli usually sits next to bitcoind.
        let beside = bitcoind.with_file_name("bitcoin-cli");
        let cli = if std::env::var_os("BITCOIN_CLI_EXE").is_none() && beside.is_file() {
            Some(beside)
        } else {
            find_exe("BITCOIN_CLI_EXE", &shared.join("bitcoin-cli"), "bitcoin-cli")
        };
        let cli = require(cli, "bitcoin-cli", how)?;
        Some(CoreExes { bitcoind, cli })
    }

    /// `bitcoin-cli getblockcount` against an oni process (Core's own client, oni's cookie).
    pub fn oni_block_count(&self, datadir: &std::path::Path, rpc_port: u16) -> Option<u64> {
        let out = Command::new(&self.cli)
            .arg("-regtest")
            .arg(format!("-datadir={}", datadir.display()))
            .arg(format!("-rpcport={rpc_port}"))
            .arg("getblockcount")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

/// A running bitcoind on regtest.
pub struct Bitcoind {
    /// The process (killed on drop).
    pub proc: Proc,
    /// Its P2P port on 127.0.0.1.
    pub p2p_port: u16,
    /// Its RPC port on 127.0.0.1.
    pub rpc_port: u16,
    cli: PathBuf,
    /// Its datadir (removed on drop, after the process is killed).
    pub dir: tempfile::TempDir,
}

impl Bitcoind {
    /// Starts bitcoind with the flags from shared/bin/README.md plus `extra`, and waits for its RPC.
    pub fn start(exes: &CoreExes, extra: &[String]) -> Bitcoind {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let p2p_port = free_port();
            // Core binds an onion listener on port+1 unless -listenonion=0: keep the RPC port apart anyway.
            let rpc_port = std::iter::repeat_with(free_port).find(|r| r.abs_diff(p2p_port) >= 2).unwrap();
            let mut cmd = Command::new(&exes.bitcoind);
            cmd.arg("-regtest")
                .arg(format!("-datadir={}", dir.path().display()))
                .arg(format!("-port={p2p_port}"))
                .arg(format!("-rpcport={rpc_port}"))
                .args(["-listenonion=0", "-dnsseed=0", "-fixedseeds=0", "-listen=1", "-bind=127.0.0.1"])
                .args(["-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1", "-debug=net", "-printtoconsole=1"])
                .args(extra);
            let proc = Proc::spawn("bitcoind", cmd, dir.path().join("bitcoind.log"));
            let mut node = Bitcoind { proc, p2p_port, rpc_port, cli: exes.cli.clone(), dir };
            let ready = wait_for(WAIT, || {
                if node.cli(&["getnetworkinfo"]).is_ok() {
                    return Some(true);
                }
                (!node.proc.running()).then_some(false)
            });
            match ready {
                Some(true) => return node,
                Some(false) => last = node.proc.output(),
                None => panic!("bitcoind RPC not ready within {WAIT:?}; its output:\n{}", node.proc.output()),
            }
        }
        panic!("bitcoind failed to start three times; last output:\n{last}");
    }

    /// Runs `bitcoin-cli` against this node: stdout on success, stderr on failure.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.cli)
            .arg("-regtest")
            .arg(format!("-datadir={}", self.dir.path().display()))
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg("-rpcclienttimeout=30")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `getpeerinfo`, parsed.
    pub fn peers(&self) -> Vec<Value> {
        let text = self.cli(&["getpeerinfo"]).unwrap_or_else(|e| panic!("getpeerinfo failed: {e}"));
        match serde_json::from_str(&text) {
            Ok(Value::Array(peers)) => peers,
            other => panic!("getpeerinfo did not return an array: {other:?}"),
        }
    }

    /// The peer with this `id`, if Core still lists it.
    pub fn peer(&self, id: u64) -> Option<Value> {
        self.peers().into_iter().find(|p| p["id"].as_u64() == Some(id))
    }
}

/// Lines of a file of ../shared/fixtures/regtest-core (hex blocks or transactions).
pub fn fixture(name: &str) -> Vec<String> {
    let path = super::proc::repo_root().join("../shared/fixtures/regtest-core").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The fixture's meta.json.
pub fn meta() -> Value {
    let path = super::proc::repo_root().join("../shared/fixtures/regtest-core/meta.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Core with the fixture chain (loaded by `submitblock`), out of IBD whatever the fixture's age.
pub fn core_with_chain(exes: &CoreExes) -> Bitcoind {
    let core = Bitcoind::start(exes, &["-maxtipage=4000000000".to_string()]);
    for (i, hex) in fixture("chain.hex").iter().enumerate() {
        let r = core.cli(&["submitblock", hex]).unwrap_or_else(|e| panic!("submitblock {}: {e}", i + 1));
        assert!(r.trim().is_empty(), "block {} refused by Core: {r}", i + 1);
    }
    assert_eq!(core.cli(&["getblockcount"]).unwrap().trim(), "2100");
    core
}
