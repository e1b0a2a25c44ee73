//! A regtest chain that weighs something, made on the spot (never committed) for measuring initial
//! block download: blocks full of signed transactions of several kinds, so validation (ECDSA and
//! Schnorr signatures), block transfer and the coin store all work. Deterministic by seed.
//!
//! Shapes, drawn per transaction: payments (one input, a share paid and the change), consolidations
//! (up to 20 inputs into one output) and batches (one input into 20 payments and the change);
//! outputs go to P2WPKH, P2TR (spent by key path) or P2SH 2-of-3 multisig scripts over a small
//! key ring, so ECDSA segwit, Schnorr and legacy multisig signatures are all checked. Coinbases pay the ring and
//! are spent once mature (100 blocks). Blocks are built by the network simulator's
//! [`build_block_paying`] (BIP34 height, witness commitment, regtest proof of work).

use crate::scenario::network::mine::build_block_paying;
use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, TapTweak, TweakedKeypair};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, BlockHash, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness,
};
use oni_systems::resources::Rng;
use std::collections::VecDeque;
use std::sync::Arc;

/// Blocks before a coinbase may be spent (consensus).
const COINBASE_MATURITY: u32 = 100;
/// Fee each transaction pays, per input and output (well above regtest's relay floor).
const FEE_PER_IO_SAT: u64 = 300;
/// The smallest output made; smaller amounts stay with the fee.
const MIN_OUTPUT_SAT: u64 = 10_000;
/// Keys in the ring.
const KEYS: usize = 16;

/// How a coin can be spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    P2wpkh,
    P2tr,
    /// Legacy P2SH 2-of-3 multisig over keys `key`, `key + 1`, `key + 2` of the ring.
    P2shMulti,
}

/// A coin the generator can spend.
#[derive(Clone, Debug)]
struct Coin {
    outpoint: OutPoint,
    value: u64,
    key: usize,
    kind: Kind,
}

/// What has been generated so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// Blocks made.
    pub blocks: u32,
    /// Transactions, coinbases included.
    pub txs: u64,
    /// Serialized bytes of all blocks.
    pub bytes: u64,
    /// Coins unspent at the tip (provably unspendable commitment outputs excluded).
    pub utxos: u64,
}

/// The generator: its keys, its coins, the tip it builds on.
pub struct ChainGen {
    secp: Secp256k1<All>,
    rng: Rng,
    keys: Vec<Keypair>,
    tweaked: Vec<TweakedKeypair>,
    spendable: Vec<Coin>,
    /// Coinbase coins and the height they mature at.
    maturing: VecDeque<(u32, Coin)>,
    tip: BlockHash,
    height: u32,
    time: u32,
    stats: ChainStats,
}

impl ChainGen {
    /// A generator on regtest genesis; `seed` fixes every key and choice.
    pub fn new(seed: u64) -> ChainGen {
        let secp = Secp256k1::new();
        let mut rng = Rng::seeded(seed);
        let keys: Vec<Keypair> = (0..KEYS)
            .map(|_| loop {
                let mut b = [0u8; 32];
                for chunk in b.chunks_mut(8) {
                    chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
                }
                if let Ok(sk) = SecretKey::from_slice(&b) {
                    break Keypair::from_secret_key(&secp, &sk);
                }
            })
            .collect();
        let tweaked = keys.iter().map(|k| k.tap_tweak(&secp, None)).collect();
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        ChainGen {
            secp,
            rng,
            keys,
            tweaked,
            spendable: Vec::new(),
            maturing: VecDeque::new(),
            tip: genesis.block_hash(),
            height: 0,
            time: genesis.header.time,
            stats: ChainStats { utxos: 0, ..ChainStats::default() },
        }
    }

    /// What was generated so far.
    pub fn stats(&self) -> ChainStats {
        self.stats
    }

    fn script(&self, key: usize, kind: Kind) -> ScriptBuf {
        match kind {
            Kind::P2wpkh => ScriptBuf::new_p2wpkh(&CompressedPublicKey(self.keys[key].public_key()).wpubkey_hash()),
            Kind::P2tr => ScriptBuf::new_p2tr_tweaked(self.tweaked[key].into()),
            Kind::P2shMulti => ScriptBuf::new_p2sh(&self.multisig(key).script_hash()),
        }
    }

