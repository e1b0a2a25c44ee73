//! Invalid-transaction floods after a correct handshake. LargeTx sends one transaction over the
//! standard weight again and again (all of it non-witness bytes, so its weight is four times its
//! size): the node must refuse it as `tx-size` from its span, before hashing or decoding it, and
//! never queue it for checks. NonStandardTxs sends small version-4 transactions (non-standard
//! `version`), `distinct` of them in turn (or every one new): each is checked once, and a copy
//! sent again is dropped by its wtxid among the recently rejected, undecoded.

use super::{Behaviour, BotIo, Paced};
use bitcoin::hashes::Hash;
use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use oni_systems::wire::{encode_frame_with, Command, Network};

/// A `tx` frame around serialized transaction bytes.
fn tx_frame(network: Network, tx: &Transaction) -> Vec<u8> {
    let bytes = bitcoin::consensus::serialize(tx);
    let mut frame = Vec::with_capacity(bytes.len() + 24);
    encode_frame_with(network, Command::Tx, &mut frame, |o| o.extend_from_slice(&bytes));
    frame
}

/// A version-2 transaction of exactly `bytes` bytes (no witness): one input spending nothing anyone
/// has, one output whose script is padding.
pub fn large_tx(bytes: u32) -> Transaction {
    let build = |pad: usize| Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([0x4c; 32]), vout: 0 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(1_000), script_pubkey: ScriptBuf::from_bytes(vec![0x51; pad]) }],
    };
    let want = bytes as usize;
    let first = build(want.saturating_sub(70));
    let size = bitcoin::consensus::serialize(&first).len();
    // The pad's length prefix is 5 bytes either way in the sizes allowed (over 65,535).
    build((want + want.saturating_sub(70)).saturating_sub(size))
}

/// The large-transaction flooder.
#[derive(Debug)]
pub struct LargeTx {
    life: Paced,
    tx_bytes: u32,
    frame: Option<Vec<u8>>,
}

impl LargeTx {
    /// The scenario file's parameters: a transaction over 100 kB (non-standard by size) that still
    /// fits a block.
    pub(crate) fn check(tx_bytes: u32) -> Result<(), String> {
        if !(100_001..=3_999_000).contains(&tx_bytes) {
            return Err(format!("LargeTx: tx_bytes must be in 100001..=3999000, got {tx_bytes}"));
        }
        Ok(())
    }
}

impl LargeTx {
    /// `txs_per_s` copies a second of one `tx_bytes`-byte transaction.
    pub fn new(tx_bytes: u32, txs_per_s: f64) -> Self {
        LargeTx { life: Paced::new(txs_per_s, true), tx_bytes, frame: None }
    }
}

impl Behaviour for LargeTx {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let frame = self.frame.get_or_insert_with(|| tx_frame(io.network, &large_tx(self.tx_bytes)));
            if !io.write_raw(frame, 1) {
                break;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: oni_systems::wire::Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
    }
}

/// A small version-4 transaction (about 80 bytes), its spent outpoint and script from `tag`.
pub fn nonstandard_tx(tag: u64) -> Transaction {
    Transaction {
        version: transaction::Version(4),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([0x9a; 32]), vout: tag as u32 },
            script_sig: ScriptBuf::from_bytes(tag.to_le_bytes().to_vec()),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(5_000), script_pubkey: ScriptBuf::new() }],
    }
}

/// The non-standard-transaction flooder.
#[derive(Debug)]
pub struct NonStandardTxs {
    life: Paced,
    distinct: u32,
    base: Option<u64>,
    sent: u64,
}

impl NonStandardTxs {
    /// `txs_per_s` transactions a second; `distinct` of them in turn (0: every one new).
    pub fn new(txs_per_s: f64, distinct: u32) -> Self {
        NonStandardTxs { life: Paced::new(txs_per_s, true), distinct, base: None, sent: 0 }
    }
}

impl Behaviour for NonStandardTxs {
    fn tick(&mut self, io: &mut BotIo) {
        let due = self.life.due(io);
        let base = *self.base.get_or_insert_with(|| io.rng.next_u64() << 32);
        for _ in 0..due {
            let k = if self.distinct == 0 { self.sent } else { self.sent % self.distinct as u64 };
            if !io.write_raw(&tx_frame(io.network, &nonstandard_tx(base ^ k)), 1) {
                break;
            }
            self.sent += 1;
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: oni_systems::wire::Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_txs_have_the_size_asked_and_weigh_four_times_it() {
        for bytes in [100_001u32, 400_000, 3_900_000] {
            let tx = large_tx(bytes);
            assert_eq!(bitcoin::consensus::serialize(&tx).len(), bytes as usize);
            assert_eq!(tx.weight().to_wu(), 4 * bytes as u64);
        }
    }

    #[test]
    fn nonstandard_txs_differ_by_tag_and_are_version_4() {
        let (a, b) = (nonstandard_tx(1), nonstandard_tx(2));
        assert_ne!(a.compute_wtxid(), b.compute_wtxid());
        assert_eq!(a.compute_wtxid(), nonstandard_tx(1).compute_wtxid());
        assert_eq!(a.version.0, 4);
    }
}
