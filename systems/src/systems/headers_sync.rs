//! headers_sync: headers-first sync. Picks sync peers after the handshake (one during IBD, every
//! peer once our best header is recent, like Core), sends `getheaders` with our locator, validates
//! `headers` into the header tree (continuity and proof of work first, then the full contextual
//! checks), continues while full 2,000-header batches arrive, routes low-work chains through
//! PRESYNC/REDOWNLOAD, scores invalid headers with their own reasons (unconnecting ones are counted,
//! never scored, and answered with at most one getheaders per response time, as Core), follows
//! block announcements (`inv`, BIP130 `headers`), answers `getheaders` from the validated chain
//! (empty while it lacks the network's minimum work, as Core), notes what each peer is known to
//! have (for block announcements), and keeps the [`Ibd`] resource current.

use crate::chain::pow::check_pow;
use crate::chain::presync::{Abort, Phase};
use crate::chain::tree::{BlockIdx, HeaderInvalid};
use crate::chain::{
    BlockRelay, ChainParams, HeaderTree, HeadersPresync, Ibd, PeerBlocks, PeerChain, ServeQueue, SyncConfig,
    ValidationQueue,
};
use crate::components::{
    Direction, Disconnect, Negotiated, PeerState, Permissions, Received, SendQueue, Socket, Violations,
};
use crate::resources::{Clock, Config, DisconnectReason, Misbehavior, Rng};
use crate::wire::headers::{block_hash, HeaderList, HEADER_BYTES};
use crate::wire::services::{NODE_NETWORK, NODE_NETWORK_LIMITED};
use crate::wire::{InvType, Locator, Message, MAX_HEADERS};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::BlockHash;

/// A getheaders with no answer for this long may be repeated (Core's HEADERS_RESPONSE_TIME).
pub const HEADERS_RESPONSE_TIME_MS: u64 = 2 * 60 * 1000;
/// Our best header this recent means we are nearly synced: sync headers from every peer.
pub const NEAR_SYNC_AGE_S: i64 = 24 * 60 * 60;
/// A sync peer gets this long to bring our best header near today (Core's
/// HEADERS_DOWNLOAD_TIMEOUT_BASE)...
pub const HEADERS_SYNC_TIMEOUT_BASE_MS: u64 = 15 * 60 * 1000;
/// ...plus this per header it should have sent (HEADERS_DOWNLOAD_TIMEOUT_PER_HEADER).
pub const HEADERS_SYNC_TIMEOUT_PER_HEADER_MS: u64 = 1;
/// Blocks of work below our tip a new chain may be and still be stored (Core's anti-DoS margin).
pub const ANTI_DOS_MARGIN_BLOCKS: u64 = 144;

/// The peer entity's parts headers_sync uses.
type SyncPeer<'a> = (
    Entity,
    &'a Socket,
    &'a Direction,
    &'a PeerState,
    &'a Negotiated,
    &'a Permissions,
    &'a mut Received,
    &'a mut SendQueue,
    &'a mut Violations,
    Option<&'a mut PeerChain>,
    Option<&'a PeerBlocks>,
);

/// How often an idle peer not known to hold our best header chain may be probed. During IBD only
/// the headers sync peer is asked for headers (as Core, while headers are older than a day), and
/// blocks are only asked of peers known to hold them: without probes every other peer sits idle,
/// and a slow sync peer holds the whole download (20,000 blocks from four bitcoinds, the one we
/// synced headers from delaying each block 2 s: 0.4 blocks/s, no stall timeout firing since no
/// one else could serve). A probe's answer (≤ 2,000 headers, never continued) tells what it holds.
pub const PROBE_INTERVAL_MS: u64 = 2_000;

/// Node-wide inputs of headers sync.
#[derive(bevy_ecs::system::SystemParam)]
pub struct SyncCtx<'w> {
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    params: Res<'w, ChainParams>,
    sync: Res<'w, SyncConfig>,
    tree: ResMut<'w, HeaderTree>,
    ibd: ResMut<'w, Ibd>,
    rng: ResMut<'w, Rng>,
    queue: ResMut<'w, ValidationQueue>,
    relay: ResMut<'w, BlockRelay>,
    metrics: ResMut<'w, crate::resources::Metrics>,
}

/// What one peer looks like to the sync-peer choice.
fn preferred(direction: Direction, permissions: &Permissions) -> bool {
    matches!(direction, Direction::OutboundFullRelay | Direction::BlockRelayOnly | Direction::Manual)
        || permissions.noban
}

