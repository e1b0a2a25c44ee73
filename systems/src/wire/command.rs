//! Commands: the 12-byte name in a frame header, mapped to a closed enum without building strings,
//! each with its own payload bound so an oversized frame is refused from its header alone.

use serde::{Deserialize, Serialize};

/// Largest payload any frame may carry (Bitcoin Core's MAX_PROTOCOL_MESSAGE_LENGTH).
pub const MAX_PAYLOAD_BYTES: u32 = 4_000_000;
/// Entries in one inv / getdata / notfound (Core's MAX_INV_SZ).
pub const MAX_INV_ENTRIES: usize = 50_000;
/// Headers in one `headers` message (Core's MAX_HEADERS_RESULTS).
pub const MAX_HEADERS: usize = 2_000;
/// Hashes in a block locator (Core's MAX_LOCATOR_SZ).
pub const MAX_LOCATOR_HASHES: usize = 101;
/// Entries in one addr / addrv2 (Core's MAX_ADDR_TO_SEND).
pub const MAX_ADDR_ENTRIES: usize = 1_000;
/// Largest BIP37 bloom filter (Core's MAX_BLOOM_FILTER_SIZE).
pub const MAX_BLOOM_FILTER_BYTES: usize = 36_000;
/// Largest data item of a `filteradd` (Core's MAX_SCRIPT_ELEMENT_SIZE).
pub const MAX_FILTERADD_BYTES: usize = 520;
/// Longest user agent accepted in `version` (Core's MAX_SUBVERSION_LENGTH).
pub const MAX_USER_AGENT_BYTES: usize = 256;
/// Longest address in an addrv2 entry (BIP155).
pub const MAX_ADDRV2_ADDR_BYTES: usize = 512;

