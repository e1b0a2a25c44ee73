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

use crate::chain::compact_relay::{RecentBlock, MAX_BLOCKTXN_DEPTH, MAX_CMPCTBLOCK_DEPTH};
use crate::chain::tree::status;
use crate::chain::{
    BlockRead, BlockReadInbox, BlockReads, BlockRelay, ChainParams, CompactRelay, HeaderTree, ServeAs, ServeQueue,
    ServeRequest, SyncConfig, ValidationQueue,
};
use crate::components::{ConnId, Disconnect, PeerState, Received, SendQueue, Socket, Violations};
use crate::resources::{Clock, Config, ConnIndex, DisconnectReason, Metrics, Misbehavior, Rng};
use crate::wire::reader::write_compact_size;
use crate::wire::{encode_frame_with, Block, BlockTxn, CmpctBlock, Command, InvList, InvType, Message};
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

/// The peer entity's parts serving uses.
type ServePeer<'a> =
    (Entity, &'a Socket, &'a PeerState, &'a mut Received, &'a mut SendQueue, &'a mut ServeQueue, &'a mut Violations);

/// Node-wide inputs of serving besides the reads.
#[derive(bevy_ecs::system::SystemParam)]
pub struct ServeCtx<'w> {
    config: Res<'w, Config>,
    sync: Res<'w, SyncConfig>,
    tree: Res<'w, HeaderTree>,
    relay: Res<'w, BlockRelay>,
    compact: Res<'w, CompactRelay>,
    queue: Res<'w, ValidationQueue>,
    clock: Res<'w, Clock>,
    params: Res<'w, ChainParams>,
    index: Res<'w, ConnIndex>,
    rng: ResMut<'w, Rng>,
    metrics: ResMut<'w, Metrics>,
}

