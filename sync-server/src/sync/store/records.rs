//! Field records: merging uploaded automerge changes into the server's copy of each record
//! document, judging the merged record, materialising it into queryable tables, and the change
//! log devices read to receive changes made elsewhere.
//!
//! A batch is one transaction. Inside it each document is judged on its own: an invalid record
//! goes to quarantine with its reason and the rest of the batch carries on. Changes are
//! content-addressed, so a change already known is a no-op and a re-sent batch duplicates
//! nothing.

use automerge::{Automerge, Change, ChangeHash, ReadDoc};
use outpost_proto::{
    BeneficiaryStatus,
    records::{self, Record, RecordKind},
    wire::{ChangesReply, DocChanges, DocOutcome, DocResult},
};
use rusqlite::{OptionalExtension, params};
use serde_json::json;
use uuid::Uuid;

use crate::store::{ReadTx, WriteTx};
use crate::{Error, Result, tasks::policy::TaskKind};
use crate::{areas::store::Scope, registry::store as registry, store::now, tasks::store as tasks};

/// Who sent the changes: a device (with its assignment) or the office.
pub struct Origin {
    pub device_id: Option<Uuid>,
    pub scope: Scope,
    /// Where records without a beneficiary (some grievances) belong.
    pub home_path: String,
    /// How timesheets and audit entries name the author.
    pub actor: String,
    /// The user who made the records (the device's agent): the maker of the tasks they open.
    pub user_id: Option<Uuid>,
    /// The username that signs grievance comments this origin adds: a device's enrolled agent,
    /// or the staff user at the office. A comment's own `by` is text the device wrote, so it
    /// is never trusted for this.
    pub author: String,
}

/// The CPU-only part of merging one document (decoding its changes, and reading it as a new
/// record), done before the write lock is taken so that batches are prepared in parallel while
/// another one writes.
pub struct Prepared {
    dc: DocChanges,
    parsed: std::result::Result<(Uuid, RecordKind, Vec<Change>), (DocOutcome, String)>,
    /// The document built from these changes alone, if it is new on the server.
    as_new: Option<(Automerge, std::result::Result<Record, records::RecordError>)>,
}

/// Prepares a batch (no database access).
pub fn prepare(docs: Vec<DocChanges>) -> Vec<Prepared> {
    docs.into_iter()
        .map(|dc| {
            let parsed = parse(&dc);
            let as_new = match &parsed {
                Ok((_, _, changes)) => {
                    let mut doc = Automerge::new();
                    match doc.apply_changes(changes.iter().cloned()) {
                        Ok(()) if doc.get_missing_deps(&[]).is_empty() => {
                            let record = Record::read(&doc);
                            Some((doc, record))
                        }
                        _ => None,
                    }
                }
                Err(_) => None,
            };
            Prepared { dc, parsed, as_new }
        })
        .collect()
}

fn parse(
    dc: &DocChanges,
) -> std::result::Result<(Uuid, RecordKind, Vec<Change>), (DocOutcome, String)> {
    let doc_id = Uuid::from_slice(&dc.doc_id).map_err(|_| {
        (
            DocOutcome::InvalidChange,
            "the document id must be 16 bytes".to_string(),
        )
    })?;
    if dc.device_seq > MAX_DEVICE_SEQ {
        return Err((
            DocOutcome::Rejected,
            format!("device_seq {} is beyond any device's count", dc.device_seq),
        ));
    }
    let kind = RecordKind::parse(&dc.kind).ok_or_else(|| {
        (
            DocOutcome::Rejected,
            format!("record type `{}` is unknown", dc.kind),
        )
    })?;
    let mut seen = std::collections::HashSet::with_capacity(dc.changes.len());
    let mut changes: Vec<Change> = Vec::with_capacity(dc.changes.len());
    for (i, bytes) in dc.changes.iter().enumerate() {
        match Change::from_bytes(bytes.clone()) {
            // A chunk carries the first bytes of its own hash as a checksum (after the 4-byte
            // magic); automerge does not check it when reading one change, so we do: a change
            // altered in transit or on the device is refused, not merged as a different change.
            Ok(c) if bytes.get(4..8) == Some(&c.hash().0[..4]) => {
                if seen.insert(c.hash()) {
                    changes.push(c);
                }
            }
            Ok(_) => {
                return Err((
                    DocOutcome::InvalidChange,
                    format!(
                        "change {} fails its checksum (damaged or tampered with)",
                        i + 1
                    ),
                ));
            }
            Err(e) => {
                return Err((
                    DocOutcome::InvalidChange,
                    format!(
                        "change {} cannot be read (damaged or tampered with): {e}",
                        i + 1
                    ),
                ));
            }
        }
    }
    Ok((doc_id, kind, changes))
}

/// A device numbers its records 1, 2, 3...; more than this is a bug or an attack, and would
/// not fit the database's signed integers.
const MAX_DEVICE_SEQ: u64 = 1 << 40;

/// Merges one prepared upload batch; one result per document, in order.
pub fn push(tx: &WriteTx, origin: &Origin, docs: Vec<Prepared>) -> Result<Vec<DocResult>> {
    let received_at = now();
    let mut results = Vec::with_capacity(docs.len());
    let mut max_seq = 0u64;
    for doc in docs {
        if doc.dc.device_seq <= MAX_DEVICE_SEQ {
            max_seq = max_seq.max(doc.dc.device_seq);
        }
        results.push(merge(tx, origin, &received_at, doc)?);
    }
    if let (Some(device), true) = (origin.device_id, max_seq > 0) {
        tx.sqlite()
            .prepare_cached(
                "UPDATE devices SET max_device_seq = max(max_device_seq, ?2) WHERE id = ?1",
            )?
            .execute(params![device, max_seq as i64])?;
    }
    Ok(results)
}

