//! Ban durability, one path: the store is also a world resource, so an RPC call that changes bans
//! commits them inside its own world call, before it answers (a kill -9 after `setban` returns must
//! not lose the ban), and the world loop commits what the systems queue after each tick through the
//! same [`commit_bans`]; a failed commit keeps the changes queued for the next attempt.

use crate::store::{Store, StoreError};
use bevy_ecs::prelude::*;
use oni_systems::resources::BanList;
use std::sync::Arc;

/// The store, as a world resource so closures run on the world thread (RPC) can commit through it.
#[derive(Resource, Clone)]
pub struct DurableStore(pub Arc<Store>);

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