/// Whether a preferred download peer other than this one exists.
fn preferred_exists_besides(preferred_count: usize, direction: Direction, permissions: &Permissions) -> bool {
    preferred_count > preferred(direction, permissions) as usize
}

fn can_serve(neg: &Negotiated) -> bool {
    neg.services & (NODE_NETWORK | NODE_NETWORK_LIMITED) != 0
}

/// Runs headers sync for every ready peer.
pub fn headers_sync(mut peers: Query<SyncPeer, Without<Disconnect>>, mut ctx: SyncCtx, mut commands: Commands) {
    // Last tick's headers were the shell's to take; a shell without a validator leaves them.
    ctx.queue.headers.clear();
    update_ibd(&mut ctx);
    let mut sync_peers = 0usize;
    let mut preferred_count = 0usize;
    for (_, _, dir, state, neg, perms, .., chain, _) in &peers {
        sync_peers += chain.is_some_and(PeerChain::syncing) as usize;
        preferred_count += (*state == PeerState::Ready && can_serve(neg) && preferred(*dir, perms)) as usize;
    }
    let preferred_exists = preferred_count > 0;
    let may_start = sync_peers == 0 || ctx.tree.best_entry().time as i64 > ctx.clock.unix_s() - NEAR_SYNC_AGE_S;
    let best_h = ctx.tree.best_entry().height;
    // Probes are for a download, not for a new tip: a block or two behind, the peers that have
    // not announced it yet will within seconds, and a getheaders to each would be traffic Core
    // does not send (and a tell).
    let behind =
        best_h as usize > ctx.tree.entry(ctx.tree.validated_tip()).height as usize + ctx.sync.max_in_flight_per_peer;
    for (entity, socket, dir, state, neg, perms, mut received, mut sq, mut violations, chain, blocks) in &mut peers {
        if *state != PeerState::Ready {
            continue;
        }
        let probe = behind
            && can_serve(neg)
            && *dir != Direction::Feeler
            && blocks.is_some_and(|b| b.in_flight.is_empty())
            && chain.as_ref().is_some_and(|c| {
                !c.sync_started
                    && c.presync.is_none()
                    && c.best_known.is_none_or(|k| ctx.tree.entry(k).height < best_h)
                    && ctx.clock.now_ms.saturating_sub(c.probed_ms) >= PROBE_INTERVAL_MS
            });
        // An idle peer with its sync settled needs nothing this tick: look before taking anything.
        // (A peer that has not started can only start when no one syncs or headers are near today.)
        let settled = chain.as_ref().is_some_and(|c| {
            c.sync_deadline_ms.is_none()
                && c.deferred_getheaders.is_none()
                && (c.sync_started || !can_serve(neg) || *dir == Direction::Feeler || !may_start)
        });
        if settled && received.0.is_empty() && !probe {
            continue;
        }
        let mut fresh = None;
        let pc: &mut PeerChain = match chain {
            Some(c) => c.into_inner(),
            None => {
                // A tip move during its handshake is announced to it once it is ready (Core queues
                // announcements for every peer from its connection on).
                let tip = ctx.relay.served_tip(&ctx.tree);
                let moved_since_connect = ctx.relay.tip_moved_ms() > socket.connected_ms;
                let announced_for = (!moved_since_connect).then_some(tip);
                ctx.relay.late_peers |= moved_since_connect;
                fresh.insert(PeerChain { announced_for, ..PeerChain::default() })
            }
        };
        let mut peer = PeerCtx {
            pc,
            sq: &mut sq,
            violations: &mut violations,
            noban: perms.noban,
            inbound: *dir == Direction::Inbound,
            conn: socket.conn.0,
        };
        if !received.0.is_empty() {
            received.0.retain(|m| match m {
                Message::Headers(list) => {
                    on_headers(&mut ctx, &mut peer, list);
                    false
                }
                // A compact block's header is an announcement first (compact_blocks takes the
                // rest), from a peer that offered compact blocks to a node that relays: Core
                // ignores the whole message otherwise.
                Message::CmpctBlock(c)
                    if neg.cmpct_version.is_some() && ctx.config.relay && ctx.config.compact_blocks =>
                {
                    let mut one = HeaderList::default();
                    one.push_raw(*c.header_bytes());
                    on_headers(&mut ctx, &mut peer, &one);
                    true
                }
                Message::GetHeaders(loc) => {
                    if peer.sq.bytes() > ctx.config.limits.send_queue_bytes_soft {
                        ctx.metrics.getheaders_deferred += 1;
                        peer.pc.deferred_getheaders = Some(loc.clone());
                    } else {
                        on_getheaders(&mut ctx, &mut peer, loc);
                    }
                    false
                }
                Message::Inv(inv) => {
                    // Block entries are ours; the message stays for whoever relays transactions.
                    let mut unknown = false;
                    for e in inv.iter().filter(|e| e.kind.base() == InvType::BLOCK) {
                        match ctx.tree.get(&BlockHash::from_byte_array(e.hash)) {
                            Some(idx) => peer.pc.note_known(&ctx.tree, idx),
                            None => unknown = true,
                        }
                    }
                    if unknown {
                        let best = ctx.tree.best();
                        maybe_getheaders(&mut ctx, &mut peer, None, best, false);
                    }
                    true
                }
                _ => true,
            });
        }
        if peer.pc.deferred_getheaders.is_some() && peer.sq.bytes() <= ctx.config.limits.send_queue_bytes_soft {
            if let Some(loc) = peer.pc.deferred_getheaders.take() {
                on_getheaders(&mut ctx, &mut peer, &loc);
            }
        }
        let headers_behind = ctx.tree.best_entry().time as i64 <= ctx.clock.unix_s() - NEAR_SYNC_AGE_S;
        if let Some(deadline) = peer.pc.sync_deadline_ms {
            if !headers_behind {
                peer.pc.sync_deadline_ms = None;
            } else if ctx.clock.now_ms > deadline
                && sync_peers == 1
                && preferred_exists_besides(preferred_count, *dir, perms)
            {
                // Our only sync peer is too slow and another could do it: Core drops it.
                if perms.noban {
                    peer.pc.sync_started = false;
                    peer.pc.sync_deadline_ms = None;
                    sync_peers -= 1;
                } else {
                    tracing::info!(peer = socket.conn.0, "headers sync timeout");
                    commands.entity(entity).insert(Disconnect { reason: DisconnectReason::HeadersSyncTimeout });
                    continue;
                }
            }
        }
        if !peer.pc.sync_started && can_serve(neg) && *dir != Direction::Feeler {
            let near_synced = ctx.tree.best_entry().time as i64 > ctx.clock.unix_s() - NEAR_SYNC_AGE_S;
            let eligible = preferred(*dir, perms) || !preferred_exists;
            if (sync_peers == 0 && eligible) || near_synced {
                peer.pc.sync_started = true;
                sync_peers += 1;
                let behind_s = (ctx.clock.unix_s() - ctx.tree.best_entry().time as i64).max(0) as u64;
                let expected = behind_s / ctx.params.target_spacing_s as u64;
                peer.pc.sync_deadline_ms = Some(
                    ctx.clock.now_ms + HEADERS_SYNC_TIMEOUT_BASE_MS + HEADERS_SYNC_TIMEOUT_PER_HEADER_MS * expected,
                );
                // From the best header's parent, so the answer is never empty.
                let from = best_parent(&ctx.tree);
                tracing::debug!(peer = socket.conn.0, height = ctx.tree.entry(from).height, "headers sync started");
                maybe_getheaders(&mut ctx, &mut peer, None, from, true);
            }
        }
        if probe && !peer.pc.sync_started {
            peer.pc.probed_ms = ctx.clock.now_ms.max(1);
            let sent = peer.pc.last_getheaders_ms;
            let from = best_parent(&ctx.tree);
            maybe_getheaders(&mut ctx, &mut peer, None, from, false);
            if peer.pc.last_getheaders_ms != sent {
                peer.pc.probing = true;
                ctx.metrics.headers_probes += 1;
                tracing::debug!(peer = socket.conn.0, height = best_h, "probing an idle peer for its chain");
            }
        }
        if let Some(pc) = fresh {
            commands.entity(entity).insert((
                pc,
                PeerBlocks::default(),
                ServeQueue::default(),
                crate::chain::compact_relay::CompactDownload::default(),
            ));
        }
    }
}

