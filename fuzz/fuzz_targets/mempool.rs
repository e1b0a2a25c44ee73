//! Target 7: the mempool (`mempool::pool` through `mempool::accept`) on a fake chain of coins, scripts
//! skipped: transactions spending chain coins, pool outputs or missing parents (replacements,
//! duplicates, witness-stripped copies, dust and underpaying ones among them), blocks confirming
//! pool transactions (with their ancestors) and conflicting with others, reorgs that disconnect
//! blocks and put their transactions and the pool back through the checks as `tx_accept` does,
//! time passing with expiry. After every step:
//! - `Mempool::check_invariants`: usage, fee and size totals equal the sums over entries, every
//!   index (wtxid, spender, eviction order) and parent/child link agrees with the entries, and
//!   each entry's descendant fee and size equal a recount from scratch;
//! - usage within the memory bound, no package over 25 ancestors or descendants;
//! - every pooled input is a chain coin or a pooled output, nothing pooled is confirmed, and nothing
//!   expired stays;
//! - a refused transaction leaves the pool as it was; an accepted one is in it with the fee its
//!   coins pay, what it replaced and evicted is not.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use oni_systems::mempool::accept::{accept, AcceptError, AcceptInputs};
use oni_systems::mempool::policy::{PolicyConfig, TxReject};
use oni_systems::mempool::pool::{usage_of, Mempool, PoolLimits, Removal, ANCESTOR_LIMIT, DESCENDANT_LIMIT};
use oni_systems::mempool::{Coin, CoinView, SkipScripts};

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most steps per input, inputs per transaction, transactions per block.
const MAX_OPS: usize = 64;
const MAX_INPUTS: usize = 4;
const MAX_BLOCK_TXS: usize = 8;
/// Chain coins at the start.
const CHAIN_COINS: u8 = 12;

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Memory bound, in one-input transactions' usage (2..=41).
    pool_units: u8,
    /// Expiry, in hours (1..=48).
    expiry_hours: u8,
    /// Values of the starting coins (×50 sat over 10,000).
    coin_values: [u16; CHAIN_COINS as usize],
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A chain coin (by order).
    Chain(u8),
    /// An output of a pooled transaction (by arrival order).
    Pool(u8, u8),
    /// An outpoint nobody has.
    Missing(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A transaction arrives.
    Tx { inputs: Vec<Input>, outputs: u8, fee: u16, salt: u8, no_witness: bool },
    /// A block confirms the selected pool transactions (and their ancestors) and spends the
    /// selected chain coins in transactions the pool does not have.
    Block { confirm: Vec<u8>, spend: Vec<u8> },
    /// The last `depth` (1..=3) blocks leave the chain.
    Reorg { depth: u8 },
    /// Minutes pass; old transactions expire.
    Advance { minutes: u16 },
}

/// The chain's unspent outputs.
#[derive(Default)]
struct Coins(BTreeMap<OutPoint, Coin>);

impl CoinView for Coins {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.0.get(outpoint).cloned()
    }
}

/// A connected block and how to take it back.
struct Connected {
    txs: Vec<Transaction>,
    spent: Vec<(OutPoint, Coin)>,
    created: Vec<OutPoint>,
}

fn p2wpkh(tag: [u8; 4]) -> ScriptBuf {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&tag);
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(h))
}

fn spend(prevouts: &[OutPoint], values: &[u64], tag: [u8; 4], witness: bool) -> Transaction {
    let mut sig = [0x11u8; 72];
    sig[0] = 0x30;
    let mut key = [0x22u8; 33];
    key[0] = 0x02;
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: prevouts
            .iter()
            .map(|&previous_output| TxIn {
                previous_output,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: if witness { Witness::from_slice(&[&sig[..], &key[..]]) } else { Witness::new() },
            })
            .collect(),
        output: values.iter().map(|&v| TxOut { value: Amount::from_sat(v), script_pubkey: p2wpkh(tag) }).collect(),
    }
}

struct Run {
    pool: Mempool,
    coins: Coins,
    policy: PolicyConfig,
    blocks: Vec<Connected>,
    tip_height: u32,
    now_ms: u64,
    counter: u32,
}