fn result(doc_id: &[u8], outcome: DocOutcome, heads: &[ChangeHash], reason: String) -> DocResult {
    DocResult {
        doc_id: doc_id.to_vec(),
        outcome: outcome as i32,
        heads: heads.iter().map(|h| h.0.to_vec()).collect(),
        reason,
    }
}

fn heads_blob(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn merge(
    tx: &WriteTx,
    origin: &Origin,
    received_at: &str,
    prepared: Prepared,
) -> Result<DocResult> {
    let Prepared { dc, parsed, as_new } = prepared;
    let refuse = |outcome: DocOutcome, heads: &[ChangeHash], reason: String| -> Result<DocResult> {
        quarantine(tx, origin, received_at, &dc, &reason, false)?;
        Ok(result(&dc.doc_id, outcome, heads, reason))
    };
    let (doc_id, kind, changes) = match parsed {
        Ok(p) => p,
        Err((outcome, reason)) => return refuse(outcome, &[], reason),
    };
    // Why a held record fails today's rules, if it does: then only a void may follow.
    let mut legacy: Option<records::RecordError> = None;
    let existing: Option<(String, Vec<u8>, String)> = tx
        .sqlite()
        .prepare_cached("SELECT kind, data, path FROM documents WHERE id = ?1")?
        .query_row([doc_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (held, before) = match &existing {
        Some((stored_kind, data, _)) => {
            let doc = Automerge::load(data).map_err(|e| {
                Error::Internal(format!("stored document {doc_id} is unreadable: {e}"))
            })?;
            if stored_kind != kind.as_str() {
                return refuse(
                    DocOutcome::Rejected,
                    &doc.get_heads(),
                    format!("this record is a {stored_kind}, not a {}", kind.as_str()),
                );
            }
            // A record accepted under older, looser rules (an amount since judged implausible)
            // may still be voided, a fact the agent reports; any other change is refused with
            // the reason rather than failing the device's whole batch.
            let old = match Record::read(&doc) {
                Ok(old) => old,
                Err(e) => match Record::read_held(&doc) {
                    Ok(old) => {
                        legacy = Some(e);
                        old
                    }
                    Err(_) => {
                        return refuse(
                            DocOutcome::Rejected,
                            &doc.get_heads(),
                            format!(
                                "the record held by the server no longer passes its rules: {e}"
                            ),
                        );
                    }
                },
            };
            (Some(doc), Some(old))
        }
        None => (None, None),
    };
    // Comments as they were, by object id: each stays as it is (see `check_comments`).
    let old_comments = match &held {
        Some(doc) if kind == RecordKind::Grievance => records::read_comments(doc)
            .map_err(|e| Error::Internal(format!("reading held comments: {e}")))?,
        _ => Vec::new(),
    };
    let heads_before = held.as_ref().map(|d| d.get_heads()).unwrap_or_default();
    let (doc, fresh, read) = match (held, as_new) {
        // The common case, a new record: the document was built before the lock.
        (None, Some((built, read))) => (built, changes, read),
        (held, _) => {
            let mut doc = held.unwrap_or_default();
            let fresh: Vec<Change> = changes
                .into_iter()
                .filter(|c| doc.get_change_by_hash(&c.hash()).is_none())
                .collect();
            if fresh.is_empty() {
                return Ok(result(
                    &dc.doc_id,
                    DocOutcome::Accepted,
                    &heads_before,
                    String::new(),
                ));
            }
            if let Err(e) = doc.apply_changes(fresh.iter().cloned()) {
                return refuse(
                    DocOutcome::InvalidChange,
                    &heads_before,
                    format!("the changes cannot be applied: {e}"),
                );
            }
            if !doc.get_missing_deps(&[]).is_empty() {
                // Out of order: nothing stored; the device sends everything after our heads.
                return Ok(result(
                    &dc.doc_id,
                    DocOutcome::MissingDeps,
                    &heads_before,
                    "earlier changes of this record have not arrived yet".into(),
                ));
            }
            let read = if legacy.is_some() {
                Record::read_held(&doc)
            } else {
                Record::read(&doc)
            };
            (doc, fresh, read)
        }
    };
    let mut doc = doc;
    let mut record = match read {
        Ok(r) => r,
        Err(e) => return refuse(DocOutcome::Rejected, &heads_before, e.to_string()),
    };
    if record.kind() != kind {
        return refuse(
            DocOutcome::Rejected,
            &heads_before,
            format!(
                "the document holds a {}, but was sent as a {}",
                record.kind().as_str(),
                kind.as_str()
            ),
        );
    }
    // The merged document reaches every device in its area: one beyond the bounds is refused,
    // and only a bounded part of it kept in quarantine.
    if let Err(e) = records::check_bounds(&doc.get_changes(&[]), &record) {
        let reason = e.to_string();
        quarantine(tx, origin, received_at, &dc, &reason, true)?;
        return Ok(result(
            &dc.doc_id,
            DocOutcome::Rejected,
            &heads_before,
            reason,
        ));
    }
    if let (Some(e), Some(old)) = (&legacy, &before) {
        let voided_only = match (old, &record) {
            (Record::Payout(a), Record::Payout(b)) => a.void.is_none() && b.void.is_some(),
            (Record::Distribution(a), Record::Distribution(b)) => {
                a.void.is_none() && b.void.is_some()
            }
            _ => false,
        };
        if !voided_only || records::check_update(old, &record).is_err() {
            return refuse(
                DocOutcome::Rejected,
                &heads_before,
                format!(
                    "the record held by the server no longer passes its rules: {e}; \
                     it can only be voided"
                ),
            );
        }
    }
    // A grievance moved in two places at once can merge to a status neither could reach
    // (closed at the office, reopened offline). That is a conflict, not a bad record: keep
    // every change sent (their comments above all), put the status back where it was with
    // a change of the server's own, which every device then receives, and tell the office.
    let mut corrective: Vec<Change> = Vec::new();
    if let Some(old) = &before
        && let Err(e) = records::check_update(old, &record)
    {
        match (&e, old, &record) {
            (
                records::RecordError::GrievanceTransition { .. },
                Record::Grievance(was),
                Record::Grievance(merged),
            ) => {
                let merged_status = merged.status;
                corrective = restore_status(&doc, was.status)?;
                doc.apply_changes(corrective.iter().cloned())
                    .map_err(|e| Error::Internal(format!("restoring a grievance status: {e}")))?;
                record = Record::read(&doc).map_err(|e| Error::Internal(e.to_string()))?;
                crate::store::audit::append(
                    tx,
                    &origin.actor,
                    "grievance.status_conflict",
                    "grievance",
                    Some(&doc_id.to_string()),
                    &json!({ "was": was.status.as_str(), "merged": merged_status.as_str(),
                             "kept": was.status.as_str() }),
                )?;
                if let Err(e) = records::check_update(old, &record) {
                    return refuse(DocOutcome::Rejected, &heads_before, e.to_string());
                }
            }
            _ => return refuse(DocOutcome::Rejected, &heads_before, e.to_string()),
        }
    }
    if let Record::Grievance(_) = &record {
        let new_comments = records::read_comments(&doc)
            .map_err(|e| Error::Internal(format!("reading merged comments: {e}")))?;
        if let Err(e) = records::check_comments(&old_comments, &new_comments, &origin.author) {
            return refuse(DocOutcome::Rejected, &heads_before, e.to_string());
        }
    }
    let stored_path = existing.as_ref().map(|(_, _, path)| path.as_str());
    let (path, payroll) = match validate(tx, origin, doc_id, stored_path, &record) {
        Ok(found) => found,
        Err(Error::Invalid(reason)) => {
            return refuse(DocOutcome::Rejected, &heads_before, reason);
        }
        Err(e) => return Err(e),
    };

    let heads = doc.get_heads();
    let data = if before.is_none() && fresh.len() == dc.changes.len() {
        // A new document is its changes: automerge loads a sequence of change chunks, so
        // saving a compacted copy can wait for the next change.
        dc.changes.concat()
    } else {
        doc.save()
    };
    tx.sqlite().prepare_cached(
        "INSERT INTO documents (id, kind, device_id, device_seq, beneficiary_id, path, data, heads, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, heads = excluded.heads,
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        doc_id,
        kind.as_str(),
        origin.device_id,
        dc.device_seq as i64,
        record.beneficiary_id(),
        path,
        data,
        heads_blob(&heads),
        received_at,
    ])?;
    let mut log = tx.sqlite().prepare_cached(
        "INSERT INTO doc_changes (doc_id, hash, data, device_id, path, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for change in &fresh {
        log.execute(params![
            doc_id,
            &change.hash().0[..],
            change.raw_bytes(),
            origin.device_id,
            path,
            received_at,
        ])?;
    }
    // The server's own correction reaches every device, the sender's too.
    for change in &corrective {
        log.execute(params![
            doc_id,
            &change.hash().0[..],
            change.raw_bytes(),
            None::<Uuid>,
            path,
            received_at,
        ])?;
    }
    materialise(
        tx,
        origin,
        received_at,
        doc_id,
        &path,
        payroll,
        &doc,
        &record,
    )?;
    Ok(result(
        &dc.doc_id,
        DocOutcome::Accepted,
        &heads,
        String::new(),
    ))
}

/// A change, by the server, setting a grievance's status back to `status`.
fn restore_status(doc: &Automerge, status: records::GrievanceStatus) -> Result<Vec<Change>> {
    let mut edit = automerge::AutoCommit::load(&doc.save())
        .map_err(|e| Error::Internal(format!("reloading a grievance: {e}")))?;
    let heads = edit.get_heads();
    records::set_grievance_status(&mut edit, status, None)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(edit.get_changes(&heads))
}

/// What quarantine keeps of a large document refused for its size: enough to see what it was.
const QUARANTINE_PREFIX_BYTES: usize = 4 * 1024;
/// A document refused for its size is kept whole up to this (a few comments too many), and
/// beyond it as its first [`QUARANTINE_PREFIX_BYTES`].
const QUARANTINE_WHOLE_BYTES: usize = 64 * 1024;

/// Keeps refused changes with the reason. A large document refused as too large
/// (`too_large`) is kept as its SHA-256, its sizes and its first [`QUARANTINE_PREFIX_BYTES`]
/// only, so a hostile device cannot fill the disk through the quarantine.
fn quarantine(
    tx: &WriteTx,
    origin: &Origin,
    received_at: &str,
    dc: &DocChanges,
    reason: &str,
    too_large: bool,
) -> Result<()> {
    let mut changes = dc.changes.concat();
    let hash = ring::digest::digest(&ring::digest::SHA256, &changes);
    let mut reason = reason.to_owned();
    if too_large && changes.len() > QUARANTINE_WHOLE_BYTES {
        reason = format!(
            "{reason} (quarantine keeps only the first {QUARANTINE_PREFIX_BYTES} of the {} bytes \
             sent, and their SHA-256)",
            changes.len()
        );
        changes.truncate(QUARANTINE_PREFIX_BYTES);
    }
    tx.sqlite().prepare_cached(
        "INSERT OR IGNORE INTO quarantine (doc_id, kind, device_id, device_seq, changes, changes_hash, reason, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        dc.doc_id,
        dc.kind,
        origin.device_id,
        // An impossible number is kept as 0 ("not numbered") with the refused record.
        if dc.device_seq > MAX_DEVICE_SEQ { 0 } else { dc.device_seq as i64 },
        changes,
        hash.as_ref(),
        reason,
        received_at,
    ])?;
    Ok(())
}

/// Checks the record against the registry; returns the location path it belongs to (and, for
/// payouts and distributions, the entitlement's payroll), or `Error::Invalid` with the reason
/// the device shows.
fn validate(
    tx: &WriteTx,
    origin: &Origin,
    doc_id: Uuid,
    stored_path: Option<&str>,
    record: &Record,
) -> Result<(String, Option<Uuid>)> {
    // A record already held belongs where it was first accepted; only devices whose
    // assignment covers that place may change it.
    if let Some(stored) = stored_path
        && !origin.scope.contains(Some(stored))
    {
        return Err(Error::Invalid(
            "this record belongs outside this device's assignment".into(),
        ));
    }
    let beneficiary = match record.beneficiary_id() {
        Some(id) => Some(beneficiary(tx, &origin.scope, id)?),
        None => None,
    };
    let path = match (&beneficiary, stored_path) {
        (Some(b), _) => b.path.clone(),
        (None, Some(stored)) => stored.to_owned(),
        (None, None) => origin.home_path.clone(),
    };
    let mut payroll = None;
    match record {
        Record::Payout(records::Payout {
            entitlement_id,
            collector_id,
            ..
        })
        | Record::Distribution(records::Distribution {
            entitlement_id,
            collector_id,
            ..
        }) => {
            let b = beneficiary.as_ref().expect("payouts name a beneficiary");
            let entitled: Option<(Uuid, Uuid)> = tx.sqlite()
                .prepare_cached(
                    "SELECT e.beneficiary_id, e.payroll_id FROM entitlements e JOIN payrolls p ON p.id = e.payroll_id
                     WHERE e.id = ?1 AND p.status IN ('APPROVED', 'RECONCILED', 'CLOSED')",
                )?
                .query_row([entitlement_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match entitled {
                None => {
                    return Err(Error::Invalid(format!(
                        "entitlement {entitlement_id} is not in an approved payroll"
                    )));
                }
                Some((owner, _)) if owner != b.id => {
                    return Err(Error::Invalid(format!(
                        "entitlement {entitlement_id} belongs to another beneficiary"
                    )));
                }
                Some((_, p)) => payroll = Some(p),
            }
            if !may_collect(tx, b, *collector_id)? {
                return Err(Error::Invalid(format!(
                    "person {collector_id} may not collect for this beneficiary"
                )));
            }
            if let Record::Distribution(d) = record {
                for code in d.items.keys() {
                    let known: bool = tx
                        .sqlite()
                        .prepare_cached(
                            "SELECT EXISTS (SELECT 1 FROM goods_items WHERE code = ?1)",
                        )?
                        .query_row([code], |r| r.get(0))?;
                    if !known {
                        return Err(Error::Invalid(format!("goods item `{code}` is unknown")));
                    }
                }
            }
        }
        Record::Timesheet(t) => {
            let b = beneficiary.as_ref().expect("timesheets name a beneficiary");
            let project: Option<(Uuid, String)> = tx.sqlite()
                .prepare_cached(
                    "SELECT w.plan_id, l.path FROM work_projects w JOIN locations l ON l.id = w.location_id
                     WHERE w.id = ?1",
                )?
                .query_row([t.project_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match project {
                Some((_, project_path)) if !origin.scope.contains(Some(&project_path)) => {
                    return Err(Error::Invalid(
                        "the project is outside this device's assignment".into(),
                    ));
                }
                Some((plan, _)) if plan != b.plan_id => {
                    return Err(Error::Invalid(
                        "the worker is not a beneficiary of the project's plan".into(),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(Error::Invalid(format!(
                        "project {} is unknown",
                        t.project_id
                    )));
                }
            }
            let taken: Option<Uuid> = tx.sqlite()
                .prepare_cached(
                    "SELECT id FROM timesheets WHERE project_id = ?1 AND beneficiary_id = ?2 AND work_date = ?3
                     AND id <> ?4 AND voided_at IS NULL",
                )?
                .query_row(
                    params![t.project_id, t.beneficiary_id, t.work_date.to_string(), doc_id],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Err(Error::Invalid(format!(
                    "a day's work on {} is already recorded for this worker",
                    t.work_date
                )));
            }
        }
        Record::Grievance(g) => {
            let known: bool = tx
                .sqlite()
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM grievance_categories WHERE code = ?1)",
                )?
                .query_row([&g.category], |r| r.get(0))?;
            if !known {
                return Err(Error::Invalid(format!(
                    "grievance category `{}` is unknown",
                    g.category
                )));
            }
        }
        Record::Verification(v) => {
            let b = beneficiary
                .as_ref()
                .expect("verifications name a beneficiary");
            if let Some(to) = v.proposed_status
                && !b.status.can_become(to)
            {
                return Err(Error::Invalid(format!(
                    "a {} beneficiary cannot become {}",
                    b.status, to
                )));
            }
        }
        Record::ContactUpdate(c) => {
            let b = beneficiary
                .as_ref()
                .expect("contact updates name a beneficiary");
            let member = b.individual_id == Some(c.individual_id)
                || tx.sqlite()
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM group_members WHERE group_id = ?1 AND individual_id = ?2)",
                    )?
                    .query_row(params![b.group_id, c.individual_id], |r| r.get::<_, bool>(0))?;
            if !member {
                return Err(Error::Invalid(
                    "the person is not this beneficiary or a member of its household".into(),
                ));
            }
        }
    }
    Ok((path, payroll))
}

struct BeneficiaryRef {
    id: Uuid,
    plan_id: Uuid,
    individual_id: Option<Uuid>,
    group_id: Option<Uuid>,
    status: BeneficiaryStatus,
    path: String,
}

fn beneficiary(tx: &WriteTx, scope: &Scope, id: Uuid) -> Result<BeneficiaryRef> {
    let found = tx.sqlite()
        .prepare_cached(
            "SELECT b.plan_id, b.individual_id, b.group_id, b.status, p.path
             FROM beneficiaries b JOIN beneficiary_paths p ON p.beneficiary_id = b.id WHERE b.id = ?1",
        )?
        .query_row([id], |r| {
            Ok(BeneficiaryRef {
                id,
                plan_id: r.get(0)?,
                individual_id: r.get(1)?,
                group_id: r.get(2)?,
                status: crate::store::text_column(r, 3)?,
                path: r.get(4)?,
            })
        })
        .optional()?;
    match found {
        Some(b) if scope.contains(Some(&b.path)) => Ok(b),
        Some(_) => Err(Error::Invalid(format!(
            "beneficiary {id} is outside this device's assignment"
        ))),
        None => Err(Error::Invalid(format!("beneficiary {id} is unknown"))),
    }
}

/// The person themself, or the household's head or a recipient.
fn may_collect(tx: &WriteTx, b: &BeneficiaryRef, collector: Uuid) -> Result<bool> {
    if b.individual_id == Some(collector) {
        return Ok(true);
    }
    Ok(tx
        .sqlite()
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM group_members WHERE group_id = ?1 AND individual_id = ?2
                 AND (recipient <> 'NONE' OR relationship = 'HEAD'))",
        )?
        .query_row(params![b.group_id, collector], |r| r.get(0))?)
}

/// The automerge object id of each grievance comment, in the order [`Record::read`] lists them:
/// a comment's identity across merges, whatever its text.
fn comment_ids(doc: &Automerge) -> Result<Vec<String>> {
    match doc.get(automerge::ROOT, "comments") {
        Ok(Some((automerge::Value::Object(automerge::ObjType::List), list))) => Ok(doc
            .list_range(&list, ..)
            .map(|item| item.id().to_string())
            .collect()),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(Error::Internal(format!("reading grievance comments: {e}"))),
    }
}

/// A grievance's comments as the office reads them, each signed by who sent it when it first
/// reached the server: one already materialised keeps its signer; one new to the server is
/// signed by `origin.author` (the device's agent, or the staff user), never by the `by` the
/// document claims.
fn signed_comments(
    tx: &WriteTx,
    origin: &Origin,
    doc_id: Uuid,
    doc: &Automerge,
    comments: &[records::Comment],
) -> Result<Vec<serde_json::Value>> {
    let held: Option<Vec<serde_json::Value>> = tx
        .sqlite()
        .prepare_cached("SELECT comments FROM grievances WHERE doc_id = ?1")?
        .query_row([doc_id], |r| crate::store::json_column(r, 0))
        .optional()?;
    let mut held = held.unwrap_or_default();
    let ids = comment_ids(doc)?;
    if ids.len() != comments.len() {
        return Err(Error::Internal(format!(
            "grievance {doc_id} lists {} comments but holds {}",
            comments.len(),
            ids.len()
        )));
    }
    let mut out = Vec::with_capacity(comments.len());
    for (c, id) in comments.iter().zip(ids) {
        let at = c.at.to_rfc3339();
        // By id; comments materialised before ids were kept match on what they said.
        let found = held.iter().position(|h| {
            let field = |k: &str| h.get(k).and_then(serde_json::Value::as_str);
            match field("id") {
                Some(held_id) => held_id == id,
                None => {
                    field("by") == Some(c.author.as_str())
                        && field("at") == Some(at.as_str())
                        && field("text") == Some(c.text.as_str())
                }
            }
        });
        let by = found
            .map(|k| held.swap_remove(k))
            .and_then(|h| {
                h.get("by")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| origin.author.clone());
        out.push(json!({"id": id, "by": by, "at": at, "text": c.text}));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn materialise(
    tx: &WriteTx,
    origin: &Origin,
    received_at: &str,
    doc_id: Uuid,
    path: &str,
    payroll: Option<Uuid>,
    doc: &Automerge,
    record: &Record,
) -> Result<()> {
    let void = records::Void::columns;
    match record {
        Record::Payout(p) => {
            let (proof, serial, reference) = match &p.proof {
                records::Proof::Card(s) => ("CARD", Some(*s as i64), None),
                records::Proof::Pin => ("PIN", None, None),
                records::Proof::Signature(r) => ("SIGNATURE", None, Some(r.as_str())),
                records::Proof::Photo(r) => ("PHOTO", None, Some(r.as_str())),
            };
            let (voided_at, void_reason) = void(&p.void);
            tx.sqlite().prepare_cached(
                "INSERT INTO payouts (doc_id, device_id, beneficiary_id, entitlement_id, collector_id,
                     amount_minor, currency, proof, card_serial, proof_ref, paid_at, received_at,
                     override_reason, voided_at, void_reason, payroll_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (doc_id) DO UPDATE SET voided_at = excluded.voided_at,
                     void_reason = excluded.void_reason",
            )?
            .execute(params![
                doc_id,
                origin.device_id,
                p.beneficiary_id,
                p.entitlement_id,
                p.collector_id,
                p.amount.minor,
                p.amount.currency.as_str(),
                proof,
                serial,
                reference,
                p.paid_at.to_rfc3339(),
                received_at,
                p.override_reason,
                voided_at,
                void_reason,
                payroll,
            ])?;
        }
        Record::Distribution(d) => {
            let (voided_at, void_reason) = void(&d.void);
            tx.sqlite().prepare_cached(
                "INSERT INTO distributions (doc_id, device_id, beneficiary_id, entitlement_id, collector_id,
                     items, distributed_at, received_at, voided_at, void_reason, payroll_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (doc_id) DO UPDATE SET voided_at = excluded.voided_at,
                     void_reason = excluded.void_reason",
            )?
            .execute(params![
                doc_id,
                origin.device_id,
                d.beneficiary_id,
                d.entitlement_id,
                d.collector_id,
                json!(d.items).to_string(),
                d.distributed_at.to_rfc3339(),
                received_at,
                voided_at,
                void_reason,
                payroll,
            ])?;
        }
        Record::Timesheet(t) => {
            let (voided_at, void_reason) = void(&t.void);
            tx.sqlite().prepare_cached(
                "INSERT INTO timesheets (id, project_id, beneficiary_id, work_date, day_hundredths, status,
                     recorded_by, recorded_at, voided_at, void_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET voided_at = excluded.voided_at,
                     void_reason = excluded.void_reason",
            )?
            .execute(params![
                doc_id,
                t.project_id,
                t.beneficiary_id,
                t.work_date.to_string(),
                t.day_hundredths,
                origin.actor,
                t.recorded_at.to_rfc3339(),
                voided_at,
                void_reason,
            ])?;
            if t.void.is_some() {
                tasks::withdraw(tx, TaskKind::Timesheet, doc_id, &origin.actor)?;
            } else {
                let summary = format!(
                    "{} of a day on {}",
                    t.day_hundredths as f64 / 100.0,
                    t.work_date
                );
                tasks::open(
                    tx,
                    TaskKind::Timesheet,
                    doc_id,
                    path,
                    &summary,
                    &origin.actor,
                    origin.user_id,
                )?;
            }
        }
        Record::Grievance(g) => {
            let comments = signed_comments(tx, origin, doc_id, doc, &g.comments)?;
            tx.sqlite().prepare_cached(
                "INSERT INTO grievances (doc_id, device_id, beneficiary_id, path, category, description,
                     status, assignee, comments, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (doc_id) DO UPDATE SET status = excluded.status,
                     assignee = excluded.assignee, comments = excluded.comments,
                     category = excluded.category, updated_at = excluded.updated_at",
            )?
            .execute(params![
                doc_id,
                origin.device_id,
                g.beneficiary_id,
                path,
                g.category,
                g.description,
                g.status.as_str(),
                g.assignee,
                json!(comments).to_string(),
                g.created_at.to_rfc3339(),
                received_at,
            ])?;
        }
        Record::Verification(v) => {
            let inserted = tx.sqlite().prepare_cached(
                "INSERT OR IGNORE INTO verifications (doc_id, device_id, beneficiary_id, answers,
                     proposed_status, note, verified_at, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                doc_id,
                origin.device_id,
                v.beneficiary_id,
                json!(v.answers).to_string(),
                v.proposed_status.map(|s| s.as_str()),
                v.note,
                v.verified_at.to_rfc3339(),
                received_at,
            ])?;
            if inserted == 1
                && let Some(to) = v.proposed_status
            {
                let summary = format!("become {to}: {}", v.note);
                tasks::open(
                    tx,
                    TaskKind::StatusChange,
                    doc_id,
                    path,
                    &summary,
                    &origin.actor,
                    origin.user_id,
                )?;
            }
        }
        Record::ContactUpdate(c) => {
            let inserted = tx.sqlite().prepare_cached(
                "INSERT OR IGNORE INTO contact_updates (doc_id, device_id, beneficiary_id, individual_id,
                     phone, address, updated_at, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                doc_id,
                origin.device_id,
                c.beneficiary_id,
                c.individual_id,
                c.phone,
                c.address,
                c.updated_at.to_rfc3339(),
                received_at,
            ])?;
            if inserted == 1 {
                let what: Vec<&str> = [c.phone.as_deref(), c.address.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                let summary = format!("new contact: {}", what.join(", "));
                tasks::open(
                    tx,
                    TaskKind::ContactUpdate,
                    doc_id,
                    path,
                    &summary,
                    &origin.actor,
                    origin.user_id,
                )?;
            }
        }
    }
    Ok(())
}

/// A change as `doc_changes` holds it: document id, record kind, change bytes.
type LoggedChange = (Vec<u8>, String, Vec<u8>);

/// Changes to records in the device's assignment made elsewhere (other devices, the office),
/// after `cursor`, up to about `max_bytes`.
pub fn changes_since(
    conn: &ReadTx,
    device_id: Uuid,
    assignment_path: &str,
    cursor: u64,
    max_bytes: u32,
) -> Result<ChangesReply> {
    let budget = match max_bytes {
        0 => crate::sync::store::replica::DEFAULT_PAGE_BYTES,
        n => n.clamp(4 * 1024, crate::sync::store::replica::MAX_PAGE_BYTES),
    } as usize;
    let last: u64 =
        conn.sqlite()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM doc_changes", [], |r| {
                r.get(0)
            })?;
    if cursor > last {
        return Err(Error::refused(
            outpost_proto::wire::ErrorCode::CursorInvalid,
            "the changes cursor is ahead of the server (restored from a backup?); start again from 0",
        ));
    }
    let partitions = super::partitions(conn.sqlite(), assignment_path, false)?;
    let mut statements = super::statements(
        conn.sqlite(),
        "SELECT c.seq, c.doc_id, d.kind, c.data FROM doc_changes c JOIN documents d ON d.id = c.doc_id
         WHERE c.path = ?1 AND c.seq > ?2 AND (c.device_id IS NULL OR c.device_id <> ?3)
         ORDER BY c.seq",
        partitions.len(),
    )?;
    let mut rows = super::Merged::open(
        &mut statements,
        &partitions,
        |stmt, partition| stmt.query(params![partition.path, cursor as i64, device_id]),
        |r| -> rusqlite::Result<(u64, LoggedChange)> {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
        },
    )?;
    let mut reply = ChangesReply {
        next_cursor: cursor,
        ..Default::default()
    };
    let mut bytes = 0usize;
    let mut index: std::collections::HashMap<Vec<u8>, usize> = Default::default();
    while let Some((seq, (doc_id, kind, data))) = rows.next()? {
        if bytes >= budget {
            reply.more = true;
            break;
        }
        reply.next_cursor = seq;
        bytes += data.len() + 4;
        let at = *index.entry(doc_id.clone()).or_insert_with(|| {
            bytes += doc_id.len() + kind.len() + 4;
            reply.docs.push(DocChanges {
                doc_id,
                kind,
                changes: Vec::new(),
                device_seq: 0,
            });
            reply.docs.len() - 1
        });
        reply.docs[at].changes.push(data);
    }
    Ok(reply)
}

/// Records a device sent that are in quarantine, newest first (for supervisors).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantined {
    pub doc_id: Uuid,
    pub kind: String,
    pub device_id: Option<Uuid>,
    pub device_seq: u64,
    pub reason: String,
    pub received_at: String,
}

