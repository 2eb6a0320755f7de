//! Staff accounts, log-ins and API clients: `http` serves tokens, accounts, log-in resets
//! and `clients` the integrations' API clients (and which permission each route needs of
//! one). Their storage is `store::users`, `store::sessions` and `store::clients`.

pub mod clients;
pub mod http;
