//! The server's storage: one SQLite file, migrated one step at a time.
//!
//! The rest of the server reaches the database only through the functions of this module's
//! children, which take `&Transaction` when they write and `&Connection` when they only read,
//! so the compiler keeps transaction boundaries honest. The SQL is portable and this API is
//! narrow on purpose: a PostgreSQL backend is to follow behind the same functions.

pub mod audit;
pub mod secrets;

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex,
        mpsc::{self, RecvTimeoutError, SyncSender},
    },
    thread::JoinHandle,
    time::Duration,
};

use chrono::NaiveDate;
use rusqlite::{Connection, OpenFlags, Row, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;

use crate::{Error, Result, error::StorageFault};

/// Each entry upgrades the schema from version `i` to `i + 1`, in one transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_registry.sql"),
    include_str!("migrations/0002_sync.sql"),
    include_str!("migrations/0003_office.sql"),
    include_str!("migrations/0004_generation.sql"),
    include_str!("migrations/0005_login.sql"),
    include_str!("migrations/0006_policies.sql"),
    include_str!("migrations/0007_clients.sql"),
    include_str!("migrations/0008_client_owner.sql"),
    include_str!("migrations/0009_login_reset_by.sql"),
    include_str!("migrations/0010_partitions.sql"),
    include_str!("migrations/0011_dedup.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// One writer and a pool of readers over the same file (WAL lets readers run beside the
/// writer). Long reads never hold up a write, and writes are serialised here rather than by
/// SQLite's busy loop. WAL checkpoints run on a thread of their own, so a commit never waits
/// for the log to be copied into the database.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Reads running now. Bounded: each reader connection keeps its own page cache (up to
    /// 32 MB), and past a few per core more readers only wait on the CPU anyway.
    reading: (Mutex<usize>, std::sync::Condvar),
    checkpointer: Option<Checkpointer>,
    /// Encrypts TOTP secrets at rest; every connection reaches it through SQL functions.
    secrets: std::sync::Arc<secrets::SecretKey>,
    /// What the domains give every write (the task engine's hooks), installed by
    /// [`Store::open`](crate::app) through [`Store::provide`].
    services: Services,
}

/// Values the domains hand to every write transaction by type, so the store carries them
/// without knowing the domains (the task engine finds its hooks here).
#[derive(Default)]
struct Services(std::collections::HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>);

/// The most reads at once; the rest queue for a slot.
const MAX_READERS: usize = 8;

/// The least time between two background checkpoints.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(250);

struct Checkpointer {
    wrote: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let conn = open_connection(path, false)?;
        let (wrote, rx) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(Duration::from_secs(30)) {
                        // PASSIVE never blocks the writer or readers; what it cannot copy now
                        // it copies next time.
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                                tracing::warn!(error = %e, "WAL checkpoint failed");
                            }
                            // Under a stream of small commits, one checkpoint per commit copied
                            // the same pages over and over; a pause lets them gather.
                            std::thread::sleep(CHECKPOINT_PAUSE);
                        }
                        Err(RecvTimeoutError::Disconnected) => {
                            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
                            return;
                        }
                    }
                }
            })?;
        Ok(Checkpointer { wrote, thread })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(Checkpointer { wrote, thread }) = self.checkpointer.take() {
            drop(wrote);
            let _ = thread.join();
        }
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// Refuses to open when the database holds TOTP secrets sealed with a key that is not
    /// there ([`secrets::SecretKey::FILE`] missing, or another one): a new key would make every
    /// staff log-in fail. The message says how to recover (restore the file, or
    /// [`Store::open_to_reset_logins`] and reset each account's authenticator).
    ///
    /// This opens the database alone; `Store::open` (in [`crate::app`]) also provides every
    /// domain's task hooks, and is what the server and the tests use.
    pub fn open_bare(path: &Path) -> Result<Store> {
        Self::open_with(path, false)
    }

    /// Opens the database even when its sealed TOTP secrets cannot be opened (creating a key
    /// if there is none), so `reset-login USER --totp` can clear them: the way back when the
    /// key file is lost. Everything else should use [`Store::open`].
    pub fn open_bare_to_reset_logins(path: &Path) -> Result<Store> {
        Self::open_with(path, true)
    }

    /// Hands `service` to every later write transaction ([`WriteTx::service`]); one per type.
    pub fn provide<T: Send + Sync + 'static>(&mut self, service: T) {
        self.services
            .0
            .insert(std::any::TypeId::of::<T>(), Box::new(service));
    }

    fn open_with(path: &Path, allow_unopenable: bool) -> Result<Store> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut writer = open_connection(path, false)?;
        migrate(&mut writer)?;
        // Beside the database, never inside it (like the programme key).
        let found = secrets::SecretKey::load(dir)?;
        let unopenable = secrets::unopenable(&writer, found.as_ref())?;
        if !unopenable.is_empty() && !allow_unopenable {
            return Err(secrets::refusal(dir, found.is_none(), &unopenable));
        }
        let created = found.is_none();
        let secrets = std::sync::Arc::new(match found {
            Some(key) => key,
            None => secrets::SecretKey::create(dir)?,
        });
        secrets::register(&writer, &secrets)?;
        if created {
            // Enrolment offers sealed with a lost key are only offers: made again on reload.
            writer.execute(
                "UPDATE web_sessions SET pending_totp = NULL WHERE pending_totp LIKE 'v1:%'",
                [],
            )?;
        }
        if secrets::plain_secrets(&writer)? > 0 {
            // Sealing rewrites the rows; secure_delete zeroes the space the plain text leaves,
            // and the checkpoint moves the rewritten pages over the old ones and empties the
            // log, so no copy of a plain secret is left in the files.
            writer.pragma_update(None, "secure_delete", true)?;
            {
                let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate)?;
                secrets::seal_plain_secrets(&tx)?;
                tx.commit()?;
            }
            writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            writer.pragma_update(None, "secure_delete", false)?;
        }
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Store {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            reading: (Mutex::new(0), std::sync::Condvar::new()),
            checkpointer: Some(Checkpointer::start(path)?),
            secrets,
            services: Services::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one IMMEDIATE transaction: committed when `f` returns `Ok`, rolled back
    /// otherwise, so nothing is ever half-written.
    pub fn write<T>(&self, f: impl FnOnce(&WriteTx) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&WriteTx::new(&tx, &self.services))?;
        tx.commit()?;
        if let Some(c) = &self.checkpointer {
            // A full channel means a checkpoint is already due.
            let _ = c.wrote.try_send(());
        }
        Ok(value)
    }

    /// Copies the whole log into the database file now and truncates it (before a backup,
    /// or to measure on a settled database).
    pub fn checkpoint(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    /// Runs `f` on a read-only connection, in one transaction so it sees one snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx) -> Result<T>) -> Result<T> {
        let _slot = ReadSlot::take(&self.reading);
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = open_connection(&self.path, true)?;
                secrets::register(&conn, &self.secrets)?;
                conn
            }
        };
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let value = f(&ReadTx { conn: &tx })?;
            tx.finish()?;
            Ok(value)
        })();
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result
    }
}

