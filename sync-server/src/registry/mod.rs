//! The registry: individuals, households, beneficiaries and their lifecycle, imports and
//! office status requests (`store`); reading individual uploads into checked rows (`import`,
//! pure); endpoints for locations, people, households, beneficiaries and imports (`http`).
//! Locations and scopes are `crate::areas`.

pub mod http;
pub mod import;
pub mod store;
