//! A node world started at the regtest fixture's tip (`chain: Fixture` in a scenario): its header
//! tree holds the fixture's 2,100 blocks, all validated; its coins are theirs ([`MemoryCoins`]); it
//! is out of initial block download. Core's fixture mempool is then valid for it (scripts are not
//! run: the world's default verifier skips them), which transaction scenarios need. The blocks are
//! parsed once per process; each world gets its own tree and coins.

use super::bots::fixture;
use bevy_ecs::prelude::*;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use oni_systems::chain::{ChainParams, HeaderTree, Ibd};
use oni_systems::mempool::{ChainCoins, MemoryCoins};
use oni_systems::resources::ChainTip;
use std::sync::OnceLock;

static BLOCKS: OnceLock<Result<Vec<Block>, String>> = OnceLock::new();

/// The fixture's blocks, parsed (heights 1.. in order), or why they could not be.
fn blocks() -> Result<&'static [Block], String> {
    BLOCKS
        .get_or_init(|| {
            fixture::chain()?
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    bitcoin::consensus::deserialize(&b.bytes)
                        .map_err(|e| format!("fixture block at height {} does not parse: {e}", i + 1))
                })
                .collect()
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// Checks the fixture can be loaded (a scenario asking for it is refused with the reason otherwise).
pub fn check() -> Result<(), String> {
    blocks().map(|_| ())
}

/// Puts the fixture chain into `world`: headers accepted (checked as any header is, against
/// `now_s`) and marked validated, coins from every block, the tip's height, IBD over.
pub fn load(world: &mut World, now_s: i64) -> Result<(), String> {
    let raw = fixture::chain()?;
    let blocks = blocks()?;
    let params = world.resource::<ChainParams>().clone();
    let mut coins = MemoryCoins::default();
    let mut tree = world.resource_mut::<HeaderTree>();
    for (i, (fb, block)) in raw.iter().zip(blocks).enumerate() {
        let hash = BlockHash::from_byte_array(fb.hash);
        tree.accept(&fb.header, hash, &params, now_s)
            .map_err(|e| format!("fixture header at height {} refused: {e:?}", i + 1))?;
        tree.mark_validated(&hash);
        coins.connect(block, i as u32 + 1);
    }
    let height = tree.entry(tree.validated_tip()).height;
    world.insert_resource(ChainCoins(Box::new(coins)));
    world.resource_mut::<ChainTip>().height = height as i32;
    world.resource_mut::<Ibd>().active = false;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::resources::Config;
    use oni_systems::wire::Network;

    #[test]
    fn a_world_starts_at_the_fixture_tip_with_its_coins() {
        let mut world = oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(
            Config::new(Network::Regtest),
            1,
        ));
        load(&mut world, 1_800_000_000).unwrap();
        let tree = world.resource::<HeaderTree>();
        assert_eq!(tree.entry(tree.validated_tip()).height, 2_100);
        assert_eq!(tree.best_entry().height, 2_100);
        assert!(!world.resource::<Ibd>().active);
        // Every input of the fixture mempool is either a chain coin or another fixture tx's output.
        let pool = fixture::mempool().unwrap();
        let txids: Vec<_> = pool.iter().map(|t| t.compute_txid()).collect();
        let coins = &world.resource::<ChainCoins>().0;
        for tx in pool {
            for input in &tx.input {
                let prev = &input.previous_output;
                assert!(coins.coin(prev).is_some() || txids.contains(&prev.txid), "{prev} unknown");
            }
        }
    }

    #[test]
    fn headers_from_the_future_are_refused() {
        let mut world = oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(
            Config::new(Network::Regtest),
            1,
        ));
        // Before the fixture was made: its headers are more than two hours in the future.
        assert!(load(&mut world, 1_700_000_000).is_err());
    }
}
