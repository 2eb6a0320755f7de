//! The field device core: the encrypted local replica of a device's assignment, offline
//! records (payouts, distributions, timesheets, verifications, grievances) as automerge
//! documents, the sync client, and the uniffi API the Android app calls.
//!
//! It is built on the vocabulary of `outpost-proto` (money, statuses and their transitions),
//! so the device refuses exactly what the server would. The device side arrives with the
//! mobile-core work; this crate is in the workspace now so the layout is the final one.
