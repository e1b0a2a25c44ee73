//! BIP152 state: which peers we asked for high-bandwidth mode, which peers just gave us a new block
//! first (the candidates for it), the newest block with its compact form (pushed to high-bandwidth
//! peers before validation and served without a read), and per peer the block being rebuilt.

use super::reconstruct::PartialBlock;
use super::tree::BlockIdx;
use crate::components::ConnId;
use crate::wire::{Block, CmpctBlock, Message, Network};
use ahash::AHashSet;
use bevy_ecs::prelude::*;
use bitcoin::BlockHash;
use std::collections::VecDeque;
use std::sync::Arc;

/// Peers asked to announce new blocks as `cmpctblock` (BIP152: at most 3).
pub const HB_PEERS_MAX: usize = 3;
/// How deep a block may be and still be served as `cmpctblock` (Core's MAX_CMPCTBLOCK_DEPTH);
/// older ones go whole.
pub const MAX_CMPCTBLOCK_DEPTH: u32 = 5;
/// How deep a block may be and still have `getblocktxn` answered (Core's MAX_BLOCKTXN_DEPTH);
/// older ones are sent whole, which costs the asker as much as us.
pub const MAX_BLOCKTXN_DEPTH: u32 = 10;

/// Node-wide compact block state.
#[derive(Resource, Debug, Default)]
pub struct CompactRelay {
    /// Peers we asked for high-bandwidth mode, the longest-standing first.
    pub hb_to: VecDeque<ConnId>,
    /// Peers whose block became our new tip since the selector last ran, in order.
    pub block_sources: Vec<ConnId>,
    /// The newest block that extended our tip when it arrived.
    pub recent: Option<RecentBlock>,
    /// Height of the newest block pushed ahead of validation (each height once, as Core's
    /// `m_highest_fast_announce`).
    pub highest_fast_announce: u32,
    /// Blocks rebuilt from compact blocks and not yet judged by the validator: a consensus failure
    /// of one is not its sender's fault (BIP152 lets peers relay before validating).
    pub via_compact: AHashSet<BlockHash>,
}

impl CompactRelay {
    /// Forgets a peer that left.
    pub fn peer_gone(&mut self, conn: ConnId) {
        self.hb_to.retain(|c| *c != conn);
        self.block_sources.retain(|c| *c != conn);
    }
}

/// The newest block that extended our tip, kept whole with its compact encoding.
#[derive(Clone, Debug)]
pub struct RecentBlock {
    /// Its hash.
    pub hash: BlockHash,
    /// Its header's place in the tree.
    pub idx: BlockIdx,
    /// The block.
    pub block: Arc<Block>,
    /// Its compact form (coinbase prefilled) as a v1 frame, the same bytes for everyone.
    pub cmpct_frame: Vec<u8>,
    /// Not yet pushed to high-bandwidth peers.
    pub push_pending: bool,
}

impl RecentBlock {
    /// `block` (at `idx`) with its compact form under `nonce`.
    pub fn new(block: Block, idx: BlockIdx, nonce: u64, network: Network) -> RecentBlock {
        let mut cmpct_frame = Vec::new();
        Message::CmpctBlock(CmpctBlock::from_block(&block, nonce)).encode_frame(network, &mut cmpct_frame);
        RecentBlock { hash: block.block_hash(), idx, block: Arc::new(block), cmpct_frame, push_pending: true }
    }
}

/// A block being rebuilt from one peer's compact block, waiting for its `blocktxn`.
#[derive(Debug)]
pub struct PendingCompact {
    /// What is known of it.
    pub partial: Box<PartialBlock>,
    /// Bytes received for it so far (compact block, then transactions).
    pub bytes: usize,
}

/// A peer's compact block download: at most one block rebuilt at a time.
#[derive(Component, Debug, Default)]
pub struct CompactDownload {
    /// The block waiting for this peer's `blocktxn`.
    pub pending: Option<PendingCompact>,
    /// The last block this peer's compact block was rebuilt on the side for (another peer was
    /// fetching it): tried once, not again for a repeat.
    pub tried_aside: Option<bitcoin::BlockHash>,
}
