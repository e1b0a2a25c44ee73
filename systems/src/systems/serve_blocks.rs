//! serve_blocks: answers `getdata` for blocks. Entries wait in the peer's [`ServeQueue`] and are
//! looked up only while its send queue is under the soft bound and the reads out at the shell,
//! each counted as a block of the largest size, would still fit under the hard bound (so an honest
//! slow reader is never pushed over it by blocks it was promised). A peer asking for more than it
//! reads waits (its getdata is not decoded further either: decode stops at the same bound)
//! instead of growing our memory. Blocks we hold are read by the shell ([`BlockReads`] →
//! [`BlockReadInbox`]); witness requests get the stored bytes,
//! `MSG_BLOCK` requests get them with the witness stripped (from the transaction spans, no
//! re-serialization). What we do not have is answered with `notfound` (the issue asks for it; Core
//! stays silent for blocks, and peers ignore a block `notfound`, so this is harmless). As Core's
//! BlockRequestAllowed, a block off our validated chain is served only if we validated it and it
//! is within a month of our best header: older stale blocks are withheld (answered `notfound`), so
//! no one can fingerprint us by the forks we saw. A BIP157
//! filter request disconnects (we serve no compact filters; Core's rule without
//! NODE_COMPACT_FILTERS). Node-wide, reads start only while all send queues and unwritten writer
//! bytes together (reads out counted at the largest block size) stay under
//! [`SyncConfig::serve_bytes_total_max`]; peers take turns at it, the first in line moving each
//! tick.

use crate::chain::tree::status;
use crate::chain::{BlockRead, BlockReadInbox, BlockReads, BlockRelay, HeaderTree, ServeQueue, SyncConfig};
use crate::components::{Disconnect, PeerState, Received, SendQueue, Socket};
use crate::resources::{Config, ConnIndex, DisconnectReason};
use crate::wire::reader::write_compact_size;
use crate::wire::{encode_frame_with, Block, Command, InvList, InvType, Message};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

/// The peer entity's parts serving uses.
type ServePeer<'a> = (Entity, &'a Socket, &'a PeerState, &'a mut Received, &'a mut SendQueue, &'a mut ServeQueue);

/// Queues getdata block entries, issues reads, and frames the blocks the shell read.
pub fn serve_blocks(
    mut peers: Query<ServePeer, Without<Disconnect>>,
    config: Res<Config>,
    sync: Res<SyncConfig>,
    tree: Res<HeaderTree>,
    relay: Res<BlockRelay>,
    index: Res<ConnIndex>,
    mut reads: ResMut<BlockReads>,
    mut answers: ResMut<BlockReadInbox>,
    mut commands: Commands,
    mut turn: Local<usize>,
) {
    for data in std::mem::take(&mut answers.0) {
        let Some(&e) = index.0.get(&data.conn) else { continue };
        let Ok((_, _, _, _, mut sq, mut serve)) = peers.get_mut(e) else { continue };
        let Some(pos) = serve.reads.iter().position(|(h, _)| *h == data.hash) else { continue };
        let Some((_, witness)) = serve.reads.remove(pos) else { continue };
        match data.bytes {
            Some(bytes) => {
                let payload = if witness { Some(bytes) } else { strip_witness(&bytes) };
                match payload {
                    Some(p) => {
                        let mut frame = Vec::with_capacity(p.len() + 24);
                        encode_frame_with(config.network, Command::Block, &mut frame, |o| o.extend_from_slice(&p));
                        sq.push_frame(Command::Block, frame);
                    }
                    None => not_found(&config, &mut sq, data.hash),
                }
            }
            None => not_found(&config, &mut sq, data.hash),
        }
    }
    // The chain we serve is the one we announce: the validator's newest tip (its durable connect,
    // which moves the validated tip, may come later).
    let served = relay.served_tip(&tree);
    // Bytes handed to writers and not yet written are still ours: a block frame goes to a writer
    // whole, however little of its window is free.
    let mut total: usize =
        peers.iter().map(|p| p.4.bytes() + p.4.in_writer_bytes + p.5.reads.len() * MAX_BLOCK_FRAME_BYTES).sum();
    let mut order: Vec<Entity> = peers.iter().map(|p| p.0).collect();
    if !order.is_empty() {
        *turn = (*turn + 1) % order.len();
        order.rotate_left(*turn);
    }
    for entity in order {
        let Ok((entity, socket, state, mut received, mut sq, mut serve)) = peers.get_mut(entity) else { continue };
        if *state != PeerState::Ready {
            continue;
        }
        if received.0.iter().any(|m| matches!(m, Message::GetCFilters | Message::GetCFHeaders | Message::GetCFCheckpt))
        {
            tracing::info!(peer = socket.conn.0, "asked for compact filters, which we do not serve");
            received.0.clear();
            commands.entity(entity).insert(Disconnect { reason: DisconnectReason::ServiceNotOffered });
            continue;
        }
        received.0.retain(|m| {
            let Message::GetData(list) = m else { return true };
            let mut others = false;
            for e in list.iter() {
                if e.kind.base() == InvType::BLOCK {
                    if serve.pending.len() < sync.serve_queue_max {
                        serve.pending.push_back(e);
                    } else {
                        serve.dropped += 1;
                    }
                } else {
                    others = true;
                }
            }
            // Transaction entries stay for the relay system.
            others
        });
        let mut missing = InvList::default();
        while sq.bytes() <= config.limits.send_queue_bytes_soft
            && serve.reads.len() < sync.serve_reads_max
            && fits_when_read(sq.bytes(), serve.reads.len() + 1, config.limits.send_queue_bytes_hard)
            && total + MAX_BLOCK_FRAME_BYTES <= sync.serve_bytes_total_max
        {
            let Some(e) = serve.pending.pop_front() else { break };
            let hash = BlockHash::from_byte_array(e.hash);
            let have = tree.get(&hash).is_some_and(|i| {
                let s = tree.entry(i).status;
                s & status::HAVE_DATA != 0 && s & status::FAILED_ANY == 0 && block_request_allowed(&tree, served, i)
            });
            if have {
                serve.reads.push_back((hash, e.kind.wants_witness()));
                reads.requests.push(BlockRead { conn: socket.conn, hash });
                total += MAX_BLOCK_FRAME_BYTES;
            } else {
                missing.push(e.kind, e.hash);
            }
        }
        if !missing.is_empty() {
            sq.push(config.network, &Message::NotFound(missing));
        }
    }
}

