//! Transactions through a world with no IO: Core's fixture mempool accepted over the wire, orphans
//! and their parents, announcements out and what may be asked for, rejections and who is blamed,
//! blocks taking transactions out and reorgs bringing them back, backpressure.

use crate::chain::test_vectors::{chain_blocks, header_of, AFTER_FIXTURE_S};
use crate::chain::{ChainParams, HeaderTree, Ibd};
use crate::components::{ConnId, Direction, Permissions};
use crate::harness::TestNode;
use crate::mempool::intake::{TxIntake, TX_INTAKE_BACKLOG};
use crate::mempool::policy::TxReject;
use crate::mempool::pool::{Mempool, PoolLimits};
use crate::mempool::{BlockTxEvent, BlockTxInbox, ChainCoins, MemoryCoins};
use crate::resources::tx_requests::TxRequests;
use crate::resources::DisconnectReason;
use crate::wire::{InvList, InvType, Message, Tx};
use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Transaction};
use std::sync::{Arc, OnceLock};

/// The fixture's mempool (53 transactions valid on top of the fixture chain), in file order.
pub fn fixture_mempool() -> &'static [Transaction] {
    static T: OnceLock<Vec<Transaction>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/regtest-core");
        let text = std::fs::read_to_string(dir.join("mempool.hex")).expect("fixture present");
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| deserialize(&crate::chain::test_vectors::unhex(l)).unwrap())
            .collect()
    })
}

fn fixture_blocks() -> &'static [Block] {
    static B: OnceLock<Vec<Block>> = OnceLock::new();
    B.get_or_init(|| chain_blocks().iter().map(|raw| deserialize(raw).unwrap()).collect())
}

/// A relaying node out of IBD whose header tree and coins are the fixture chain's 2,100 blocks.
pub fn pool_node(limits: PoolLimits) -> TestNode {
    let mut node = TestNode::regtest();
    node.set_time_s(AFTER_FIXTURE_S);
    node.world.resource_mut::<Ibd>().active = false;
    let params = ChainParams::for_network(crate::wire::Network::Regtest);
    let mut coins = MemoryCoins::default();
    {
        let mut tree = node.world.resource_mut::<HeaderTree>();
        for (i, (raw, block)) in chain_blocks().iter().zip(fixture_blocks()).enumerate() {
            let hash = block.block_hash();
            tree.accept(&header_of(raw), hash, &params, AFTER_FIXTURE_S).unwrap();
            tree.mark_validated(&hash);
            coins.connect(block, i as u32 + 1);
        }
    }
    node.world.insert_resource(ChainCoins(Box::new(coins)));
    node.world.insert_resource(Mempool::new(limits));
    node
}

/// [`pool_node`] with the fixture's 53 transactions pooled (from an outbound peer).
pub fn fixture_pool_node() -> TestNode {
    let mut node = pool_node(PoolLimits::default());
    let from = ready_outbound(&mut node, "20.0.0.99:8333", true);
    for tx in fixture_mempool() {
        node.receive(from, &wire(tx));
    }
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 53);
    node
}

fn wire(tx: &Transaction) -> Message {
    Message::Tx(Tx::from_bitcoin(tx).unwrap())
}

fn ready_outbound(node: &mut TestNode, addr: &str, wtxid: bool) -> ConnId {
    let conn = node.connect_outbound(addr, Direction::OutboundFullRelay);
    node.receive(conn, &TestNode::peer_version(99 ^ conn.0));
    if wtxid {
        node.receive(conn, &Message::WtxidRelay);
    }
    node.receive(conn, &Message::Verack);
    node.sent_to(conn);
    conn
}

