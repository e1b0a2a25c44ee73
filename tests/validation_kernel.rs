//! Bitcoin Core's engine (libbitcoinkernel) behind the validation worker, on the regtest fixture
//! chain made by Core: tip, chainwork and UTXO set as meta.json says, a broken signature rejected,
//! the reorg to the heavier fork, restart, and kill -9 mid-sync.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Block, BlockHash, Witness};
use oni::validation::fixture::{chainwork_bytes, Fixture, FixtureBlock};
use oni::validation::{
    BlockValidator, KernelConfig, KernelValidator, RejectReason, SubmitError, ValidationEvent, ValidationWorker,
    WorkerConfig,
};
use oni_systems::wire::Network;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap())
}

fn kernel_config(datadir: &Path) -> KernelConfig {
    KernelConfig::new(Network::Regtest, datadir)
}

fn spawn(datadir: &Path, config: WorkerConfig) -> ValidationWorker<KernelValidator> {
    let kernel = kernel_config(datadir);
    ValidationWorker::spawn(config, move || KernelValidator::open(kernel)).unwrap()
}

fn is_verdict_for(event: &ValidationEvent, hash: BlockHash) -> bool {
    match event {
        ValidationEvent::Connected { hash: h, .. }
        | ValidationEvent::Stored { hash: h }
        | ValidationEvent::AlreadyKnown { hash: h }
        | ValidationEvent::Rejected { hash: h, .. } => *h == hash,
        _ => false,
    }
}

/// Submit blocks as the scheduler would (backing off while the queue is full), then wait for the
/// last one's verdict. Returns every event seen, in order.
fn feed(worker: &ValidationWorker<KernelValidator>, blocks: &[(BlockHash, Vec<u8>)]) -> Vec<ValidationEvent> {
    let mut seen = Vec::new();
    for (hash, raw) in blocks {
        let mut raw = raw.clone();
        loop {
            match worker.try_submit(*hash, raw) {
                Ok(()) => break,
                Err(SubmitError::Full { raw: back }) => {
                    raw = back;
                    seen.push(worker.events().recv_timeout(WAIT).unwrap());
                }
                Err(SubmitError::Closed { .. }) => panic!("worker closed"),
            }
        }
    }
    let Some((last, _)) = blocks.last() else { return seen };
    while !seen.iter().any(|e| is_verdict_for(e, *last)) {
        seen.push(worker.events().recv_timeout(WAIT).unwrap());
    }
    seen
}

fn pairs(blocks: &[FixtureBlock]) -> Vec<(BlockHash, Vec<u8>)> {
    blocks.iter().map(|b| (b.hash, b.raw.clone())).collect()
}

fn chain_moves(events: &[ValidationEvent]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match e {
            ValidationEvent::Disconnected { height, .. } => Some(-(*height as i64)),
            ValidationEvent::Connected { height, .. } => Some(*height as i64),
            _ => None,
        })
        .collect()
}

/// UTXO count and total at the tip, from the blocks the kernel stored and their undo data
/// (the kernel API has no coin iteration): every spendable output created, minus every one spent.
/// Also the chain's transaction count, which like Core's `nChainTx` includes genesis's coinbase
/// (genesis's output itself is not spendable, so it is not in the UTXO set).
fn utxo_from_blocks_and_undo(kernel: &KernelValidator) -> (u64, u64, u64) {
    let genesis = kernel.block_hash_at(0).unwrap();
    let genesis: Block = deserialize(&kernel.read_block(&genesis).unwrap()).unwrap();
    let (mut count, mut total, mut txs) = (0i64, 0i64, genesis.txdata.len() as u64);
    for height in 1..=kernel.tip().height {
        let hash = kernel.block_hash_at(height).unwrap();
        let block: Block = deserialize(&kernel.read_block(&hash).unwrap()).unwrap();
        let undo = kernel.spent_outputs(&hash).unwrap();
        txs += block.txdata.len() as u64;
        assert_eq!(undo.len(), block.txdata.len() - 1, "undo data has one entry per non-coinbase tx");
        for (tx, spent) in block.txdata.iter().skip(1).zip(&undo) {
            assert_eq!(spent.len(), tx.input.len(), "one spent coin per input");
            count -= spent.len() as i64;
            total -= spent.iter().map(|c| c.value_sat).sum::<i64>();
        }
        for out in block.txdata.iter().flat_map(|tx| &tx.output) {
            if !out.script_pubkey.is_op_return() && out.script_pubkey.len() <= 10_000 {
                count += 1;
                total += out.value.to_sat() as i64;
            }
        }
    }
    (count as u64, total as u64, txs)
}

