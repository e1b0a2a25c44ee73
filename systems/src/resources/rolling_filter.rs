//! A rolling bloom filter over 32-byte hashes: remembers roughly the last `capacity` insertions with
//! a bounded false-positive rate and fixed memory, forgetting the oldest half-capacity at a time
//! (three generations of half the capacity each, as Core's rolling filter keeps). Blocked
//! (every key's bits live in one 64-byte line) so a lookup costs one cache miss — the inv filter
//! checks millions of entries a second with it.

use serde::{Deserialize, Serialize};

const BLOCK_BITS: u64 = 512;

/// A three-generation blocked bloom filter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RollingFilter {
    gens: [Vec<[u64; 8]>; 3],
    current: usize,
    inserted: usize,
    /// Nothing inserted since creation or the last clear: a clear has nothing to zero (the node
    /// clears its rejected filter on every block, mostly empty; zeroing 0.9 MB each time would
    /// also bring the untouched, zero-allocated pages into the RSS).
    empty: bool,
    per_gen: usize,
    hashes: u32,
    keys: [u64; 4],
}

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul(b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

impl RollingFilter {
    /// Remembers at least the last `capacity` entries with false positives near `fp_rate`; `keys`
    /// (from the node's rng) make which hashes collide unpredictable to peers.
    pub fn new(capacity: usize, fp_rate: f64, keys: [u64; 4]) -> Self {
        let per_gen = capacity.div_ceil(2).max(1);
        // A lookup asks all three generations, so each gets a third of the rate; a blocked filter
        // needs ~1.35× the bits of a classic one for the same rate.
        let per_gen_rate = fp_rate / 3.0;
        let classic_bits = -per_gen_rate.ln() / std::f64::consts::LN_2.powi(2);
        let hashes = (classic_bits * std::f64::consts::LN_2).round().clamp(1.0, 24.0) as u32;
        let blocks = ((per_gen as f64 * classic_bits * 1.35) / BLOCK_BITS as f64).ceil().max(1.0) as usize;
        RollingFilter {
            gens: [vec![[0u64; 8]; blocks], vec![[0u64; 8]; blocks], vec![[0u64; 8]; blocks]],
            current: 0,
            inserted: 0,
            empty: true,
            per_gen,
            hashes,
            keys,
        }
    }

    /// Where `key` lives: its block and bit stream. Filters of equal size and keys share it, so a
    /// caller checking several can hash once ([`RollingFilter::contains_at`]).
    #[inline]
    pub fn locate(&self, key: &[u8; 32]) -> (usize, u64, u64) {
        let w = |i: usize| {
            u64::from_le_bytes([
                key[i],
                key[i + 1],
                key[i + 2],
                key[i + 3],
                key[i + 4],
                key[i + 5],
                key[i + 6],
                key[i + 7],
            ])
        };
        let h1 = mix(w(0) ^ self.keys[0], w(8) ^ self.keys[1]);
        let h2 = mix(w(16) ^ self.keys[2], w(24) ^ self.keys[3]) | 1;
        let blocks = self.gens[0].len() as u64;
        let block = ((h1 as u128 * blocks as u128) >> 64) as usize;
        (block, h2, self.keys[0] ^ h1)
    }

    /// The key's bit positions in its block: 9-bit slices of a hash stream, so each key gets an
    /// independent pattern (an arithmetic progression mod 512 would allow only 2^18 patterns).
    #[inline]
    fn bits(h: u64, seed: u64, k: u32, mut f: impl FnMut(u64) -> bool) -> bool {
        let mut word = h;
        let mut left = 7;
        for i in 0..k {
            if left == 0 {
                word = mix(word ^ seed, 0x9e37_79b9_7f4a_7c15 ^ i as u64);
                left = 7;
            }
            if !f(word & (BLOCK_BITS - 1)) {
                return false;
            }
            word >>= 9;
            left -= 1;
        }
        true
    }

    #[inline]
    fn probe(block: &[u64; 8], h: u64, seed: u64, k: u32) -> bool {
        Self::bits(h, seed, k, |bit| block[(bit >> 6) as usize] & (1 << (bit & 63)) != 0)
    }

    /// Whether `key` was (probably) inserted recently.
    #[inline]
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        let (b, h, seed) = self.locate(key);
        self.gens.iter().any(|g| Self::probe(&g[b], h, seed, self.hashes))
    }

    /// [`RollingFilter::contains`] with a location from [`RollingFilter::locate`] of a filter with
    /// the same size and keys.
    #[inline]
    pub fn contains_at(&self, (b, h, seed): (usize, u64, u64)) -> bool {
        self.gens.iter().any(|g| g.get(b).is_some_and(|blk| Self::probe(blk, h, seed, self.hashes)))
    }

    /// Remembers `key`; when the current generation is full, the older one is forgotten.
    #[inline]
    pub fn insert(&mut self, key: &[u8; 32]) {
        if self.inserted >= self.per_gen {
            self.current = (self.current + 1) % 3;
            self.gens[self.current].iter_mut().for_each(|b| *b = [0; 8]);
            self.inserted = 0;
        }
        let (b, h, seed) = self.locate(key);
        let block = &mut self.gens[self.current][b];
        Self::bits(h, seed, self.hashes, |bit| {
            block[(bit >> 6) as usize] |= 1 << (bit & 63);
            true
        });
        self.inserted += 1;
        self.empty = false;
    }

    /// Forgets everything (Core resets its recently-rejected filter on a new tip); free when
    /// nothing was inserted since the last clear.
    pub fn clear(&mut self) {
        if self.empty {
            return;
        }
        for g in &mut self.gens {
            g.iter_mut().for_each(|b| *b = [0; 8]);
        }
        self.inserted = 0;
        self.empty = true;
    }

    /// Bytes of filter memory.
    pub fn memory_bytes(&self) -> usize {
        self.gens[0].len() * 64 * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64, salt: u64) -> [u8; 32] {
        let mut k = [0u8; 32];
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
        for c in k.chunks_mut(8) {
            x = x.rotate_left(17).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ i;
            c.copy_from_slice(&x.to_le_bytes());
        }
        k
    }

    #[test]
    fn remembers_the_last_capacity_entries_and_rarely_lies() {
        let mut f = RollingFilter::new(50_000, 1e-6, [1, 2, 3, 4]);
        for i in 0..120_000 {
            f.insert(&key(i, 0));
        }
        assert!((120_000 - 50_000..120_000).all(|i| f.contains(&key(i, 0))), "the last 50,000 are all there");
        let false_hits = (0..200_000).filter(|i| f.contains(&key(*i, 77))).count();
        assert!(false_hits <= 2, "false positives: {false_hits} in 200,000");
        assert!(!f.contains(&key(0, 0)), "the oldest were forgotten");
        assert!(f.memory_bytes() < 400_000, "{}", f.memory_bytes());
    }

    #[test]
    fn clear_forgets() {
        let mut f = RollingFilter::new(100, 1e-6, [5, 6, 7, 8]);
        f.insert(&key(1, 0));
        assert!(f.contains(&key(1, 0)));
        f.clear();
        assert!(!f.contains(&key(1, 0)));
        f.clear();
        f.insert(&key(2, 0));
        assert!(f.contains(&key(2, 0)), "a cleared filter keeps working");
        f.clear();
        assert!(!f.contains(&key(2, 0)), "and forgets again after an empty clear");
    }

    /// This process's anonymous resident bytes (`RssAnon`).
    #[cfg(target_os = "linux")]
    fn resident_anon() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<usize>().ok()).expect("kB") * 1024
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn clearing_an_empty_filter_leaves_its_pages_untouched() {
        // Some 30 MB of filter, allocated zeroed: nothing of it is resident until written.
        let mut f = RollingFilter::new(4_000_000, 1e-6, [1, 2, 3, 4]);
        let size = f.memory_bytes();
        assert!(size > 25 << 20, "{size}");
        let before = resident_anon();
        for _ in 0..3 {
            f.clear();
        }
        let after_empty_clears = resident_anon();
        f.insert(&key(1, 0));
        f.clear();
        let after_a_real_clear = resident_anon();
        // Other tests allocate beside this one; the filter's own size dwarfs their noise.
        assert!(after_empty_clears < before + size / 4, "empty clears touched {} bytes", after_empty_clears - before);
        assert!(after_a_real_clear > before + size / 2, "a real clear zeroes the whole filter");
    }
}