fn invs(msgs: &[Message]) -> Vec<(InvType, [u8; 32])> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Inv(l) => Some(l.iter().map(|e| (e.kind, e.hash)).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Elapses time in 1 s steps, collecting what `conn` was sent.
fn collect(node: &mut TestNode, conn: ConnId, seconds: u64) -> Vec<Message> {
    let mut all = Vec::new();
    for _ in 0..seconds {
        node.elapse(1_000);
        all.extend(node.sent_to(conn));
    }
    all
}

#[test]
fn cores_fixture_mempool_is_accepted_over_the_wire_and_announced_parents_first() {
    let mut node = pool_node(PoolLimits::default());
    let from = ready_outbound(&mut node, "20.0.0.1:8333", true);
    // An inbound peer that never offers wtxidrelay: it is told txids.
    let to = node.connect_inbound("10.0.0.9:1");
    node.receive(to, &TestNode::peer_version(5));
    node.receive(to, &Message::Verack);
    node.sent_to(to);
    for tx in fixture_mempool() {
        node.receive(from, &wire(tx));
    }
    node.tick();
    let pool = node.world.resource::<Mempool>();
    assert_eq!(pool.len(), 53, "rejected: {:?}", node.metrics().tx_rejected);
    assert_eq!(node.metrics().tx_accepted, 53);
    // The inbound peer negotiated txid relay: it is told txids, every one, each after its parents.
    let sent = invs(&collect(&mut node, to, 60));
    assert_eq!(sent.len(), 53);
    let position: ahash::AHashMap<[u8; 32], usize> = sent.iter().enumerate().map(|(i, (_, h))| (*h, i)).collect();
    for tx in fixture_mempool() {
        let me = position[&tx.compute_txid().to_byte_array()];
        for input in &tx.input {
            if let Some(p) = position.get(&input.previous_output.txid.to_byte_array()) {
                assert!(*p < me, "a parent is announced before its child");
            }
        }
    }
    assert!(sent.iter().all(|(k, _)| *k == InvType::TX));
    // The sender knows them all: nothing is announced back to it.
    assert!(invs(&collect(&mut node, from, 10)).is_empty());
    assert!(node.metrics().tx_forward_ms.count >= 53);
}

#[test]
fn an_orphan_waits_its_parent_is_asked_of_its_sender_then_both_enter() {
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.2:8333", true);
    let txs = fixture_mempool();
    // Find a child whose parent is in the fixture mempool.
    let (child, parent) = txs
        .iter()
        .find_map(|c| {
            let p = txs.iter().find(|p| c.input.iter().any(|i| i.previous_output.txid == p.compute_txid()))?;
            Some((c, p))
        })
        .expect("the fixture has chains");
    node.receive(peer, &wire(child));
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 0);
    assert_eq!(node.metrics().tx_orphaned, 1);
    let asked: Vec<(InvType, [u8; 32])> = node
        .sent_to(peer)
        .into_iter()
        .filter_map(|m| match m {
            Message::GetData(l) => Some(l.iter().map(|e| (e.kind, e.hash)).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(asked.contains(&(InvType::WITNESS_TX, parent.compute_txid().to_byte_array())), "{asked:?}");
    node.receive(peer, &wire(parent));
    node.tick();
    let pool = node.world.resource::<Mempool>();
    assert!(pool.get(&parent.compute_txid()).is_some());
    assert!(pool.get(&child.compute_txid()).is_some(), "the orphan was retried when its parent came");
}

#[test]
fn only_announced_transactions_are_served_the_rest_is_notfound() {
    let mut node = pool_node(PoolLimits::default());
    let from = ready_outbound(&mut node, "20.0.0.3:8333", true);
    let asker = ready_outbound(&mut node, "20.0.0.4:8333", true);
    let tx = &fixture_mempool()[0];
    node.receive(from, &wire(tx));
    let announced = invs(&collect(&mut node, asker, 30));
    let wtxid = tx.compute_wtxid().to_byte_array();
    assert_eq!(announced, vec![(InvType::WTX, wtxid)]);
    // A peer that arrives later was never told of it; asking is probing.
    let prober = node.ready_inbound("10.0.0.5:1");
    let mut l = InvList::default();
    l.push(InvType::WTX, wtxid);
    node.receive(prober, &Message::GetData(l.clone()));
    let reply = node.sent_to(prober);
    assert!(reply.iter().any(|m| matches!(m, Message::NotFound(n) if n.len() == 1)), "{reply:?}");
    assert!(!reply.iter().any(|m| matches!(m, Message::Tx(_))));
    node.receive(asker, &Message::GetData(l));
    let served: Vec<Message> = node.sent_to(asker);
    let got = served.iter().find_map(|m| match m {
        Message::Tx(t) => Some(t.wtxid()),
        _ => None,
    });
    assert_eq!(got, Some(tx.compute_wtxid()));
}

#[test]
fn a_mempool_request_without_permission_disconnects_with_it_lists_the_pool() {
    let mut node = pool_node(PoolLimits::default());
    let from = ready_outbound(&mut node, "20.0.0.5:8333", true);
    for tx in &fixture_mempool()[..5] {
        node.receive(from, &wire(tx));
    }
    let rude = node.ready_inbound("10.0.0.6:1");
    node.receive(rude, &Message::Mempool);
    assert_eq!(node.closed_reason(rude), Some(DisconnectReason::MempoolRequest));
    let allowed = node.ready_inbound("10.0.0.7:1");
    let entity = node.peer(allowed).unwrap();
    node.world.get_mut::<Permissions>(entity).unwrap().mempool = true;
    node.receive(allowed, &Message::Mempool);
    let listed = invs(&collect(&mut node, allowed, 30));
    assert_eq!(listed.len(), node.world.resource::<Mempool>().len());
    assert_eq!(node.state(allowed), Some(crate::components::PeerState::Ready));
    // A noban peer without the mempool permission: Core ignores its request, never disconnects.
    let trusted = node.ready_inbound("10.0.0.8:1");
    let entity = node.peer(trusted).unwrap();
    node.world.get_mut::<Permissions>(entity).unwrap().noban = true;
    node.receive(trusted, &Message::Mempool);
    assert_eq!(node.closed_reason(trusted), None);
    assert!(invs(&collect(&mut node, trusted, 30)).is_empty(), "nothing listed");
}

#[test]
fn a_double_spend_paying_less_is_refused_without_blame_an_overspend_is_counted() {
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.8:8333", true);
    let tx = fixture_mempool()[0].clone();
    node.receive(peer, &wire(&tx));
    node.tick();
    // Same inputs, one satoshi more output: less fee, a conflict — policy, no score.
    let mut rival = tx.clone();
    rival.output[0].value += bitcoin::Amount::from_sat(1);
    node.receive(peer, &wire(&rival));
    node.tick();
    assert_eq!(node.metrics().tx_rejected.iter().sum::<u64>(), 1);
    assert_eq!(node.state(peer), Some(crate::components::PeerState::Ready));
    // Outputs worth more than the inputs: a consensus failure, counted; Core (since v30) punishes
    // no invalid transaction.
    let mut overspend = fixture_mempool()[1].clone();
    overspend.output[0].value = bitcoin::Amount::from_sat(21_000_000 * 100_000_000 - 1);
    node.receive(peer, &wire(&overspend));
    node.tick();
    assert_eq!(node.metrics().misbehavior[crate::resources::Misbehavior::InvalidTransaction as usize], 1);
    assert_eq!(node.closed_reason(peer), None);
}

#[test]
fn a_block_takes_its_transactions_out_and_a_reorg_brings_them_back() {
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.9:8333", true);
    for tx in fixture_mempool() {
        node.receive(peer, &wire(tx));
    }
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 53);
    let first = fixture_mempool()[0].clone();
    let coinbase = fixture_blocks()[0].txdata[0].clone();
    let txs = Arc::new(vec![coinbase, first.clone()]);
    let hash = BlockHash::all_zeros();
    node.world.resource_mut::<BlockTxInbox>().0.push(BlockTxEvent::Connected { hash, height: 2101, txs: txs.clone() });
    node.tick();
    let pool = node.world.resource::<Mempool>();
    assert!(pool.get(&first.compute_txid()).is_none());
    assert_eq!(pool.len(), 52);
    // The memory coins do not know the block; the reorg's transaction comes back all the same
    // (its inputs are the chain's).
    node.world.resource_mut::<BlockTxInbox>().0.push(BlockTxEvent::Disconnected { hash, height: 2101, txs });
    node.tick();
    assert!(node.world.resource::<Mempool>().get(&first.compute_txid()).is_some());
    assert_eq!(node.metrics().tx_reorg_returned, 1);
}

#[test]
fn a_full_pool_evicts_and_its_raised_floor_goes_out_as_feefilter() {
    let one = crate::mempool::pool::usage_of(&fixture_mempool()[0]);
    let mut node = pool_node(PoolLimits { max_bytes: one * 12, ..PoolLimits::default() });
    let peer = ready_outbound(&mut node, "20.0.0.10:8333", true);
    // Sent right after the handshake: the relay floor, rounded down.
    let first_filter = node.get::<crate::components::TxInventory>(peer).unwrap().sent_feefilter;
    assert!(first_filter.is_some_and(|f| f <= 100), "relay floor at first: {first_filter:?}");
    for tx in fixture_mempool() {
        node.receive(peer, &wire(tx));
    }
    node.tick();
    let pool = node.world.resource::<Mempool>();
    assert!(pool.usage_bytes() <= one * 12);
    assert!(node.metrics().tx_evicted > 0);
    let mut pool = node.world.resource_mut::<Mempool>();
    let floor = pool.min_feerate(AFTER_FIXTURE_S as u64 * 1000);
    assert!(floor > 100, "the floor rose: {floor}");
    // Within the 5 minutes of a big change, the peer hears the higher floor.
    let later: Vec<i64> = collect(&mut node, peer, 330)
        .iter()
        .filter_map(|m| if let Message::FeeFilter(f) = m { Some(*f) } else { None })
        .collect();
    assert!(later.iter().any(|f| *f as u64 > 100), "{later:?}");
}

#[test]
fn a_long_intake_slows_relay_and_it_recovers() {
    let mut node = pool_node(PoolLimits::default());
    let _peer = ready_outbound(&mut node, "20.0.0.11:8333", true);
    let tx = Arc::new(fixture_mempool()[0].clone());
    {
        let mut intake = node.world.resource_mut::<TxIntake>();
        for _ in 0..TX_INTAKE_BACKLOG + 3_000 {
            assert!(intake.push(None, tx.clone()));
        }
    }
    // The announcer runs after the checker, which works through a bounded share per tick.
    node.tick();
    assert!(node.world.resource::<crate::resources::TxAnnounceState>().slowed);
    assert_eq!(node.world.resource::<TxRequests>().in_flight_cap, 25);
    for _ in 0..50 {
        node.tick();
    }
    assert!(!node.world.resource::<crate::resources::TxAnnounceState>().slowed);
    assert_eq!(node.world.resource::<TxRequests>().in_flight_cap, 100);
}

#[test]
fn our_own_transaction_is_announced_again_until_it_confirms() {
    use crate::mempool::local::{submit_local, Unbroadcast};
    let mut node = pool_node(PoolLimits::default());
    let first = ready_outbound(&mut node, "20.0.0.12:8333", true);
    let tx = fixture_mempool()[0].clone();
    // A test run changes nothing.
    assert!(submit_local(&mut node.world, tx.clone(), true).is_ok());
    assert!(node.world.resource::<Mempool>().is_empty());
    submit_local(&mut node.world, tx.clone(), false).unwrap();
    let wtxid = tx.compute_wtxid().to_byte_array();
    assert_eq!(invs(&collect(&mut node, first, 30)), vec![(InvType::WTX, wtxid)]);
    // A peer that came later hears of it at the next re-announcement (≤ 15 min), and may fetch it.
    let late = ready_outbound(&mut node, "20.0.0.13:8333", true);
    assert_eq!(invs(&collect(&mut node, late, 16 * 60)), vec![(InvType::WTX, wtxid)]);
    let mut l = InvList::default();
    l.push(InvType::WTX, wtxid);
    node.receive(late, &Message::GetData(l));
    assert!(node.sent_to(late).iter().any(|m| matches!(m, Message::Tx(_))));
    assert_eq!(node.world.resource::<Unbroadcast>().requested, 1);
    assert!(node.world.resource::<Unbroadcast>().txids.contains(&tx.compute_txid()), "kept until it confirms");
    // A block confirms it: the next re-announcement round lets it go.
    let coinbase = fixture_blocks()[0].txdata[0].clone();
    let txs = Arc::new(vec![coinbase, tx.clone()]);
    node.world.resource_mut::<BlockTxInbox>().0.push(BlockTxEvent::Connected {
        hash: BlockHash::all_zeros(),
        height: 2_101,
        txs,
    });
    collect(&mut node, late, 16 * 60);
    assert!(node.world.resource::<Unbroadcast>().txids.is_empty());
}

#[test]
fn under_backpressure_the_noisiest_peers_announcements_are_shed_first() {
    use crate::systems::inv_filter::NOISY_PEER_ANNOUNCEMENTS;
    let mut node = pool_node(PoolLimits::default());
    let noisy = ready_outbound(&mut node, "20.0.0.14:8333", true);
    let quiet = ready_outbound(&mut node, "20.0.0.15:8333", true);
    let hash = |i: u32, salt: u8| {
        let mut h = [salt; 32];
        h[..4].copy_from_slice(&i.to_le_bytes());
        h
    };
    let inv = |from: u32, to: u32, salt: u8| {
        let mut l = InvList::default();
        for i in from..to {
            l.push(InvType::WTX, hash(i, salt));
        }
        Message::Inv(l)
    };
    node.receive(noisy, &inv(0, NOISY_PEER_ANNOUNCEMENTS as u32 + 500, 1));
    assert_eq!(node.metrics().tx_announcements_shed, 0, "nothing is shed while relay keeps up");
    node.world.resource_mut::<crate::resources::TxAnnounceState>().slowed = true;
    {
        // Keep the checker lagging so the announcer does not lift the slowdown this tick.
        let tx = Arc::new(fixture_mempool()[0].clone());
        let mut intake = node.world.resource_mut::<TxIntake>();
        for _ in 0..TX_INTAKE_BACKLOG * 4 {
            assert!(intake.push(None, tx.clone()));
        }
    }
    node.receive(noisy, &inv(0, 100, 2));
    node.receive(quiet, &inv(0, 100, 3));
    assert_eq!(node.metrics().tx_announcements_shed, 100, "only the noisy peer's");
    let entity = node.peer(quiet).unwrap();
    assert_eq!(node.world.resource::<TxRequests>().announced_by(entity), 100);
}

#[test]
fn blocksonly_refuses_peer_transactions_but_still_announces_our_own() {
    let mut node = pool_node(PoolLimits::default());
    node.world.resource_mut::<crate::resources::Config>().relay = false;
    let peer = ready_outbound(&mut node, "20.0.0.16:8333", true);
    let tx = fixture_mempool()[0].clone();
    crate::mempool::local::submit_local(&mut node.world, tx.clone(), false).unwrap();
    let sent = collect(&mut node, peer, 30);
    assert_eq!(invs(&sent), vec![(InvType::WTX, tx.compute_wtxid().to_byte_array())]);
    assert!(!sent.iter().any(|m| matches!(m, Message::FeeFilter(_))), "no filter: we take no transactions");
    node.receive(peer, &wire(&fixture_mempool()[1]));
    assert_eq!(node.closed_reason(peer), Some(DisconnectReason::TxRelayViolation));
    assert_eq!(node.world.resource::<Mempool>().len(), 1);
}

#[test]
fn arrivals_wait_while_the_coins_catch_up_with_the_chain() {
    let mut node = pool_node(PoolLimits::default());
    node.world.insert_resource(crate::mempool::CoinsTip(Some(2_099)));
    let peer = ready_outbound(&mut node, "20.0.0.17:8333", true);
    node.receive(peer, &wire(&fixture_mempool()[0]));
    node.tick();
    let m = node.metrics();
    assert_eq!((m.tx_accepted, m.tx_orphaned, m.tx_rejected.iter().sum::<u64>()), (0, 0, 0), "held, not misjudged");
    assert_eq!(node.world.resource::<TxIntake>().len(), 1);
    // The coin store reports block 2,100 applied: the held transaction is checked.
    let block = &fixture_blocks()[2_099];
    let txs = Arc::new(block.txdata.clone());
    node.world.resource_mut::<BlockTxInbox>().0.push(BlockTxEvent::Connected {
        hash: block.block_hash(),
        height: 2_100,
        txs,
    });
    node.tick();
    assert_eq!(node.metrics().tx_accepted, 1);
}

#[test]
fn after_a_reorg_the_pool_is_checked_again_and_relinked() {
    use crate::mempool::pool::Removal;
    let txs = fixture_mempool();
    let (child, parent) = txs
        .iter()
        .find_map(|c| {
            let p = txs.iter().find(|p| c.input.iter().any(|i| i.previous_output.txid == p.compute_txid()))?;
            // A child whose only pooled ancestor is this parent.
            let parents_in_pool =
                c.input.iter().filter(|i| txs.iter().any(|t| t.compute_txid() == i.previous_output.txid)).count();
            (parents_in_pool == 1
                && p.input.iter().all(|i| !txs.iter().any(|t| t.compute_txid() == i.previous_output.txid)))
            .then_some((c, p))
        })
        .expect("a parent with confirmed inputs and its child");
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.18:8333", true);
    // The parent is confirmed in block 2,101: the chain's coins hold its outputs.
    let before = {
        let mut coins = MemoryCoins::default();
        for (i, b) in fixture_blocks().iter().enumerate() {
            coins.connect(b, i as u32 + 1);
        }
        coins
    };
    let block = Block {
        header: fixture_blocks()[0].header,
        txdata: vec![fixture_blocks()[0].txdata[0].clone(), parent.clone()],
    };
    let mut after = MemoryCoins::default();
    for (i, b) in fixture_blocks().iter().enumerate() {
        after.connect(b, i as u32 + 1);
    }
    after.connect(&block, 2_101);
    node.world.insert_resource(ChainCoins(Box::new(after)));
    node.receive(peer, &wire(child));
    node.tick();
    let c = child.compute_txid();
    assert!(
        node.world.resource::<Mempool>().get(&c).is_some_and(|e| e.parents.is_empty()),
        "its parent is in the chain"
    );
    // The block is disconnected: the coins lose the parent's outputs and the parent returns.
    node.world.insert_resource(ChainCoins(Box::new(before)));
    let txs = Arc::new(block.txdata.clone());
    node.world.resource_mut::<BlockTxInbox>().0.push(BlockTxEvent::Disconnected {
        hash: block.block_hash(),
        height: 2_101,
        txs,
    });
    node.tick();
    let pool = node.world.resource::<Mempool>();
    let p = parent.compute_txid();
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.get(&c).unwrap().parents.to_vec(), vec![p], "the child is linked to its returned parent");
    let (pe, ce) = (pool.get(&p).unwrap(), pool.get(&c).unwrap());
    assert_eq!(pe.desc_fee_sat, pe.fee_sat + ce.fee_sat, "the parent's package counts its child again");
    assert_eq!(pool.removed[Removal::Reorg as usize], 0);
}

#[test]
fn a_pool_entry_whose_coins_a_reorg_took_away_leaves() {
    use crate::mempool::pool::Removal;
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.19:8333", true);
    let tx = fixture_mempool()[0].clone();
    node.receive(peer, &wire(&tx));
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 1);
    // A reorg whose new chain spent the same coins: the coins no longer hold its inputs.
    node.world.insert_resource(ChainCoins(Box::new(MemoryCoins::default())));
    let empty = Arc::new(vec![fixture_blocks()[0].txdata[0].clone()]);
    node.world.resource_mut::<BlockTxInbox>().0.push(BlockTxEvent::Disconnected {
        hash: BlockHash::all_zeros(),
        height: 2_100,
        txs: empty,
    });
    node.tick();
    let pool = node.world.resource::<Mempool>();
    assert!(pool.is_empty());
    assert_eq!(pool.removed[Removal::Reorg as usize], 1);
}

