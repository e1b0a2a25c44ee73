//! A cursor over a payload slice. Every read is bounds-checked; every count is checked against its
//! limit *and* against the bytes left before anything is sized, so a lying count costs nothing.

use super::DecodeError;

/// Reads little-endian fields from a borrowed payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Takes `n` bytes as a sub-slice of the payload.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes a fixed-size array.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Little-endian u16.
    #[inline]
    pub fn u16_le(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Big-endian u16 (ports in addresses).
    #[inline]
    pub fn u16_be(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Little-endian u32.
    #[inline]
    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Little-endian i32.
    #[inline]
    pub fn i32_le(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    /// Little-endian u64.
    #[inline]
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Little-endian i64.
    #[inline]
    pub fn i64_le(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A CompactSize; a value encoded in more bytes than it needs is an error (as in Core).
    #[inline]
    pub fn compact_size(&mut self) -> Result<u64, DecodeError> {
        // One-byte values are nearly all of them (script lengths, counts): keep that path tiny.
        match self.buf.get(self.pos) {
            Some(&b) if b < 0xfd => {
                self.pos += 1;
                Ok(b as u64)
            }
            _ => self.compact_size_wide(),
        }
    }

    #[cold]
    #[inline(never)]
    fn compact_size_wide(&mut self) -> Result<u64, DecodeError> {
        let first = self.u8()?;
        let (v, min) = match first {
            0xfd => (self.u16_le()? as u64, 0xfd),
            0xfe => (self.u32_le()? as u64, 0x1_0000),
            0xff => (self.u64_le()?, 0x1_0000_0000),
            b => return Ok(b as u64),
        };
        if v < min {
            return Err(DecodeError::NonCanonicalCompactSize);
        }
        Ok(v)
    }

    /// Skips `n` bytes (fields a structural parse only needs to step over).
    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Skips a length-prefixed byte string of at most `max` bytes.
    #[inline]
    pub fn skip_var_bytes(&mut self, max: usize) -> Result<(), DecodeError> {
        let n = self.compact_size()?;
        if n > max as u64 {
            return Err(DecodeError::FieldTooLong);
        }
        self.skip(n as usize)
    }

    /// A count of entries of at least `min_entry_bytes` each: more than the bytes left could hold
    /// is `Truncated`, and a count the bytes do hold but over `max` is `TooManyEntries` — both
    /// before the caller sizes anything. In that order because Core reads the entries until they
    /// run out: a count that lies about the bytes fails as a short message (which Core drops),
    /// and only a list really over its limit is the violation Core punishes.
    #[inline]
    pub fn count(&mut self, max: usize, min_entry_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.compact_size()?;
        if n.saturating_mul(min_entry_bytes as u64) > self.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        if n > max as u64 {
            return Err(DecodeError::TooManyEntries);
        }
        Ok(n as usize)
    }

    /// A length-prefixed byte string of at most `max` bytes, borrowed.
    #[inline]
    pub fn var_bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.compact_size()?;
        if n > max as u64 {
            return Err(DecodeError::FieldTooLong);
        }
        self.bytes(n as usize)
    }

    /// Ends decoding: any byte left over is an error.
    #[inline]
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(())
    }
}

/// Appends a CompactSize to `out`.
#[inline]
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    if n < 0xfd {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xfd);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xfe);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(0xff);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_round_trips_at_each_width() {
        for n in [0u64, 0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let mut v = Vec::new();
            write_compact_size(&mut v, n);
            let mut r = Reader::new(&v);
            assert_eq!(r.compact_size(), Ok(n));
            assert_eq!(r.finish(), Ok(()));
        }
    }

    #[test]
    fn non_canonical_compact_size_is_refused() {
        assert_eq!(Reader::new(&[0xfd, 0x10, 0x00]).compact_size(), Err(DecodeError::NonCanonicalCompactSize));
        assert_eq!(Reader::new(&[0xfe, 0xff, 0xff, 0, 0]).compact_size(), Err(DecodeError::NonCanonicalCompactSize));
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).compact_size(),
            Err(DecodeError::NonCanonicalCompactSize)
        );
    }

    #[test]
    fn a_count_larger_than_the_bytes_left_is_truncated_not_allocated() {
        // claims 40,000 entries of 36 bytes in a 3-byte payload
        let mut r = Reader::new(&[0xfd, 0x40, 0x9c]);
        assert_eq!(r.count(50_000, 36), Err(DecodeError::Truncated));
        // 50,001 claimed: the bytes are missing, so it is a short message, not a list over its limit.
        let mut r = Reader::new(&[0xfd, 0x51, 0xc3]);
        assert_eq!(r.count(50_000, 36), Err(DecodeError::Truncated));
        // 50,001 entries really there: too many.
        let mut b = vec![0xfd, 0x51, 0xc3];
        b.resize(3 + 36 * 50_001, 0);
        assert_eq!(Reader::new(&b).count(50_000, 36), Err(DecodeError::TooManyEntries));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut r = Reader::new(&[1, 2]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes));
    }
}
