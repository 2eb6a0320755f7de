//! Benefit plans and what they provide: payment cycles and goods items (cash-for-work
//! projects and timesheets are in [`crate::works::store`]).

use chrono::NaiveDate;
use outpost_proto::Currency;
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::store::{ReadTx, WriteTx};
use crate::{
    Error, Result,
    plans::{rules::Rule, schema::ExtraSchema},
};
use crate::{
    areas::store::{check_code, unique_to_conflict},
    store::audit,
    store::{date_column, json_column, now, text_column},
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
    let provides_cash = new.rule.cash != crate::plans::rules::CashRule::None;
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

/// Whether a payment cycle with this code exists.
pub fn cycle_exists(conn: &ReadTx, code: &str) -> Result<bool> {
    Ok(conn.sqlite().query_row(
        "SELECT EXISTS (SELECT 1 FROM payment_cycles WHERE code = ?1)",
        [code],
        |r| r.get(0),
    )?)
}