/// One snapshot of the database, held while reading: the handle code above the store passes
/// to the store's functions. It offers nothing else, so what is read, and how, stays behind
/// the store's functions whatever database runs underneath.
pub struct ReadTx<'a> {
    conn: &'a Connection,
}

/// One write transaction (a [`ReadTx`] too: reads in it see its own writes), from
/// [`Store::write`], which commits it when the closure returns `Ok`.
pub struct WriteTx<'a> {
    tx: &'a Transaction<'a>,
    read: ReadTx<'a>,
    services: &'a Services,
}

impl<'a> WriteTx<'a> {
    fn new(tx: &'a Transaction<'a>, services: &'a Services) -> WriteTx<'a> {
        WriteTx {
            tx,
            read: ReadTx { conn: tx },
            services,
        }
    }

    /// The service of type `T` the store was given ([`Store::provide`]), if any.
    pub fn service<T: 'static>(&self) -> Option<&T> {
        self.services
            .0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|s| s.downcast_ref())
    }

    /// The SQLite transaction underneath: for the store's own modules, and for tests that
    /// damage a database on purpose. Code above the store never calls it (a test holds it
    /// to that).
    #[doc(hidden)]
    pub fn sqlite(&self) -> &Transaction<'a> {
        self.tx
    }
}

impl WriteTx<'_> {
    /// Runs `f` all-or-nothing inside this transaction: its writes stay when it returns `Ok`
    /// and are undone when it returns `Err`, leaving the transaction's other writes as they
    /// were. The inner result is `f`'s; the outer `Err` is the transaction's own failure
    /// (a full disk undoes the whole transaction, so it is never only `f`'s).
    pub fn all_or_nothing<T>(&self, f: impl FnOnce(&WriteTx) -> Result<T>) -> Result<Result<T>> {
        self.tx.execute_batch("SAVEPOINT all_or_nothing")?;
        match f(self) {
            Err(Error::StorageFull) => Err(Error::StorageFull),
            Ok(value) => {
                self.tx.execute_batch("RELEASE all_or_nothing")?;
                Ok(Ok(value))
            }
            Err(e) => {
                self.tx
                    .execute_batch("ROLLBACK TO all_or_nothing; RELEASE all_or_nothing")?;
                Ok(Err(e))
            }
        }
    }
}

