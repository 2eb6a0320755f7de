//! Test and benchmark support: a real server on a loopback port ([`harness`]) and simulated
//! field devices that speak the sync protocol ([`device`]), and fleets of them syncing at once
//! ([`fleet`]).

pub mod device;
pub mod fleet;
pub mod harness;
