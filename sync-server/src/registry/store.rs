//! Individuals, households and beneficiaries: the registry proper. Every read takes a
//! [`Scope`], so a supervisor's query cannot reach outside their area by forgetting a filter.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use outpost_proto::{BeneficiaryStatus, RecipientKind, Relationship};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub use crate::areas::store::*;
use crate::store::{ReadTx, WriteTx};
use crate::{
    Error, Result,
    registry::import::{ParsedFile, RowError},
    tasks::policy::TaskKind,
};
use crate::{
    plans::store as plans,
    store::audit,
    store::{date_column, json_column, now, opt_text_column, text_column},
    tasks::store as tasks,
    users::store::{self as users, User},
};

// ---------------------------------------------------------------------------------------------
// Individuals and households

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Individual {
    pub id: Uuid,
    pub external_id: String,
    pub first_name: String,
    pub last_name: String,
    pub dob: NaiveDate,
    pub sex: Option<String>,
    pub location: Option<String>,
    pub extra: Map<String, Value>,
    pub household: Option<Membership>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Membership {
    pub group_id: Uuid,
    pub group_code: String,
    pub relationship: Option<Relationship>,
    pub recipient: RecipientKind,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Household {
    pub id: Uuid,
    pub code: String,
    pub location: Option<String>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Member {
    pub individual_id: Uuid,
    pub external_id: String,
    pub first_name: String,
    pub last_name: String,
    pub dob: NaiveDate,
    pub relationship: Option<Relationship>,
    pub recipient: RecipientKind,
}

const INDIVIDUAL_SELECT: &str = "SELECT i.id, i.external_id, i.first_name, i.last_name, i.dob,
        i.sex, l.code, i.extra, g.id, g.code, m.relationship, m.recipient
    FROM individuals i
    LEFT JOIN locations l ON l.id = i.location_id
    LEFT JOIN group_members m ON m.individual_id = i.id
    LEFT JOIN groups g ON g.id = m.group_id";

fn individual_from_row(r: &Row) -> rusqlite::Result<Individual> {
    let group_id: Option<Uuid> = r.get(8)?;
    Ok(Individual {
        id: r.get(0)?,
        external_id: r.get(1)?,
        first_name: r.get(2)?,
        last_name: r.get(3)?,
        dob: date_column(r, 4)?,
        sex: r.get(5)?,
        location: r.get(6)?,
        extra: json_column(r, 7)?,
        household: match group_id {
            Some(group_id) => Some(Membership {
                group_id,
                group_code: r.get(9)?,
                relationship: opt_text_column(r, 10)?,
                recipient: text_column(r, 11)?,
            }),
            None => None,
        },
    })
}

pub fn get_individual(conn: &ReadTx, scope: &Scope, id: Uuid) -> Result<Individual> {
    conn.sqlite()
        .query_row(
            &format!(
                "{INDIVIDUAL_SELECT} WHERE i.id = ?2 AND {}",
                in_scope_or_unplaced()
            ),
            params![scope.sql(), id],
            individual_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::not_found("individual", id))
}

/// Finds people by name prefix (first or last name), external id, or household code.
pub fn search_individuals(
    conn: &ReadTx,
    scope: &Scope,
    query: Option<&str>,
    limit: u32,
    offset: u32,
) -> Result<Vec<Individual>> {
    let q = query.map(str::trim).filter(|q| !q.is_empty());
    let mut stmt = conn.sqlite().prepare(&format!(
        "{INDIVIDUAL_SELECT} WHERE {} AND (?2 IS NULL
            OR i.external_id = ?2 OR g.code = ?2
            OR i.first_name LIKE ?3 ESCAPE '\\' OR i.last_name LIKE ?3 ESCAPE '\\')
         ORDER BY i.last_name, i.first_name, i.id LIMIT ?4 OFFSET ?5",
        in_scope_or_unplaced()
    ))?;
    let pattern = q.map(|q| format!("{}%", escape_like(q)));
    let rows = stmt.query_map(
        params![scope.sql(), q, pattern, limit, offset],
        individual_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub fn get_household(conn: &ReadTx, scope: &Scope, id: Uuid) -> Result<Household> {
    let (code, location): (String, Option<String>) = conn
        .sqlite()
        .query_row(
            &format!(
                "SELECT g.code, l.code FROM groups g LEFT JOIN locations l ON l.id = g.location_id
                 WHERE g.id = ?2 AND {}",
                in_scope_or_unplaced()
            ),
            params![scope.sql(), id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("household", id))?;
    // Members are people: a household that straddles areas shows each caller only the
    // members in their own, as `get_individual` would.
    let mut stmt = conn.sqlite().prepare(&format!(
        "SELECT i.id, i.external_id, i.first_name, i.last_name, i.dob, m.relationship, m.recipient
         FROM group_members m JOIN individuals i ON i.id = m.individual_id
         LEFT JOIN locations l ON l.id = i.location_id
         WHERE m.group_id = ?2 AND {}
         ORDER BY m.relationship = 'HEAD' DESC, i.dob",
        in_scope_or_unplaced()
    ))?;
    let members = stmt
        .query_map(params![scope.sql(), id], |r| {
            Ok(Member {
                individual_id: r.get(0)?,
                external_id: r.get(1)?,
                first_name: r.get(2)?,
                last_name: r.get(3)?,
                dob: date_column(r, 4)?,
                relationship: opt_text_column(r, 5)?,
                recipient: text_column(r, 6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Household {
        id,
        code,
        location,
        members,
    })
}

pub fn household_id_by_code(conn: &ReadTx, code: &str) -> Result<Uuid> {
    conn.sqlite()
        .query_row("SELECT id FROM groups WHERE code = ?1", [code], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| Error::not_found("household", code))
}

// ---------------------------------------------------------------------------------------------
// Import

/// How to apply an individual upload.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImportOptions {
    /// Enrol the imported people (or their households, for a group plan) in this plan; its
    /// extra-field schema then validates the extra columns.
    pub plan: Option<String>,
    /// The status new beneficiaries start in (POTENTIAL unless the file migrates a running
    /// programme).
    pub status: Option<BeneficiaryStatus>,
    /// Import the valid rows and report the rest, instead of refusing the whole file.
    #[serde(default)]
    pub partial: bool,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ImportReport {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub households_created: usize,
    pub beneficiaries_created: usize,
    pub rejected: Vec<RowError>,
}

/// Writes a parsed upload. Every row is checked against the registry first (locations, area,
/// households' heads and primary recipients); unless `partial`, one bad row means nothing is
/// written. Rows are keyed by external id, so importing the same file again changes nothing.
pub fn apply_import(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    parsed: &ParsedFile,
    opts: &ImportOptions,
) -> Result<ImportReport> {
    let plan = match &opts.plan {
        Some(code) => Some(plans::plan_by_code(tx, code)?),
        None => None,
    };
    let mut errors = parsed.errors.clone();
    let locations = LocationIndex::load(tx)?;
    let existing = ExistingRows::load(tx, parsed)?;

    // Registry checks, per row.
    let mut resolved: Vec<Option<Uuid>> = Vec::with_capacity(parsed.rows.len());
    for row in &parsed.rows {
        let mut row_errors = Vec::new();
        let location = match row.location_name.as_deref() {
            Some(name) => match locations.resolve(name) {
                Ok(loc) if scope.contains(Some(&loc.path)) => Some(loc.id),
                Ok(loc) => {
                    row_errors.push((
                        "location_name",
                        format!("'{}' is outside your area", loc.name),
                    ));
                    None
                }
                Err(reason) => {
                    row_errors.push(("location_name", reason));
                    None
                }
            },
            None if *scope != Scope::National => {
                row_errors.push(("location_name", "is required for users with an area".into()));
                None
            }
            None => None,
        };
        if let Some(plan) = &plan
            && plan.beneficiary_type == plans::BeneficiaryType::Group
            && row.group_code.is_none()
        {
            row_errors.push((
                "group_code",
                format!(
                    "plan {} enrols households: every row needs a group_code",
                    plan.code
                ),
            ));
        }
        // A household outside the caller's area is not theirs to join, to give a recipient
        // or to move (a head's location moves the household).
        if let Some(code) = row.group_code.as_deref()
            && existing.outside(scope, code)
        {
            row_errors.push((
                "group_code",
                format!("household {code} belongs to another area"),
            ));
        }
        if let Some(current) = existing.individuals.get(&row.external_id)
            && current.location_path.is_some()
            && !scope.contains(current.location_path.as_deref())
        {
            row_errors.push((
                "id",
                format!("'{}' belongs to another area", row.external_id),
            ));
        }
        errors.extend(row_errors.into_iter().map(|(column, reason)| RowError {
            row: row.row,
            column: Some(column.to_owned()),
            reason,
        }));
        resolved.push(location);
    }
    check_households_against_registry(parsed, &existing, scope, &mut errors);

    if !errors.is_empty() && !opts.partial {
        errors.sort_by_key(|e| e.row);
        return Err(Error::ImportRejected { errors });
    }
    let rejected_rows: HashSet<usize> = errors.iter().map(|e| e.row).collect();
    let now = now();
    let mut report = ImportReport {
        rows: parsed
            .rows
            .iter()
            .map(|r| r.row)
            .chain(parsed.errors.iter().map(|e| e.row))
            .collect::<HashSet<_>>()
            .len(),
        ..Default::default()
    };
    let mut groups: HashMap<String, Uuid> = existing.groups.clone();
    let mut enrolled_groups: HashSet<Uuid> = HashSet::new();
    let status = opts.status.unwrap_or(BeneficiaryStatus::Potential);

    let mut insert_individual = tx.sqlite().prepare_cached(
        "INSERT INTO individuals (id, external_id, first_name, last_name, dob, sex, location_id,
            extra, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?;
    let mut update_individual = tx.sqlite().prepare_cached(
        "UPDATE individuals SET first_name = ?2, last_name = ?3, dob = ?4, sex = ?5,
            location_id = ?6, extra = ?7, updated_at = ?8 WHERE id = ?1",
    )?;
    let mut insert_group = tx.sqlite().prepare_cached(
        "INSERT INTO groups (id, code, location_id, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut upsert_member = tx.sqlite().prepare_cached(
        "INSERT INTO group_members (group_id, individual_id, relationship, recipient)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (individual_id) DO UPDATE SET group_id = excluded.group_id,
            relationship = excluded.relationship, recipient = excluded.recipient
         WHERE group_members.group_id IS NOT excluded.group_id
            OR group_members.relationship IS NOT excluded.relationship
            OR group_members.recipient IS NOT excluded.recipient",
    )?;
    // A household is where its head lives.
    let mut move_household = tx.sqlite().prepare_cached(
        "UPDATE groups SET location_id = ?2 WHERE id = ?1 AND location_id IS NOT ?2",
    )?;
    // Heads and primaries are written last: a file that hands a household over gives the old
    // head their new role before the new head takes the place (one head per household).
    let order = import_order(parsed);
    for idx in order {
        let row = &parsed.rows[idx];
        if rejected_rows.contains(&row.row) {
            continue;
        }
        let current = existing.individuals.get(&row.external_id);
        // An empty cell, or a column the file does not have, keeps what is stored: a
        // re-import never erases data.
        let location = resolved[idx].or(current.and_then(|c| c.location_id));
        let sex = row
            .sex
            .clone()
            .or_else(|| current.and_then(|c| c.sex.clone()));
        // NaiveDate's Display is ISO 8601 (YYYY-MM-DD), without a format string to parse.
        let dob = row.dob.to_string();
        let (individual_id, mut changed) = match current {
            Some(current) => {
                let mut extra = current.extra.clone();
                extra.extend(row.extra.clone());
                let extra_json = Value::Object(extra).to_string();
                let changed = current.first_name != row.first_name
                    || current.last_name != row.last_name
                    || current.dob != dob
                    || current.sex != sex
                    || current.location_id != location
                    || current.extra_json != extra_json;
                if changed {
                    update_individual.execute(params![
                        current.id,
                        row.first_name,
                        row.last_name,
                        dob,
                        sex,
                        location,
                        extra_json,
                        now
                    ])?;
                }
                (current.id, changed)
            }
            None => {
                let id = Uuid::now_v7();
                insert_individual.execute(params![
                    id,
                    row.external_id,
                    row.first_name,
                    row.last_name,
                    dob,
                    row.sex,
                    location,
                    serde_json::to_string(&row.extra)?,
                    now
                ])?;
                (id, true)
            }
        };
        let group_id = match row.group_code.as_deref() {
            Some(code) => Some(match groups.get(code) {
                Some(id) => *id,
                None => {
                    let id = Uuid::now_v7();
                    insert_group.execute(params![id, code, location, now])?;
                    groups.insert(code.to_owned(), id);
                    report.households_created += 1;
                    id
                }
            }),
            None => None,
        };
        if let Some(group_id) = group_id {
            // Only writes (and counts) when the membership is new or different.
            changed |= upsert_member.execute(params![
                group_id,
                individual_id,
                row.role.map(Relationship::as_str),
                row.recipient.as_str()
            ])? > 0;
            if row.role == Some(Relationship::Head) && location.is_some() {
                move_household.execute(params![group_id, location])?;
            }
        }
        match (existing.individuals.contains_key(&row.external_id), changed) {
            (false, _) => report.created += 1,
            (true, true) => report.updated += 1,
            (true, false) => report.unchanged += 1,
        }
        if let Some(plan) = &plan {
            let target = match plan.beneficiary_type {
                plans::BeneficiaryType::Individual => {
                    Some(BeneficiaryTarget::Individual(individual_id))
                }
                plans::BeneficiaryType::Group => group_id
                    .filter(|g| enrolled_groups.insert(*g))
                    .map(BeneficiaryTarget::Group),
            };
            if let Some(target) = target
                && enrol_if_new(tx, actor, plan.id, target, status, "imported from file")?
            {
                report.beneficiaries_created += 1;
            }
        }
    }
    drop((
        insert_individual,
        update_individual,
        insert_group,
        upsert_member,
    ));

    errors.sort_by_key(|e| e.row);
    report.rejected = errors;
    if report.created + report.updated + report.households_created + report.beneficiaries_created
        > 0
    {
        audit::append(
            tx,
            actor,
            "registry.import",
            "import",
            None,
            &json!({
                "plan": opts.plan, "rows": report.rows, "created": report.created,
                "updated": report.updated, "households_created": report.households_created,
                "beneficiaries_created": report.beneficiaries_created,
                "rejected": report.rejected.len(),
            }),
        )?;
    }
    Ok(report)
}

fn import_order(parsed: &ParsedFile) -> Vec<usize> {
    let mut order: Vec<usize> = (0..parsed.rows.len()).collect();
    order.sort_by_key(|&i| {
        let r = &parsed.rows[i];
        (
            r.role == Some(Relationship::Head) || r.recipient == RecipientKind::Primary,
            i,
        )
    });
    order
}

/// What the registry already holds for the rows of one file.
struct ExistingRows {
    individuals: HashMap<String, ExistingIndividual>,
    groups: HashMap<String, Uuid>,
    /// group code → the household's location path (`None`: unplaced, national users only).
    group_paths: HashMap<String, Option<String>>,
    /// group code → members already there (external id, relationship, recipient).
    group_members: HashMap<String, Vec<(String, Option<Relationship>, RecipientKind)>>,
}

struct ExistingIndividual {
    id: Uuid,
    first_name: String,
    last_name: String,
    dob: String,
    sex: Option<String>,
    location_id: Option<Uuid>,
    location_path: Option<String>,
    extra: Map<String, Value>,
    extra_json: String,
}

impl ExistingRows {
    fn load(conn: &ReadTx, parsed: &ParsedFile) -> Result<ExistingRows> {
        let mut individuals = HashMap::new();
        let mut by_external_id = conn.sqlite().prepare_cached(
            "SELECT i.id, i.first_name, i.last_name, i.dob, i.sex, i.location_id, l.path, i.extra
             FROM individuals i LEFT JOIN locations l ON l.id = i.location_id
             WHERE i.external_id = ?1",
        )?;
        for row in &parsed.rows {
            let found = by_external_id
                .query_row([&row.external_id], |r| {
                    Ok(ExistingIndividual {
                        id: r.get(0)?,
                        first_name: r.get(1)?,
                        last_name: r.get(2)?,
                        dob: r.get(3)?,
                        sex: r.get(4)?,
                        location_id: r.get(5)?,
                        location_path: r.get(6)?,
                        extra: json_column(r, 7)?,
                        extra_json: r.get(7)?,
                    })
                })
                .optional()?;
            if let Some(individual) = found {
                individuals.insert(row.external_id.clone(), individual);
            }
        }
        let mut groups = HashMap::new();
        let mut group_paths = HashMap::new();
        let mut group_members: HashMap<String, Vec<_>> = HashMap::new();
        let mut group_by_code = conn.sqlite().prepare_cached(
            "SELECT g.id, l.path FROM groups g LEFT JOIN locations l ON l.id = g.location_id
             WHERE g.code = ?1",
        )?;
        let mut members_of = conn.sqlite().prepare_cached(
            "SELECT i.external_id, m.relationship, m.recipient FROM group_members m
             JOIN individuals i ON i.id = m.individual_id WHERE m.group_id = ?1",
        )?;
        for code in parsed.rows.iter().filter_map(|r| r.group_code.as_deref()) {
            if groups.contains_key(code) {
                continue;
            }
            if let Some((id, path)) = group_by_code
                .query_row([code], |r| {
                    Ok((r.get::<_, Uuid>(0)?, r.get::<_, Option<String>>(1)?))
                })
                .optional()?
            {
                groups.insert(code.to_owned(), id);
                group_paths.insert(code.to_owned(), path);
                let members = members_of
                    .query_map([id], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            opt_text_column(r, 1)?,
                            text_column(r, 2)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                group_members.insert(code.to_owned(), members);
            }
        }
        Ok(ExistingRows {
            individuals,
            groups,
            group_paths,
            group_members,
        })
    }

    /// Whether the registry holds household `code` outside `scope` (as [`get_household`]
    /// sees it: an unplaced household is national only).
    fn outside(&self, scope: &Scope, code: &str) -> bool {
        self.group_paths
            .get(code)
            .is_some_and(|path| !scope.contains(path.as_deref()))
    }
}

/// A household keeps one head and one primary recipient across imports: a file row may not
/// add a second one beside a member the file leaves in place.
fn check_households_against_registry(
    parsed: &ParsedFile,
    existing: &ExistingRows,
    scope: &Scope,
    errors: &mut Vec<RowError>,
) {
    let in_file: HashSet<&str> = parsed.rows.iter().map(|r| r.external_id.as_str()).collect();
    for row in &parsed.rows {
        let Some(code) = row.group_code.as_deref() else {
            continue;
        };
        // Another area's household is refused as such, without naming its members.
        if existing.outside(scope, code) {
            continue;
        }
        let Some(members) = existing.group_members.get(code) else {
            continue;
        };
        // Members the file does not mention keep their roles.
        let staying = members
            .iter()
            .filter(|(ext, ..)| !in_file.contains(ext.as_str()));
        for (ext, relationship, recipient) in staying {
            if row.role == Some(Relationship::Head) && *relationship == Some(Relationship::Head) {
                errors.push(RowError {
                    row: row.row,
                    column: Some("individual_role".into()),
                    reason: format!("household {code} already has a head ({ext})"),
                });
            }
            if row.recipient == RecipientKind::Primary && *recipient == RecipientKind::Primary {
                errors.push(RowError {
                    row: row.row,
                    column: Some("recipient_info".into()),
                    reason: format!("household {code} already has a primary recipient ({ext})"),
                });
            }
        }
    }
}

/// Villages by code and by name, for resolving `location_name`.
struct LocationIndex {
    by_code: HashMap<String, Location>,
    by_name: HashMap<String, Vec<Location>>,
}

impl LocationIndex {
    fn load(conn: &ReadTx) -> Result<LocationIndex> {
        let all = list_locations(conn, &Scope::National)?;
        let mut by_name: HashMap<String, Vec<Location>> = HashMap::new();
        for loc in &all {
            by_name
                .entry(loc.name.to_lowercase())
                .or_default()
                .push(loc.clone());
        }
        Ok(LocationIndex {
            by_code: all.into_iter().map(|l| (l.code.clone(), l)).collect(),
            by_name,
        })
    }

    /// By code first, then by name (case-insensitive), preferring the most specific level.
    fn resolve(&self, name: &str) -> std::result::Result<&Location, String> {
        if let Some(loc) = self.by_code.get(name) {
            return Ok(loc);
        }
        let Some(matches) = self.by_name.get(&name.to_lowercase()) else {
            return Err(format!("no location is named or coded '{name}'"));
        };
        let deepest = matches.iter().map(|l| l.level as u8).max().unwrap_or(0);
        let best: Vec<&Location> = matches
            .iter()
            .filter(|l| l.level as u8 == deepest)
            .collect();
        match best.as_slice() {
            [one] => Ok(one),
            many => Err(format!(
                "'{name}' names {} locations ({}); use the location code instead",
                many.len(),
                many.iter()
                    .map(|l| l.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Beneficiaries

#[derive(Debug, Clone, Copy)]
pub enum BeneficiaryTarget {
    Individual(Uuid),
    Group(Uuid),
}

/// Enrols a person or household in a plan unless already there; returns whether it did.
/// The first status is recorded in the history like any later change.
pub fn enrol_if_new(
    tx: &WriteTx,
    actor: &str,
    plan_id: Uuid,
    target: BeneficiaryTarget,
    status: BeneficiaryStatus,
    reason: &str,
) -> Result<bool> {
    let (individual, group) = match target {
        BeneficiaryTarget::Individual(id) => (Some(id), None),
        BeneficiaryTarget::Group(id) => (None, Some(id)),
    };
    let id = Uuid::now_v7();
    let now = now();
    let inserted = tx.sqlite()
        .prepare_cached(
            "INSERT INTO beneficiaries (id, plan_id, individual_id, group_id, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![id, plan_id, individual, group, status.as_str(), now])?;
    if inserted == 1 {
        tx.sqlite().prepare_cached(
            "INSERT INTO beneficiary_status_history (beneficiary_id, from_status, to_status, changed_by, changed_at, reason)
             VALUES (?1, NULL, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, status.as_str(), actor, now, reason])?;
    }
    Ok(inserted == 1)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Beneficiary {
    pub id: Uuid,
    pub plan: String,
    pub status: BeneficiaryStatus,
    pub individual_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    /// The person's full name, or the household head's.
    pub name: String,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusChange {
    pub from: Option<BeneficiaryStatus>,
    pub to: BeneficiaryStatus,
    pub by: String,
    pub at: String,
    pub reason: String,
}

const BENEFICIARY_SELECT: &str = "SELECT b.id, p.code, b.status, b.individual_id, b.group_id,
        COALESCE(i.first_name || ' ' || i.last_name, h.first_name || ' ' || h.last_name, g.code),
        l.code
    FROM beneficiaries b
    JOIN benefit_plans p ON p.id = b.plan_id
    LEFT JOIN individuals i ON i.id = b.individual_id
    LEFT JOIN groups g ON g.id = b.group_id
    LEFT JOIN group_members hm ON hm.group_id = g.id AND hm.relationship = 'HEAD'
    LEFT JOIN individuals h ON h.id = hm.individual_id
    LEFT JOIN locations l ON l.id = COALESCE(i.location_id, g.location_id)";

fn beneficiary_from_row(r: &Row) -> rusqlite::Result<Beneficiary> {
    Ok(Beneficiary {
        id: r.get(0)?,
        plan: r.get(1)?,
        status: text_column(r, 2)?,
        individual_id: r.get(3)?,
        group_id: r.get(4)?,
        name: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        location: r.get(6)?,
    })
}

pub fn get_beneficiary(conn: &ReadTx, scope: &Scope, id: Uuid) -> Result<Beneficiary> {
    conn.sqlite()
        .query_row(
            &format!(
                "{BENEFICIARY_SELECT} WHERE b.id = ?2 AND {}",
                in_scope_or_unplaced()
            ),
            params![scope.sql(), id],
            beneficiary_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::not_found("beneficiary", id))
}

pub fn list_beneficiaries(
    conn: &ReadTx,
    scope: &Scope,
    plan: Option<&str>,
    status: Option<BeneficiaryStatus>,
    limit: u32,
    offset: u32,
) -> Result<Vec<Beneficiary>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "{BENEFICIARY_SELECT} WHERE {} AND (?2 IS NULL OR p.code = ?2) AND (?3 IS NULL OR b.status = ?3)
         ORDER BY b.created_at, b.id LIMIT ?4 OFFSET ?5",
        in_scope_or_unplaced()
    ))?;
    let rows = stmt.query_map(
        params![
            scope.sql(),
            plan,
            status.map(BeneficiaryStatus::as_str),
            limit,
            offset
        ],
        beneficiary_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn status_history(conn: &ReadTx, id: Uuid) -> Result<Vec<StatusChange>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT from_status, to_status, changed_by, changed_at, reason
         FROM beneficiary_status_history WHERE beneficiary_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(StatusChange {
            from: opt_text_column(r, 0)?,
            to: text_column(r, 1)?,
            by: r.get(2)?,
            at: r.get(3)?,
            reason: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Moves a beneficiary along its lifecycle; refused transitions (GRADUATED is terminal)
/// change nothing. Every change keeps who, when and why.
pub fn change_status(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    id: Uuid,
    to: BeneficiaryStatus,
    reason: &str,
) -> Result<Beneficiary> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Invalid("a status change needs a reason".into()));
    }
    let current = get_beneficiary(tx, scope, id)?;
    current.status.transition(to)?;
    let now = now();
    tx.sqlite().execute(
        "UPDATE beneficiaries SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, to.as_str(), now],
    )?;
    tx.sqlite().execute(
        "INSERT INTO beneficiary_status_history (beneficiary_id, from_status, to_status, changed_by, changed_at, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, current.status.as_str(), to.as_str(), actor, now, reason],
    )?;
    audit::append(
        tx,
        actor,
        "beneficiary.status",
        "beneficiary",
        Some(&id.to_string()),
        &json!({ "from": current.status, "to": to, "reason": reason }),
    )?;
    Ok(Beneficiary {
        status: to,
        ..current
    })
}

// ---------------------------------------------------------------------------------------------

/// Beneficiaries whose person (or household head) matches a name prefix, an external id or a
/// household code, for the supervisors' search.
pub fn search_beneficiaries(
    conn: &ReadTx,
    scope: &Scope,
    query: &str,
    limit: u32,
) -> Result<Vec<Beneficiary>> {
    let q = query.trim();
    if q.is_empty() {
        return Ok(Vec::new());
    }
    let pattern = format!("{}%", escape_like(q));
    let mut stmt = conn.sqlite().prepare(&format!(
        "{BENEFICIARY_SELECT} WHERE {} AND (i.external_id = ?2 OR g.code = ?2 OR h.external_id = ?2
            OR COALESCE(i.first_name, h.first_name) LIKE ?3 ESCAPE '\\'
            OR COALESCE(i.last_name, h.last_name) LIKE ?3 ESCAPE '\\')
         ORDER BY COALESCE(i.last_name, h.last_name), p.code LIMIT ?4",
        in_scope_or_unplaced()
    ))?;
    let rows = stmt.query_map(
        params![scope.sql(), q, pattern, limit],
        beneficiary_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The id of the person with this external id (the registry's own number for them).
pub fn individual_id_by_external_id(conn: &ReadTx, external_id: &str) -> Result<Uuid> {
    conn.sqlite()
        .query_row(
            "SELECT id FROM individuals WHERE external_id = ?1",
            [external_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("individual", external_id))
}

/// A plan's ACTIVE beneficiaries, in the order of their people's external ids.
pub fn active_beneficiary_ids(conn: &ReadTx, plan_id: Uuid) -> Result<Vec<Uuid>> {
    let mut stmt = conn.sqlite().prepare(
        "SELECT b.id FROM beneficiaries b JOIN individuals i ON i.id = b.individual_id
         WHERE b.plan_id = ?1 AND b.status = 'ACTIVE' ORDER BY i.external_id",
    )?;
    let ids = stmt
        .query_map([plan_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Up to `limit` people living below a location (by its code) born before a day, in the
/// order of their external ids.
pub fn individuals_born_before(
    conn: &ReadTx,
    under: &str,
    born_before: NaiveDate,
    limit: u32,
) -> Result<Vec<Uuid>> {
    let location = location_by_code(conn, under)?;
    let mut stmt = conn.sqlite().prepare(
        "SELECT i.id FROM individuals i JOIN locations l ON l.id = i.location_id
         WHERE l.path LIKE ?1 || '/%' AND i.dob < ?2
         ORDER BY i.external_id LIMIT ?3",
    )?;
    let ids = stmt
        .query_map(
            params![location.path, born_before.to_string(), limit],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Whether the database holds no registry and no users yet.
pub fn is_empty(conn: &ReadTx) -> Result<bool> {
    let n: i64 = conn.sqlite().query_row(
        "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM individuals) + (SELECT count(*) FROM locations)",
        [],
        |r| r.get(0),
    )?;
    Ok(n == 0)
}

/// What an office status change came to.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum StatusRequest {
    /// The kind's policy asks for no approval: changed at once.
    Applied(Beneficiary),
    /// Waiting for four eyes in this task; nothing is changed before it is approved.
    Pending(Box<tasks::Task>),
}

/// Asks for a beneficiary's status to change at the office. Checked now (reason, area,
/// transition), then applied only through an `OFFICE_STATUS_CHANGE` task decided by someone
/// else, as field proposals are; only a policy with no tiers applies it directly.
pub fn request_status_change(
    tx: &WriteTx,
    user: &User,
    id: Uuid,
    to: BeneficiaryStatus,
    reason: &str,
) -> Result<StatusRequest> {
    let (actor, scope) = (user.actor(), user.scope());
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Invalid("a status change needs a reason".into()));
    }
    let current = get_beneficiary(tx, &scope, id)?;
    current.status.transition(to)?;
    let kind = TaskKind::OfficeStatusChange;
    if tasks::policy(tx, kind)?.tiers.is_empty() {
        return change_status(tx, &actor, &scope, id, to, reason).map(StatusRequest::Applied);
    }
    let waiting: Option<Uuid> = tx
        .sqlite()
        .query_row(
            "SELECT t.id FROM status_requests r JOIN tasks t ON t.subject_id = r.id
             WHERE r.beneficiary_id = ?1 AND t.kind = ?2 AND t.status = 'PENDING'",
            params![id, kind.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(task) = waiting {
        return Err(Error::Conflict(format!(
            "a status change of this beneficiary already waits for approval (task {task})"
        )));
    }
    let request = Uuid::now_v7();
    let at = now();
    tx.sqlite().execute(
        "INSERT INTO status_requests (id, beneficiary_id, from_status, to_status, reason, requested_by, requested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![request, id, current.status.as_str(), to.as_str(), reason, actor, at],
    )?;
    // Unplaced beneficiaries are national: so is their task.
    let path: String = tx
        .sqlite()
        .query_row(
            "SELECT path FROM beneficiary_paths WHERE beneficiary_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default();
    let task = tasks::open(
        tx,
        kind,
        request,
        &path,
        &format!("become {to}: {reason}"),
        &actor,
        users::actor_user(tx, &actor)?,
    )?;
    audit::append(
        tx,
        &actor,
        "beneficiary.status_requested",
        "beneficiary",
        Some(&id.to_string()),
        &json!({ "from": current.status, "to": to, "reason": reason, "task": task }),
    )?;
    Ok(StatusRequest::Pending(Box::new(tasks::get(
        tx, &scope, task,
    )?)))
}

/// Office status changes wait for four eyes; this applies the decision.
pub fn register_task_hooks(hooks: &mut tasks::Hooks) {
    hooks.register(TaskKind::OfficeStatusChange, apply_status_request);
}

/// An approved office request changes the status in the name of who asked (the approver
/// is in the reason and the task); either way the request keeps the decision.
fn apply_status_request(tx: &WriteTx, d: &tasks::Decided) -> Result<()> {
    let subject = d.task.subject_id;
    let (beneficiary, to, why, requested_by): (Uuid, String, String, String) =
        tx.sqlite().query_row(
            "SELECT beneficiary_id, to_status, reason, requested_by FROM status_requests WHERE id = ?1",
            [subject],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    if d.approved {
        let to: BeneficiaryStatus = to
            .parse()
            .map_err(|e: outpost_proto::UnknownName| Error::Internal(e.to_string()))?;
        let why = format!("{why} (approved by {})", d.user.actor());
        change_status(tx, &requested_by, &Scope::National, beneficiary, to, &why)?;
    }
    tx.sqlite().execute(
        "UPDATE status_requests SET decision = ?2 WHERE id = ?1",
        params![subject, if d.approved { "APPROVED" } else { "REJECTED" }],
    )?;
    Ok(())
}

/// Sets a person's phone and address (either left as it is when `None`).
pub fn update_contact(
    tx: &WriteTx,
    individual: Uuid,
    phone: Option<&str>,
    address: Option<&str>,
) -> Result<()> {
    tx.sqlite().execute(
        "UPDATE individuals SET phone = COALESCE(?2, phone), address = COALESCE(?3, address),
             updated_at = ?4 WHERE id = ?1",
        params![individual, phone, address, now()],
    )?;
    Ok(())
}