#[test]
fn the_intake_holds_five_thousand_and_drops_the_next_counted() {
    use crate::mempool::intake::TX_INTAKE_MAX;
    let mut node = pool_node(PoolLimits::default());
    // Coins lagging keep the checker from draining the intake while it fills.
    node.world.insert_resource(crate::mempool::CoinsTip(Some(2_099)));
    let peer = ready_outbound(&mut node, "20.0.0.20:8333", true);
    let msg = wire(&fixture_mempool()[0]);
    for _ in 0..TX_INTAKE_MAX + 1 {
        node.receive(peer, &msg);
    }
    assert_eq!(node.world.resource::<TxIntake>().len(), TX_INTAKE_MAX);
    assert_eq!(node.metrics().tx_intake_dropped, 1);
}

#[test]
fn a_peers_queue_of_transaction_getdata_stops_at_five_thousand() {
    use crate::systems::GETDATA_QUEUE_MAX;
    use crate::wire::MAX_INV_ENTRIES;
    assert_eq!(GETDATA_QUEUE_MAX, 5_000);
    let mut node = pool_node(PoolLimits::default());
    node.world.resource_mut::<crate::resources::Config>().limits.send_queue_bytes_soft = 1;
    let from = ready_outbound(&mut node, "20.0.0.21:8333", true);
    let asker = ready_outbound(&mut node, "20.0.0.22:8333", true);
    let tx = &fixture_mempool()[0];
    node.receive(from, &wire(tx));
    assert_eq!(invs(&collect(&mut node, asker, 30)).len(), 1);
    // The asker reads nothing: one answer fills its send queue past the (tiny) soft bound.
    node.stall_reader(asker);
    // Two legal getdata of 50,000 entries each: 5,000 wait, the rest are dropped and counted
    // (one answer per tick goes out as the writer takes the previous one).
    let mut l = InvList::with_capacity(MAX_INV_ENTRIES);
    for _ in 0..MAX_INV_ENTRIES {
        l.push(InvType::WTX, tx.compute_wtxid().to_byte_array());
    }
    node.receive(asker, &Message::GetData(l.clone()));
    node.receive(asker, &Message::GetData(l));
    let inv = node.get::<crate::components::TxInventory>(asker).unwrap();
    assert!(inv.getdata.len() <= GETDATA_QUEUE_MAX && inv.getdata.len() >= GETDATA_QUEUE_MAX - 2);
    let dropped = node.metrics().tx_getdata_dropped;
    let expected = (2 * MAX_INV_ENTRIES - GETDATA_QUEUE_MAX) as u64;
    assert!(dropped <= expected && dropped >= expected - 2, "dropped {dropped}");
}

