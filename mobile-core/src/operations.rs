//! The offline operations and the rules each is checked against before anything is written.
//! Every operation is one transaction: checks, the record document, its row, the ledger.
//! The server judges the merged records again; these checks stop mistakes at the door.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate};
use outpost_proto::{
    BeneficiaryStatus, Currency, Money,
    auth::Card,
    records::{self, Comment, GrievanceStatus, Proof, Record},
};
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{Enrolment, queries, records as docs};
use crate::types::*;

/// Who is acting, and when (the phone's clock, with its zone).
pub struct Ctx<'a> {
    pub enrolment: &'a Enrolment,
    pub actor: &'a [u8],
    pub now: DateTime<FixedOffset>,
}

pub fn parse_id(what: &str, s: &str) -> Result<Uuid> {
    Uuid::parse_str(s.trim()).map_err(|_| Error::invalid(format!("{what} `{s}` is not an id")))
}

fn money(amount_minor: i64, currency: &str) -> Result<Money> {
    let currency: Currency = currency
        .parse()
        .map_err(|e: outpost_proto::MoneyError| Error::invalid(e.to_string()))?;
    Ok(Money::new(amount_minor, currency))
}

fn reason(what: &str, s: &str) -> Result<String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Error::invalid(format!("{what}: give a reason")));
    }
    if s.chars().count() > 500 {
        return Err(Error::invalid(format!("{what}: at most 500 characters")));
    }
    Ok(s.to_owned())
}

struct Beneficiary {
    status: String,
    plan_id: Uuid,
}

fn beneficiary(tx: &Transaction, id: Uuid) -> Result<Beneficiary> {
    tx.prepare_cached("SELECT status, plan_id FROM beneficiaries WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Beneficiary {
                status: r.get(0)?,
                plan_id: r.get(1)?,
            })
        })
        .optional()?
        .ok_or_else(|| Error::NotSyncedYet {
            what: format!("beneficiary {id} is not on this phone"),
        })
}

fn require_active(b: &Beneficiary) -> Result<()> {
    if b.status != BeneficiaryStatus::Active.as_str() {
        return Err(Error::NotActive {
            status: b.status.clone(),
        });
    }
    Ok(())
}

struct Entitled {
    view: EntitlementView,
    beneficiary_id: Uuid,
}

fn entitlement(tx: &Transaction, id: Uuid) -> Result<Entitled> {
    let view = queries::entitlement(tx, id)?.ok_or_else(|| Error::NotSyncedYet {
        what: format!("entitlement {id} is not on this phone"),
    })?;
    if view.status != "DUE" {
        return Err(Error::invalid(format!(
            "entitlement {id} is {}: it waits for its own approval at the office",
            view.status
        )));
    }
    Ok(Entitled {
        beneficiary_id: Uuid::parse_str(&view.beneficiary_id).expect("stored id"),
        view,
    })
}

fn check_collector(tx: &Transaction, e: &Entitled, collector: Uuid) -> Result<()> {
    if !queries::may_collect(tx, e.beneficiary_id, collector)? {
        let name =
            queries::person_name(tx, collector)?.unwrap_or_else(|| format!("person {collector}"));
        return Err(Error::NotAllowedCollector { name });
    }
    Ok(())
}

