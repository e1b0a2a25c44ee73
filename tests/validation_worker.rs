//! The validation worker and the structure-only checker, on the regtest fixture chain: events,
//! reorgs, rejections, backpressure bounds, query priority and held reports.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Block, BlockHash};
use oni::validation::fixture::{chainwork_bytes, Fixture, FixtureBlock};
use oni::validation::{
    BlockValidator, HeaderInfo, RejectReason, StructureChecker, SubmitError, ValidatedTip, ValidationEvent,
    ValidationWorker, ValidatorError, WorkerConfig,
};
use oni_systems::wire::Network;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap())
}

fn submit_all(checker: &mut StructureChecker, blocks: &[FixtureBlock]) -> Vec<ValidationEvent> {
    let mut events = Vec::new();
    for b in blocks {
        checker.submit(b.hash, &b.raw, &mut events);
    }
    events
}

#[test]
fn checker_reaches_fixture_tip_and_chainwork() {
    let f = fixture();
    let mut checker = StructureChecker::new(Network::Regtest);
    let events = submit_all(&mut checker, &f.chain);
    let connected: Vec<_> = events
        .iter()
        .map(|e| match e {
            ValidationEvent::Connected { height, .. } => *height,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(connected, (1..=2100).collect::<Vec<u32>>());
    let tip = checker.tip();
    assert_eq!(tip.height, f.meta.height);
    assert_eq!(tip.hash, f.meta.tip_hash().unwrap());
    assert_eq!(tip.chainwork.to_be_bytes(), chainwork_bytes(&f.meta.chainwork).unwrap());
    assert_eq!(checker.read_block(&f.chain[99].hash).unwrap(), f.chain[99].raw);
    let info = checker.header_for(&f.chain[99].hash).unwrap();
    assert_eq!((info.height, info.in_active_chain), (100, true));
}

#[test]
fn checker_reorgs_to_the_heavier_fork() {
    let f = fixture();
    let mut checker = StructureChecker::new(Network::Regtest);
    submit_all(&mut checker, &f.chain);
    let events = submit_all(&mut checker, &f.fork);
    // Six fork blocks tie or trail our work: stored. The seventh overtakes: 6 out, 7 in.
    let stored = events.iter().filter(|e| matches!(e, ValidationEvent::Stored { .. })).count();
    assert_eq!(stored, 6);
    let moves: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ValidationEvent::Disconnected { height, .. } => Some(-(*height as i64)),
            ValidationEvent::Connected { height, .. } => Some(*height as i64),
            _ => None,
        })
        .collect();
    assert_eq!(moves, vec![-2100, -2099, -2098, -2097, -2096, -2095, 2095, 2096, 2097, 2098, 2099, 2100, 2101]);
    let tip = checker.tip();
    assert_eq!((tip.height, tip.hash), (f.meta.fork.tip_height, f.meta.fork_tip_hash().unwrap()));
    assert_eq!(tip.chainwork.to_be_bytes(), chainwork_bytes(&f.meta.fork.chainwork).unwrap());
    assert!(!checker.header_for(&f.chain[2099].hash).unwrap().in_active_chain);
}

