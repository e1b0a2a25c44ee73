//! The validator's events are the world's own (`oni_systems::chain::validation`): plain data, no
//! kernel types, so the worker's verdicts go into the world's inbox unchanged.

pub use oni_systems::chain::validation::{RejectReason, ValidationEvent};
