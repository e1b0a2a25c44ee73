//! One file per system. Their order is stated once, in [`crate::schedule`].

mod addr_relay;
mod admission;
mod connections;
mod decode;
mod discipline;
mod egress;
pub mod eviction;
mod handshake;
mod ingest;
mod ping;
mod scoring;
mod teardown;
mod telemetry;

pub use addr_relay::{addr_relay, AddrResponseCache};
pub use admission::admission;
pub use connections::{connections, REQUIRED_SERVICES};
pub use decode::decode;
pub use discipline::discipline;
pub use egress::egress;
pub use handshake::{handshake, is_routable};
pub use ingest::ingest;
pub use ping::ping;
pub use scoring::scoring;
pub use teardown::teardown;
pub use telemetry::telemetry;

#[cfg(test)]
mod peer_manager_tests;

#[cfg(test)]
mod limits_tests;
