//! Calculation rules: how much a beneficiary is due, configured per plan as data, never coded
//! per country.
//!
//! A rule is stored as JSON on the plan, for example openIMIS's base plus criteria:
//! `{"cash": {"kind": "base_plus_criteria", "base": 10000, "criteria": [{"field":
//! "disability", "op": "eq", "value": true, "amount": 2500}]}, "limit_per_transaction": 50000}`.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::schema::{ExtraSchema, FieldKind};

/// A plan's full rule: a cash part, goods, and the limit above which one entitlement needs
/// its own approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub cash: CashRule,
    #[serde(default)]
    pub goods: Vec<GoodsLine>,
    #[serde(default)]
    pub limit_per_transaction: Option<i64>,
    /// How much a payout may exceed its entitlement, in minor units, before reconciliation
    /// calls it an exception (cash points that round); 0, the default, allows nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overpayment_tolerance: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CashRule {
    /// Goods or services only.
    #[default]
    None,
    Flat {
        amount: i64,
    },
    /// openIMIS's `fixed_batch` plus the amounts of the `advanced_criteria` met.
    BasePlusCriteria {
        base: i64,
        criteria: Vec<Criterion>,
    },
    /// A base plus an amount per household member, or per child under an age limit, capped;
    /// paid to the household's recipient.
    PerMember {
        #[serde(default)]
        base: i64,
        per_member: i64,
        /// Count only members younger than this on the cycle's first day.
        #[serde(default)]
        child_age_limit: Option<u32>,
        #[serde(default)]
        max_members: Option<u32>,
    },
    /// Days worked (approved timesheets in the cycle) × the project's daily wage.
    CashForWork {
        project: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub field: String,
    pub op: Op,
    pub value: Value,
    pub amount: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodsLine {
    pub item: String,
    pub quantity: i64,
}

/// What the rule is applied to, gathered by the payroll generator.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    /// The beneficiary's extra fields (a household's: its head's).
    pub extra: Option<&'a Map<String, Value>>,
    /// Household members' dates of birth (empty for individual plans).
    pub member_dobs: &'a [NaiveDate],
    /// Approved hundredths of days worked in the cycle.
    pub day_hundredths: i64,
    /// The cash-for-work project's daily wage.
    pub daily_wage: i64,
    /// The cycle's first day, for ages.
    pub on: Option<NaiveDate>,
}

impl Rule {
    /// Checks the rule against the plan it belongs to, so a bad rule is refused when the plan
    /// is saved rather than when a payroll is generated.
    pub fn check(&self, schema: &ExtraSchema, group_plan: bool) -> Result<(), String> {
        let non_negative = |what: &str, v: i64| {
            if v < 0 {
                Err(format!("{what} must not be negative"))
            } else {
                Ok(())
            }
        };
        match &self.cash {
            CashRule::None => {}
            CashRule::Flat { amount } => non_negative("the flat amount", *amount)?,
            CashRule::BasePlusCriteria { base, criteria } => {
                non_negative("the base amount", *base)?;
                for c in criteria {
                    let Some(spec) = schema.field(&c.field) else {
                        return Err(format!(
                            "criterion field '{}' is not in the plan's extra-field schema",
                            c.field
                        ));
                    };
                    let ordered = matches!(c.op, Op::Lt | Op::Lte | Op::Gt | Op::Gte);
                    if ordered
                        && !matches!(
                            spec.kind,
                            FieldKind::Integer | FieldKind::Number | FieldKind::Date
                        )
                    {
                        return Err(format!(
                            "criterion on '{}' compares order, but the field is not a number or a date",
                            c.field
                        ));
                    }
                    non_negative(&format!("the amount for '{}'", c.field), c.amount)?;
                }
            }
            CashRule::PerMember {
                base,
                per_member,
                max_members,
                ..
            } => {
                if !group_plan {
                    return Err(
                        "a per-member rule needs a plan whose beneficiaries are households".into(),
                    );
                }
                non_negative("the base amount", *base)?;
                non_negative("the amount per member", *per_member)?;
                if *max_members == Some(0) {
                    return Err("max_members must be at least 1".into());
                }
            }
            CashRule::CashForWork { project } => {
                if project.trim().is_empty() {
                    return Err("a cash-for-work rule names its project".into());
                }
            }
        }
        for g in &self.goods {
            if g.quantity <= 0 {
                return Err(format!("the quantity of '{}' must be positive", g.item));
            }
        }
        if let Some(limit) = self.limit_per_transaction
            && limit <= 0
        {
            return Err("limit_per_transaction must be positive".into());
        }
        if !(0..=outpost_proto::MAX_PAYMENT_MINOR).contains(&self.overpayment_tolerance) {
            return Err(format!(
                "overpayment_tolerance must be between 0 and {} minor units",
                outpost_proto::MAX_PAYMENT_MINOR
            ));
        }
        if self.cash == CashRule::None && self.goods.is_empty() {
            return Err("the rule provides neither cash nor goods".into());
        }
        Ok(())
    }

