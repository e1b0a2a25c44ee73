//! Per-network consensus parameters for headers: proof-of-work limit and retarget rules, BIP34/65/66
//! heights, genesis, the minimum chain work a header chain must show before it is stored in full,
//! and the low-work header sync (PRESYNC/REDOWNLOAD) sizing. Values are Bitcoin Core's chainparams;
//! the genesis blocks come from rust-bitcoin.

use super::u256::U256;
use crate::wire::Network;
use bevy_ecs::prelude::*;
use bitcoin::block::Header;
use bitcoin::pow::Work;

/// Core's MAX_FUTURE_BLOCK_TIME: a header may be at most this far ahead of our clock.
pub const MAX_FUTURE_BLOCK_TIME_S: i64 = 2 * 60 * 60;
/// Core's MAX_TIMEWARP (BIP94): the first block of a period may not be older than its parent by more.
pub const MAX_TIMEWARP_S: i64 = 600;
/// Blocks in the median-time-past window.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// The median of the first [`MEDIAN_TIME_SPAN`] block times `times` gives, newest first (Core's
/// GetMedianTimePast over however many there are; 0 for none): the one median-time-past rule
/// the header tree, the proof-of-work checks and the pool all use.
pub fn median_time(times: impl IntoIterator<Item = u32>) -> i64 {
    let mut t = [0u32; MEDIAN_TIME_SPAN];
    let mut n = 0;
    for time in times.into_iter().take(MEDIAN_TIME_SPAN) {
        t[n] = time;
        n += 1;
    }
    if n == 0 {
        return 0;
    }
    let t = &mut t[..n];
    t.sort_unstable();
    i64::from(t[n / 2])
}

/// Consensus and sync parameters of one network.
#[derive(Resource, Clone, Debug)]
pub struct ChainParams {
    /// Which network.
    pub network: Network,
    /// The genesis header (height 0).
    pub genesis: Header,
    /// Largest target allowed (easiest difficulty).
    pub pow_limit: U256,
    /// `pow_limit` in compact form (min-difficulty blocks carry exactly this).
    pub pow_limit_bits: u32,
    /// Target seconds between blocks.
    pub target_spacing_s: i64,
    /// Target seconds per retarget period.
    pub target_timespan_s: i64,
    /// testnet/regtest: a block more than 2 × spacing after its parent may use `pow_limit`.
    pub allow_min_difficulty: bool,
    /// regtest: the difficulty never changes.
    pub no_retargeting: bool,
    /// testnet4 (BIP94): retarget from the period's first block and forbid the timewarp.
    pub enforce_bip94: bool,
    /// Height from which version ≥ 2 is required.
    pub bip34_height: u32,
    /// Height from which version ≥ 3 is required.
    pub bip66_height: u32,
    /// Height from which version ≥ 4 is required.
    pub bip65_height: u32,
    /// Work a header chain must reach before we store it (Core's nMinimumChainWork).
    pub minimum_chain_work: Work,
    /// PRESYNC keeps one commitment bit per this many headers.
    pub commitment_period: u32,
    /// REDOWNLOAD holds this many headers before releasing the oldest to validation.
    pub redownload_buffer: usize,
}

fn work_hex(s: &str) -> Work {
    let mut b = [0u8; 32];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).unwrap_or(0);
    }
    Work::from_be_bytes(b)
}

impl ChainParams {
    /// Bitcoin Core's parameters for `network`.
    pub fn for_network(network: Network) -> Self {
        let genesis = bitcoin::blockdata::constants::genesis_block(network.to_bitcoin()).header;
        let limit = |bits: u32| U256::from_compact(bits).unwrap_or(U256::ZERO);
        let base = ChainParams {
            network,
            genesis,
            pow_limit: limit(0x1d00ffff),
            pow_limit_bits: 0x1d00ffff,
            target_spacing_s: 600,
            target_timespan_s: 14 * 24 * 60 * 60,
            allow_min_difficulty: false,
            no_retargeting: false,
            enforce_bip94: false,
            bip34_height: 1,
            bip66_height: 1,
            bip65_height: 1,
            minimum_chain_work: Work::from_be_bytes([0; 32]),
            commitment_period: 641,
            redownload_buffer: 15_218,
        };
        match network {
            Network::Main => ChainParams {
                bip34_height: 227_931,
                bip66_height: 363_725,
                bip65_height: 388_381,
                minimum_chain_work: work_hex("0000000000000000000000000000000000000001128750f82f4c366153a3a030"),
                ..base
            },
            Network::Testnet4 => ChainParams {
                allow_min_difficulty: true,
                enforce_bip94: true,
                minimum_chain_work: work_hex("0000000000000000000000000000000000000000000009a0fe15d0177d086304"),
                commitment_period: 606,
                redownload_buffer: 16_092,
                ..base
            },
            Network::Signet => ChainParams {
                // The default signet challenge's parameters (a custom challenge has no minimum work).
                pow_limit: limit(0x1e0377ae),
                pow_limit_bits: 0x1e0377ae,
                minimum_chain_work: work_hex("00000000000000000000000000000000000000000000000000000b463ea0a4b8"),
                commitment_period: 620,
                redownload_buffer: 15_724,
                ..base
            },
            Network::Regtest => ChainParams {
                pow_limit: limit(0x207fffff),
                pow_limit_bits: 0x207fffff,
                target_timespan_s: 24 * 60 * 60,
                allow_min_difficulty: true,
                no_retargeting: true,
                commitment_period: 275,
                redownload_buffer: 7_017,
                ..base
            },
        }
    }

    /// Blocks per retarget period (2016 on every public network).
    pub fn interval(&self) -> u32 {
        (self.target_timespan_s / self.target_spacing_s) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_meets_its_own_target_and_limits_match_rust_bitcoin() {
        for n in Network::ALL {
            let p = ChainParams::for_network(n);
            assert_eq!(
                p.genesis.block_hash(),
                bitcoin::blockdata::constants::genesis_block(n.to_bitcoin()).block_hash()
            );
            let params = bitcoin::consensus::Params::new(n.to_bitcoin());
            #[allow(deprecated)]
            let rb_limit = params.pow_limit;
            assert_eq!(p.pow_limit.to_target(), rb_limit, "{n:?}");
            assert_eq!(p.pow_limit.to_compact(), p.pow_limit_bits);
            assert_eq!(p.interval(), if n == Network::Regtest { 144 } else { 2016 });
            assert!(p.redownload_buffer / p.commitment_period as usize > 20);
        }
        assert_eq!(ChainParams::for_network(Network::Regtest).minimum_chain_work, Work::from_be_bytes([0; 32]));
        assert!(ChainParams::for_network(Network::Main).minimum_chain_work.log2() > 96.0);
    }
}
