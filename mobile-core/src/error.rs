//! The one error the core returns, across the FFI boundary too.
//!
//! Each variant is something the app can act on (ask for the PIN again, show the amount still
//! due, tell the agent to sync); the `Display` text is a sentence a field agent can read, which
//! is also what Kotlin shows as the exception's message.

use outpost_proto::auth::CardError;

/// Every way a command can fail. Nothing is written when a command fails. Named for Kotlin,
/// where uniffi turns it into `OutpostException` (a bare `Error` would become `Exception`).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum OutpostError {
    #[error("this phone is not enrolled yet: enrol it with a code from your supervisor")]
    NotEnrolled,
    #[error("unlock the app with your PIN first")]
    LoginRequired,
    #[error("wrong PIN: {attempts_left} attempts left before the app locks")]
    WrongPin { attempts_left: u32 },
    #[error("too many wrong PINs: try again in {retry_after_seconds} seconds")]
    PinLocked { retry_after_seconds: u64 },
    #[error("the database key does not open this database")]
    WrongDatabaseKey,
    #[error("{what} not found on this phone")]
    NotFound { what: String },
    #[error("already paid on this phone at {paid_at}: pay again only with an override reason")]
    AlreadyPaid { paid_at: String },
    #[error("the beneficiary is {status}, not ACTIVE: nothing can be paid or handed out")]
    NotActive { status: String },
    #[error("{name} may not collect for this beneficiary")]
    NotAllowedCollector { name: String },
    #[error("{asked} {currency} is more than the {due} {currency} still due (minor units)")]
    OverEntitlement {
        asked: i64,
        due: i64,
        currency: String,
    },
    #[error(
        "{asked} {currency} is more than the {in_hand} {currency} in your cash float (minor units)"
    )]
    OverFloat {
        asked: i64,
        in_hand: i64,
        currency: String,
    },
    #[error("{asked} of {item} is more than the {in_hand} in your stock")]
    OutOfStock {
        item: String,
        asked: i64,
        in_hand: i64,
    },
    #[error("card refused: {reason}")]
    CardRefused { reason: String },
    #[error("already recorded: {what}")]
    AlreadyRecorded { what: String },
    #[error("{what}: sync this phone first")]
    NotSyncedYet { what: String },
    #[error("{reason}")]
    Invalid { reason: String },
    /// Beyond the bounds of one record (`outpost_proto::records::bounds`), which the server
    /// would refuse: shorten the text or open a new record.
    #[error("{reason}: shorten it, or record a new one")]
    RecordTooLarge { reason: String },
    #[error("cannot reach the server: {reason}")]
    Network { reason: String },
    #[error("the server refused ({code}): {reason}")]
    ServerRefused { code: String, reason: String },
    #[error("this phone was revoked by the office and its data removed: {reason}")]
    Revoked { reason: String },
    #[error("sync cancelled; everything done so far is kept")]
    Cancelled,
    #[error("the phone's storage is full: free some space; nothing was lost")]
    StorageFull,
    #[error("storage error: {reason}")]
    Storage { reason: String },
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

pub type Error = OutpostError;
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::Invalid {
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Error {
        Error::NotFound { what: what.into() }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::StorageFull,
            Some(ErrorCode::NotADatabase) => Error::WrongDatabaseKey,
            _ => Error::Storage {
                reason: e.to_string(),
            },
        }
    }
}

impl From<outpost_proto::records::RecordError> for Error {
    fn from(e: outpost_proto::records::RecordError) -> Error {
        match e {
            e @ outpost_proto::records::RecordError::TooLarge(_) => Error::RecordTooLarge {
                reason: e.to_string(),
            },
            e => Error::invalid(e.to_string()),
        }
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Error {
        Error::Internal {
            reason: format!("record document: {e}"),
        }
    }
}

impl From<CardError> for Error {
    fn from(e: CardError) -> Error {
        Error::CardRefused {
            reason: e.to_string(),
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Error {
        // The chain holds the useful part (connection refused, timed out, certificate).
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        Error::Network { reason }
    }
}
