//! Small simulated networks of oni nodes (the `network` section of a scenario): every node connects
//! every mined block, pools that held a block's transactions are emptied by it, a seed replays the
//! run, the graph keeps the outbound count and the listening share, and a network whose nodes take
//! no inbound connections fails its report.

use bevy_ecs::prelude::*;
use oni::scenario::network::figures::BLOCK_RELAY;
use oni::scenario::network::{self, NetOutcome};
use oni::scenario::{run_cli, Mode, Scenario};
use oni_systems::components::{Direction, PeerState};
use oni_systems::mempool::pool::Mempool;
use oni_systems::wire::Command;

fn scenario(seed: u64, extra_node: &str, missing: &str) -> Scenario {
    Scenario::parse(&scenario_text(seed, extra_node, missing), "network_small").unwrap()
}

fn scenario_text(seed: u64, extra_node: &str, missing: &str) -> String {
    format!(
        r#"Scenario(
            name: "network_small",
            seed: {seed},
            duration_s: 60,
            node: ({extra_node}),
            net: (tick_ms: 10, latency_ms: 30, node_write_bytes_per_s: 2000000, start_jitter_ms: 500),
            peers: [],
            expect: [],
            network: (
                nodes: 14,
                outbound: 4,
                listen_fraction: 0.5,
                txs_per_block: 40,
                missing: ({missing}),
                blocks: [(at_s: 2), (at_s: 4, node: Node(2)), (at_s: 6)],
            ),
        )"#
    )
}

fn run(s: &Scenario) -> NetOutcome {
    network::simulate(s).unwrap()
}

/// Ready peers of each direction a node holds at the end: (outbound full relay, inbound).
fn peers_of(world: &mut World) -> (usize, usize) {
    let mut q = world.query::<(&Direction, &PeerState)>();
    let ready = q.iter(world).filter(|(_, s)| **s == PeerState::Ready);
    ready.fold((0, 0), |(o, i), (d, _)| match d {
        Direction::OutboundFullRelay => (o + 1, i),
        Direction::Inbound => (o, i + 1),
        _ => (o, i),
    })
}

#[test]
fn every_node_connects_every_block_and_pools_empty_behind_them() {
    let s = scenario(1, "", "nodes_fraction: 0.5, txs_fraction: 0.25");
    let (report, mut out) = network::run(&s).unwrap();
    assert!(report.passed(), "{report}");
    let p = &out.propagation;
    assert_eq!(p.blocks.len(), 3);
    for b in &p.blocks {
        assert_eq!(b.reached(), 14, "block at height {} reached {} nodes", b.height, b.reached());
        assert!(b.quantile_ms(1.0).is_some_and(|ms| ms > 0), "someone waited for the block");
    }
    assert_eq!(p.blocks.iter().map(|b| b.height).collect::<Vec<_>>(), [1, 2, 3], "one chain, no fork");
    // 3 × 40 transactions to 14 pools, a quarter of each block's missing from 7 (6.5 rounded) of
    // the 13 other nodes.
    assert_eq!(out.pool_fills, (3 * (14 * 40 - 7 * 10), 0));
    // Half the pools lacked a quarter of each block: those nodes had to ask for the rest.
    assert!(p.per_node_per_block(Some(&BLOCK_RELAY)) > 0.0);
    assert!(p.bytes_while_propagating[Command::GetBlockTxn as usize] > 0, "missing transactions were fetched");
    for (i, node) in out.nodes.iter_mut().enumerate() {
        assert_eq!(node.world.resource::<Mempool>().len(), 0, "node {i}: the blocks confirmed its pool");
    }
    assert!(report.to_string().contains("block propagation (14 nodes)"), "{report}");
}

#[test]
fn a_seed_replays_the_run_and_another_seed_does_not() {
    let a = run(&scenario(7, "", ""));
    let b = run(&scenario(7, "", ""));
    let c = run(&scenario(8, "", ""));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.propagation, b.propagation);
    assert_ne!(a.trace_hash, c.trace_hash);
    assert_ne!(a.topology, c.topology);
}

