//! The suite every backend runs: each test opens its stores with the backend's `open_in`.

use super::open_in;

mod office;
mod registry;
mod store;
mod sync;
