//! compact_blocks: takes `cmpctblock` and `blocktxn` (BIP152) after headers_sync has judged the
//! compact block's header as an announcement, and turns them into blocks for block_download, which
//! runs next and treats a rebuilt block as one it asked for. As Core:
//! - a `cmpctblock` is taken from a peer that sent `sendcmpct` version 2, for a block we lack with
//!   more work than our tip, when we asked for it or it comes from a peer we put in high-bandwidth
//!   mode (anything else is counted as unrequested, not scored); near our tip only (at most two
//!   blocks ahead, and not in initial block download unless asked for), one block per peer;
//! - the block is rebuilt from what the compact block prefills and the transactions we hold (pool,
//!   orphanage, and the last 100 we refused or saw replaced); what is missing is asked for with `getblocktxn` and filled from `blocktxn`;
//! - a compact block that cannot describe a block, or a `blocktxn` that does not fill what we
//!   asked, scores its sender; a rebuilt block that does not match its header (a short-id
//!   collision) is fetched whole and blames no one;
//! - a compact block for a block already being fetched from another peer is rebuilt on the side
//!   if that takes no round trip (Core's optimistic reconstruction).
//!
//! oni differs where Core gives up early: repeated short ids cost `getblocktxn` for just those
//! positions, not the whole block ([`crate::chain::reconstruct`]).

use crate::chain::compact_relay::{CompactDownload, CompactRelay, PendingCompact};
use crate::chain::reconstruct::{FillError, InitError, PartialBlock};
use crate::chain::tree::status;
use crate::chain::{BlockRelay, ChainParams, HeaderTree, PeerBlocks, Requested, SyncConfig, SyncState};
use crate::components::{ConnId, Disconnect, Negotiated, PeerState, Received, SendQueue, Socket, Violations};
use crate::mempool::extra::ExtraTxns;
use crate::mempool::orphanage::Orphanage;
use crate::mempool::pool::Mempool;
use crate::resources::reasons::CompactOutcome;
use crate::resources::{Clock, Config, Metrics, Misbehavior};
use crate::wire::{BlockTxn, BlockTxnRequest, CmpctBlock, InvList, InvType, Message};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

/// How far ahead of our validated tip a compact block is taken (Core: height ≤ tip + 2).
pub const COMPACT_AHEAD_MAX: u32 = 2;

/// The peer entity's parts this system uses.
type CompactPeer<'a> = (
    &'a Socket,
    &'a PeerState,
    &'a Negotiated,
    &'a mut Received,
    &'a mut SendQueue,
    &'a mut Violations,
    &'a mut PeerBlocks,
    &'a mut CompactDownload,
);

/// Node-wide inputs.
#[derive(bevy_ecs::system::SystemParam)]
pub struct CompactCtx<'w> {
    config: Res<'w, Config>,
    clock: Res<'w, Clock>,
    params: Res<'w, ChainParams>,
    sync: Res<'w, SyncConfig>,
    tree: Res<'w, HeaderTree>,
    block_relay: Res<'w, BlockRelay>,
    state: ResMut<'w, SyncState>,
    pool: Res<'w, Mempool>,
    orphans: Res<'w, Orphanage>,
    extra: Res<'w, ExtraTxns>,
    relay: ResMut<'w, CompactRelay>,
    metrics: ResMut<'w, Metrics>,
}

/// Takes every ready peer's compact blocks and block transactions.
pub fn compact_blocks(mut peers: Query<CompactPeer, Without<Disconnect>>, mut ctx: CompactCtx) {
    for (socket, state, neg, mut received, mut sq, mut violations, mut pb, mut cd) in &mut peers {
        if *state != PeerState::Ready
            || !received.0.iter().any(|m| matches!(m, Message::CmpctBlock(_) | Message::BlockTxn(_)))
        {
            continue;
        }
        let msgs = std::mem::take(&mut received.0);
        let mut peer = Peer {
            conn: socket.conn,
            neg,
            sq: &mut sq,
            violations: &mut violations,
            pb: &mut pb,
            cd: &mut cd,
            blocks: Vec::new(),
        };
        for m in msgs {
            match m {
                Message::CmpctBlock(c) => on_cmpctblock(&mut ctx, &mut peer, c),
                Message::BlockTxn(t) => on_blocktxn(&mut ctx, &mut peer, &t),
                other => received.0.push(other),
            }
        }
        // Rebuilt blocks go on to block_download as if they had come whole.
        received.0.extend(peer.blocks.into_iter().map(Message::Block));
    }
}

