//! The chain as the P2P layer sees it: header validation (proof of work, retarget, time, version
//! rules per network), the header tree with best-chain choice and reorgs, the low-work header
//! spam defense, sync configuration and per-peer sync state, and the boundary with the block
//! validator and block store that the shell runs (Core's engine through bitcoinkernel).
//!
//! Everything here is pure: the systems in [`crate::systems`] (headers_sync, block_download,
//! serve_blocks) drive it.

pub mod compact_relay;
pub mod params;
pub mod pow;
pub mod presync;
pub mod reconstruct;
pub mod sync;
#[cfg(test)]
pub mod test_vectors;
pub mod tree;
pub mod u256;
pub mod validation;

pub use compact_relay::{CompactDownload, CompactRelay};
pub use params::ChainParams;
pub use presync::HeadersPresync;
pub use sync::{
    BlockRelay, Ibd, PeerBlocks, PeerChain, Requested, ServeAs, ServeQueue, ServeRequest, SyncConfig, SyncState,
};
pub use tree::{BlockIdx, HeaderInvalid, HeaderTree};
pub use validation::{
    BlockData, BlockRead, BlockReadInbox, BlockReads, InstantValidator, RejectReason, ValidateBlock, ValidationEvent,
    ValidationInbox, ValidationQueue,
};
