//! What the screens read: search, a beneficiary's page, the day's list, the day summary, the
//! sync status. Everything here is a read of the local database.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use outpost_proto::{
    auth::{CARD_PREFIX, Card},
    records::{Record, RecordKind},
};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{self, Enrolment};
use crate::types::*;

/// Days since 1970-01-01 as a date (how the replica carries dates).
pub fn date_of_days(days: i64) -> Option<NaiveDate> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    if days >= 0 {
        epoch.checked_add_days(Days::new(days as u64))
    } else {
        epoch.checked_sub_days(Days::new(days.unsigned_abs()))
    }
}

/// A total summed wide (`i128`) as the screens show it (`i64`). Amounts are bounded where
/// they are written (`MAX_PAYMENT_MINOR`), so this fails only on records no check let in;
/// then the screen says so instead of showing a wrapped number. (SQLite's own `SUM` fails
/// with "integer overflow" on such rows, so money is never summed there.)
fn total(sum: i128) -> Result<i64> {
    i64::try_from(sum).map_err(|_| Error::Internal {
        reason: format!("a total of {sum} is beyond what this phone can show"),
    })
}

/// What is paid against each entitlement (voided payouts excluded), summed wide.
fn paid_of(conn: &Connection, entitlement: Uuid) -> Result<i128> {
    let mut stmt = conn.prepare_cached(
        "SELECT amount_minor FROM payouts WHERE entitlement_id = ?1 AND voided_at IS NULL",
    )?;
    let mut rows = stmt.query([entitlement])?;
    let mut sum = 0i128;
    while let Some(r) = rows.next()? {
        sum += i128::from(r.get::<_, i64>(0)?);
    }
    Ok(sum)
}

pub fn days_of_date(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days()
}

