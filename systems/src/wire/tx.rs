//! Transactions: a bounded structural parse over raw bytes, no per-input allocation.
//!
//! A transaction is kept as its wire bytes plus a [`TxSpan`] of offsets; txid and wtxid are computed
//! from those bytes (the txid skips marker, flag and witness by hashing three slices). The same
//! parser walks every transaction of a `block`, so blocks are validated and served from the bytes
//! they arrived in. Full `bitcoin::Transaction`s are built only on request ([`Tx::to_bitcoin`]).
//!
//! Refused, as Bitcoin Core refuses them (BIP144): a marker followed by a flag other than 0 or 1
//! (Core's "unknown transaction optional data"), a witness serialization with no inputs, a witness record whose stacks are all empty ("superfluous witness record"),
//! non-canonical CompactSizes, truncation; and, stricter than Core, trailing bytes after a `tx`.
//! Read as Core reads it (differential fuzzing against its parser found the gap): no inputs
//! followed by a zero, which Core takes for an empty transaction (no inputs, no outputs, then the
//! lock time) and rejects later, in its checks, as `bad-txns-vin-empty`.

use super::reader::Reader;
use super::{sha256d, sha256d_parts, DecodeError, MAX_PAYLOAD_BYTES};
use bitcoin::hashes::Hash;
use bitcoin::{Transaction, Txid, Wtxid};

/// Smallest input: outpoint (36) + empty script (1) + sequence (4).
pub const MIN_INPUT_BYTES: usize = 41;
/// Smallest output: value (8) + empty script (1).
pub const MIN_OUTPUT_BYTES: usize = 9;
/// Smallest transaction this parser accepts, as Core's: version, no inputs, the zero Core reads
/// as a flag (the empty form), locktime. A block's transaction count is checked against it.
pub const MIN_TX_BYTES: usize = 4 + 1 + 1 + 4;
/// Longest script or witness item; nothing longer fits in a message anyway.
pub const MAX_FIELD_BYTES: usize = MAX_PAYLOAD_BYTES as usize;

/// Where a transaction's parts lie in a buffer: version at `start`, inputs and outputs in
/// `io_start..io_end`, witness (if any) in `io_end..end - 4`, locktime in the last 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxSpan {
    /// First byte (the version).
    pub start: u32,
    /// First byte of the input count (after marker and flag when present).
    pub io_start: u32,
    /// One past the last output (the witness, if any, starts here).
    pub io_end: u32,
    /// One past the locktime.
    pub end: u32,
}

impl TxSpan {
    /// Whether the transaction carries a witness (marker, flag and witness record).
    pub fn has_witness(&self) -> bool {
        self.io_start != self.start + 4
    }

    /// Whether it has neither inputs nor outputs (Core's `IsNull`: what an empty transaction
    /// reads as; never valid, and a compact block prefilling one is refused for it).
    pub fn is_null(&self) -> bool {
        !self.has_witness() && self.io_end - self.io_start == 2
    }

    /// Serialized size with witness.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Always false: a parsed transaction has at least `MIN_TX_BYTES` bytes (clippy's pairing).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The transaction's bytes within `buf` (the buffer it was parsed from).
    pub fn bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    /// Serialized size without witness (for weight: 3 × this + total).
    pub fn base_len(&self) -> usize {
        4 + (self.io_end - self.io_start) as usize + 4
    }

    /// The txid, hashed from `buf` without marker, flag and witness.
    pub fn txid(&self, buf: &[u8]) -> Txid {
        let (s, i, o, e) = (self.start as usize, self.io_start as usize, self.io_end as usize, self.end as usize);
        let h = if self.has_witness() {
            sha256d_parts(&[&buf[s..s + 4], &buf[i..o], &buf[e - 4..e]])
        } else {
            sha256d(&buf[s..e])
        };
        Txid::from_byte_array(h)
    }

    /// The wtxid (BIP141): the hash of the full serialization; equals the txid without witness.
    pub fn wtxid(&self, buf: &[u8]) -> Wtxid {
        Wtxid::from_byte_array(sha256d(self.bytes(buf)))
    }
}