    /// The cash due, in minor units. Overflow is an error, never a wrapped amount.
    pub fn cash_due(&self, facts: &Facts) -> Result<i64, String> {
        let overflow = || "the amount overflows".to_string();
        match &self.cash {
            CashRule::None => Ok(0),
            CashRule::Flat { amount } => Ok(*amount),
            CashRule::BasePlusCriteria { base, criteria } => criteria
                .iter()
                .filter(|c| facts.extra.is_some_and(|extra| c.is_met(extra)))
                .try_fold(*base, |sum, c| {
                    sum.checked_add(c.amount).ok_or_else(overflow)
                }),
            CashRule::PerMember {
                base,
                per_member,
                child_age_limit,
                max_members,
            } => {
                let counted = match (child_age_limit, facts.on) {
                    (Some(limit), Some(on)) => facts
                        .member_dobs
                        .iter()
                        .filter(|dob| age_on(**dob, on) < *limit)
                        .count(),
                    _ => facts.member_dobs.len(),
                } as i64;
                let counted = max_members.map_or(counted, |max| counted.min(max as i64));
                per_member
                    .checked_mul(counted)
                    .and_then(|v| v.checked_add(*base))
                    .ok_or_else(overflow)
            }
            CashRule::CashForWork { .. } => facts
                .daily_wage
                .checked_mul(facts.day_hundredths)
                .map(|v| v / 100)
                .ok_or_else(overflow),
        }
    }

    /// Whether an amount needs its own approval before it may be paid.
    pub fn needs_approval(&self, amount: i64) -> bool {
        self.limit_per_transaction
            .is_some_and(|limit| amount > limit)
    }
}

