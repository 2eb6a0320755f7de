//! Record documents on the device: the saved automerge bytes are the truth, and each write
//! re-derives the record's row in the materialised tables in the same transaction.

use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use chrono::{DateTime, FixedOffset};
use outpost_proto::records::{self, Record, RecordKind};
use outpost_proto::wire::DocChanges;
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Heads as stored: the hashes sorted and concatenated, so equal sets compare equal.
pub fn heads_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

fn parse_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .map(|c| ChangeHash(c.try_into().expect("32-byte chunk")))
        .collect()
}

fn local_day(at: &DateTime<FixedOffset>) -> String {
    at.date_naive().format("%Y-%m-%d").to_string()
}

/// Writes a new record of this device: a new document, the next record number, its row.
pub fn insert_new(
    tx: &Transaction,
    enrolment: Uuid,
    actor: &[u8],
    record: &Record,
    now: &DateTime<FixedOffset>,
) -> Result<Uuid> {
    let mut doc = AutoCommit::new().with_actor(ActorId::from(actor));
    record.write_new(&mut doc)?;
    // The server refuses a document beyond the bounds; so does the phone, before keeping it.
    records::check_bounds(&doc.get_changes(&[]), record)?;
    let id = Uuid::now_v7();
    let seq: i64 = tx
        .prepare_cached(
            "UPDATE enrolments SET next_seq = next_seq + 1 WHERE id = ?1 RETURNING next_seq - 1",
        )?
        .query_row([enrolment], |r| r.get(0))?;
    let at = now.to_rfc3339();
    tx.prepare_cached(
        "INSERT INTO records (id, enrolment_id, seq, kind, doc, heads, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        id,
        enrolment,
        seq,
        record.kind().as_str(),
        doc.save(),
        heads_bytes(&doc.get_heads()),
        at
    ])?;
    materialise(tx, id, enrolment, true, record)?;
    Ok(id)
}

/// A record held on the device, with its document loaded.
pub struct Held {
    pub id: Uuid,
    pub enrolment: Uuid,
    pub own: bool,
    pub doc: AutoCommit,
    pub record: Record,
}

