//! block_download: the block scheduler. Applies the validator's reports (connected → new
//! validated tip and a decayed stalling timeout; disconnected → the tip steps back; rejected for a
//! consensus reason → block and descendants invalid, sender scored; rejected otherwise → fetched
//! again), takes `block` messages (latency recorded per peer and in a histogram, blocks queued for
//! the validator), and requests blocks with `getdata` (witness) in a window of 1,024 beyond the last
//! block our validated chain shares with the best header chain, ≤ 16 in flight per peer, each
//! peer given the lowest heights it can serve. When the window cannot move because one peer holds
//! its first block, that peer gets the adaptive stalling timeout (2 s doubling to 64 s, ×0.85 per
//! connected block) and is disconnected when it expires; its blocks go to others. A peer whose
//! oldest request is older than 10 min + 5 min per other downloading peer is disconnected too
//! (Core's block download timeout, simplified to whole minutes). Nothing is requested while the
//! validation queue is over its bound (backpressure).
//!
//! Unrequested blocks: accepted when they extend our validated tip outside IBD (a new tip pushed
//! by an old-style peer, as Core accepts new tips), otherwise dropped and counted as
//! `UnrequestedBlock` with no score, as Core: a peer's copy of a block it was asked for turns
//! unrequested when a third party delivered it first, and must not cost that peer anything.

use crate::chain::compact_relay::RecentBlock;
use crate::chain::tree::status;
use crate::chain::validation::RejectReason;
use crate::chain::{
    BlockRelay, HeaderTree, Ibd, PeerBlocks, PeerChain, Requested, SyncConfig, SyncState, ValidateBlock,
    ValidationEvent,
};
use crate::chain::{CompactRelay, ValidationInbox, ValidationQueue};
use crate::components::{ConnId, Direction, Disconnect, PeerState, Received, SendQueue, Socket, Stats, Violations};
use crate::resources::{ChainTip, Clock, Config, ConnIndex, DisconnectReason, Metrics, Misbehavior, Rng};
use crate::wire::{InvList, InvType, Message};
use ahash::AHashSet;
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use std::collections::VecDeque;

/// The peer entity's parts the scheduler uses.
type DownloadPeer<'a> = (
    Entity,
    &'a Socket,
    &'a PeerState,
    &'a mut Received,
    &'a mut SendQueue,
    &'a mut Violations,
    &'a mut Stats,
    &'a mut PeerChain,
    &'a mut PeerBlocks,
    &'a crate::components::Negotiated,
);

/// Node-wide inputs of the scheduler.
#[derive(bevy_ecs::system::SystemParam)]
pub struct DownloadCtx<'w> {
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    sync: Res<'w, SyncConfig>,
    ibd: Res<'w, Ibd>,
    tree: ResMut<'w, HeaderTree>,
    state: ResMut<'w, SyncState>,
    queue: ResMut<'w, ValidationQueue>,
    inbox: ResMut<'w, ValidationInbox>,
    tip: ResMut<'w, ChainTip>,
    metrics: ResMut<'w, Metrics>,
    index: Res<'w, ConnIndex>,
    relay: ResMut<'w, BlockRelay>,
    compact: ResMut<'w, CompactRelay>,
    rng: ResMut<'w, Rng>,
    params: Res<'w, crate::chain::ChainParams>,
}

