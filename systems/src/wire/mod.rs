//! The v1 wire protocol: frame header, per-command payload bounds, strict bounded decode and
//! in-place encode. Pure functions over byte slices; the shell's reader and the simulator's pipes
//! both frame through [`FrameSplitter`].

pub mod addr;
pub mod block;
mod checksum;
mod command;
pub mod compact;
mod error;
mod frame;
mod header;
pub mod headers;
pub mod inv;
mod message;
mod network;
pub mod reader;
pub mod tx;
pub mod v2;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod rust_bitcoin_tests;
pub mod version;

pub use addr::{AddrEntry, AddrV2Addr, AddrV2Entry, AddrV2List};
pub use block::Block;
pub use checksum::{checksum, sha256d, sha256d_parts};
pub use command::*;
pub use compact::{BlockTxn, BlockTxnRequest, CmpctBlock, ShortIdKeys};
pub use error::{DecodeError, HeaderError};
pub use frame::{skips_payload, FrameSplitter, RawFrame};
pub use header::{FrameHeader, HEADER_LEN};
pub use headers::{HeaderList, Locator};
pub use inv::{InvList, InvType, Inventory};
pub use message::{encode_frame_with, Message};
pub use network::Network;
pub use tx::{Tx, TxSpan};
pub use version::{NetAddr, Version, PROTOCOL_VERSION};

/// Service bits (Core's protocol.h).
pub mod services {
    /// Serves the full chain.
    pub const NODE_NETWORK: u64 = 1;
    /// BIP37 bloom filters.
    pub const NODE_BLOOM: u64 = 1 << 2;
    /// Serves witness data (BIP144).
    pub const NODE_WITNESS: u64 = 1 << 3;
    /// Serves compact filters (BIP157).
    pub const NODE_COMPACT_FILTERS: u64 = 1 << 6;
    /// Serves the last 288 blocks (BIP159).
    pub const NODE_NETWORK_LIMITED: u64 = 1 << 10;
    /// Speaks BIP324 v2 transport.
    pub const NODE_P2P_V2: u64 = 1 << 11;
}
