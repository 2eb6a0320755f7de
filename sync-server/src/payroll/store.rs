//! Payroll generation and payroll reads.
//!
//! Generation is set-based: one query gathers every ACTIVE beneficiary of the plan not yet
//! entitled in the cycle, the rule is applied in memory, and entitlements are inserted with
//! one prepared statement in the caller's transaction. Running it again only adds what is
//! new, because (plan, cycle, beneficiary) is unique.

use std::collections::HashMap;

use chrono::NaiveDate;
use outpost_proto::{Currency, EntitlementStatus, PayrollStatus};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::store::{ReadTx, WriteTx};
use crate::{
    Error, Result,
    plans::rules::{CashRule, Facts},
    tasks::policy::TaskKind,
};
use crate::{
    areas::store::{IN_SCOPE, Scope},
    plans::store::{self as plans, BeneficiaryType, PaymentPoint, PointLevel},
    store::audit,
    store::{date_column, json_column, now, text_column},
    tasks::store as tasks,
    works::store as works,
};

#[derive(Debug, Serialize, PartialEq)]
pub struct GenerateReport {
    pub entitlements_created: usize,
    pub awaiting_approval: usize,
    pub total_minor: i64,
    pub currency: Currency,
    /// Payrolls that received entitlements in this run (new or still pending approval).
    pub payrolls: Vec<Uuid>,
    /// Active beneficiaries with no location, or no field agent covering it: not paid until
    /// they are placed.
    pub unplaced: usize,
    /// Cash-for-work beneficiaries with no approved days in the cycle.
    pub nothing_due: usize,
    /// Likely duplicates among the plan's people still awaiting review (`outpost-server
    /// dedup`), likeliest first, at most 100, within the caller's area; how many were
    /// listed goes into the generation's audit entry.
    pub possible_duplicates: Vec<crate::dedup::store::OpenPair>,
}

/// One beneficiary as the generator sees it.
struct Candidate {
    beneficiary: Uuid,
    group: Option<Uuid>,
    recipient: Option<Uuid>,
    location: Option<Uuid>,
    extra: Option<Map<String, Value>>,
}