/// One peer's parts, bundled for the handlers.
struct PeerCtx<'a> {
    pc: &'a mut PeerChain,
    sq: &'a mut SendQueue,
    violations: &'a mut Violations,
    noban: bool,
    inbound: bool,
    conn: u64,
}

fn update_ibd(ctx: &mut SyncCtx) {
    if !ctx.ibd.active {
        return;
    }
    let tip = ctx.tree.entry(ctx.tree.validated_tip());
    if tip.time as i64 >= ctx.clock.unix_s() - ctx.sync.max_tip_age_s
        && tip.chainwork() >= ctx.params.minimum_chain_work
    {
        ctx.ibd.active = false;
        tracing::info!(height = tip.height, "leaving initial block download");
    }
}

/// The best header's parent (the best header itself at genesis): a getheaders from there is never
/// answered empty by a peer that has our best header, so the answer always says what it holds.
fn best_parent(tree: &HeaderTree) -> BlockIdx {
    match tree.entry(tree.best()).parent {
        crate::chain::tree::NO_PARENT => tree.best(),
        p => p,
    }
}

/// Sends getheaders with the locator of `from` (prefixed by `first`), unless one is outstanding
/// and recent; `force` for continuations, which always go.
fn maybe_getheaders(ctx: &mut SyncCtx, peer: &mut PeerCtx, first: Option<BlockHash>, from: BlockIdx, force: bool) {
    let now = ctx.clock.now_ms;
    if !force
        && peer.pc.last_getheaders_ms != 0
        && now.saturating_sub(peer.pc.last_getheaders_ms) < HEADERS_RESPONSE_TIME_MS
    {
        return;
    }
    let mut hashes = Vec::with_capacity(34);
    hashes.extend(first);
    hashes.extend(ctx.tree.locator(from));
    hashes.truncate(crate::wire::MAX_LOCATOR_HASHES);
    let msg = Message::GetHeaders(Locator {
        version: ctx.config.protocol_version as u32,
        hashes,
        stop: BlockHash::all_zeros(),
    });
    peer.sq.push(ctx.config.network, &msg);
    peer.pc.last_getheaders_ms = now.max(1);
}

