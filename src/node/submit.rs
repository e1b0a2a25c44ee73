//! A block found or handed in locally (Core's `submitblock` → ProcessNewBlock) enters the world the
//! way a peer's block does, minus the peer: its header is checked and accepted into the header tree
//! (newly accepted headers go to the validator first, and the block counts as heard of now for the
//! relay latency figures), the block is marked as had and queued for the validator. The validator's
//! verdict then moves the tip, and block_announce tells the peers, as for any block. A block on our
//! tip outside IBD is also kept with its compact form, so high-bandwidth peers get it before it is
//! validated, as for a peer's block (Core's NewPoWValidBlock fires for submitted blocks too).
//!
//! The shell calls it between two ticks (the world is not running), as it feeds validator results.

use bevy_ecs::world::World;
use bitcoin::consensus::serialize;
use bitcoin::BlockHash;
use oni_systems::chain::compact_relay::RecentBlock;
use oni_systems::chain::tree::status;
use oni_systems::chain::{
    BlockRelay, ChainParams, CompactRelay, HeaderInvalid, HeaderTree, Ibd, ValidateBlock, ValidationQueue,
};
use oni_systems::resources::{Clock, Config, Rng};
use oni_systems::wire::headers::header_to_bytes;

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
    let raw_header = header_to_bytes(&block.header);
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
    let parent = e.parent;
    let ahead = tree.headers_ahead_of(idx);
    tree.set_have_data(idx);
    if new && !in_ibd {
        world.resource_mut::<BlockRelay>().heard(hash, clock.now_ms);
    }
    let on_tip = parent == world.resource::<BlockRelay>().served_tip(world.resource::<HeaderTree>());
    let bytes = serialize(block);
    if on_tip && !in_ibd {
        if let Ok(b) = oni_systems::wire::Block::decode(&bytes) {
            let nonce = world.resource_mut::<Rng>().next_u64();
            let network = world.resource::<Config>().network;
            world.resource_mut::<CompactRelay>().recent = Some(RecentBlock::new(b, idx, nonce, network));
        }
    }
    let mut queue = world.resource_mut::<ValidationQueue>();
    if new {
        queue.headers.push(raw_header);
    }
    queue.push(ValidateBlock { hash, height, bytes, ahead });
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::network::mine::build_block;
    use bitcoin::hashes::Hash;
    use oni_systems::resources::Config;
    use oni_systems::wire::Network;

    #[test]
    fn a_submitted_block_is_queued_once_and_an_orphan_is_refused() {
        let mut world = oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(
            Config::new(Network::Regtest),
            1,
        ));
        world.resource_mut::<Clock>().now_ms = 1_800_000_000_000;
        let genesis = world.resource::<ChainParams>().genesis.block_hash();
        let block = build_block(genesis, 1, 1_800_000_000, &[], 0, 1);
        assert_eq!(submit_block(&mut world, &block), Ok(block.block_hash()));
        let queue = world.resource::<ValidationQueue>();
        assert_eq!((queue.to_validate.len(), queue.headers.len()), (1, 1));
        assert_eq!(queue.to_validate[0].height, 1);
        assert_eq!(submit_block(&mut world, &block), Err(SubmitError::Duplicate));
        // Out of IBD, a block on our tip is kept with its compact form for high-bandwidth peers.
        assert!(world.resource::<CompactRelay>().recent.is_none(), "not in IBD");
        let mut world2 = oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(
            Config::new(Network::Regtest),
            1,
        ));
        world2.resource_mut::<Clock>().now_ms = 1_800_000_000_000;
        world2.resource_mut::<Ibd>().active = false;
        assert_eq!(submit_block(&mut world2, &block), Ok(block.block_hash()));
        let recent = world2.resource::<CompactRelay>().recent.as_ref().map(|r| (r.hash, r.push_pending));
        assert_eq!(recent, Some((block.block_hash(), true)));
        let orphan = build_block(BlockHash::all_zeros(), 1, 1_800_000_000, &[], 0, 2);
        assert_eq!(submit_block(&mut world, &orphan), Err(SubmitError::Header(HeaderInvalid::Unconnecting)));
    }
}
