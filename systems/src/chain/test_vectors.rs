//! Real mainnet headers (facts: each hashes below its own target) around three retarget
//! boundaries — 2016 (capped at the limit), 32256 (the first difficulty rise) and 967680 (2026) —
//! plus the period-start times, and helpers shared by the chain tests.

use super::pow::Ancestry;
use crate::wire::headers::HEADER_BYTES;
use std::collections::BTreeMap;

/// (height, raw header hex, block hash as displayed).
pub const MAINNET: &[(u32, &str, &str)] = &[
    (2014, "010000008261d8b07aa0ffbf4043fbee2499b04cb9a06fd2ded0c39907e3f7c200000000b496cbc6d52777991345b8c72e46d803140bb030a870995036773567fe149f71ea067f49ffff001d2cfb7680", "000000004be8da201f34d6c8d2a0387cd5cde7e94f3e692ad0c307e7cd0955e2"),
    (2015, "01000000e25509cde707c3d02a693e4fe9e7cdd57c38a0d2c8d6341f20dae84b000000000c113df1185e162ee92d031fe21d1400ff7d705a3e9b9c860eea855313cd8ca26c087f49ffff001d30b73231", "00000000693067b0e6b440bc51450b9f3850561b07f6d3c021c54fbd6abb9763"),
    (2016, "010000006397bb6abd4fc521c0d3f6071b5650389f0b4551bc40b4e6b067306900000000ace470aecda9c8818c8fe57688cd2a772b5a57954a00df0420a7dd546b6d2c576b0e7f49ffff001d33f0192f", "00000000a141216a896c54f211301c436e557a8d55900637bbdce14c6c7bddef"),
    (2017, "01000000efdd7b6c4ce1dcbb370690558d7a556e431c3011f2546c896a2141a100000000d65bbd7472491e067d4562f38fc5420bdcd1335b4cb0cf1e90aefe828fef88cbcd137f49ffff001d34a93051", "00000000a30d73bbfe167ace49a48042099ea64bab675611e29545a7abe06dee"),
    (30240, "01000000e6bf7fd7f7790a63786faa878d0dc7fd8f2ff365732e45862c66075100000000700d342f65c7b6834dffb615358a1897016f0448913372190cbe3d27a4b53355b1512b4bffff001dbfb02519", "000000000fa8bfa0f0dd32f956b874b2c7f1772c5fbedcb1b35e03335c7fb0a8"),
    (32254, "01000000672ae405fdb9e4f2a37ffa660a328e138fa08a9ac7ae99382aee270e00000000342fedae2d72975552ac0797556817d11006ec322e2bf97ce88f91caf39525794fe93a4bffff001d94282401", "000000006baebaa74cecde6c6787c26ee0a616a3c333261bff36653babdac149"),
    (32255, "0100000049c1daab3b6536ff1b2633c3a316a6e06ec287676cdeec4ca7baae6b00000000ac10b36b8f354b3353207de15940a5edbc05bb8364af75b4b5409e7823f2b48923ec3a4bffff001dbd5fa412", "00000000984f962134a7291e3693075ae03e521f0ee33378ec30a334d860034b"),
    (32256, "010000004b0360d834a330ec7833e30e1f523ee05a0793361e29a73421964f980000000027b64a020af294e903feed93768705336a20090612a043f47af462a2f5e5b564f8ee3a4b6ad8001dd3a43707", "000000004f2886a170adb7204cb0c7a824217dd24d11a74423d564c4e0904967"),
    (32257, "01000000674990e0c464d52344a7114dd27d2124a8c7b04c20b7ad70a186284f000000003423d663d7a4e64f42d403f8e054201a70acdb973219787803b3081f9888144d70f23a4b6ad8001d13365f10", "0000000078bb40a0a5aae645f86e144cab79209726b98d74e2f311c6d31aa52e"),
    (965664, "0020f4228a1af9368ebe5ed1fd29c4715449c63d429303e4c835000000000000000000006d04326138d4832a5bdcc1ec8cf510b8feb9fd538f5cd7d2666e5a207bc0dce66f7c9c6a5e3502179d9b6e7c", "0000000000000000000181a3f770282024cf15f3427fe20c003f4f9916d663a0"),
    (967678, "00e0ff3f6fb781e3c525200d0f1ed8d943bfb658d9e7ca5444d901000000000000000000ecf68a711228e2cdaafe2ff3cd1d17449df3fc344f4c79a352a14fff253361823235ae6a5e3502170d1658b6", "00000000000000000001e708f61cfe16061a5e0a8d6f2311cbef7a3ff37c80f1"),
    (967679, "00006a28f1807cf33f7aefcb11236f8d0a5e1a0616fe1cf608e701000000000000000000dafc8185d9e33235d84c63e2e355fadc4cd9fccd3edd9dae4eae6ba4aab28f9f9b34ae6a5e350217ca9042a4", "00000000000000000001b58cb69869f6067f0ecb3f2fe0f2263e62ba1ccb0c41"),
    (967680, "00000030410ccb1cba623e26f2e02f3fcb0e7f06f66998b68cb5010000000000000000003d16ae2558e8ec7b8dd369ee29bb2733fbd39bcc1058c681970a36a7f1a2bdea1135ae6ac51e0217480c3581", "0000000000000000000161354016172f2a377610d52dd46d0f68a919333458cd"),
    (967681, "0040f528cd58343319a9680f6dd42dd51076372a2f1716403561010000000000000000007e75b15cc912716fe5de720d584b2d9e238f4a0ef47b5b60e0f5d64e9f4296599037ae6ac51e021755b30fb0", "0000000000000000000038cbef73fba6f941d6614713d6e0137aeb1d58106e4c"),
];

