//! The store's conformance suite: what the registry, the office's rules and sync's storage
//! must do, written once against the store's seam (`Store`, its read and write handles and
//! each domain's store functions) and run against every backend, the way matrix-rust-sdk runs
//! one integration suite against each of its stores.
//!
//! A backend is a module here that says how a test gets a store of its own (`open_in`) and
//! then takes the whole suite (`suite/`) unchanged. A suite test never reads a backend's SQL
//! or files; what only one backend can show is tested beside it (`tests/sqlite.rs`).

mod sqlite;
