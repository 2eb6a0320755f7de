//! Four-eyes tasks: `policy` says who may decide what and when a task is done (pure);
//! `http` lists tasks and takes decisions. The engine that opens, decides and hands decided
//! tasks to their domain's hook is `store::tasks`.

pub mod http;
pub mod policy;