impl<'a> std::ops::Deref for WriteTx<'a> {
    type Target = ReadTx<'a>;

    fn deref(&self) -> &ReadTx<'a> {
        &self.read
    }
}

impl ReadTx<'_> {
    /// The SQLite connection underneath: for the store's own modules, and for tests that
    /// read or damage a database on purpose. Code above the store never calls it (a test
    /// holds it to that).
    #[doc(hidden)]
    pub fn sqlite(&self) -> &Connection {
        self.conn
    }

    /// How many rows `table` holds: how the conformance suite proves that a refused write
    /// wrote nothing, on any backend, without reading a table's SQL itself. Only a table the
    /// migrations made is counted; any other name is refused.
    #[doc(hidden)]
    pub fn row_count(&self, table: &str) -> Result<i64> {
        let known: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )?;
        if !known || !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(Error::Invalid(format!("no table {table:?} to count")));
        }
        Ok(self
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    }
}

/// One of the [`MAX_READERS`] read slots, given back on drop (a panicking read too).
struct ReadSlot<'a>(&'a (Mutex<usize>, std::sync::Condvar));

impl<'a> ReadSlot<'a> {
    fn take(slots: &'a (Mutex<usize>, std::sync::Condvar)) -> ReadSlot<'a> {
        let (count, freed) = slots;
        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= MAX_READERS {
            n = freed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
        ReadSlot(slots)
    }
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        let (count, freed) = self.0;
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        freed.notify_one();
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // A sync page holds one statement per partition of the device's assignment (a region
    // has a couple of hundred villages), each cached under its own slot: preparing them
    // again on every page was most of what an up-to-date device's sync cost.
    conn.set_prepared_statement_cache_capacity(512);
    // Plans do not depend on bound values: otherwise SQLite marks statements whose plan could
    // use a parameter's value, and every re-bind of a cached statement re-prepares it (a
    // fifth of the time of a sync upload went to re-parsing SQL).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // FULL: a committed transaction survives a power cut, which money records need.
    // temp_store MEMORY: statement journals (kept to undo one failed statement inside a
    // transaction) stay off the disk; they were a fifth of an import's time.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -32000; PRAGMA temp_store = MEMORY;",
    )?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // After a checkpoint, a log grown by a bulk write shrinks back to this.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    }
    Ok(conn)
}

/// Upgrades one version at a time, each step in its own transaction. A database newer than
/// this build is refused rather than misread.
fn migrate(conn: &mut Connection) -> Result<()> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::Invalid(format!(
            "the database is at schema version {current}, newer than this server \
             (version {SCHEMA_VERSION}); run a newer outpost-server"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// A column holding an ISO date (YYYY-MM-DD).
pub(crate) fn date_column(r: &Row, i: usize) -> rusqlite::Result<NaiveDate> {
    let s: String = r.get(i)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| conversion_error(i, e))
}

/// A column holding JSON.
pub(crate) fn json_column<T: DeserializeOwned>(r: &Row, i: usize) -> rusqlite::Result<T> {
    serde_json::from_str(&r.get::<_, String>(i)?).map_err(|e| conversion_error(i, e))
}

/// A column holding a serde enum's name as plain text. A value the code does not know is an
/// error, never a silent default: a store that misreads a status is worse than one that fails.
pub(crate) fn text_column<T: DeserializeOwned>(r: &Row, i: usize) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(r.get(i)?)).map_err(|e| conversion_error(i, e))
}

