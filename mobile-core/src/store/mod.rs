//! The device's database: one SQLCipher file, migrated one step at a time.
//!
//! Functions that write take a `&Transaction`, so every multi-step write is one transaction
//! and a crash at any point leaves either all of it or none of it.

pub mod pin;
pub mod queries;
pub mod records;
pub mod replica;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Each entry upgrades the schema from version `i` to `i + 1`, in one transaction.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_device.sql")];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Opens (creating if needed) the encrypted database with the host's 32-byte key.
pub fn open(path: &Path, key: &[u8]) -> Result<Connection> {
    if key.len() != 32 {
        return Err(Error::invalid(format!(
            "the database key must be 32 bytes, not {}",
            key.len()
        )));
    }
    sqlcipher_initialised();
    let conn = Connection::open(path)?;
    // The key must be the first statement; a raw key skips SQLCipher's own key derivation,
    // which the Keystore-held random key does not need.
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    conn.execute_batch(&format!("PRAGMA key = \"x'{hex}'\";"))?;
    // A wrong key is reported as an error; SQLCipher need not also print it to stderr.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    // A wrong key shows only on the first read of the file.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    // FULL: a payout the agent saw recorded survives a power cut too, not only an app crash
    // (NORMAL in WAL mode may lose the last commits when the battery dies).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = OFF;
         PRAGMA busy_timeout = 5000;",
    )?;
    migrate(&conn)?;
    Ok(conn)
}

/// Lets SQLCipher finish initialising before any database is keyed. SQLite marks itself
/// initialised and only then runs SQLCipher's own set-up, outside its lock; a second thread
/// opening a database meanwhile finds SQLite ready and SQLCipher not, and its `PRAGMA key`
/// fails ("An error occurred with PRAGMA key or rekey"). It happened when several databases
/// were opened at once as a process started (the tests); the first open now runs alone.
fn sqlcipher_initialised() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        // Opening any connection runs SQLite's initialisation, SQLCipher's with it, to the
        // end on this thread; a failure here shows again, with its reason, on the real open.
        let _ = Connection::open_in_memory();
    });
}

fn migrate(conn: &Connection) -> Result<()> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::invalid(format!(
            "this database was written by a newer app (schema {current}, this app knows \
             {SCHEMA_VERSION}): update the app; nothing was changed"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as u32 + 1)?;
        if version == 0 {
            // One automerge actor per install: every actor costs space in each document.
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('actor', ?1)",
                [Uuid::new_v4().as_bytes().as_slice()],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// Runs `f` in an immediate transaction, committed only if it succeeds.
pub fn write<T>(conn: &mut Connection, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// The install's automerge actor.
pub fn actor(conn: &Connection) -> Result<Vec<u8>> {
    Ok(
        conn.query_row("SELECT value FROM meta WHERE key = 'actor'", [], |r| {
            r.get(0)
        })?,
    )
}

/// The enrolment in use, with what the sync client and the rules need.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub id: Uuid,
    pub server_url: String,
    pub key_pkcs8: Vec<u8>,
    pub agent_username: String,
    pub agent_name: String,
    pub assignment_code: String,
    pub assignment_name: String,
    pub programme_key: Vec<u8>,
    pub server_ca_pem: Option<String>,
    pub active: bool,
    pub clock_offset_ms: i64,
    pub replica_cursor: u64,
    pub changes_cursor: u64,
    pub last_sync_at: Option<String>,
}

const ENROLMENT_COLUMNS: &str = "id, server_url, key_pkcs8, agent_username, agent_name, \
    assignment_code, assignment_name, programme_key, server_ca_pem, active, clock_offset_ms, \
    replica_cursor, changes_cursor, last_sync_at";

fn enrolment_row(r: &rusqlite::Row) -> rusqlite::Result<Enrolment> {
    Ok(Enrolment {
        id: r.get(0)?,
        server_url: r.get(1)?,
        key_pkcs8: r.get(2)?,
        agent_username: r.get(3)?,
        agent_name: r.get(4)?,
        assignment_code: r.get(5)?,
        assignment_name: r.get(6)?,
        programme_key: r.get(7)?,
        server_ca_pem: r.get(8)?,
        active: r.get(9)?,
        clock_offset_ms: r.get(10)?,
        replica_cursor: r.get::<_, i64>(11)? as u64,
        changes_cursor: r.get::<_, i64>(12)? as u64,
        last_sync_at: r.get(13)?,
    })
}

/// The active enrolment, if the phone is enrolled.
pub fn active_enrolment(conn: &Connection) -> Result<Option<Enrolment>> {
    Ok(conn
        .query_row(
            &format!("SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE active = 1"),
            [],
            enrolment_row,
        )
        .optional()?)
}

/// Every enrolment, the active one first: earlier ones remain while they hold unsent records.
pub fn enrolments(conn: &Connection) -> Result<Vec<Enrolment>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENROLMENT_COLUMNS} FROM enrolments ORDER BY active DESC, enrolled_at DESC"
    ))?;
    let rows = stmt.query_map([], enrolment_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What a new enrolment stores.
pub struct NewEnrolment<'a> {
    pub id: Uuid,
    pub server_url: &'a str,
    pub key_pkcs8: &'a [u8],
    pub agent_username: &'a str,
    pub agent_name: &'a str,
    pub assignment_code: &'a str,
    pub assignment_name: &'a str,
    pub assignment_path: &'a str,
    pub programme_key: &'a [u8],
    pub server_ca_pem: Option<&'a str>,
    pub pin_hash: &'a str,
    pub clock_offset_ms: i64,
    pub enrolled_at: &'a str,
}