/// The violation an invalid header is counted as. A header we already know to be invalid is
/// punished from peers we dialed only (Core's BLOCK_CACHED_INVALID rule).
pub(crate) fn misbehavior_of(e: HeaderInvalid, inbound: bool) -> Misbehavior {
    match e {
        HeaderInvalid::Unconnecting => Misbehavior::UnconnectingHeaders,
        HeaderInvalid::InvalidParent => Misbehavior::HeaderInvalidParent,
        HeaderInvalid::KnownInvalid if inbound => Misbehavior::KnownInvalidInbound,
        HeaderInvalid::KnownInvalid => Misbehavior::KnownInvalid,
        HeaderInvalid::Pow(_) => Misbehavior::HeaderBadPow,
        HeaderInvalid::BadDifficulty => Misbehavior::HeaderBadDifficulty,
        HeaderInvalid::TimeTooOld | HeaderInvalid::Timewarp => Misbehavior::HeaderTimeTooOld,
        HeaderInvalid::TimeTooNew => Misbehavior::HeaderTimeTooNew,
        HeaderInvalid::ObsoleteVersion => Misbehavior::HeaderObsoleteVersion,
    }
}

/// The least work a new chain must show to be stored at once: the network's minimum, or our
/// validated tip's work less 144 blocks of it, whichever is more (Core's GetAntiDoSWorkThreshold).
fn anti_dos_threshold(ctx: &mut SyncCtx) -> Work {
    let tip = ctx.tree.entry(ctx.tree.validated_tip()).clone();
    let block = ctx.tree.header_work(tip.bits, &ctx.params);
    let mut margin = Work::from_be_bytes([0; 32]);
    for _ in 0..ANTI_DOS_MARGIN_BLOCKS.min(tip.height as u64) {
        margin = margin + block;
    }
    let near_tip = if tip.chainwork() > margin { tip.chainwork() - margin } else { Work::from_be_bytes([0; 32]) };
    near_tip.max(ctx.params.minimum_chain_work)
}