/// Checks the proof of identity and turns it into what the record keeps.
fn proof(
    tx: &Transaction,
    ctx: &Ctx,
    input: &ProofInput,
    beneficiary: Uuid,
    plan: Uuid,
    collector: Uuid,
) -> Result<Proof> {
    match input {
        ProofInput::Card { text } => {
            let card = Card::verify(text.trim(), &ctx.enrolment.programme_key)?;
            let revoked: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_cards WHERE serial = ?1)")?
                .query_row([card.serial as i64], |r| r.get(0))?;
            if revoked {
                return Err(Error::CardRefused {
                    reason: format!("card {} was revoked", card.serial),
                });
            }
            if card.beneficiary_id != beneficiary || card.plan_id != plan {
                return Err(Error::CardRefused {
                    reason: format!("card {} is another beneficiary's", card.serial),
                });
            }
            // The serials in force come with the beneficiary's own row, so they are never
            // behind it, while the revocation list may be (a download cut half way).
            let in_force: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM cards WHERE serial = ?1 AND beneficiary_id = ?2)",
                )?
                .query_row(params![card.serial as i64, beneficiary], |r| r.get(0))?;
            if !in_force {
                return Err(Error::NotSyncedYet {
                    what: format!(
                        "card {} is not among this beneficiary's cards on this phone",
                        card.serial
                    ),
                });
            }
            if card.holder_id != collector {
                let holder = queries::person_name(tx, card.holder_id)?
                    .unwrap_or_else(|| card.holder_id.to_string());
                return Err(Error::CardRefused {
                    reason: format!(
                        "card {} is held by {holder}, not the collector",
                        card.serial
                    ),
                });
            }
            Ok(Proof::Card(card.serial))
        }
        // The API checked the PIN in a transaction of its own, so a wrong one is counted even
        // though this payout is not written.
        ProofInput::AgentPin { .. } => Ok(Proof::Pin),
        ProofInput::Signature { reference } => {
            Ok(Proof::Signature(reason("signature", reference)?))
        }
        ProofInput::Photo { reference } => Ok(Proof::Photo(reason("photo", reference)?)),
    }
}

/// Records a payout against an entitlement.
pub fn pay(tx: &Transaction, ctx: &Ctx, input: &PayoutInput) -> Result<Uuid> {
    let e = entitlement(tx, parse_id("entitlement", &input.entitlement_id)?)?;
    let collector = parse_id("collector", &input.collector_id)?;
    let b = beneficiary(tx, e.beneficiary_id)?;
    require_active(&b)?;
    check_collector(tx, &e, collector)?;
    if input.amount_minor <= 0 {
        return Err(Error::invalid("the amount must be more than zero"));
    }
    if e.view.amount.amount_minor == 0 {
        return Err(Error::invalid(
            "this entitlement has no cash to pay: hand out its goods instead",
        ));
    }
    let amount = money(input.amount_minor, &input.currency)?;
    if amount.currency.as_str() != e.view.amount.currency {
        return Err(Error::invalid(format!(
            "the entitlement is in {}, not {}",
            e.view.amount.currency, input.currency
        )));
    }
    let override_reason = match &input.override_reason {
        Some(r) => Some(reason("override", r)?),
        None => None,
    };
    // What is still due; an override pays again up to the whole entitlement.
    let due = if override_reason.is_some() {
        e.view.amount.amount_minor
    } else {
        e.view.remaining_minor
    };
    if override_reason.is_none() && due == 0 {
        let paid_at: Option<String> = tx
            .prepare_cached(
                "SELECT max(paid_at) FROM payouts WHERE entitlement_id = ?1 AND voided_at IS NULL",
            )?
            .query_row([parse_id("entitlement", &e.view.id)?], |r| r.get(0))?;
        return Err(Error::AlreadyPaid {
            paid_at: paid_at.unwrap_or_default(),
        });
    }
    if amount.minor > due {
        return Err(Error::OverEntitlement {
            asked: amount.minor,
            due,
            currency: input.currency.clone(),
        });
    }
    let in_hand = queries::float(tx, ctx.enrolment.id, ctx.now.date_naive())?
        .into_iter()
        .find(|f| f.currency == amount.currency.as_str())
        .map_or(0, |f| f.in_hand_minor);
    if amount.minor > in_hand {
        return Err(Error::OverFloat {
            asked: amount.minor,
            in_hand,
            currency: input.currency.clone(),
        });
    }
    let proof = proof(
        tx,
        ctx,
        &input.proof,
        e.beneficiary_id,
        b.plan_id,
        collector,
    )?;
    let record = Record::Payout(records::Payout {
        beneficiary_id: e.beneficiary_id,
        entitlement_id: parse_id("entitlement", &e.view.id)?,
        collector_id: collector,
        amount,
        proof,
        paid_at: ctx.now,
        override_reason,
        void: None,
    });
    docs::insert_new(tx, ctx.enrolment.id, ctx.actor, &record, &ctx.now)
}

