//! Durable bans: the store is opened at start, its bans loaded into the world's `BanList`, and every
//! change the world queues in `BanList::pending` is committed to LMDB — after each tick by the world
//! loop, and at once by RPC calls that change bans, before they answer (a kill -9 after `setban`
//! returns must not lose the ban).

use crate::store::{Store, StoreError};
use bevy_ecs::prelude::*;
use oni_systems::resources::BanList;
use std::sync::Arc;

/// The store, as a world resource so closures run on the world thread (RPC) can commit through it.
#[derive(Resource, Clone)]
pub struct DurableStore(pub Arc<Store>);

/// Loads the stored bans into the world and keeps the store in it.
pub fn install(world: &mut World, store: Arc<Store>) -> Result<usize, StoreError> {
    let bans = store.load_bans()?;
    let n = bans.len();
    world.insert_resource(BanList::load(bans));
    world.insert_resource(DurableStore(store));
    Ok(n)
}

/// Commits the ban changes queued in the world. With no store (no datadir) they are dropped. On a
/// failure the changes stay queued for the next attempt and the error is returned.
pub fn commit_bans(world: &mut World) -> Result<(), StoreError> {
    // Read first: a mutable borrow marks the ban list changed, which makes the connections system
    // re-check every peer against it.
    if world.resource::<BanList>().pending.is_empty() {
        return Ok(());
    }
    let Some(store) = world.get_resource::<DurableStore>().cloned() else {
        world.resource_mut::<BanList>().pending.clear();
        return Ok(());
    };
    let pending = std::mem::take(&mut world.resource_mut::<BanList>().pending);
    match store.0.apply_ban_changes(&pending) {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut bans = world.resource_mut::<BanList>();
            let newer = std::mem::replace(&mut bans.pending, pending);
            bans.pending.extend(newer);
            Err(e)
        }
    }
}