#[test]
fn a_transaction_accepted_during_a_peers_handshake_is_announced_once_it_is_ready() {
    let mut node = pool_node(PoolLimits::default());
    let from = ready_outbound(&mut node, "20.0.0.1:8333", true);
    // Its version is in, its verack not yet: relay state exists, announcements wait.
    let between = node.connect_inbound("10.0.0.9:1");
    node.receive(between, &TestNode::peer_version(0x77));
    // A peer that has not even sent its version is not queued for (Core has no relay state yet).
    let silent = node.connect_inbound("10.0.0.10:1");
    let tx = &fixture_mempool()[0];
    node.receive(from, &wire(tx));
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 1);
    assert!(invs(&collect(&mut node, between, 10)).is_empty(), "nothing before its verack");
    node.receive(between, &Message::Verack);
    node.receive(silent, &TestNode::peer_version(0x78));
    node.receive(silent, &Message::Verack);
    assert_eq!(invs(&collect(&mut node, between, 30)), vec![(InvType::TX, tx.compute_txid().to_byte_array())]);
    assert!(invs(&collect(&mut node, silent, 30)).is_empty());
}

/// A transaction spending nothing we know, padded by a witness item of `witness_bytes`
/// (`salt` makes each one distinct).
fn padded_tx(witness_bytes: usize, salt: u32) -> Transaction {
    use bitcoin::{absolute::LockTime, transaction::Version, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(salt),
        input: vec![TxIn {
            previous_output: OutPoint { txid: bitcoin::Txid::from_byte_array([7; 32]), vout: salt },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x42; witness_bytes]]),
        }],
        output: vec![TxOut {
            value: bitcoin::Amount::from_sat(10_000),
            script_pubkey: ScriptBuf::from_bytes(vec![0x00, 0x14].into_iter().chain([9; 20]).collect()),
        }],
    }
}

