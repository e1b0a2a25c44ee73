//! The coin store on real LMDB with the fixture chain Bitcoin Core made: Core's unspent-output
//! figures, disconnect/reconnect and the fork reorg against [`MemoryCoins`], refusals that leave
//! the store untouched, undo retention, and reopening mid-sequence.

use super::store::{ChainPoint, CoinStore, CoinStoreOptions, CoinsError};
use crate::validation::fixture::Fixture;
use bitcoin::consensus::deserialize;
use bitcoin::{Block, BlockHash};
use oni_systems::mempool::{CoinView, MemoryCoins};
use std::path::Path;
use std::sync::OnceLock;

pub(crate) struct Chain {
    pub fixture: Fixture,
    pub chain: Vec<Block>,
    pub fork: Vec<Block>,
}

pub(crate) fn chain() -> &'static Chain {
    static CHAIN: OnceLock<Chain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let fixture = Fixture::load(&Fixture::default_dir(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap();
        let decode = |v: &[crate::validation::fixture::FixtureBlock]| -> Vec<Block> {
            v.iter().map(|b| deserialize(&b.raw).unwrap()).collect()
        };
        let (chain, fork) = (decode(&fixture.chain), decode(&fixture.fork));
        Chain { fixture, chain, fork }
    })
}

pub(crate) fn genesis() -> BlockHash {
    bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest).block_hash()
}

/// MemoryCoins after the chain's first `upto` blocks, then `fork` from height 2095.
fn memory(upto: usize, fork: bool) -> MemoryCoins {
    let c = chain();
    let mut m = MemoryCoins::default();
    for (i, b) in c.chain[..upto].iter().enumerate() {
        m.connect(b, i as u32 + 1);
    }
    if fork {
        for (i, b) in c.fork.iter().enumerate() {
            m.connect(b, 2095 + i as u32);
        }
    }
    m
}

pub(crate) fn assert_same(store: &CoinStore, mem: &MemoryCoins) {
    let all = store.all().unwrap();
    assert_eq!(all.len(), mem.len(), "coin count");
    for (op, coin) in all {
        assert_eq!(mem.coin(&op).as_ref(), Some(&coin), "coin {op}");
    }
}

fn connect_range(store: &CoinStore, from_height: u32, to_height: u32) {
    for h in from_height..=to_height {
        store.connect(&chain().chain[h as usize - 1], h).unwrap();
    }
}

fn open(dir: &Path) -> CoinStore {
    CoinStore::open(dir, genesis()).unwrap()
}

#[test]
fn the_fixture_chain_leaves_cores_unspent_output_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.best().unwrap(), ChainPoint { hash: genesis(), height: 0 });
    let started = std::time::Instant::now();
    connect_range(&store, 1, 2100);
    eprintln!("applied 2,100 fixture blocks in {:.2} s", started.elapsed().as_secs_f64());
    let meta = &chain().fixture.meta;
    let (best, count, total_sat) = store.stats().unwrap();
    assert_eq!(best, ChainPoint { hash: meta.tip_hash().unwrap(), height: 2100 });
    assert_eq!(count, meta.utxo_txouts, "gettxoutsetinfo's txouts");
    assert_eq!(total_sat, meta.utxo_total_sat().unwrap(), "gettxoutsetinfo's total_amount");
    assert_eq!(store.len().unwrap(), 5145);
    assert_same(&store, &memory(2100, false));
}

#[cfg(target_os = "linux")]
#[test]
fn the_stores_pages_leave_the_rss_after_each_block_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let file_bytes = || std::fs::metadata(dir.path().join("data.mdb")).unwrap().len();
    connect_range(&store, 1, 2100);
    // Every block rewrote pages all over the file; none of them stays mapped after its commit.
    assert_eq!(store.mapped_resident_bytes(), Some(0), "file {} bytes", file_bytes());
    assert!(file_bytes() > 256 << 10, "a store worth releasing: {} bytes", file_bytes());
    // Reads map what they touch again, from the page cache, and see every coin.
    assert_same(&store, &memory(2100, false));
    let touched = store.mapped_resident_bytes().unwrap();
    assert!(touched > 0, "the reads mapped pages again");
    store.disconnect_tip().unwrap();
    assert_eq!(store.mapped_resident_bytes(), Some(0), "a disconnect releases them too");
}

