//! Every shipped scenario runs in sim mode and passes; a run replays from its seed; 1,000 bots run;
//! weakened node configs make the matching scenario fail (proof the expectations can fail); errors
//! in files are reported with line and column; `--dump` writes the world.

use oni::scenario::dump::WorldDump;
use oni::scenario::{run, run_cli, BotKind, Expectation, Mode, PeerSpec, Report, Scenario, ScenarioError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn load(name: &str) -> Scenario {
    Scenario::load(&scenario_dir().join(format!("{name}.ron"))).unwrap()
}

fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        // Network scenarios (many nodes) are the propagation report's, minutes long in release;
        // tests/network_sim.rs runs small networks.
        .filter(|p| Scenario::load(p).map_or(true, |s| s.network.is_none()))
        .collect();
    v.sort();
    v
}

/// Asserts the report failed, and failed on a row starting with `row`.
fn assert_fails_on(report: &Report, row: &str) {
    assert!(!report.passed(), "expected a failure on {row}:\n{report}");
    assert!(report.failures().any(|r| r.expectation.starts_with(row)), "expected {row} to fail:\n{report}");
}

#[test]
fn every_shipped_scenario_passes_in_sim_mode() {
    let files = shipped();
    let mut failed = Vec::new();
    let mut kinds = BTreeSet::new();
    for f in &files {
        let s = Scenario::load(f).unwrap();
        for p in &s.peers {
            if let PeerSpec::Bot { kind, .. } = p {
                kinds.insert(kind.name());
            }
        }
        match run_cli(f, Mode::Sim, None, None) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                println!("{e}");
                failed.push(f.clone());
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
    assert!(files.iter().any(|f| f.ends_with("baseline_honest.ron")));
    let all: BTreeSet<&str> = BotKind::NAMES.iter().copied().collect();
    assert_eq!(kinds, all, "every bot kind has a shipped scenario");
}

#[test]
fn same_seed_replays_the_same_trace_and_another_seed_does_not() {
    let s = load("malformed_fuzz");
    let (a, _) = run(&s, Mode::Sim);
    let (b, _) = run(&s, Mode::Sim);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.rows, b.rows, "same measured figures");
    assert_eq!(a.ticks, b.ticks);
    let mut other = s.clone();
    other.seed += 1;
    let (c, _) = run(&other, Mode::Sim);
    assert_ne!(a.trace_hash, c.trace_hash);
    assert!(c.passed(), "the defence does not depend on the seed:\n{c}");
}

#[test]
fn a_thousand_bots_run_in_one_scenario() {
    let s = Scenario::parse(
        r#"Scenario(
            name: "thousand",
            seed: 5,
            duration_s: 4,
            node: (max_inbound: 2000),
            net: (tick_ms: 100, start_jitter_ms: 500),
            peers: [Honest(count: 10), Bot(kind: HandshakeNeverCompletes, count: 1000)],
            expect: [
                ConnectionsAtLeast(bot: "HandshakeNeverCompletes", at_least: 1000),
                PeakPeersAtMost(1010),
                NoHonestDisconnected,
                HonestServed(min_share: 1.0),
                NoLeakedState,
            ],
        )"#,
        "inline",
    )
    .unwrap();
    let (report, out) = run(&s, Mode::Sim);
    assert!(report.passed(), "{report}");
    assert_eq!(out.peak_peers, 1010, "every bot and honest peer was held at once");
    assert_eq!(out.end.awaiting_verack, 1000, "the bots are all mid-handshake at the end");
}

#[test]
fn slowloris_passes_only_because_of_the_handshake_timeout() {
    let mut s = load("slowloris");
    s.node.handshake_timeout_ms = 3_600_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "Disconnected(Slowloris");
}

#[test]
fn handshake_never_completes_fails_without_the_timeout() {
    let mut s = load("handshake_never_completes");
    s.node.handshake_timeout_ms = 3_600_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "Disconnected(HandshakeNeverCompletes");
}