/// [`text_column`] for a nullable column.
pub(crate) fn opt_text_column<T: DeserializeOwned>(
    r: &Row,
    i: usize,
) -> rusqlite::Result<Option<T>> {
    match r.get::<_, Option<String>>(i)? {
        Some(_) => text_column(r, i).map(Some),
        None => Ok(None),
    }
}

fn conversion_error(
    i: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

/// SQLite's errors become the crate's own here, once, so nothing above the store matches on
/// the driver's types: a full disk is [`Error::StorageFull`] (the caller is told), the rest
/// keep their kind and text for the log.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::{Error as E, ErrorCode as C};
        let kind = match &e {
            E::SqliteFailure(f, _) => match f.code {
                C::DiskFull => return Error::StorageFull,
                C::ConstraintViolation => StorageFault::Constraint,
                C::DatabaseBusy | C::DatabaseLocked => StorageFault::Busy,
                C::DatabaseCorrupt | C::NotADatabase => StorageFault::Corrupt,
                _ => StorageFault::Other,
            },
            E::FromSqlConversionFailure(..)
            | E::InvalidColumnType(..)
            | E::IntegralValueOutOfRange(..) => StorageFault::Corrupt,
            _ => StorageFault::Other,
        };
        Error::Storage {
            kind,
            detail: e.to_string(),
        }
    }
}