pub fn quarantined(conn: &ReadTx, scope: &Scope, limit: u32) -> Result<Vec<Quarantined>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "SELECT q.doc_id, q.kind, q.device_id, q.device_seq, q.reason, q.received_at
         FROM quarantine q LEFT JOIN devices d ON d.id = q.device_id
         LEFT JOIN locations l ON l.id = d.assignment_id
         WHERE q.resolved_at IS NULL AND {}
         ORDER BY q.id DESC LIMIT ?2",
        crate::areas::store::IN_SCOPE
    ))?;
    let rows = stmt.query_map(params![scope.sql(), limit], |r| {
        let id: Vec<u8> = r.get(0)?;
        Ok(Quarantined {
            doc_id: Uuid::from_slice(&id).unwrap_or_default(),
            kind: r.get(1)?,
            device_id: r.get(2)?,
            device_seq: r.get(3)?,
            reason: r.get(4)?,
            received_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------------
// The office's side of shared records (grievances): it edits the same automerge document the
// devices do, through the same merge, so its comments reach the devices on their next sync.

#[derive(Debug, Clone, serde::Serialize)]
pub struct GrievanceRow {
    pub id: Uuid,
    pub beneficiary_id: Option<Uuid>,
    pub beneficiary_name: Option<String>,
    pub category: String,
    pub description: String,
    pub status: records::GrievanceStatus,
    pub assignee: Option<String>,
    pub comments: Vec<serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
}

const GRIEVANCE_SELECT: &str = "SELECT g.doc_id, g.beneficiary_id,
        (SELECT i.first_name || ' ' || i.last_name FROM beneficiaries b
           LEFT JOIN group_members m ON m.group_id = b.group_id AND m.relationship = 'HEAD'
           JOIN individuals i ON i.id = COALESCE(b.individual_id, m.individual_id)
          WHERE b.id = g.beneficiary_id),
        g.category, g.description, g.status, g.assignee, g.comments, g.created_at, g.updated_at
    FROM grievances g";

fn grievance_from_row(r: &rusqlite::Row) -> rusqlite::Result<GrievanceRow> {
    Ok(GrievanceRow {
        id: r.get(0)?,
        beneficiary_id: r.get(1)?,
        beneficiary_name: r.get(2)?,
        category: r.get(3)?,
        description: r.get(4)?,
        status: crate::store::text_column(r, 5)?,
        assignee: r.get(6)?,
        comments: crate::store::json_column(r, 7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

/// Grievances in `scope`, oldest update first (what waits longest comes first).
pub fn list_grievances(
    conn: &ReadTx,
    scope: &Scope,
    status: Option<records::GrievanceStatus>,
    limit: u32,
) -> Result<Vec<GrievanceRow>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "{GRIEVANCE_SELECT} WHERE (?1 IS NULL OR {}) AND (?2 IS NULL OR g.status = ?2)
         ORDER BY g.updated_at LIMIT ?3",
        crate::areas::store::under_path("g.path", "?1")
    ))?;
    let status = status.map(records::GrievanceStatus::as_str);
    let rows = stmt.query_map(params![scope.sql(), status, limit], grievance_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_grievance(conn: &ReadTx, scope: &Scope, id: Uuid) -> Result<GrievanceRow> {
    conn.sqlite()
        .query_row(
            &format!(
                "{GRIEVANCE_SELECT} WHERE g.doc_id = ?2 AND (?1 IS NULL OR {})",
                crate::areas::store::under_path("g.path", "?1")
            ),
            params![scope.sql(), id],
            grievance_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::not_found("grievance", id))
}

/// Applies an office edit to a record document through the same merge and validation as a
/// device's upload; a refused edit changes nothing.
pub fn office_edit(
    tx: &WriteTx,
    user: &crate::users::store::User,
    doc_id: Uuid,
    edit: impl FnOnce(&mut automerge::AutoCommit) -> std::result::Result<(), records::RecordError>,
) -> Result<()> {
    let scope = user.scope();
    let (kind, data, path): (String, Vec<u8>, String) = tx
        .sqlite()
        .query_row(
            "SELECT kind, data, path FROM documents WHERE id = ?1",
            [doc_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .filter(|(kind, _, path): &(String, Vec<u8>, String)| {
            // The office edits grievances only; payouts and the like are facts.
            kind == RecordKind::Grievance.as_str() && scope.contains(Some(path.as_str()))
        })
        .ok_or_else(|| Error::not_found("grievance", doc_id))?;
    let mut doc = automerge::AutoCommit::load(&data)
        .map_err(|e| Error::Internal(format!("stored document {doc_id} is unreadable: {e}")))?;
    let before = doc.get_heads();
    let before_edit = Record::read(&doc).map_err(|e| Error::Internal(e.to_string()))?;
    edit(&mut doc).map_err(|e| Error::Invalid(e.to_string()))?;
    let after_edit = Record::read(&doc).map_err(|e| Error::Invalid(e.to_string()))?;
    if let (Record::Grievance(a), Record::Grievance(b)) = (&before_edit, &after_edit)
        && !a.status.can_become(b.status)
    {
        return Err(Error::Invalid(format!(
            "a grievance cannot go from {} to {}",
            a.status.as_str(),
            b.status.as_str()
        )));
    }
    let changes: Vec<Vec<u8>> = doc
        .get_changes(&before)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    let origin = Origin {
        device_id: None,
        scope,
        home_path: path,
        actor: user.actor(),
        user_id: Some(user.id),
        author: user.username.clone(),
    };
    let docs = prepare(vec![DocChanges {
        doc_id: doc_id.as_bytes().to_vec(),
        kind,
        changes,
        device_seq: 0,
    }]);
    let result = push(tx, &origin, docs)?;
    match result.first() {
        Some(r) if r.outcome == DocOutcome::Accepted as i32 => {}
        Some(r) => return Err(Error::Invalid(r.reason.clone())),
        None => return Err(Error::Internal("the merge answered nothing".into())),
    }
    crate::store::audit::append(
        tx,
        &user.actor(),
        "record.office_edit",
        "record",
        Some(&doc_id.to_string()),
        &json!({}),
    )
}

/// Field verifications and contact updates wait for four eyes; these apply the decisions.
pub fn register_task_hooks(hooks: &mut tasks::Hooks) {
    hooks.register(TaskKind::StatusChange, apply_verification);
    hooks.register(TaskKind::ContactUpdate, apply_contact_update);
}

/// A verification's proposed status, once approved, becomes the beneficiary's; either way
/// the verification keeps the decision.
fn apply_verification(tx: &WriteTx, d: &tasks::Decided) -> Result<()> {
    let subject = d.task.subject_id;
    let (beneficiary, proposed, note): (Uuid, Option<String>, String) = tx.sqlite().query_row(
        "SELECT beneficiary_id, proposed_status, note FROM verifications WHERE doc_id = ?1",
        [subject],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if d.approved
        && let Some(to) = proposed
    {
        let to: BeneficiaryStatus = to
            .parse()
            .map_err(|e: outpost_proto::UnknownName| Error::Internal(e.to_string()))?;
        let why = if note.trim().is_empty() {
            "field verification".to_owned()
        } else {
            format!("field verification: {note}")
        };
        registry::change_status(tx, &d.user.actor(), &Scope::National, beneficiary, to, &why)?;
    }
    tx.sqlite().execute(
        "UPDATE verifications SET decision = ?2 WHERE doc_id = ?1",
        params![subject, if d.approved { "APPROVED" } else { "REJECTED" }],
    )?;
    Ok(())
}

/// An approved phone or address from the field becomes the person's; either way the update
/// keeps the decision.
fn apply_contact_update(tx: &WriteTx, d: &tasks::Decided) -> Result<()> {
    let subject = d.task.subject_id;
    if d.approved {
        let (individual, phone, address): (Uuid, Option<String>, Option<String>) =
            tx.sqlite().query_row(
                "SELECT individual_id, phone, address FROM contact_updates WHERE doc_id = ?1",
                [subject],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        registry::update_contact(tx, individual, phone.as_deref(), address.as_deref())?;
    }
    tx.sqlite().execute(
        "UPDATE contact_updates SET decision = ?2 WHERE doc_id = ?1",
        params![subject, if d.approved { "APPROVED" } else { "REJECTED" }],
    )?;
    Ok(())
}
