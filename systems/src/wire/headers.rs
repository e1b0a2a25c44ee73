//! Block headers (`headers`) and block locators (`getheaders`, `getblocks`).
//!
//! Headers are kept as their 80 raw bytes: the header tree hashes exactly those bytes, so nothing is
//! re-serialized; [`HeaderList::header`] gives a `bitcoin::block::Header` on demand. Each header on
//! the wire is followed by a tx count: honest peers send zero, and like Core we read it (a
//! well-formed CompactSize) and ignore its value.

use super::reader::{write_compact_size, Reader};
use super::{sha256d, DecodeError, MAX_HEADERS, MAX_LOCATOR_HASHES};
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};

/// Bytes of a block header.
pub const HEADER_BYTES: usize = 80;

/// Parses 80 fixed bytes into a header; infallible because every field is fixed-width.
pub fn header_from_bytes(b: &[u8; HEADER_BYTES]) -> Header {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let hash_at = |i: usize| {
        let mut h = [0u8; 32];
        h.copy_from_slice(&b[i..i + 32]);
        h
    };
    Header {
        version: BlockVersion::from_consensus(u32_at(0) as i32),
        prev_blockhash: BlockHash::from_byte_array(hash_at(4)),
        merkle_root: TxMerkleNode::from_byte_array(hash_at(36)),
        time: u32_at(68),
        bits: CompactTarget::from_consensus(u32_at(72)),
        nonce: u32_at(76),
    }
}

/// Serializes a header into its 80 bytes.
pub fn header_to_bytes(h: &Header) -> [u8; HEADER_BYTES] {
    let mut b = [0u8; HEADER_BYTES];
    b[0..4].copy_from_slice(&h.version.to_consensus().to_le_bytes());
    b[4..36].copy_from_slice(h.prev_blockhash.as_byte_array());
    b[36..68].copy_from_slice(h.merkle_root.as_byte_array());
    b[68..72].copy_from_slice(&h.time.to_le_bytes());
    b[72..76].copy_from_slice(&h.bits.to_consensus().to_le_bytes());
    b[76..80].copy_from_slice(&h.nonce.to_le_bytes());
    b
}

/// The hash of 80 raw header bytes.
pub fn block_hash(b: &[u8; HEADER_BYTES]) -> BlockHash {
    BlockHash::from_byte_array(sha256d(b))
}

/// The headers of a `headers` message, raw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderList {
    raw: Vec<[u8; HEADER_BYTES]>,
}

impl HeaderList {
    /// From rust-bitcoin headers (for building outgoing messages).
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = &'a Header>) -> Self {
        HeaderList { raw: headers.into_iter().map(header_to_bytes).collect() }
    }

    /// Appends a raw header.
    pub fn push_raw(&mut self, raw: [u8; HEADER_BYTES]) {
        self.raw.push(raw);
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the message carried no header (Core's "no more headers").
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The raw 80-byte headers in wire order.
    pub fn raw(&self) -> &[[u8; HEADER_BYTES]] {
        &self.raw
    }

    /// Header `i`, parsed.
    pub fn header(&self, i: usize) -> Option<Header> {
        self.raw.get(i).map(header_from_bytes)
    }

    /// All headers, parsed, in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Header> + '_ {
        self.raw.iter().map(header_from_bytes)
    }

    /// The hash of header `i`, from its raw bytes.
    pub fn block_hash(&self, i: usize) -> Option<BlockHash> {
        self.raw.get(i).map(block_hash)
    }

    /// Decodes count (≤ 2,000, each ≥ 81 bytes) then each header and its tx count (ignored).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(MAX_HEADERS, HEADER_BYTES + 1)?;
        let mut raw = Vec::with_capacity(n);
        for _ in 0..n {
            raw.push(r.array::<HEADER_BYTES>()?);
            r.compact_size()?;
        }
        Ok(HeaderList { raw })
    }

    /// Appends count + each header with a zero tx count.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.raw.len() as u64);
        out.reserve(self.raw.len() * (HEADER_BYTES + 1));
        for h in &self.raw {
            out.extend_from_slice(h);
            out.push(0);
        }
    }
}

/// A `getheaders` / `getblocks` body: where our chain and the peer's may meet, and where to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locator {
    /// The sender's protocol version (Core ignores it).
    pub version: u32,
    /// Block hashes from the tip back, densest near the tip, at most 101.
    pub hashes: Vec<BlockHash>,
    /// Last block wanted; all zeros means "as many as you send".
    pub stop: BlockHash,
}

