//! block_announce: tells peers of new blocks once the validator has connected them — as soon as
//! it reports its new tip, not after the checkpoint that makes the block durable (a crash loses no
//! state that an announcement stands for). When that tip moves (one block, a catch-up of many, a
//! reorg) every ready peer that does not have it hears of it in the same tick: a `sendheaders`
//! peer (BIP130) gets the headers from the first one it lacks up to the tip when they connect to
//! what it has and number at most 8 (Core's MAX_BLOCKS_TO_ANNOUNCE); any other peer, or when more
//! are missing or nothing connects, an `inv` of the tip alone, so it asks with `getheaders`. What
//! a peer has comes from [`PeerChain::has_header`] — the blocks it announced or sent us, its
//! getheaders locator, the headers we sent it — so a block never goes back to its source. Nothing
//! is announced in initial block download (as Core); the first pass after it reaches every peer
//! that is behind.
//!
//! Idle ticks cost one comparison: peers are looked at only when the tip moved or when a peer whose
//! handshake overlapped a move became ready (Core queues announcements for a peer from its
//! connection on). Each distinct message of a pass is encoded once.

use crate::chain::tree::{BlockIdx, NO_PARENT};
use crate::chain::{BlockRelay, CompactRelay, HeaderTree, Ibd, PeerChain};
use crate::components::{Direction, Disconnect, Negotiated, PeerState, SendQueue};
use crate::resources::{AnnounceKind, Clock, Config, Metrics};
use crate::wire::headers::HeaderList;
use crate::wire::{Command, InvList, InvType, Message, Network};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use smallvec::SmallVec;

/// Headers announced at most (Core's MAX_BLOCKS_TO_ANNOUNCE); more missing blocks get an `inv`.
pub const MAX_BLOCKS_TO_ANNOUNCE: usize = 8;

/// The peer entity's parts announcing uses.
type AnnouncePeer<'a> = (&'a Direction, &'a PeerState, &'a Negotiated, &'a mut PeerChain, &'a mut SendQueue);

/// Node-wide inputs of the announcer.
#[derive(bevy_ecs::system::SystemParam)]
pub struct AnnounceBlocksCtx<'w> {
    tree: Res<'w, HeaderTree>,
    ibd: Res<'w, Ibd>,
    clock: Res<'w, Clock>,
    config: Res<'w, Config>,
    relay: ResMut<'w, BlockRelay>,
    compact: ResMut<'w, CompactRelay>,
    metrics: ResMut<'w, Metrics>,
}

/// Announces the served tip to every peer that lacks it.
pub fn block_announce(mut peers: Query<AnnouncePeer, Without<Disconnect>>, mut ctx: AnnounceBlocksCtx) {
    push_compact(&mut peers, &mut ctx);
    let tip = ctx.relay.served_tip(&ctx.tree);
    let now = ctx.clock.now_ms;
    match ctx.relay.seen {
        // The first look is not a move: peers that connect now have nothing to hear of.
        None => ctx.relay.seen = Some((tip, 0)),
        Some((t, _)) if t != tip => ctx.relay.seen = Some((tip, now)),
        Some(_) => {}
    }
    if ctx.ibd.active || (ctx.relay.announced_tip == Some(tip) && !ctx.relay.late_peers) {
        return;
    }
    ctx.relay.announced_tip = Some(tip);
    ctx.relay.late_peers = false;
    // Peers at the same place get the same bytes: each distinct message is encoded once.
    let mut encoded: SmallVec<[(Announcement, Command, Vec<u8>); 4]> = SmallVec::new();
    for (direction, state, neg, mut pc, mut sq) in &mut peers {
        if *state != PeerState::Ready || *direction == Direction::Feeler || pc.announced_for == Some(tip) {
            continue;
        }
        pc.announced_for = Some(tip);
        let Some(what) = announcement(&ctx.tree, &pc, neg, tip) else { continue };
        let cached = encoded.iter().position(|(a, ..)| *a == what);
        let i = cached.unwrap_or_else(|| {
            let (command, frame) = encode(&ctx.tree, ctx.config.network, what, tip);
            encoded.push((what, command, frame));
            encoded.len() - 1
        });
        let recent = ctx.compact.recent.as_ref().filter(|r| r.idx == tip);
        if let (Announcement::Headers { from }, Some(r)) = (what, recent) {
            if from == tip && neg.cmpct_hb_from && neg.cmpct_version.is_some() {
                // BIP152 high-bandwidth: one new block goes as its compact form.
                sq.push_frame(Command::CmpctBlock, r.cmpct_frame.clone());
                pc.best_sent = Some(tip);
                ctx.metrics.compact_sent += 1;
                ctx.metrics.block_announcements[AnnounceKind::Compact as usize] += 1;
                record_latency(&mut ctx, tip, tip, now);
                continue;
            }
        }
        let (_, command, frame) = &encoded[i];
        sq.push_frame(*command, frame.clone());
        match what {
            Announcement::Headers { from } => {
                pc.best_sent = Some(tip);
                ctx.metrics.block_announcements[AnnounceKind::Headers as usize] += 1;
                record_latency(&mut ctx, from, tip, now);
            }
            Announcement::Inv => {
                ctx.metrics.block_announcements[AnnounceKind::Inv as usize] += 1;
                record_latency(&mut ctx, tip, tip, now);
            }
        }
    }
}

