//! The append-only audit log. Every entry's hash covers the previous entry's hash, so an
//! edited or deleted entry breaks the chain; `verify` finds where.

use ring::digest::{SHA256, digest};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::Result;
use crate::store::{ReadTx, WriteTx};

/// Who did something: a user, the command line, or the server itself.
pub fn actor_cli() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Appends one entry in the caller's transaction, so the audit line and the change it
/// describes commit together or not at all.
pub fn append(
    tx: &WriteTx,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: Option<&str>,
    detail: &serde_json::Value,
) -> Result<()> {
    // Cached statements: generation appends one entry per task it opens, which can be a
    // hundred thousand in one transaction.
    let prev: Vec<u8> = tx
        .sqlite()
        .prepare_cached("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| vec![0; 32]);
    let at = crate::store::now();
    let detail = detail.to_string();
    let hash = entry_hash(&prev, &at, actor, action, entity, entity_id, &detail);
    tx.sqlite()
        .prepare_cached(
            "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            at, actor, action, entity, entity_id, detail, prev, hash
        ])?;
    Ok(())
}

fn entry_hash(
    prev: &[u8],
    at: &str,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: Option<&str>,
    detail: &str,
) -> Vec<u8> {
    // Length-prefixed fields: no two different entries serialise to the same bytes.
    let mut buf = Vec::with_capacity(prev.len() + detail.len() + 128);
    buf.extend_from_slice(prev);
    for field in [
        at,
        actor,
        action,
        entity,
        entity_id.unwrap_or("\u{0}"),
        detail,
    ] {
        buf.extend_from_slice(&(field.len() as u64).to_be_bytes());
        buf.extend_from_slice(field.as_bytes());
    }
    digest(&SHA256, &buf).as_ref().to_vec()
}

#[derive(Debug, Serialize, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub detail: serde_json::Value,
}

/// The newest entries first, optionally only those about one entity.
pub fn list(conn: &ReadTx, entity_id: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT seq, at, actor, action, entity, entity_id, detail FROM audit_log
         WHERE ?1 IS NULL OR entity_id = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![entity_id, limit], |r| {
        Ok(AuditEntry {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            entity: r.get(4)?,
            entity_id: r.get(5)?,
            detail: crate::store::json_column(r, 6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Walks the chain; returns the number of entries, or the first sequence number whose hash
/// does not match its content.
pub fn verify(conn: &ReadTx) -> Result<std::result::Result<u64, i64>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT seq, at, actor, action, entity, entity_id, detail, prev_hash, hash
         FROM audit_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev = vec![0u8; 32];
    let mut count = 0;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let stored_prev: Vec<u8> = r.get(7)?;
        let stored: Vec<u8> = r.get(8)?;
        let entity_id: Option<String> = r.get(5)?;
        let expected = entry_hash(
            &prev,
            &r.get::<_, String>(1)?,
            &r.get::<_, String>(2)?,
            &r.get::<_, String>(3)?,
            &r.get::<_, String>(4)?,
            entity_id.as_deref(),
            &r.get::<_, String>(6)?,
        );
        if stored_prev != prev || stored != expected {
            return Ok(Err(seq));
        }
        prev = stored;
        count += 1;
    }
    Ok(Ok(count))
}

/// Who wrote the first entry of the log (`None` for an empty log): how the demo knows a
/// database is its own.
pub fn first_actor(conn: &ReadTx) -> Result<Option<String>> {
    Ok(conn
        .sqlite()
        .query_row(
            "SELECT actor FROM audit_log ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn the_chain_verifies_and_the_log_refuses_edits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db")).unwrap();
        for i in 0..3 {
            store
                .write(|tx| {
                    append(
                        tx,
                        "user:ana",
                        "test",
                        "thing",
                        Some(&i.to_string()),
                        &serde_json::json!({ "i": i }),
                    )
                })
                .unwrap();
        }
        assert_eq!(store.read(verify).unwrap(), Ok(3));
        let err = store
            .write(|tx| {
                Ok(tx
                    .sqlite()
                    .execute("UPDATE audit_log SET actor = 'x' WHERE seq = 2", [])?)
            })
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = store
            .write(|tx| Ok(tx.sqlite().execute("DELETE FROM audit_log", [])?))
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");

        // Someone bypassing the triggers is still caught by the chain.
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute_batch(
            "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET detail = '{}' WHERE seq = 2;",
        )
        .unwrap();
        assert_eq!(store.read(verify).unwrap(), Err(2));
        let newest = store.read(|c| list(c, None, 1)).unwrap();
        assert_eq!(newest[0].seq, 3);
    }
}
