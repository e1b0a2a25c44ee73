//! Blocks: the 80-byte header, a tx count bounded by the bytes left, and each transaction walked
//! structurally by [`parse_tx`]. The block keeps the bytes it arrived in plus one [`TxSpan`] per
//! transaction, so validation and serving reuse them; ids and the merkle root are computed on
//! request (decode itself hashes nothing beyond the frame checksum, which keeps it near sha256d speed).
//!
//! A block with no transaction decodes (it is a consensus failure, not a framing one; validation
//! refuses it).

use super::headers::{block_hash, header_from_bytes, HEADER_BYTES};
use super::reader::Reader;
use super::tx::{parse_tx, TxSpan, MIN_TX_BYTES};
use super::{sha256d, DecodeError};
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, TxMerkleNode, Txid, Wtxid};

/// A `block` message: raw bytes and where each transaction lies in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    raw: Vec<u8>,
    txs: Vec<TxSpan>,
}

impl Block {
    fn parse(payload: &[u8]) -> Result<Vec<TxSpan>, DecodeError> {
        let (txs, end) = Self::parse_prefix(payload)?;
        if end != payload.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(txs)
    }

    /// Walks the block at the start of `payload`; returns its spans and where it ends.
    fn parse_prefix(payload: &[u8]) -> Result<(Vec<TxSpan>, usize), DecodeError> {
        let mut r = Reader::new(payload);
        r.bytes(HEADER_BYTES)?;
        let n = r.count(usize::MAX, MIN_TX_BYTES)?;
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            txs.push(parse_tx(&mut r)?);
        }
        Ok((txs, r.position()))
    }

    /// The `block` message as Core reads it: one block from the start of the payload, bytes after
    /// it ignored (cut off, so what is stored and served is the block). Returns how many were cut.
    pub fn decode_message(mut payload: Vec<u8>) -> Result<(Block, usize), DecodeError> {
        let (txs, end) = Self::parse_prefix(&payload)?;
        let rest = payload.len() - end;
        payload.truncate(end);
        Ok((Block { raw: payload, txs }, rest))
    }

    /// Parses a whole payload and copies it.
    pub fn decode(payload: &[u8]) -> Result<Block, DecodeError> {
        let txs = Self::parse(payload)?;
        Ok(Block { raw: payload.to_vec(), txs })
    }

    /// Like [`Block::decode`] but keeps the payload buffer it is given (no copy).
    pub fn decode_owned(payload: Vec<u8>) -> Result<Block, DecodeError> {
        let txs = Self::parse(&payload)?;
        Ok(Block { raw: payload, txs })
    }

    /// From a rust-bitcoin block (for serving and tests).
    pub fn from_bitcoin(block: &bitcoin::Block) -> Result<Block, DecodeError> {
        Self::decode_owned(bitcoin::consensus::serialize(block))
    }

    /// The wire bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The 80 header bytes.
    pub fn header_bytes(&self) -> &[u8; HEADER_BYTES] {
        self.raw.first_chunk::<HEADER_BYTES>().unwrap_or_else(|| unreachable!("parsed blocks have a header"))
    }

    /// The header, parsed.
    pub fn header(&self) -> Header {
        header_from_bytes(self.header_bytes())
    }

    /// The block hash, from the raw header.
    pub fn block_hash(&self) -> BlockHash {
        block_hash(self.header_bytes())
    }

    /// Number of transactions.
    pub fn tx_count(&self) -> usize {
        self.txs.len()
    }

    /// Where each transaction lies in [`Block::raw`].
    pub fn tx_spans(&self) -> &[TxSpan] {
        &self.txs
    }

    /// Transaction `i`'s wire bytes.
    pub fn tx_bytes(&self, i: usize) -> Option<&[u8]> {
        self.txs.get(i).map(|s| s.bytes(&self.raw))
    }

    /// Transaction `i`'s txid.
    pub fn txid(&self, i: usize) -> Option<Txid> {
        self.txs.get(i).map(|s| s.txid(&self.raw))
    }

    /// Transaction `i`'s wtxid.
    pub fn wtxid(&self, i: usize) -> Option<Wtxid> {
        self.txs.get(i).map(|s| s.wtxid(&self.raw))
    }

    /// Every txid, in block order.
    pub fn txids(&self) -> impl ExactSizeIterator<Item = Txid> + '_ {
        self.txs.iter().map(|s| s.txid(&self.raw))
    }

    /// The merkle root of the txids (duplicating the last of an odd level, as consensus does);
    /// `None` for a block without transactions.
    pub fn compute_merkle_root(&self) -> Option<TxMerkleNode> {
        let (root, _) = merkle_root(self.txids().map(|t| t.to_byte_array()).collect())?;
        Some(TxMerkleNode::from_byte_array(root))
    }

    /// Whether the block's transactions do not match its header, as Core's `IsBlockMutated`
    /// judges it (a merkle root that differs or that two equal subtrees produce; without a
    /// coinbase, a 64-byte transaction; a witness commitment that does not match, or witness
    /// data with no commitment). What a compact block rebuilt from the wrong transactions looks
    /// like: the block is then fetched whole, and no one is blamed.
    pub fn is_mutated(&self) -> bool {
        let Some((root, repeated)) = merkle_root(self.txids().map(|t| t.to_byte_array()).collect()) else {
            return true;
        };
        if repeated || root != self.header_bytes()[36..68] {
            return true;
        }
        let coinbase = self.tx_bytes(0).and_then(|b| bitcoin::consensus::deserialize::<bitcoin::Transaction>(b).ok());
        let Some(coinbase) = coinbase.filter(bitcoin::Transaction::is_coinbase) else {
            return self.txs.iter().any(|s| s.base_len() == 64);
        };
        let commitment = coinbase.output.iter().rposition(|o| {
            let s = o.script_pubkey.as_bytes();
            s.len() >= 38 && s[..6] == [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]
        });
        let Some(pos) = commitment else {
            return self.txs.iter().any(TxSpan::has_witness);
        };
        let stack = &coinbase.input[0].witness;
        let Some(reserved) = stack.nth(0).filter(|r| stack.len() == 1 && r.len() == 32) else {
            return true;
        };
        let mut leaves: Vec<[u8; 32]> = self.txs.iter().map(|s| s.wtxid(&self.raw).to_byte_array()).collect();
        leaves[0] = [0; 32];
        let Some((witness_root, _)) = merkle_root(leaves) else { return true };
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&witness_root);
        buf[32..].copy_from_slice(reserved);
        sha256d(&buf) != coinbase.output[pos].script_pubkey.as_bytes()[6..38]
    }

    /// Block weight (BIP141): 3 × base size + total size.
    pub fn weight(&self) -> usize {
        let tx_base: usize = self.txs.iter().map(TxSpan::base_len).sum();
        let tx_total: usize = self.txs.iter().map(TxSpan::len).sum();
        let prefix = self.raw.len() - tx_total;
        3 * (prefix + tx_base) + self.raw.len()
    }

    /// Builds the rust-bitcoin block (allocates every transaction).
    pub fn to_bitcoin(&self) -> Result<bitcoin::Block, DecodeError> {
        bitcoin::consensus::deserialize(&self.raw).map_err(|_| DecodeError::InvalidValue)
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.raw);
    }
}

