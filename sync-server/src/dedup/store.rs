//! The registry read as people to match, and the candidate pairs kept for review.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Run;
use super::matching::Person;
use crate::store::audit;
use crate::store::{ReadTx, WriteTx, now};
use crate::{Error, Result};

/// The people of one run, with their registry ids (same order).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub ids: Vec<Uuid>,
    pub people: Vec<Person>,
}

/// Everyone in the registry or, for a plan, the people it enrols (directly or through their
/// household), each with their household's other members, village path, and the phone and
/// national ID an import may have put among the extra fields.
pub fn people(conn: &ReadTx, plan: Option<&str>) -> Result<Registry> {
    let plan_id: Option<Uuid> = match plan {
        Some(code) => Some(crate::plans::store::plan_by_code(conn, code)?.id),
        None => None,
    };
    let mut stmt = conn.sqlite().prepare(
        "SELECT i.id, i.external_id, i.first_name, i.last_name, i.dob, i.sex,
                (SELECT l.path FROM locations l WHERE l.id = COALESCE(i.location_id, g.location_id)),
                g.code, i.extra
           FROM individuals i
           LEFT JOIN group_members gm ON gm.individual_id = i.id
           LEFT JOIN groups g ON g.id = gm.group_id
          WHERE ?1 IS NULL
             OR i.id IN (SELECT b.individual_id FROM beneficiaries b WHERE b.plan_id = ?1)
             OR gm.group_id IN (SELECT b.group_id FROM beneficiaries b WHERE b.plan_id = ?1)
          ORDER BY i.id, g.code",
    )?;
    let mut out = Registry::default();
    let mut rows = stmt.query(params![plan_id])?;
    while let Some(r) = rows.next()? {
        let id: Uuid = r.get(0)?;
        // One row per person: someone in two households is matched with the first.
        if out.ids.last() == Some(&id) {
            continue;
        }
        let dob: String = r.get(4)?;
        let sex: Option<String> = r.get(5)?;
        let extra: String = r.get(8)?;
        let extra: Value = serde_json::from_str(&extra).unwrap_or(Value::Null);
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| extra.get(*k).and_then(Value::as_str).map(str::to_owned))
                .filter(|s| !s.trim().is_empty())
        };
        out.ids.push(id);
        out.people.push(Person {
            external_id: r.get(1)?,
            given_name: r.get(2)?,
            family_name: r.get(3)?,
            dob: chrono::NaiveDate::parse_from_str(&dob, "%Y-%m-%d").ok(),
            sex: sex.and_then(|s| s.chars().next()),
            village: r.get(6)?,
            household: r.get(7)?,
            household_members: Vec::new(),
            phone: text(&["phone", "phone_number", "mobile"]),
            national_id: text(&["national_id", "nid"]),
        });
    }
    let mut households: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in out.people.iter().enumerate() {
        if let Some(h) = &p.household {
            households.entry(h.clone()).or_default().push(i);
        }
    }
    for members in households.values() {
        for &m in members {
            let others = members
                .iter()
                .filter(|&&o| o != m)
                .map(|&o| format!("{} {}", out.people[o].given_name, out.people[o].family_name))
                .collect();
            out.people[m].household_members = others;
        }
    }
    Ok(out)
}

/// What a run changed among the kept candidates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recorded {
    /// Pairs proposed for the first time.
    pub new: usize,
    /// Pairs an earlier run withdrew, found again and open once more.
    pub reopened: usize,
    /// Pairs still open from an earlier run, their score and evidence refreshed.
    pub refreshed: usize,
    /// Pairs already decided (distinct or merged): left as decided, not proposed again.
    pub decided: usize,
    /// Open pairs that a whole-registry run no longer finds (a record corrected, a higher
    /// threshold, another model): withdrawn, so payroll stops listing them; a later run that
    /// finds one again reopens it. A run over one plan withdraws nothing: its weights come
    /// from that plan's people, so what it misses a whole run may still find.
    pub withdrawn: usize,
}