/// Hands out goods against an entitlement, from the agent's stock.
pub fn distribute(tx: &Transaction, ctx: &Ctx, input: &DistributionInput) -> Result<Uuid> {
    let e = entitlement(tx, parse_id("entitlement", &input.entitlement_id)?)?;
    let collector = parse_id("collector", &input.collector_id)?;
    let b = beneficiary(tx, e.beneficiary_id)?;
    require_active(&b)?;
    check_collector(tx, &e, collector)?;
    if input.items.is_empty() {
        return Err(Error::invalid("name at least one item to hand out"));
    }
    let stock = queries::stock(tx, ctx.enrolment.id, ctx.now.date_naive())?;
    let mut items = BTreeMap::new();
    for line in &input.items {
        if line.quantity <= 0 {
            return Err(Error::invalid(format!(
                "the quantity of {} must be more than zero",
                line.item_code
            )));
        }
        let Some(left) = e
            .view
            .goods_remaining
            .iter()
            .find(|g| g.item_code == line.item_code)
        else {
            return Err(Error::invalid(format!(
                "{} is not part of this entitlement",
                line.item_code
            )));
        };
        if left.quantity == 0 {
            return Err(Error::AlreadyRecorded {
                what: format!(
                    "{} was already handed out for this entitlement",
                    line.item_code
                ),
            });
        }
        if line.quantity > left.quantity {
            return Err(Error::invalid(format!(
                "{} {} is more than the {} still due",
                line.quantity, line.item_code, left.quantity
            )));
        }
        let in_hand = stock
            .iter()
            .find(|s| s.item_code == line.item_code)
            .map_or(0, |s| s.in_hand);
        if line.quantity > in_hand {
            return Err(Error::OutOfStock {
                item: line.item_code.clone(),
                asked: line.quantity,
                in_hand,
            });
        }
        if items
            .insert(line.item_code.clone(), line.quantity)
            .is_some()
        {
            return Err(Error::invalid(format!(
                "{} is listed twice",
                line.item_code
            )));
        }
    }
    let record = Record::Distribution(records::Distribution {
        beneficiary_id: e.beneficiary_id,
        entitlement_id: parse_id("entitlement", &e.view.id)?,
        collector_id: collector,
        items,
        distributed_at: ctx.now,
        void: None,
    });
    docs::insert_new(tx, ctx.enrolment.id, ctx.actor, &record, &ctx.now)
}

/// Records a day (or part of one) a worker worked on a project: one entry per worker per day.
pub fn timesheet(tx: &Transaction, ctx: &Ctx, input: &TimesheetInput) -> Result<Uuid> {
    let project = parse_id("project", &input.project_id)?;
    let worker = parse_id("worker", &input.worker_id)?;
    let plan: Uuid = tx
        .prepare_cached("SELECT plan_id FROM projects WHERE id = ?1")?
        .query_row([project], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotSyncedYet {
            what: format!("project {project} is not on this phone"),
        })?;
    let b = beneficiary(tx, worker)?;
    if b.plan_id != plan {
        return Err(Error::invalid(
            "the worker is not enrolled in this project's plan",
        ));
    }
    require_active(&b)?;
    let date = NaiveDate::parse_from_str(input.work_date.trim(), "%Y-%m-%d")
        .map_err(|_| Error::invalid(format!("`{}` is not a date (YYYY-MM-DD)", input.work_date)))?;
    if date > ctx.now.date_naive() {
        return Err(Error::invalid(
            "work cannot be recorded for a day still to come",
        ));
    }
    if !(1..=100).contains(&input.day_hundredths) {
        return Err(Error::invalid(
            "a day's work is 1 to 100 hundredths of a day",
        ));
    }
    let already: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM timesheets WHERE beneficiary_id = ?1 AND work_date = ?2
                 AND voided_at IS NULL)",
        )?
        .query_row(params![worker, date.to_string()], |r| r.get(0))?;
    if already {
        return Err(Error::AlreadyRecorded {
            what: format!("this worker's day {date}"),
        });
    }
    let record = Record::Timesheet(records::Timesheet {
        project_id: project,
        beneficiary_id: worker,
        work_date: date,
        day_hundredths: input.day_hundredths,
        recorded_at: ctx.now,
        void: None,
    });
    docs::insert_new(tx, ctx.enrolment.id, ctx.actor, &record, &ctx.now)
}

