//! The pool across restarts (Core keeps `mempool.dat`): at a clean stop every pool transaction, in
//! the order it entered, and whether it is still one of our own unbroadcast ones, goes to
//! `<datadir>/mempool.dat` — written to a temporary file, synced, then renamed over the old one, so
//! a crash mid-write leaves the previous file whole. At start the transactions go back through the
//! pool's checks (scripts included) once the node is out of IBD and its coins stand at the tip;
//! what the chain has confirmed or spent meanwhile simply fails. A file that does not check out
//! (truncated, damaged, another format) is ignored with a warning.
//!
//! Format: `onimpl01`, a u32 count, then per transaction a flag byte (1 = unbroadcast), a u32
//! length and its consensus bytes (with witness), and last the sha256d of everything before.

use bevy_ecs::prelude::*;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::Transaction;
use oni_systems::mempool::intake::TxIntake;
use oni_systems::mempool::local::Unbroadcast;
use oni_systems::mempool::pool::Mempool;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"onimpl01";

/// The file's name in the datadir.
pub const FILE_NAME: &str = "mempool.dat";

/// Writes the pool of `world` to `path`; returns how many transactions were saved.
pub fn save(world: &World, path: &Path) -> std::io::Result<usize> {
    let pool = world.resource::<Mempool>();
    let unbroadcast = world.resource::<Unbroadcast>();
    let mut entries: Vec<_> = pool.iter().collect();
    entries.sort_unstable_by_key(|e| e.sequence);
    // Loaded at start and not yet checked (still in IBD, say): kept for the next start too.
    let waiting = &world.resource::<TxIntake>().restored;
    let txs: Vec<&Transaction> = entries.iter().map(|e| &*e.tx).chain(waiting.iter().map(|t| &**t)).collect();
    let mut out = Vec::with_capacity(16 + pool.usage_bytes() / 2);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(txs.len() as u32).to_le_bytes());
    for tx in &txs {
        let raw = bitcoin::consensus::serialize(*tx);
        out.push(unbroadcast.txids.contains(&tx.compute_txid()) as u8);
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend_from_slice(&raw);
    }
    let digest = sha256d::Hash::hash(&out);
    out.extend_from_slice(digest.as_byte_array());
    let tmp = path.with_extension("dat.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(txs.len())
}

/// Reads `path`: each transaction and whether it was unbroadcast, in the order saved.
pub fn load(path: &Path) -> Result<Vec<(Transaction, bool)>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a pool file of this format".into());
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if sha256d::Hash::hash(body).as_byte_array() != digest {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    let mut at = MAGIC.len();
    let u32_at = |at: usize| -> Result<u32, String> {
        body.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or("truncated".to_string())
    };
    let count = u32_at(at)? as usize;
    at += 4;
    let mut out = Vec::with_capacity(count.min(body.len() / 64));
    for i in 0..count {
        let flag = *body.get(at).ok_or("truncated")?;
        let len = u32_at(at + 1)? as usize;
        at += 5;
        let raw = body.get(at..at + len).ok_or("truncated")?;
        let tx: Transaction = bitcoin::consensus::deserialize(raw).map_err(|e| format!("transaction {i}: {e}"))?;
        out.push((tx, flag == 1));
        at += len;
    }
    if at != body.len() {
        return Err("trailing bytes".into());
    }
    Ok(out)
}

/// Hands loaded transactions to the pool's checks and marks the unbroadcast ones again.
pub fn restore(world: &mut World, txs: Vec<(Transaction, bool)>) {
    let mut unbroadcast = Vec::new();
    let mut intake = world.resource_mut::<TxIntake>();
    for (tx, flag) in txs {
        if flag {
            unbroadcast.push(tx.compute_txid());
        }
        intake.restored.push_back(Arc::new(tx));
    }
    world.resource_mut::<Unbroadcast>().txids.extend(unbroadcast);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world_with(txs: &[Transaction], unbroadcast: &[usize]) -> World {
        let mut world = oni_systems::schedule::build_world(oni_systems::schedule::WorldSettings::new(
            oni_systems::resources::Config::new(oni_systems::wire::Network::Regtest),
            1,
        ));
        let mut pool = Mempool::default();
        for (i, tx) in txs.iter().enumerate() {
            pool.insert(Arc::new(tx.clone()), 1_000, 100, i as u64, 1);
        }
        world.insert_resource(pool);
        for &i in unbroadcast {
            world.resource_mut::<Unbroadcast>().txids.insert(txs[i].compute_txid());
        }
        world
    }

    fn sample(n: u8) -> Transaction {
        use bitcoin::{absolute::LockTime, transaction::Version, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint { txid: bitcoin::Txid::from_byte_array([n; 32]), vout: 0 },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[vec![n; 70]]),
            }],
            output: vec![TxOut { value: bitcoin::Amount::from_sat(1_000 + n as u64), script_pubkey: ScriptBuf::new() }],
        }
    }

    #[test]
    fn saved_pools_load_back_in_order_with_their_unbroadcast_flags_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let txs: Vec<Transaction> = (1..=5).map(sample).collect();
        let world = world_with(&txs, &[3]);
        assert_eq!(save(&world, &path).unwrap(), 5);
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), txs);
        assert_eq!(loaded.iter().map(|(_, u)| *u).collect::<Vec<_>>(), vec![false, false, false, true, false]);
        // One flipped byte, a truncation, another file: refused, not half-loaded.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(&path).unwrap_err().contains("checksum"));
        bytes[40] ^= 1;
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        assert!(load(&path).is_err());
        std::fs::write(&path, b"something else entirely, not a pool file at all......").unwrap();
        assert!(load(&path).is_err());
    }
}
