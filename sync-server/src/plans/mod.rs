//! Benefit plans: plans, payment cycles and goods items (`store`), their extra-field schemas
//! (`schema`) and calculation rules (`rules`), both pure, and their endpoints (`http`). Cash
//! for work is `crate::works`.

pub mod http;
pub mod rules;
pub mod schema;
pub mod store;
