//! The field device core: the encrypted local replica of a device's assignment, offline
//! records (payouts, distributions, timesheets, verifications, grievances, contact updates) as
//! automerge documents, the sync client, and the uniffi API the Android app calls.
//!
//! It is built on `outpost-proto` (money, statuses, the record documents and the wire
//! protocol), so the device refuses what the server would refuse, before it is written.
//!
//! - [`api::Outpost`] is the whole surface: the app, the field CLI and the tests use it.
//! - [`store`] is the SQLCipher database: replica, record documents, materialised rows.
//! - [`operations`] holds the offline rules; [`sync`] the client.

pub mod api;
pub mod error;
pub mod operations;
pub mod store;
pub mod sync;
pub mod types;

pub use api::Outpost;
pub use error::{Error, Result};

uniffi::setup_scaffolding!();
