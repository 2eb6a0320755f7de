//! The audit log over HTTP (`http`); the append-only, hash-chained log itself is
//! `store::audit`.

pub mod http;