#[test]
fn disconnecting_back_and_forth_matches_memory_coins_and_the_fork_reorg_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    connect_range(&store, 1, 2100);
    let c = chain();
    // 250 blocks back (within the 288 kept), block by block, hashes as the chain has them.
    for h in (1851..=2100u32).rev() {
        let undo = store.disconnect_tip().unwrap();
        assert_eq!((undo.hash, undo.height), (c.chain[h as usize - 1].block_hash(), h));
    }
    assert_eq!(store.best().unwrap(), ChainPoint { hash: c.chain[1849].block_hash(), height: 1850 });
    assert_same(&store, &memory(1850, false));
    assert_eq!(store.hash_at(1849).unwrap(), Some(c.chain[1848].block_hash()));
    connect_range(&store, 1851, 2100);
    assert_same(&store, &memory(2100, false));
    // The heavier fork: back to 2094 with the store's own undo, then 2095..2101.
    for _ in 2095..=2100 {
        store.disconnect_tip().unwrap();
    }
    for (i, b) in c.fork.iter().enumerate() {
        store.connect(b, 2095 + i as u32).unwrap();
    }
    let fork_tip = c.fixture.meta.fork_tip_hash().unwrap();
    assert_eq!(store.best().unwrap(), ChainPoint { hash: fork_tip, height: 2101 });
    assert_same(&store, &memory(2094, true));
    // And back onto the original chain.
    for _ in 0..7 {
        store.disconnect_tip().unwrap();
    }
    connect_range(&store, 2095, 2100);
    assert_same(&store, &memory(2100, false));
}

#[test]
fn refused_blocks_leave_the_store_at_its_block_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let c = chain();
    // The first block from 300 on that spends something.
    let idx = (300..c.chain.len()).find(|&i| c.chain[i].txdata.len() > 1).unwrap();
    let height = idx as u32 + 1;
    let store = open(dir.path());
    connect_range(&store, 1, height - 1);
    let before = store.all().unwrap();
    let best = store.best().unwrap();
    // Not the next block: wrong height, wrong parent.
    assert!(matches!(store.connect(&c.chain[idx], height + 1), Err(CoinsError::NotNext { .. })));
    assert!(matches!(store.connect(&c.chain[idx + 1], height + 1), Err(CoinsError::NotNext { .. })));
    // The next block with its last input pointing at a coin that does not exist: its coinbase
    // output and earlier spends were already written in the transaction, which is then abandoned.
    let mut bad = c.chain[idx].clone();
    let spender = bad.txdata.len() - 1;
    let last = bad.txdata[spender].input.len() - 1;
    bad.txdata[spender].input[last].previous_output.vout = 4_000_000;
    assert!(matches!(store.connect(&bad, height), Err(CoinsError::MissingCoin(_))));
    assert_eq!(store.best().unwrap(), best);
    assert_eq!(store.all().unwrap(), before, "nothing of the refused block was kept");
    // The real block still applies.
    connect_range(&store, height, height);
    assert_same(&store, &memory(idx + 1, false));
}

#[test]
fn reopening_mid_sequence_resumes_at_the_last_committed_block() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        connect_range(&store, 1, 700);
        store.disconnect_tip().unwrap();
    } // every handle dropped: the environment closes
    let store = open(dir.path());
    assert_eq!(store.best().unwrap(), ChainPoint { hash: chain().chain[698].block_hash(), height: 699 });
    assert_same(&store, &memory(699, false));
    connect_range(&store, 700, 2100);
    assert_same(&store, &memory(2100, false));
    // A store made for another chain is refused.
    drop(store);
    let other = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Signet).block_hash();
    assert!(matches!(CoinStore::open(dir.path(), other), Err(CoinsError::Corrupt(_))));
}

#[test]
fn undo_beyond_the_kept_depth_is_reported_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        CoinStore::open_with(dir.path(), genesis(), &CoinStoreOptions { undo_keep_blocks: 10, ..Default::default() })
            .unwrap();
    connect_range(&store, 1, 100);
    for _ in 0..10 {
        store.disconnect_tip().unwrap();
    }
    assert!(matches!(store.disconnect_tip(), Err(CoinsError::UndoMissing { height: 90 })));
    assert_eq!(store.best().unwrap().height, 90);
    assert_eq!(store.hash_at(80).unwrap(), None, "pruned with its undo");
    store.wipe().unwrap();
    assert_eq!(store.best().unwrap(), ChainPoint { hash: genesis(), height: 0 });
    assert!(store.is_empty().unwrap());
    assert!(matches!(store.disconnect_tip(), Err(CoinsError::AtGenesis)));
}

