//! oni: the shell around [`oni_systems`]. It owns sockets, threads, the wall clock and disk; the
//! pure core owns every decision.
//!
//! # Layout
//! (filled in as the shell's modules land: bridge, node loop, store, rpc, scenario runner)
pub mod store;
pub mod validation;