#[test]
fn kernel_validates_the_fixture_chain_to_meta_json_figures() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn(dir.path(), WorkerConfig::default());
    let events = feed(&worker, &pairs(&f.chain));
    assert_eq!(chain_moves(&events), (1..=2100).collect::<Vec<i64>>());
    assert!(events.iter().all(|e| matches!(e, ValidationEvent::Connected { .. } | ValidationEvent::Durable { .. })));
    for (event, block) in events.iter().filter(|e| matches!(e, ValidationEvent::Connected { .. })).zip(&f.chain) {
        assert_eq!(event.hash(), Some(block.hash));
    }
    let tip = worker.tip();
    assert_eq!((tip.height, tip.hash), (f.meta.height, f.meta.tip_hash().unwrap()));
    assert_eq!(tip.chainwork.to_be_bytes(), chainwork_bytes(&f.meta.chainwork).unwrap());

    // Serving: the stored block comes back byte for byte; headers know their place.
    let served = worker.read_block(f.chain[1234].hash).recv_timeout(WAIT).unwrap();
    assert_eq!(served.as_deref(), Some(&f.chain[1234].raw[..]));
    let info = worker.header_for(f.chain[1234].hash).recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!((info.height, info.in_active_chain, info.header.block_hash()), (1235, true, f.chain[1234].hash));
    assert_eq!(worker.read_block(BlockHash::from_byte_array([7; 32])).recv_timeout(WAIT).unwrap(), None);

    let kernel = worker.shutdown().unwrap();
    let (count, total, txs) = utxo_from_blocks_and_undo(&kernel);
    assert_eq!(txs, f.meta.txcount);
    assert_eq!(count, f.meta.utxo_txouts);
    assert_eq!(total, f.meta.utxo_total_sat().unwrap());
}

use bitcoin::hashes::Hash;

/// Flip one bit in the first signature of the first non-coinbase transaction, then repair every
/// commitment (witness commitment, merkle root) and regrind the nonce, so the block is well formed
/// and only its script check can fail.
fn break_a_signature(raw: &[u8]) -> Option<Block> {
    let mut block: Block = deserialize(raw).unwrap();
    let tx = block.txdata.iter_mut().skip(1).find(|tx| !tx.input.is_empty())?;
    let input = &mut tx.input[0];
    if input.witness.is_empty() {
        let mut script = input.script_sig.to_bytes();
        script[10] ^= 0x01; // inside the first push: the DER signature's r value
        input.script_sig = script.into();
    } else {
        let mut items = input.witness.to_vec();
        let sig = items.iter_mut().find(|i| !i.is_empty())?;
        let mid = sig.len() / 2;
        sig[mid] ^= 0x01;
        input.witness = Witness::from_slice(&items);
        let reserved = block.txdata[0].input[0].witness.nth(0)?.to_vec();
        let root = block.witness_root()?;
        let commitment = Block::compute_witness_commitment(&root, &reserved);
        let coinbase = &mut block.txdata[0];
        let out = coinbase
            .output
            .iter_mut()
            .rev()
            .find(|o| o.script_pubkey.as_bytes().starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]))?;
        let mut script = out.script_pubkey.to_bytes();
        script[6..38].copy_from_slice(commitment.as_byte_array());
        out.script_pubkey = script.into();
    }
    block.header.merkle_root = block.compute_merkle_root()?;
    while block.header.validate_pow(block.header.target()).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    Some(block)
}