#[test]
fn an_oversized_transaction_is_refused_on_its_raw_bytes_and_a_resent_reject_costs_no_decode() {
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.30:8333", true);
    // Weight over 400,000 (its witness alone is 400,001 weight units): refused on its span, before
    // it is hashed or decoded, every time it comes.
    let big = padded_tx(400_001, 1);
    assert!(big.weight().to_wu() > 400_000);
    for sent in 1..=2 {
        node.receive(peer, &wire(&big));
        node.tick();
        assert_eq!(node.metrics().tx_rejected[TxReject::TxSize as usize], sent);
        assert!(node.world.resource::<TxIntake>().is_empty(), "never handed to the checker");
    }
    // A policy reject (dust) is checked once; sent again, it is dropped undecoded by its wtxid.
    let mut dust = fixture_mempool()[0].clone();
    dust.output[0].value = bitcoin::Amount::from_sat(1);
    node.receive(peer, &wire(&dust));
    node.tick();
    assert_eq!(node.metrics().tx_rejected.iter().sum::<u64>(), 3, "{:?}", node.metrics().tx_rejected);
    node.receive(peer, &wire(&dust));
    node.tick();
    assert_eq!(node.metrics().tx_recently_rejected, 1);
    assert_eq!(node.metrics().tx_rejected.iter().sum::<u64>(), 3);
    assert_eq!(node.state(peer), Some(crate::components::PeerState::Ready), "policy rejects do not score");
}