/// Generates the entitlements of `plan_code` for `cycle_code`, one per ACTIVE beneficiary in
/// `scope` not yet entitled, split into payrolls by payment point.
pub fn generate(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    plan_code: &str,
    cycle_code: &str,
) -> Result<GenerateReport> {
    let plan = plans::plan_by_code(tx, plan_code)?;
    let (cycle_id, cycle) = plans::cycle_by_code(tx, cycle_code)?;
    if cycle.end_date < plan.start_date || plan.end_date.is_some_and(|end| cycle.start_date > end) {
        return Err(Error::Invalid(format!(
            "cycle {} ({} to {}) is outside plan {}'s dates",
            cycle.code, cycle.start_date, cycle.end_date, plan.code
        )));
    }
    let group_plan = plan.beneficiary_type == BeneficiaryType::Group;
    let candidates = load_candidates(
        tx,
        scope,
        plan.id,
        cycle_id,
        group_plan,
        rule_reads_extra(&plan.rule.cash),
    )?;

    let member_dobs = match plan.rule.cash {
        CashRule::PerMember { .. } => load_member_dobs(tx, plan.id)?,
        _ => HashMap::new(),
    };
    let (days, daily_wage) = match &plan.rule.cash {
        CashRule::CashForWork { project } => {
            let (project_id, wage) = works::work_project_by_code(tx, project)?;
            (
                load_days_worked(tx, project_id, cycle.start_date, cycle.end_date)?,
                wage,
            )
        }
        _ => (HashMap::new(), 0),
    };
    let points = PointResolver::load(tx, plan.payment_point)?;
    let goods = json!(plan.rule.goods).to_string();

    let mut report = GenerateReport {
        entitlements_created: 0,
        awaiting_approval: 0,
        total_minor: 0,
        currency: plan.currency,
        payrolls: Vec::new(),
        unplaced: 0,
        nothing_due: 0,
        possible_duplicates: Vec::new(),
    };
    let mut payroll_of_point: HashMap<PointKey, Uuid> = HashMap::new();
    // Resolved once per location, not per beneficiary.
    let mut payroll_of_location: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    let mut insert = EntitlementWriter::new(plan.id, cycle_id, plan.currency, goods);
    // What each payroll gains, kept on its row (count, total, awaiting) without reading back
    // what was just written; and the entitlements above the limit, (id, amount, location).
    let mut added: HashMap<Uuid, (i64, i64, i64)> = HashMap::new();
    let overflow = || Error::Invalid("the payroll total overflows".into());
    let mut above_limit: Vec<(Uuid, i64, Uuid)> = Vec::new();
    let no_dobs: Vec<NaiveDate> = Vec::new();
    for c in &candidates {
        let payroll = match c.location {
            Some(location) => match payroll_of_location.get(&location) {
                Some(known) => *known,
                None => {
                    let payroll = match points.resolve(location) {
                        Some(point) => Some(match payroll_of_point.get(&point) {
                            Some(id) => *id,
                            None => {
                                let id =
                                    open_payroll(tx, actor, &plan, cycle_id, &cycle.code, &point)?;
                                payroll_of_point.insert(point, id);
                                report.payrolls.push(id);
                                id
                            }
                        }),
                        None => None,
                    };
                    payroll_of_location.insert(location, payroll);
                    payroll
                }
            },
            None => None,
        };
        let Some(payroll) = payroll else {
            report.unplaced += 1;
            continue;
        };
        let facts = Facts {
            extra: c.extra.as_ref(),
            member_dobs: c
                .group
                .and_then(|g| member_dobs.get(&g))
                .unwrap_or(&no_dobs),
            day_hundredths: days.get(&c.beneficiary).copied().unwrap_or(0),
            daily_wage,
            on: Some(cycle.start_date),
        };
        let amount = plan
            .rule
            .cash_due(&facts)
            .map_err(|e| Error::Invalid(format!("beneficiary {}: {e}", c.beneficiary)))?;
        if amount == 0 && plan.rule.goods.is_empty() {
            report.nothing_due += 1;
            continue;
        }
        let awaiting = plan.rule.needs_approval(amount);
        let status = if awaiting {
            report.awaiting_approval += 1;
            EntitlementStatus::AwaitingApproval
        } else {
            EntitlementStatus::Due
        };
        let id = Uuid::now_v7();
        insert.push(
            tx,
            [id, payroll, c.beneficiary],
            c.recipient,
            amount,
            status,
        )?;
        let sums = added.entry(payroll).or_default();
        sums.0 += 1;
        sums.1 = sums.1.checked_add(amount).ok_or_else(overflow)?;
        if awaiting {
            sums.2 += 1;
            // A placed candidate has a location (its payroll came from it).
            above_limit.extend(c.location.map(|l| (id, amount, l)));
        }
        report.entitlements_created += 1;
        report.total_minor = report
            .total_minor
            .checked_add(amount)
            .ok_or_else(overflow)?;
    }
    insert.flush(tx)?;
    for (id, (count, total, awaiting)) in &added {
        // Added in Rust, checked: SQLite's `+` would turn an overflowing total into a REAL.
        let (kept_count, kept_total, kept_awaiting): (i64, i64, i64) = tx.sqlite().query_row(
            "SELECT entitlement_count, total_minor, awaiting_count FROM payrolls WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let total = kept_total.checked_add(*total).ok_or_else(overflow)?;
        tx.sqlite().execute(
            "UPDATE payrolls SET entitlement_count = ?2, total_minor = ?3, awaiting_count = ?4
             WHERE id = ?1",
            params![id, kept_count + count, total, kept_awaiting + awaiting],
        )?;
    }
    // Nothing reaches the field before four eyes approve it; entitlements above the plan's
    // single-transaction limit each wait for an approval of their own too.
    let maker_id = crate::users::store::actor_user(tx, actor)?;
    let mut path_of: HashMap<Uuid, String> = HashMap::new();
    let mut path_query = tx
        .sqlite()
        .prepare_cached("SELECT path FROM locations WHERE id = ?1")?;
    for (_, _, location) in &above_limit {
        if !path_of.contains_key(location) {
            let path: String = path_query.query_row([location], |r| r.get(0))?;
            path_of.insert(*location, path);
        }
    }
    crate::tasks::store::open_many(
        tx,
        crate::tasks::policy::TaskKind::EntitlementApproval,
        above_limit.iter().map(|(entitlement, amount, location)| {
            let summary = format!(
                "{} {} above the single-payment limit",
                plan.currency.format_minor(*amount),
                plan.currency
            );
            (*entitlement, path_of[location].as_str(), summary)
        }),
        actor,
        maker_id,
    )?;
    for id in &report.payrolls {
        let p = get_payroll(tx, &Scope::National, *id)?;
        if p.status == PayrollStatus::PendingApproval {
            let path: String = tx.sqlite().query_row(
                "SELECT l.path FROM payrolls p JOIN locations l ON l.id = p.location_id WHERE p.id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let summary = format!(
                "{}: {} entitlements, {} {}",
                p.name,
                p.entitlements,
                p.currency.format_minor(p.total_minor),
                p.currency
            );
            crate::tasks::store::open(
                tx,
                crate::tasks::policy::TaskKind::PayrollApproval,
                *id,
                &path,
                &summary,
                actor,
                maker_id,
            )?;
        }
    }
    report.possible_duplicates = crate::dedup::store::open_for_plan(tx, scope, plan.id, 100)?;
    audit::append(
        tx,
        actor,
        "payroll.generate",
        "plan",
        Some(&plan.id.to_string()),
        &json!({
            "plan": plan.code, "cycle": cycle.code, "entitlements": report.entitlements_created,
            "total_minor": report.total_minor, "payrolls": report.payrolls,
            "awaiting_approval": report.awaiting_approval, "unplaced": report.unplaced,
            "possible_duplicates_listed": report.possible_duplicates.len(),
        }),
    )?;
    Ok(report)
}

/// Inserts entitlements many rows per statement: one statement per row spends most of its
/// time starting and finishing the statement.
struct EntitlementWriter {
    plan: Uuid,
    cycle: Uuid,
    currency: Currency,
    goods: String,
    /// ([id, payroll, beneficiary], recipient, amount, status)
    pending: Vec<([Uuid; 3], Option<Uuid>, i64, EntitlementStatus)>,
    /// The statement for a full batch, written once: every flush but the last is full.
    full_batch_sql: String,
}

impl EntitlementWriter {
    const BATCH: usize = 400;

    fn new(plan: Uuid, cycle: Uuid, currency: Currency, goods: String) -> Self {
        EntitlementWriter {
            plan,
            cycle,
            currency,
            goods,
            pending: Vec::with_capacity(Self::BATCH),
            full_batch_sql: Self::insert_sql(Self::BATCH),
        }
    }

    fn insert_sql(rows: usize) -> String {
        // ?1..?4 are the same for every row; each row adds six parameters.
        let rows: Vec<String> = (0..rows)
            .map(|i| {
                let p = 5 + i * 6;
                format!(
                    "(?{p}, ?{}, ?1, ?2, ?{}, ?{}, ?{}, ?3, ?4, ?{})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                )
            })
            .collect();
        format!(
            "INSERT INTO entitlements (id, payroll_id, plan_id, cycle_id, beneficiary_id, recipient_id,
                amount_minor, currency, goods, status) VALUES {}",
            rows.join(", ")
        )
    }

    fn push(
        &mut self,
        tx: &WriteTx,
        ids: [Uuid; 3],
        recipient: Option<Uuid>,
        amount: i64,
        status: EntitlementStatus,
    ) -> Result<()> {
        self.pending.push((ids, recipient, amount, status));
        if self.pending.len() == Self::BATCH {
            self.flush(tx)?;
        }
        Ok(())
    }

    fn flush(&mut self, tx: &WriteTx) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let partial;
        let sql = if self.pending.len() == Self::BATCH {
            &self.full_batch_sql
        } else {
            partial = Self::insert_sql(self.pending.len());
            &partial
        };
        let mut stmt = tx.sqlite().prepare_cached(sql)?;
        stmt.raw_bind_parameter(1, self.plan)?;
        stmt.raw_bind_parameter(2, self.cycle)?;
        stmt.raw_bind_parameter(3, self.currency.as_str())?;
        stmt.raw_bind_parameter(4, self.goods.as_str())?;
        for (i, ([id, payroll, beneficiary], recipient, amount, status)) in
            self.pending.drain(..).enumerate()
        {
            let p = 5 + i * 6;
            stmt.raw_bind_parameter(p, id)?;
            stmt.raw_bind_parameter(p + 1, payroll)?;
            stmt.raw_bind_parameter(p + 2, beneficiary)?;
            stmt.raw_bind_parameter(p + 3, recipient)?;
            stmt.raw_bind_parameter(p + 4, amount)?;
            stmt.raw_bind_parameter(p + 5, status.as_str())?;
        }
        stmt.raw_execute()?;
        Ok(())
    }
}