#[test]
fn kernel_rejects_a_broken_signature_and_keeps_its_tip() {
    let f = fixture();
    let index = f.chain.iter().position(|b| deserialize::<Block>(&b.raw).unwrap().txdata.len() > 1).unwrap();
    let bad = break_a_signature(&f.chain[index].raw).unwrap();
    assert!(bad.check_merkle_root() && bad.check_witness_commitment(), "only the signature is wrong");
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn(dir.path(), WorkerConfig::default());
    feed(&worker, &pairs(&f.chain[..index]));
    let before = worker.tip();
    assert_eq!(before.height, index as u32);

    let events = feed(&worker, &[(bad.block_hash(), serialize(&bad))]);
    assert!(
        events.contains(&ValidationEvent::Rejected { hash: bad.block_hash(), reason: RejectReason::Consensus }),
        "{events:?}"
    );
    assert_eq!(chain_moves(&events), Vec::<i64>::new());
    assert_eq!(worker.tip(), before);

    // Sent again, it is refused from memory; the genuine block still connects.
    let events = feed(&worker, &[(bad.block_hash(), serialize(&bad))]);
    assert!(
        events.contains(&ValidationEvent::Rejected { hash: bad.block_hash(), reason: RejectReason::CachedInvalid }),
        "{events:?}"
    );
    let events = feed(&worker, &pairs(&f.chain[index..=index]));
    assert!(events.contains(&ValidationEvent::Connected { hash: f.chain[index].hash, height: index as u32 + 1 }));

    // Bytes that are not the block asked for, and bytes that are not a block.
    let events = feed(&worker, &[(f.chain[index + 5].hash, f.chain[index + 1].raw.clone())]);
    assert!(events
        .contains(&ValidationEvent::Rejected { hash: f.chain[index + 5].hash, reason: RejectReason::HashMismatch }));
    let events = feed(&worker, &[(f.chain[index + 1].hash, f.chain[index + 1].raw[..60].to_vec())]);
    assert!(events
        .contains(&ValidationEvent::Rejected { hash: f.chain[index + 1].hash, reason: RejectReason::Undecodable }));
    // A block whose parent the kernel has not seen.
    let events = feed(&worker, &pairs(&f.chain[index + 2..=index + 2]));
    assert!(
        events
            .contains(&ValidationEvent::Rejected { hash: f.chain[index + 2].hash, reason: RejectReason::MissingPrev }),
        "{events:?}"
    );
    assert_eq!(worker.tip().height, index as u32 + 1);
}

#[test]
fn kernel_reorgs_to_the_heavier_fork() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn(dir.path(), WorkerConfig::default());
    feed(&worker, &pairs(&f.chain));
    let events = feed(&worker, &pairs(&f.fork));
    let stored = events.iter().filter(|e| matches!(e, ValidationEvent::Stored { .. })).count();
    assert_eq!(stored, 6, "{events:?}");
    assert_eq!(
        chain_moves(&events),
        vec![-2100, -2099, -2098, -2097, -2096, -2095, 2095, 2096, 2097, 2098, 2099, 2100, 2101]
    );
    let tip = worker.tip();
    assert_eq!((tip.height, tip.hash), (f.meta.fork.tip_height, f.meta.fork_tip_hash().unwrap()));
    assert_eq!(tip.chainwork.to_be_bytes(), chainwork_bytes(&f.meta.fork.chainwork).unwrap());
    let old = worker.header_for(f.chain[2099].hash).recv_timeout(WAIT).unwrap().unwrap();
    assert!(!old.in_active_chain, "the old tip is off the active chain but still known");
    // Its data is still there to serve.
    assert!(worker.read_block(f.chain[2099].hash).recv_timeout(WAIT).unwrap().is_some());
}