/// Loads a record document.
pub fn load(tx: &Transaction, id: Uuid, actor: &[u8]) -> Result<Held> {
    let (enrolment, own, bytes): (Uuid, bool, Vec<u8>) = tx
        .prepare_cached("SELECT enrolment_id, seq IS NOT NULL, doc FROM records WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .ok_or_else(|| Error::not_found(format!("record {id}")))?;
    let doc = AutoCommit::load(&bytes)?.with_actor(ActorId::from(actor));
    let record = Record::read(&doc)?;
    Ok(Held {
        id,
        enrolment,
        own,
        doc,
        record,
    })
}

/// Changes a held record with `edit` (a void, a comment, a status), after checking the result
/// is a change the server would accept, then saves it and its row.
pub fn update(
    tx: &Transaction,
    mut held: Held,
    now: &DateTime<FixedOffset>,
    edit: impl FnOnce(&mut AutoCommit) -> Result<()>,
) -> Result<Record> {
    edit(&mut held.doc)?;
    let new = Record::read(&held.doc)?;
    records::check_update(&held.record, &new)?;
    records::check_bounds(&held.doc.get_changes(&[]), &new)?;
    save(tx, held.id, &mut held.doc, now)?;
    materialise(tx, held.id, held.enrolment, held.own, &new)?;
    Ok(new)
}

fn save(
    tx: &Transaction,
    id: Uuid,
    doc: &mut AutoCommit,
    now: &DateTime<FixedOffset>,
) -> Result<()> {
    tx.prepare_cached("UPDATE records SET doc = ?2, heads = ?3, updated_at = ?4 WHERE id = ?1")?
        .execute(params![
            id,
            doc.save(),
            heads_bytes(&doc.get_heads()),
            now.to_rfc3339()
        ])?;
    Ok(())
}

/// Applies changes made elsewhere (the office, another device) to a document this device
/// follows. A document the device did not hold is stored as someone else's record. Changes
/// whose dependencies have not arrived are kept aside until they do; a document this build
/// cannot read (a newer schema) is kept as it is, without a row, rather than stopping the feed.
pub fn apply_remote(
    tx: &Transaction,
    enrolment: Uuid,
    actor: &[u8],
    dc: &DocChanges,
    now: &DateTime<FixedOffset>,
) -> Result<()> {
    let id = Uuid::from_slice(&dc.doc_id).map_err(|_| Error::ServerRefused {
        code: "BAD_CHANGES".into(),
        reason: "a document id is not 16 bytes".into(),
    })?;
    let mut raw: Vec<Vec<u8>> = tx
        .prepare_cached("DELETE FROM deferred_changes WHERE doc_id = ?1 RETURNING change")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    raw.extend(dc.changes.iter().cloned());
    let changes = raw
        .into_iter()
        .map(Change::from_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::ServerRefused {
            code: "BAD_CHANGES".into(),
            reason: format!("a change does not decode: {e}"),
        })?;
    // Owner, own, saved document, heads, acknowledged heads, kind.
    type Stored = (Uuid, bool, Vec<u8>, Vec<u8>, Vec<u8>, String);
    let held: Option<Stored> = tx
        .prepare_cached(
            "SELECT enrolment_id, seq IS NOT NULL, doc, heads, acked_heads, kind FROM records WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .optional()?;
    let (owner, own, doc, was_synced, kind) = match held {
        Some((owner, own, bytes, heads, acked, kind)) => {
            (owner, own, AutoCommit::load(&bytes)?, heads == acked, kind)
        }
        None => (enrolment, false, AutoCommit::new(), true, dc.kind.clone()),
    };
    let mut doc = doc.with_actor(ActorId::from(actor));
    let before = doc.get_heads();
    let hashes: Vec<(ChangeHash, Vec<u8>)> = changes
        .iter()
        .map(|c| (c.hash(), c.raw_bytes().to_vec()))
        .collect();
    doc.apply_changes(changes)?;
    for (hash, bytes) in hashes {
        if doc.get_change_by_hash(&hash).is_none() {
            tx.prepare_cached("INSERT INTO deferred_changes (doc_id, change) VALUES (?1, ?2)")?
                .execute(params![id, bytes])?;
        }
    }
    if doc.get_heads() == before {
        return Ok(());
    }
    let record = Record::read(&doc).ok();
    let kind = record
        .as_ref()
        .map_or(kind, |r| r.kind().as_str().to_owned());
    let heads = heads_bytes(&doc.get_heads());
    let at = now.to_rfc3339();
    tx.prepare_cached(
        "INSERT INTO records (id, enrolment_id, seq, kind, doc, heads, acked_heads, created_at, updated_at)
         VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?5, ?6, ?6)
         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, heads = excluded.heads,
             acked_heads = CASE WHEN ?7 THEN excluded.heads ELSE records.acked_heads END,
             updated_at = excluded.updated_at",
    )?
    .execute(params![id, owner, kind, doc.save(), heads, at, was_synced])?;
    if let Some(record) = record {
        materialise(tx, id, owner, own, &record)?;
    }
    Ok(())
}

/// A document with changes the server has not confirmed.
pub struct Pending {
    pub id: Uuid,
    pub kind: RecordKind,
    pub seq: u64,
    pub changes: Vec<Vec<u8>>,
    /// The heads being sent: what an acknowledgement confirms.
    pub heads: Vec<u8>,
}

/// The records an enrolment uploads: its own, and (for the active one) records whose
/// enrolment is gone, such as an earlier agent's grievance the current agent commented on.
pub const UPLOADS: &str =
    "(enrolment_id = ?1 OR (?2 AND enrolment_id NOT IN (SELECT id FROM enrolments)))
     AND heads <> acked_heads";

/// Up to `limit` pending documents an enrolment uploads, oldest first, with the changes since
/// what the server confirmed; `skip` lists documents not to send again in this sync.
pub fn pending(
    tx: &Transaction,
    enrolment: Uuid,
    active: bool,
    limit: usize,
    skip: &[Uuid],
) -> Result<Vec<Pending>> {
    // Only the enrolment's own records carry its record numbers.
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT id, kind, CASE WHEN enrolment_id = ?1 THEN COALESCE(seq, 0) ELSE 0 END, doc, heads,
                acked_heads
         FROM records WHERE {UPLOADS} ORDER BY created_at, id"
    ))?;
    let mut rows = stmt.query(params![enrolment, active])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if out.len() >= limit {
            break;
        }
        let id: Uuid = r.get(0)?;
        if skip.contains(&id) {
            continue;
        }
        let kind: String = r.get(1)?;
        let mut doc = AutoCommit::load(&r.get::<_, Vec<u8>>(3)?)?;
        let acked = parse_heads(&r.get::<_, Vec<u8>>(5)?);
        // Heads the document no longer knows (never, unless the server's reply was odd) mean
        // sending everything.
        let since = if acked.iter().all(|h| doc.get_change_by_hash(h).is_some()) {
            acked
        } else {
            Vec::new()
        };
        let changes = doc
            .get_changes(&since)
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        out.push(Pending {
            id,
            kind: RecordKind::parse(&kind).ok_or_else(|| Error::Internal {
                reason: format!("record kind {kind}"),
            })?,
            seq: r.get::<_, i64>(2)? as u64,
            changes,
            heads: r.get(4)?,
        });
    }
    Ok(out)
}