fn rule_reads_extra(rule: &CashRule) -> bool {
    matches!(rule, CashRule::BasePlusCriteria { .. })
}

/// Every ACTIVE beneficiary of the plan in `scope` not yet entitled in the cycle, in id order.
/// The per-row checks that cannot change the answer are left out of the query: the area
/// filter for national scope, and the "already entitled" probe on a cycle's first run.
fn load_candidates(
    conn: &ReadTx,
    scope: &Scope,
    plan_id: Uuid,
    cycle_id: Uuid,
    group_plan: bool,
    with_extra: bool,
) -> Result<Vec<Candidate>> {
    let (select, location) = if group_plan {
        // For a household: its primary recipient collects, or else its head.
        (
            "SELECT b.id, b.group_id,
                COALESCE((SELECT individual_id FROM group_members WHERE group_id = b.group_id AND recipient = 'PRIMARY'),
                         (SELECT individual_id FROM group_members WHERE group_id = b.group_id AND relationship = 'HEAD')),
                g.location_id,
                CASE WHEN ?4 THEN (SELECT i.extra FROM group_members m JOIN individuals i ON i.id = m.individual_id
                                   WHERE m.group_id = b.group_id AND m.relationship = 'HEAD') END
             FROM beneficiaries b JOIN groups g ON g.id = b.group_id",
            "g.location_id",
        )
    } else {
        (
            "SELECT b.id, NULL, b.individual_id, i.location_id, CASE WHEN ?4 THEN i.extra END
             FROM beneficiaries b JOIN individuals i ON i.id = b.individual_id",
            "i.location_id",
        )
    };
    let in_scope = match scope {
        Scope::National => String::new(),
        Scope::Area { .. } => {
            format!(
                " AND EXISTS (SELECT 1 FROM locations l WHERE l.id = {location} AND {IN_SCOPE})"
            )
        }
    };
    let first_run: bool = conn.sqlite().query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM payrolls WHERE plan_id = ?1 AND cycle_id = ?2)",
        params![plan_id, cycle_id],
        |r| r.get(0),
    )?;
    let not_entitled = if first_run {
        ""
    } else {
        // A rejected payroll's entitlements do not count: its beneficiaries are still due.
        " AND NOT EXISTS (SELECT 1 FROM entitlements e WHERE e.cycle_id = ?3 AND e.beneficiary_id = b.id
             AND e.rejected_at IS NULL)"
    };
    let mut stmt = conn.sqlite().prepare(&format!(
        "{select} WHERE b.plan_id = ?2 AND b.status = 'ACTIVE'{in_scope}{not_entitled} ORDER BY b.id"
    ))?;
    let rows = stmt.query_map(params![scope.sql(), plan_id, cycle_id, with_extra], |r| {
        Ok(Candidate {
            beneficiary: r.get(0)?,
            group: r.get(1)?,
            recipient: r.get(2)?,
            location: r.get(3)?,
            extra: match r.get::<_, Option<String>>(4)? {
                Some(_) => Some(json_column(r, 4)?),
                None => None,
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn load_member_dobs(conn: &ReadTx, plan_id: Uuid) -> Result<HashMap<Uuid, Vec<NaiveDate>>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT m.group_id, i.dob FROM beneficiaries b
         JOIN group_members m ON m.group_id = b.group_id JOIN individuals i ON i.id = m.individual_id
         WHERE b.plan_id = ?1 AND b.status = 'ACTIVE'",
    )?;
    let mut out: HashMap<Uuid, Vec<NaiveDate>> = HashMap::new();
    let mut rows = stmt.query([plan_id])?;
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?).or_default().push(date_column(r, 1)?);
    }
    Ok(out)
}

fn load_days_worked(
    conn: &ReadTx,
    project_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<Uuid, i64>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT beneficiary_id, SUM(day_hundredths) FROM timesheets
         WHERE project_id = ?1 AND status = 'APPROVED' AND voided_at IS NULL
           AND work_date BETWEEN ?2 AND ?3
         GROUP BY beneficiary_id",
    )?;
    let rows = stmt.query_map(params![project_id, from.to_string(), to.to_string()], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A payment point: a location, or a field agent (with the area they cover).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PointKey {
    location: Uuid,
    location_name: String,
    agent: Option<(Uuid, String)>,
}

/// Maps a beneficiary's location to its payment point.
struct PointResolver {
    mode: PaymentPoint,
    /// location path → (id, name)
    locations: HashMap<String, (Uuid, String)>,
    /// location id → path
    paths: HashMap<Uuid, String>,
    /// field agents' area paths, deepest first: (path, agent id, agent name, area id)
    agents: Vec<(String, Uuid, String, Uuid)>,
}

impl PointResolver {
    fn load(conn: &ReadTx, mode: PaymentPoint) -> Result<PointResolver> {
        let mut stmt = conn
            .sqlite()
            .prepare("SELECT path, id, name FROM locations")?;
        let all: Vec<(String, Uuid, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let paths = all
            .iter()
            .map(|(path, id, _)| (*id, path.clone()))
            .collect();
        let locations = all
            .into_iter()
            .map(|(path, id, name)| (path, (id, name)))
            .collect();
        let mut stmt = conn.sqlite().prepare(
            "SELECT l.path, u.id, u.display_name, l.id FROM users u JOIN locations l ON l.id = u.area_id
             WHERE u.role = 'FIELD_AGENT' AND u.disabled = 0 ORDER BY length(l.path) DESC, u.username",
        )?;
        let agents = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(PointResolver {
            mode,
            locations,
            paths,
            agents,
        })
    }

    fn resolve(&self, location: Uuid) -> Option<PointKey> {
        let path = self.paths.get(&location)?.as_str();
        match self.mode {
            PaymentPoint::Location { level } => {
                let depth = match level {
                    PointLevel::Region => 1,
                    PointLevel::District => 2,
                    PointLevel::Village => 3,
                };
                let prefix: String = path.split('/').take(depth).collect::<Vec<_>>().join("/");
                let (id, name) = self.locations.get(&prefix)?;
                Some(PointKey {
                    location: *id,
                    location_name: name.clone(),
                    agent: None,
                })
            }
            PaymentPoint::Agent => {
                let scope_of = |area: &str| Scope::Area {
                    path: area.to_owned(),
                };
                let (area_path, agent, agent_name, area_id) = self
                    .agents
                    .iter()
                    .find(|(area, ..)| scope_of(area).contains(Some(path)))?;
                let name = self
                    .locations
                    .get(area_path)
                    .map(|l| l.1.clone())
                    .unwrap_or_default();
                Some(PointKey {
                    location: *area_id,
                    location_name: name,
                    agent: Some((*agent, agent_name.clone())),
                })
            }
        }
    }
}

/// The payroll new entitlements of this point go to: the point's payroll still pending
/// approval, or a new one. An approved payroll is never changed by a later run.
fn open_payroll(
    tx: &WriteTx,
    actor: &str,
    plan: &plans::Plan,
    cycle_id: Uuid,
    cycle_code: &str,
    point: &PointKey,
) -> Result<Uuid> {
    let agent_id = point.agent.as_ref().map(|a| a.0);
    // A pending payroll takes more entitlements only from its own maker and before anyone
    // has decided on it: otherwise a second person's additions would ride on the first's
    // task (and its approvals), and the maker of the new lines could approve them.
    let maker_id = crate::users::store::actor_user(tx, actor)?;
    let pending: Option<Uuid> = tx.sqlite()
        .query_row(
            "SELECT p.id FROM payrolls p
             LEFT JOIN tasks t ON t.subject_id = p.id AND t.kind = 'PAYROLL_APPROVAL' AND t.status = 'PENDING'
             WHERE p.plan_id = ?1 AND p.cycle_id = ?2 AND p.location_id = ?3
               AND p.agent_id IS ?4 AND p.status = 'PENDING_APPROVAL'
               AND t.maker_id IS ?5 AND t.maker = ?6
               AND NOT EXISTS (SELECT 1 FROM task_decisions d WHERE d.task_id = t.id)
             ORDER BY p.seq DESC LIMIT 1",
            params![plan.id, cycle_id, point.location, agent_id, maker_id, actor],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = pending {
        return Ok(id);
    }
    let seq: i64 = tx.sqlite().query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM payrolls WHERE plan_id = ?1 AND cycle_id = ?2 AND location_id = ?3",
        params![plan.id, cycle_id, point.location],
        |r| r.get(0),
    )?;
    let mut name = format!("{} {} {}", plan.code, cycle_code, point.location_name);
    if let Some((_, agent_name)) = &point.agent {
        name.push_str(&format!(" ({agent_name})"));
    }
    if seq > 1 {
        name.push_str(&format!(" #{seq}"));
    }
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO payrolls (id, plan_id, cycle_id, location_id, agent_id, seq, name, status, currency, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id,
            plan.id,
            cycle_id,
            point.location,
            agent_id,
            seq,
            name,
            PayrollStatus::PendingApproval.as_str(),
            plan.currency.as_str(),
            actor,
            now()
        ],
    )?;
    audit::append(
        tx,
        actor,
        "payroll.create",
        "payroll",
        Some(&id.to_string()),
        &json!({ "name": name }),
    )?;
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// Reads and status

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Payroll {
    pub id: Uuid,
    pub name: String,
    pub plan: String,
    pub cycle: String,
    pub location: String,
    pub agent: Option<String>,
    pub status: PayrollStatus,
    pub currency: Currency,
    pub entitlements: i64,
    pub total_minor: i64,
    pub awaiting_approval: i64,
    pub created_by: String,
    pub created_at: String,
}

const PAYROLL_SELECT: &str = "SELECT p.id, p.name, bp.code, c.code, l.code, u.username, p.status,
        p.currency, p.created_by, p.created_at, p.entitlement_count, p.total_minor, p.awaiting_count
    FROM payrolls p
    JOIN benefit_plans bp ON bp.id = p.plan_id
    JOIN payment_cycles c ON c.id = p.cycle_id
    JOIN locations l ON l.id = p.location_id
    LEFT JOIN users u ON u.id = p.agent_id";

fn payroll_from_row(r: &Row) -> rusqlite::Result<Payroll> {
    Ok(Payroll {
        id: r.get(0)?,
        name: r.get(1)?,
        plan: r.get(2)?,
        cycle: r.get(3)?,
        location: r.get(4)?,
        agent: r.get(5)?,
        status: text_column(r, 6)?,
        currency: text_column(r, 7)?,
        created_by: r.get(8)?,
        created_at: r.get(9)?,
        entitlements: r.get(10)?,
        total_minor: r.get(11)?,
        awaiting_approval: r.get(12)?,
    })
}

pub fn list_payrolls(
    conn: &ReadTx,
    scope: &Scope,
    plan: Option<&str>,
    cycle: Option<&str>,
    status: Option<PayrollStatus>,
) -> Result<Vec<Payroll>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "{PAYROLL_SELECT} WHERE {IN_SCOPE} AND (?2 IS NULL OR bp.code = ?2) AND (?3 IS NULL OR c.code = ?3)
           AND (?4 IS NULL OR p.status = ?4)
         ORDER BY c.start_date DESC, p.name"
    ))?;
    let rows = stmt.query_map(
        params![scope.sql(), plan, cycle, status.map(PayrollStatus::as_str)],
        payroll_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_payroll(conn: &ReadTx, scope: &Scope, id: Uuid) -> Result<Payroll> {
    conn.sqlite()
        .query_row(
            &format!("{PAYROLL_SELECT} WHERE p.id = ?2 AND {IN_SCOPE}"),
            params![scope.sql(), id],
            payroll_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::not_found("payroll", id))
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entitlement {
    pub id: Uuid,
    pub beneficiary_id: Uuid,
    pub recipient_id: Option<Uuid>,
    pub recipient_name: Option<String>,
    pub amount_minor: i64,
    pub currency: Currency,
    pub goods: Vec<crate::plans::rules::GoodsLine>,
    pub status: EntitlementStatus,
}

pub fn entitlements(
    conn: &ReadTx,
    scope: &Scope,
    payroll_id: Uuid,
    limit: u32,
    offset: u32,
) -> Result<Vec<Entitlement>> {
    get_payroll(conn, scope, payroll_id)?;
    let mut stmt = conn.sqlite().prepare(
        "SELECT e.id, e.beneficiary_id, e.recipient_id, i.first_name || ' ' || i.last_name,
            e.amount_minor, e.currency, e.goods, e.status
         FROM entitlements e LEFT JOIN individuals i ON i.id = e.recipient_id
         WHERE e.payroll_id = ?1 ORDER BY i.last_name, i.first_name, e.id LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt.query_map(params![payroll_id, limit, offset], |r| {
        Ok(Entitlement {
            id: r.get(0)?,
            beneficiary_id: r.get(1)?,
            recipient_id: r.get(2)?,
            recipient_name: r.get(3)?,
            amount_minor: r.get(4)?,
            currency: text_column(r, 5)?,
            goods: json_column(r, 6)?,
            status: text_column(r, 7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Moves a payroll along its state machine (see [`PayrollStatus::can_become`]); who may do
/// so, and with how many approvals, is decided by the caller.
pub fn set_payroll_status(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    id: Uuid,
    to: PayrollStatus,
    reason: &str,
) -> Result<Payroll> {
    let current = get_payroll(tx, scope, id)?;
    current.status.transition(to)?;
    tx.sqlite().execute(
        "UPDATE payrolls SET status = ?2,
             approved_at = CASE WHEN ?2 = 'APPROVED' THEN ?3 ELSE approved_at END,
             closed_at = CASE WHEN ?2 = 'CLOSED' THEN ?3 ELSE closed_at END
         WHERE id = ?1",
        params![id, to.as_str(), now()],
    )?;
    if to == PayrollStatus::Rejected {
        reject_entitlements(tx, actor, id)?;
    }
    audit::append(
        tx,
        actor,
        "payroll.status",
        "payroll",
        Some(&id.to_string()),
        &json!({ "from": current.status, "to": to, "reason": reason }),
    )?;
    Ok(Payroll {
        status: to,
        ..current
    })
}

/// A rejected payroll's entitlements stop holding their beneficiaries' place in the cycle
/// (a new generation covers them), and their own approvals have nothing left to approve.
fn reject_entitlements(tx: &WriteTx, actor: &str, payroll: Uuid) -> Result<()> {
    let at = now();
    tx.sqlite().execute(
        "UPDATE entitlements SET rejected_at = ?2 WHERE payroll_id = ?1 AND rejected_at IS NULL",
        params![payroll, at],
    )?;
    let withdrawn = tx.sqlite().execute(
        "UPDATE tasks SET status = 'WITHDRAWN', decided_at = ?2
         WHERE kind = 'ENTITLEMENT_APPROVAL' AND status = 'PENDING'
           AND subject_id IN (SELECT id FROM entitlements WHERE payroll_id = ?1)",
        params![payroll, at],
    )?;
    if withdrawn > 0 {
        audit::append(
            tx,
            actor,
            "task.withdrawn",
            "payroll",
            Some(&payroll.to_string()),
            &json!({ "kind": "ENTITLEMENT_APPROVAL", "tasks": withdrawn }),
        )?;
    }
    Ok(())
}

/// Payroll approval and over-limit entitlements are decided by four eyes; these apply them.
pub fn register_task_hooks(hooks: &mut tasks::Hooks) {
    hooks.register(TaskKind::PayrollApproval, apply_payroll_approval);
    hooks.register(TaskKind::EntitlementApproval, apply_entitlement_approval);
}

/// An approved payroll goes to the field; a rejected one never does.
fn apply_payroll_approval(tx: &WriteTx, d: &tasks::Decided) -> Result<()> {
    let (to, why) = if d.approved {
        (PayrollStatus::Approved, "approved by four eyes")
    } else {
        (PayrollStatus::Rejected, d.reason)
    };
    set_payroll_status(
        tx,
        &d.user.actor(),
        &Scope::National,
        d.task.subject_id,
        to,
        why,
    )?;
    Ok(())
}

/// An approved entitlement above its plan's limit becomes payable; a rejected one stays
/// unpayable.
fn apply_entitlement_approval(tx: &WriteTx, d: &tasks::Decided) -> Result<()> {
    if d.approved {
        let subject = d.task.subject_id;
        let changed = tx.sqlite().execute(
            "UPDATE entitlements SET status = 'DUE' WHERE id = ?1 AND status = 'AWAITING_APPROVAL'",
            [subject],
        )?;
        tx.sqlite().execute(
            "UPDATE payrolls SET awaiting_count = awaiting_count - ?2
             WHERE id = (SELECT payroll_id FROM entitlements WHERE id = ?1)",
            params![subject, changed as i64],
        )?;
    }
    Ok(())
}