/// How old (by header time, behind our best header) a block off our chain may be and still be
/// served (Core's STALE_RELAY_AGE_LIMIT, a month).
pub const STALE_RELAY_AGE_LIMIT_S: u32 = 30 * 24 * 3600;

/// Core's BlockRequestAllowed: a block on the chain ending at `tip` (the tip we serve), or one we validated whose time
/// is within a month of our best header's (Core also bounds its work-equivalent time alike; on a
/// chain of steady difficulty the two agree). Older stale blocks are withheld, as by Core.
pub fn block_request_allowed(
    tree: &HeaderTree,
    tip: crate::chain::tree::BlockIdx,
    idx: crate::chain::tree::BlockIdx,
) -> bool {
    let e = tree.entry(idx);
    tree.ancestor(tip, e.height) == Some(idx)
        || (e.status & status::VALIDATED != 0
            && tree.best_entry().time.saturating_sub(e.time) < STALE_RELAY_AGE_LIMIT_S)
}

/// Whether `reads` blocks of the largest size, arriving on top of `queued` bytes, stay within the
/// hard bound: reads in flight never push an honest slow reader over it (two 4 MB blocks on a 1 MB
/// queue would). With the default bounds (8 MB hard, 4 MB blocks) that means one read in flight
/// per peer; a larger hard bound allows more.
fn fits_when_read(queued: usize, reads: usize, hard: usize) -> bool {
    queued + reads * MAX_BLOCK_FRAME_BYTES <= hard
}

/// The largest block frame: a whole message payload and its header.
const MAX_BLOCK_FRAME_BYTES: usize = crate::wire::MAX_PAYLOAD_BYTES as usize + crate::wire::HEADER_LEN;

fn not_found(config: &Config, sq: &mut SendQueue, hash: BlockHash) {
    let mut l = InvList::default();
    l.push(InvType::BLOCK, hash.to_byte_array());
    sq.push(config.network, &Message::NotFound(l));
}

/// The block without witness data (BIP144 "non-witness serialization"), built from the stored
/// witness serialization's transaction spans. `None` if the bytes do not parse.
pub fn strip_witness(raw: &[u8]) -> Option<Vec<u8>> {
    let block = Block::decode(raw).ok()?;
    let spans = block.tx_spans();
    if !spans.iter().any(|s| s.has_witness()) {
        return Some(raw.to_vec());
    }
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..80]);
    write_compact_size(&mut out, spans.len() as u64);
    for s in spans {
        let (st, io, oe, end) = (s.start as usize, s.io_start as usize, s.io_end as usize, s.end as usize);
        out.extend_from_slice(&raw[st..st + 4]);
        out.extend_from_slice(&raw[io..oe]);
        out.extend_from_slice(&raw[end - 4..end]);
    }
    Some(out)
}

#[cfg(test)]
#[path = "serve_blocks_tests.rs"]
mod tests;