#[test]
fn the_intake_is_bounded_in_bytes_and_one_tick_checks_a_bounded_amount_of_work() {
    use crate::mempool::intake::{check_units, TX_CHECK_UNITS_PER_TICK, TX_INTAKE_BYTES_MAX};
    let mut node = pool_node(PoolLimits::default());
    node.world.insert_resource(crate::mempool::CoinsTip(Some(2_099)));
    let peer = ready_outbound(&mut node, "20.0.0.31:8333", true);
    // 300 KB transactions (standard weight): 16 MB holds 53 of them, not 60.
    let txs: Vec<Transaction> = (0..60).map(|i| padded_tx(300_000, i)).collect();
    for tx in &txs {
        node.receive(peer, &wire(tx));
    }
    let intake = node.world.resource::<TxIntake>();
    assert!(intake.bytes() <= TX_INTAKE_BYTES_MAX, "{} bytes", intake.bytes());
    assert_eq!(intake.len(), TX_INTAKE_BYTES_MAX / txs[0].total_size());
    assert_eq!(node.metrics().tx_intake_dropped, 60 - intake.len() as u64);
    // The coins reach the tip: one tick checks only what its budget allows (each ≈ 76 units).
    let held = intake.len();
    node.world.insert_resource(crate::mempool::CoinsTip(Some(2_100)));
    node.tick();
    let per_tick = held - node.world.resource::<TxIntake>().len();
    let units = check_units(&txs[0]);
    assert!(units > 70, "{units}");
    assert_eq!(per_tick, TX_CHECK_UNITS_PER_TICK.div_ceil(units), "checked in one tick");
}