/// Walks one transaction at the reader's position, checking every count against the bytes left
/// before looping on it, and returns where its parts lie.
pub fn parse_tx(r: &mut Reader<'_>) -> Result<TxSpan, DecodeError> {
    let start = r.position();
    r.skip(4)?;
    let mut io_start = r.position();
    let mut n_in = r.count(usize::MAX, MIN_INPUT_BYTES)?;
    let witness = n_in == 0;
    if witness {
        match r.u8()? {
            1 => {}
            // No inputs and a zero "flag": Core reads this as a transaction with no inputs and no
            // outputs (the zero was its output count) and rejects it later as consensus-invalid
            // (`bad-txns-vin-empty`), so it must decode here too rather than count as malformed.
            0 => {
                let io_end = r.position();
                r.skip(4)?;
                return Ok(TxSpan {
                    start: start as u32,
                    io_start: io_start as u32,
                    io_end: io_end as u32,
                    end: r.position() as u32,
                });
            }
            _ => return Err(DecodeError::InvalidValue),
        }
        io_start = r.position();
        n_in = r.count(usize::MAX, MIN_INPUT_BYTES)?;
        if n_in == 0 {
            return Err(DecodeError::InvalidValue);
        }
    }
    for _ in 0..n_in {
        r.skip(36)?;
        r.skip_var_bytes(MAX_FIELD_BYTES)?;
        r.skip(4)?;
    }
    let n_out = r.count(usize::MAX, MIN_OUTPUT_BYTES)?;
    for _ in 0..n_out {
        r.skip(8)?;
        r.skip_var_bytes(MAX_FIELD_BYTES)?;
    }
    let io_end = r.position();
    if witness {
        let mut any = false;
        for _ in 0..n_in {
            let items = r.count(usize::MAX, 1)?;
            any |= items != 0;
            for _ in 0..items {
                r.skip_var_bytes(MAX_FIELD_BYTES)?;
            }
        }
        if !any {
            return Err(DecodeError::InvalidValue);
        }
    }
    r.skip(4)?;
    Ok(TxSpan { start: start as u32, io_start: io_start as u32, io_end: io_end as u32, end: r.position() as u32 })
}

/// A `tx` message: the wire bytes, where their parts lie, and both ids — hashed on first use, so a
/// transaction refused on its size alone costs no hashing. Equal when the bytes are.
#[derive(Clone, Debug)]
pub struct Tx {
    raw: Vec<u8>,
    span: TxSpan,
    ids: std::sync::OnceLock<(Txid, Wtxid)>,
}

impl PartialEq for Tx {
    fn eq(&self, other: &Tx) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Tx {}

impl Tx {
    /// Parses a whole payload (one transaction, nothing after it) and copies it.
    pub fn decode(payload: &[u8]) -> Result<Tx, DecodeError> {
        let span = Self::check(payload)?;
        Ok(Self::with_span(payload.to_vec(), span))
    }

    /// Like [`Tx::decode`] but keeps the payload buffer it is given (no copy).
    pub fn decode_owned(payload: Vec<u8>) -> Result<Tx, DecodeError> {
        let span = Self::check(&payload)?;
        Ok(Self::with_span(payload, span))
    }

    /// The `tx` message as Core reads it: one transaction from the start of the payload, bytes
    /// after it ignored (cut off, so ids and weight are the transaction's). Returns how many were
    /// cut.
    pub fn decode_message(mut payload: Vec<u8>) -> Result<(Tx, usize), DecodeError> {
        let mut r = Reader::new(&payload);
        let span = parse_tx(&mut r)?;
        let rest = r.remaining();
        payload.truncate(span.end as usize);
        Ok((Self::with_span(payload, span), rest))
    }

    fn check(payload: &[u8]) -> Result<TxSpan, DecodeError> {
        let mut r = Reader::new(payload);
        let span = parse_tx(&mut r)?;
        r.finish()?;
        Ok(span)
    }

    fn with_span(raw: Vec<u8>, span: TxSpan) -> Tx {
        Tx { raw, span, ids: std::sync::OnceLock::new() }
    }

    fn ids(&self) -> (Txid, Wtxid) {
        *self.ids.get_or_init(|| {
            let txid = self.span.txid(&self.raw);
            let wtxid = if self.span.has_witness() {
                self.span.wtxid(&self.raw)
            } else {
                Wtxid::from_byte_array(txid.to_byte_array())
            };
            (txid, wtxid)
        })
    }

    /// Its weight (BIP141), from the span alone.
    pub fn weight(&self) -> u64 {
        (self.span.base_len() * 3 + self.span.len()) as u64
    }

    /// From a rust-bitcoin transaction (for sending); fails only for shapes the wire cannot carry
    /// unambiguously (no inputs).
    pub fn from_bitcoin(tx: &Transaction) -> Result<Tx, DecodeError> {
        Self::decode_owned(bitcoin::consensus::serialize(tx))
    }

    /// The wire bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Where the parts lie in [`Tx::raw`].
    pub fn span(&self) -> TxSpan {
        self.span
    }

