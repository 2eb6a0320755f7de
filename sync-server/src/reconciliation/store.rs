//! Reconciliation's reads and writes: loading a payroll's inputs for the engine
//! ([`crate::reconcile`]), and what supervisors add: float issued and returned, provider
//! statements, openIMIS sheets, resolutions of exceptions, and the request to sign off.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use outpost_proto::{Currency, EntitlementStatus, PayrollStatus};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::store::{ReadTx, WriteTx};
use crate::{
    Error, Result,
    reconciliation::{
        self as reconcile, DistributionFacts, EntitlementFacts, ExternalPayment, FloatMovement,
        Holding, Input, PayoutFacts, PayrollFacts, Report, StatusChange,
        sheets::{self, ProviderMapping, SheetError, SheetRow},
    },
    tasks::policy::TaskKind,
};
use crate::{
    areas::store::Scope,
    payroll::store::{self as payroll, Payroll},
    store::audit,
    store::{date_column, now},
    tasks::store as tasks,
    users::store::User,
};

/// How long after a cycle's end a payout may still arrive without being judged outside it.
pub const SYNC_GRACE_DAYS: i64 = 14;

fn instant(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn currency(s: &str) -> rusqlite::Result<Currency> {
    s.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Everything the engine needs about one payroll, in a few range reads.
pub fn inputs(conn: &ReadTx, payroll_id: Uuid) -> Result<Input> {
    let (cur, start, end, closed, rule): (
        String,
        chrono::NaiveDate,
        chrono::NaiveDate,
        Option<String>,
        crate::plans::rules::Rule,
    ) = conn
        .sqlite()
        .query_row(
            "SELECT p.currency, c.start_date, c.end_date, p.closed_at, b.rule FROM payrolls p
             JOIN payment_cycles c ON c.id = p.cycle_id JOIN benefit_plans b ON b.id = p.plan_id
             WHERE p.id = ?1",
            [payroll_id],
            |r| {
                Ok((
                    r.get(0)?,
                    date_column(r, 1)?,
                    date_column(r, 2)?,
                    r.get(3)?,
                    crate::store::json_column(r, 4)?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| Error::not_found("payroll", payroll_id))?;
    let payroll = PayrollFacts {
        currency: currency(&cur)?,
        window_start: start.and_time(NaiveTime::MIN).and_utc(),
        window_end: end.and_time(NaiveTime::MIN).and_utc() + Duration::days(1),
        sync_grace: Duration::days(SYNC_GRACE_DAYS),
        closed_at: closed.as_deref().map(instant).transpose()?,
        overpayment_tolerance: rule.overpayment_tolerance,
    };

    // Read with borrowed text (no allocation per cell): a million-line payroll is read here
    // every time a record arrives and someone looks.
    let mut stmt = conn.sqlite().prepare(
        "SELECT id, beneficiary_id, amount_minor, currency, goods, status FROM entitlements WHERE payroll_id = ?1",
    )?;
    let entitlements = stmt
        .query_map([payroll_id], |r| {
            let goods = r.get_ref(4)?.as_str()?;
            let goods = if goods == "[]" {
                Vec::new()
            } else {
                let lines: Vec<crate::plans::rules::GoodsLine> = serde_json::from_str(goods)
                    .map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            4,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?;
                lines.into_iter().map(|g| (g.item, g.quantity)).collect()
            };
            Ok(EntitlementFacts {
                id: r.get(0)?,
                beneficiary: r.get(1)?,
                amount_minor: r.get(2)?,
                currency: currency(r.get_ref(3)?.as_str()?)?,
                goods,
                awaiting_approval: r.get_ref(5)?.as_str()?
                    == EntitlementStatus::AwaitingApproval.as_str(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    // Devices are few: their agents are looked up here rather than joined on every payout.
    let agents: HashMap<Uuid, Uuid> = conn
        .sqlite()
        .prepare("SELECT id, agent_id FROM devices")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.sqlite().prepare(
        "SELECT doc_id, entitlement_id, beneficiary_id, device_id, amount_minor, currency, paid_at,
                received_at, override_reason IS NOT NULL, voided_at IS NOT NULL
         FROM payouts WHERE payroll_id = ?1",
    )?;
    let payouts = stmt
        .query_map([payroll_id], |r| {
            let device: Option<Uuid> = r.get(3)?;
            Ok(PayoutFacts {
                id: r.get(0)?,
                entitlement: r.get(1)?,
                beneficiary: r.get(2)?,
                agent: device.and_then(|d| agents.get(&d).copied()),
                device,
                amount_minor: r.get(4)?,
                currency: currency(r.get_ref(5)?.as_str()?)?,
                paid_at: instant(r.get_ref(6)?.as_str()?)?,
                received_at: instant(r.get_ref(7)?.as_str()?)?,
                overridden: r.get(8)?,
                voided: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = conn.sqlite().prepare(
        "SELECT x.doc_id, x.entitlement_id, d.agent_id, x.items, x.voided_at IS NOT NULL
         FROM distributions x LEFT JOIN devices d ON d.id = x.device_id WHERE x.payroll_id = ?1",
    )?;
    let distributions = stmt
        .query_map([payroll_id], |r| {
            let items: std::collections::BTreeMap<String, i64> = crate::store::json_column(r, 3)?;
            Ok(DistributionFacts {
                id: r.get(0)?,
                entitlement: r.get(1)?,
                agent: r.get(2)?,
                items: items.into_iter().collect(),
                voided: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    // Only the paid beneficiaries' histories matter ("was it ACTIVE when paid").
    let mut stmt = conn.sqlite().prepare(
        "SELECT h.beneficiary_id, h.changed_at, h.to_status FROM beneficiary_status_history h
         WHERE h.beneficiary_id IN (SELECT beneficiary_id FROM payouts WHERE payroll_id = ?1)",
    )?;
    let status_changes = stmt
        .query_map([payroll_id], |r| {
            Ok(StatusChange {
                beneficiary: r.get(0)?,
                at: instant(&r.get::<_, String>(1)?)?,
                to: crate::store::text_column(r, 2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = conn.sqlite().prepare(
        "SELECT agent_id, holding, is_cash, quantity FROM float_movements WHERE payroll_id = ?1",
    )?;
    let floats = stmt
        .query_map([payroll_id], |r| {
            let holding: String = r.get(1)?;
            let is_cash: bool = r.get(2)?;
            Ok(FloatMovement {
                agent: r.get(0)?,
                what: if is_cash {
                    Holding::Cash(currency(&holding)?)
                } else {
                    Holding::Item(holding)
                },
                quantity: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = conn.sqlite().prepare(
        "SELECT id, source, reference, entitlement_id, beneficiary_id, amount_minor, currency
         FROM external_payments WHERE payroll_id = ?1",
    )?;
    let external = stmt
        .query_map([payroll_id], |r| {
            Ok(ExternalPayment {
                id: r.get(0)?,
                source: r.get(1)?,
                reference: r.get(2)?,
                entitlement: r.get(3)?,
                beneficiary: r.get(4)?,
                amount_minor: r.get(5)?,
                currency: currency(&r.get::<_, String>(6)?)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    Ok(Input {
        payroll,
        entitlements,
        payouts,
        distributions,
        status_changes,
        floats,
        external,
    })
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Resolution {
    pub reason: String,
    pub resolved_by: String,
    pub resolved_at: String,
}

/// A payroll's reconciliation with the supervisors' resolutions beside it.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub payroll: Payroll,
    pub report: Report,
    pub resolutions: HashMap<String, Resolution>,
}

impl Reconciliation {
    pub fn open_exceptions(&self) -> usize {
        self.report
            .exceptions
            .iter()
            .filter(|e| !self.resolutions.contains_key(&e.key))
            .count()
    }
}

pub fn reconcile_payroll(conn: &ReadTx, scope: &Scope, payroll_id: Uuid) -> Result<Reconciliation> {
    let payroll = payroll::get_payroll(conn, scope, payroll_id)?;
    reconcile_with(conn, payroll, payroll_id)
}

/// A payroll's reconciliation, for a payroll already read in the caller's scope.
pub fn reconcile_with(conn: &ReadTx, payroll: Payroll, payroll_id: Uuid) -> Result<Reconciliation> {
    let report = reconcile::reconcile(&inputs(conn, payroll_id)?);
    let details: HashMap<&str, &str> = report
        .exceptions
        .iter()
        .map(|e| (e.key.as_str(), e.detail.as_str()))
        .collect();
    let mut stmt = conn.sqlite().prepare(
        "SELECT key, detail, reason, resolved_by, resolved_at FROM exception_resolutions WHERE payroll_id = ?1",
    )?;
    let mut resolutions = HashMap::new();
    for row in stmt.query_map([payroll_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            Resolution {
                reason: r.get(2)?,
                resolved_by: r.get(3)?,
                resolved_at: r.get(4)?,
            },
        ))
    })? {
        let (key, detail, resolution) = row?;
        // A resolution covers the exception as it was when resolved, not a worse one since.
        if details.get(key.as_str()) == Some(&detail.as_str()) {
            resolutions.insert(key, resolution);
        }
    }
    Ok(Reconciliation {
        payroll,
        report,
        resolutions,
    })
}

/// The office's writes that change what reconciliation reads (statuses, float, external
/// payments, resolutions, payroll and entitlement decisions). Log-ins, comments and the like
/// are audited too, but must not throw every cached report away.
const RECONCILIATION_ACTIONS: &str = "'beneficiary.status', 'registry.import', 'payroll.status',
    'payroll.generate', 'task.complete', 'float.issue', 'float.return', 'reconciliation.resolve',
    'reconciliation.statement', 'reconciliation.openimis_import'";

/// Changes whenever anything reconciliation reads may have changed: a record arrived (the
/// change log grew) or the office wrote something reconciliation reads (it is audited).
pub fn stamp(conn: &ReadTx) -> Result<(i64, i64)> {
    Ok(conn.sqlite().query_row(
        &format!(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM doc_changes),
                    (SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE action IN ({RECONCILIATION_ACTIONS}))"
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Whether the payroll's money may still be recorded: once signed off (CLOSED) its float,
/// statements and sheets are final; only its exceptions (a late sync) may still be resolved.
fn writable(payroll: &Payroll, closed_too: bool) -> Result<()> {
    match payroll.status {
        PayrollStatus::Approved | PayrollStatus::Reconciled => Ok(()),
        PayrollStatus::Closed if closed_too => Ok(()),
        PayrollStatus::Closed => Err(Error::Conflict(
            "this payroll is signed off; its float, statements and sheets are final".into(),
        )),
        s => Err(Error::Conflict(format!(
            "a {s} payroll has nothing to reconcile"
        ))),
    }
}

/// Resolves an exception with a reason; the exception must exist in the current report.
pub fn resolve(tx: &WriteTx, user: &User, payroll_id: Uuid, key: &str, reason: &str) -> Result<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Invalid("a resolution needs a reason".into()));
    }
    let rec = reconcile_payroll(tx, &user.scope(), payroll_id)?;
    writable(&rec.payroll, true)?;
    let exception = rec
        .report
        .exceptions
        .iter()
        .find(|e| e.key == key)
        .ok_or_else(|| Error::not_found("exception", key))?;
    if rec.resolutions.contains_key(key) {
        return Err(Error::Conflict("this exception is already resolved".into()));
    }
    // The detail is kept with the resolution: if the exception changes (a third payment, a
    // different float), the resolution no longer covers it and it opens again.
    tx.sqlite().execute(
        "INSERT INTO exception_resolutions (payroll_id, key, detail, reason, resolved_by, resolved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (payroll_id, key) DO UPDATE SET detail = excluded.detail, reason = excluded.reason,
             resolved_by = excluded.resolved_by, resolved_at = excluded.resolved_at",
        params![payroll_id, key, exception.detail, reason, user.actor(), now()],
    )?;
    audit::append(
        tx,
        &user.actor(),
        "reconciliation.resolve",
        "payroll",
        Some(&payroll_id.to_string()),
        &json!({ "key": key, "kind": exception.kind, "detail": exception.detail, "reason": reason }),
    )
}

/// Cash or goods handed to an agent for the payroll (`quantity` > 0) or handed back (< 0).
pub fn record_float(
    tx: &WriteTx,
    user: &User,
    payroll_id: Uuid,
    agent: &str,
    holding: &str,
    quantity: i64,
    note: &str,
) -> Result<()> {
    let p = payroll::get_payroll(tx, &user.scope(), payroll_id)?;
    writable(&p, false)?;
    if quantity == 0 {
        return Err(Error::Invalid("the quantity cannot be zero".into()));
    }
    // The bound a device's payout has: beyond it is a typing slip, not cash handed over.
    if quantity.unsigned_abs() > outpost_proto::MAX_PAYMENT_MINOR as u64 {
        return Err(Error::Invalid(format!(
            "{quantity} is beyond any plausible amount (at most {} either way)",
            outpost_proto::MAX_PAYMENT_MINOR
        )));
    }
    let agent_id: Uuid = tx
        .sqlite()
        .query_row(
            &format!(
                "SELECT u.id FROM users u JOIN locations l ON l.id = u.area_id
                 WHERE u.username = ?2 AND u.role = 'FIELD_AGENT' AND {}",
                crate::areas::store::IN_SCOPE
            ),
            params![user.scope().sql(), agent.trim()],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("field agent", agent.trim()))?;
    let holding = holding.trim();
    let is_cash = holding.parse::<Currency>().is_ok();
    if is_cash && holding != p.currency.as_str() {
        return Err(Error::Invalid(format!(
            "this payroll pays in {}, not {holding}",
            p.currency
        )));
    }
    if !is_cash {
        crate::plans::store::goods_item_by_code(tx, holding)?;
    }
    tx.sqlite().execute(
        "INSERT INTO float_movements (payroll_id, agent_id, holding, is_cash, quantity, note, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![payroll_id, agent_id, holding, is_cash, quantity, note.trim(), user.actor(), now()],
    )?;
    audit::append(
        tx,
        &user.actor(),
        if quantity > 0 {
            "float.issue"
        } else {
            "float.return"
        },
        "payroll",
        Some(&payroll_id.to_string()),
        &json!({ "agent": agent, "holding": holding, "quantity": quantity, "note": note }),
    )
}

/// The entitlement a line names, by our reference (its id) or by the beneficiary's code.
fn match_line(
    conn: &ReadTx,
    payroll_id: Uuid,
    our_reference: Option<&str>,
    beneficiary_code: Option<&str>,
) -> Result<(Option<Uuid>, Option<Uuid>)> {
    if let Some(id) = our_reference.and_then(|r| Uuid::parse_str(r.trim()).ok()) {
        let found: Option<Uuid> = conn
            .sqlite()
            .query_row(
                "SELECT beneficiary_id FROM entitlements WHERE id = ?1 AND payroll_id = ?2",
                params![id, payroll_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(b) = found {
            return Ok((Some(id), Some(b)));
        }
    }
    let Some(code) = beneficiary_code else {
        return Ok((None, None));
    };
    let found: Option<Uuid> = conn.sqlite()
        .query_row(
            "SELECT e.beneficiary_id FROM entitlements e JOIN beneficiaries b ON b.id = e.beneficiary_id
             LEFT JOIN individuals i ON i.id = b.individual_id LEFT JOIN groups g ON g.id = b.group_id
             WHERE e.payroll_id = ?1 AND (i.external_id = ?2 OR g.code = ?2)",
            params![payroll_id, code.trim()],
            |r| r.get(0),
        )
        .optional()?;
    Ok((None, found))
}

/// A payment reported from outside the devices, as recorded.
struct External<'a> {
    source: &'a str,
    reference: &'a str,
    entitlement: Option<Uuid>,
    beneficiary: Option<Uuid>,
    amount_minor: i64,
    currency: Currency,
}

/// Records it once per payroll, source and reference: a file imported twice adds nothing.
fn record_external(
    tx: &WriteTx,
    user: &User,
    payroll_id: Uuid,
    x: &External,
    outcome: &mut ImportOutcome,
) -> Result<()> {
    let n = tx.sqlite().execute(
        "INSERT OR IGNORE INTO external_payments (payroll_id, source, reference, entitlement_id, beneficiary_id,
             amount_minor, currency, imported_by, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![payroll_id, x.source, x.reference, x.entitlement, x.beneficiary, x.amount_minor,
                x.currency.as_str(), user.actor(), now()],
    )?;
    if n == 1 {
        outcome.imported += 1;
    } else {
        outcome.already_known += 1;
    }
    Ok(())
}

/// Whether a statement line names an entitlement or a beneficiary the registry knows.
fn known_elsewhere(conn: &ReadTx, line: &sheets::StatementLine) -> Result<bool> {
    if let Some(id) = line
        .our_reference
        .as_deref()
        .and_then(|r| Uuid::parse_str(r.trim()).ok())
    {
        let known: bool = conn.sqlite().query_row(
            "SELECT EXISTS (SELECT 1 FROM entitlements WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        if known {
            return Ok(true);
        }
    }
    match line.beneficiary.as_deref() {
        Some(code) => Ok(conn.sqlite().query_row(
            "SELECT EXISTS (SELECT 1 FROM individuals WHERE external_id = ?1)
                 OR EXISTS (SELECT 1 FROM groups WHERE code = ?1)",
            [code.trim()],
            |r| r.get(0),
        )?),
        None => Ok(false),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImportOutcome {
    pub imported: usize,
    /// Statement lines for another payroll (another payment point): left for that one.
    pub other_payrolls: usize,
    /// Lines whose reference was imported before (a statement sent twice changes nothing).
    pub already_known: usize,
    pub errors: Vec<SheetError>,
}

/// Imports a provider's statement through the mapping, which is saved for the provider.
pub fn import_statement(
    tx: &WriteTx,
    user: &User,
    payroll_id: Uuid,
    provider: &str,
    mapping: &ProviderMapping,
    bytes: &[u8],
) -> Result<ImportOutcome> {
    let provider = provider.trim().to_uppercase();
    crate::areas::store::check_code("provider", &provider)?;
    let p = payroll::get_payroll(tx, &user.scope(), payroll_id)?;
    writable(&p, false)?;
    let lines = match sheets::read_statement(bytes, mapping, p.currency) {
        Ok(lines) => lines,
        Err(errors) => {
            return Ok(ImportOutcome {
                other_payrolls: 0,
                imported: 0,
                already_known: 0,
                errors,
            });
        }
    };
    tx.sqlite().execute(
        "INSERT INTO provider_mappings (provider, mapping, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (provider) DO UPDATE SET mapping = excluded.mapping, updated_by = excluded.updated_by,
             updated_at = excluded.updated_at",
        params![provider, json!(mapping).to_string(), user.actor(), now()],
    )?;
    let mut outcome = ImportOutcome {
        other_payrolls: 0,
        imported: 0,
        already_known: 0,
        errors: Vec::new(),
    };
    for line in &lines {
        let (entitlement, beneficiary) = match_line(
            tx,
            payroll_id,
            line.our_reference.as_deref(),
            line.beneficiary.as_deref(),
        )?;
        // A line naming someone of another payroll is that payroll's; only a line naming
        // nobody known is kept here, as a payment that matches no entitlement.
        if entitlement.is_none() && beneficiary.is_none() && known_elsewhere(tx, line)? {
            outcome.other_payrolls += 1;
            continue;
        }
        let payment = External {
            source: &provider,
            reference: &line.reference,
            entitlement,
            beneficiary,
            amount_minor: line.amount_minor,
            currency: line.currency,
        };
        record_external(tx, user, payroll_id, &payment, &mut outcome)?;
    }
    audit::append(
        tx,
        &user.actor(),
        "reconciliation.statement",
        "payroll",
        Some(&payroll_id.to_string()),
        &json!({ "provider": provider, "imported": outcome.imported, "already_known": outcome.already_known }),
    )?;
    Ok(outcome)
}

pub fn provider_mapping(conn: &ReadTx, provider: &str) -> Result<Option<ProviderMapping>> {
    Ok(conn
        .sqlite()
        .query_row(
            "SELECT mapping FROM provider_mappings WHERE provider = ?1",
            [provider.trim().to_uppercase()],
            |r| crate::store::json_column(r, 0),
        )
        .optional()?)
}

/// The openIMIS reconciliation sheet of a payroll, one row per entitlement.
pub fn openimis_rows(conn: &ReadTx, scope: &Scope, payroll_id: Uuid) -> Result<Vec<SheetRow>> {
    let rec = reconcile_payroll(conn, scope, payroll_id)?;
    let receipts = receipts(conn, payroll_id)?;
    let approved = !matches!(
        rec.payroll.status,
        PayrollStatus::PendingApproval | PayrollStatus::Rejected
    );
    let mut stmt = conn.sqlite().prepare_cached(
        "SELECT COALESCE(i.first_name, hi.first_name), COALESCE(i.last_name, hi.last_name), COALESCE(i.dob, hi.dob),
                e.goods <> '[]' AND e.amount_minor = 0
         FROM entitlements e JOIN beneficiaries b ON b.id = e.beneficiary_id
         LEFT JOIN individuals i ON i.id = b.individual_id
         LEFT JOIN group_members m ON m.group_id = b.group_id AND m.relationship = 'HEAD'
         LEFT JOIN individuals hi ON hi.id = m.individual_id
         WHERE e.id = ?1",
    )?;
    let mut rows = Vec::with_capacity(rec.report.lines.len());
    for line in &rec.report.lines {
        let (first, last, dob, goods): (Option<String>, Option<String>, Option<String>, bool) =
            stmt.query_row([line.entitlement], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        let paid = line.status == reconcile::LineStatus::Paid;
        rows.push(SheetRow {
            payroll_name: rec.payroll.name.clone(),
            payroll_status: rec.payroll.status.to_string(),
            first_name: first.unwrap_or_default(),
            last_name: last.unwrap_or_default(),
            dob: dob.unwrap_or_default(),
            code: line.entitlement.to_string(),
            status: sheets::openimis_status(approved, paid).to_owned(),
            amount: rec.payroll.currency.format_minor(line.due_minor),
            kind: if goods { "GOODS" } else { "CASH" }.to_owned(),
            receipt: receipts.get(&line.entitlement).cloned().unwrap_or_default(),
            paid: Some(paid),
        });
    }
    Ok(rows)
}

/// A receipt per entitlement: the external reference, or the first payout's record id.
fn receipts(conn: &ReadTx, payroll_id: Uuid) -> Result<HashMap<Uuid, String>> {
    let mut out = HashMap::new();
    let mut stmt = conn.sqlite().prepare(
        "SELECT entitlement_id, doc_id FROM payouts WHERE payroll_id = ?1 AND voided_at IS NULL ORDER BY received_at",
    )?;
    for row in stmt.query_map([payroll_id], |r| {
        Ok((r.get::<_, Uuid>(0)?, r.get::<_, Uuid>(1)?))
    })? {
        let (e, doc) = row?;
        out.entry(e).or_insert_with(|| doc.to_string());
    }
    let mut stmt = conn.sqlite().prepare(
        "SELECT entitlement_id, reference FROM external_payments WHERE payroll_id = ?1 AND entitlement_id IS NOT NULL",
    )?;
    for row in stmt.query_map([payroll_id], |r| {
        Ok((r.get::<_, Uuid>(0)?, r.get::<_, String>(1)?))
    })? {
        let (e, reference) = row?;
        out.entry(e).or_insert(reference);
    }
    Ok(out)
}

/// Imports an openIMIS sheet back: each paid row not already paid here is recorded as a
/// payment with its receipt. Row errors are reported by code and the rest is applied
/// (openIMIS's PARTIAL_SUCCESS).
pub fn import_openimis(
    tx: &WriteTx,
    user: &User,
    payroll_id: Uuid,
    bytes: &[u8],
) -> Result<ImportOutcome> {
    let current = openimis_rows(tx, &user.scope(), payroll_id)?;
    let p = payroll::get_payroll(tx, &user.scope(), payroll_id)?;
    writable(&p, false)?;
    let (rows, mut errors) = sheets::read_openimis(bytes).map_err(Error::Invalid)?;
    let by_code: HashMap<&str, &SheetRow> = current.iter().map(|r| (r.code.as_str(), r)).collect();
    let mut seen: std::collections::HashSet<String> = Default::default();
    let mut outcome = ImportOutcome {
        other_payrolls: 0,
        imported: 0,
        already_known: 0,
        errors: Vec::new(),
    };
    for (row, sheet) in rows {
        let fail = |reason: String| SheetError {
            row,
            code: sheet.code.clone(),
            reason,
        };
        if sheet.paid == Some(true) && !seen.insert(sheet.code.clone()) {
            errors.push(fail(
                "this code is paid on an earlier row of the sheet".into(),
            ));
            continue;
        }
        let Some(ours) = by_code.get(sheet.code.as_str()) else {
            errors.push(fail("no entitlement of this payroll has this code".into()));
            continue;
        };
        if !sheet.status.eq_ignore_ascii_case(&ours.status) {
            errors.push(fail(format!(
                "Status is {}, but the benefit is {}",
                sheet.status, ours.status
            )));
            continue;
        }
        if sheet.paid != Some(true) || ours.paid == Some(true) {
            outcome.already_known += usize::from(sheet.paid == Some(true));
            continue;
        }
        let amount = match p.currency.parse_minor(&sheet.amount) {
            Ok(a) if a > 0 => a,
            _ => {
                errors.push(fail(format!(
                    "Amount '{}' is not an amount in {}",
                    sheet.amount, p.currency
                )));
                continue;
            }
        };
        let entitlement = Uuid::parse_str(&sheet.code).ok();
        let beneficiary: Option<Uuid> = tx
            .sqlite()
            .query_row(
                "SELECT beneficiary_id FROM entitlements WHERE id = ?1",
                [entitlement],
                |r| r.get(0),
            )
            .optional()?;
        let payment = External {
            source: "OPENIMIS",
            reference: &sheet.receipt,
            entitlement,
            beneficiary,
            amount_minor: amount,
            currency: p.currency,
        };
        record_external(tx, user, payroll_id, &payment, &mut outcome)?;
    }
    audit::append(
        tx,
        &user.actor(),
        "reconciliation.openimis_import",
        "payroll",
        Some(&payroll_id.to_string()),
        &json!({ "imported": outcome.imported, "errors": errors.len() }),
    )?;
    outcome.errors = errors;
    Ok(outcome)
}

/// Asks for the payroll to be signed off: every exception must be resolved first. Opens the
/// sign-off task, whose approval (by someone else) reconciles and closes the payroll.
pub fn request_sign_off(tx: &WriteTx, user: &User, payroll_id: Uuid) -> Result<Uuid> {
    let rec = reconcile_payroll(tx, &user.scope(), payroll_id)?;
    if rec.payroll.status != PayrollStatus::Approved {
        return Err(Error::Conflict(format!(
            "only an APPROVED payroll can be signed off; this one is {}",
            rec.payroll.status
        )));
    }
    let open = rec.open_exceptions();
    if open > 0 {
        return Err(Error::Conflict(format!(
            "{open} exception(s) are still open; resolve them before signing off"
        )));
    }
    let path: String = tx.sqlite().query_row(
        "SELECT l.path FROM payrolls p JOIN locations l ON l.id = p.location_id WHERE p.id = ?1",
        [payroll_id],
        |r| r.get(0),
    )?;
    let t = &rec.report.totals;
    let summary = format!(
        "sign off {}: paid {} of {} {}",
        rec.payroll.name,
        rec.payroll.currency.format_wide(t.paid_minor),
        rec.payroll.currency.format_wide(t.due_minor),
        rec.payroll.currency
    );
    tasks::open(
        tx,
        TaskKind::PayrollSignOff,
        payroll_id,
        &path,
        &summary,
        &user.actor(),
        crate::users::store::actor_user(tx, &user.actor())?,
    )
}

// ---------------------------------------------------------------------------------------------
// What the dashboard and the beneficiary page show.

/// Amount paid per day (the device's local date) across `payrolls`, oldest first.
///
/// Summed without overflow: SQLite's `SUM` of integers fails outright on overflow (and with
/// it the dashboard), so each amount is split into its high and low 32 bits, summed apart in
/// SQL (each part stays below 2^32, so over four thousand million rows would be needed to
/// overflow either) and joined again in `i128`.
pub fn paid_by_day(conn: &ReadTx, payrolls: &[Uuid]) -> Result<Vec<(String, i128)>> {
    let mut by_day: std::collections::BTreeMap<String, i128> = Default::default();
    let mut stmt = conn.sqlite().prepare_cached(
        "SELECT substr(paid_at, 1, 10), SUM(amount_minor >> 32), SUM(amount_minor & 4294967295)
         FROM payouts WHERE payroll_id = ?1 AND voided_at IS NULL GROUP BY 1",
    )?;
    for id in payrolls {
        for row in stmt.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (day, high, low) = row?;
            *by_day.entry(day).or_default() += (i128::from(high) << 32) + i128::from(low);
        }
    }
    Ok(by_day.into_iter().collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct PayoutRow {
    pub id: Uuid,
    pub payroll: String,
    pub amount: String,
    pub currency: String,
    pub proof: String,
    pub paid_at: String,
    pub received_at: String,
    pub agent: Option<String>,
    pub voided: Option<String>,
}

/// A beneficiary's payouts, newest first (through the documents index by beneficiary).
pub fn payouts_of(conn: &ReadTx, beneficiary: Uuid) -> Result<Vec<PayoutRow>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT p.doc_id, pr.name, p.amount_minor, p.currency, p.proof, p.paid_at, p.received_at, u.username,
                p.void_reason
         FROM documents d JOIN payouts p ON p.doc_id = d.id JOIN payrolls pr ON pr.id = p.payroll_id
         LEFT JOIN devices dv ON dv.id = p.device_id LEFT JOIN users u ON u.id = dv.agent_id
         WHERE d.beneficiary_id = ?1 AND d.kind = 'payout' ORDER BY p.paid_at DESC",
    )?;
    let rows = stmt.query_map([beneficiary], |r| {
        let cur = currency(&r.get::<_, String>(3)?)?;
        Ok(PayoutRow {
            id: r.get(0)?,
            payroll: r.get(1)?,
            amount: cur.format_minor(r.get(2)?),
            currency: cur.to_string(),
            proof: r.get(4)?,
            paid_at: r.get(5)?,
            received_at: r.get(6)?,
            agent: r.get(7)?,
            voided: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Codes and names of beneficiaries, for report rows.
pub fn labels(conn: &ReadTx, ids: &[Uuid]) -> Result<HashMap<Uuid, (String, String)>> {
    let mut stmt = conn.sqlite().prepare_cached(
        "SELECT COALESCE(i.external_id, g.code), COALESCE(i.first_name || ' ' || i.last_name, h.first_name || ' ' || h.last_name, g.code)
         FROM beneficiaries b LEFT JOIN individuals i ON i.id = b.individual_id
         LEFT JOIN groups g ON g.id = b.group_id
         LEFT JOIN group_members m ON m.group_id = g.id AND m.relationship = 'HEAD'
         LEFT JOIN individuals h ON h.id = m.individual_id WHERE b.id = ?1",
    )?;
    let mut out = HashMap::with_capacity(ids.len());
    for id in ids {
        if out.contains_key(id) {
            continue;
        }
        if let Some(label) = stmt
            .query_row([id], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            })
            .optional()?
        {
            out.insert(*id, label);
        }
    }
    Ok(out)
}

/// Field agents whose area overlaps `scope`, for the float form.
pub fn agents(conn: &ReadTx, scope: &Scope) -> Result<Vec<String>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "SELECT u.username FROM users u JOIN locations l ON l.id = u.area_id
         WHERE u.role = 'FIELD_AGENT' AND u.disabled = 0 AND {} ORDER BY u.username",
        crate::areas::store::IN_SCOPE
    ))?;
    let rows = stmt.query_map([scope.sql()], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every provider's saved statement mapping, by provider, as stored: a hint for the form,
/// so a row that no longer reads as a mapping shows as null rather than failing the page.
pub fn provider_mappings(conn: &ReadTx) -> Result<Vec<(String, serde_json::Value)>> {
    let mut stmt = conn
        .sqlite()
        .prepare("SELECT provider, mapping FROM provider_mappings ORDER BY provider")?;
    let rows = stmt
        .query_map([], |r| {
            let mapping: String = r.get(1)?;
            Ok((
                r.get(0)?,
                serde_json::from_str(&mapping).unwrap_or_default(),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Sign-off of a reconciled payroll is decided by four eyes; this applies it.
pub fn register_task_hooks(hooks: &mut tasks::Hooks) {
    hooks.register(TaskKind::PayrollSignOff, apply_sign_off);
}

/// An approved sign-off closes the payroll, unless records that arrived since it was asked
/// for opened exceptions.
fn apply_sign_off(tx: &WriteTx, d: &tasks::Decided) -> Result<()> {
    if !d.approved {
        return Ok(());
    }
    let (actor, national, subject) = (d.user.actor(), Scope::National, d.task.subject_id);
    let open = reconcile_payroll(tx, &national, subject)?.open_exceptions();
    if open > 0 {
        return Err(Error::Conflict(format!(
            "{open} exception(s) opened since sign-off was requested; resolve them first"
        )));
    }
    payroll::set_payroll_status(
        tx,
        &actor,
        &national,
        subject,
        PayrollStatus::Reconciled,
        "reconciled",
    )?;
    payroll::set_payroll_status(
        tx,
        &actor,
        &national,
        subject,
        PayrollStatus::Closed,
        "signed off",
    )?;
    Ok(())
}