#[test]
fn a_reorgs_recheck_of_the_pool_is_spread_over_ticks_and_arrivals_wait_for_it() {
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.32:8333", true);
    let txs = fixture_mempool();
    for tx in &txs[..52] {
        node.receive(peer, &wire(tx));
    }
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 52);
    // A tick may check ten entries' worth; a block with only its coinbase is disconnected.
    node.world.resource_mut::<TxIntake>().check_units_per_tick = 10;
    let coinbase = fixture_blocks()[0].txdata[0].clone();
    node.world.resource_mut::<BlockTxInbox>().0.push(BlockTxEvent::Disconnected {
        hash: BlockHash::all_zeros(),
        height: 2_100,
        txs: Arc::new(vec![coinbase]),
    });
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 10, "ten entries back after one tick");
    // An arrival meanwhile waits until the pool is whole again.
    node.receive(peer, &wire(&txs[52]));
    let mut ticks = 2; // the disconnect's and the arrival's
    while !node.world.resource::<TxIntake>().repool.is_empty() {
        assert_eq!(node.world.resource::<TxIntake>().len(), 1, "the arrival waits");
        node.tick();
        ticks += 1;
    }
    assert_eq!(ticks, 6, "52 entries at 10 a tick");
    node.tick();
    assert_eq!(node.world.resource::<Mempool>().len(), 53);
    assert!(node.world.resource::<TxIntake>().is_empty());
}

