//! The Outpost central registry and sync server, one folder per domain.
//!
//! - [`store`] is the storage seam: the SQLite database behind opaque read and write
//!   handles, every query and write by domain, migrations, the task engine.
//! - The domains ([`registry`], [`plans`], [`payroll`], [`tasks`], [`reconciliation`],
//!   [`devices`], [`sync`], [`users`], [`audit`]) hold their pure rules and their HTTP
//!   handlers; [`web`] holds the supervisors' pages.
//! - [`app`] is what every handler shares (state, limits); [`router`] assembles every route;
//!   [`api`] is the JSON API's shared plumbing; [`server`] serves the router over HTTP or
//!   HTTPS; [`demo`] is the demo programme.

pub mod api;
pub mod app;
pub mod areas;
pub mod audit;
pub mod dedup;
pub mod demo;
pub mod devices;
mod error;
pub mod payroll;
pub mod plans;
pub mod reconciliation;
pub mod registry;
pub mod router;
pub mod server;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod users;
pub mod web;
pub mod works;

pub use error::{Error, FieldError, Result, StorageFault};
