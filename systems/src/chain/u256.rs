//! A small unsigned 256-bit integer for the consensus arithmetic of targets: compact decoding with
//! Core's negative/overflow flags (so hostile `bits` are refused, never shifted out of range),
//! compact encoding, multiplication and division by a 64-bit value, and comparison with a hash.
//! rust-bitcoin's `U256` is private; this one stays tiny and allocation-free.

use bitcoin::pow::{Target, Work};

/// Four little-endian 64-bit limbs (limb 0 is least significant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct U256(pub [u64; 4]);

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                std::cmp::Ordering::Equal => continue,
                o => return o,
            }
        }
        std::cmp::Ordering::Equal
    }
}

/// Why a compact target is not a usable target (Core's `DeriveTarget` failures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactError {
    /// The sign bit is set with a non-zero mantissa.
    Negative,
    /// The value does not fit in 256 bits.
    Overflow,
    /// The target is zero: no hash can meet it.
    Zero,
}

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256([0; 4]);

    /// From 32 little-endian bytes (a block hash as it is hashed).
    #[inline]
    pub fn from_le_bytes(b: &[u8; 32]) -> U256 {
        let limb =
            |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
        U256([limb(0), limb(8), limb(16), limb(24)])
    }

    /// To 32 big-endian bytes (for rust-bitcoin's `Target`/`Work`).
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for i in 0..4 {
            out[i * 8..i * 8 + 8].copy_from_slice(&self.0[3 - i].to_be_bytes());
        }
        out
    }

    /// From 32 big-endian bytes.
    pub fn from_be_bytes(b: [u8; 32]) -> U256 {
        let mut limbs = [0u64; 4];
        for (i, l) in limbs.iter_mut().enumerate() {
            let s = (3 - i) * 8;
            *l = u64::from_be_bytes([b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]]);
        }
        U256(limbs)
    }

    /// Number of significant bits.
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    fn shl(self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((n / 64) as usize, n % 64);
        let mut out = [0u64; 4];
        for i in (limbs..4).rev() {
            out[i] = self.0[i - limbs] << bits;
            if bits > 0 && i > limbs {
                out[i] |= self.0[i - limbs - 1] >> (64 - bits);
            }
        }
        U256(out)
    }

    fn shr(self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((n / 64) as usize, n % 64);
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().take(4 - limbs) {
            *o = self.0[i + limbs] >> bits;
            if bits > 0 && i + limbs + 1 < 4 {
                *o |= self.0[i + limbs + 1] << (64 - bits);
            }
        }
        U256(out)
    }

    /// Decodes Core's compact form, refusing negative, overflowing and zero values.
    pub fn from_compact(bits: u32) -> Result<U256, CompactError> {
        let size = bits >> 24;
        let mut word = bits & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256([word as u64, 0, 0, 0])
        } else {
            U256([word as u64, 0, 0, 0]).shl(8 * (size - 3))
        };
        if word != 0 && bits & 0x0080_0000 != 0 {
            return Err(CompactError::Negative);
        }
        if word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)) {
            return Err(CompactError::Overflow);
        }
        if value == U256::ZERO {
            return Err(CompactError::Zero);
        }
        Ok(value)
    }

    /// Encodes to Core's compact form (lossy: keeps the top 23 bits of mantissa).
    pub fn to_compact(self) -> u32 {
        let mut size = self.bits().div_ceil(8);
        let mut compact =
            if size <= 3 { (self.0[0] << (8 * (3 - size))) as u32 } else { self.shr(8 * (size - 3)).0[0] as u32 };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact | (size << 24)
    }

    /// `self × m`, saturating at the maximum (targets times a timespan never get near it).
    pub fn mul_u64(self, m: u64) -> U256 {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for (o, l) in out.iter_mut().zip(self.0) {
            let p = l as u128 * m as u128 + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        if carry != 0 {
            return U256([u64::MAX; 4]);
        }
        U256(out)
    }

    /// `self / d` (d > 0).
    pub fn div_u64(self, d: u64) -> U256 {
        let mut out = [0u64; 4];
        let mut rem = 0u128;
        for i in (0..4).rev() {
            let cur = (rem << 64) | self.0[i] as u128;
            out[i] = (cur / d as u128) as u64;
            rem = cur % d as u128;
        }
        U256(out)
    }

    /// As rust-bitcoin's `Target`.
    pub fn to_target(self) -> Target {
        Target::from_be_bytes(self.to_be_bytes())
    }

    /// The expected number of hashes to meet this target (Core's `GetBlockProof`).
    pub fn work(self) -> Work {
        self.to_target().to_work()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_round_trips_core_values_and_refuses_bad_encodings() {
        for bits in [0x1d00ffffu32, 0x1d00d86a, 0x17021ec5, 0x207fffff, 0x1e0377ae, 0x03123456, 0x04123456] {
            let t = U256::from_compact(bits).unwrap();
            assert_eq!(t.to_compact(), bits, "{bits:08x}");
            assert_eq!(t.to_target(), Target::from_compact(bitcoin::CompactTarget::from_consensus(bits)));
        }
        assert_eq!(U256::from_compact(0x1d80ffff), Err(CompactError::Negative));
        assert_eq!(U256::from_compact(0xff123456), Err(CompactError::Overflow));
        assert_eq!(U256::from_compact(0x23000100), Err(CompactError::Overflow));
        assert_eq!(U256::from_compact(0x1d000000), Err(CompactError::Zero));
        assert_eq!(U256::from_compact(0x01003456), Err(CompactError::Zero));
    }

    #[test]
    fn mul_div_and_order() {
        let t = U256::from_compact(0x1d00ffff).unwrap();
        assert_eq!(t.mul_u64(4).div_u64(4), t);
        assert!(t.mul_u64(2) > t);
        assert_eq!(U256::from_be_bytes(t.to_be_bytes()), t);
        // genesis work: 2^256 / (2^224 * 0xffff + 1) = 0x100010001
        assert_eq!(t.work(), Work::from_be_bytes(U256([0x1_0001_0001, 0, 0, 0]).to_be_bytes()));
    }
}
