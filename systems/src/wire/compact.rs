//! BIP152 compact block messages (version 2: short ids of wtxids): `cmpctblock`, `getblocktxn`,
//! `blocktxn`. Each keeps the payload it arrived in plus offsets, as [`super::Block`] does, so a
//! prefilled or requested transaction is never copied until a block is rebuilt from it.
//!
//! Bounds, read before anything is sized: short ids and prefilled transactions are counted
//! against the bytes left (6 bytes and [`MIN_TX_BYTES`] + 1 each), and a block of more than
//! 65,535 transactions is refused (Core: "indexes overflowed 16 bits"); request indexes are
//! differential and refused as soon as one passes 65,535 (Core: "differential value overflow").
//! These are decode errors: as Core, the message is dropped and the peer kept. What only the
//! receiver can judge (a prefilled index past the block, a transaction count that does not
//! match) is left to reconstruction, where Core scores it.

use super::headers::{block_hash, HEADER_BYTES};
use super::reader::{write_compact_size, Reader};
use super::tx::{parse_tx, TxSpan, MIN_TX_BYTES};
use super::{Block, DecodeError};
use bitcoin::hashes::{sha256, siphash24, Hash};
use bitcoin::BlockHash;

/// Bytes of one short transaction id on the wire.
pub const SHORT_ID_BYTES: usize = 6;
/// Transactions a compact block may describe (indexes are 16-bit).
pub const MAX_COMPACT_TXS: usize = u16::MAX as usize;

/// The SipHash-2-4 keys of one compact block: the first 16 bytes of SHA256(header ‖ nonce).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortIdKeys {
    k0: u64,
    k1: u64,
}

impl ShortIdKeys {
    /// The keys for a header and the sender's nonce.
    pub fn new(header: &[u8; HEADER_BYTES], nonce: u64) -> ShortIdKeys {
        let mut e = sha256::Hash::engine();
        bitcoin::hashes::HashEngine::input(&mut e, header);
        bitcoin::hashes::HashEngine::input(&mut e, &nonce.to_le_bytes());
        let h = sha256::Hash::from_engine(e).to_byte_array();
        let word = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
        ShortIdKeys { k0: word(0), k1: word(8) }
    }

    /// The 48-bit short id of a wtxid (internal byte order).
    #[inline]
    pub fn short_id(&self, wtxid: &[u8; 32]) -> u64 {
        siphash24::Hash::hash_to_u64_with_keys(self.k0, self.k1, wtxid) & 0xffff_ffff_ffff
    }
}

/// A `cmpctblock`: header, nonce, short ids, prefilled transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmpctBlock {
    /// The payload, cut after the message.
    raw: Vec<u8>,
    short_ids: Vec<u64>,
    /// Each prefilled transaction: its index as sent (the gap since the previous one) and where
    /// it lies in `raw`.
    prefilled: Vec<(u16, TxSpan)>,
}

impl CmpctBlock {
    /// Reads a `cmpctblock` from the start of `payload` (kept, cut after the message); returns
    /// how many bytes followed it.
    pub fn decode_message(mut payload: Vec<u8>) -> Result<(CmpctBlock, usize), DecodeError> {
        let mut r = Reader::new(&payload);
        r.bytes(HEADER_BYTES + 8)?;
        let n = r.compact_size()?;
        if n.saturating_mul(SHORT_ID_BYTES as u64) > r.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        if n > MAX_COMPACT_TXS as u64 {
            return Err(DecodeError::InvalidValue);
        }
        let mut short_ids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let b = r.array::<SHORT_ID_BYTES>()?;
            short_ids.push(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0]));
        }
        let p = r.compact_size()?;
        if p.saturating_mul(1 + MIN_TX_BYTES as u64) > r.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        if n + p > MAX_COMPACT_TXS as u64 {
            return Err(DecodeError::InvalidValue);
        }
        let mut prefilled = Vec::with_capacity(p as usize);
        for _ in 0..p {
            let gap = r.compact_size()?;
            let gap = u16::try_from(gap).map_err(|_| DecodeError::InvalidValue)?;
            prefilled.push((gap, parse_tx(&mut r)?));
        }
        let end = r.position();
        let rest = payload.len() - end;
        payload.truncate(end);
        Ok((CmpctBlock { raw: payload, short_ids, prefilled }, rest))
    }

    /// The compact form of `block` with `nonce`, the coinbase prefilled (as Core sends it).
    pub fn from_block(block: &Block, nonce: u64) -> CmpctBlock {
        let header = block.header_bytes();
        let keys = ShortIdKeys::new(header, nonce);
        let n = block.tx_count();
        let coinbase = block.tx_bytes(0).unwrap_or(&[]);
        let mut raw = Vec::with_capacity(HEADER_BYTES + 8 + 9 + n.saturating_sub(1) * SHORT_ID_BYTES + coinbase.len());
        raw.extend_from_slice(header);
        raw.extend_from_slice(&nonce.to_le_bytes());
        write_compact_size(&mut raw, n.saturating_sub(1) as u64);
        let mut short_ids = Vec::with_capacity(n.saturating_sub(1));
        for i in 1..n {
            let id = block.wtxid(i).map_or(0, |w| keys.short_id(&w.to_byte_array()));
            raw.extend_from_slice(&id.to_le_bytes()[..SHORT_ID_BYTES]);
            short_ids.push(id);
        }
        let mut prefilled = Vec::new();
        match block.tx_spans().first() {
            Some(span) => {
                raw.push(1);
                raw.push(0);
                let offset = raw.len() as u32 - span.start;
                raw.extend_from_slice(coinbase);
                let moved = TxSpan {
                    start: span.start + offset,
                    io_start: span.io_start + offset,
                    io_end: span.io_end + offset,
                    end: span.end + offset,
                };
                prefilled.push((0, moved));
            }
            None => raw.push(0),
        }
        CmpctBlock { raw, short_ids, prefilled }
    }

    /// The 80 header bytes.
    pub fn header_bytes(&self) -> &[u8; HEADER_BYTES] {
        self.raw.first_chunk::<HEADER_BYTES>().unwrap_or_else(|| unreachable!("decoded with a header"))
    }

    /// The block's hash.
    pub fn block_hash(&self) -> BlockHash {
        block_hash(self.header_bytes())
    }

    /// The sender's nonce.
    pub fn nonce(&self) -> u64 {
        let b = &self.raw[HEADER_BYTES..HEADER_BYTES + 8];
        u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
    }

    /// The short-id keys of this block.
    pub fn keys(&self) -> ShortIdKeys {
        ShortIdKeys::new(self.header_bytes(), self.nonce())
    }

    /// The short ids, in block order of the transactions that are not prefilled.
    pub fn short_ids(&self) -> &[u64] {
        &self.short_ids
    }

    /// The prefilled transactions, in order.
    pub fn prefilled(&self) -> impl ExactSizeIterator<Item = Prefilled<'_>> + '_ {
        self.prefilled.iter().map(|(gap, span)| Prefilled {
            gap: *gap,
            bytes: span.bytes(&self.raw),
            null: span.is_null(),
        })
    }

    /// Transactions in the block it describes.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.raw);
    }

    /// Bytes of the payload.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Never: a decoded compact block holds at least a header.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// One prefilled transaction of a [`CmpctBlock`].
