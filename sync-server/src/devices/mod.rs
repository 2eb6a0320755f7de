//! Field devices and beneficiary cards: enrolment codes, devices, revocation, the programme
//! key and cards (`store`), printable card sheets (`cards`, pure), and the supervisors'
//! endpoints (`http`). The device protocol itself is `crate::sync`.

pub mod cards;
pub mod http;
pub mod store;
