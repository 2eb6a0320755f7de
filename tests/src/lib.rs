//! Test and benchmark support: a real server on a loopback port ([`harness`]) and simulated
//! field devices that speak the sync protocol ([`device`]), and fleets of them syncing at once
//! ([`fleet`]), and a proxy that cuts their connections on demand ([`proxy`]).

pub mod device;
pub mod fleet;
pub mod harness;
pub mod phone;
pub mod proxy;
