//! The vocabulary a field device and the server share.
//!
//! Everything here is pure data and rules, with no I/O, so the device core and the server agree
//! on them by construction: money, the status machines of beneficiaries and payrolls, and the
//! household roles the registry replicates down to devices. The sync wire messages join this
//! crate with the sync protocol.

mod money;
mod status;

pub use money::{Currency, Money, MoneyError};
pub use status::{
    BeneficiaryStatus, EntitlementStatus, PayrollStatus, RecipientKind, Relationship,
    TransitionError, UnknownName,
};