#[test]
fn checker_rejects_malformed_blocks_with_their_reason() {
    let f = fixture();
    let mut checker = StructureChecker::new(Network::Regtest);
    submit_all(&mut checker, &f.chain[..10]);
    let mut events = Vec::new();
    let next = &f.chain[10];

    // A byte flipped inside a transaction: the merkle root no longer matches.
    let mut mutated = next.raw.clone();
    let last = mutated.len() - 10;
    mutated[last] ^= 0x01;
    checker.submit(next.hash, &mutated, &mut events);
    // Bytes that are not a block.
    checker.submit(next.hash, &next.raw[..50], &mut events);
    // A real block under another block's hash.
    checker.submit(f.chain[11].hash, &next.raw, &mut events);
    // A block whose parent we do not have.
    checker.submit(f.chain[12].hash, &f.chain[12].raw, &mut events);
    let reasons: Vec<_> = events
        .iter()
        .map(|e| match e {
            ValidationEvent::Rejected { reason, .. } => *reason,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        vec![RejectReason::Mutated, RejectReason::Undecodable, RejectReason::HashMismatch, RejectReason::MissingPrev]
    );
    assert_eq!(checker.tip().height, 10);

    // Bad proof of work: regtest's target admits about half of all hashes, so find a nonce
    // that fails it (the header then hashes to a new value, which we submit under).
    let mut block: Block = deserialize(&next.raw).unwrap();
    while block.header.validate_pow(block.header.target()).is_ok() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    events.clear();
    checker.submit(block.block_hash(), &serialize(&block), &mut events);
    assert_eq!(
        events,
        vec![ValidationEvent::Rejected { hash: block.block_hash(), reason: RejectReason::InvalidHeader }]
    );

    events.clear();
    checker.submit(next.hash, &next.raw, &mut events);
    checker.submit(next.hash, &next.raw, &mut events);
    assert_eq!(
        events,
        vec![
            ValidationEvent::Connected { hash: next.hash, height: 11 },
            ValidationEvent::AlreadyKnown { hash: next.hash }
        ]
    );
}

/// A checker that validates only when the test hands it a permit: lets a test hold the queue full.
struct Gated {
    inner: StructureChecker,
    permits: flume::Receiver<()>,
    entered: flume::Sender<BlockHash>,
}

impl BlockValidator for Gated {
    fn submit(&mut self, hash: BlockHash, raw: &[u8], events: &mut Vec<ValidationEvent>) {
        let _ = self.entered.send(hash);
        // Bounded so a test that ends with blocks still queued cannot hang the worker's exit.
        let _ = self.permits.recv_timeout(WAIT);
        self.inner.submit(hash, raw, events);
    }
    fn tip(&self) -> ValidatedTip {
        self.inner.tip()
    }
    fn header_for(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        self.inner.header_for(hash)
    }
    fn read_block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        self.inner.read_block(hash)
    }
    fn checkpoint(&mut self) -> Result<ValidatedTip, ValidatorError> {
        self.inner.checkpoint()
    }
}

/// A worker on a [`Gated`] checker, the permit sender, and the "validation started" receiver.
fn gated_worker(config: WorkerConfig) -> (ValidationWorker<Gated>, flume::Sender<()>, flume::Receiver<BlockHash>) {
    let (permit_tx, permits) = flume::unbounded();
    let (entered, entered_rx) = flume::unbounded();
    let worker = ValidationWorker::spawn(config, move || {
        Ok(Gated { inner: StructureChecker::new(Network::Regtest), permits, entered })
    })
    .unwrap();
    (worker, permit_tx, entered_rx)
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn queue_refuses_past_its_block_bound_and_reopens_as_it_drains() {
    let f = fixture();
    let config = WorkerConfig { queue_blocks_max: 4, ..WorkerConfig::default() };
    let (worker, permits, _entered) = gated_worker(config);
    for b in &f.chain[..4] {
        worker.try_submit(b.hash, b.raw.clone()).unwrap();
    }
    assert_eq!(worker.queued_blocks(), 4);
    assert!(!worker.has_room(1));
    let refused = worker.try_submit(f.chain[4].hash, f.chain[4].raw.clone());
    match refused {
        Err(SubmitError::Full { raw }) => assert_eq!(raw, f.chain[4].raw, "the block is handed back"),
        other => panic!("expected Full, got {other:?}"),
    }
    permits.send(()).unwrap();
    assert_eq!(
        worker.events().recv_timeout(WAIT).unwrap(),
        ValidationEvent::Connected { hash: f.chain[0].hash, height: 1 }
    );
    assert_eq!(worker.queued_blocks(), 3);
    assert!(worker.has_room(1));
    worker.try_submit(f.chain[4].hash, f.chain[4].raw.clone()).unwrap();
    for _ in 0..4 {
        permits.send(()).unwrap();
    }
    let heights: Vec<_> = (0..4)
        .map(|_| match worker.events().recv_timeout(WAIT).unwrap() {
            ValidationEvent::Connected { height, .. } => height,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(heights, vec![2, 3, 4, 5]);
    assert_eq!((worker.queued_blocks(), worker.queued_bytes()), (0, 0));
    assert_eq!(worker.tip().height, 5);
}

#[test]
fn queue_refuses_past_its_byte_bound_but_always_admits_one_block() {
    let f = fixture();
    let one = f.chain[0].raw.len();
    let config = WorkerConfig { queue_bytes_max: one / 2, ..WorkerConfig::default() };
    let (worker, permits, _entered) = gated_worker(config);
    // Larger than the whole bound, but the queue is empty: admitted.
    worker.try_submit(f.chain[0].hash, f.chain[0].raw.clone()).unwrap();
    assert_eq!(worker.queued_bytes(), one);
    assert!(matches!(worker.try_submit(f.chain[1].hash, f.chain[1].raw.clone()), Err(SubmitError::Full { .. })));
    permits.send(()).unwrap();
    worker.events().recv_timeout(WAIT).unwrap();
    assert_eq!(worker.queued_bytes(), 0);
    worker.try_submit(f.chain[1].hash, f.chain[1].raw.clone()).unwrap();
}

#[test]
fn queries_do_not_wait_behind_the_block_queue() {
    let f = fixture();
    let (worker, permits, entered) = gated_worker(WorkerConfig::default());
    for b in &f.chain[..4] {
        worker.try_submit(b.hash, b.raw.clone()).unwrap();
    }
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), f.chain[0].hash);
    let answer = worker.read_block(f.chain[0].hash);
    permits.send(()).unwrap();
    // After the block in progress, the query is answered before the three still queued.
    let block = answer.recv_timeout(WAIT).unwrap();
    assert_eq!(block.as_deref(), Some(&f.chain[0].raw[..]));
    assert_eq!(worker.queued_blocks(), 3);
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), f.chain[1].hash);
    // A query sent while a block is in progress waits for that block only.
    let header = worker.header_for(f.chain[0].hash);
    assert!(
        header.recv_timeout(Duration::from_millis(300)).is_err(),
        "the worker is inside the next block, waiting for a permit"
    );
    permits.send(()).unwrap();
    let info = header.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(info.height, 1);
    assert_eq!(worker.queued_blocks(), 2);
    for _ in 0..2 {
        permits.send(()).unwrap();
    }
}

