//! Inventory vectors (`inv`, `getdata`, `notfound`): a type and a 32-byte hash per entry.
//!
//! Decoded data-oriented: after the count is checked, the entries are copied as one block into a
//! `Vec<[u8; 36]>` exactly as they travel (type u32 LE + hash), so a 50,000-entry inv costs one
//! allocation and one memcpy; [`InvList::iter`] yields typed [`Inventory`] entries on demand.
//!
//! Unknown inventory types are kept, not refused: Bitcoin Core ignores inv types it does not know
//! (forward compatibility), so refusing them would disconnect honest newer peers. Consumers match
//! on [`InvType`] and skip what they do not handle.

use super::reader::{write_compact_size, Reader};
use super::{DecodeError, MAX_INV_ENTRIES};

/// Bytes of one entry on the wire: type (4) + hash (32).
pub const INV_ENTRY_BYTES: usize = 36;

/// An inventory type. A newtype over the wire value, so unknown types survive a round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvType(pub u32);

impl InvType {
    /// Set on a type to ask for the witness serialization (BIP144).
    pub const WITNESS_FLAG: u32 = 1 << 30;
    /// Not an object (Core's MSG_ERROR); meaningless but harmless.
    pub const ERROR: InvType = InvType(0);
    /// A transaction by txid.
    pub const TX: InvType = InvType(1);
    /// A block.
    pub const BLOCK: InvType = InvType(2);
    /// A BIP37 merkle block (getdata only).
    pub const FILTERED_BLOCK: InvType = InvType(3);
    /// A BIP152 compact block (getdata only).
    pub const CMPCT_BLOCK: InvType = InvType(4);
    /// A transaction by wtxid (BIP339).
    pub const WTX: InvType = InvType(5);
    /// A transaction with witness, by txid (BIP144).
    pub const WITNESS_TX: InvType = InvType(1 | Self::WITNESS_FLAG);
    /// A block with witness (BIP144).
    pub const WITNESS_BLOCK: InvType = InvType(2 | Self::WITNESS_FLAG);
    /// A filtered block with witness (defined by Core, unused).
    pub const FILTERED_WITNESS_BLOCK: InvType = InvType(3 | Self::WITNESS_FLAG);

    /// Whether this is a type Bitcoin Core defines; others are kept and ignored by consumers.
    pub const fn is_known(self) -> bool {
        let base = self.0 & !Self::WITNESS_FLAG;
        if self.0 & Self::WITNESS_FLAG == 0 {
            base <= 5
        } else {
            base >= 1 && base <= 3
        }
    }

    /// The type without the witness flag (what object is meant, not how it is serialized).
    pub const fn base(self) -> InvType {
        InvType(self.0 & !Self::WITNESS_FLAG)
    }

    /// Whether the witness serialization is asked for.
    pub const fn wants_witness(self) -> bool {
        self.0 & Self::WITNESS_FLAG != 0
    }
}

/// One inventory entry, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Inventory {
    /// What kind of object.
    pub kind: InvType,
    /// Its hash, in internal byte order (as on the wire).
    pub hash: [u8; 32],
}

impl Inventory {
    /// The 36 wire bytes of this entry.
    pub fn to_bytes(self) -> [u8; INV_ENTRY_BYTES] {
        let mut e = [0u8; INV_ENTRY_BYTES];
        e[..4].copy_from_slice(&self.kind.0.to_le_bytes());
        e[4..].copy_from_slice(&self.hash);
        e
    }

    /// From 36 wire bytes (infallible: every bit pattern is a valid entry).
    pub fn from_bytes(e: &[u8; INV_ENTRY_BYTES]) -> Inventory {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&e[4..]);
        Inventory { kind: InvType(u32::from_le_bytes([e[0], e[1], e[2], e[3]])), hash }
    }
}

/// The entries of an `inv`, `getdata` or `notfound`, stored as their wire bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvList {
    entries: Vec<[u8; INV_ENTRY_BYTES]>,
}

