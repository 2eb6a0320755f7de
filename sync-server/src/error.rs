//! The server's one error type, mapped to HTTP once (in `api`) and to exit codes once (in
//! `main`). Messages are written for the person who sent the request; database and I/O
//! details are logged, never sent.

use serde::Serialize;

use crate::registry::import::{FileError, RowError};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} '{key}' not found")]
    NotFound { what: &'static str, key: String },
    /// The request is well-formed but its content is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Several fields are wrong at once; each is listed.
    #[error("{message}")]
    Fields {
        message: String,
        fields: Vec<FieldError>,
    },
    /// An import found bad rows and wrote nothing.
    #[error("the file has {} bad row(s); nothing was imported", errors.len())]
    ImportRejected { errors: Vec<RowError> },
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Transition(#[from] outpost_proto::TransitionError),
    #[error("{0}")]
    Conflict(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("authentication required")]
    Unauthenticated,
    /// Too much unauthenticated work at once from one address or in total (see
    /// `app::limits`): answered 429 with `Retry-After`.
    #[error("{0}")]
    Busy(String),
    /// The server serves as many of this costly request as it will at once (see
    /// `app::limits::FirstDownloads`): answered 503 with `Retry-After`.
    #[error("{message}")]
    Unavailable { message: String, retry_after: u64 },
    /// The client did not send its request in time (see `app::limits::Timeouts`): answered
    /// 408, and whatever it held is freed.
    #[error("{0}")]
    TimedOut(String),
    #[error("{0}")]
    Forbidden(String),
    /// A device's sync request refused, with the protocol's error code (see `proto/README.md`).
    #[error("{message}")]
    Refused {
        code: outpost_proto::wire::ErrorCode,
        message: String,
    },
    /// The disk holding the database is full: the write was rolled back whole.
    #[error(
        "the server's storage is full; nothing was written; try again once an administrator has made room"
    )]
    StorageFull,
    /// Storage failed in a way that is no fault of the caller's: answered 500 and logged.
    /// The backend's own error stays behind the store seam; its kind and text cross it.
    #[error("storage error ({kind:?}): {detail}")]
    Storage { kind: StorageFault, detail: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of storage failure an [`Error::Storage`] is, whatever database runs underneath
/// (a full disk is [`Error::StorageFull`], which the caller is told about).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// A UNIQUE, CHECK or foreign key constraint refused the write.
    Constraint,
    /// The database was locked by another writer for longer than the store waits.
    Busy,
    /// A stored value could not be read as the type the code expects, or the file is damaged.
    Corrupt,
    Other,
}

/// One field's problem, for forms and JSON bodies.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl Error {
    pub fn not_found(what: &'static str, key: impl ToString) -> Error {
        Error::NotFound {
            what,
            key: key.to_string(),
        }
    }

    pub fn refused(code: outpost_proto::wire::ErrorCode, message: impl Into<String>) -> Error {
        Error::Refused {
            code,
            message: message.into(),
        }
    }

    /// Whether a failed write is a UNIQUE or CHECK constraint, i.e. a conflict the caller
    /// caused rather than a fault of ours.
    pub fn is_constraint(&self) -> bool {
        matches!(
            self,
            Error::Storage {
                kind: StorageFault::Constraint,
                ..
            }
        )
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("stored JSON is unreadable: {e}"))
    }
}
