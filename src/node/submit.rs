//! A block found or handed in locally (Core's `submitblock` → ProcessNewBlock) enters the world the
//! way a peer's block does, minus the peer: its header is checked and accepted into the header tree
//! (newly accepted headers go to the validator first, and the block counts as heard of now for the
//! relay latency figures), the block is marked as had and queued for the validator. The validator's
//! verdict then moves the tip, and block_announce tells the peers, as for any block.
//!
//! The shell calls it between two ticks (the world is not running), as it feeds validator results.

use bevy_ecs::world::World;
use bitcoin::consensus::serialize;
use bitcoin::BlockHash;
use oni_systems::chain::tree::status;
use oni_systems::chain::{BlockRelay, ChainParams, HeaderInvalid, HeaderTree, Ibd, ValidateBlock, ValidationQueue};
use oni_systems::resources::Clock;

/// Why a submitted block was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Its header was refused (Core's `submitblock` answers with the reason too).
    Header(HeaderInvalid),
    /// We have it already (Core: "duplicate").
    Duplicate,
}

/// Queues `block` for validation as our own; returns its hash.
pub fn submit_block(world: &mut World, block: &bitcoin::Block) -> Result<BlockHash, SubmitError> {
    let hash = block.block_hash();
    let raw_header: [u8; 80] = serialize(&block.header).try_into().map_err(|_| SubmitError::Duplicate)?;
    let clock = *world.resource::<Clock>();
    let in_ibd = world.resource::<Ibd>().active;
    let params = world.resource::<ChainParams>().clone();
    let mut tree = world.resource_mut::<HeaderTree>();
    let (idx, new) = tree.accept(&raw_header, hash, &params, clock.unix_s()).map_err(SubmitError::Header)?;
    let e = tree.entry(idx);
    if e.status & (status::HAVE_DATA | status::FAILED_ANY) != 0 {
        return Err(SubmitError::Duplicate);
    }
    let height = e.height;
    tree.set_have_data(idx);
    if new && !in_ibd {
        world.resource_mut::<BlockRelay>().heard(hash, clock.now_ms);
    }
    let mut queue = world.resource_mut::<ValidationQueue>();
    if new {
        queue.headers.push(raw_header);
    }
    queue.push(ValidateBlock { hash, height, bytes: serialize(block) });
    Ok(hash)
}