/// One peer's parts, bundled for the handlers.
struct Peer<'a> {
    conn: ConnId,
    neg: &'a Negotiated,
    sq: &'a mut SendQueue,
    violations: &'a mut Violations,
    pb: &'a mut PeerBlocks,
    cd: &'a mut CompactDownload,
    /// Blocks rebuilt this tick.
    blocks: Vec<crate::wire::Block>,
}

fn on_cmpctblock(ctx: &mut CompactCtx, peer: &mut Peer, cmpct: CmpctBlock) {
    let bytes = cmpct.len();
    // Core ignores compact blocks from a peer that never offered them, and in blocks-only mode.
    if peer.neg.cmpct_version.is_none() || !ctx.config.relay || !ctx.config.compact_blocks {
        peer.violations.0.push(Misbehavior::UnrequestedCompact);
        return;
    }
    let hash = cmpct.block_hash();
    // headers_sync took its header as an announcement; a header it refused ends here.
    let Some(idx) = ctx.tree.get(&hash) else { return };
    let e = ctx.tree.entry(idx).clone();
    if e.status & (status::HAVE_DATA | status::FAILED_ANY) != 0 {
        return;
    }
    let requested_here = peer.pb.in_flight.iter().any(|r| r.hash == hash);
    if !requested_here && !peer.neg.cmpct_hb_to {
        tracing::debug!(peer = peer.conn.0, %hash, "unsolicited compact block from a peer not in high-bandwidth mode");
        peer.violations.0.push(Misbehavior::UnrequestedCompact);
        return;
    }
    let tip = ctx.tree.entry(ctx.block_relay.served_tip(&ctx.tree));
    if e.chainwork() <= tip.chainwork() {
        if requested_here {
            fetch_whole(ctx, peer, hash);
        }
        return;
    }
    let holder = ctx.state.in_flight.get(&hash).copied();
    if holder.is_none() && !can_direct_fetch(ctx) {
        return;
    }
    if e.height > tip.height + COMPACT_AHEAD_MAX {
        // Too far ahead for our pool to help: a block we asked for comes whole; an announcement
        // was taken as a header already.
        if requested_here {
            fetch_whole(ctx, peer, hash);
        }
        return;
    }
    let ours = holder.is_none_or(|c| c == peer.conn);
    if !ours || (!requested_here && peer.pb.in_flight.len() >= ctx.sync.max_in_flight_per_peer) {
        // Another peer is fetching it: rebuild it on the side if that takes no round trip. Once
        // per peer and block: each try scans the whole pool, and a peer repeating a compact
        // block we cannot finish must not make us scan it again and again.
        if peer.cd.tried_aside == Some(hash) {
            return;
        }
        peer.cd.tried_aside = Some(hash);
        if let Ok(p) = rebuild(ctx, cmpct) {
            if p.missing().is_empty() {
                if let Ok(block) = p.fill(None) {
                    ctx.relay.via_compact.insert(hash);
                    peer.blocks.push(block);
                }
            }
        }
        return;
    }
    if peer.cd.pending.as_ref().is_some_and(|p| p.partial.block_hash() == hash) {
        return; // already rebuilding it from this peer
    }
    if !requested_here {
        peer.pb.in_flight.push_back(Requested { hash, idx, at_ms: ctx.clock.now_ms });
        if peer.pb.in_flight.len() == 1 {
            peer.pb.downloading_since_ms = ctx.clock.now_ms;
        }
        ctx.state.in_flight.insert(hash, peer.conn);
    }
    match rebuild(ctx, cmpct) {
        Err(InitError::Invalid(why)) => {
            tracing::info!(peer = peer.conn.0, %hash, why, "invalid compact block");
            drop_request(ctx, peer, hash);
            peer.violations.0.push(Misbehavior::InvalidCompactBlock);
        }
        Err(InitError::Failed(why)) => {
            tracing::debug!(peer = peer.conn.0, %hash, why, "compact block unusable, fetching the block");
            fetch_whole(ctx, peer, hash);
        }
        Ok(p) if p.missing().is_empty() => finish(ctx, peer, PendingCompact { partial: Box::new(p), bytes }, None),
        Ok(p) => {
            let req = BlockTxnRequest { block_hash: hash, indexes: p.missing().to_vec() };
            peer.sq.push(ctx.config.network, &Message::GetBlockTxn(req));
            // A newer compact block from the same peer replaces an older one still waiting.
            peer.cd.pending = Some(PendingCompact { partial: Box::new(p), bytes });
        }
    }
}