/// Makes a new enrolment the active one. The replica is the server's and belongs to the
/// assignment, so it is replaced; records are the agents' and are all kept. An earlier
/// enrolment with nothing left to send is forgotten.
pub fn add_enrolment(tx: &Transaction, e: &NewEnrolment) -> Result<()> {
    tx.execute("UPDATE enrolments SET active = 0 WHERE active = 1", [])?;
    tx.execute(
        "DELETE FROM enrolments WHERE active = 0 AND NOT EXISTS
             (SELECT 1 FROM records r WHERE r.enrolment_id = enrolments.id AND r.heads <> r.acked_heads)",
        [],
    )?;
    clear_replica(tx)?;
    tx.execute(
        "INSERT INTO enrolments (id, server_url, key_pkcs8, agent_username, agent_name,
             assignment_code, assignment_name, assignment_path, programme_key, server_ca_pem,
             pin_hash, enrolled_at, active, clock_offset_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, ?13)",
        params![
            e.id,
            e.server_url,
            e.key_pkcs8,
            e.agent_username,
            e.agent_name,
            e.assignment_code,
            e.assignment_name,
            e.assignment_path,
            e.programme_key,
            e.server_ca_pem,
            e.pin_hash,
            e.enrolled_at,
            e.clock_offset_ms,
        ],
    )?;
    Ok(())
}

fn clear_replica(tx: &Transaction) -> Result<()> {
    tx.execute_batch(
        "DELETE FROM locations; DELETE FROM plans; DELETE FROM goods_items; DELETE FROM projects;
         DELETE FROM people; DELETE FROM people_search; DELETE FROM households;
         DELETE FROM beneficiaries; DELETE FROM cards; DELETE FROM entitlements;
         DELETE FROM revoked_cards; DELETE FROM grievance_categories;",
    )?;
    Ok(())
}

/// Forgets an earlier (inactive) enrolment once none of its records waits to be sent.
pub fn forget_if_drained(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.execute(
        "DELETE FROM enrolments WHERE id = ?1 AND active = 0 AND NOT EXISTS
             (SELECT 1 FROM records r WHERE r.enrolment_id = ?1 AND r.heads <> r.acked_heads)",
        [id],
    )?;
    Ok(())
}

/// Forgets the replica and its cursor, to download it again from the start.
pub fn reset_replica(tx: &Transaction, enrolment: Uuid) -> Result<()> {
    clear_replica(tx)?;
    tx.execute(
        "UPDATE enrolments SET replica_cursor = 0 WHERE id = ?1",
        [enrolment],
    )?;
    Ok(())
}

/// Removes an enrolment the server revoked, with its records (the only way an unsent record
/// can go: the office asked for it, and the server lists the record numbers it never got).
pub fn wipe_enrolment(tx: &Transaction, id: Uuid) -> Result<()> {
    let active: bool = tx
        .query_row("SELECT active FROM enrolments WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(false);
    for table in [
        "payouts",
        "distributions",
        "timesheets",
        "grievances",
        "verifications",
        "contact_updates",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE enrolment_id = ?1"),
            [id],
        )?;
    }
    tx.execute(
        "DELETE FROM distribution_lines WHERE record_id NOT IN (SELECT record_id FROM distributions)",
        [],
    )?;
    tx.execute("DELETE FROM records WHERE enrolment_id = ?1", [id])?;
    tx.execute("DELETE FROM ledger WHERE enrolment_id = ?1", [id])?;
    tx.execute("DELETE FROM enrolments WHERE id = ?1", [id])?;
    if active {
        clear_replica(tx)?;
    }
    Ok(())
}

/// Saves what a sync learnt about the server's clock.
pub fn set_clock_offset(tx: &Transaction, enrolment: Uuid, offset_ms: i64) -> Result<()> {
    tx.execute(
        "UPDATE enrolments SET clock_offset_ms = ?2 WHERE id = ?1",
        params![enrolment, offset_ms],
    )?;
    Ok(())
}

pub fn set_last_sync(tx: &Transaction, enrolment: Uuid, at: &str) -> Result<()> {
    tx.execute(
        "UPDATE enrolments SET last_sync_at = ?2 WHERE id = ?1",
        params![enrolment, at],
    )?;
    Ok(())
}