    /// The txid.
    pub fn txid(&self) -> Txid {
        self.ids().0
    }

    /// The wtxid.
    pub fn wtxid(&self) -> Wtxid {
        self.ids().1
    }

    /// Builds the rust-bitcoin transaction (allocates every script and witness).
    pub fn to_bitcoin(&self) -> Result<Transaction, DecodeError> {
        if self.span.io_end - self.span.io_start == 2 && !self.span.has_witness() && self.raw.len() == 10 {
            // No inputs, no outputs: rust-bitcoin takes the `00 00` for a segwit marker with flag 0
            // and refuses it; Core reads an empty transaction (which its checks then reject).
            let version = i32::from_le_bytes([self.raw[0], self.raw[1], self.raw[2], self.raw[3]]);
            let lock_time = u32::from_le_bytes([self.raw[6], self.raw[7], self.raw[8], self.raw[9]]);
            return Ok(Transaction {
                version: bitcoin::transaction::Version(version),
                lock_time: bitcoin::absolute::LockTime::from_consensus(lock_time),
                input: Vec::new(),
                output: Vec::new(),
            });
        }
        bitcoin::consensus::deserialize(&self.raw).map_err(|_| DecodeError::InvalidValue)
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.raw);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    /// A transaction with `inputs` inputs and `outputs` outputs; witness items on input 0 if asked.
    pub(crate) fn sample_tx(inputs: usize, outputs: usize, witness: bool, salt: u8) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::from_consensus(salt as u32),
            input: (0..inputs)
                .map(|i| TxIn {
                    previous_output: OutPoint { txid: Txid::from_byte_array([salt ^ i as u8; 32]), vout: i as u32 },
                    script_sig: ScriptBuf::from_bytes(vec![0x51; i % 3]),
                    sequence: Sequence::MAX,
                    witness: if witness && i == 0 {
                        Witness::from_slice(&[vec![1u8; 72], vec![2u8; 33]])
                    } else {
                        Witness::new()
                    },
                })
                .collect(),
            output: (0..outputs)
                .map(|o| TxOut {
                    value: Amount::from_sat(1000 + o as u64),
                    script_pubkey: ScriptBuf::from_bytes(vec![0x6a; 22]),
                })
                .collect(),
        }
    }

    #[test]
    fn legacy_and_segwit_txs_round_trip_with_rust_bitcoins_ids() {
        for witness in [false, true] {
            let tx = sample_tx(3, 2, witness, 9);
            let ours = Tx::from_bitcoin(&tx).unwrap();
            assert_eq!(ours.span().has_witness(), witness);
            assert_eq!(ours.txid(), tx.compute_txid());
            assert_eq!(ours.wtxid(), tx.compute_wtxid());
            assert_eq!(ours.span().base_len(), tx.base_size());
            assert_eq!(ours.to_bitcoin().unwrap(), tx);
            let mut out = Vec::new();
            ours.encode(&mut out);
            assert_eq!(Tx::decode(&out), Ok(ours));
        }
    }

    fn segwit_bytes() -> Vec<u8> {
        bitcoin::consensus::serialize(&sample_tx(1, 1, true, 1))
    }

    #[test]
    fn a_flag_other_than_zero_or_one_is_invalid() {
        for flag in [2u8, 3, 0xff] {
            let mut b = segwit_bytes();
            assert_eq!((b[4], b[5]), (0, 1));
            b[5] = flag;
            assert_eq!(Tx::decode(&b), Err(DecodeError::InvalidValue), "flag {flag}");
        }
    }

    #[test]
    fn no_inputs_then_a_zero_is_the_empty_transaction_core_reads() {
        // Found by the tx_diff fuzz target: version, 0 inputs, a zero, lock time, one byte more.
        // Core's parser reads an empty transaction and ignores the last byte; oni called it
        // malformed, so the two disagreed on what the message meant.
        let payload = vec![0x02, 0x00, 0x00, 0xff, 0x00, 0x00, 0x39, 0x02, 0x1d, 0x26, 0x2f];
        let (tx, ignored) = Tx::decode_message(payload.clone()).expect("Core reads it");
        assert_eq!((tx.raw(), ignored), (&payload[..10], 1));
        assert!(!tx.span().has_witness());
        assert_eq!(tx.weight(), 40);
        let built = tx.to_bitcoin().expect("an empty transaction");
        assert!(built.input.is_empty() && built.output.is_empty());
        assert_eq!(built.version.0, i32::from_le_bytes([0x02, 0x00, 0x00, 0xff]));
        assert_eq!(built.lock_time.to_consensus_u32(), u32::from_le_bytes([0x39, 0x02, 0x1d, 0x26]));
        assert_eq!(built.compute_txid(), tx.txid());
        assert_eq!(tx.wtxid().to_byte_array(), tx.txid().to_byte_array());
        // Its checks then reject it as Core's do.
        assert_eq!(crate::mempool::policy::check_transaction(&built), Err(crate::mempool::policy::TxReject::VinEmpty));
        // A segwit transaction whose flag was zeroed reads the same way: what follows the lock
        // time is ignored in a `tx` message (and refused when a whole payload must be one tx).
        let mut b = segwit_bytes();
        b[5] = 0;
        assert_eq!(Tx::decode_message(b.clone()).map(|(t, _)| t.raw().len()), Ok(10));
        assert_eq!(Tx::decode(&b), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn a_witness_serialization_without_inputs_is_invalid() {
        // version, marker, flag, 0 inputs, 1 output, locktime
        let mut b = vec![2, 0, 0, 0, 0, 1, 0, 1];
        b.extend_from_slice(&[0; 8]);
        b.push(0);
        b.extend_from_slice(&[0; 4]);
        assert_eq!(Tx::decode(&b), Err(DecodeError::InvalidValue));
    }

    #[test]
    fn a_witness_record_with_only_empty_stacks_is_superfluous() {
        let mut tx = sample_tx(2, 1, false, 4);
        let legacy = bitcoin::consensus::serialize(&tx);
        // Re-encode by hand with marker/flag and two empty stacks.
        let mut b = legacy[..4].to_vec();
        b.extend_from_slice(&[0, 1]);
        b.extend_from_slice(&legacy[4..legacy.len() - 4]);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&legacy[legacy.len() - 4..]);
        assert_eq!(Tx::decode(&b), Err(DecodeError::InvalidValue));
        // The same with one non-empty stack is fine.
        tx.input[1].witness = Witness::from_slice(&[[7u8; 3]]);
        assert!(Tx::from_bitcoin(&tx).is_ok());
    }

    #[test]
    fn trailing_bytes_after_a_tx_are_refused() {
        let mut b = segwit_bytes();
        b.push(0);
        assert_eq!(Tx::decode(&b), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn every_truncation_of_a_tx_is_refused() {
        let b = segwit_bytes();
        for n in 0..b.len() {
            assert!(Tx::decode(&b[..n]).is_err(), "prefix of {n} bytes");
        }
        assert_eq!(Tx::decode(&b[..b.len() - 1]), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_non_canonical_script_length_is_refused() {
        let tx = sample_tx(1, 1, false, 2);
        let b = bitcoin::consensus::serialize(&tx);
        // version(4) + vin count(1) + outpoint(36) then the scriptSig length (0) at offset 41.
        assert_eq!(b[41], 0);
        let mut bad = b[..41].to_vec();
        bad.extend_from_slice(&[0xfd, 0, 0]);
        bad.extend_from_slice(&b[42..]);
        assert_eq!(Tx::decode(&bad), Err(DecodeError::NonCanonicalCompactSize));
    }

    #[test]
    fn an_input_count_beyond_the_bytes_left_is_refused_before_looping() {
        let mut b = vec![2, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x00];
        b.extend_from_slice(&[0; 100]);
        assert_eq!(Tx::decode(&b), Err(DecodeError::Truncated));
        // 3 outputs claimed with room for 2
        let mut b = bitcoin::consensus::serialize(&sample_tx(1, 2, false, 0));
        let at = 4 + 1 + 41 + 1 - 1; // output count (scriptSig empty for input 0)
        assert_eq!(b[at], 2);
        b[at] = 3;
        assert_eq!(Tx::decode(&b), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_witness_stack_count_beyond_the_bytes_left_is_truncated() {
        let b = segwit_bytes();
        let tx = Tx::decode(&b).unwrap();
        let at = tx.span().io_end as usize;
        assert_eq!(b[at], 2, "input 0 has two witness items");
        let mut bad = b[..at].to_vec();
        bad.extend_from_slice(&[0xfd, 0x00, 0x10]); // 4,096 items
        bad.extend_from_slice(&b[at + 1..]);
        assert_eq!(Tx::decode(&bad), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_script_longer_than_any_message_is_too_long() {
        let mut b = vec![2, 0, 0, 0, 1];
        b.extend_from_slice(&[0; 36]);
        b.extend_from_slice(&[0xfe, 0x01, 0x09, 0x3d, 0x00]); // 4,000,001
        b.extend_from_slice(&[0; 64]);
        assert_eq!(Tx::decode(&b), Err(DecodeError::FieldTooLong));
    }
}