/// Voids a payout, distribution or timesheet entry: the fact stays, marked void.
pub fn void(tx: &Transaction, ctx: &Ctx, record_id: &str, why: &str) -> Result<()> {
    let id = parse_id("record", record_id)?;
    let why = reason("void", why)?;
    let held = docs::load(tx, id, ctx.actor)?;
    if !held.own || held.enrolment != ctx.enrolment.id {
        return Err(Error::invalid(
            "only the agent who made a record can void it on this phone",
        ));
    }
    let already = match &held.record {
        Record::Payout(p) => p.void.is_some(),
        Record::Distribution(d) => d.void.is_some(),
        Record::Timesheet(t) => t.void.is_some(),
        other => {
            return Err(Error::invalid(format!(
                "a {} cannot be voided",
                other.kind().as_str()
            )));
        }
    };
    if already {
        return Err(Error::AlreadyRecorded {
            what: "this record is already void".into(),
        });
    }
    let v = records::Void {
        reason: why,
        at: ctx.now,
    };
    docs::update(tx, held, &ctx.now, |doc| Ok(records::void(doc, &v)?))?;
    Ok(())
}

/// Records an eligibility check: answers to the plan's questions and, maybe, a proposed
/// status change for the office to approve.
pub fn verify(tx: &Transaction, ctx: &Ctx, input: &VerificationInput) -> Result<Uuid> {
    let id = parse_id("beneficiary", &input.beneficiary_id)?;
    let b = beneficiary(tx, id)?;
    let questions = queries::questions(tx, id)?;
    let mut answers = BTreeMap::new();
    for a in &input.answers {
        let Some(q) = questions.iter().find(|q| q.name == a.question) else {
            return Err(Error::invalid(format!(
                "`{}` is not one of this plan's questions",
                a.question
            )));
        };
        let answer = a.answer.trim();
        let ok = match q.kind.as_str() {
            "boolean" => matches!(answer, "true" | "false"),
            "enum" => q.values.iter().any(|v| v == answer),
            "number" | "integer" => answer.parse::<f64>().is_ok(),
            "date" => NaiveDate::parse_from_str(answer, "%Y-%m-%d").is_ok(),
            _ => !answer.is_empty(),
        };
        if !ok {
            return Err(Error::invalid(format!(
                "`{answer}` is not an answer to {} ({}{})",
                q.name,
                q.kind,
                if q.values.is_empty() {
                    String::new()
                } else {
                    format!(": {}", q.values.join(", "))
                }
            )));
        }
        answers.insert(q.name.clone(), answer.to_owned());
    }
    let proposed_status = match input.proposed_status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => {
            let to: BeneficiaryStatus = s
                .parse()
                .map_err(|e: outpost_proto::UnknownName| Error::invalid(e.to_string()))?;
            let from: BeneficiaryStatus = b
                .status
                .parse()
                .map_err(|e: outpost_proto::UnknownName| Error::invalid(e.to_string()))?;
            from.transition(to)
                .map_err(|e| Error::invalid(e.to_string()))?;
            Some(to)
        }
    };
    if answers.is_empty() && proposed_status.is_none() && input.note.trim().is_empty() {
        return Err(Error::invalid(
            "a verification needs answers, a proposed status or a note",
        ));
    }
    let record = Record::Verification(records::Verification {
        beneficiary_id: id,
        answers,
        proposed_status,
        note: input.note.trim().to_owned(),
        verified_at: ctx.now,
    });
    docs::insert_new(tx, ctx.enrolment.id, ctx.actor, &record, &ctx.now)
}