/// The v2 handshake stalls (a 15-byte v1 prefix, a wrong terminator, an early key) are dropped
/// only by the handshake timeout; the excess-garbage bots by the garbage bound, whatever the
/// timeout.
#[test]
fn v2_handshake_stalls_are_dropped_only_by_the_handshake_timeout() {
    let mut s = load("v2_transport");
    s.node.handshake_timeout_ms = 3_600_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "Disconnected(V2Prefix");
    assert_fails_on(&report, "Disconnected(V2EarlyKey");
    assert_fails_on(&report, "DisconnectedCount(V2Garbage, handshake_timeout");
    let garbage =
        report.rows.iter().find(|r| r.expectation.starts_with("DisconnectedCount(V2Garbage, v2_missing")).unwrap();
    assert!(garbage.pass, "{garbage:?}");
}

/// Bad checksums and malformed payloads are dropped and counted, as Core drops them: a node that
/// punishes them (any violation disconnects at a threshold of 0) fails both scenarios.
#[test]
fn bad_checksum_and_fuzz_fail_when_the_node_punishes_what_core_ignores() {
    for name in ["bad_checksum", "malformed_fuzz"] {
        let mut s = load(name);
        s.score_threshold = Some(0);
        let (report, _) = run(&s, Mode::Sim);
        assert_fails_on(&report, "NeverDisconnected(");
    }
}

#[test]
fn ping_flood_fails_without_the_decode_budget_or_the_receive_bound() {
    let mut s = load("ping_flood");
    s.duration_s = 3;
    s.node.decode_msgs_per_tick = 100_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "ReceivedPerTickAtMost(PingFlood");
    let mut s = load("ping_flood");
    s.duration_s = 3;
    s.node.recv_buffer_bytes_max = 100_000_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "PeakRecvBufferBytesAtMost");
}

#[test]
fn eclipse_fails_when_the_slot_limit_is_lifted() {
    let mut s = load("netgroup_eclipse");
    s.node.max_inbound = 1_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "PeakPeersAtMost");
    assert_fails_on(&report, "DisconnectedCount(NetgroupEclipse");
}

#[test]
fn honest_expectations_fail_when_the_node_decodes_nothing() {
    let mut s = load("baseline_honest");
    s.node.decode_msgs_per_tick = 0;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "NoHonestDisconnected");
    assert_fails_on(&report, "HonestServed");
    assert_fails_on(&report, "HonestPingP99BelowMs");
}

#[test]
fn run_cli_fails_with_the_report_and_dumps_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("out.ron");
    let report = run_cli(&scenario_dir().join("invalid_headers.ron"), Mode::Sim, Some(99), Some(&dump)).unwrap();
    assert_eq!(report.seed, 99, "--seed replaces the file's seed");
    let d: WorldDump = ron::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    assert_eq!(d.peers.len(), 4, "the four honest peers remain");
    assert!(d.peers.windows(2).all(|w| w[0].socket.conn < w[1].socket.conn));
    assert_eq!(d.resources.metrics.disconnects_for(oni_systems::resources::DisconnectReason::Misbehavior), 3);

    let weak = dir.path().join("weak.ron");
    let text = std::fs::read_to_string(scenario_dir().join("slowloris.ron")).unwrap();
    std::fs::write(
        &weak,
        text.replace("net: (tick_ms: 50),", "net: (tick_ms: 50),\n    node: (handshake_timeout_ms: 90000),"),
    )
    .unwrap();
    match run_cli(&weak, Mode::Sim, None, None) {
        Err(ScenarioError::Failed(r)) => {
            assert_eq!(r.failures().count(), 1, "{r}");
            let msg = ScenarioError::Failed(r).to_string();
            assert!(msg.contains("FAIL") && msg.contains("1 expectation(s) failed"), "{msg}");
        }
        other => panic!("expected a failed run, got {other:?}"),
    }
}

fn parse_err(text: &str) -> ScenarioError {
    Scenario::parse(text, "t.ron").expect_err("must not parse")
}

const GOOD: &str = r#"Scenario(
    name: "x",
    seed: 1,
    duration_s: 5,
    peers: [Honest(count: 1)],
    expect: [NoHonestDisconnected],
)"#;

