//! Four-eyes tasks: who may decide what and when a task is done (`policy`, pure), the engine
//! that opens, decides and completes tasks and hands each completed one to the hook its
//! domain registered (`store`), and the inbox endpoints (`http`).

pub mod http;
pub mod policy;
pub mod store;