/// One scheduler step.
pub fn block_download(
    mut peers: Query<DownloadPeer, Without<Disconnect>>,
    directions: Query<&Direction>,
    mut ctx: DownloadCtx,
    mut commands: Commands,
) {
    let now = ctx.clock.now_ms;
    let blamed = apply_validation_events(&mut ctx);
    for (conn, reason) in blamed {
        if let Some(&e) = ctx.index.0.get(&conn) {
            let inbound = directions.get(e).is_ok_and(|d| *d == Direction::Inbound);
            let violation = match reason {
                // Core's BLOCK_CACHED_INVALID: punished from peers we dialed only.
                RejectReason::CachedInvalid if inbound => Misbehavior::KnownInvalidInbound,
                RejectReason::CachedInvalid => Misbehavior::KnownInvalid,
                _ => Misbehavior::InvalidBlock,
            };
            if let Ok((.., mut violations, _, _, _, _)) = peers.get_mut(e) {
                violations.0.push(violation);
            }
        }
    }
    // Blocks arriving, and timeouts.
    let downloading = peers.iter().filter(|p| !p.8.in_flight.is_empty()).count();
    // Live peers' links: a plain list (a set is built only on the rare paths that need one).
    let mut live: Vec<ConnId> = Vec::with_capacity(peers.iter().len());
    let mut live_in_flight = 0usize;
    for (entity, socket, state, mut received, _, mut violations, mut stats, mut pc, mut pb, _) in &mut peers {
        if *state != PeerState::Ready {
            continue;
        }
        if received.0.iter().any(|m| matches!(m, Message::Block(_))) {
            let msgs = std::mem::take(&mut received.0);
            for m in msgs {
                match m {
                    Message::Block(b) => {
                        let inbound = directions.get(entity).is_ok_and(|d| *d == Direction::Inbound);
                        let peer =
                            BlockSender { conn: socket.conn, inbound, pc: &mut pc, pb: &mut pb, stats: &mut stats };
                        on_block(&mut ctx, peer, &mut violations, &b)
                    }
                    other => received.0.push(other),
                }
            }
        }
        // Blocks another peer delivered first are no longer ours to wait for.
        if !ctx.state.taken_from.is_empty() && ctx.state.taken_from.remove(&socket.conn) {
            pb.in_flight.retain(|r| ctx.state.in_flight.get(&r.hash) == Some(&socket.conn));
        }
        if let Some(since) = pb.stalling_since_ms {
            if now.saturating_sub(since) > ctx.state.stalling_timeout_ms {
                tracing::info!(
                    peer = socket.conn.0,
                    timeout_ms = ctx.state.stalling_timeout_ms,
                    "peer is stalling block download"
                );
                commands.entity(entity).insert(Disconnect { reason: DisconnectReason::BlockStalling });
                ctx.state.sideline(socket.addr, now);
                ctx.state.stalling_timeout_ms =
                    (ctx.state.stalling_timeout_ms * 2).min(ctx.sync.stalling_timeout_max_ms);
                continue;
            }
        }
        if let Some(first) = pb.in_flight.front() {
            let others = downloading.saturating_sub(1) as u64;
            let limit = ctx.sync.download_timeout_base_ms + ctx.sync.download_timeout_per_peer_ms * others;
            if now.saturating_sub(pb.downloading_since_ms.max(first.at_ms)) > limit {
                tracing::info!(peer = socket.conn.0, "block download timeout");
                commands.entity(entity).insert(Disconnect { reason: DisconnectReason::BlockDownloadTimeout });
                continue;
            }
        }
        live.push(socket.conn);
        live_in_flight += pb.in_flight.len();
    }
    // Requests held by peers that are gone or going are free again (only when some are).
    if live_in_flight != ctx.state.in_flight.len() {
        let live: AHashSet<ConnId> = live.iter().copied().collect();
        ctx.state.in_flight.retain(|_, c| live.contains(c));
        let SyncState { taken_from, .. } = &mut *ctx.state;
        taken_from.retain(|c| live.contains(c));
    }
    let staller = if ctx.queue.pending_count() >= ctx.sync.validation_pending_blocks_max
        || ctx.queue.pending_bytes >= ctx.sync.validation_pending_bytes_max
    {
        ctx.state.backpressure_ticks += 1;
        None
    } else {
        schedule(&mut peers, &mut ctx, &mut live)
    };
    // A peer stalls while it holds up the window without a break, whatever else it delivers.
    // Core clears the mark on every block the peer delivers, so a peer that trickles — one block
    // every 2 s, always the window's first — is never dropped there; here the mark stays while the
    // window waits on it tick after tick, and goes the first tick it does not.
    for (_, socket, .., mut pb, _) in &mut peers {
        if staller == Some(socket.conn) {
            if pb.stalling_since_ms.is_none() {
                tracing::debug!(peer = socket.conn.0, "stalling block download");
                pb.stalling_since_ms = Some(now);
            }
        } else if pb.stalling_since_ms.is_some() {
            pb.stalling_since_ms = None;
        }
    }
}

