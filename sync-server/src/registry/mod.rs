//! Registry rules with no I/O: reading individual uploads, checking plans' extra fields, and
//! computing what a beneficiary is due. The store applies them.

pub mod card_sheet;
pub mod import;
pub mod rules;
pub mod schema;