#[test]
fn blocks_out_of_order_are_stored_with_the_headers_they_bring_and_connect_when_the_gap_fills() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn(dir.path(), WorkerConfig::default());
    let header = |i: usize| -> [u8; 80] { f.chain[i].raw[..80].try_into().unwrap() };
    let wait = |hash: BlockHash| loop {
        let e = worker.events().recv_timeout(Duration::from_secs(60)).unwrap();
        if is_verdict_for(&e, hash) {
            return e;
        }
    };
    // Blocks 2 and 6 (heights 3 and 7) arrive before the rest: each brings the headers between
    // the last block the kernel had and itself; block 6's stop at block 2, queued before it.
    let mut ahead = vec![header(0), header(1)];
    worker.try_submit_after(&mut ahead, f.chain[2].hash, f.chain[2].raw.clone()).unwrap();
    assert!(ahead.is_empty(), "taken with the block");
    let mut ahead = vec![header(3), header(4), header(5)];
    worker.try_submit_after(&mut ahead, f.chain[6].hash, f.chain[6].raw.clone()).unwrap();
    assert_eq!(wait(f.chain[2].hash), ValidationEvent::Stored { hash: f.chain[2].hash });
    assert_eq!(wait(f.chain[6].hash), ValidationEvent::Stored { hash: f.chain[6].hash }, "not refused for its parent");
    // Without the headers a block with an unknown parent is refused.
    worker.try_submit(f.chain[9].hash, f.chain[9].raw.clone()).unwrap();
    assert!(matches!(wait(f.chain[9].hash), ValidationEvent::Rejected { .. }));
    for i in [0, 1, 3, 4, 5] {
        worker.try_submit(f.chain[i].hash, f.chain[i].raw.clone()).unwrap();
    }
    assert_eq!(wait(f.chain[5].hash), ValidationEvent::Connected { hash: f.chain[5].hash, height: 6 });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while worker.tip().height < 7 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(worker.tip().hash, f.chain[6].hash, "block 7, stored early, connected once the gap filled");
}

#[test]
fn kernel_restart_resumes_from_the_last_connected_block() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn(dir.path(), WorkerConfig::default());
    feed(&worker, &pairs(&f.chain[..1000]));
    let before = worker.tip();
    assert_eq!(before.height, 1000);
    drop(worker.shutdown().unwrap());

    let worker = spawn(dir.path(), WorkerConfig::default());
    assert_eq!(worker.tip(), before, "height, hash and chainwork survive a restart");
    assert_eq!(worker.durable_tip(), before);
    let events = feed(&worker, &pairs(&f.chain[998..]));
    assert_eq!(
        &events[..2],
        &[
            ValidationEvent::AlreadyKnown { hash: f.chain[998].hash },
            ValidationEvent::AlreadyKnown { hash: f.chain[999].hash }
        ]
    );
    assert_eq!(worker.tip().hash, f.meta.tip_hash().unwrap());
    assert_eq!(worker.tip().chainwork.to_be_bytes(), chainwork_bytes(&f.meta.chainwork).unwrap());
}

const CHILD_DIR_ENV: &str = "ONI_TEST_KILL9_CHILD_DIR";
const KILL_AFTER_REPORTED: usize = 600;

/// Child side of the kill -9 test: sync the fixture with reports held until durable, print each
/// `Connected` as it is reported, and never exit on its own (the parent kills it).
fn kill9_child(dir: &Path) -> ! {
    let config = WorkerConfig {
        checkpoint_blocks: 150,
        checkpoint_interval_ms: 250,
        hold_until_durable: true,
        ..WorkerConfig::default()
    };
    let worker = spawn(dir, config);
    let mut out = std::io::stdout().lock();
    let mut report = |e: &ValidationEvent| {
        if let ValidationEvent::Connected { hash, height } = e {
            writeln!(out, "connected {height} {hash}").unwrap();
            out.flush().unwrap();
        }
    };
    for b in &fixture().chain {
        let mut raw = b.raw.clone();
        loop {
            while let Ok(e) = worker.events().try_recv() {
                report(&e);
            }
            match worker.try_submit(b.hash, raw) {
                Ok(()) => break,
                Err(SubmitError::Full { raw: back }) => {
                    raw = back;
                    report(&worker.events().recv().unwrap());
                }
                Err(SubmitError::Closed { .. }) => panic!("worker closed"),
            }
        }
    }
    loop {
        report(&worker.events().recv().unwrap());
    }
}

