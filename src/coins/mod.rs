//! The chain's coins for the pool, kept by the shell because the kernel API exposes no coin
//! lookup: an LMDB coin store updated from each connected block and disconnected in reorgs with
//! its own undo, a follower thread that keeps it in step with the validation worker and tells the
//! world what changed, and Core's script engine behind the pool's `ScriptVerifier`.
//!
//! # Layout
//! - [`codec`]: record layouts (key, coin, undo).
//! - [`store`]: [`CoinStore`], one write transaction per block; implements `CoinView`.
//! - [`reconcile`]: bring the store onto the kernel's active chain (at start, and after a surprise).
//! - [`follower`]: the thread applying the worker's chain changes and emitting `BlockTxEvent`s.
//! - [`scripts`]: [`KernelScripts`], `ScriptVerifier` on libbitcoinkernel.

pub mod codec;
pub mod follower;
pub mod reconcile;
pub mod scripts;
pub mod store;

use bevy_ecs::prelude::Resource;

pub use follower::CoinFollower;
pub use scripts::KernelScripts;
pub use store::{ChainPoint, CoinStore, CoinStoreOptions, CoinsError};

/// The node's coin store in the world, beside the pool's `ChainCoins` view of it: for the shell's
/// readers that need more than lookups (its best block and totals for RPC, tests).
#[derive(Resource, Clone)]
pub struct CoinStoreHandle(pub CoinStore);

#[cfg(test)]
mod follower_tests;
#[cfg(test)]
mod reconcile_tests;
#[cfg(test)]
mod scripts_tests;
#[cfg(test)]
mod store_tests;
