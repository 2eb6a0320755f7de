//! Benefit plans: their extra-field schemas (`schema`) and calculation rules (`rules`), both
//! pure, and `http` for plans, goods items, cycles, work projects and timesheets. Their
//! storage is `store::plans` and `store::works`.

pub mod http;
pub mod rules;
pub mod schema;