/// The merkle root of `level` and whether two equal neighbours were hashed together on the way
/// (Core's mutation flag: the tree of a list with a repeated tail has the same root).
fn merkle_root(mut level: Vec<[u8; 32]>) -> Option<([u8; 32], bool)> {
    if level.is_empty() {
        return None;
    }
    let mut repeated = false;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            repeated |= pair.len() == 2 && pair[0] == pair[1];
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&pair[0]);
            buf[32..].copy_from_slice(pair.get(1).unwrap_or(&pair[0]));
            next.push(sha256d(&buf));
        }
        level = next;
    }
    Some((level[0], repeated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::reader::write_compact_size;
    use crate::wire::tx::tests::sample_tx;

    fn sample_block(n: usize) -> bitcoin::Block {
        let txdata: Vec<_> = (0..n).map(|i| sample_tx(1 + i % 3, 1 + i % 2, i % 2 == 1, i as u8)).collect();
        let mut header = crate::wire::headers::header_from_bytes(&[0; 80]);
        header.time = 1_700_000_000;
        let mut b = bitcoin::Block { header, txdata };
        if let Some(root) = b.compute_merkle_root() {
            b.header.merkle_root = root;
        }
        b
    }

    #[test]
    fn a_block_round_trips_with_rust_bitcoins_ids_root_and_weight() {
        for n in [1usize, 2, 5, 64] {
            let b = sample_block(n);
            let ours = Block::from_bitcoin(&b).unwrap();
            assert_eq!(ours.tx_count(), n);
            assert_eq!(ours.block_hash(), b.block_hash());
            assert_eq!(ours.compute_merkle_root(), Some(b.header.merkle_root));
            assert_eq!(ours.weight(), b.weight().to_wu() as usize);
            for (i, tx) in b.txdata.iter().enumerate() {
                assert_eq!(ours.txid(i), Some(tx.compute_txid()));
                assert_eq!(ours.wtxid(i), Some(tx.compute_wtxid()));
                assert_eq!(ours.tx_bytes(i).unwrap(), bitcoin::consensus::serialize(tx));
            }
            assert_eq!(ours.to_bitcoin().unwrap(), b);
            let mut out = Vec::new();
            ours.encode(&mut out);
            assert_eq!(Block::decode(&out), Ok(ours));
        }
    }

    #[test]
    fn trailing_and_truncated_blocks_are_refused() {
        let raw = bitcoin::consensus::serialize(&sample_block(3));
        let mut long = raw.clone();
        long.push(0);
        assert_eq!(Block::decode(&long), Err(DecodeError::TrailingBytes));
        assert_eq!(Block::decode(&raw[..raw.len() - 1]), Err(DecodeError::Truncated));
        assert_eq!(Block::decode(&raw[..79]), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_tx_count_beyond_the_bytes_left_is_refused_before_allocating() {
        let mut raw = vec![0u8; 80];
        write_compact_size(&mut raw, 100_000);
        raw.resize(raw.len() + 50 * MIN_TX_BYTES, 0);
        assert_eq!(Block::decode(&raw), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_block_of_empty_transactions_reads_as_core_reads_it() {
        // Three 10-byte empty transactions (no inputs, a zero, lock time): Core's parser reads the
        // block (its checks then refuse it); a count checked against a 51-byte smallest
        // transaction called it truncated.
        let mut raw = vec![0u8; 80];
        raw.push(3);
        for lock in 0u8..3 {
            raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, lock, 0, 0, 0]);
        }
        let b = Block::decode(&raw).expect("Core reads it");
        assert_eq!(b.tx_count(), 3);
        assert!(b.txid(0) != b.txid(1));
        assert_eq!(b.weight(), 4 * raw.len());
    }

    #[test]
    fn a_non_canonical_tx_count_is_refused() {
        let raw = bitcoin::consensus::serialize(&sample_block(1));
        let mut bad = raw[..80].to_vec();
        bad.extend_from_slice(&[0xfd, 1, 0]);
        bad.extend_from_slice(&raw[81..]);
        assert_eq!(Block::decode(&bad), Err(DecodeError::NonCanonicalCompactSize));
    }

    #[test]
    fn an_empty_block_decodes_but_has_no_merkle_root() {
        let mut raw = vec![0u8; 80];
        raw.push(0);
        let b = Block::decode(&raw).unwrap();
        assert_eq!(b.tx_count(), 0);
        assert_eq!(b.compute_merkle_root(), None);
    }

    /// A fixture block with at least one witness spend besides the coinbase.
    fn witness_block() -> Block {
        crate::wire::fixture_tests::chain_raw()
            .iter()
            .map(|r| Block::decode(r).unwrap())
            .find(|b| b.tx_count() >= 3 && b.tx_spans()[1..].iter().any(TxSpan::has_witness))
            .expect("the fixture spends segwit outputs")
    }

    /// `b` with its transactions replaced by `txs` (header kept).
    fn with_txs(b: &Block, txs: &[Vec<u8>]) -> Block {
        let mut raw = b.header_bytes().to_vec();
        write_compact_size(&mut raw, txs.len() as u64);
        txs.iter().for_each(|t| raw.extend_from_slice(t));
        Block::decode_owned(raw).unwrap()
    }

    #[test]
    fn mutation_is_judged_as_core_judges_it() {
        for raw in crate::wire::fixture_tests::chain_raw() {
            assert!(!Block::decode(raw).unwrap().is_mutated());
        }
        let b = witness_block();
        let txs: Vec<Vec<u8>> = (0..b.tx_count()).map(|i| b.tx_bytes(i).unwrap().to_vec()).collect();
        assert!(!with_txs(&b, &txs).is_mutated());
        // Two transactions swapped: the merkle root differs.
        let mut swapped = txs.clone();
        swapped.swap(1, 2);
        assert!(with_txs(&b, &swapped).is_mutated());
        // One missing.
        assert!(with_txs(&b, &txs[..txs.len() - 1]).is_mutated());
        // A witness changed (same txid, other wtxid): only the commitment tells.
        let i = (1..txs.len()).find(|&i| b.tx_spans()[i].has_witness()).unwrap();
        let span = b.tx_spans()[i];
        let mut changed = txs.clone();
        let last_witness_byte = (span.end - span.start - 5) as usize;
        changed[i][last_witness_byte] ^= 1;
        let m = with_txs(&b, &changed);
        assert_eq!(m.txid(i), b.txid(i));
        assert_ne!(m.wtxid(i), b.wtxid(i));
        assert!(m.is_mutated());
        // Witness data with the commitment output removed from the coinbase.
        let cb: bitcoin::Transaction = bitcoin::consensus::deserialize(&txs[0]).unwrap();
        let mut no_commit = cb.clone();
        no_commit.output.retain(|o| !o.script_pubkey.as_bytes().starts_with(&[0x6a, 0x24, 0xaa, 0x21]));
        assert!(no_commit.output.len() < cb.output.len());
        let mut stripped = txs.clone();
        stripped[0] = bitcoin::consensus::serialize(&no_commit);
        let mut m = with_txs(&b, &stripped);
        let root = m.compute_merkle_root().unwrap();
        let mut raw = m.raw().to_vec();
        raw[36..68].copy_from_slice(root.as_byte_array());
        m = Block::decode_owned(raw).unwrap();
        assert!(m.is_mutated(), "witness data without a commitment");
    }

    #[test]
    fn a_repeated_tail_with_the_same_root_is_mutated() {
        // CVE-2012-2459: [a, b, c] and [a, b, c, c] share a merkle root.
        let b = Block::from_bitcoin(&sample_block(3)).unwrap();
        let txs: Vec<Vec<u8>> = (0..3).map(|i| b.tx_bytes(i).unwrap().to_vec()).collect();
        let mut repeated = txs.clone();
        repeated.push(txs[2].clone());
        let m = with_txs(&b, &repeated);
        assert_eq!(m.compute_merkle_root(), b.compute_merkle_root());
        assert!(m.is_mutated());
    }
}
