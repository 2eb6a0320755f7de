//! The device sync protocol (`/sync/v1`): `http` answers hello, enrolment, replica, push
//! and changes (protobuf, errors as `ErrorReply`); `ingest` merges uploads on one thread,
//! several batches per commit. Storage is `store::records` and `store::replica`.

pub mod http;
pub mod ingest;