#[test]
fn file_errors_name_the_line_and_column() {
    assert!(Scenario::parse(GOOD, "t.ron").is_ok());
    let s = Scenario::parse(&GOOD.replace("seed: 1,", "seed: 1,\n    score_threshold: 250,"), "t.ron").unwrap();
    assert_eq!(s.score_threshold, Some(250), "optional fields need no Some(...)");
    let e = parse_err(&GOOD.replace("seed: 1,", "seed: 1,\n    speed: 2,"));
    match &e {
        ScenarioError::Parse { line, col, message, .. } => {
            assert_eq!(*line, 4, "{e}");
            assert!(*col > 1, "{e}");
            assert!(message.contains("speed"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("t.ron:4:"), "{e}");

    let e = parse_err(&GOOD.replace("Honest(count: 1)", "Honest(count: 1, colour: 2)"));
    assert!(matches!(e, ScenarioError::Parse { line: 5, .. }), "unknown field in a peer: {e}");
    let e = parse_err(&GOOD.replace("duration_s: 5,", "duration_s: 5,\n    node: (max_inbund: 3),"));
    assert!(matches!(e, ScenarioError::Parse { line: 5, .. }), "unknown node limit: {e}");
    let e = parse_err(&GOOD.replace("seed: 1,", "seed: -1,"));
    assert!(matches!(e, ScenarioError::Parse { line: 3, .. }), "negative seed: {e}");

    let bot =
        GOOD.replace("Honest(count: 1)", "Honest(count: 1), Bot(kind: Slowloris(byte_interval_ms: 1000), count: 1)");
    assert!(Scenario::parse(&bot, "t.ron").is_ok());
    let e = parse_err(&bot.replace(
        "[NoHonestDisconnected]",
        "[\n  Disconnected(bot: \"Slowloris\", within_s: 61, reason: \"too_slow\")]",
    ));
    match &e {
        ScenarioError::Parse { line: 7, message, .. } => {
            assert!(message.contains("too_slow") && message.contains("handshake_timeout"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let e = parse_err(&bot.replace("Slowloris(", "Slowlorris("));
    assert!(matches!(e, ScenarioError::Parse { line: 5, .. }), "unknown bot kind: {e}");
}

#[test]
fn nonsense_that_parses_is_refused_with_the_reason() {
    let e = parse_err(&GOOD.replace(
        "[NoHonestDisconnected]",
        "[Disconnected(bot: \"Slowloris\", within_s: 61, reason: \"handshake_timeout\")]",
    ));
    assert!(matches!(&e, ScenarioError::Invalid { message, .. } if message.contains("not in peers")), "{e}");
    let e = parse_err(&GOOD.replace("duration_s: 5", "duration_s: 0"));
    assert!(matches!(&e, ScenarioError::Invalid { message, .. } if message.contains("duration_s")), "{e}");
    let e = parse_err(&GOOD.replace("[NoHonestDisconnected]", "[HonestServed(min_share: 1.5)]"));
    assert!(matches!(&e, ScenarioError::Invalid { message, .. } if message.contains("min_share")), "{e}");
    let e = Scenario::load(Path::new("/nonexistent/x.ron")).unwrap_err();
    assert!(matches!(&e, ScenarioError::Io { .. }) && e.to_string().contains("/nonexistent/x.ron"), "{e}");
}

fn honest_rtts(out: &oni::scenario::Outcome) -> Vec<u64> {
    let mut v: Vec<u64> = out
        .instances
        .iter()
        .filter_map(|i| i.ping_log.as_ref())
        .flat_map(|l| l.pings.iter().filter_map(|p| p.rtt_ms))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn the_network_model_sets_round_trips_and_bandwidth_backs_up_the_writer() {
    let text = |net: &str| {
        format!(
            r#"Scenario(name: "net", seed: 3, duration_s: 20, net: ({net}),
                peers: [Honest(count: 2)], expect: [NoHonestDisconnected])"#
        )
    };
    let s = Scenario::parse(&text("tick_ms: 10, latency_ms: 30"), "net").unwrap();
    let (report, out) = run(&s, Mode::Sim);
    assert!(report.passed(), "{report}");
    let rtts = honest_rtts(&out);
    assert!(rtts.len() > 30);
    assert!(rtts.iter().all(|&r| r == 60), "one tick-aligned round trip is two latencies: {rtts:?}");
    let handshake_p50 = |out: &oni::scenario::Outcome| {
        out.world.resource::<oni_systems::resources::Metrics>().handshake_ms.quantile(0.5).unwrap()
    };
    assert!(handshake_p50(&out) <= 250, "three one-way trips: {}", handshake_p50(&out));

    let s = Scenario::parse(&text("tick_ms: 10, latency_ms: 30, node_write_bytes_per_s: 100"), "net").unwrap();
    let (_, out) = run(&s, Mode::Sim);
    let rtts = honest_rtts(&out);
    assert!(!rtts.is_empty());
    // 100 B/s is one byte per 10 ms tick: a 32-byte pong's last byte leaves 31 ticks after its first.
    assert_eq!(rtts[rtts.len() / 2], 60 + 310, "{rtts:?}");
    // The node's 193-byte version..verack burst drains at 1 B per tick before the peer can answer.
    assert!(handshake_p50(&out) >= 2_000, "the handshake waits for the slow writer: {}", handshake_p50(&out));
}

#[test]
fn no_leaked_state_fails_on_a_stray_nonce_or_index_entry() {
    use oni::scenario::{judge, outcome::EndState};
    let s = load("reconnect_churn");
    let (report, mut out) = run(&s, Mode::Sim);
    assert!(report.passed(), "{report}");
    let clean = out.end;
    // What the runner would have measured had teardown forgotten one nonce / one index entry.
    out.end = EndState { nonces: clean.nonces + 1, ..clean };
    assert_fails_on(&judge(&s, &out, Mode::Sim, 0.0), "NoLeakedState");
    out.end = EndState { index_len: clean.index_len + 1, ..clean };
    assert_fails_on(&judge(&s, &out, Mode::Sim, 0.0), "NoLeakedState");
}

#[test]
fn an_inv_storm_is_tolerated_only_by_a_node_that_asked_for_transactions() {
    let mut s = load("inv_storm_blocksonly");
    s.relay = true;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "Disconnected(InvStorm");
}

#[test]
fn header_attacks_fail_with_a_threshold_nobody_reaches() {
    let mut s = load("invalid_headers");
    s.score_threshold = Some(1_000_000);
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "Disconnected(InvalidHeaders");
}

/// Unconnecting headers are counted, not punished (Core): a node that punishes every violation
/// (threshold 0) fails the scenario.
#[test]
fn unconnecting_headers_fail_when_the_node_punishes_them() {
    let mut s = load("unconnecting_headers");
    s.score_threshold = Some(0);
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "NeverDisconnected(UnconnectingHeaders");
}

#[test]
fn getdata_amplification_fails_when_the_serve_bound_is_lifted() {
    let mut s = load("getdata_amplification");
    s.node.send_queue_bytes_soft = 100_000_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "PeakSendQueueBytesAtMost");
}

#[test]
fn block_stall_passes_only_because_of_the_stalling_timeout() {
    let mut s = load("block_stall");
    s.stalling_timeout_ms = Some(3_600_000);
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "Disconnected(BlockStall");
    assert_fails_on(&report, "ValidatedHeightAtLeast");
}

#[test]
fn block_stall_without_the_server_never_reaches_the_height() {
    let mut s = load("block_stall");
    s.peers.retain(|p| !matches!(p, PeerSpec::Bot { kind: BotKind::BlockServer { .. }, .. }));
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "ValidatedHeightAtLeast");
}

#[test]
fn low_work_headers_are_stored_when_the_node_wants_no_work() {
    let mut s = load("low_work_headers");
    s.min_chain_work_blocks = None;
    s.duration_s = 3;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "HeaderTreeAtMost");
}