#[test]
fn a_damaged_store_is_refused_and_open_or_reset_starts_it_afresh() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        connect_range(&store, 1, 50);
    }
    // Truncated to its first page: the meta pages promise more than the file holds.
    let data = dir.path().join("data.mdb");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..4096]).unwrap();
    assert!(matches!(CoinStore::open(dir.path(), genesis()), Err(CoinsError::Corrupt(_))));
    let store = CoinStore::open_or_reset(dir.path(), genesis()).unwrap();
    assert_eq!(store.best().unwrap(), ChainPoint { hash: genesis(), height: 0 });
    assert!(store.is_empty().unwrap());
    connect_range(&store, 1, 50);
    assert_same(&store, &memory(50, false));
    drop(store);
    // Garbage where the environment should be.
    std::fs::write(&data, vec![0xAB; 8192]).unwrap();
    assert!(matches!(CoinStore::open(dir.path(), genesis()), Err(CoinsError::Corrupt(_))));
    assert_eq!(CoinStore::open_or_reset(dir.path(), genesis()).unwrap().len().unwrap(), 0);
}

/// A block on top of `prev` whose coinbase creates `outputs` coins and whose one other
/// transaction, if `spend` is not empty, spends them into one (the coin store checks the chain
/// link, not the proof of work, the merkle root or the amounts).
fn synthetic_block(prev: BlockHash, nonce: u32, spend: &[bitcoin::OutPoint], outputs: usize) -> Block {
    use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
    let input = |previous_output| TxIn {
        previous_output,
        script_sig: ScriptBuf::new(),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    };
    let out = TxOut { value: Amount::from_sat(50_000), script_pubkey: ScriptBuf::from_bytes(vec![0x51; 22]) };
    let tx = |input: Vec<TxIn>, outputs: usize| Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::from_consensus(nonce),
        input,
        output: vec![out.clone(); outputs],
    };
    let mut txdata = vec![tx(vec![input(OutPoint::null())], outputs)];
    if !spend.is_empty() {
        txdata.push(tx(spend.iter().copied().map(input).collect(), 1));
    }
    let mut block = chain().chain[0].clone();
    block.header.prev_blockhash = prev;
    block.header.nonce = nonce;
    block.txdata = txdata;
    block
}

#[cfg(target_os = "linux")]
#[test]
fn a_block_that_spends_all_over_the_store_keeps_little_of_it_mapped_before_its_commit() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // 160,000 coins under random keys (txids), some 13 MB of LMDB pages.
    for h in 1..=160u32 {
        let best = store.best().unwrap();
        store.connect(&synthetic_block(best.hash, h, &[], 1000), h).unwrap();
    }
    let file_bytes = std::fs::metadata(dir.path().join("data.mdb")).unwrap().len();
    assert!(file_bytes > 12 << 20, "a store much larger than the bound: {file_bytes} bytes");
    // One block spends every 40th coin: 4,000 reads and deletes that land all over the file.
    let spend: Vec<bitcoin::OutPoint> = store.all().unwrap().into_iter().step_by(40).map(|(op, _)| op).collect();
    assert_eq!(spend.len(), 4000);
    // Reading them all mapped the whole file; a block's commit releases it.
    let best = store.best().unwrap();
    store.connect(&synthetic_block(best.hash, 161, &[], 1), 161).unwrap();
    store.resident_before_release_max.store(0, Ordering::Relaxed);
    let best = store.best().unwrap();
    store.connect(&synthetic_block(best.hash, 162, &spend, 0), 162).unwrap();
    let peak = store.resident_before_release_max.load(Ordering::Relaxed);
    assert!(peak > 0, "the map was released inside the transaction");
    assert!(peak <= 1 << 20, "at most 4 walks' worth mapped at once: {peak} of {file_bytes} bytes");
    eprintln!("spending 4,000 coins: at most {peak} bytes of {file_bytes} mapped before a release");
    assert_eq!(store.mapped_resident_bytes(), Some(0), "nothing mapped after the commit");
    assert_eq!(store.len().unwrap(), 160_001 - 4000 + 1, "every spend and creation committed");
    // The same block's undo puts them all back, released along the way too.
    store.resident_before_release_max.store(0, Ordering::Relaxed);
    store.disconnect_tip().unwrap();
    assert_eq!(store.len().unwrap(), 160_001);
    let peak = store.resident_before_release_max.load(Ordering::Relaxed);
    assert!(peak > 0 && peak <= 1 << 20, "disconnect: {peak} bytes");
}