/// Pushes a block that just extended our tip, before it is validated, to every high-bandwidth
/// peer that has its parent and not it (Core's NewPoWValidBlock; each height once).
fn push_compact(peers: &mut Query<AnnouncePeer, Without<Disconnect>>, ctx: &mut AnnounceBlocksCtx) {
    let Some(r) = ctx.compact.recent.as_mut().filter(|r| r.push_pending) else { return };
    r.push_pending = false;
    let height = ctx.tree.entry(r.idx).height;
    if height <= ctx.compact.highest_fast_announce || ctx.ibd.active {
        return;
    }
    ctx.compact.highest_fast_announce = height;
    let Some(r) = ctx.compact.recent.as_ref() else { return };
    let parent = ctx.tree.entry(r.idx).parent;
    for (_, state, neg, mut pc, mut sq) in peers.iter_mut() {
        if *state != PeerState::Ready || !neg.cmpct_hb_from || neg.cmpct_version.is_none() {
            continue;
        }
        if pc.has_header(&ctx.tree, r.idx) || parent == NO_PARENT || !pc.has_header(&ctx.tree, parent) {
            continue;
        }
        sq.push_frame(Command::CmpctBlock, r.cmpct_frame.clone());
        pc.best_sent = Some(r.idx);
        ctx.metrics.compact_sent += 1;
        ctx.metrics.block_announcements[AnnounceKind::Compact as usize] += 1;
    }
}

/// What one peer is told of the tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Announcement {
    /// The headers from `from` (the first block it lacks) up to the tip.
    Headers {
        /// The first block announced.
        from: BlockIdx,
    },
    /// An `inv` of the tip.
    Inv,
}

/// How to tell a peer of `tip`, or `None` when it has it.
fn announcement(tree: &HeaderTree, pc: &PeerChain, neg: &Negotiated, tip: BlockIdx) -> Option<Announcement> {
    if pc.has_header(tree, tip) {
        return None;
    }
    // Walk back from the tip while the blocks it lacks may still connect to one it has.
    let mut cur = tip;
    for _ in 0..MAX_BLOCKS_TO_ANNOUNCE {
        let parent = tree.entry(cur).parent;
        if parent == NO_PARENT || pc.has_header(tree, parent) {
            return Some(if neg.sendheaders { Announcement::Headers { from: cur } } else { Announcement::Inv });
        }
        cur = parent;
    }
    Some(Announcement::Inv)
}

/// The frame of an announcement.
fn encode(tree: &HeaderTree, network: Network, what: Announcement, tip: BlockIdx) -> (Command, Vec<u8>) {
    let msg = match what {
        Announcement::Headers { from } => {
            let (first, last) = (tree.entry(from).height, tree.entry(tip).height);
            let idxs: Vec<BlockIdx> = (first..=last).map(|h| tree.ancestor(tip, h).unwrap_or(tip)).collect();
            let mut raws = Vec::with_capacity(idxs.len());
            tree.raw_headers(&idxs, &mut raws);
            if raws.len() == idxs.len() {
                let mut list = HeaderList::default();
                raws.into_iter().for_each(|raw| list.push_raw(raw));
                Message::Headers(list)
            } else {
                // The header store failed us: the peer still hears of the tip, by hash.
                let mut list = InvList::with_capacity(1);
                list.push(InvType::BLOCK, tree.entry(tip).hash.to_byte_array());
                Message::Inv(list)
            }
        }
        Announcement::Inv => {
            let mut list = InvList::with_capacity(1);
            list.push(InvType::BLOCK, tree.entry(tip).hash.to_byte_array());
            Message::Inv(list)
        }
    };
    let mut frame = Vec::new();
    msg.encode_frame(network, &mut frame);
    (msg.command(), frame)
}

/// The first announcement onward of each block `from..=tip` closes its "heard of" sample.
fn record_latency(ctx: &mut AnnounceBlocksCtx, from: BlockIdx, tip: BlockIdx, now: u64) {
    if ctx.relay.heard.is_empty() {
        return;
    }
    let mut cur = tip;
    loop {
        let hash = ctx.tree.entry(cur).hash;
        if let Some(heard) = ctx.relay.take_heard(&hash) {
            ctx.metrics.block_relay_ms.record(now.saturating_sub(heard));
        }
        let parent = ctx.tree.entry(cur).parent;
        if cur == from || parent == NO_PARENT {
            break;
        }
        cur = parent;
    }
}

#[cfg(test)]
#[path = "block_announce_tests.rs"]
mod tests;