#[test]
fn orphan_flood_is_bounded_only_by_the_orphanage_limits() {
    let mut s = load("orphan_flood");
    s.duration_s = 12;
    s.orphanage.max_latency_score = 1_000_000;
    s.orphanage.reserved_weight_per_peer = 1_000_000_000;
    let (report, out) = run(&s, Mode::Sim);
    println!("{report}");
    assert_fails_on(&report, "OrphanageWithinBounds");
    assert_fails_on(&report, "OrphansEvictedAtLeast");
    assert!(out.tx.peak_orphans > 3_000, "the flood is all kept: {}", out.tx.peak_orphans);
}

/// With a latency bound of 60, each of eight peers' share is 7 orphans, below the 15 a slow honest
/// relayer holds while it waits for its parents: the flood pushes the total over the bound, the
/// relayers are the most over their shares, and their orphans are evicted. Without the flood the
/// same bound holds both relayers' 30 orphans, so it is the flood that evicts them.
#[test]
fn honest_orphans_are_evicted_when_their_share_is_smaller_than_they_need() {
    let mut s = load("orphan_flood");
    s.duration_s = 30;
    s.orphanage.max_latency_score = 60;
    let (report, out) = run(&s, Mode::Sim);
    println!("{report}");
    assert_fails_on(&report, "HonestTxsInPool");
    assert!(out.tx.peak_latency_score <= 60, "the bound still holds: {}", out.tx.peak_latency_score);

    s.peers.retain(|p| !matches!(p, PeerSpec::Bot { kind: BotKind::OrphanFlood { .. }, .. }));
    s.expect.retain(|e| {
        e.bot() != Some("OrphanFlood")
            && !matches!(e, Expectation::OrphansEvictedAtLeast(_) | Expectation::MetricAtLeast { .. })
    });
    let (report, out) = run(&s, Mode::Sim);
    assert!(report.passed(), "{report}");
    assert!(
        out.tx.peak_relayer_orphans > 7,
        "the relayers held more than a flooded share: {}",
        out.tx.peak_relayer_orphans
    );
}

