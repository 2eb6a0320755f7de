//! The device sync protocol (`/sync/v1`): the endpoints (`http`), merged record documents
//! and replica pages (`store`), and the thread that merges uploads several batches per commit
//! (`ingest`).

pub mod http;
pub mod ingest;
pub mod store;