#[test]
fn held_reports_arrive_only_with_the_checkpoint_that_covers_them() {
    let f = fixture();
    let config = WorkerConfig {
        checkpoint_blocks: 10,
        checkpoint_interval_ms: 60_000,
        hold_until_durable: true,
        ..WorkerConfig::default()
    };
    let worker = ValidationWorker::spawn(config, || Ok(StructureChecker::new(Network::Regtest))).unwrap();
    for b in &f.chain[..25] {
        worker.try_submit(b.hash, b.raw.clone()).unwrap();
    }
    // The tip and each block's Taken go out at once, each ahead of its held connect; the reports
    // wait for checkpoints.
    let mut seen = Vec::new();
    let mut tips = Vec::new();
    let mut taken = Vec::new();
    while seen.len() < 22 || tips.len() < 25 || taken.len() < 25 {
        match worker.events().recv_timeout(WAIT).unwrap() {
            ValidationEvent::Tip { height, hash } => {
                assert_eq!(hash, f.chain[height as usize - 1].hash);
                tips.push(height);
            }
            ValidationEvent::Taken { hash } => {
                assert!(!seen.iter().any(|e: &ValidationEvent| e.hash() == Some(hash)), "taken after its connect");
                taken.push(hash);
            }
            e => {
                if let ValidationEvent::Connected { height, .. } = e {
                    assert!(tips.contains(&height), "block {height}'s tip was reported before its connect");
                }
                seen.push(e);
            }
        }
    }
    assert_eq!(tips, (1..=25).collect::<Vec<u32>>());
    assert_eq!(taken, f.chain[..25].iter().map(|b| b.hash).collect::<Vec<_>>(), "every block, in order");
    assert_eq!(seen.len(), 22);
    // Two batches of ten, each followed by its Durable; the last five are held.
    for (batch, chunk) in seen.chunks(11).enumerate() {
        for (i, e) in chunk[..10].iter().enumerate() {
            assert!(matches!(e, ValidationEvent::Connected { height, .. } if *height == (batch * 10 + i + 1) as u32));
        }
        assert_eq!(
            chunk[10],
            ValidationEvent::Durable { hash: f.chain[batch * 10 + 9].hash, height: (batch * 10 + 10) as u32 }
        );
    }
    assert!(worker.events().recv_timeout(Duration::from_millis(200)).is_err());
    assert_eq!(worker.tip().height, 25);
    assert_eq!(worker.durable_tip().height, 20);
    // A forced checkpoint releases them.
    assert_eq!(worker.checkpoint().recv_timeout(WAIT).unwrap().unwrap().height, 25);
    let rest: Vec<_> = (0..6).map(|_| worker.events().recv_timeout(WAIT).unwrap()).collect();
    assert_eq!(rest[5], ValidationEvent::Durable { hash: f.chain[24].hash, height: 25 });
    let checker = worker.shutdown().unwrap();
    assert_eq!(checker.tip().height, 25);
}