#[test]
fn orphan_flood_replays_from_its_seed() {
    let mut s = load("orphan_flood");
    s.duration_s = 10;
    let (a, out_a) = run(&s, Mode::Sim);
    let (b, out_b) = run(&s, Mode::Sim);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.rows, b.rows);
    assert_eq!(out_a.tx, out_b.tx, "same orphanage peaks and pool");
}

#[test]
fn transaction_bots_are_refused_without_their_prerequisites() {
    let relayer = GOOD.replace("Honest(count: 1)", "Honest(count: 1), Bot(kind: TxRelayer(txs_per_s: 5), count: 1)");
    let e = parse_err(&relayer);
    assert!(matches!(&e, ScenarioError::Invalid { message, .. } if message.contains("chain: Fixture")), "{e}");
    let s = Scenario::parse(&relayer.replace("seed: 1,", "seed: 1,\n    chain: Fixture,"), "t.ron").unwrap();
    assert_eq!(s.chain, oni::scenario::spec::ChainStart::Fixture);
    let flood = |params: &str| {
        GOOD.replace("Honest(count: 1)", &format!("Honest(count: 1), Bot(kind: OrphanFlood({params}), count: 1)"))
    };
    assert!(
        Scenario::parse(&flood("orphans_per_s: 10, orphans: 100, inputs_per_tx: 100, pad_bytes: 50000"), "t").is_ok()
    );
    let e = parse_err(&flood("orphans_per_s: 10, orphans: 100, inputs_per_tx: 500, pad_bytes: 90000"));
    assert!(matches!(&e, ScenarioError::Invalid { message, .. } if message.contains("WU")), "too heavy: {e}");
    let e = parse_err(&flood("orphans_per_s: 10, orphans: 0"));
    assert!(matches!(&e, ScenarioError::Invalid { message, .. } if message.contains("orphans")), "{e}");
    let e = parse_err(&GOOD.replace("seed: 1,", "seed: 1,\n    orphanage: (max_latency: 5),"));
    assert!(matches!(e, ScenarioError::Parse { line: 4, .. }), "unknown orphanage field: {e}");
}

/// A never-reading requester's intake is held by the receive bound once decode stops taking its
/// getdata: lift the bound and the node buffers everything it sends.
#[test]
fn block_requester_is_held_by_the_receive_bound() {
    let mut s = load("block_requester");
    s.node.recv_buffer_bytes_max = 100_000_000;
    let (report, _) = run(&s, Mode::Sim);
    assert_fails_on(&report, "SentBytesAtMost(BlockRequester");
    assert_fails_on(&report, "PeakRecvBufferBytesAtMost");
}

/// A bot that stops reading leaves the node's bytes on the wire (up to its receive window, then the
/// node's writer stalls): the requesters never see a block they asked for.
#[test]
fn a_bot_that_stops_reading_gets_nothing_after_its_handshake() {
    let s = load("block_requester");
    let (report, out) = run(&s, Mode::Sim);
    assert!(report.passed(), "{report}");
    let recv: u64 = out
        .conns
        .iter()
        .filter(|r| out.instances[r.instance].label == "BlockRequester")
        .map(|r| r.bytes_recv)
        .max()
        .unwrap();
    let block = oni_systems::wire::Command::Block as usize;
    let blocks: u64 = out.instances.iter().filter(|i| i.label == "BlockRequester").map(|i| i.recv_total[block]).sum();
    assert_eq!(blocks, 0, "a requester that does not read sees none of the blocks it asked for");
    assert!(recv < 2_000, "only the handshake reached it: {recv} B");
}
