//! Test and benchmark support beside the test kit (`tests/kit`, which starts the server):
//! simulated field devices that speak the sync protocol ([`device`]), fleets of them syncing
//! at once ([`fleet`]), and phones that are the real mobile core's command line ([`phone`]).

pub mod device;
pub mod fleet;
pub mod phone;