/// The server holds the document up to `heads` (accepted, or kept in quarantine with
/// `refused` as the reason).
pub fn acknowledge(tx: &Transaction, id: Uuid, heads: &[u8], refused: Option<&str>) -> Result<()> {
    tx.prepare_cached("UPDATE records SET acked_heads = ?2, refused = ?3 WHERE id = ?1")?
        .execute(params![id, heads, refused])?;
    Ok(())
}

/// The server lacks earlier changes of the document: the next upload sends all of it.
pub fn forget_acknowledgement(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached("UPDATE records SET acked_heads = x'' WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Re-derives a record's row in its materialised table.
fn materialise(
    tx: &Transaction,
    id: Uuid,
    enrolment: Uuid,
    own: bool,
    record: &Record,
) -> Result<()> {
    let void = records::Void::columns;
    match record {
        Record::Payout(p) => {
            let (voided_at, void_reason) = void(&p.void);
            let proof = match &p.proof {
                records::Proof::Card(serial) => format!("CARD {serial}"),
                records::Proof::Pin => "PIN".into(),
                records::Proof::Signature(r) => format!("SIGNATURE {r}"),
                records::Proof::Photo(r) => format!("PHOTO {r}"),
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO payouts (record_id, enrolment_id, own, beneficiary_id,
                     entitlement_id, collector_id, amount_minor, currency, proof, paid_at, day,
                     override_reason, voided_at, void_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                id,
                enrolment,
                own,
                p.beneficiary_id,
                p.entitlement_id,
                p.collector_id,
                p.amount.minor,
                p.amount.currency.as_str(),
                proof,
                p.paid_at.to_rfc3339(),
                local_day(&p.paid_at),
                p.override_reason,
                voided_at,
                void_reason
            ])?;
        }
        Record::Distribution(d) => {
            let (voided_at, void_reason) = void(&d.void);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO distributions (record_id, enrolment_id, own, beneficiary_id,
                     entitlement_id, collector_id, distributed_at, day, voided_at, void_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                id,
                enrolment,
                own,
                d.beneficiary_id,
                d.entitlement_id,
                d.collector_id,
                d.distributed_at.to_rfc3339(),
                local_day(&d.distributed_at),
                voided_at,
                void_reason
            ])?;
            tx.prepare_cached("DELETE FROM distribution_lines WHERE record_id = ?1")?
                .execute([id])?;
            for (code, qty) in &d.items {
                tx.prepare_cached(
                    "INSERT INTO distribution_lines (record_id, item_code, quantity) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, code, qty])?;
            }
        }
        Record::Timesheet(t) => {
            let (voided_at, void_reason) = void(&t.void);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO timesheets (record_id, enrolment_id, own, project_id,
                     beneficiary_id, work_date, day_hundredths, recorded_at, voided_at, void_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                id,
                enrolment,
                own,
                t.project_id,
                t.beneficiary_id,
                t.work_date.format("%Y-%m-%d").to_string(),
                t.day_hundredths,
                t.recorded_at.to_rfc3339(),
                voided_at,
                void_reason
            ])?;
        }
        Record::Grievance(g) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO grievances (record_id, enrolment_id, own, beneficiary_id,
                     category, description, status, assignee, comments, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                id,
                enrolment,
                own,
                g.beneficiary_id,
                g.category,
                g.description,
                g.status.as_str(),
                g.assignee,
                g.comments.len() as i64,
                g.created_at.to_rfc3339()
            ])?;
        }
        Record::Verification(v) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO verifications (record_id, enrolment_id, own, beneficiary_id,
                     proposed_status, verified_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                id,
                enrolment,
                own,
                v.beneficiary_id,
                v.proposed_status.map(|s| s.as_str()),
                v.verified_at.to_rfc3339()
            ])?;
        }
        Record::ContactUpdate(c) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO contact_updates (record_id, enrolment_id, own, beneficiary_id,
                     individual_id, phone, address, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id,
                enrolment,
                own,
                c.beneficiary_id,
                c.individual_id,
                c.phone,
                c.address,
                c.updated_at.to_rfc3339()
            ])?;
        }
    }
    Ok(())
}