#[test]
fn kernel_kill9_loses_nothing_reported_connected() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        kill9_child(Path::new(&dir));
    }
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["kernel_kill9_loses_nothing_reported_connected", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reported = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut words = line.split(' ');
        if words.next() != Some("connected") {
            continue;
        }
        let height: u32 = words.next().unwrap().parse().unwrap();
        let hash: BlockHash = words.next().unwrap().parse().unwrap();
        reported.push((height, hash));
        if reported.len() >= KILL_AFTER_REPORTED {
            child.kill().unwrap(); // SIGKILL: no destructor, no flush
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, it did not finish");
    assert!(reported.len() >= KILL_AFTER_REPORTED, "the child reported only {}", reported.len());

    let highest = reported.iter().map(|(h, _)| *h).max().unwrap();
    // The kernel by itself (journal not read) never flushed in the child: the journal is what
    // keeps the promise.
    let alone = KernelValidator::open(KernelConfig { journal_bytes_max: 0, ..kernel_config(dir.path()) }).unwrap();
    let alone_height = alone.tip().height;
    drop(alone);
    assert!(
        alone_height < highest,
        "the kernel alone is at {alone_height}, reported {highest}: the journal went unused"
    );
    let kernel = KernelValidator::open(kernel_config(dir.path())).unwrap();
    eprintln!("kernel alone at {alone_height}; after the journal's replay at {}", kernel.tip().height);
    assert_eq!(kernel.journal_bytes(), Some(0), "the replay ends with a flush that empties the journal");
    assert!(kernel.tip().height >= highest, "tip {} < reported {highest}", kernel.tip().height);
    for (height, hash) in &reported {
        assert_eq!(kernel.block_hash_at(*height), Some(*hash), "block {height} survived");
        assert_eq!(f.chain[*height as usize - 1].hash, *hash);
    }
}

#[test]
fn a_journal_over_its_budget_is_flushed_into_the_kernel_and_emptied() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let budget = 20_000;
    let config = KernelConfig { journal_bytes_max: budget, ..kernel_config(dir.path()) };
    let mut kernel = KernelValidator::open(config.clone()).unwrap();
    let mut events = Vec::new();
    let (mut flushes, mut peak) = (0, 0);
    for b in f.chain.iter().take(120) {
        kernel.submit(b.hash, &b.raw, &mut events);
        let before = kernel.journal_bytes().unwrap();
        peak = peak.max(before);
        let tip = kernel.checkpoint().unwrap();
        assert_eq!(tip.hash, b.hash, "every checkpoint reports the tip");
        let after = kernel.journal_bytes().unwrap();
        if before > budget {
            assert_eq!(after, 0, "over budget ({before} bytes): flushed and emptied");
            flushes += 1;
        } else {
            assert_eq!(after, before, "within budget: committed, kept");
        }
    }
    assert!(flushes >= 2, "{flushes} flushes (peak {peak} bytes)");
    drop(kernel);
    let reopened = KernelValidator::open(config).unwrap();
    assert_eq!(reopened.tip().hash, f.chain[119].hash);
}

#[test]
fn kernel_opens_every_network_at_its_own_genesis() {
    for network in Network::ALL {
        let dir = tempfile::tempdir().unwrap();
        let kernel = KernelValidator::open(KernelConfig::new(network, dir.path())).unwrap();
        let genesis = bitcoin::constants::genesis_block(network.to_bitcoin());
        let tip = kernel.tip();
        assert_eq!((tip.height, tip.hash), (0, genesis.block_hash()), "{network:?}");
        assert_eq!(tip.chainwork, genesis.header.work(), "{network:?}");
        let served: Block = deserialize(&kernel.read_block(&genesis.block_hash()).unwrap()).unwrap();
        assert_eq!(served, genesis, "{network:?}");
    }
}

#[test]
fn an_lmdb_journal_from_an_earlier_build_stops_the_open_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = kernel_config(dir.path());
    std::fs::create_dir_all(config.dir.join("journal")).unwrap();
    let Err(err) = KernelValidator::open(config.clone()) else { panic!("refused") };
    let text = err.to_string();
    assert!(text.contains("earlier build") && text.contains("remove the directory"), "{text}");
    std::fs::remove_dir(config.dir.join("journal")).unwrap();
    assert!(KernelValidator::open(config.clone()).is_ok());
    assert!(config.dir.join("journal.log").is_file(), "the journal is a plain file now");
}
