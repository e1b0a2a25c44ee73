//! The frame checksum: the first four bytes of sha256d(payload). This is the hottest loop of the
//! decoder, so it uses the `sha2` crate, which picks the CPU's SHA extensions at run time.

use sha2::{Digest, Sha256};

/// First four bytes of sha256(sha256(payload)).
pub fn checksum(payload: &[u8]) -> [u8; 4] {
    let first = Sha256::digest(payload);
    let second = Sha256::digest(first);
    [second[0], second[1], second[2], second[3]]
}

/// Full sha256d, for hashes of headers and transactions computed from raw bytes.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// sha256d of several slices hashed as one (a segwit tx's txid skips marker, flag and witness).
pub fn sha256d_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Sha256::digest(h.finalize()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_payload_checksum_is_the_well_known_constant() {
        // verack, sendheaders... all carry 5df6e0e2.
        assert_eq!(checksum(&[]), [0x5d, 0xf6, 0xe0, 0xe2]);
    }

    #[test]
    fn hashing_in_parts_equals_hashing_the_concatenation() {
        let data: Vec<u8> = (0..200u8).collect();
        assert_eq!(sha256d_parts(&[&data[..3], &data[3..150], &data[150..]]), sha256d(&data));
        assert_ne!(sha256d_parts(&[&data[..3], &data[4..]]), sha256d(&data));
    }
}
