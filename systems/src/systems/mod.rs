//! One file per system. Their order is stated once, in [`crate::schedule`].

mod decode;
mod egress;
mod handshake;
mod ingest;
mod ping;
mod scoring;
mod teardown;
mod telemetry;

pub use decode::decode;
pub use egress::egress;
pub use handshake::{handshake, is_routable};
pub use ingest::ingest;
pub use ping::ping;
pub use scoring::scoring;
pub use teardown::teardown;
pub use telemetry::telemetry;
