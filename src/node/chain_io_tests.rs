//! The header save path of the chain IO against a real store and Core's engine: a save that fails
//! keeps the headers, counts and warns, and is retried after its backoff until the store holds
//! every header the tree accepted.

use super::ChainIo;
use crate::node::faults::{NodeWarnings, WarningSource};
use crate::store::Store;
use crate::validation::fixture::Fixture;
use bevy_ecs::world::World;
use bitcoin::hashes::Hash;
use oni_systems::chain::{ChainParams, HeaderTree, ValidationQueue};
use oni_systems::resources::{Config, Metrics};
use oni_systems::wire::Network;
use std::path::Path;
use std::time::Duration;

/// Accepts `raws` into the world's tree and queues them as headers_sync does.
fn accept(world: &mut World, raws: &[[u8; 80]]) {
    let params = ChainParams::for_network(Network::Regtest);
    for raw in raws {
        let hash = bitcoin::BlockHash::from_byte_array(oni_systems::wire::sha256d(raw));
        world.resource_mut::<HeaderTree>().accept(raw, hash, &params, 2_000_000_000).unwrap();
        world.resource_mut::<ValidationQueue>().headers.push(*raw);
    }
}

fn failures(world: &World) -> u64 {
    world.resource::<Metrics>().header_save_failures
}

#[test]
fn failed_header_saves_are_kept_counted_warned_and_retried_until_the_store_has_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap();
    let raws: Vec<[u8; 80]> = fixture.chain[..20].iter().map(|b| b.raw[..80].try_into().unwrap()).collect();
    let mut world =
        oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(Config::new(Network::Regtest), 1));
    let warnings = NodeWarnings::default();
    let mut io = ChainIo::open(Network::Regtest, Some(&dir.path().join("data")), warnings.clone()).unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    store.inject_header_save_failures(2);

    // First attempt fails: nothing on disk, the validator has them anyway.
    accept(&mut world, &raws[..10]);
    io.after_tick(&mut world, Some(&store));
    assert_eq!(failures(&world), 1);
    assert!(store.load_headers().unwrap().is_empty());
    let warning = warnings.list();
    assert!(warning.len() == 1 && warning[0].contains("Cannot save 10 block headers"), "{warning:?}");

    // More headers in the next tick join them; the backoff (100 ms) is not over: no attempt.
    accept(&mut world, &raws[10..]);
    io.after_tick(&mut world, Some(&store));
    assert_eq!(failures(&world), 1);
    // After it: the second injected failure, now for all 20, then a 200 ms wait.
    std::thread::sleep(Duration::from_millis(150));
    io.after_tick(&mut world, Some(&store));
    assert_eq!(failures(&world), 2);
    assert!(warnings.list()[0].contains("Cannot save 20 block headers"), "{:?}", warnings.list());
    std::thread::sleep(Duration::from_millis(250));
    io.after_tick(&mut world, Some(&store));
    assert_eq!(failures(&world), 2);
    assert_eq!(store.load_headers().unwrap(), raws, "all of them, parents first");
    assert!(!warnings.is_set(WarningSource::HeaderStore), "cleared once saved");

    // Saved headers are not written again; new ones go out at once.
    io.after_tick(&mut world, Some(&store));
    assert_eq!(store.load_headers().unwrap().len(), 20);
    io.shutdown();
}

#[test]
fn saved_headers_leave_the_tree_and_are_read_back_from_the_store_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap();
    let raws: Vec<[u8; 80]> = fixture.chain[..2000].iter().map(|b| b.raw[..80].try_into().unwrap()).collect();
    let new_world = || {
        oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(Config::new(Network::Regtest), 1))
    };
    let store = std::sync::Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let served = |world: &World| {
        let tree = world.resource::<HeaderTree>();
        let idxs: Vec<_> = (1..tree.len() as u32).collect();
        let mut out = Vec::new();
        tree.raw_headers(&idxs, &mut out);
        out
    };

    let mut world = new_world();
    world.resource_mut::<HeaderTree>().attach_archive(store.clone());
    let mut io = ChainIo::open(Network::Regtest, Some(&dir.path().join("data")), NodeWarnings::default()).unwrap();
    let empty = world.resource::<HeaderTree>().heap_bytes();
    accept(&mut world, &raws);
    let whole = world.resource::<HeaderTree>().heap_bytes();
    assert_eq!(world.resource::<HeaderTree>().unarchived_len(), 2000);
    io.after_tick(&mut world, Some(&store));
    let tree = world.resource::<HeaderTree>();
    assert_eq!(tree.unarchived_len(), 0, "all saved");
    assert!(whole - tree.heap_bytes() >= 2000 * 40, "{empty} / {whole} / {} bytes", tree.heap_bytes());
    tree.check_invariants();
    assert_eq!(served(&world), raws, "read back from the store");
    assert_eq!(store.load_headers().unwrap(), raws);
    io.shutdown();

    // A restart streams them into a fresh tree that keeps none of their tails.
    let mut world = new_world();
    world.resource_mut::<oni_systems::resources::Clock>().now_ms = 2_000_000_000_000;
    world.resource_mut::<HeaderTree>().attach_archive(store.clone());
    let io = ChainIo::open(Network::Regtest, Some(&dir.path().join("data")), NodeWarnings::default()).unwrap();
    io.restore(&mut world, Some(&store));
    let tree = world.resource::<HeaderTree>();
    assert_eq!((tree.len(), tree.unarchived_len()), (2001, 0));
    assert!(tree.heap_bytes() < whole, "{} bytes, {whole} with tails", tree.heap_bytes());
    tree.check_invariants();
    assert_eq!(served(&world), raws);
    io.shutdown();
}