fn on_blocktxn(ctx: &mut CompactCtx, peer: &mut Peer, txn: &BlockTxn) {
    let hash = txn.block_hash();
    let ours = peer.cd.pending.as_ref().is_some_and(|p| p.partial.block_hash() == hash)
        && peer.pb.in_flight.iter().any(|r| r.hash == hash);
    let Some(mut pending) = peer.cd.pending.take_if(|_| ours) else {
        tracing::debug!(peer = peer.conn.0, %hash, "blocktxn for a block we did not ask it about");
        peer.violations.0.push(Misbehavior::UnrequestedCompact);
        return;
    };
    pending.bytes += txn.len();
    finish(ctx, peer, pending, Some(txn));
}

/// Builds the block from what is known plus `txn`, and hands it on.
fn finish(ctx: &mut CompactCtx, peer: &mut Peer, pending: PendingCompact, txn: Option<&BlockTxn>) {
    let hash = pending.partial.block_hash();
    match pending.partial.fill(txn) {
        Ok(block) => {
            let outcome = if txn.is_some() { CompactOutcome::RoundTrip } else { CompactOutcome::NoRoundTrip };
            ctx.metrics.compact_outcomes[outcome as usize] += 1;
            ctx.metrics.compact_missing_txs.record(pending.partial.missing().len() as u64);
            ctx.metrics.compact_block_bytes.record(pending.bytes as u64);
            let s = pending.partial.stats;
            tracing::debug!(
                peer = peer.conn.0, %hash, prefilled = s.prefilled, held = s.held, collisions = s.collisions,
                asked = pending.partial.missing().len(), bytes = pending.bytes, "compact block rebuilt"
            );
            ctx.relay.via_compact.insert(hash);
            peer.blocks.push(block);
        }
        Err(FillError::Invalid(why)) => {
            tracing::info!(peer = peer.conn.0, %hash, why, "blocktxn does not fill the compact block");
            drop_request(ctx, peer, hash);
            peer.violations.0.push(Misbehavior::InvalidBlockTxn);
        }
        Err(FillError::Mutated) => {
            tracing::debug!(peer = peer.conn.0, %hash, "rebuilt block does not match its header, fetching it whole");
            fetch_whole(ctx, peer, hash);
        }
    }
}

/// Starts rebuilding from the pool, the orphanage and the transactions we dropped lately (a scan
/// of all of them, counted).
fn rebuild(ctx: &mut CompactCtx, cmpct: CmpctBlock) -> Result<PartialBlock, InitError> {
    ctx.metrics.compact_pool_scans += 1;
    let pool = ctx.pool.iter().map(|e| (e.wtxid, &e.tx));
    PartialBlock::new(cmpct, pool.chain(ctx.orphans.txs()).chain(ctx.extra.iter()))
}

/// Asks the peer for the whole block, keeping it in flight from this peer.
fn fetch_whole(ctx: &mut CompactCtx, peer: &mut Peer, hash: BlockHash) {
    ctx.metrics.compact_outcomes[CompactOutcome::FullFallback as usize] += 1;
    peer.cd.pending.take_if(|p| p.partial.block_hash() == hash);
    let mut l = InvList::with_capacity(1);
    l.push(InvType::WITNESS_BLOCK, hash.to_byte_array());
    peer.sq.push(ctx.config.network, &Message::GetData(l));
}

/// Forgets that the block is in flight from this peer (a scored compact block leaves it to others).
fn drop_request(ctx: &mut CompactCtx, peer: &mut Peer, hash: BlockHash) {
    peer.cd.pending.take_if(|p| p.partial.block_hash() == hash);
    peer.pb.in_flight.retain(|r| r.hash != hash);
    if ctx.state.in_flight.get(&hash) == Some(&peer.conn) {
        ctx.state.in_flight.remove(&hash);
    }
}

/// Core's CanDirectFetch: our validated tip is at most 20 block intervals old, so blocks near it
/// are worth taking as they come.
fn can_direct_fetch(ctx: &CompactCtx) -> bool {
    let tip_time = i64::from(ctx.tree.entry(ctx.block_relay.served_tip(&ctx.tree)).time);
    tip_time > ctx.clock.unix_s() - 20 * ctx.params.target_spacing_s
}

#[cfg(test)]
#[path = "compact_blocks_tests.rs"]
mod tests;