/// Summaries of the given beneficiaries, in name order.
pub fn summaries(conn: &Connection, ids: &[Uuid]) -> Result<Vec<BeneficiarySummary>> {
    // A few indexed lookups per beneficiary: the person shown is the beneficiary person, or
    // the household's head (else its first member).
    let mut beneficiary = conn.prepare_cached(
        "SELECT pl.code, pl.name, b.status, b.individual_id, b.household_id
         FROM beneficiaries b JOIN plans pl ON pl.id = b.plan_id WHERE b.id = ?1",
    )?;
    let mut person = conn.prepare_cached(
        "SELECT first_name || ' ' || last_name, external_id, location_code, household_id
         FROM people WHERE id = ?1",
    )?;
    let mut head = conn.prepare_cached(
        "SELECT first_name || ' ' || last_name, external_id, location_code, household_id
         FROM people WHERE household_id = ?1 ORDER BY relationship <> 'HEAD', external_id LIMIT 1",
    )?;
    let mut household =
        conn.prepare_cached("SELECT code, location_code FROM households WHERE id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        let Some((plan_code, plan_name, status, individual, group)) = beneficiary
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<Uuid>>(3)?,
                    r.get::<_, Option<Uuid>>(4)?,
                ))
            })
            .optional()?
        else {
            continue;
        };
        let shown =
            |r: &rusqlite::Row| -> rusqlite::Result<(String, String, String, Option<Uuid>)> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            };
        let who = match (individual, group) {
            (Some(i), _) => person.query_row([i], shown).optional()?,
            (None, Some(g)) => head.query_row([g], shown).optional()?,
            (None, None) => None,
        };
        let (name, external_id, person_location, person_household) =
            who.unwrap_or_else(|| (String::new(), String::new(), String::new(), None));
        let place = match group.or(person_household) {
            Some(h) => household
                .query_row([h], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?,
            None => None,
        };
        out.push(BeneficiarySummary {
            id: id.to_string(),
            name,
            external_id,
            plan_code,
            plan_name,
            status,
            household_code: place.as_ref().map(|p| p.0.clone()),
            location_code: place.map_or(person_location, |p| p.1),
            due: due_of(conn, *id)?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// What is still due per currency (currencies with nothing entitled left out), summed wide.
fn due_of(conn: &Connection, beneficiary: Uuid) -> Result<Vec<Money>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, e.currency, e.amount_minor FROM entitlements e
         WHERE e.beneficiary_id = ?1 AND e.status = 'DUE'",
    )?;
    let rows = stmt
        .query_map([beneficiary], |r| {
            Ok((
                r.get::<_, Uuid>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // Per currency: (entitled, still due).
    let mut by_currency: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for (id, currency, amount) in rows {
        let left = (i128::from(amount) - paid_of(conn, id)?).max(0);
        let entry = by_currency.entry(currency).or_default();
        entry.0 += i128::from(amount);
        entry.1 += left;
    }
    by_currency
        .into_iter()
        .filter(|(_, (entitled, _))| *entitled > 0)
        .map(|(currency, (_, left))| {
            Ok(Money {
                currency,
                amount_minor: total(left)?,
            })
        })
        .collect()
}

/// Beneficiaries matching a name prefix (any member of the household, accents and case
/// ignored), an external id, a card number or the QR text of a card, or an id.
pub fn search(
    conn: &Connection,
    programme_key: &[u8],
    query: &str,
    limit: u32,
) -> Result<Vec<BeneficiarySummary>> {
    let q = query.trim();
    if q.is_empty() {
        return Err(Error::invalid("type a name, a card number or an id"));
    }
    let limit = limit.clamp(1, 500) as i64;
    let mut ids: Vec<Uuid> = Vec::new();
    if q.starts_with(CARD_PREFIX) {
        let card = Card::verify(q, programme_key)?;
        ids.push(card.beneficiary_id);
    } else if let Ok(id) = Uuid::parse_str(q) {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM beneficiaries WHERE id = ?1 OR individual_id = ?1
                 OR household_id = (SELECT household_id FROM people WHERE id = ?1)
                 OR household_id = ?1",
        )?;
        ids = stmt
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    } else {
        if q.bytes().all(|b| b.is_ascii_digit()) && q.len() <= 18 {
            let serial: i64 = q.parse().expect("digits");
            if let Some(b) = conn
                .prepare_cached("SELECT beneficiary_id FROM cards WHERE serial = ?1")?
                .query_row([serial], |r| r.get(0))
                .optional()?
            {
                ids.push(b);
            }
        }
        // An external id, exactly (ids hold characters the name index splits on).
        let mut stmt = conn.prepare_cached(
            "WITH persons AS (SELECT id, household_id FROM people WHERE external_id = ?1 COLLATE NOCASE)
             SELECT id FROM beneficiaries WHERE individual_id IN (SELECT id FROM persons)
             UNION
             SELECT id FROM beneficiaries WHERE household_id IN (SELECT household_id FROM persons)",
        )?;
        ids.extend(
            stmt.query_map([q], |r| r.get::<_, Uuid>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
        let terms: Vec<String> = q
            .split(|c: char| c.is_whitespace() || c.is_control() || c == ',' || c == '"')
            .filter(|t| !t.is_empty())
            .map(|t| format!("\"{t}\"*"))
            .collect();
        if !terms.is_empty() {
            let mut stmt = conn.prepare_cached(
                "WITH hits AS (SELECT rowid FROM people_search WHERE people_search MATCH ?1 LIMIT ?2 * 4),
                      persons AS (SELECT id, household_id FROM people WHERE rowid IN (SELECT rowid FROM hits))
                 SELECT id FROM beneficiaries WHERE individual_id IN (SELECT id FROM persons)
                 UNION
                 SELECT id FROM beneficiaries WHERE household_id IN (SELECT household_id FROM persons)
                 LIMIT ?2",
            )?;
            ids.extend(
                stmt.query_map(params![terms.join(" "), limit], |r| r.get::<_, Uuid>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
        }
    }
    ids.sort();
    ids.dedup();
    let mut out = summaries(conn, &ids)?;
    out.truncate(limit as usize);
    Ok(out)
}

/// The people who may collect for a beneficiary: the beneficiary person, the household head
/// and its named recipients, as they are now (the server applies the same rule).
pub fn may_collect(conn: &Connection, beneficiary: Uuid, person: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM beneficiaries b WHERE b.id = ?1 AND (b.individual_id = ?2
                 OR EXISTS (SELECT 1 FROM people p WHERE p.id = ?2 AND p.household_id = b.household_id
                     AND (p.recipient <> 'NONE' OR p.relationship = 'HEAD'))))",
        )?
        .query_row(params![beneficiary, person], |r| r.get(0))?)
}

pub fn person_name(conn: &Connection, id: Uuid) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT first_name || ' ' || last_name FROM people WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

fn goods_of(json: &str) -> Vec<ItemQuantity> {
    let map: BTreeMap<String, i64> = serde_json::from_str(json).unwrap_or_default();
    map.into_iter()
        .map(|(item_code, quantity)| ItemQuantity {
            item_code,
            quantity,
        })
        .collect()
}

/// Quantities of each item handed out against an entitlement (voided ones excluded).
pub fn handed_out(conn: &Connection, entitlement: Uuid) -> Result<BTreeMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.item_code, l.quantity FROM distributions d
         JOIN distribution_lines l ON l.record_id = d.record_id
         WHERE d.entitlement_id = ?1 AND d.voided_at IS NULL",
    )?;
    let mut sums: BTreeMap<String, i128> = BTreeMap::new();
    let mut rows = stmt.query([entitlement])?;
    while let Some(r) = rows.next()? {
        *sums.entry(r.get(0)?).or_default() += i128::from(r.get::<_, i64>(1)?);
    }
    sums.into_iter()
        .map(|(item, q)| Ok((item, total(q)?)))
        .collect()
}

const ENTITLEMENT_SQL: &str = "
    SELECT e.id, e.beneficiary_id, e.cycle_code, e.cycle_start_days, e.cycle_end_days, e.status,
           e.amount_minor, e.currency, e.goods, e.recipient_id
    FROM entitlements e";

fn entitlement_row(conn: &Connection, r: &rusqlite::Row) -> Result<EntitlementView> {
    let id: Uuid = r.get(0)?;
    let date = |d: i64| date_of_days(d).map(|d| d.to_string()).unwrap_or_default();
    let amount: i64 = r.get(6)?;
    let paid = paid_of(conn, id)?;
    let goods = goods_of(&r.get::<_, String>(8)?);
    let handed = handed_out(conn, id)?;
    let goods_remaining = goods
        .iter()
        .map(|g| ItemQuantity {
            item_code: g.item_code.clone(),
            quantity: (g.quantity - handed.get(&g.item_code).copied().unwrap_or(0)).max(0),
        })
        .collect();
    Ok(EntitlementView {
        id: id.to_string(),
        beneficiary_id: r.get::<_, Uuid>(1)?.to_string(),
        cycle_code: r.get(2)?,
        cycle_start: date(r.get(3)?),
        cycle_end: date(r.get(4)?),
        status: r.get(5)?,
        amount: Money {
            amount_minor: amount,
            currency: r.get(7)?,
        },
        paid_minor: total(paid)?,
        remaining_minor: total((i128::from(amount) - paid).max(0))?,
        goods,
        goods_remaining,
        recipient_id: r.get::<_, Option<Uuid>>(9)?.map(|u| u.to_string()),
    })
}

pub fn entitlement(conn: &Connection, id: Uuid) -> Result<Option<EntitlementView>> {
    let mut stmt = conn.prepare_cached(&format!("{ENTITLEMENT_SQL} WHERE e.id = ?1"))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(entitlement_row(conn, r)?)),
        None => Ok(None),
    }
}

/// A beneficiary's page.
pub fn beneficiary(conn: &Connection, id: Uuid) -> Result<BeneficiaryDetail> {
    let summary = summaries(conn, &[id])?
        .pop()
        .ok_or_else(|| Error::not_found(format!("beneficiary {id}")))?;
    let card_serials = conn
        .prepare_cached("SELECT serial FROM cards WHERE beneficiary_id = ?1 ORDER BY serial")?
        .query_map([id], |r| r.get::<_, i64>(0).map(|s| s as u64))?
        .collect::<rusqlite::Result<_>>()?;
    let mut members = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT p.id, p.first_name || ' ' || p.last_name, p.external_id, p.sex, p.dob_days,
                    p.relationship, p.recipient
             FROM people p, beneficiaries b
             WHERE b.id = ?1 AND (p.id = b.individual_id OR p.household_id = b.household_id)
             ORDER BY p.relationship <> 'HEAD', p.external_id",
        )?;
        let mut rows = stmt.query([id])?;
        while let Some(r) = rows.next()? {
            let person: Uuid = r.get(0)?;
            members.push(Member {
                id: person.to_string(),
                name: r.get(1)?,
                external_id: r.get(2)?,
                sex: r.get(3)?,
                date_of_birth: date_of_days(r.get(4)?).map(|d| d.to_string()),
                relationship: r.get(5)?,
                recipient: r.get(6)?,
                may_collect: may_collect(conn, id, person)?,
            });
        }
    }
    let mut entitlements = Vec::new();
    {
        let mut stmt = conn.prepare_cached(&format!(
            "{ENTITLEMENT_SQL} WHERE e.beneficiary_id = ?1 ORDER BY e.cycle_start_days DESC, e.id"
        ))?;
        let mut rows = stmt.query([id])?;
        while let Some(r) = rows.next()? {
            entitlements.push(entitlement_row(conn, r)?);
        }
    }
    Ok(BeneficiaryDetail {
        summary,
        card_serials,
        members,
        entitlements,
        payouts: payouts(conn, "p.beneficiary_id = ?1", params![id])?,
        distributions: distributions(conn, id)?,
    })
}