const fn compact_size_len(n: u64) -> u32 {
    if n < 0xfd {
        1
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// A name NUL-padded to the 12 bytes of a frame header (at compile time).
const fn pad(name: &str) -> [u8; 12] {
    let b = name.as_bytes();
    let mut out = [0u8; 12];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

macro_rules! commands {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, max $max:expr; )*) => {
        /// A known command, or `Unknown` for a well-formed name we do not speak (ignored and counted,
        /// as Bitcoin Core does, for forward compatibility).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        #[repr(u8)]
        pub enum Command {
            $( $(#[$doc])* $variant, )*
            /// A well-formed command name that oni does not know.
            Unknown,
        }

        impl Command {
            /// Every command, `Unknown` last; the index of each is `as usize`.
            pub const ALL: [Command; Command::COUNT] = [$(Command::$variant,)* Command::Unknown];
            /// Number of commands including `Unknown`: the length of per-command counter arrays.
            pub const COUNT: usize = [$($name,)*].len() + 1;

            /// The wire name (also the label in metrics and RPC; Core calls unknown ones `*other*`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Command::$variant => $name, )*
                    Command::Unknown => "*other*",
                }
            }

            /// The largest payload this command can legitimately carry.
            pub const fn max_payload(self) -> u32 {
                match self {
                    $( Command::$variant => $max, )*
                    Command::Unknown => MAX_PAYLOAD_BYTES,
                }
            }

            /// Maps the NUL-stripped name bytes to a command; no allocation.
            pub fn from_name_bytes(name: &[u8]) -> Command {
                match name {
                    $( n if n == $name.as_bytes() => Command::$variant, )*
                    _ => Command::Unknown,
                }
            }

            /// Maps a frame header's 12-byte NUL-padded name (already checked well-formed) to a
            /// command by whole-array compares: the per-frame lookup on the decode path.
            #[inline]
            pub fn from_padded(name: &[u8; 12]) -> Command {
                $( if *name == const { pad($name) } { return Command::$variant; } )*
                Command::Unknown
            }
        }
    };
}

const INV_MAX: u32 = compact_size_len(MAX_INV_ENTRIES as u64) + 36 * MAX_INV_ENTRIES as u32;
const HEADERS_MAX: u32 = compact_size_len(MAX_HEADERS as u64) + 81 * MAX_HEADERS as u32;
const LOCATOR_MAX: u32 = 4 + compact_size_len(MAX_LOCATOR_HASHES as u64) + 32 * MAX_LOCATOR_HASHES as u32 + 32;
const ADDR_MAX: u32 = compact_size_len(MAX_ADDR_ENTRIES as u64) + 30 * MAX_ADDR_ENTRIES as u32;
// time(4) + services(compact, ≤9) + network(1) + addr len(≤3) + addr(≤512) + port(2)
const ADDRV2_MAX: u32 = compact_size_len(MAX_ADDR_ENTRIES as u64)
    + (4 + 9 + 1 + 3 + MAX_ADDRV2_ADDR_BYTES as u32 + 2) * MAX_ADDR_ENTRIES as u32;
// version(4) services(8) time(8) addr_recv(26) addr_from(26) nonce(8) ua(3+256) height(4) relay(1)
const VERSION_MAX: u32 = 4 + 8 + 8 + 26 + 26 + 8 + 3 + MAX_USER_AGENT_BYTES as u32 + 4 + 1;

commands! {
    /// Opens the handshake.
    Version = "version", max VERSION_MAX;
    /// Acknowledges the peer's version.
    Verack = "verack", max 0;
    /// Liveness probe carrying a nonce.
    Ping = "ping", max 8;
    /// Echo of a ping nonce.
    Pong = "pong", max 8;
    /// Asks for block announcements by headers (BIP130).
    SendHeaders = "sendheaders", max 0;
    /// Announces txs by wtxid (BIP339); only between version and verack.
    WtxidRelay = "wtxidrelay", max 0;
    /// Asks for addrv2 (BIP155); only between version and verack.
    SendAddrV2 = "sendaddrv2", max 0;
    /// Minimum feerate the peer wants announced (BIP133).
    FeeFilter = "feefilter", max 8;
    /// Compact block negotiation (BIP152).
    SendCmpct = "sendcmpct", max 9;
    /// Asks for addresses.
    GetAddr = "getaddr", max 0;
    /// Asks for the mempool's contents (BIP35).
    Mempool = "mempool", max 0;
    /// Announces inventory.
    Inv = "inv", max INV_MAX;
    /// Requests inventory.
    GetData = "getdata", max INV_MAX;
    /// Answers a getdata item we do not have.
    NotFound = "notfound", max INV_MAX;
    /// Asks for headers after a locator.
    GetHeaders = "getheaders", max LOCATOR_MAX;
    /// Asks for block invs after a locator (legacy).
    GetBlocks = "getblocks", max LOCATOR_MAX;
    /// Block headers.
    Headers = "headers", max HEADERS_MAX;
    /// Addresses, v1 encoding.
    Addr = "addr", max ADDR_MAX;
    /// Addresses, BIP155 encoding.
    AddrV2 = "addrv2", max ADDRV2_MAX;
    /// A transaction.
    Tx = "tx", max MAX_PAYLOAD_BYTES;
    /// A block.
    Block = "block", max MAX_PAYLOAD_BYTES;
    /// BIP37 filter load (oni offers no bloom filters: disconnects, as Core without NODE_BLOOM).
    FilterLoad = "filterload", max compact_size_len(MAX_BLOOM_FILTER_BYTES as u64) + MAX_BLOOM_FILTER_BYTES as u32 + 9;
    /// BIP37 filter add (as `filterload`).
    FilterAdd = "filteradd", max compact_size_len(MAX_FILTERADD_BYTES as u64) + MAX_FILTERADD_BYTES as u32;
    /// BIP37 filter clear (as `filterload`).
    FilterClear = "filterclear", max 0;
    /// BIP157 filters request (oni serves no compact filters: disconnects, as Core without
    /// NODE_COMPACT_FILTERS): filter type, start height, stop hash.
    GetCFilters = "getcfilters", max 1 + 4 + 32;
    /// BIP157 filter headers request (as `getcfilters`).
    GetCFHeaders = "getcfheaders", max 1 + 4 + 32;
    /// BIP157 checkpoint request (as `getcfilters`): filter type, stop hash.
    GetCFCheckpt = "getcfcheckpt", max 1 + 32;
    /// Feature negotiation of protocol 70017 (Core 31): an id of 4 to 80 bytes and up to 512 bytes
    /// of data. oni speaks 70016, so a peer must not send it (Core's rule; see the handshake).
    Feature = "feature", max 1 + 80 + 3 + 512;
    /// BIP152 compact block: header, nonce, short ids, prefilled transactions.
    CmpctBlock = "cmpctblock", max MAX_PAYLOAD_BYTES;
    /// BIP152 request for a compact block's missing transactions: block hash and up to 65,536
    /// differential indexes of at most 3 bytes each (more cannot be valid).
    GetBlockTxn = "getblocktxn", max 32 + 5 + 3 * 65_536;
    /// BIP152 answer to `getblocktxn`: block hash and the transactions asked for.
    BlockTxn = "blocktxn", max MAX_PAYLOAD_BYTES;
}

impl Command {
    /// The 12-byte NUL-padded name for a frame header.
    pub fn name_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        let name = self.name().as_bytes();
        out[..name.len()].copy_from_slice(name);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_and_fits() {
        for c in Command::ALL {
            if c == Command::Unknown {
                continue;
            }
            assert!(c.name().len() <= 12);
            assert_eq!(Command::from_name_bytes(c.name().as_bytes()), c);
            assert_eq!(Command::from_padded(&c.name_bytes()), c);
            assert!(c.max_payload() <= MAX_PAYLOAD_BYTES);
        }
        assert_eq!(Command::ALL[Command::Unknown as usize], Command::Unknown);
        assert_eq!(Command::from_name_bytes(b"frobnicate"), Command::Unknown);
        assert_eq!(Command::from_padded(&pad("frobnicate")), Command::Unknown);
        assert_eq!(Command::from_padded(&pad("pin")), Command::Unknown);
    }

    #[test]
    fn payload_bounds_are_core_sized() {
        assert_eq!(Command::Inv.max_payload(), 1_800_003);
        assert_eq!(Command::Headers.max_payload(), 162_003);
        assert_eq!(Command::Ping.max_payload(), 8);
    }
}
