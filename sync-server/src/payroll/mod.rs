//! Payrolls: generation for a plan and cycle, reads, and the hooks that apply approvals
//! (`store`); their endpoints (`http`). Approval itself goes through `crate::tasks`.

pub mod http;
pub mod store;