impl Locator {
    /// Decodes version, a count checked against 101 and the bytes left, the hashes and the stop hash.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u32_le()?;
        let n = r.count(MAX_LOCATOR_HASHES, 32)?;
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            hashes.push(BlockHash::from_byte_array(r.array()?));
        }
        let stop = BlockHash::from_byte_array(r.array()?);
        Ok(Locator { version, hashes, stop })
    }

    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        write_compact_size(out, self.hashes.len() as u64);
        for h in &self.hashes {
            out.extend_from_slice(h.as_byte_array());
        }
        out.extend_from_slice(self.stop.as_byte_array());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(i: u32) -> Header {
        Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: BlockHash::from_byte_array([i as u8; 32]),
            merkle_root: TxMerkleNode::from_byte_array([!(i as u8); 32]),
            time: 1_700_000_000 + i,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: i,
        }
    }

    #[test]
    fn raw_header_bytes_match_rust_bitcoin_serialization_and_hash() {
        let h = header(3);
        let raw = header_to_bytes(&h);
        assert_eq!(raw.to_vec(), bitcoin::consensus::serialize(&h));
        assert_eq!(header_from_bytes(&raw), h);
        assert_eq!(block_hash(&raw), h.block_hash());
    }

    #[test]
    fn two_thousand_headers_round_trip() {
        let hs: Vec<Header> = (0..MAX_HEADERS as u32).map(header).collect();
        let l = HeaderList::from_headers(&hs);
        let mut out = Vec::new();
        l.encode(&mut out);
        let mut r = Reader::new(&out);
        let back = HeaderList::decode(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), hs);
        assert_eq!(back.block_hash(5), Some(hs[5].block_hash()));
    }

    #[test]
    fn two_thousand_and_one_headers_are_too_many() {
        let hs: Vec<Header> = (0..MAX_HEADERS as u32 + 1).map(header).collect();
        let mut out = Vec::new();
        HeaderList::from_headers(&hs).encode(&mut out);
        assert_eq!(HeaderList::decode(&mut Reader::new(&out)), Err(DecodeError::TooManyEntries));
    }

    #[test]
    fn a_header_cut_short_is_truncated() {
        let mut out = Vec::new();
        HeaderList::from_headers(&[header(1), header(2)]).encode(&mut out);
        out.truncate(1 + 81 + 50);
        assert_eq!(HeaderList::decode(&mut Reader::new(&out)), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_non_zero_tx_count_is_ignored_as_core_ignores_it() {
        let mut out = Vec::new();
        let list = HeaderList::from_headers(&[header(1), header(2)]);
        list.encode(&mut out);
        out[1 + 81 + 80] = 1;
        assert_eq!(HeaderList::decode(&mut Reader::new(&out)), Ok(list));
    }

    #[test]
    fn a_non_canonical_zero_tx_count_is_refused() {
        let mut out = vec![1];
        out.extend_from_slice(&header_to_bytes(&header(1)));
        out.extend_from_slice(&[0xfd, 0, 0]);
        assert_eq!(HeaderList::decode(&mut Reader::new(&out)), Err(DecodeError::NonCanonicalCompactSize));
    }

    fn locator(n: usize) -> Locator {
        Locator {
            version: 70016,
            hashes: (0..n).map(|i| BlockHash::from_byte_array([i as u8; 32])).collect(),
            stop: BlockHash::from_byte_array([0xee; 32]),
        }
    }

    #[test]
    fn a_101_hash_locator_round_trips() {
        let l = locator(MAX_LOCATOR_HASHES);
        let mut out = Vec::new();
        l.encode(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(Locator::decode(&mut r), Ok(l));
        r.finish().unwrap();
    }

    #[test]
    fn a_102_hash_locator_is_too_many() {
        let mut out = Vec::new();
        locator(MAX_LOCATOR_HASHES + 1).encode(&mut out);
        assert_eq!(Locator::decode(&mut Reader::new(&out)), Err(DecodeError::TooManyEntries));
    }

    #[test]
    fn a_locator_without_its_stop_hash_is_truncated() {
        let mut out = Vec::new();
        locator(3).encode(&mut out);
        out.truncate(out.len() - 1);
        assert_eq!(Locator::decode(&mut Reader::new(&out)), Err(DecodeError::Truncated));
    }
}