impl Run {
    fn by_arrival(&self) -> Vec<Txid> {
        let mut v: Vec<(u64, Txid)> = self.pool.iter().map(|e| (e.sequence, e.txid)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, t)| t).collect()
    }

    fn accept(&mut self, tx: Arc<Transaction>) -> Result<(), AcceptError> {
        let mtp = |h: u32| 1_600_000_000 + h as i64 * 600;
        let tip_mtp = mtp(self.tip_height);
        let inputs = AcceptInputs {
            coins: &self.coins,
            scripts: &SkipScripts,
            policy: &self.policy,
            tip_height: self.tip_height,
            tip_mtp,
            mtp_at: &mtp,
            now_ms: self.now_ms,
        };
        let before = (self.pool.len(), self.pool.usage_bytes(), self.pool.next_sequence(), self.pool.total_fee_sat());
        let in_value: Option<u64> = tx
            .input
            .iter()
            .map(|i| {
                self.pool
                    .output(&i.previous_output)
                    .map(|o| o.value.to_sat())
                    .or_else(|| self.coins.0.get(&i.previous_output).map(|c| c.output.value.to_sat()))
            })
            .sum();
        let out_value: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let txid = tx.compute_txid();
        match accept(&mut self.pool, tx, &inputs, false) {
            Ok(done) => {
                assert_eq!(done.txid, txid);
                assert!(self.pool.get(&txid).is_some(), "accepted but not pooled");
                assert_eq!(Some(done.fee_sat), in_value.map(|v| v - out_value), "fee is inputs less outputs");
                for t in done.replaced.iter().chain(&done.evicted) {
                    assert!(self.pool.get(&t.compute_txid()).is_none(), "replaced or evicted yet pooled");
                }
                Ok(())
            }
            Err(e) => {
                let full = e == AcceptError::Reject(TxReject::MempoolFull);
                if !full {
                    let after = (
                        self.pool.len(),
                        self.pool.usage_bytes(),
                        self.pool.next_sequence(),
                        self.pool.total_fee_sat(),
                    );
                    assert_eq!(before, after, "a refused transaction ({e:?}) changed the pool");
                }
                assert!(self.pool.get(&txid).is_none() || !full);
                Err(e)
            }
        }
    }

    fn tx(&mut self, inputs: &[Input], outputs: u8, fee: u16, salt: u8, no_witness: bool) {
        let chain: Vec<(OutPoint, u64)> = self.coins.0.iter().map(|(o, c)| (*o, c.output.value.to_sat())).collect();
        let pooled = self.by_arrival();
        let mut prevouts = Vec::new();
        let mut total = 0u64;
        for i in inputs.iter().take(MAX_INPUTS) {
            let (o, v) = match *i {
                Input::Chain(k) if !chain.is_empty() => chain[k as usize % chain.len()],
                Input::Pool(k, vout) if !pooled.is_empty() => {
                    let o = OutPoint { txid: pooled[k as usize % pooled.len()], vout: vout as u32 % 3 };
                    let v = self.pool.output(&o).map_or(0, |o| o.value.to_sat());
                    (o, v)
                }
                Input::Missing(k) => (OutPoint { txid: Txid::from_byte_array([k | 0x80; 32]), vout: 0 }, 0),
                _ => continue,
            };
            prevouts.push(o);
            total += v;
        }
        if prevouts.is_empty() {
            return;
        }
        let n = 1 + outputs as u64 % 3;
        let each = total.saturating_sub(fee as u64) / n;
        let values: Vec<u64> = (0..n).map(|_| each).collect();
        let tx = spend(&prevouts, &values, [salt, 0, 0, 1], !no_witness);
        let _ = self.accept(Arc::new(tx));
    }

    fn block(&mut self, confirm: &[u8], spend_coins: &[u8]) {
        let pooled = self.by_arrival();
        let mut chosen: Vec<Txid> = Vec::new();
        for &k in confirm.iter().take(MAX_BLOCK_TXS) {
            if pooled.is_empty() {
                break;
            }
            let t = pooled[k as usize % pooled.len()];
            chosen.push(t);
            chosen.extend(self.pool.ancestors(&t));
        }
        // Parents first: arrival order.
        let mut txs: Vec<Transaction> = Vec::new();
        for t in &pooled {
            if chosen.contains(t) {
                txs.push((*self.pool.get(t).expect("pooled").tx).clone());
            }
        }
        let chain: Vec<OutPoint> = self.coins.0.keys().copied().collect();
        for &k in spend_coins.iter().take(MAX_BLOCK_TXS) {
            if chain.is_empty() {
                break;
            }
            let o = chain[k as usize % chain.len()];
            if txs.iter().any(|t| t.input.iter().any(|i| i.previous_output == o)) {
                continue;
            }
            self.counter += 1;
            let v = self.coins.0[&o].output.value.to_sat() / 2;
            txs.push(spend(&[o], &[v], self.counter.to_le_bytes(), true));
        }
        let height = self.tip_height + 1;
        let coinbase = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(height.to_le_bytes().to_vec()),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return([]) }],
        };
        txs.insert(0, coinbase);
        let mut spent = Vec::new();
        let mut created = Vec::new();
        for tx in txs.iter().skip(1) {
            for i in &tx.input {
                let coin = self.coins.0.remove(&i.previous_output).expect("a block spends only what exists");
                spent.push((i.previous_output, coin));
            }
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                let o = OutPoint { txid, vout: vout as u32 };
                self.coins.0.insert(o, Coin { output: out.clone(), height, coinbase: false });
                created.push(o);
            }
        }
        self.tip_height = height;
        self.pool.remove_for_block(&txs, self.now_ms);
        for tx in &txs {
            assert!(self.pool.get(&tx.compute_txid()).is_none(), "a confirmed transaction stayed");
            for i in tx.input.iter().filter(|_| !tx.is_coinbase()) {
                assert_eq!(self.pool.spender(&i.previous_output), None, "a conflict of the block stayed");
            }
        }
        self.blocks.push(Connected { txs, spent, created });
    }

    fn reorg(&mut self, depth: u8) {
        let depth = (1 + depth as usize % 3).min(self.blocks.len());
        if depth == 0 {
            return;
        }
        let mut disconnected = Vec::new();
        for _ in 0..depth {
            let Some(b) = self.blocks.pop() else { break };
            // Spent coins back first: one the block itself created must go again.
            for (o, c) in &b.spent {
                self.coins.0.insert(*o, c.clone());
            }
            for o in &b.created {
                self.coins.0.remove(o);
            }
            self.tip_height -= 1;
            disconnected.push(b.txs);
        }
        // As tx_accept: the pool is emptied, the blocks' transactions (oldest block first) go back
        // through the checks, then the pool's own.
        let held = self.pool.take_all();
        assert!(self.pool.is_empty() && self.pool.usage_bytes() == 0);
        for txs in disconnected.into_iter().rev() {
            for tx in txs.into_iter().skip(1) {
                let _ = self.accept(Arc::new(tx));
            }
        }
        for tx in held {
            if self.accept(tx).is_err() {
                self.pool.count_removal(Removal::Reorg);
            }
        }
    }

    fn check(&mut self) {
        self.pool.check_invariants();
        assert!(self.pool.usage_bytes() <= self.pool.limits().max_bytes, "over the memory bound");
        let cutoff = self.now_ms.saturating_sub(self.pool.limits().expiry_ms);
        for e in self.pool.iter() {
            assert!(self.pool.ancestors(&e.txid).len() < ANCESTOR_LIMIT, "too many ancestors");
            assert!(self.pool.descendants(&e.txid).len() < DESCENDANT_LIMIT, "too many descendants");
            for i in &e.tx.input {
                let o = &i.previous_output;
                assert!(
                    self.coins.0.contains_key(o) || self.pool.output(o).is_some(),
                    "a pooled input is neither a chain coin nor a pooled output"
                );
            }
            assert!(
                !self.coins.0.contains_key(&OutPoint { txid: e.txid, vout: 0 }),
                "a confirmed transaction is pooled"
            );
            assert!(e.entered_ms >= cutoff, "an expired entry stayed");
        }
        assert!(self.pool.min_feerate(self.now_ms) >= self.pool.limits().min_relay_feerate);
    }
}