/// Hex to bytes (test data only).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The raw mainnet header at `height`.
pub fn mainnet(height: u32) -> [u8; HEADER_BYTES] {
    let (_, hex, _) = MAINNET.iter().find(|(h, _, _)| *h == height).unwrap();
    unhex(hex).try_into().unwrap()
}

/// The chain below a header as far as the vectors know it: `(bits, time)` by height; heights we
/// do not carry answer with the nearest known block below (a lower bound on time, so the median
/// of the last 11 can only be underestimated).
pub struct Sparse {
    /// Known blocks.
    pub blocks: BTreeMap<u32, (u32, u32)>,
    /// The parent's height.
    pub tip: u32,
}

impl Sparse {
    /// The vectors up to `tip`, plus genesis.
    pub fn mainnet_to(tip: u32) -> Self {
        let mut blocks = BTreeMap::new();
        blocks.insert(0, (0x1d00ffff, 1231006505));
        for (h, _, _) in MAINNET {
            let f = super::tree::HeaderFields::of(&mainnet(*h));
            blocks.insert(*h, (f.bits, f.time));
        }
        Sparse { blocks, tip }
    }
}

impl Ancestry for Sparse {
    fn tip_height(&self) -> u32 {
        self.tip
    }

    fn at(&self, height: u32) -> (u32, u32) {
        *self.blocks.range(..=height).next_back().map(|(_, v)| v).unwrap()
    }
}

fn fixture(name: &str) -> Vec<Vec<u8>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/regtest-core");
    let text = std::fs::read_to_string(dir.join(name)).expect("fixture present");
    text.lines().filter(|l| !l.is_empty()).map(unhex).collect()
}

/// Raw blocks of the fixture chain (heights 1..=2100), read once.
pub fn chain_blocks() -> &'static [Vec<u8>] {
    static B: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    B.get_or_init(|| fixture("chain.hex"))
}

/// Raw blocks of the heavier fork (heights 2095..=2101), read once.
pub fn fork_blocks() -> &'static [Vec<u8>] {
    static B: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    B.get_or_init(|| fixture("fork.hex"))
}

/// The 80-byte header of a raw block.
pub fn header_of(block: &[u8]) -> [u8; HEADER_BYTES] {
    block[..HEADER_BYTES].try_into().unwrap()
}

/// A clock well after the fixture was made (2027), in unix seconds.
pub const AFTER_FIXTURE_S: i64 = 1_800_000_000;

/// Mines a regtest header on `prev` (about two tries per header at regtest difficulty).
pub fn mine(prev: &bitcoin::BlockHash, time: u32, version: i32, salt: u32) -> [u8; HEADER_BYTES] {
    use bitcoin::hashes::Hash;
    let mut raw = [0u8; HEADER_BYTES];
    raw[0..4].copy_from_slice(&version.to_le_bytes());
    raw[4..36].copy_from_slice(prev.as_byte_array());
    raw[36..40].copy_from_slice(&salt.to_le_bytes());
    raw[68..72].copy_from_slice(&time.to_le_bytes());
    raw[72..76].copy_from_slice(&0x207fffffu32.to_le_bytes());
    for nonce in 0u32.. {
        raw[76..80].copy_from_slice(&nonce.to_le_bytes());
        let h = crate::wire::headers::block_hash(&raw);
        if h.as_byte_array()[31] & 0x80 == 0 {
            return raw;
        }
    }
    unreachable!()
}

/// A chain of `n` mined regtest headers on `prev` whose times start after `time`.
pub fn mine_chain(prev: bitcoin::BlockHash, time: u32, n: usize, salt: u32) -> Vec<[u8; HEADER_BYTES]> {
    let mut out = Vec::with_capacity(n);
    let mut prev = prev;
    for i in 0..n {
        let raw = mine(&prev, time + 1 + i as u32, 0x2000_0000, salt);
        prev = crate::wire::headers::block_hash(&raw);
        out.push(raw);
    }
    out
}

/// An archive in memory, as the node's header store keeps them (height, hash → raw), with a way
/// to lose one.
#[derive(Default)]
pub struct MemArchive(std::sync::Mutex<std::collections::HashMap<(u32, bitcoin::BlockHash), [u8; 80]>>);

impl MemArchive {
    /// Stores rows as the node's header store does.
    pub fn save(&self, rows: &[(u32, bitcoin::BlockHash, [u8; 80])]) {
        let mut m = self.0.lock().unwrap();
        rows.iter().for_each(|(h, hash, raw)| _ = m.insert((*h, *hash), *raw));
    }
    /// Forgets every header at `height`.
    pub fn lose(&self, height: u32) {
        self.0.lock().unwrap().retain(|k, _| k.0 != height);
    }
}

impl crate::chain::tree::HeaderArchive for MemArchive {
    fn read(&self, keys: &[(u32, bitcoin::BlockHash)], out: &mut Vec<[u8; 80]>) {
        let m = self.0.lock().unwrap();
        out.extend(keys.iter().map_while(|k| m.get(k).copied()));
    }
}
