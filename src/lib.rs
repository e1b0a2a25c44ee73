//! oni: the shell around [`oni_systems`]. It owns sockets, threads, the wall clock and disk; the
//! pure core owns every decision.
//!
//! # Layout
//! - [`bridge`]: tokio listener and dialer, one reader and one writer task per connection.
//! - [`node`]: the world loop on its own thread, and [`node::NodeHandle`] to dial, query and stop it;
//!   [`node::seeds`]: DNS and fixed seeds, for an empty address book.
//! - [`chaingen`]: a heavy regtest chain made on the spot, for IBD measurements.
//! - [`cli`]: the `oni` command line (`node`, `dump`, `scenario`; `--conf` files).
//! - [`store`]: LMDB (heed): bans, the address book; [`lmdb_pages`]: LMDB's mapped pages out of
//!   the RSS after a commit.
//! - [`coins`]: the chain's coins for the mempool (LMDB, kept in step with the kernel) and Core's
//!   script engine as the pool's verifier.
//! - [`scenario`]: RON attack scenarios, the deterministic simulator, bots, expectations, report.
//! - [`http`]: the bounded HTTP/1.1 server both operator endpoints use; [`rpc`]: Core-shaped
//!   JSON-RPC over it; [`dump`]: the component dump; [`telemetry`]:
//!   Prometheus text and tick timings.

// Every public item says why it exists, as in the core.
#![warn(missing_docs)]

pub mod allocator;
pub mod bridge;
pub mod chaingen;
pub mod cli;
pub mod coins;
pub mod dump;
pub mod http;
pub mod lmdb_pages;
pub mod node;
pub mod rpc;
pub mod scenario;
pub mod store;
pub mod telemetry;
pub mod validation;