fn apply_validation_events(ctx: &mut DownloadCtx) -> Vec<(ConnId, RejectReason)> {
    let mut blamed = Vec::new();
    for ev in std::mem::take(&mut ctx.inbox.0) {
        match ev {
            ValidationEvent::Taken { hash } => ctx.queue.done(&hash),
            ValidationEvent::Stored { hash } | ValidationEvent::AlreadyKnown { hash } => {
                ctx.queue.done(&hash);
                ctx.compact.via_compact.remove(&hash);
            }
            ValidationEvent::Connected { hash, height } => {
                ctx.queue.done(&hash);
                if let Some(heard) = ctx.relay.take_arriving(&hash) {
                    ctx.metrics.block_arrival_ms.record(ctx.clock.now_ms.saturating_sub(heard));
                }
                ctx.compact.via_compact.remove(&hash);
                // A peer whose block became our tip while nothing else was being fetched is a
                // candidate for high-bandwidth compact blocks (Core's BlockChecked).
                if let Some(from) = ctx.state.block_from.remove(&hash) {
                    if !ctx.ibd.active && ctx.state.in_flight.is_empty() {
                        ctx.compact.block_sources.push(from);
                    }
                }
                if ctx.tree.mark_validated(&hash).is_some() {
                    ctx.tip.height = height as i32;
                }
                let decayed = ctx.state.stalling_timeout_ms * ctx.sync.stalling_decay_permille / 1000;
                ctx.state.stalling_timeout_ms = decayed.max(ctx.sync.stalling_timeout_min_ms);
            }
            ValidationEvent::Disconnected { hash, height } => {
                if ctx.tree.mark_disconnected(&hash).is_some() {
                    ctx.tip.height = height as i32 - 1;
                }
            }
            ValidationEvent::Rejected { hash, reason } => {
                ctx.queue.done(&hash);
                tracing::info!(%hash, reason = reason.label(), "block rejected by the validator");
                if let Some(idx) = ctx.tree.get(&hash) {
                    if reason.invalidates_header() {
                        ctx.tree.invalidate(idx);
                    } else {
                        // Not this header's fault (out of order, mutated, the validator's own
                        // failure): the block is fetched again, from whoever has it.
                        ctx.tree.clear_have_data(idx);
                    }
                }
                let from = ctx.state.block_from.remove(&hash);
                // BIP152 lets peers relay a compact block before validating it: Core punishes
                // its consensus failures only when the block came whole.
                let via_compact = ctx.compact.via_compact.remove(&hash);
                if reason.blames_sender() && !(via_compact && reason.relayable_unvalidated()) {
                    blamed.extend(from.map(|c| (c, reason)));
                }
            }
            ValidationEvent::Tip { hash, .. } => {
                if let Some(idx) = ctx.tree.get(&hash) {
                    ctx.relay.validator_tip = Some(idx);
                }
            }
            ValidationEvent::Durable { .. } | ValidationEvent::Fatal { .. } => {}
        }
    }
    blamed
}

/// The peer a block came from, as on_block needs it.
struct BlockSender<'a> {
    conn: ConnId,
    /// It dialed us (a header it sends that we know to be invalid is not its fault).
    inbound: bool,
    pc: &'a mut PeerChain,
    pb: &'a mut PeerBlocks,
    stats: &'a mut Stats,
}