impl Criterion {
    fn is_met(&self, extra: &Map<String, Value>) -> bool {
        let Some(actual) = extra.get(&self.field) else {
            return false;
        };
        let ordering = match (actual, &self.value) {
            (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
            (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
            // Booleans and mixed types only compare for equality.
            (a, b) => {
                return match self.op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    _ => false,
                };
            }
        };
        let Some(ord) = ordering else { return false };
        match self.op {
            Op::Eq => ord.is_eq(),
            Op::Ne => ord.is_ne(),
            Op::Lt => ord.is_lt(),
            Op::Lte => ord.is_le(),
            Op::Gt => ord.is_gt(),
            Op::Gte => ord.is_ge(),
        }
    }
}

/// Whole years between `dob` and `on`.
pub fn age_on(dob: NaiveDate, on: NaiveDate) -> u32 {
    let mut years = on.year() - dob.year();
    if (on.month(), on.day()) < (dob.month(), dob.day()) {
        years -= 1;
    }
    years.max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ExtraSchema {
        serde_json::from_value(json!({"fields": [
            {"name": "disability", "type": "boolean"},
            {"name": "children_in_school", "type": "integer"},
            {"name": "housing", "type": "enum", "values": ["OWNED", "RENTED"]},
        ]}))
        .unwrap()
    }

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_overpayment_tolerance_defaults_to_nothing_and_is_bounded() {
        let r = rule(json!({"cash": {"kind": "flat", "amount": 15000}}));
        assert_eq!(r.overpayment_tolerance, 0);
        assert_eq!(
            serde_json::to_value(&r)
                .unwrap()
                .get("overpayment_tolerance"),
            None,
            "a plan without one stores what it stored before"
        );
        let r =
            rule(json!({"cash": {"kind": "flat", "amount": 15000}, "overpayment_tolerance": 50}));
        r.check(&schema(), false).unwrap();
        assert_eq!(r.overpayment_tolerance, 50);
        for bad in [-1, outpost_proto::MAX_PAYMENT_MINOR + 1] {
            let r = rule(
                json!({"cash": {"kind": "flat", "amount": 15000}, "overpayment_tolerance": bad}),
            );
            assert!(
                r.check(&schema(), false)
                    .unwrap_err()
                    .contains("overpayment_tolerance"),
                "{bad}"
            );
        }
    }

    #[test]
    fn flat_amount() {
        let r = rule(json!({"cash": {"kind": "flat", "amount": 15000}}));
        r.check(&schema(), false).unwrap();
        assert_eq!(r.cash_due(&Facts::default()), Ok(15000));
    }

    #[test]
    fn base_plus_criteria_adds_what_is_met() {
        let r = rule(
            json!({"cash": {"kind": "base_plus_criteria", "base": 10000, "criteria": [
            {"field": "disability", "op": "eq", "value": true, "amount": 2500},
            {"field": "children_in_school", "op": "gte", "value": 2, "amount": 3000},
            {"field": "housing", "op": "ne", "value": "OWNED", "amount": 1000},
        ]}, "limit_per_transaction": 15000}),
        );
        r.check(&schema(), false).unwrap();
        let due = |extra: Value| {
            let map = extra.as_object().unwrap().clone();
            r.cash_due(&Facts {
                extra: Some(&map),
                ..Default::default()
            })
            .unwrap()
        };
        assert_eq!(due(json!({})), 10000);
        assert_eq!(due(json!({"disability": true})), 12500);
        assert_eq!(
            due(json!({"disability": false, "children_in_school": 1})),
            10000
        );
        assert_eq!(
            due(json!({"children_in_school": 2, "housing": "RENTED"})),
            14000
        );
        let all = due(json!({"disability": true, "children_in_school": 3, "housing": "RENTED"}));
        assert_eq!(all, 16500);
        assert!(r.needs_approval(all));
        assert!(!r.needs_approval(15000));
    }

    #[test]
    fn per_child_counts_children_under_the_limit_up_to_the_cap() {
        let r = rule(
            json!({"cash": {"kind": "per_member", "base": 1000, "per_member": 2000,
            "child_age_limit": 18, "max_members": 3}}),
        );
        r.check(&schema(), true).unwrap();
        let on = date("2026-11-01");
        let dobs = [
            date("1980-05-05"), // adult
            date("2008-11-01"), // 18 on the day: not a child
            date("2008-11-02"), // still 17
            date("2015-01-01"),
            date("2019-01-01"),
            date("2022-01-01"), // fourth child, over the cap
        ];
        let facts = Facts {
            member_dobs: &dobs,
            on: Some(on),
            ..Default::default()
        };
        assert_eq!(r.cash_due(&facts), Ok(1000 + 3 * 2000));
        let per_member = rule(json!({"cash": {"kind": "per_member", "per_member": 500}}));
        assert_eq!(per_member.cash_due(&facts), Ok(6 * 500));
        assert!(
            per_member
                .check(&schema(), false)
                .unwrap_err()
                .contains("households")
        );
    }

    #[test]
    fn cash_for_work_pays_days_times_wage() {
        let r = rule(json!({"cash": {"kind": "cash_for_work", "project": "ROAD-1"}}));
        r.check(&schema(), false).unwrap();
        let facts = Facts {
            day_hundredths: 450, // four and a half days
            daily_wage: 1500,
            ..Default::default()
        };
        assert_eq!(r.cash_due(&facts), Ok(6750));
    }

    #[test]
    fn goods_only_and_bad_rules() {
        let goods = rule(json!({"goods": [{"item": "MAIZE-25KG", "quantity": 2}]}));
        goods.check(&schema(), true).unwrap();
        assert_eq!(goods.cash_due(&Facts::default()), Ok(0));

        let bad = [
            (json!({}), "neither cash nor goods"),
            (json!({"cash": {"kind": "flat", "amount": -1}}), "negative"),
            (
                json!({"cash": {"kind": "base_plus_criteria", "base": 1, "criteria": [
                    {"field": "income", "op": "gt", "value": 1, "amount": 1}]}}),
                "not in the plan's extra-field schema",
            ),
            (
                json!({"cash": {"kind": "base_plus_criteria", "base": 1, "criteria": [
                    {"field": "housing", "op": "gt", "value": "A", "amount": 1}]}}),
                "not a number or a date",
            ),
            (
                json!({"goods": [{"item": "X", "quantity": 0}]}),
                "must be positive",
            ),
            (
                json!({"cash": {"kind": "flat", "amount": 1}, "limit_per_transaction": 0}),
                "limit_per_transaction",
            ),
        ];
        for (v, expected) in bad {
            let err = rule(v.clone()).check(&schema(), true).unwrap_err();
            assert!(err.contains(expected), "{v}: {err}");
        }
        assert!(serde_json::from_value::<Rule>(json!({"cash": {"kind": "lottery"}})).is_err());
    }

    #[test]
    fn overflow_is_an_error() {
        let r = rule(
            json!({"cash": {"kind": "base_plus_criteria", "base": i64::MAX, "criteria": [
            {"field": "disability", "op": "eq", "value": true, "amount": 1}]}}),
        );
        let extra = json!({"disability": true}).as_object().unwrap().clone();
        assert!(
            r.cash_due(&Facts {
                extra: Some(&extra),
                ..Default::default()
            })
            .is_err()
        );
    }
}