#[test]
fn a_consensus_invalid_transaction_is_rejected_and_counted_never_punished_as_core_since_v30() {
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.30:8333", true);
    let mut tx = fixture_mempool()[0].clone();
    tx.output[0].value = bitcoin::Amount::from_sat(21_000_000 * 100_000_000); // more than it spends
    for _ in 0..3 {
        node.receive(peer, &wire(&tx));
        node.tick();
    }
    assert_eq!(node.metrics().misbehavior[crate::resources::Misbehavior::InvalidTransaction as usize], 1);
    assert_eq!(node.metrics().tx_recently_rejected, 2, "remembered: the copies are refused unread");
    assert_eq!(node.closed_reason(peer), None);
    assert_eq!(node.get::<crate::components::Score>(peer).unwrap().points, 0);
    assert_eq!(node.world.resource::<Mempool>().len(), 0);
    // Kept for compact block reconstruction, once (the copies were refused unread).
    let extra = node.world.resource::<crate::mempool::extra::ExtraTxns>();
    assert_eq!(extra.iter().filter(|(w, _)| *w == tx.compute_wtxid()).count(), 1);
}

#[test]
fn the_empty_transaction_form_is_rejected_as_core_rejects_it_not_dropped_as_malformed() {
    // Version, no inputs, a zero, lock time: Core reads an empty transaction and its checks refuse
    // it as bad-txns-vin-empty (no punishment since v30). oni used to drop it as malformed.
    let mut node = pool_node(PoolLimits::default());
    let peer = ready_outbound(&mut node, "20.0.0.10:8333", true);
    let raw = [2u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let tx = crate::wire::Tx::decode(&raw).expect("Core's empty form");
    node.receive(peer, &Message::Tx(tx));
    node.tick();
    node.tick();
    assert_eq!(node.metrics().tx_rejected[TxReject::VinEmpty as usize], 1, "{:?}", node.metrics().tx_rejected);
    assert_eq!(node.metrics().decode_errors.iter().sum::<u64>(), 0, "not counted malformed");
    assert_eq!(node.closed_reason(peer), None);
}
