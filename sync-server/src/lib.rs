//! The Outpost central registry and sync server.
//!
//! - [`store`] owns the SQLite database: every query and write of the registry lives there.
//! - [`registry`] holds the pure rules the store applies: import file parsing, plans'
//!   extra-field schemas, calculation rules.
//! - [`api`] is the HTTP surface: the JSON API under `/api/v1` and the device sync protocol
//!   under `/sync/v1`; [`server`] serves it over HTTP or HTTPS; [`demo`] is the demo programme.

pub mod api;
pub mod app;
pub mod approvals;
pub mod demo;
mod error;
pub mod reconcile;
pub mod registry;
pub mod router;
pub mod server;
pub mod store;
pub mod web;

pub use error::{Error, FieldError, Result, StorageFault};
