//! The registry: people, households and beneficiaries. `import` reads individual uploads
//! into checked rows (pure); `http` serves locations, people, households, beneficiaries and
//! imports. Their storage is `store::registry` (and `store::areas` for locations).

pub mod http;
pub mod import;
