//! Field devices and beneficiary cards: `cards` lays out printable card sheets (pure);
//! `http` serves the supervisors' device, enrolment, card and quarantine endpoints. Their
//! storage is `store::devices`; the device protocol itself is `crate::sync`.

pub mod cards;
pub mod http;
