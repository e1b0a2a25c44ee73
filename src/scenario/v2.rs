//! BIP324 pieces the scenario runner shares between the simulator, the live runner and the v2
//! bots: key material and garbage drawn from a seeded rng (the same seed, the same bytes).

use oni_systems::resources::Rng;
use oni_systems::wire::v2::transport::MAX_GARBAGE_LEN;
use oni_systems::wire::v2::KeyExchange;

/// `n` bytes from `rng`.
pub fn bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// A fresh key exchange and garbage of random length (0–4,095 bytes), from `rng`.
pub fn keys(rng: &mut Rng) -> (KeyExchange, Vec<u8>) {
    let kex = loop {
        let secret: [u8; 32] = bytes(rng, 32).try_into().unwrap_or([1; 32]);
        let entropy: [u8; 32] = bytes(rng, 32).try_into().unwrap_or([1; 32]);
        // All but ~2^-128 of secrets are valid: draw again otherwise.
        if let Some(k) = KeyExchange::new(secret, entropy) {
            break k;
        }
    };
    let len = rng.below(MAX_GARBAGE_LEN as u64 + 1) as usize;
    (kex, bytes(rng, len))
}