fuzz_target!(|input: (Setup, Vec<Op>)| {
    let (setup, ops) = input;
    let mut coins = Coins::default();
    for (i, v) in setup.coin_values.iter().enumerate() {
        let o = OutPoint { txid: Txid::from_byte_array([i as u8 + 1; 32]), vout: i as u32 % 2 };
        let output =
            TxOut { value: Amount::from_sat(10_000 + *v as u64 * 50), script_pubkey: p2wpkh([i as u8, 9, 9, 9]) };
        coins.0.insert(o, Coin { output, height: 1, coinbase: false });
    }
    let one = usage_of(&spend(&[OutPoint::null()], &[1], [0; 4], true));
    let limits = PoolLimits {
        max_bytes: one * (2 + setup.pool_units as usize % 40),
        expiry_ms: (1 + setup.expiry_hours as u64 % 48) * 3_600_000,
        ..PoolLimits::default()
    };
    let mut run = Run {
        pool: Mempool::new(limits),
        coins,
        policy: PolicyConfig::default(),
        blocks: Vec::new(),
        tip_height: 200,
        now_ms: 1_000,
        counter: 0,
    };
    for op in ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Tx { inputs, outputs, fee, salt, no_witness } => run.tx(&inputs, outputs, fee, salt, no_witness),
            Op::Block { confirm, spend } => run.block(&confirm, &spend),
            Op::Reorg { depth } => run.reorg(depth),
            Op::Advance { minutes } => {
                run.now_ms += minutes as u64 * 60_000;
                let now = run.now_ms;
                run.pool.expire(now);
            }
        }
        run.check();
    }
});
