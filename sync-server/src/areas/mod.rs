//! Areas: the location tree (regions, districts, villages) and the `Scope` every read of the
//! registry takes. Every other domain builds on it; it builds on none of them.

pub mod store;