fn payouts(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PayoutView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT p.record_id, p.entitlement_id, p.beneficiary_id, p.collector_id,
                COALESCE((SELECT first_name || ' ' || last_name FROM people WHERE id = p.collector_id), ''),
                p.amount_minor, p.currency, p.proof, p.paid_at, p.override_reason, p.void_reason, p.own
         FROM payouts p WHERE {filter} ORDER BY p.paid_at, p.record_id"
    ))?;
    let rows = stmt.query_map(args, |r| {
        Ok(PayoutView {
            record_id: r.get::<_, Uuid>(0)?.to_string(),
            entitlement_id: r.get::<_, Uuid>(1)?.to_string(),
            beneficiary_id: r.get::<_, Uuid>(2)?.to_string(),
            collector_id: r.get::<_, Uuid>(3)?.to_string(),
            collector_name: r.get(4)?,
            amount: Money {
                amount_minor: r.get(5)?,
                currency: r.get(6)?,
            },
            proof: r.get(7)?,
            paid_at: r.get(8)?,
            override_reason: r.get(9)?,
            void_reason: r.get(10)?,
            own: r.get(11)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn distributions(conn: &Connection, beneficiary: Uuid) -> Result<Vec<DistributionView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.record_id, d.entitlement_id, d.collector_id, d.distributed_at, d.void_reason, d.own
         FROM distributions d WHERE d.beneficiary_id = ?1 ORDER BY d.distributed_at, d.record_id",
    )?;
    let mut rows = stmt.query([beneficiary])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: Uuid = r.get(0)?;
        let items = conn
            .prepare_cached(
                "SELECT item_code, quantity FROM distribution_lines WHERE record_id = ?1 ORDER BY 1",
            )?
            .query_map([id], |r| {
                Ok(ItemQuantity {
                    item_code: r.get(0)?,
                    quantity: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        out.push(DistributionView {
            record_id: id.to_string(),
            entitlement_id: r.get::<_, Uuid>(1)?.to_string(),
            collector_id: r.get::<_, Uuid>(2)?.to_string(),
            items,
            distributed_at: r.get(3)?,
            void_reason: r.get(4)?,
            own: r.get(5)?,
        });
    }
    Ok(out)
}

/// Entitlements payable on `day` (their cycle covers it) with something still to pay or hand
/// out, for beneficiaries who are ACTIVE.
pub fn due_on(conn: &Connection, day: NaiveDate, limit: u32) -> Result<Vec<DueEntitlement>> {
    let days = days_of_date(day);
    let mut stmt = conn.prepare_cached(&format!(
        "{ENTITLEMENT_SQL} JOIN beneficiaries b ON b.id = e.beneficiary_id
         WHERE e.status = 'DUE' AND b.status = 'ACTIVE' AND ?1 BETWEEN e.cycle_start_days AND e.cycle_end_days
         ORDER BY e.beneficiary_id, e.id"
    ))?;
    let mut rows = stmt.query([days])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let e = entitlement_row(conn, r)?;
        let goods_left = e.goods_remaining.iter().any(|g| g.quantity > 0);
        if e.remaining_minor == 0 && !goods_left {
            continue;
        }
        let b: Uuid = r.get(1)?;
        let beneficiary = summaries(conn, &[b])?
            .pop()
            .ok_or_else(|| Error::not_found(format!("beneficiary {b}")))?;
        out.push(DueEntitlement {
            entitlement: e,
            beneficiary,
        });
        if out.len() >= limit as usize {
            break;
        }
    }
    Ok(out)
}

/// Cash in hand per currency for an enrolment: received − returned − paid (voided payouts
/// give the money back). `in_hand` counts every move, whatever day the phone's clock gave it
/// (a clock corrected backwards must not make money reappear); the other columns are `day`'s.
pub fn float(conn: &Connection, enrolment: Uuid, day: NaiveDate) -> Result<Vec<FloatLine>> {
    let moves = moves(
        conn,
        "SELECT currency, day, CASE kind WHEN 'CASH_IN' THEN amount_minor ELSE 0 END,
                CASE kind WHEN 'CASH_OUT' THEN amount_minor ELSE 0 END, 0
         FROM ledger WHERE enrolment_id = ?1 AND kind IN ('CASH_IN', 'CASH_OUT')
         UNION ALL
         SELECT currency, day, 0, 0, amount_minor FROM payouts
         WHERE enrolment_id = ?1 AND own = 1 AND voided_at IS NULL",
        enrolment,
        day,
    )?;
    moves
        .into_iter()
        .map(|(currency, m)| {
            Ok(FloatLine {
                currency,
                opening_minor: total(m.opening)?,
                received_minor: total(m.received)?,
                paid_out_minor: total(m.used)?,
                returned_minor: total(m.returned)?,
                in_hand_minor: total(m.in_hand)?,
            })
        })
        .collect()
}

/// Goods in hand per item for an enrolment, as [`float`] does for cash.
pub fn stock(conn: &Connection, enrolment: Uuid, day: NaiveDate) -> Result<Vec<StockLine>> {
    let moves = moves(
        conn,
        "SELECT item_code, day, CASE kind WHEN 'STOCK_IN' THEN quantity ELSE 0 END,
                CASE kind WHEN 'STOCK_OUT' THEN quantity ELSE 0 END, 0
         FROM ledger WHERE enrolment_id = ?1 AND kind IN ('STOCK_IN', 'STOCK_OUT')
         UNION ALL
         SELECT l.item_code, d.day, 0, 0, l.quantity FROM distributions d
         JOIN distribution_lines l ON l.record_id = d.record_id
         WHERE d.enrolment_id = ?1 AND d.own = 1 AND d.voided_at IS NULL",
        enrolment,
        day,
    )?;
    moves
        .into_iter()
        .map(|(item_code, m)| {
            Ok(StockLine {
                item_code,
                opening: total(m.opening)?,
                received: total(m.received)?,
                handed_out: total(m.used)?,
                returned: total(m.returned)?,
                in_hand: total(m.in_hand)?,
            })
        })
        .collect()
}

/// One holding's moves, summed wide: before `day` (opening), on `day`, and all of them.
#[derive(Default)]
struct Moves {
    opening: i128,
    received: i128,
    used: i128,
    returned: i128,
    in_hand: i128,
}

/// Sums rows of (holding, day, received, returned, used) per holding, in order of the holding.
/// `in_hand` counts every move, whatever day the phone's clock gave it (a clock corrected
/// backwards must not make money reappear); the other columns are `day`'s.
fn moves(
    conn: &Connection,
    sql: &str,
    enrolment: Uuid,
    day: NaiveDate,
) -> Result<BTreeMap<String, Moves>> {
    let day = day.to_string();
    let mut out: BTreeMap<String, Moves> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![enrolment])?;
    while let Some(r) = rows.next()? {
        let on: String = r.get(1)?;
        let get = |i: usize| -> rusqlite::Result<i128> {
            Ok(i128::from(r.get::<_, Option<i64>>(i)?.unwrap_or(0)))
        };
        let (received, returned, used) = (get(2)?, get(3)?, get(4)?);
        let m = out.entry(r.get(0)?).or_default();
        let net = received - returned - used;
        m.in_hand += net;
        match on.as_str().cmp(day.as_str()) {
            std::cmp::Ordering::Less => m.opening += net,
            std::cmp::Ordering::Equal => {
                m.received += received;
                m.returned += returned;
                m.used += used;
            }
            std::cmp::Ordering::Greater => {}
        }
    }
    Ok(out)
}

pub fn day_summary(conn: &Connection, enrolment: &Enrolment, day: NaiveDate) -> Result<DaySummary> {
    let d = day.to_string();
    let count = |table: &str, at: &str| -> Result<u64> {
        Ok(conn.query_row(
            &format!(
                "SELECT count(*) FROM {table} WHERE enrolment_id = ?1 AND own = 1 AND substr({at}, 1, 10) = ?2"
            ),
            params![enrolment.id, d],
            |r| r.get::<_, i64>(0),
        )? as u64)
    };
    let mut paid = Vec::new();
    let mut payouts = 0;
    {
        let mut stmt = conn.prepare_cached(
            "SELECT currency, amount_minor FROM payouts
             WHERE enrolment_id = ?1 AND own = 1 AND day = ?2 AND voided_at IS NULL",
        )?;
        let mut rows = stmt.query(params![enrolment.id, d])?;
        let mut sums: BTreeMap<String, i128> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            payouts += 1;
            *sums.entry(r.get(0)?).or_default() += i128::from(r.get::<_, i64>(1)?);
        }
        for (currency, sum) in sums {
            paid.push(Money {
                currency,
                amount_minor: total(sum)?,
            });
        }
    }
    Ok(DaySummary {
        day: d.clone(),
        payouts,
        paid,
        distributions: conn.query_row(
            "SELECT count(*) FROM distributions WHERE enrolment_id = ?1 AND own = 1 AND day = ?2
                 AND voided_at IS NULL",
            params![enrolment.id, d],
            |r| r.get::<_, i64>(0),
        )? as u64,
        timesheets: count("timesheets", "recorded_at")?,
        verifications: count("verifications", "verified_at")?,
        grievances: count("grievances", "created_at")?,
        float: float(conn, enrolment.id, day)?,
        stock: stock(conn, enrolment.id, day)?,
        sync: sync_status(conn)?,
    })
}

/// Pending counts every enrolment on the phone: an earlier agent's unsent records are pending
/// too.
pub fn sync_status(conn: &Connection) -> Result<SyncStatus> {
    let (pending, refused): (i64, i64) = conn.query_row(
        "SELECT count(*) FILTER (WHERE heads <> acked_heads), count(*) FILTER (WHERE refused IS NOT NULL)
         FROM records",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let active = store::active_enrolment(conn)?;
    let last_sync_at = active.as_ref().and_then(|e| e.last_sync_at.clone());
    let replica_held = active.as_ref().is_some_and(|e| e.replica_cursor > 0);
    Ok(SyncStatus {
        pending: pending as u64,
        refused: refused as u64,
        up_to_date: pending == 0 && replica_held && last_sync_at.is_some(),
        last_sync_at,
    })
}

/// This phone's own records, newest first, for the sync screen.
pub fn records(conn: &Connection, only_pending: bool, limit: u32) -> Result<Vec<RecordView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.kind, r.seq, COALESCE(e.agent_username, ''), r.created_at,
                r.heads <> r.acked_heads, r.refused
         FROM records r LEFT JOIN enrolments e ON e.id = r.enrolment_id
         WHERE r.seq IS NOT NULL AND (?1 = 0 OR r.heads <> r.acked_heads OR r.refused IS NOT NULL)
         ORDER BY r.created_at DESC, r.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![only_pending, limit], |r| {
        Ok(RecordView {
            id: r.get::<_, Uuid>(0)?.to_string(),
            kind: r.get(1)?,
            seq: r.get::<_, i64>(2)? as u64,
            agent_username: r.get(3)?,
            created_at: r.get(4)?,
            pending: r.get(5)?,
            refused: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Grievances held (made here, or by others in the assignment), newest first.
pub fn grievances(conn: &Connection) -> Result<Vec<GrievanceView>> {
    let ids: Vec<Uuid> = conn
        .prepare_cached("SELECT record_id FROM grievances ORDER BY created_at DESC, record_id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter().map(|id| grievance(conn, id)).collect()
}

/// A grievance read from its document, comments and all.
pub fn grievance(conn: &Connection, id: Uuid) -> Result<GrievanceView> {
    let (bytes, own): (Vec<u8>, bool) = conn
        .prepare_cached("SELECT doc, seq IS NOT NULL FROM records WHERE id = ?1 AND kind = ?2")?
        .query_row(params![id, RecordKind::Grievance.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or_else(|| Error::not_found(format!("grievance {id}")))?;
    let doc = automerge::AutoCommit::load(&bytes)?;
    let Record::Grievance(g) = Record::read(&doc)? else {
        return Err(Error::not_found(format!("grievance {id}")));
    };
    Ok(GrievanceView {
        record_id: id.to_string(),
        beneficiary_id: g.beneficiary_id.map(|b| b.to_string()),
        category: g.category,
        description: g.description,
        status: g.status.as_str().into(),
        assignee: g.assignee,
        comments: g
            .comments
            .into_iter()
            .map(|c| CommentView {
                author: c.author,
                at: c.at.to_rfc3339(),
                text: c.text,
            })
            .collect(),
        created_at: g.created_at.to_rfc3339(),
        own,
    })
}

/// Rows of a reference table as choices for a picker.
pub fn choices(conn: &Connection, table: &str) -> Result<Vec<Choice>> {
    let mut stmt = conn.prepare(&format!("SELECT id, code, name FROM {table} ORDER BY code"))?;
    let rows = stmt.query_map([], |r| {
        Ok(Choice {
            id: r.get::<_, Uuid>(0)?.to_string(),
            code: r.get(1)?,
            name: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The questions of a beneficiary's plan (the extra fields of its registry schema).
pub fn questions(conn: &Connection, beneficiary: Uuid) -> Result<Vec<Question>> {
    let schema: String = conn
        .prepare_cached(
            "SELECT p.extra_schema FROM beneficiaries b JOIN plans p ON p.id = b.plan_id WHERE b.id = ?1",
        )?
        .query_row([beneficiary], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::not_found(format!("beneficiary {beneficiary}")))?;
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap_or_default();
    let fields = schema["fields"].as_array().cloned().unwrap_or_default();
    Ok(fields
        .iter()
        .filter_map(|f| {
            Some(Question {
                name: f["name"].as_str()?.to_owned(),
                kind: f["type"].as_str().unwrap_or("text").to_owned(),
                values: f["values"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect())
}