fn on_block(ctx: &mut DownloadCtx, peer: BlockSender, violations: &mut Violations, block: &crate::wire::Block) {
    let BlockSender { conn, inbound, pc, pb, stats } = peer;
    let now = ctx.clock.now_ms;
    let hash = block.block_hash();
    let mut idx = ctx.tree.get(&hash);
    if idx.is_none() && !ctx.ibd.active {
        // A new tip pushed whole, its header unannounced (an old-style miner; Core takes the
        // header from the block): the header goes through the same checks as any header.
        let tip = ctx.tree.entry(ctx.relay.served_tip(&ctx.tree)).hash;
        if block.header_bytes()[4..36] == tip.as_byte_array()[..] {
            match ctx.tree.accept(block.header_bytes(), hash, &ctx.params, ctx.clock.unix_s()) {
                Ok((i, _)) => {
                    ctx.queue.headers.push(*block.header_bytes());
                    idx = Some(i);
                }
                Err(e) => {
                    violations.0.push(crate::systems::headers_sync::misbehavior_of(e, inbound));
                    return;
                }
            }
        }
    }
    if let Some(idx) = idx {
        // It has the block: never announce it back.
        pc.note_known(&ctx.tree, idx);
    }
    if let Some(pos) = pb.in_flight.iter().position(|r| r.hash == hash) {
        let Some(r) = pb.in_flight.remove(pos) else { return };
        let latency = now.saturating_sub(r.at_ms);
        pb.last_latency_ms = Some(latency);
        pb.avg_latency_ms = Some(pb.avg_latency_ms.map_or(latency, |a| (a * 7 + latency) / 8));
        pb.blocks_received += 1;
        ctx.metrics.block_download_ms.record(latency);
        if pos == 0 {
            pb.downloading_since_ms = pb.downloading_since_ms.max(now);
        }
        ctx.state.in_flight.remove(&hash);
    } else if let Some(holder) = ctx.state.in_flight.remove(&hash) {
        // Asked of another peer; take it from whoever delivers first.
        ctx.state.taken_from.insert(holder);
    } else {
        let extends_tip = idx.is_some_and(|i| {
            let e = ctx.tree.entry(i);
            e.parent == ctx.relay.served_tip(&ctx.tree) && e.status & status::HAVE_DATA == 0
        });
        if !extends_tip || ctx.ibd.active {
            ctx.state.unrequested_blocks += 1;
            violations.0.push(Misbehavior::UnrequestedBlock);
            return;
        }
    }
    let Some(idx) = idx else { return };
    let e = ctx.tree.entry(idx);
    if e.status & (status::HAVE_DATA | status::FAILED_ANY) != 0 {
        return;
    }
    let height = e.height;
    // A block that extends our tip is kept whole with its compact form: high-bandwidth peers get
    // it before it is validated, and getblocktxn for it needs no read.
    if e.parent == ctx.relay.served_tip(&ctx.tree) && !ctx.ibd.active {
        let nonce = ctx.rng.next_u64();
        ctx.compact.recent = Some(RecentBlock::new(block.clone(), idx, nonce, ctx.config.network));
    }
    let ahead = ctx.tree.headers_ahead_of(idx);
    ctx.tree.set_have_data(idx);
    stats.last_block_ms = Some(now);
    ctx.state.block_from.insert(hash, conn);
    ctx.queue.push(ValidateBlock { hash, height, bytes: block.raw().to_vec(), ahead });
}

