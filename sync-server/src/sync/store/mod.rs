//! The sync protocol's storage: record documents merged from uploads (`records`) and the
//! replica pages devices download (`replica`).

pub mod records;
pub mod replica;