/// Keeps a run's likely duplicates for review, in the caller's transaction, and audits the run.
pub fn record(
    tx: &WriteTx,
    actor: &str,
    registry: &Registry,
    run: &Run,
    plan: Option<&str>,
) -> Result<Recorded> {
    let mut out = Recorded::default();
    let at = now();
    let mut found: HashSet<(Uuid, Uuid)> = HashSet::new();
    for m in &run.matches {
        let (a, b) = (registry.ids[m.first], registry.ids[m.second]);
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        let status: Option<String> = tx
            .sqlite()
            .prepare_cached(
                "SELECT status FROM dedup_candidates WHERE first_id = ?1 AND second_id = ?2",
            )?
            .query_row(params![first, second], |r| r.get(0))
            .optional()?;
        let evidence =
            serde_json::to_string(&m.evidence).map_err(|e| Error::Invalid(e.to_string()))?;
        match status.as_deref() {
            Some("WITHDRAWN") => {
                tx.sqlite()
                    .prepare_cached(
                        "UPDATE dedup_candidates SET status = 'OPEN', probability = ?3,
                                weight = ?4, evidence = ?5, updated_at = ?6
                          WHERE first_id = ?1 AND second_id = ?2",
                    )?
                    .execute(params![
                        first,
                        second,
                        m.probability,
                        m.weight,
                        evidence,
                        at
                    ])?;
                out.reopened += 1;
            }
            None => {
                tx.sqlite()
                    .prepare_cached(
                        "INSERT INTO dedup_candidates
                           (first_id, second_id, probability, weight, evidence, found_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    )?
                    .execute(params![first, second, m.probability, m.weight, evidence, at])?;
                out.new += 1;
            }
            Some("OPEN") => {
                tx.sqlite()
                    .prepare_cached(
                        "UPDATE dedup_candidates SET probability = ?3, weight = ?4, evidence = ?5,
                                updated_at = ?6
                          WHERE first_id = ?1 AND second_id = ?2",
                    )?
                    .execute(params![
                        first,
                        second,
                        m.probability,
                        m.weight,
                        evidence,
                        at
                    ])?;
                out.refreshed += 1;
            }
            Some(_) => out.decided += 1,
        }
        found.insert((first, second));
    }
    let population: HashSet<Uuid> = if plan.is_none() {
        registry.ids.iter().copied().collect()
    } else {
        HashSet::new()
    };
    let open: Vec<(Uuid, Uuid)> = tx
        .sqlite()
        .prepare("SELECT first_id, second_id FROM dedup_candidates WHERE status = 'OPEN'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (first, second) in open {
        if population.contains(&first)
            && population.contains(&second)
            && !found.contains(&(first, second))
        {
            tx.sqlite()
                .prepare_cached(
                    "UPDATE dedup_candidates SET status = 'WITHDRAWN', updated_at = ?3
                      WHERE first_id = ?1 AND second_id = ?2",
                )?
                .execute(params![first, second, at])?;
            out.withdrawn += 1;
        }
    }
    audit::append(
        tx,
        actor,
        "dedup.run",
        "dedup",
        None,
        &json!({
            "plan": plan, "people": registry.people.len(), "compared": run.compared,
            "likely_duplicates": run.matches.len(), "new": out.new, "reopened": out.reopened,
            "refreshed": out.refreshed, "decided": out.decided, "withdrawn": out.withdrawn,
        }),
    )?;
    Ok(out)
}

/// A kept candidate's review status, by the registry ids of its two people.
pub fn status(conn: &ReadTx, a: Uuid, b: Uuid) -> Result<Option<String>> {
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    Ok(conn
        .sqlite()
        .query_row(
            "SELECT status FROM dedup_candidates WHERE first_id = ?1 AND second_id = ?2",
            params![first, second],
            |r| r.get(0),
        )
        .optional()?)
}

/// A likely duplicate still awaiting review, as payroll generation lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenPair {
    /// The two people's external ids.
    pub first: String,
    pub second: String,
    pub probability: f64,
}

/// The open candidates involving anyone a plan enrols (directly or through their household),
/// both people within `scope`, likeliest first (at most `limit`). Walks the open pairs and
/// asks of each whether the plan enrols either person, by the enrolment indexes, so it costs
/// what is open, not the plan's size: it runs inside every payroll generation.
pub fn open_for_plan(
    conn: &ReadTx,
    scope: &crate::areas::store::Scope,
    plan_id: Uuid,
    limit: u32,
) -> Result<Vec<OpenPair>> {
    use crate::areas::store::under_path;
    // The people are `pa` and `pb`, names no subquery reuses (a `b` inside would hide them).
    let enrolled = |person: &str| {
        format!(
            "(EXISTS (SELECT 1 FROM beneficiaries be
                       WHERE be.plan_id = ?1 AND be.individual_id = {person}.id)
              OR EXISTS (SELECT 1 FROM group_members gm JOIN beneficiaries bg
                           ON bg.plan_id = ?1 AND bg.group_id = gm.group_id
                          WHERE gm.individual_id = {person}.id))"
        )
    };
    // Where the person lives: their own location, or else their household's (as `people`).
    let place = |person: &str| {
        format!(
            "(?2 IS NULL OR EXISTS (
                SELECT 1 FROM locations l
                 WHERE l.id = COALESCE({person}.location_id,
                                       (SELECT g.location_id FROM group_members gm2
                                          JOIN groups g ON g.id = gm2.group_id
                                         WHERE gm2.individual_id = {person}.id))
                   AND {}))",
            under_path("l.path", "?2")
        )
    };
    let sql = format!(
        "SELECT pa.external_id, pb.external_id, c.probability
           FROM dedup_candidates c
           JOIN individuals pa ON pa.id = c.first_id
           JOIN individuals pb ON pb.id = c.second_id
          WHERE c.status = 'OPEN' AND ({} OR {}) AND {} AND {}
          ORDER BY c.probability DESC, pa.external_id, pb.external_id
          LIMIT ?3",
        enrolled("pa"),
        enrolled("pb"),
        place("pa"),
        place("pb")
    );
    let mut stmt = conn.sqlite().prepare(&sql)?;
    let rows = stmt.query_map(params![plan_id, scope.sql(), limit], |r| {
        Ok(OpenPair {
            first: r.get(0)?,
            second: r.get(1)?,
            probability: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
