//! Byte layouts of the coin store's records: the 36-byte outpoint key, the compact coin and a
//! block's undo record. Pure functions, so the layouts are tested without a database.
//!
//! - key: txid (32 bytes, internal order) ‖ vout (u32 big-endian: a transaction's outputs sort
//!   together and in order).
//! - coin: value (u64 LE) ‖ height·2 + coinbase (u32 LE) ‖ script (the rest). 12 bytes + script.
//! - undo: block hash ‖ parent hash ‖ height (u32 LE) ‖ created count (u32 LE) ‖ created keys ‖
//!   spent count (u32 LE) ‖ per spent coin: key ‖ coin length (u32 LE) ‖ coin.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, TxOut, Txid};
use oni_systems::mempool::Coin;

/// Length of an outpoint key.
pub const KEY_BYTES: usize = 36;
const COIN_HEADER_BYTES: usize = 12;

/// The database key of an outpoint.
pub fn key(outpoint: &OutPoint) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    k[..32].copy_from_slice(outpoint.txid.as_byte_array());
    k[32..].copy_from_slice(&outpoint.vout.to_be_bytes());
    k
}

/// The outpoint a key names.
pub fn outpoint(key: &[u8; KEY_BYTES]) -> OutPoint {
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&key[..32]);
    let vout = u32::from_be_bytes([key[32], key[33], key[34], key[35]]);
    OutPoint { txid: Txid::from_byte_array(txid), vout }
}

/// A coin as stored.
pub fn encode_coin(coin: &Coin) -> Vec<u8> {
    let script = coin.output.script_pubkey.as_bytes();
    let mut v = Vec::with_capacity(COIN_HEADER_BYTES + script.len());
    v.extend_from_slice(&coin.output.value.to_sat().to_le_bytes());
    v.extend_from_slice(&((coin.height << 1) | coin.coinbase as u32).to_le_bytes());
    v.extend_from_slice(script);
    v
}

/// A stored coin back; `None` if the record is too short to be one.
pub fn decode_coin(bytes: &[u8]) -> Option<Coin> {
    let value = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let code = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    let script = ScriptBuf::from_bytes(bytes[COIN_HEADER_BYTES..].to_vec());
    Some(Coin {
        output: TxOut { value: Amount::from_sat(value), script_pubkey: script },
        height: code >> 1,
        coinbase: code & 1 == 1,
    })
}

/// The amount of a stored coin without decoding its script (for totals).
pub fn coin_value_sat(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// What a connected block changed, enough to take it back without the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undo {
    /// The block.
    pub hash: BlockHash,
    /// Its parent: the best block once it is disconnected.
    pub prev: BlockHash,
    /// Its height.
    pub height: u32,
    /// Keys of the coins it created.
    pub created: Vec<[u8; KEY_BYTES]>,
    /// The coins it spent, as stored (key, coin record), in spending order.
    pub spent: Vec<([u8; KEY_BYTES], Vec<u8>)>,
}

/// An undo record as stored.
pub fn encode_undo(undo: &Undo) -> Vec<u8> {
    let spent_bytes: usize = undo.spent.iter().map(|(_, c)| KEY_BYTES + 4 + c.len()).sum();
    let mut v = Vec::with_capacity(76 + undo.created.len() * KEY_BYTES + 4 + spent_bytes);
    v.extend_from_slice(undo.hash.as_byte_array());
    v.extend_from_slice(undo.prev.as_byte_array());
    v.extend_from_slice(&undo.height.to_le_bytes());
    v.extend_from_slice(&(undo.created.len() as u32).to_le_bytes());
    for k in &undo.created {
        v.extend_from_slice(k);
    }
    v.extend_from_slice(&(undo.spent.len() as u32).to_le_bytes());
    for (k, coin) in &undo.spent {
        v.extend_from_slice(k);
        v.extend_from_slice(&(coin.len() as u32).to_le_bytes());
        v.extend_from_slice(coin);
    }
    v
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn hash(&mut self) -> Option<BlockHash> {
        Some(BlockHash::from_byte_array(self.take(32)?.try_into().ok()?))
    }
    fn key(&mut self) -> Option<[u8; KEY_BYTES]> {
        self.take(KEY_BYTES)?.try_into().ok()
    }
}

/// An undo record back; `None` if it is truncated or has bytes left over.
pub fn decode_undo(bytes: &[u8]) -> Option<Undo> {
    let mut c = Cursor { bytes, at: 0 };
    let (hash, prev, height) = (c.hash()?, c.hash()?, c.u32()?);
    let n_created = c.u32()? as usize;
    // Counts come from our own records, but a damaged one must not allocate wildly.
    let mut created = Vec::with_capacity(n_created.min(bytes.len() / KEY_BYTES));
    for _ in 0..n_created {
        created.push(c.key()?);
    }
    let n_spent = c.u32()? as usize;
    let mut spent = Vec::with_capacity(n_spent.min(bytes.len() / (KEY_BYTES + 4)));
    for _ in 0..n_spent {
        let k = c.key()?;
        let len = c.u32()? as usize;
        spent.push((k, c.take(len)?.to_vec()));
    }
    (c.at == bytes.len()).then_some(Undo { hash, prev, height, created, spent })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coin(height: u32, coinbase: bool) -> Coin {
        Coin {
            output: TxOut { value: Amount::from_sat(5_000_000_000), script_pubkey: ScriptBuf::from_bytes(vec![0x51]) },
            height,
            coinbase,
        }
    }

    #[test]
    fn keys_and_coins_round_trip_and_vouts_sort_in_order() {
        let txid = Txid::from_byte_array([7; 32]);
        let a = OutPoint { txid, vout: 1 };
        let b = OutPoint { txid, vout: 256 };
        assert_eq!(outpoint(&key(&a)), a);
        assert!(key(&a) < key(&b), "big-endian vout keeps a transaction's outputs in order");
        for c in [coin(0, false), coin(840_000, true), coin(u32::MAX >> 1, true)] {
            let bytes = encode_coin(&c);
            assert_eq!(bytes.len(), 13);
            assert_eq!(decode_coin(&bytes), Some(c.clone()));
            assert_eq!(coin_value_sat(&bytes), Some(5_000_000_000));
        }
        assert_eq!(decode_coin(&[0; 11]), None);
    }

    #[test]
    fn undo_round_trips_and_damaged_records_are_refused() {
        let undo = Undo {
            hash: BlockHash::from_byte_array([1; 32]),
            prev: BlockHash::from_byte_array([2; 32]),
            height: 9,
            created: vec![[3; KEY_BYTES], [4; KEY_BYTES]],
            spent: vec![([5; KEY_BYTES], encode_coin(&coin(3, true)))],
        };
        let bytes = encode_undo(&undo);
        assert_eq!(decode_undo(&bytes), Some(undo));
        assert_eq!(decode_undo(&bytes[..bytes.len() - 1]), None, "truncated");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_undo(&longer), None, "trailing bytes");
        let mut huge = bytes;
        huge[68..72].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_undo(&huge), None, "a count beyond the record");
    }
}
