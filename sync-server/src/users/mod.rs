//! Staff accounts, log-ins and API clients: their storage (`store`: accounts and tokens,
//! `store::sessions` for log-ins and web sessions, `store::clients` for API clients), who is
//! calling (`caller`), what a client may do on each route (`permissions`), and the endpoints
//! (`http` for tokens, accounts and log-in resets, `clients` for API clients).

pub mod caller;
pub mod clients;
pub mod http;
pub mod permissions;
pub mod store;