#[test]
fn an_idle_worker_checkpoints_when_its_interval_runs_out() {
    let f = fixture();
    let config = WorkerConfig { checkpoint_blocks: 1_000, checkpoint_interval_ms: 100, ..WorkerConfig::default() };
    let worker = ValidationWorker::spawn(config, || Ok(StructureChecker::new(Network::Regtest))).unwrap();
    worker.try_submit(f.chain[0].hash, f.chain[0].raw.clone()).unwrap();
    assert!(matches!(worker.events().recv_timeout(WAIT).unwrap(), ValidationEvent::Connected { height: 1, .. }));
    let started = std::time::Instant::now();
    assert_eq!(
        worker.events().recv_timeout(WAIT).unwrap(),
        ValidationEvent::Durable { hash: f.chain[0].hash, height: 1 }
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(worker.durable_tip().height, 1);
}

#[test]
fn a_validator_that_fails_to_open_is_an_error_not_a_worker() {
    let result = ValidationWorker::<StructureChecker>::spawn(WorkerConfig::default(), || {
        Err(ValidatorError::Kernel("no".into()))
    });
    assert!(matches!(result, Err(ValidatorError::Kernel(msg)) if msg == "no"));
}

/// A checker whose store cannot be flushed.
struct Unflushable(StructureChecker);

impl BlockValidator for Unflushable {
    fn submit(&mut self, hash: BlockHash, raw: &[u8], events: &mut Vec<ValidationEvent>) {
        self.0.submit(hash, raw, events);
    }
    fn tip(&self) -> ValidatedTip {
        self.0.tip()
    }
    fn header_for(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        self.0.header_for(hash)
    }
    fn read_block(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        self.0.read_block(hash)
    }
    fn checkpoint(&mut self) -> Result<ValidatedTip, ValidatorError> {
        Err(ValidatorError::Kernel("disk full".into()))
    }
}

#[test]
fn a_failed_checkpoint_is_fatal_and_stops_the_worker() {
    let f = fixture();
    let config = WorkerConfig { checkpoint_blocks: 2, ..WorkerConfig::default() };
    let worker = ValidationWorker::spawn(config, || Ok(Unflushable(StructureChecker::new(Network::Regtest)))).unwrap();
    for b in &f.chain[..2] {
        worker.try_submit(b.hash, b.raw.clone()).unwrap();
    }
    let events: Vec<_> = (0..3).map(|_| worker.events().recv_timeout(WAIT).unwrap()).collect();
    assert_eq!(events[2], ValidationEvent::Fatal { what: "checkpoint_failed" });
    // The thread is gone: the next block is handed back as Closed.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match worker.try_submit(f.chain[2].hash, f.chain[2].raw.clone()) {
            Err(SubmitError::Closed { raw }) => {
                assert_eq!(raw, f.chain[2].raw);
                break;
            }
            _ => assert!(std::time::Instant::now() < deadline, "worker still accepting"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(matches!(worker.shutdown(), Err(ValidatorError::WorkerGone)));
}

#[test]
fn reject_reasons_blame_the_sender_as_core_punishes_blocks() {
    use RejectReason::*;
    let all = [
        Consensus,
        CachedInvalid,
        InvalidHeader,
        Mutated,
        MissingPrev,
        InvalidPrev,
        TimeFuture,
        HeaderLowWork,
        Undecodable,
        HashMismatch,
        Internal,
    ];
    let blamed: Vec<_> = all.iter().filter(|r| r.blames_sender()).copied().collect();
    // Bytes that do not make a block are dropped unpunished, as Core drops a message it cannot read.
    assert_eq!(blamed, vec![Consensus, CachedInvalid, InvalidHeader, Mutated, InvalidPrev, HashMismatch]);
    let names: std::collections::HashSet<_> = all.iter().map(|r| r.label()).collect();
    assert_eq!(all.as_slice(), RejectReason::ALL, "every reason, in order");
    assert_eq!(names.len(), all.len(), "metric labels are distinct");
}

#[test]
fn a_worker_can_run_a_validator_chosen_at_run_time() {
    let f = fixture();
    let worker = ValidationWorker::<Box<dyn BlockValidator>>::spawn(WorkerConfig::default(), || {
        Ok(Box::new(StructureChecker::new(Network::Regtest)))
    })
    .unwrap();
    worker.try_submit(f.chain[0].hash, f.chain[0].raw.clone()).unwrap();
    assert_eq!(
        worker.events().recv_timeout(WAIT).unwrap(),
        ValidationEvent::Connected { hash: f.chain[0].hash, height: 1 }
    );
    assert_eq!(worker.shutdown().unwrap().tip().hash, f.chain[0].hash);
}