pub fn create_grievance(tx: &Transaction, ctx: &Ctx, input: &GrievanceInput) -> Result<Uuid> {
    let beneficiary_id = match input.beneficiary_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => {
            let id = parse_id("beneficiary", s)?;
            beneficiary(tx, id)?;
            Some(id)
        }
    };
    let known: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM grievance_categories WHERE code = ?1)")?
        .query_row([input.category.trim()], |r| r.get(0))?;
    if !known {
        return Err(Error::invalid(format!(
            "`{}` is not a grievance category",
            input.category
        )));
    }
    let description = input.description.trim();
    if description.is_empty() {
        return Err(Error::invalid("describe the grievance"));
    }
    let record = Record::Grievance(records::Grievance {
        beneficiary_id,
        category: input.category.trim().to_owned(),
        description: description.to_owned(),
        status: GrievanceStatus::Open,
        assignee: None,
        comments: Vec::new(),
        created_at: ctx.now,
    });
    docs::insert_new(tx, ctx.enrolment.id, ctx.actor, &record, &ctx.now)
}

fn held_grievance(tx: &Transaction, ctx: &Ctx, id: &str) -> Result<docs::Held> {
    let held = docs::load(tx, parse_id("grievance", id)?, ctx.actor)?;
    if !matches!(held.record, Record::Grievance(_)) {
        return Err(Error::not_found(format!("grievance {id}")));
    }
    Ok(held)
}

pub fn comment_grievance(tx: &Transaction, ctx: &Ctx, id: &str, text: &str) -> Result<()> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::invalid("the comment is empty"));
    }
    let held = held_grievance(tx, ctx, id)?;
    let comment = Comment {
        author: ctx.enrolment.agent_username.clone(),
        at: ctx.now,
        text: text.to_owned(),
    };
    docs::update(tx, held, &ctx.now, |doc| {
        Ok(records::add_comment(doc, &comment)?)
    })?;
    Ok(())
}

pub fn set_grievance_status(
    tx: &Transaction,
    ctx: &Ctx,
    id: &str,
    status: &str,
    assignee: Option<&str>,
) -> Result<()> {
    let to = GrievanceStatus::parse(status.trim()).ok_or_else(|| {
        Error::invalid(format!(
            "`{status}` is not a grievance status (OPEN, IN_PROGRESS, RESOLVED, CLOSED)"
        ))
    })?;
    let held = held_grievance(tx, ctx, id)?;
    let Record::Grievance(g) = &held.record else {
        unreachable!("checked above")
    };
    if !g.status.can_become(to) {
        return Err(Error::invalid(format!(
            "a {} grievance cannot become {}",
            g.status.as_str(),
            to.as_str()
        )));
    }
    let assignee = assignee.map(str::trim).filter(|a| !a.is_empty());
    docs::update(tx, held, &ctx.now, |doc| {
        Ok(records::set_grievance_status(doc, to, assignee)?)
    })?;
    Ok(())
}