impl InvList {
    /// An empty list with room for `n` entries (for building outgoing messages).
    pub fn with_capacity(n: usize) -> Self {
        InvList { entries: Vec::with_capacity(n) }
    }

    /// Appends an entry.
    pub fn push(&mut self, kind: InvType, hash: [u8; 32]) {
        self.entries.push(Inventory { kind, hash }.to_bytes());
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `i`, typed.
    pub fn get(&self, i: usize) -> Option<Inventory> {
        self.entries.get(i).map(Inventory::from_bytes)
    }

    /// The entries, typed, in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Inventory> + '_ {
        self.entries.iter().map(Inventory::from_bytes)
    }

    /// The raw 36-byte entries (for hashing into filters without decoding).
    pub fn raw(&self) -> &[[u8; INV_ENTRY_BYTES]] {
        &self.entries
    }

    /// Decodes count + entries: the count is checked against 50,000 and the bytes left, then all
    /// entries are copied at once.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(MAX_INV_ENTRIES, INV_ENTRY_BYTES)?;
        let bytes = r.bytes(n * INV_ENTRY_BYTES)?;
        let (chunks, _) = bytes.as_chunks::<INV_ENTRY_BYTES>();
        Ok(InvList { entries: chunks.to_vec() })
    }

    /// Appends count + entries.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.entries.len() as u64);
        out.extend_from_slice(self.entries.as_flattened());
    }
}

impl FromIterator<Inventory> for InvList {
    fn from_iter<I: IntoIterator<Item = Inventory>>(iter: I) -> Self {
        InvList { entries: iter.into_iter().map(Inventory::to_bytes).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> InvList {
        (0..n).map(|i| Inventory { kind: InvType::WTX, hash: [(i % 251) as u8; 32] }).collect()
    }

    #[test]
    fn fifty_thousand_entries_round_trip_and_keep_order() {
        let l = list(MAX_INV_ENTRIES);
        let mut out = Vec::new();
        l.encode(&mut out);
        assert_eq!(out.len(), 3 + 36 * MAX_INV_ENTRIES);
        let mut r = Reader::new(&out);
        let back = InvList::decode(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back, l);
        assert_eq!(back.get(300).unwrap().hash, [(300 % 251) as u8; 32]);
    }

    #[test]
    fn fifty_thousand_and_one_entries_are_too_many() {
        let mut out = Vec::new();
        write_compact_size(&mut out, MAX_INV_ENTRIES as u64 + 1);
        out.resize(out.len() + 36 * (MAX_INV_ENTRIES + 1), 0);
        assert_eq!(InvList::decode(&mut Reader::new(&out)), Err(DecodeError::TooManyEntries));
    }

    #[test]
    fn a_short_last_entry_is_truncated() {
        let mut out = Vec::new();
        list(2).encode(&mut out);
        out.pop();
        assert_eq!(InvList::decode(&mut Reader::new(&out)), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_non_canonical_count_is_refused() {
        let mut out = vec![0xfd, 1, 0];
        out.extend_from_slice(&[0; 36]);
        assert_eq!(InvList::decode(&mut Reader::new(&out)), Err(DecodeError::NonCanonicalCompactSize));
    }

    #[test]
    fn unknown_types_are_kept_and_flagged() {
        let mut l = InvList::default();
        l.push(InvType(0x1234), [7; 32]);
        l.push(InvType::WITNESS_BLOCK, [8; 32]);
        let mut out = Vec::new();
        l.encode(&mut out);
        let back = InvList::decode(&mut Reader::new(&out)).unwrap();
        let kinds: Vec<_> = back.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![InvType(0x1234), InvType::WITNESS_BLOCK]);
        assert!(!kinds[0].is_known());
        assert!(kinds[1].is_known() && kinds[1].wants_witness());
        assert_eq!(kinds[1].base(), InvType::BLOCK);
        assert!(!InvType(5 | InvType::WITNESS_FLAG).is_known(), "there is no witness wtx");
        assert!(InvType::WTX.is_known() && InvType::CMPCT_BLOCK.is_known());
    }
}
