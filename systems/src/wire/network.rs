//! The four networks oni speaks: each has its own magic (the first four bytes of every frame) and
//! default port, so a frame from the wrong network is refused from its first bytes.

use serde::{Deserialize, Serialize};

/// A Bitcoin network. The magic and ports are Bitcoin Core's (chainparams).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The real network.
    Main,
    /// testnet4 (BIP94).
    Testnet4,
    /// The default signet.
    Signet,
    /// Local regression testing; blocks are free to mine.
    Regtest,
}

impl Network {
    /// Every network, for loops in tests and CLI help.
    pub const ALL: [Network; 4] = [Network::Main, Network::Testnet4, Network::Signet, Network::Regtest];

    /// The four bytes that open every frame on this network.
    pub const fn magic(self) -> [u8; 4] {
        match self {
            Network::Main => [0xf9, 0xbe, 0xb4, 0xd9],
            Network::Testnet4 => [0x1c, 0x16, 0x3f, 0x28],
            Network::Signet => [0x0a, 0x03, 0xcf, 0x40],
            Network::Regtest => [0xfa, 0xbf, 0xb5, 0xda],
        }
    }

    /// The P2P port peers expect us on.
    pub const fn default_port(self) -> u16 {
        match self {
            Network::Main => 8333,
            Network::Testnet4 => 48333,
            Network::Signet => 38333,
            Network::Regtest => 18444,
        }
    }

    /// The JSON-RPC port Bitcoin Core uses on this network, so operators' tools find us.
    pub const fn default_rpc_port(self) -> u16 {
        match self {
            Network::Main => 8332,
            Network::Testnet4 => 48332,
            Network::Signet => 38332,
            Network::Regtest => 18443,
        }
    }

    /// The name used on the command line and in RPC (`getblockchaininfo.chain`).
    pub const fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    /// Parses a CLI name; accepts Core's aliases.
    pub fn from_name(s: &str) -> Option<Network> {
        match s {
            "main" | "mainnet" | "bitcoin" => Some(Network::Main),
            "testnet4" => Some(Network::Testnet4),
            "signet" => Some(Network::Signet),
            "regtest" => Some(Network::Regtest),
            _ => None,
        }
    }

    /// The rust-bitcoin network, for genesis blocks and consensus parameters.
    pub const fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Main => bitcoin::Network::Bitcoin,
            Network::Testnet4 => bitcoin::Network::Testnet4,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_match_rust_bitcoin() {
        for n in Network::ALL {
            assert_eq!(n.magic(), n.to_bitcoin().magic().to_bytes(), "{n:?}");
            assert_eq!(Network::from_name(n.name()), Some(n));
        }
    }
}
