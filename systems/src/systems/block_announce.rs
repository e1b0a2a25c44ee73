//! block_announce: tells peers of new blocks once the validator has connected them — as soon as it
//! reports its new tip, not after the checkpoint that makes the block durable (a crash loses no
//! state that an announcement stands for). When that tip moves (one block, a catch-up of many, a reorg) every ready peer that does not have
//! the new tip hears of it in the same tick: a `sendheaders` peer (BIP130) gets the headers from
//! the first one it lacks up to the tip when they connect to what it has and number at most 8
//! (Core's MAX_BLOCKS_TO_ANNOUNCE); any other peer, or when more are missing or nothing connects,
//! an `inv` of the tip alone, so it asks with `getheaders`. What a peer has comes from
//! [`PeerChain::has_header`] — the blocks it announced or sent us, its getheaders locator, the
//! headers we sent it — so a block never goes back to its source. Nothing is announced in initial
//! block download (as Core); the first pass after it reaches every peer that is behind.
//!
//! Idle ticks cost one comparison: peers are looked at only when the tip moved or a peer just
//! became ready. A peer whose handshake overlapped a tip move is looked at once ready (Core queues
//! announcements for a peer from its connection on).

use crate::chain::tree::{BlockIdx, NO_PARENT};
use crate::chain::{BlockRelay, HeaderTree, Ibd, PeerChain};
use crate::components::{Direction, Disconnect, Negotiated, PeerState, SendQueue};
use crate::resources::{AnnounceKind, Clock, Config, Metrics};
use crate::wire::headers::HeaderList;
use crate::wire::{InvList, InvType, Message};
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
    metrics: ResMut<'w, Metrics>,
}

/// Announces the validated tip to every peer that lacks it.
pub fn block_announce(
    mut peers: ParamSet<(Query<AnnouncePeer, Without<Disconnect>>, Query<(), Added<PeerChain>>)>,
    mut ctx: AnnounceBlocksCtx,
) {
    let tip = ctx.relay.served_tip(&ctx.tree);
    let now = ctx.clock.now_ms;
    match ctx.relay.seen {
        // The first look is not a move: peers that connect now have nothing to hear of.
        None => ctx.relay.seen = Some((tip, 0)),
        Some((t, _)) if t != tip => ctx.relay.seen = Some((tip, now)),
        Some(_) => {}
    }
    if ctx.ibd.active || (ctx.relay.announced_tip == Some(tip) && peers.p1().is_empty()) {
        return;
    }
    ctx.relay.announced_tip = Some(tip);
    for (direction, state, neg, mut pc, mut sq) in &mut peers.p0() {
        if *state != PeerState::Ready || *direction == Direction::Feeler || pc.announced_for == Some(tip) {
            continue;
        }
        pc.announced_for = Some(tip);
        announce(&mut ctx, &mut pc, neg, &mut sq, tip);
    }
}

/// Tells one peer of `tip` unless it has it.
fn announce(ctx: &mut AnnounceBlocksCtx, pc: &mut PeerChain, neg: &Negotiated, sq: &mut SendQueue, tip: BlockIdx) {
    let tree = &*ctx.tree;
    if pc.has_header(tree, tip) {
        return;
    }
    // The blocks it lacks, tip first, while they may still connect to one it has.
    let mut missing: SmallVec<[BlockIdx; MAX_BLOCKS_TO_ANNOUNCE]> = SmallVec::new();
    let mut cur = tip;
    let connects = loop {
        missing.push(cur);
        let parent = tree.entry(cur).parent;
        if parent == NO_PARENT || pc.has_header(tree, parent) {
            break true;
        }
        if missing.len() == MAX_BLOCKS_TO_ANNOUNCE {
            break false;
        }
        cur = parent;
    };
    let network = ctx.config.network;
    let announced: &[BlockIdx] = if neg.sendheaders && connects {
        let mut list = HeaderList::default();
        for &idx in missing.iter().rev() {
            list.push_raw(tree.raw_header(idx));
        }
        sq.push(network, &Message::Headers(list));
        pc.best_sent = Some(tip);
        ctx.metrics.block_announcements[AnnounceKind::Headers as usize] += 1;
        &missing
    } else {
        let mut list = InvList::with_capacity(1);
        list.push(InvType::BLOCK, tree.entry(tip).hash.to_byte_array());
        sq.push(network, &Message::Inv(list));
        ctx.metrics.block_announcements[AnnounceKind::Inv as usize] += 1;
        &missing[..1]
    };
    let now = ctx.clock.now_ms;
    for &idx in announced {
        let hash = tree.entry(idx).hash;
        if let Some(heard) = ctx.relay.take_heard(&hash) {
            ctx.metrics.block_relay_ms.record(now.saturating_sub(heard));
        }
    }
}

#[cfg(test)]
#[path = "block_announce_tests.rs"]
mod tests;