/// Queues getdata block entries, issues reads, and frames the blocks the shell read.
pub fn serve_blocks(
    mut peers: Query<ServePeer, Without<Disconnect>>,
    ctx: ServeCtx,
    mut reads: ResMut<BlockReads>,
    mut answers: ResMut<BlockReadInbox>,
    mut commands: Commands,
    mut turn: Local<usize>,
) {
    let ServeCtx { config, sync, tree, relay, compact, queue, clock, params, index, mut rng, mut metrics } = ctx;
    for data in std::mem::take(&mut answers.0) {
        let Some(&e) = index.0.get(&data.conn) else { continue };
        let Ok((_, _, _, _, mut sq, mut serve, mut violations)) = peers.get_mut(e) else { continue };
        let Some(pos) = serve.reads.iter().position(|(h, _)| *h == data.hash) else { continue };
        let Some((_, what)) = serve.reads.remove(pos) else { continue };
        let Some(bytes) = data.bytes else {
            not_found(&config, &mut sq, data.hash);
            continue;
        };
        let nonce = rng.next_u64();
        let peer = Answer { sq: &mut sq, violations: &mut violations, conn: data.conn };
        answer(&config, &mut metrics, peer, data.hash, what, Stored::Bytes(bytes), nonce);
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
        let Ok((entity, socket, state, mut received, mut sq, mut serve, mut violations)) = peers.get_mut(entity) else {
            continue;
        };
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
        received.0.retain(|m| match m {
            Message::GetData(list) => {
                let mut others = false;
                for e in list.iter() {
                    if e.kind.base() == InvType::BLOCK || e.kind == InvType::CMPCT_BLOCK {
                        if serve.pending.len() < sync.serve_queue_max {
                            serve.pending.push_back(ServeRequest::Block(e));
                        } else {
                            serve.dropped += 1;
                        }
                    } else {
                        others = true;
                    }
                }
                // Transaction entries stay for the relay system.
                others
            }
            Message::GetBlockTxn(req) => {
                if serve.pending.len() < sync.serve_queue_max && serve.txn_requests() < ServeQueue::TXN_REQUESTS_MAX {
                    serve.pending.push_back(ServeRequest::Txn(req.clone()));
                } else {
                    serve.dropped += 1;
                }
                false
            }
            _ => true,
        });
        let mut missing = InvList::default();
        while sq.bytes() <= config.limits.send_queue_bytes_soft
            && serve.reads.len() < sync.serve_reads_max
            && fits_when_read(sq.bytes(), serve.reads.len() + 1, config.limits.send_queue_bytes_hard)
            && total + MAX_BLOCK_FRAME_BYTES <= sync.serve_bytes_total_max
        {
            let Some(request) = serve.pending.pop_front() else { break };
            let (hash, kind) = match &request {
                ServeRequest::Block(e) => (BlockHash::from_byte_array(e.hash), e.kind),
                ServeRequest::Txn(req) => (req.block_hash, InvType::CMPCT_BLOCK),
            };
            // A getblocktxn for the block we just pushed unvalidated is answered from memory (as
            // Core): the asker is finishing what we sent it.
            if let (ServeRequest::Txn(req), Some(r)) = (&request, compact.recent.as_ref().filter(|r| r.hash == hash)) {
                let nonce = rng.next_u64();
                let peer = Answer { sq: &mut sq, violations: &mut violations, conn: socket.conn };
                answer(&config, &mut metrics, peer, hash, ServeAs::Txn(req.indexes.clone()), Stored::Recent(r), nonce);
                continue;
            }
            // The block we pushed to high-bandwidth peers before validating it: a peer that asks
            // for it (whole, because its tip is too old for compact blocks) waits the moments
            // validation takes, rather than hearing `notfound` for a block we just announced.
            let validating = compact.recent.as_ref().is_some_and(|r| {
                r.hash == hash
                    && queue.pending.contains_key(&hash)
                    && tree.ancestor(served, tree.entry(r.idx).height) != Some(r.idx)
            });
            if validating {
                serve.pending.push_front(request);
                break;
            }
            let idx = tree.get(&hash).filter(|&i| {
                let s = tree.entry(i).status;
                s & status::HAVE_DATA != 0 && s & status::FAILED_ANY == 0 && block_request_allowed(&tree, served, i)
            });
            let Some(idx) = idx else {
                match request {
                    ServeRequest::Block(_) => missing.push(kind, hash.to_byte_array()),
                    // Core stays silent about a block it does not have.
                    ServeRequest::Txn(_) => {
                        tracing::debug!(peer = socket.conn.0, %hash, "getblocktxn for a block we do not have")
                    }
                }
                continue;
            };
            let depth = tree.entry(served).height.saturating_sub(tree.entry(idx).height);
            let what = match request {
                ServeRequest::Block(e) if e.kind == InvType::CMPCT_BLOCK => {
                    if depth <= MAX_CMPCTBLOCK_DEPTH && can_direct_fetch(&tree, &clock, &params) {
                        ServeAs::Compact
                    } else {
                        ServeAs::Block { witness: true }
                    }
                }
                ServeRequest::Block(e) => ServeAs::Block { witness: e.kind.wants_witness() },
                // Older blocks go whole: as costly to the asker as to us (Core's rule).
                ServeRequest::Txn(req) if depth <= MAX_BLOCKTXN_DEPTH => ServeAs::Txn(req.indexes),
                ServeRequest::Txn(_) => ServeAs::Block { witness: true },
            };
            // The newest block is at hand: no read.
            if let Some(r) = compact.recent.as_ref().filter(|r| r.hash == hash) {
                let nonce = rng.next_u64();
                let peer = Answer { sq: &mut sq, violations: &mut violations, conn: socket.conn };
                answer(&config, &mut metrics, peer, hash, what, Stored::Recent(r), nonce);
                continue;
            }
            serve.reads.push_back((hash, what));
            reads.requests.push(BlockRead { conn: socket.conn, hash });
            total += MAX_BLOCK_FRAME_BYTES;
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

/// Where a block to answer from is.
enum Stored<'a> {
    /// Read from the store (witness serialization).
    Bytes(Vec<u8>),
    /// The newest block, kept with its compact form.
    Recent(&'a RecentBlock),
}

/// The asking peer's parts an answer touches.
struct Answer<'a> {
    sq: &'a mut SendQueue,
    violations: &'a mut Violations,
    conn: ConnId,
}

/// Answers one request from a block we hold.
fn answer(
    config: &Config,
    metrics: &mut Metrics,
    peer: Answer,
    hash: BlockHash,
    what: ServeAs,
    stored: Stored,
    nonce: u64,
) {
    let Answer { sq, violations, conn } = peer;
    if let (ServeAs::Block { witness: true }, Stored::Bytes(bytes)) = (&what, &stored) {
        // The stored bytes are the answer: nothing to parse.
        let mut frame = Vec::with_capacity(bytes.len() + 24);
        encode_frame_with(config.network, Command::Block, &mut frame, |o| o.extend_from_slice(bytes));
        sq.push_frame(Command::Block, frame);
        return;
    }
    let decoded;
    let (block, recent) = match stored {
        Stored::Recent(r) => (&*r.block, Some(r)),
        Stored::Bytes(bytes) => match Block::decode_owned(bytes) {
            Ok(b) => {
                decoded = b;
                (&decoded, None)
            }
            Err(_) => return not_found(config, sq, hash),
        },
    };
    match what {
        ServeAs::Block { witness } => {
            let payload = if witness { Some(block.raw().to_vec()) } else { strip_witness(block.raw()) };
            match payload {
                Some(p) => {
                    let mut frame = Vec::with_capacity(p.len() + 24);
                    encode_frame_with(config.network, Command::Block, &mut frame, |o| o.extend_from_slice(&p));
                    sq.push_frame(Command::Block, frame);
                }
                None => not_found(config, sq, hash),
            }
        }
        ServeAs::Compact => {
            match recent {
                Some(r) => sq.push_frame(Command::CmpctBlock, r.cmpct_frame.clone()),
                None => sq.push(config.network, &Message::CmpctBlock(CmpctBlock::from_block(block, nonce))),
            }
            metrics.compact_sent += 1;
        }
        ServeAs::Txn(indexes) => {
            if indexes.iter().any(|&i| usize::from(i) >= block.tx_count()) {
                tracing::info!(peer = conn.0, %hash, "getblocktxn with out-of-bounds indexes");
                violations.0.push(Misbehavior::GetBlockTxnOutOfBounds);
                return;
            }
            let txs = indexes.iter().filter_map(|&i| block.tx_bytes(usize::from(i)));
            let txs: Vec<&[u8]> = txs.collect();
            match BlockTxn::from_txs(hash, txs.into_iter()) {
                Ok(t) => {
                    sq.push(config.network, &Message::BlockTxn(t));
                    metrics.blocktxn_served += 1;
                }
                Err(_) => not_found(config, sq, hash),
            }
        }
    }
}

/// Core's CanDirectFetch: our tip is at most 20 block intervals old.
fn can_direct_fetch(tree: &HeaderTree, clock: &Clock, params: &ChainParams) -> bool {
    i64::from(tree.entry(tree.validated_tip()).time) > clock.unix_s() - 20 * params.target_spacing_s
}

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
