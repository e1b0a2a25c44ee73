//! oni-systems: the pure core of oni, a Bitcoin P2P node built as an ECS.
//!
//! # Layout
//! - [`chain`]: header validation, the header tree, sync state, the validator boundary.
//! - [`wire`]: frame header, per-command payload bounds, strict bounded decode, in-place encode.
//! - [`components`]: what a peer entity is made of (link, queues, stats, score, negotiated state).
//! - [`resources`]: node-wide state: config and limits, clock, seeded rng, metrics, IO inbox/outbox.
//! - [`systems`]: one file per system; [`schedule`] states their one order.
//! - [`harness`]: a World with no IO and domain verbs, for tests, benches and the simulator.
//!
//! Nothing here opens a socket, spawns a thread, reads the wall clock or touches disk: the shell
//! (crate `oni`) feeds events into [`resources::Inbox`], runs the schedule, and carries out
//! [`resources::Outbox`]. The simulator does the same on a virtual clock, so one seed replays a run.
#![warn(missing_docs)]
// ECS queries are tuples of components by design; naming each one would hide what a system touches.
#![allow(clippy::type_complexity)]
// A system names every resource it touches as a parameter; that list is its contract, not a smell.
#![allow(clippy::too_many_arguments)]

/// A closed set of reasons with a stable label each (metrics, logs, RPC): the enum with its
/// derives, `ALL` (in order: a variant's index is `as usize`), `COUNT` (counter arrays) and
/// `label()`. Defined before the modules so every one of them can use it.
macro_rules! labelled {
    ($(#[$m:meta])* $name:ident { $( $(#[$d:meta])* $v:ident = $label:literal, )* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name { $( $(#[$d])* $v, )* }

        impl $name {
            /// Every variant; the index of each is `as usize`.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// Number of variants: the length of counter arrays.
            pub const COUNT: usize = [$($label,)*].len();
            /// Stable label for metrics, logs and RPC.
            pub const fn label(self) -> &'static str {
                match self { $($name::$v => $label,)* }
            }
        }
    };
}

pub mod chain;
pub mod components;
pub mod harness;
pub mod mempool;
pub mod resources;
pub mod schedule;
pub mod systems;
pub mod wire;
