//! The vocabulary a field device and the server share.
//!
//! Everything here is pure data and rules, with no I/O, so the device core and the server agree
//! on them by construction: money, the status machines of beneficiaries and payrolls, and the
//! household roles the registry replicates down to devices; the sync wire protocol
//! ([`wire`]), request signatures and beneficiary cards ([`auth`]), and the schema of the field
//! records that travel as automerge documents ([`records`]).

pub mod auth;
mod money;
pub mod records;
mod status;
pub mod wire;

pub use money::{Currency, MAX_PAYMENT_MINOR, Money, MoneyError};
pub use status::{
    BeneficiaryStatus, EntitlementStatus, PayrollStatus, RecipientKind, Relationship,
    TransitionError, UnknownName,
};