#[test]
fn the_graph_keeps_the_outbound_count_and_the_listening_share() {
    let mut out = run(&scenario(3, "", ""));
    let listening = out.topology.listening.clone();
    assert_eq!(listening.iter().filter(|l| **l).count(), 7, "half of 14 listen");
    for (i, node) in out.nodes.iter_mut().enumerate() {
        let (outbound, inbound) = peers_of(&mut node.world);
        assert_eq!(out.topology.outbound_of(i), 4, "node {i}: 4 planned (6 other listeners at least)");
        assert_eq!(outbound, 4, "node {i} holds its outbound connections");
        assert_eq!(inbound, out.topology.inbound_of(i), "node {i}");
        if !listening[i] {
            assert_eq!(inbound, 0, "node {i} does not listen");
        }
    }
}

#[test]
fn nodes_that_refuse_inbound_leave_blocks_unpropagated_and_the_report_fails() {
    let s = scenario(1, "max_inbound: 0", "");
    let (report, out) = network::run(&s).unwrap();
    assert!(!report.passed(), "{report}");
    assert!(report.failures().any(|r| r.expectation.contains("every node connected every block")));
    assert!(out.propagation.blocks.iter().all(|b| b.reached() == 1), "only the miners have their blocks");
}

#[test]
fn the_cli_runs_a_network_file_and_refuses_live_mode() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("n.ron");
    let text = r#"Scenario(name: "n", seed: 2, duration_s: 20, peers: [], expect: [],
        network: (nodes: 6, outbound: 2, blocks: [(at_s: 3)]))"#;
    std::fs::write(&f, text).unwrap();
    let report = run_cli(&f, Mode::Sim, None, None).unwrap();
    assert_eq!(report.instances, 6);
    assert!(report.propagation.as_ref().is_some_and(|p| p.all_reached()), "{report}");
    assert!(run_cli(&f, Mode::Live, None, None).is_err(), "network scenarios are sim only");
}

#[test]
fn compact_blocks_off_moves_blocks_whole_and_costs_more_bytes_on_the_same_network() {
    let on = run(&scenario(5, "", ""));
    let text = scenario_text(5, "", "").replace("nodes: 14,", "nodes: 14, compact_blocks: false,");
    let off = run(&Scenario::parse(&text, "whole").unwrap());
    assert!(on.propagation.all_reached() && off.propagation.all_reached());
    let sent = |o: &NetOutcome, c: Command| o.propagation.bytes_while_propagating[c as usize];
    assert_eq!(sent(&off, Command::CmpctBlock), 0, "no compact block with the switch off");
    assert_eq!(sent(&off, Command::SendCmpct), 0, "nor an offer of them");
    assert!(sent(&on, Command::CmpctBlock) > 0);
    let (b_on, b_off) =
        (on.propagation.per_node_per_block(Some(&BLOCK_RELAY)), off.propagation.per_node_per_block(Some(&BLOCK_RELAY)));
    assert!(b_on * 5.0 < b_off, "pools in sync: compact {b_on:.0} bytes per node per block, whole {b_off:.0}");
}

#[test]
fn a_shared_uplink_slows_whole_blocks_more_than_compact_ones() {
    let with = |compact: bool, uplink: u64| {
        let text = scenario_text(7, "", "")
            .replace("nodes: 14,", &format!("nodes: 14, compact_blocks: {compact}, uplink_bytes_per_s: {uplink},"));
        let out = run(&Scenario::parse(&text, "uplink").unwrap());
        assert!(out.propagation.all_reached());
        out.propagation.blocks.iter().map(|b| b.quantile_ms(1.0).unwrap_or(u64::MAX)).sum::<u64>()
    };
    // One link's bandwidth for the whole node: a node serving a block to several peers at once
    // serves each of them slower.
    let (whole_free, whole_shared) = (with(false, 0), with(false, 2_000_000));
    let (compact_free, compact_shared) = (with(true, 0), with(true, 2_000_000));
    assert!(whole_shared > whole_free, "whole blocks: {whole_free} ms free, {whole_shared} ms shared");
    assert!(
        compact_shared - compact_free < whole_shared - whole_free,
        "compact {compact_free} → {compact_shared} ms, whole {whole_free} → {whole_shared} ms"
    );
}