pub fn update_contact(tx: &Transaction, ctx: &Ctx, input: &ContactInput) -> Result<Uuid> {
    let beneficiary_id = parse_id("beneficiary", &input.beneficiary_id)?;
    let individual_id = parse_id("person", &input.individual_id)?;
    beneficiary(tx, beneficiary_id)?;
    let member: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM beneficiaries b, people p WHERE b.id = ?1 AND p.id = ?2
                 AND (p.id = b.individual_id OR p.household_id = b.household_id))",
        )?
        .query_row(params![beneficiary_id, individual_id], |r| r.get(0))?;
    if !member {
        return Err(Error::invalid(
            "that person is not part of this beneficiary's household",
        ));
    }
    let phone = match input.phone.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            let ok = p
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (c == '+' && i == 0));
            if !ok || !(6..=15).contains(&digits) {
                return Err(Error::invalid(format!(
                    "`{p}` is not a phone number (6 to 15 digits, may start with +)"
                )));
            }
            Some(p.to_owned())
        }
    };
    let address = input
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    if phone.is_none() && address.is_none() {
        return Err(Error::invalid("give a new phone number or address"));
    }
    let record = Record::ContactUpdate(records::ContactUpdate {
        beneficiary_id,
        individual_id,
        phone,
        address,
        updated_at: ctx.now,
    });
    docs::insert_new(tx, ctx.enrolment.id, ctx.actor, &record, &ctx.now)
}

/// Cash or goods the agent receives or hands back. Handing back more than is held is refused.
pub fn ledger(
    tx: &Transaction,
    ctx: &Ctx,
    kind: &str,
    what: &str,
    amount: i64,
    note: &str,
) -> Result<()> {
    if amount <= 0 {
        return Err(Error::invalid("the amount must be more than zero"));
    }
    // The same bound the server puts on a payment: beyond it is a slip of the finger, and it
    // keeps every total on this phone far from overflowing.
    if amount > outpost_proto::MAX_PAYMENT_MINOR {
        return Err(Error::invalid(format!(
            "{amount} is beyond any plausible amount (at most {})",
            outpost_proto::MAX_PAYMENT_MINOR
        )));
    }
    let day = ctx.now.date_naive();
    let (currency, minor, item, qty) = match kind {
        "CASH_IN" | "CASH_OUT" => {
            let m = money(amount, what)?;
            if kind == "CASH_OUT" {
                let in_hand = queries::float(tx, ctx.enrolment.id, day)?
                    .into_iter()
                    .find(|f| f.currency == m.currency.as_str())
                    .map_or(0, |f| f.in_hand_minor);
                if amount > in_hand {
                    return Err(Error::OverFloat {
                        asked: amount,
                        in_hand,
                        currency: what.to_owned(),
                    });
                }
            }
            (
                Some(m.currency.as_str().to_owned()),
                Some(amount),
                None,
                None,
            )
        }
        "STOCK_IN" | "STOCK_OUT" => {
            let known: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM goods_items WHERE code = ?1)")?
                .query_row([what], |r| r.get(0))?;
            if !known {
                return Err(Error::NotSyncedYet {
                    what: format!("goods item `{what}` is not on this phone"),
                });
            }
            if kind == "STOCK_OUT" {
                let in_hand = queries::stock(tx, ctx.enrolment.id, day)?
                    .into_iter()
                    .find(|s| s.item_code == what)
                    .map_or(0, |s| s.in_hand);
                if amount > in_hand {
                    return Err(Error::OutOfStock {
                        item: what.to_owned(),
                        asked: amount,
                        in_hand,
                    });
                }
            }
            (None, None, Some(what.to_owned()), Some(amount))
        }
        other => return Err(Error::invalid(format!("unknown ledger entry {other}"))),
    };
    tx.execute(
        "INSERT INTO ledger (enrolment_id, kind, currency, amount_minor, item_code, quantity, note, at, day)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            ctx.enrolment.id,
            kind,
            currency,
            minor,
            item,
            qty,
            note.trim(),
            ctx.now.to_rfc3339(),
            day.to_string()
        ],
    )?;
    Ok(())
}

/// The entitlements due on a day, `YYYY-MM-DD` or today.
pub fn day_of(s: Option<&str>, now: &DateTime<FixedOffset>) -> Result<NaiveDate> {
    match s.map(str::trim) {
        None | Some("") => Ok(now.date_naive()),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| Error::invalid(format!("`{d}` is not a date (YYYY-MM-DD)"))),
    }
}