/// The current time in UTC, as stored (RFC 3339 with its zone).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store seam holds: nothing but the storage modules (`store/` and each domain's
    /// `store.rs` or `store/`) names the driver or reaches through a handle to the SQLite
    /// connection underneath.
    #[test]
    fn nothing_above_the_store_touches_sqlite() {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        assert!(files.len() > 20, "the walk found the sources");
        let mut leaks = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let storage = relative.components().any(|c| c.as_os_str() == "store")
                || relative.file_name().is_some_and(|n| n == "store.rs");
            if storage {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.contains("rusqlite") || line.contains(".sqlite()") {
                    leaks.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "SQLite used outside storage:\n{}",
            leaks.join("\n")
        );
    }

    #[test]
    fn migrates_a_fresh_file_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store = Store::open(&path).unwrap();
        let version: u32 = store
            .read(|c| {
                Ok(c.sqlite()
                    .pragma_query_value(None, "user_version", |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        drop(store);
        // Reopening an up-to-date file is a no-op.
        Store::open(&path).unwrap();

        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = Store::open(&path).err().expect("newer schema refused");
        assert!(err.to_string().contains("newer than this server"), "{err}");
    }

    /// A migration's file number is the schema version it brings a database to: the list only
    /// ever grows at its end, so a database a released server wrote is never migrated twice.
    #[test]
    fn migrations_are_numbered_by_the_version_they_make() {
        let src = include_str!("mod.rs");
        let files: Vec<&str> = src
            .lines()
            .filter_map(|l| l.trim().strip_prefix("include_str!(\"migrations/"))
            .map(|l| &l[..4])
            .collect();
        assert_eq!(files.len(), MIGRATIONS.len());
        for (i, number) in files.iter().enumerate() {
            assert_eq!(number.parse::<usize>().unwrap(), i + 1, "{files:?}");
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations"),
        )
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy()[..4].to_owned())
        .collect();
        on_disk.sort();
        assert_eq!(on_disk, files, "every migration file is in the list");
    }

    /// The database of a server before `0006_policies`, with a rejected and an approved
    /// payroll, upgraded in place: every column of every entitlement comes through the table
    /// rebuild unchanged (each fixture value differs from its default and from its neighbour's,
    /// so a column mix-up shows), the rejected entitlement no longer holds its place in the
    /// cycle and its open approval is withdrawn, the approved one still does, and the index and
    /// triggers on entitlements are back.
    #[test]
    fn an_existing_database_upgrades_to_policies_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.starts_with("-- Policies of the security review"))
            .unwrap();
        let id = |n: u64| uuid::Uuid::from_u64_pair(0, n);
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
            for (version, sql) in MIGRATIONS[..before].iter().enumerate() {
                let tx = conn.transaction().unwrap();
                tx.execute_batch(sql).unwrap();
                tx.pragma_update(None, "user_version", version as u32 + 1)
                    .unwrap();
                tx.commit().unwrap();
            }
            conn.execute_batch(&format!(
                "INSERT INTO locations (id, code, name, level, path) VALUES (x'{l}', 'R', 'R', 'REGION', 'R');
                 INSERT INTO users (id, username, display_name, role, password_hash, created_at)
                     VALUES (x'{u}', 'old.admin', 'Old', 'ADMIN', 'x', '2026-01-01T00:00:00Z');
                 INSERT INTO benefit_plans (id, code, name, beneficiary_type, start_date, currency,
                     provisions, extra_schema, rule, payment_point, created_at)
                     VALUES (x'{p}', 'P', 'P', 'INDIVIDUAL', '2026-01-01', 'MWK', '[]', '{{}}', '{{}}', '{{}}', '2026-01-01T00:00:00Z');
                 INSERT INTO payment_cycles (id, code, start_date, end_date, created_at)
                     VALUES (x'{c}', 'C', '2026-01-01', '2026-01-31', '2026-01-01T00:00:00Z');
                 INSERT INTO payrolls (id, plan_id, cycle_id, location_id, seq, name, status, currency, created_by, created_at)
                     VALUES (x'{r}', x'{p}', x'{c}', x'{l}', 1, 'rejected', 'REJECTED', 'MWK', 'user:a', '2026-01-02T00:00:00Z'),
                            (x'{a}', x'{p}', x'{c}', x'{l}', 2, 'approved', 'APPROVED', 'MWK', 'user:a', '2026-01-02T00:00:00Z');
                 INSERT INTO entitlements (id, payroll_id, plan_id, cycle_id, beneficiary_id, recipient_id,
                         amount_minor, currency, goods, status)
                     VALUES (x'{e1}', x'{r}', x'{p}', x'{c}', x'{b1}', x'{i1}', 100, 'MWK',
                             '[{{\"item\":\"MAIZE\",\"quantity\":3}}]', 'AWAITING_APPROVAL'),
                            (x'{e2}', x'{a}', x'{p}', x'{c}', x'{b2}', x'{i2}', 250, 'USD',
                             '[{{\"item\":\"OIL\",\"quantity\":1}}]', 'DUE');
                 INSERT INTO tasks (id, kind, subject_id, path, summary, maker_id, maker, status, policy, created_at)
                     VALUES (x'{t1}', 'ENTITLEMENT_APPROVAL', x'{e1}', 'R', 'above the limit', NULL, 'system', 'PENDING',
                             (SELECT policy FROM task_policies WHERE kind = 'ENTITLEMENT_APPROVAL'), '2026-01-02T00:00:00Z'),
                            (x'{t2}', 'ENTITLEMENT_APPROVAL', x'{e2}', 'R', 'above the limit', NULL, 'system', 'PENDING',
                             (SELECT policy FROM task_policies WHERE kind = 'ENTITLEMENT_APPROVAL'), '2026-01-02T00:00:00Z');",
                l = id(1).simple(), u = id(2).simple(), p = id(3).simple(), c = id(4).simple(),
                r = id(5).simple(), a = id(6).simple(), e1 = id(7).simple(), e2 = id(8).simple(),
                b1 = id(9).simple(), b2 = id(10).simple(), i1 = id(13).simple(), i2 = id(14).simple(),
                t1 = id(15).simple(), t2 = id(16).simple(),
            ))
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                let rejected: Vec<(uuid::Uuid, bool)> = tx.sqlite()
                    .prepare("SELECT id, rejected_at IS NOT NULL FROM entitlements ORDER BY id")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                assert_eq!(rejected, [(id(7), true), (id(8), false)]);
                type Row = (uuid::Uuid, uuid::Uuid, uuid::Uuid, uuid::Uuid, uuid::Uuid, Option<uuid::Uuid>, i64, String, String, String);
                let rows: Vec<Row> = tx.sqlite()
                    .prepare(
                        "SELECT id, payroll_id, plan_id, cycle_id, beneficiary_id, recipient_id,
                             amount_minor, currency, goods, status FROM entitlements ORDER BY id",
                    )?
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?,
                            r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                assert_eq!(
                    rows,
                    [
                        (id(7), id(5), id(3), id(4), id(9), Some(id(13)), 100, "MWK".into(),
                         r#"[{"item":"MAIZE","quantity":3}]"#.into(), "AWAITING_APPROVAL".into()),
                        (id(8), id(6), id(3), id(4), id(10), Some(id(14)), 250, "USD".into(),
                         r#"[{"item":"OIL","quantity":1}]"#.into(), "DUE".into()),
                    ],
                    "every column comes through the rebuild"
                );
                let rejected_at: String = tx.sqlite().query_row(
                    "SELECT rejected_at FROM entitlements WHERE id = ?1",
                    [id(7)],
                    |r| r.get(0),
                )?;
                assert!(
                    chrono::DateTime::parse_from_rfc3339(&rejected_at).is_ok()
                        && rejected_at.len() == now().len(),
                    "written as the server writes times: {rejected_at} vs {}",
                    now()
                );
                let task: (String, Option<String>) = tx.sqlite().query_row(
                    "SELECT status, decided_at FROM tasks WHERE id = ?1",
                    [id(15)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                assert_eq!(task.0, "WITHDRAWN", "the rejected payroll's approval is withdrawn");
                assert_eq!(task.1.map(|t| t.len()), Some(now().len()));
                let (status, strict): (String, bool) = tx.sqlite().query_row(
                    "SELECT status, policy ->> '$.approvers_not_created_by_maker' IS 1 FROM tasks WHERE id = ?1",
                    [id(16)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                assert_eq!(status, "PENDING", "the approved payroll's approval still waits");
                assert!(strict, "an open money task takes the creator rule");
                let again = |e: uuid::Uuid, b: uuid::Uuid| {
                    tx.sqlite().execute(
                        "INSERT INTO entitlements (id, payroll_id, plan_id, cycle_id, beneficiary_id, amount_minor, currency, status)
                         VALUES (?1, ?2, ?3, ?4, ?5, 100, 'MWK', 'DUE')",
                        rusqlite::params![e, id(6), id(3), id(4), b],
                    )
                };
                again(id(11), id(9)).expect("a rejected entitlement no longer blocks");
                assert!(again(id(12), id(10)).is_err(), "an approved one still does");
                let schema = |sql: &str| -> Result<i64> {
                    Ok(tx.sqlite().query_row(sql, [], |r| r.get(0))?)
                };
                assert_eq!(
                    schema("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'
                            AND name = 'replica_entitlements_upd' AND tbl_name = 'entitlements'")?,
                    1,
                    "the replica trigger on entitlements is back"
                );
                for (kind, name) in [
                    ("index", "entitlements_payroll"),
                    ("index", "entitlements_live"),
                    ("trigger", "replica_entitlements_upd"),
                ] {
                    assert_eq!(
                        schema(&format!(
                            "SELECT count(*) FROM sqlite_schema WHERE type = '{kind}'
                             AND name = '{name}' AND tbl_name = 'entitlements'"
                        ))?,
                        1,
                        "{kind} {name} on entitlements"
                    );
                }
                assert_eq!(
                    schema("SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%entitlements_new%'")?,
                    0,
                    "triggers elsewhere still name entitlements"
                );
                assert_eq!(
                    schema("SELECT count(*) FROM users WHERE created_by IS NULL")?,
                    1,
                    "an existing account's creator is unknown"
                );
                let strict = |kind: &str| -> Result<bool> {
                    Ok(tx.sqlite().query_row(
                        "SELECT policy ->> '$.approvers_not_created_by_maker' IS 1 FROM task_policies WHERE kind = ?1",
                        [kind],
                        |r| r.get(0),
                    )?)
                };
                assert!(strict("PAYROLL_APPROVAL")? && strict("PAYROLL_SIGN_OFF")?);
                // Money, so on too; a change that pays nothing keeps the old default.
                assert!(strict("ENTITLEMENT_APPROVAL")? && strict("TIMESHEET")?);
                assert!(!strict("CONTACT_UPDATE")?);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn the_log_is_checkpointed_off_the_commit_path_and_truncated_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                for i in 0..2000 {
                    tx.sqlite().execute(
                        "INSERT INTO goods_items (id, code, name, unit) VALUES (?1, ?2, 'x', 'kit')",
                        rusqlite::params![uuid::Uuid::now_v7(), format!("ITEM-{i}")],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let wal = dir.path().join("registry.db-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "the commit wrote to the log"
        );
        drop(store);
        assert_eq!(
            std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
            0,
            "log not truncated on close"
        );
        let reopened = Store::open(&path).unwrap();
        let n: i64 = reopened
            .read(|c| {
                Ok(c.sqlite()
                    .query_row("SELECT count(*) FROM goods_items", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(n, 2000);
    }
}
