//! One file per system. Their order is stated once, in [`crate::schedule`].

mod addr_relay;
mod admission;
mod block_announce;
mod block_download;
mod compact_blocks;
mod compact_hb;
mod connections;
mod decode;
mod discipline;
mod egress;
pub mod eviction;
mod handshake;
pub(crate) mod headers_sync;
mod ingest;
pub mod inv_filter;
mod ping;
mod scoring;
mod serve_blocks;
mod serve_txs;
mod teardown;
mod telemetry;
mod tx_accept;
mod tx_announce;
mod tx_request;

pub use addr_relay::addr_relay;
pub use admission::admission;
pub use block_announce::{block_announce, MAX_BLOCKS_TO_ANNOUNCE};
pub use block_download::block_download;
pub use compact_blocks::compact_blocks;
pub use compact_hb::compact_hb;
pub use connections::{connections, has_required_services, REQUIRED_SERVICES};
pub use decode::decode;
pub use discipline::discipline;
pub use egress::egress;
pub use handshake::{handshake, is_routable};
pub use headers_sync::headers_sync;
pub use ingest::ingest;
pub use inv_filter::inv_filter;
pub use ping::ping;
pub use scoring::scoring;
pub use serve_blocks::{block_request_allowed, serve_blocks, strip_witness, STALE_RELAY_AGE_LIMIT_S};
pub use serve_txs::{serve_txs, GETDATA_QUEUE_MAX};
pub use teardown::teardown;
pub use telemetry::telemetry;
pub use tx_accept::tx_accept;
pub use tx_announce::*;
pub use tx_request::tx_request;

#[cfg(test)]
mod peer_manager_tests;
#[cfg(test)]
mod sync_test_util;

#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod transport_tests;

#[cfg(test)]
mod tx_relay_tests;

#[cfg(test)]
pub(crate) mod mempool_relay_tests;