#[derive(Clone, Copy, Debug)]
pub struct Prefilled<'a> {
    /// Its index as sent: how many transactions lie between it and the previous prefilled one.
    pub gap: u16,
    /// Its wire bytes.
    pub bytes: &'a [u8],
    /// It has neither inputs nor outputs ([`TxSpan::is_null`]).
    pub null: bool,
}

/// A `getblocktxn`: the block and the (absolute, strictly increasing) indexes it wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTxnRequest {
    /// The block asked about.
    pub block_hash: BlockHash,
    /// Transaction indexes in the block, strictly increasing.
    pub indexes: Vec<u16>,
}

impl BlockTxnRequest {
    /// Reads one from `r`; indexes come differentially encoded, each past 65,535 refused.
    pub fn decode(r: &mut Reader<'_>) -> Result<BlockTxnRequest, DecodeError> {
        let block_hash = BlockHash::from_byte_array(r.array::<32>()?);
        let n = r.compact_size()?;
        if n > r.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        if n > MAX_COMPACT_TXS as u64 + 1 {
            return Err(DecodeError::InvalidValue);
        }
        let mut indexes = Vec::with_capacity(n as usize);
        let mut next: u64 = 0;
        for _ in 0..n {
            let at = next.checked_add(r.compact_size()?).ok_or(DecodeError::InvalidValue)?;
            indexes.push(u16::try_from(at).map_err(|_| DecodeError::InvalidValue)?);
            next = at + 1;
        }
        Ok(BlockTxnRequest { block_hash, indexes })
    }

    /// Appends the payload; `indexes` must be strictly increasing.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.block_hash.as_byte_array());
        write_compact_size(out, self.indexes.len() as u64);
        let mut next = 0u64;
        for &i in &self.indexes {
            write_compact_size(out, u64::from(i).saturating_sub(next));
            next = u64::from(i) + 1;
        }
    }
}

/// A `blocktxn`: the block and the transactions asked for, in the order asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTxn {
    /// The payload, cut after the message.
    raw: Vec<u8>,
    txs: Vec<TxSpan>,
}

impl BlockTxn {
    /// Reads a `blocktxn` from the start of `payload` (kept, cut after the message); returns how
    /// many bytes followed it.
    pub fn decode_message(mut payload: Vec<u8>) -> Result<(BlockTxn, usize), DecodeError> {
        let mut r = Reader::new(&payload);
        r.bytes(32)?;
        let n = r.compact_size()?;
        if n.saturating_mul(MIN_TX_BYTES as u64) > r.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        let mut txs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            txs.push(parse_tx(&mut r)?);
        }
        let end = r.position();
        let rest = payload.len() - end;
        payload.truncate(end);
        Ok((BlockTxn { raw: payload, txs }, rest))
    }

    /// An answer for `block_hash` carrying `txs` (wire bytes of each), in order; fails only if
    /// one of them is not a transaction.
    pub fn from_txs<'a>(
        block_hash: BlockHash,
        txs: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Result<BlockTxn, DecodeError> {
        let mut raw = Vec::new();
        raw.extend_from_slice(block_hash.as_byte_array());
        write_compact_size(&mut raw, txs.len() as u64);
        let mut spans = Vec::with_capacity(txs.len());
        for tx in txs {
            let mut r = Reader::new(tx);
            let s = parse_tx(&mut r)?;
            r.finish()?;
            let at = raw.len() as u32;
            spans.push(TxSpan { start: at, io_start: s.io_start + at, io_end: s.io_end + at, end: s.end + at });
            raw.extend_from_slice(tx);
        }
        Ok(BlockTxn { raw, txs: spans })
    }

    /// The block these belong to.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash::from_byte_array(self.raw.first_chunk::<32>().copied().unwrap_or([0; 32]))
    }

    /// Number of transactions.
    pub fn tx_count(&self) -> usize {
        self.txs.len()
    }

    /// Transaction `i`'s wire bytes.
    pub fn tx_bytes(&self, i: usize) -> Option<&[u8]> {
        self.txs.get(i).map(|s| s.bytes(&self.raw))
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.raw);
    }

    /// Bytes of the payload.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether it carries nothing (not even its block hash: never, once decoded).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