/// Requests blocks; returns the peer holding up the window while another could fetch beyond it.
fn schedule(
    peers: &mut Query<DownloadPeer, Without<Disconnect>>,
    ctx: &mut DownloadCtx,
    live: &mut [ConnId],
) -> Option<ConnId> {
    let now = ctx.clock.now_ms;
    let tree = &ctx.tree;
    let base = tree.fork_point_with_active(tree.validated_tip());
    let base_h = tree.entry(base).height;
    let best_h = tree.best_entry().height;
    if best_h <= base_h {
        return None;
    }
    live.sort_unstable();
    let window_end = base_h + ctx.sync.window_blocks;
    // Heights to request, lowest first, and who holds the lowest block in flight.
    let mut needed: VecDeque<u32> = VecDeque::new();
    let mut waiting_for: Option<ConnId> = None;
    for h in base_h + 1..=window_end.min(best_h) {
        let Some(idx) = tree.active_at(h) else { break };
        let e = tree.entry(idx);
        if e.status & status::HAVE_DATA != 0 {
            continue;
        }
        match ctx.state.in_flight.get(&e.hash) {
            Some(c) => {
                if waiting_for.is_none() {
                    waiting_for = Some(*c);
                }
            }
            None => needed.push_back(h),
        }
    }
    // A block just past the window that nobody is fetching: the window is what holds us up.
    let beyond = tree.active_at(window_end + 1).is_some_and(|idx| {
        let e = tree.entry(idx);
        e.status & status::HAVE_DATA == 0 && !ctx.state.in_flight.contains_key(&e.hash)
    });
    let mut staller = None;
    let mut order: Vec<(ConnId, Entity)> = peers
        .iter()
        .filter(|p| *p.2 == PeerState::Ready && live.binary_search(&p.1.conn).is_ok())
        .map(|p| (p.1.conn, p.0))
        .collect();
    order.sort_unstable();
    // A recent staller is asked only when no one else can serve.
    let sidelined = |e: Entity| peers.get(e).is_ok_and(|p| ctx.state.is_sidelined(p.1.addr, now));
    if order.iter().any(|&(_, e)| !sidelined(e) && peers.get(e).is_ok_and(|p| p.7.best_known.is_some())) {
        order.retain(|&(_, e)| !sidelined(e));
    }
    for (conn, entity) in order {
        let Ok((_, _, _, _, mut sq, _, _, mut pc, mut pb, neg)) = peers.get_mut(entity) else { continue };
        let free = ctx.sync.max_in_flight_per_peer.saturating_sub(pb.in_flight.len());
        if free == 0 {
            continue;
        }
        let Some(best_known) = pc.best_known else { continue };
        if ctx.tree.entry(best_known).status & status::FAILED_ANY != 0 {
            continue;
        }
        let common = match pc.common {
            Some(c) if ctx.tree.is_on_active(c) => c,
            _ => {
                let c = ctx.tree.fork_point_with_active(best_known);
                pc.common = Some(c);
                c
            }
        };
        let limit = ctx.tree.entry(common).height;
        let mut getdata = InvList::with_capacity(free);
        while getdata.len() < free {
            match needed.front() {
                Some(&h) if h <= limit => {
                    needed.pop_front();
                    let Some(idx) = ctx.tree.active_at(h) else { break };
                    let hash = ctx.tree.entry(idx).hash;
                    getdata.push(InvType::WITNESS_BLOCK, hash.to_byte_array());
                    if pb.in_flight.is_empty() {
                        pb.downloading_since_ms = now;
                    }
                    pb.in_flight.push_back(Requested { hash, idx, at_ms: now });
                    ctx.state.in_flight.insert(hash, conn);
                }
                _ => break,
            }
        }
        if !getdata.is_empty() {
            if getdata.len() == 1
                && ctx.state.in_flight.len() == 1
                && neg.cmpct_version.is_some()
                && ctx.config.compact_blocks
            {
                // One new block on our tip, nothing else being fetched: ask for it compact, so
                // our pool supplies its transactions (Core's rule for low-bandwidth peers).
                let parent = pb.in_flight.back().map(|r| ctx.tree.entry(r.idx).parent);
                if parent == Some(ctx.relay.served_tip(&ctx.tree)) && !ctx.ibd.active && ctx.config.relay {
                    let hash = getdata.iter().next().map(|e| e.hash).unwrap_or_default();
                    getdata = InvList::with_capacity(1);
                    getdata.push(InvType::CMPCT_BLOCK, hash);
                }
            }
            sq.push(ctx.config.network, &Message::GetData(getdata));
        } else if pb.in_flight.is_empty() && beyond && limit > window_end && waiting_for.is_some_and(|w| w != conn) {
            staller = waiting_for;
        }
    }
    staller
}

#[cfg(test)]
#[path = "block_download_tests.rs"]
mod tests;
