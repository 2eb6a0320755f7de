//! What every handler shares: the application state, database work off the async threads,
//! and the log-in check both the API and the web run. [`limits`] caps the work done before
//! a caller is known.

pub mod limits;

use std::sync::Arc;

use crate::tasks::store::Hooks;
use crate::{
    Error, Result,
    devices::store::ProgrammeKey,
    store::{Store, WriteTx},
    sync::ingest::Ingest,
    users::store::{User, sessions},
};

/// The web session's cookie: the limiter counts a request carrying one as credentialed.
pub const SESSION_COOKIE: &str = "outpost_session";

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Signs beneficiary cards; its public half goes to devices at enrolment.
    pub programme: Arc<ProgrammeKey>,
    /// Merges device uploads, several batches per commit.
    pub ingest: Arc<Ingest>,
    /// Reconciliation reports the web pages reuse until something they read changes.
    pub reports: Arc<crate::reconciliation::cache::ReportCache>,
    /// Session cookies are `Secure` when the server speaks HTTPS.
    pub secure_cookies: bool,
    /// Caps on unauthenticated work in progress (`app::limits`).
    pub limits: Arc<limits::Limits>,
}

impl AppState {
    pub fn new(store: Store, programme: ProgrammeKey) -> AppState {
        let store = Arc::new(store);
        AppState {
            ingest: Arc::new(Ingest::start(store.clone())),
            store,
            programme: Arc::new(programme),
            reports: Arc::default(),
            secure_cookies: false,
            limits: Arc::default(),
        }
    }
}

/// Database work running at once. Beyond this many, requests wait in line without holding a
/// blocking thread each (a burst of devices would otherwise start hundreds of threads, all
/// waiting on the same few cores).
static DB_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);

/// Runs blocking database work off the async threads.
pub async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = state.store.clone();
    let slot = DB_SLOTS
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    // The slot goes with the work: a request dropped half-way (the client left) does not
    // free it while its database work still runs.
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        f(&store)
    })
    .await
    .map_err(|e| Error::Internal(format!("database task failed: {e}")))?
}

/// Checks a log-in's password in three steps, so that argon2 (slow on purpose, and what a
/// flood of bad log-ins costs) holds neither the writer nor one of the database slots device
/// uploads and approvals wait for: the hash is read on a reader, verified on a blocking thread
/// with nothing held, and the outcome recorded in one small write where `then` runs for a
/// right password. The hash runs under [`limits::Hashing`], so however many clients start a
/// log-in and hang up, only so many hashes run at once.
pub async fn check_password<T: Send + 'static>(
    state: &AppState,
    username: String,
    password: String,
    address: String,
    then: impl FnOnce(&WriteTx, &User) -> Result<T> + Send + 'static,
) -> Result<sessions::Password<T>> {
    let stored = db(state, move |s| sessions::Stored::read(s, &username)).await?;
    let verified = state
        .limits
        .hashing
        .run(move || stored.verify(&password))
        .await?;
    db(state, move |s| {
        s.write(|tx| verified.record(tx, &address, then))
    })
    .await
}

/// Every domain registers what applies its tasks' decisions here, the one place that knows
/// them all, so the task engine imports none of them.
pub fn task_hooks() -> Hooks {
    let mut hooks = Hooks::default();
    crate::payroll::store::register_task_hooks(&mut hooks);
    crate::reconciliation::store::register_task_hooks(&mut hooks);
    crate::registry::store::register_task_hooks(&mut hooks);
    crate::sync::store::records::register_task_hooks(&mut hooks);
    crate::works::store::register_task_hooks(&mut hooks);
    hooks
}

/// The store as the server runs it: the database with every domain's services (the task
/// hooks). Defined here, above the domains, so the store itself knows none of them.
impl Store {
    /// Opens (creating if needed) and migrates the database at `path`, with the task hooks.
    ///
    /// Refuses to open when the database holds TOTP secrets sealed with a key that is not
    /// there (`login-secrets.key` missing, or another one): a new key would make every staff
    /// log-in fail. The message says how to recover (restore the file, or
    /// [`Store::open_to_reset_logins`] and reset each account's authenticator).
    pub fn open(path: &std::path::Path) -> Result<Store> {
        let mut store = Store::open_bare(path)?;
        store.provide(task_hooks());
        Ok(store)
    }

    /// Opens the database even when its sealed TOTP secrets cannot be opened (creating a key
    /// if there is none), so `reset-login USER --totp` can clear them: the way back when the
    /// key file is lost. Everything else should use [`Store::open`].
    pub fn open_to_reset_logins(path: &std::path::Path) -> Result<Store> {
        let mut store = Store::open_bare_to_reset_logins(path)?;
        store.provide(task_hooks());
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    /// Every task kind has a domain that applies its decisions.
    #[test]
    fn every_task_kind_is_applied_by_some_domain() {
        assert_eq!(super::task_hooks().missing(), vec![]);
    }
}