    /// The 2-of-3 redeem script over keys `key`, `key + 1`, `key + 2` (mod the ring).
    fn multisig(&self, key: usize) -> ScriptBuf {
        let mut b = bitcoin::script::Builder::new().push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_2);
        for k in 0..3 {
            b = b.push_key(&bitcoin::PublicKey::new(self.keys[(key + k) % KEYS].public_key()));
        }
        b.push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_3)
            .push_opcode(bitcoin::opcodes::all::OP_CHECKMULTISIG)
            .into_script()
    }

    fn draw_owner(&mut self) -> (usize, Kind) {
        let key = self.rng.below(KEYS as u64) as usize;
        let kind = match self.rng.below(5) {
            0 | 1 => Kind::P2wpkh,
            2 | 3 => Kind::P2tr,
            _ => Kind::P2shMulti,
        };
        (key, kind)
    }

    /// The next block: spends coins into transactions until it holds at least `target_bytes` of
    /// them (or nothing is left to spend), then mines it on the tip.
    pub fn next_block(&mut self, target_bytes: usize) -> Block {
        let height = self.height + 1;
        while self.maturing.front().is_some_and(|(at, _)| *at <= height) {
            if let Some((_, coin)) = self.maturing.pop_front() {
                self.spendable.push(coin);
            }
        }
        let mut txs: Vec<Arc<Transaction>> = Vec::new();
        let (mut size, mut fees) = (0usize, 0u64);
        let mut created: Vec<Coin> = Vec::new();
        let mut attempts = 0;
        while size < target_bytes && !self.spendable.is_empty() && attempts < 100_000 {
            attempts += 1;
            let Some((tx, fee, outs)) = self.next_tx() else { continue };
            size += bitcoin::consensus::serialize(&tx).len();
            fees += fee;
            let txid = tx.compute_txid();
            for (vout, (value, key, kind)) in outs.into_iter().enumerate() {
                created.push(Coin { outpoint: OutPoint::new(txid, vout as u32), value, key, kind });
            }
            txs.push(Arc::new(tx));
        }
        let (key, kind) = self.draw_owner();
        let payout = self.script(key, kind);
        self.time += 1;
        let block = build_block_paying(self.tip, height, self.time, &txs, fees, u64::from(height), payout);
        let coinbase = &block.txdata[0];
        let cb = Coin {
            outpoint: OutPoint::new(coinbase.compute_txid(), 0),
            value: coinbase.output[0].value.to_sat(),
            key,
            kind,
        };
        if cb.value > 0 {
            self.maturing.push_back((height + COINBASE_MATURITY, cb));
        }
        let spent: u64 = txs.iter().map(|t| t.input.len() as u64).sum();
        self.stats.utxos =
            self.stats.utxos + created.len() as u64 + u64::from(coinbase.output[0].value.to_sat() > 0) - spent;
        self.spendable.extend(created);
        self.tip = block.block_hash();
        self.height = height;
        self.stats.blocks += 1;
        self.stats.txs += block.txdata.len() as u64;
        self.stats.bytes += bitcoin::consensus::serialize(&block).len() as u64;
        block
    }

    /// One signed transaction spending coins taken from the spendable set: (tx, fee, new outputs as
    /// value, key, kind).
    #[allow(clippy::type_complexity)]
    fn next_tx(&mut self) -> Option<(Transaction, u64, Vec<(u64, usize, Kind)>)> {
        // Payments pay a share and keep the change, batches pay 1 % twenty times: values shrink
        // slowly, and consolidations merge them back.
        let (n_in, shares): (usize, Vec<u64>) = match self.rng.below(8) {
            0 => (2 + self.rng.below(19) as usize, vec![]), // consolidation
            1 => (1, vec![1; 20]),                          // batch
            _ => (1, vec![1 + self.rng.below(30)]),         // payment
        };
        let mut inputs = Vec::with_capacity(n_in);
        for _ in 0..n_in.min(self.spendable.len()) {
            let i = self.rng.below(self.spendable.len() as u64) as usize;
            inputs.push(self.spendable.swap_remove(i));
        }
        let total: u64 = inputs.iter().map(|c| c.value).sum();
        let fee = FEE_PER_IO_SAT * (inputs.len() + shares.len() + 1) as u64;
        // Too small to pay its fee and one output: left unspent (it stays in the UTXO set).
        let left = total.checked_sub(fee).filter(|l| *l >= MIN_OUTPUT_SAT)?;
        let mut outs = Vec::with_capacity(shares.len() + 1);
        let mut change = left;
        for pct in shares {
            let value = left / 100 * pct;
            if value < MIN_OUTPUT_SAT || change - value < MIN_OUTPUT_SAT {
                break;
            }
            change -= value;
            let (key, kind) = self.draw_owner();
            outs.push((value, key, kind));
        }
        let (key, kind) = self.draw_owner();
        outs.push((change, key, kind));
        let fee = total - left;
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|c| TxIn { previous_output: c.outpoint, sequence: Sequence::MAX, ..Default::default() })
                .collect(),
            output: outs
                .iter()
                .map(|&(v, key, kind)| TxOut { value: Amount::from_sat(v), script_pubkey: self.script(key, kind) })
                .collect(),
        };
        self.sign(&mut tx, &inputs);
        Some((tx, fee, outs))
    }

    fn sign(&self, tx: &mut Transaction, inputs: &[Coin]) {
        let prevouts: Vec<TxOut> = inputs
            .iter()
            .map(|c| TxOut { value: Amount::from_sat(c.value), script_pubkey: self.script(c.key, c.kind) })
            .collect();
        let mut witnesses = Vec::with_capacity(inputs.len());
        let mut script_sigs = vec![ScriptBuf::new(); inputs.len()];
        {
            let mut cache = SighashCache::new(&*tx);
            for (i, c) in inputs.iter().enumerate() {
                let w = match c.kind {
                    Kind::P2wpkh => {
                        let hash = cache
                            .p2wpkh_signature_hash(
                                i,
                                &prevouts[i].script_pubkey,
                                prevouts[i].value,
                                EcdsaSighashType::All,
                            )
                            .expect("a P2WPKH prevout");
                        let msg = Message::from_digest(hash.to_byte_array());
                        let sig = self.secp.sign_ecdsa(&msg, &self.keys[c.key].secret_key());
                        let sig = bitcoin::ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All };
                        Witness::p2wpkh(&sig, &self.keys[c.key].public_key())
                    }
                    Kind::P2tr => {
                        let hash = cache
                            .taproot_key_spend_signature_hash(i, &Prevouts::All(&prevouts), TapSighashType::Default)
                            .expect("all prevouts given");
                        let msg = Message::from_digest(hash.to_byte_array());
                        let sig = self.secp.sign_schnorr_no_aux_rand(&msg, &self.tweaked[c.key].to_keypair());
                        let sig = bitcoin::taproot::Signature { signature: sig, sighash_type: TapSighashType::Default };
                        Witness::p2tr_key_spend(&sig)
                    }
                    Kind::P2shMulti => {
                        let redeem = self.multisig(c.key);
                        let hash = cache
                            .legacy_signature_hash(i, &redeem, EcdsaSighashType::All.to_u32())
                            .expect("an input of this transaction");
                        let msg = Message::from_digest(hash.to_byte_array());
                        // OP_0 (CHECKMULTISIG's extra pop), two signatures in key order, the script.
                        let mut b = bitcoin::script::Builder::new().push_opcode(bitcoin::opcodes::OP_0);
                        for k in 0..2 {
                            let sk = self.keys[(c.key + k) % KEYS].secret_key();
                            let sig = bitcoin::ecdsa::Signature {
                                signature: self.secp.sign_ecdsa(&msg, &sk),
                                sighash_type: EcdsaSighashType::All,
                            };
                            b = b.push_slice(
                                bitcoin::script::PushBytesBuf::try_from(sig.to_vec()).expect("a signature fits a push"),
                            );
                        }
                        let redeem_push =
                            bitcoin::script::PushBytesBuf::try_from(redeem.to_bytes()).expect("105 bytes fit a push");
                        script_sigs[i] = b.push_slice(redeem_push).into_script();
                        Witness::new()
                    }
                };
                witnesses.push(w);
            }
        }
        for ((input, w), s) in tx.input.iter_mut().zip(witnesses).zip(script_sigs) {
            input.witness = w;
            input.script_sig = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_deterministic_well_formed_and_fill_once_coins_mature() {
        let mut g = ChainGen::new(7);
        let mut h = ChainGen::new(7);
        let mut last = None;
        for height in 1..=130u32 {
            let b = g.next_block(20_000);
            assert_eq!(b.block_hash(), h.next_block(20_000).block_hash(), "same seed, same chain");
            assert!(b.check_merkle_root() && b.check_witness_commitment(), "height {height}");
            if height > 16 {
                // Up to 16 the height is OP_1..OP_16, which rust-bitcoin does not read.
                assert_eq!(b.bip34_block_height().ok(), Some(u64::from(height)));
            }
            if height <= COINBASE_MATURITY {
                assert_eq!(b.txdata.len(), 1, "nothing to spend before the first coinbase matures");
            }
            last = Some(b);
        }
        let b = last.unwrap();
        assert!(b.txdata.len() > 10, "a mature chain fills its blocks: {} txs", b.txdata.len());
        let s = g.stats();
        assert_eq!(s.blocks, 130);
        assert!(s.bytes > 100_000, "{s:?}");
    }
}