/// Validates and stores headers in order; stops at the first bad one and reports it.
fn accept_all(ctx: &mut SyncCtx, peer: &mut PeerCtx, headers: &[([u8; HEADER_BYTES], BlockHash)]) -> Option<BlockIdx> {
    let now_s = ctx.clock.unix_s();
    let mut last = None;
    for (raw, hash) in headers {
        match ctx.tree.accept(raw, *hash, &ctx.params, now_s) {
            Ok((idx, new)) => {
                if new {
                    ctx.queue.headers.push(*raw);
                    if !ctx.ibd.active {
                        ctx.relay.heard(*hash, ctx.clock.now_ms);
                    }
                }
                last = Some(idx);
            }
            Err(e) => {
                tracing::debug!(peer = peer.conn, ?e, %hash, "invalid header");
                peer.violations.0.push(misbehavior_of(e, peer.inbound));
                break;
            }
        }
    }
    if let Some(idx) = last {
        peer.pc.note_known(&ctx.tree, idx);
    }
    last
}

fn on_headers(ctx: &mut SyncCtx, peer: &mut PeerCtx, list: &HeaderList) {
    let hashes: Vec<([u8; HEADER_BYTES], BlockHash)> = list.raw().iter().map(|r| (*r, block_hash(r))).collect();
    // Core's CheckHeadersPoW: continuity and each header's own proof of work, before anything else.
    for w in hashes.windows(2) {
        if w[1].0[4..36] != w[0].1.as_byte_array()[..] {
            peer.violations.0.push(Misbehavior::NonContinuousHeaders);
            return;
        }
    }
    for (raw, hash) in &hashes {
        let bits = u32::from_le_bytes([raw[72], raw[73], raw[74], raw[75]]);
        if check_pow(hash.as_byte_array(), bits, &ctx.params).is_err() {
            peer.violations.0.push(Misbehavior::HeaderBadPow);
            return;
        }
    }
    let full = hashes.len() == MAX_HEADERS;
    // The answer to a probe says what the peer holds; it is not continued (only a sync peer is).
    let probe_answer = std::mem::take(&mut peer.pc.probing) && !peer.pc.sync_started;
    if peer.pc.presync.as_ref().is_some_and(|p| p.phase() != Phase::Done) {
        peer.pc.last_getheaders_ms = 0;
        continue_presync(ctx, peer, &hashes, full);
        return;
    }
    peer.pc.presync = None;
    let Some((first, _)) = hashes.first() else {
        // Nothing beyond our locator: it has no more to give, so it no longer holds the sync
        // (another peer — one that connected later, say — may start one). An empty answer is the
        // answer to our last getheaders.
        peer.pc.last_getheaders_ms = 0;
        peer.pc.sync_deadline_ms = None;
        return;
    };
    let prev = BlockHash::from_byte_array(first[4..36].try_into().unwrap_or([0; 32]));
    let Some(parent) = ctx.tree.get(&prev) else {
        // Maybe a BIP130 announcement of a block whose parent we missed: ask for the gap — unless
        // a getheaders of ours is outstanding (these headers are no answer to it). Counted, never
        // scored: Core no longer punishes them (honest peers send them around reorgs).
        peer.violations.0.push(Misbehavior::UnconnectingHeaders);
        let best = ctx.tree.best();
        maybe_getheaders(ctx, peer, None, best, false);
        return;
    };
    // Headers that connect answer our getheaders, if one is outstanding.
    peer.pc.last_getheaders_ms = 0;
    let last_hash = hashes[hashes.len() - 1].1;
    if ctx.tree.get(&last_hash).is_none() {
        let mut work = ctx.tree.entry(parent).chainwork();
        for (raw, _) in &hashes {
            let bits = u32::from_le_bytes([raw[72], raw[73], raw[74], raw[75]]);
            work = work + ctx.tree.header_work(bits, &ctx.params);
        }
        let threshold = anti_dos_threshold(ctx);
        if work < threshold {
            if full {
                let seeds = [ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64(), ctx.rng.next_u64()];
                let ps = HeadersPresync::new(&ctx.tree, parent, &ctx.params, threshold, ctx.clock.unix_s(), seeds);
                tracing::debug!(peer = peer.conn, from = ctx.tree.entry(parent).height, "low-work headers: presync");
                peer.pc.presync = Some(Box::new(ps));
                continue_presync(ctx, peer, &hashes, full);
            }
            // A short low-work chain is ignored, as Core does.
            return;
        }
    }
    let Some(last) = accept_all(ctx, peer, &hashes) else { return };
    if full && !probe_answer && last == ctx.tree.get(&last_hash).unwrap_or(BlockIdx::MAX) {
        maybe_getheaders(ctx, peer, None, last, true);
    }
}

