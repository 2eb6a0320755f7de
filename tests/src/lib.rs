//! Test and benchmark support: a real server on a loopback port ([`harness`]) and simulated
//! field devices that speak the sync protocol ([`device`]).

pub mod device;
pub mod harness;
