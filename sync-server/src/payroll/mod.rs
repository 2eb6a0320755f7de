//! Payrolls over HTTP (`http`): generation, lists, entitlements. Their storage and
//! generation are `store::payroll`; approval goes through `crate::tasks`.

pub mod http;