fn continue_presync(ctx: &mut SyncCtx, peer: &mut PeerCtx, hashes: &[([u8; HEADER_BYTES], BlockHash)], full: bool) {
    let Some(ps) = peer.pc.presync.as_mut() else { return };
    let out = ps.process(hashes, full, &ctx.params);
    let (tip, start, phase) = (ps.locator_tip(), ps.chain_start(), ps.phase());
    let mut last_released = None;
    if !out.release.is_empty() {
        let released: Vec<_> = out.release.iter().map(|r| (*r, block_hash(r))).collect();
        last_released = accept_all(ctx, peer, &released);
        if last_released.is_none() || ctx.tree.get(&released[released.len() - 1].1).is_none() {
            peer.pc.presync = None;
            return;
        }
    }
    match out.aborted {
        None | Some(Abort::Incomplete) => {}
        Some(why) => {
            tracing::debug!(peer = peer.conn, ?why, "low-work headers sync aborted");
            peer.violations.0.push(Misbehavior::LowWorkHeaders);
        }
    }
    if out.request_more {
        maybe_getheaders(ctx, peer, Some(tip), start, true);
    } else if let (Some(last), true, None) = (last_released, full, out.aborted) {
        // The low-work sync is complete and the peer has more: go on as a normal sync.
        maybe_getheaders(ctx, peer, None, last, true);
    }
    if phase == Phase::Done {
        peer.pc.presync = None;
    }
}

/// Answers from our validated chain: the headers after the first locator block on it, at most
/// 2,000, up to `stop`. As Core (since v24), also during IBD, but with an empty answer while the
/// validated chain has less than the network's minimum work (the peer looks elsewhere without
/// thinking us unresponsive), unless it is `noban`. The locator's first block we know is one the
/// peer has, and the last header sent is remembered: neither is announced to it again.
fn on_getheaders(ctx: &mut SyncCtx, peer: &mut PeerCtx, loc: &Locator) {
    let tree = &ctx.tree;
    let vt = ctx.relay.served_tip(tree);
    if tree.entry(vt).chainwork() < ctx.params.minimum_chain_work && !peer.noban {
        peer.sq.push(ctx.config.network, &Message::Headers(HeaderList::default()));
        return;
    }
    if let Some(known) = loc.hashes.iter().find_map(|h| tree.get(h)) {
        peer.pc.note_known(tree, known);
    }
    let on_validated = |idx: BlockIdx| tree.ancestor(vt, tree.entry(idx).height) == Some(idx);
    let mut out = HeaderList::default();
    // The last header the answer gives it (or our tip, when it runs to the tip).
    let mut last = None;
    if loc.hashes.is_empty() {
        // Just the stop header, if Core would serve its block (a stale one only if recent).
        if let Some(idx) = tree.get(&loc.stop).filter(|&i| crate::systems::block_request_allowed(tree, vt, i)) {
            if let Some(raw) = tree.raw_header(idx) {
                out.push_raw(raw);
                last = Some(idx);
            }
        }
    } else {
        last = Some(vt);
        let fork = loc.hashes.iter().find_map(|h| tree.get(h).filter(|&i| on_validated(i))).unwrap_or(0);
        let top = tree.entry(vt).height;
        let mut h = tree.entry(fork).height + 1;
        let mut idxs = Vec::new();
        while h <= top {
            let Some(idx) = tree.ancestor(vt, h) else { break };
            idxs.push(idx);
            if tree.entry(idx).hash == loc.stop || idxs.len() == MAX_HEADERS {
                last = Some(idx);
                break;
            }
            h += 1;
        }
        // Archived headers are read back in one batch; if the store fails part way the answer
        // stops at the last header it has, and that is the last one sent.
        let mut raws = Vec::with_capacity(idxs.len());
        tree.raw_headers(&idxs, &mut raws);
        if raws.len() < idxs.len() {
            last = raws.len().checked_sub(1).map(|i| idxs[i]);
        }
        raws.into_iter().for_each(|raw| out.push_raw(raw));
    }
    // Reset, not raised (Core's rule): an answer that stops short of a tip we announced makes the
    // tip worth announcing again.
    if last.is_some() {
        peer.pc.best_sent = last;
    }
    peer.sq.push(ctx.config.network, &Message::Headers(out));
}

#[cfg(test)]
#[path = "headers_sync_tests.rs"]
mod tests;
