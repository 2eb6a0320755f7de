//! SQLite, the embedded default: a file of its own in the test's directory.

use outpost_server::store::Store;

/// The store called `name` in `dir`, made empty at the current schema on first open and
/// opened as it is after that (the key files sit in `dir` beside it).
pub fn open_in(dir: &std::path::Path, name: &str) -> Store {
    Store::open(&dir.join(format!("{name}.db"))).unwrap()
}

#[path = "suite/mod.rs"]
mod suite;
