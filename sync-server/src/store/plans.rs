//! Benefit plans and what they provide: payment cycles, goods items, cash-for-work projects
//! and their timesheets.

use chrono::NaiveDate;
use outpost_proto::Currency;
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit, date_column, json_column, now,
    registry::{Scope, check_code, location_by_code, unique_to_conflict},
    text_column,
};
use crate::store::{ReadTx, WriteTx};
use crate::{
    Error, Result,
    registry::{rules::Rule, schema::ExtraSchema},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BeneficiaryType {
    Individual,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Provision {
    Cash,
    Goods,
    Services,
}

/// How entitlements are split into payrolls: one per location at a level, or one per field
/// agent covering the beneficiary's village.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentPoint {
    Location { level: PointLevel },
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PointLevel {
    Region,
    District,
    Village,
}

impl Default for PaymentPoint {
    fn default() -> Self {
        PaymentPoint::Location {
            level: PointLevel::Village,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub beneficiary_type: BeneficiaryType,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub currency: Currency,
    pub provisions: Vec<Provision>,
    pub extra_schema: ExtraSchema,
    pub rule: Rule,
    pub payment_point: PaymentPoint,
}

/// A plan as an administrator defines it (JSON API, CLI file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    pub code: String,
    pub name: String,
    pub beneficiary_type: BeneficiaryType,
    pub start_date: NaiveDate,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    pub currency: Currency,
    pub provisions: Vec<Provision>,
    #[serde(default)]
    pub extra_schema: ExtraSchema,
    pub rule: Rule,
    #[serde(default)]
    pub payment_point: PaymentPoint,
}

const PLAN_COLUMNS: &str = "id, code, name, beneficiary_type, start_date, end_date, currency,
    provisions, extra_schema, rule, payment_point";

fn plan_from_row(r: &Row) -> rusqlite::Result<Plan> {
    Ok(Plan {
        id: r.get(0)?,
        code: r.get(1)?,
        name: r.get(2)?,
        beneficiary_type: text_column(r, 3)?,
        start_date: date_column(r, 4)?,
        end_date: match r.get::<_, Option<String>>(5)? {
            Some(_) => Some(date_column(r, 5)?),
            None => None,
        },
        currency: text_column(r, 6)?,
        provisions: json_column(r, 7)?,
        extra_schema: json_column(r, 8)?,
        rule: json_column(r, 9)?,
        payment_point: json_column(r, 10)?,
    })
}

/// Saves a plan after checking its schema, rule, goods and dates together, so a plan that
/// cannot generate a payroll is refused now, not at month end.
pub fn create_plan(tx: &WriteTx, actor: &str, new: &NewPlan) -> Result<Plan> {
    check_code("plan code", &new.code)?;
    if new.name.trim().is_empty() {
        return Err(Error::Invalid("a plan needs a name".into()));
    }
    if let Some(end) = new.end_date
        && end < new.start_date
    {
        return Err(Error::Invalid("the plan ends before it starts".into()));
    }
    if new.provisions.is_empty() {
        return Err(Error::Invalid(
            "a plan provides at least one of CASH, GOODS, SERVICES".into(),
        ));
    }
    new.extra_schema
        .check()
        .map_err(|e| Error::Invalid(format!("extra_schema: {e}")))?;
    let group_plan = new.beneficiary_type == BeneficiaryType::Group;
    new.rule
        .check(&new.extra_schema, group_plan)
        .map_err(|e| Error::Invalid(format!("rule: {e}")))?;
    for line in &new.rule.goods {
        goods_item_by_code(tx, &line.item)?;
    }
    let provides_cash = new.rule.cash != crate::registry::rules::CashRule::None;
    if provides_cash != new.provisions.contains(&Provision::Cash)
        || new.rule.goods.is_empty() == new.provisions.contains(&Provision::Goods)
    {
        return Err(Error::Invalid(
            "the provisions must match the rule: CASH when it pays cash, GOODS when it gives goods"
                .into(),
        ));
    }
    let id = Uuid::now_v7();
    tx.sqlite()
        .execute(
            &format!(
                "INSERT INTO benefit_plans ({PLAN_COLUMNS}, created_at)
                  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                id,
                new.code,
                new.name.trim(),
                json!(new.beneficiary_type).as_str(),
                new.start_date.to_string(),
                new.end_date.map(|d| d.to_string()),
                new.currency.as_str(),
                json!(new.provisions).to_string(),
                json!(new.extra_schema).to_string(),
                json!(new.rule).to_string(),
                json!(new.payment_point).to_string(),
                now()
            ],
        )
        .map_err(|e| unique_to_conflict(e, format!("plan code '{}' is taken", new.code)))?;
    audit::append(
        tx,
        actor,
        "plan.create",
        "plan",
        Some(&id.to_string()),
        &json!({ "code": new.code }),
    )?;
    plan_by_code(tx, &new.code)
}

pub fn plan_by_code(conn: &ReadTx, code: &str) -> Result<Plan> {
    conn.sqlite()
        .query_row(
            &format!("SELECT {PLAN_COLUMNS} FROM benefit_plans WHERE code = ?1"),
            [code],
            plan_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::not_found("plan", code))
}

pub fn list_plans(conn: &ReadTx) -> Result<Vec<Plan>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "SELECT {PLAN_COLUMNS} FROM benefit_plans ORDER BY code"
    ))?;
    let rows = stmt.query_map([], plan_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cycle {
    pub code: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

pub fn create_cycle(tx: &WriteTx, actor: &str, cycle: &Cycle) -> Result<Uuid> {
    check_code("cycle code", &cycle.code)?;
    if cycle.end_date < cycle.start_date {
        return Err(Error::Invalid("the cycle ends before it starts".into()));
    }
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO payment_cycles (id, code, start_date, end_date, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, cycle.code, cycle.start_date.to_string(), cycle.end_date.to_string(), now()],
    )
    .map_err(|e| unique_to_conflict(e, format!("cycle code '{}' is taken", cycle.code)))?;
    audit::append(
        tx,
        actor,
        "cycle.create",
        "cycle",
        Some(&id.to_string()),
        &json!(cycle),
    )?;
    Ok(id)
}

pub fn cycle_by_code(conn: &ReadTx, code: &str) -> Result<(Uuid, Cycle)> {
    conn.sqlite()
        .query_row(
            "SELECT id, code, start_date, end_date FROM payment_cycles WHERE code = ?1",
            [code],
            |r| {
                Ok((
                    r.get(0)?,
                    Cycle {
                        code: r.get(1)?,
                        start_date: date_column(r, 2)?,
                        end_date: date_column(r, 3)?,
                    },
                ))
            },
        )
        .optional()?
        .ok_or_else(|| Error::not_found("payment cycle", code))
}

pub fn list_cycles(conn: &ReadTx) -> Result<Vec<Cycle>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT code, start_date, end_date FROM payment_cycles ORDER BY start_date DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Cycle {
            code: r.get(0)?,
            start_date: date_column(r, 1)?,
            end_date: date_column(r, 2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GoodsItem {
    pub code: String,
    pub name: String,
    /// What one unit is: "bag of 25 kg", "kit".
    pub unit: String,
}

pub fn add_goods_item(tx: &WriteTx, actor: &str, item: &GoodsItem) -> Result<()> {
    check_code("item code", &item.code)?;
    if item.name.trim().is_empty() || item.unit.trim().is_empty() {
        return Err(Error::Invalid(
            "a goods item needs a name and a unit".into(),
        ));
    }
    tx.sqlite()
        .execute(
            "INSERT INTO goods_items (id, code, name, unit) VALUES (?1, ?2, ?3, ?4)",
            params![
                Uuid::now_v7(),
                item.code,
                item.name.trim(),
                item.unit.trim()
            ],
        )
        .map_err(|e| unique_to_conflict(e, format!("item code '{}' is taken", item.code)))?;
    audit::append(
        tx,
        actor,
        "goods_item.create",
        "goods_item",
        Some(&item.code),
        &json!(item),
    )?;
    Ok(())
}

pub fn goods_item_by_code(conn: &ReadTx, code: &str) -> Result<GoodsItem> {
    conn.sqlite()
        .query_row(
            "SELECT code, name, unit FROM goods_items WHERE code = ?1",
            [code],
            |r| {
                Ok(GoodsItem {
                    code: r.get(0)?,
                    name: r.get(1)?,
                    unit: r.get(2)?,
                })
            },
        )
        .optional()?
        .ok_or_else(|| Error::not_found("goods item", code))
}

pub fn list_goods_items(conn: &ReadTx) -> Result<Vec<GoodsItem>> {
    let mut stmt = conn
        .sqlite()
        .prepare("SELECT code, name, unit FROM goods_items ORDER BY code")?;
    let rows = stmt.query_map([], |r| {
        Ok(GoodsItem {
            code: r.get(0)?,
            name: r.get(1)?,
            unit: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------------
// Cash for work

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkProject {
    pub code: String,
    pub name: String,
    pub plan: String,
    pub location: String,
    pub daily_wage_minor: i64,
}

pub fn add_work_project(tx: &WriteTx, actor: &str, scope: &Scope, p: &WorkProject) -> Result<Uuid> {
    check_code("project code", &p.code)?;
    if p.name.trim().is_empty() {
        return Err(Error::Invalid(
            "a cash-for-work project needs a name".into(),
        ));
    }
    if p.daily_wage_minor <= 0 {
        return Err(Error::Invalid("the daily wage must be positive".into()));
    }
    let plan = plan_by_code(tx, &p.plan)?;
    let location = location_by_code(tx, &p.location)?;
    if !scope.contains(Some(&location.path)) {
        return Err(Error::Forbidden(format!(
            "location '{}' is outside your area",
            p.location
        )));
    }
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO work_projects (id, code, name, plan_id, location_id, daily_wage_minor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, p.code, p.name, plan.id, location.id, p.daily_wage_minor, now()],
    )
    .map_err(|e| unique_to_conflict(e, format!("project code '{}' is taken", p.code)))?;
    audit::append(
        tx,
        actor,
        "work_project.create",
        "work_project",
        Some(&id.to_string()),
        &json!(p),
    )?;
    Ok(id)
}

/// The project's id and daily wage.
pub fn work_project_by_code(conn: &ReadTx, code: &str) -> Result<(Uuid, i64)> {
    conn.sqlite()
        .query_row(
            "SELECT id, daily_wage_minor FROM work_projects WHERE code = ?1",
            [code],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("cash-for-work project", code))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimesheetStatus {
    Pending,
    Approved,
    Rejected,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimesheetEntry {
    pub project: String,
    pub beneficiary_id: Uuid,
    pub work_date: NaiveDate,
    /// 100 for a full day, 50 for half a day.
    pub day_hundredths: i64,
}

/// Records one day's work, PENDING until approved; one entry per worker per project per day.
pub fn record_timesheet(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    e: &TimesheetEntry,
) -> Result<Uuid> {
    if !(1..=100).contains(&e.day_hundredths) {
        return Err(Error::Invalid(
            "day_hundredths is between 1 and 100 (a full day)".into(),
        ));
    }
    let (project_id, _) = work_project_by_code(tx, &e.project)?;
    // The checks a device's timesheet passes (`records::validate`): the project is in the
    // caller's area, and the worker is a beneficiary of the project's plan.
    let (project_plan, project_path): (String, String) = tx.sqlite().query_row(
        "SELECT p.code, l.path FROM work_projects w JOIN benefit_plans p ON p.id = w.plan_id
         JOIN locations l ON l.id = w.location_id WHERE w.id = ?1",
        [project_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if !scope.contains(Some(&project_path)) {
        return Err(Error::Forbidden(format!(
            "project {} is outside your area",
            e.project
        )));
    }
    let beneficiary = super::registry::get_beneficiary(tx, scope, e.beneficiary_id)?;
    if beneficiary.plan != project_plan {
        return Err(Error::Invalid(format!(
            "the worker is a beneficiary of {}, not of the project's plan {project_plan}",
            beneficiary.plan
        )));
    }
    if beneficiary.status != outpost_proto::BeneficiaryStatus::Active {
        return Err(Error::Invalid(format!(
            "only ACTIVE beneficiaries work on cash-for-work projects; this one is {}",
            beneficiary.status
        )));
    }
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO timesheets (id, project_id, beneficiary_id, work_date, day_hundredths, status, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?7)",
        params![id, project_id, e.beneficiary_id, e.work_date.to_string(), e.day_hundredths, actor, now()],
    )
    .map_err(|err| unique_to_conflict(err, format!("a timesheet for {} on {} exists already", e.beneficiary_id, e.work_date)))?;
    audit::append(
        tx,
        actor,
        "timesheet.record",
        "timesheet",
        Some(&id.to_string()),
        &json!(e),
    )?;
    let path: String = tx.sqlite().query_row(
        "SELECT l.path FROM work_projects w JOIN locations l ON l.id = w.location_id WHERE w.id = ?1",
        [project_id],
        |r| r.get(0),
    )?;
    let summary = format!(
        "{} of a day on {} ({})",
        e.day_hundredths as f64 / 100.0,
        e.work_date,
        e.project
    );
    let maker_id = super::tasks::actor_user(tx, actor)?;
    super::tasks::open(
        tx,
        crate::approvals::TaskKind::Timesheet,
        id,
        &path,
        &summary,
        actor,
        maker_id,
    )?;
    Ok(id)
}

/// Decides a pending timesheet. Four eyes: whoever recorded it cannot decide it.
pub fn decide_timesheet(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    id: Uuid,
    to: TimesheetStatus,
) -> Result<()> {
    if to == TimesheetStatus::Pending {
        return Err(Error::Invalid(
            "a timesheet is decided APPROVED or REJECTED".into(),
        ));
    }
    let (beneficiary, status, recorded_by, voided): (Uuid, String, String, bool) = tx.sqlite()
        .query_row(
            "SELECT beneficiary_id, status, recorded_by, voided_at IS NOT NULL FROM timesheets WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("timesheet", id))?;
    super::registry::get_beneficiary(tx, scope, beneficiary)?;
    if voided {
        return Err(Error::Conflict(format!(
            "timesheet {id} was voided in the field; there is nothing to decide"
        )));
    }
    if status != "PENDING" {
        return Err(Error::Conflict(format!(
            "timesheet {id} is already {status}"
        )));
    }
    if recorded_by == actor {
        return Err(Error::Forbidden(
            "you recorded this timesheet; someone else decides it".into(),
        ));
    }
    // Nor does the person behind the API client that recorded it.
    let decider = super::tasks::actor_user(tx, actor)?;
    if decider.is_some() && super::tasks::actor_user(tx, &recorded_by)? == decider {
        return Err(Error::Forbidden(format!(
            "this timesheet was recorded by {recorded_by}, which answers to you; someone else decides it"
        )));
    }
    tx.sqlite().execute(
        "UPDATE timesheets SET status = ?2 WHERE id = ?1",
        params![id, json!(to).as_str()],
    )?;
    audit::append(
        tx,
        actor,
        "timesheet.decide",
        "timesheet",
        Some(&id.to_string()),
        &json!({ "status": to }),
    )?;
    Ok(())
}

/// Whether a payment cycle with this code exists.
pub fn cycle_exists(conn: &ReadTx, code: &str) -> Result<bool> {
    Ok(conn.sqlite().query_row(
        "SELECT EXISTS (SELECT 1 FROM payment_cycles WHERE code = ?1)",
        [code],
        |r| r.get(0),
    )?)
}
