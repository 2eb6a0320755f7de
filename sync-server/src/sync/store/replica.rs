//! Replica download: pages of the registry rows in a device's assignment, behind a cursor.
//!
//! The cursor is a position in `replica_log`, which triggers fill whenever a row devices hold
//! changes (see `0002_sync.sql`), filed under the row's partition and compacted to one entry
//! per row and partition (`0010_partitions.sql`). A page reads the assignment's partitions
//! from the cursor (see [`super::Merged`]) and sends each row's *current* state, or a
//! tombstone when the row is no longer in the assignment. So a device that stops
//! mid-download resumes from any page, a device never receives a row outside its assignment,
//! and a first download reads the live rows of its partitions, not their history.

use std::collections::HashSet;

use chrono::NaiveDate;
use outpost_proto::wire::{self, ErrorCode, ReplicaPage, ReplicaRow, Row, RowKind, Tombstone};
use prost::Message;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use crate::store::ReadTx;
use crate::{Error, Result};
use crate::{areas::store::Scope, devices::store::days_since_epoch, store::date_column};

/// A page stops growing once its rows reach this many encoded bytes, unless the device asks
/// for less.
pub const MAX_PAGE_BYTES: u32 = 512 * 1024;
pub const DEFAULT_PAGE_BYTES: u32 = 256 * 1024;

/// Payroll statuses whose entitlements the field holds.
const FIELD_PAYROLLS: &str = "('APPROVED', 'RECONCILED', 'CLOSED')";

/// One page of the replica for a device whose assignment is at `assignment_path`.
pub fn page(
    conn: &ReadTx,
    assignment_path: &str,
    cursor: u64,
    max_bytes: u32,
) -> Result<ReplicaPage> {
    let last: u64 =
        conn.sqlite()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM replica_log", [], |r| {
                r.get(0)
            })?;
    if cursor > last {
        return Err(Error::refused(
            ErrorCode::CursorInvalid,
            "the replica cursor is ahead of the server; download the replica again from 0",
        ));
    }
    let budget = match max_bytes {
        0 => DEFAULT_PAGE_BYTES,
        n => n.clamp(4 * 1024, MAX_PAGE_BYTES),
    } as usize;
    let scope = Scope::Area {
        path: assignment_path.to_owned(),
    };
    let partitions = super::partitions(conn.sqlite(), assignment_path, true)?;
    let mut statements = super::statements(
        conn.sqlite(),
        "SELECT seq, kind, row_id FROM replica_log
         WHERE path = ?1 AND seq > ?2 AND (?3 = 0 OR kind = 1) ORDER BY seq",
        partitions.len(),
    )?;
    let mut entries = super::Merged::open(
        &mut statements,
        &partitions,
        |stmt, partition| {
            stmt.query(params![
                partition.path,
                cursor as i64,
                partition.locations_only
            ])
        },
        |r| Ok((r.get(0)?, (r.get::<_, i32>(1)?, r.get::<_, Vec<u8>>(2)?))),
    )?;
    let mut page = ReplicaPage {
        next_cursor: cursor,
        ..Default::default()
    };
    let mut seen = HashSet::new();
    let mut bytes = 0usize;
    while let Some((seq, (kind, id))) = entries.next()? {
        if bytes >= budget {
            page.more = true;
            break;
        }
        page.next_cursor = seq;
        // Within a partition the log holds one entry per row (compacted as it is written),
        // but a page can meet a row in two: a household that moved between two villages of
        // the assignment is filed under both. What is sent is the row as it is now, once.
        if !seen.insert((kind, id.clone())) {
            continue;
        }
        let kind = RowKind::try_from(kind)
            .map_err(|_| Error::Internal(format!("replica_log holds unknown kind {kind}")))?;
        match current_row(conn, kind, &id, &scope, assignment_path)? {
            Some(row) => {
                let row = ReplicaRow { row: Some(row) };
                bytes += row.encoded_len() + 3;
                page.rows.push(row);
            }
            None => {
                bytes += id.len() + 5;
                page.tombstones.push(Tombstone {
                    kind: kind as i32,
                    id,
                });
            }
        }
    }
    Ok(page)
}

fn uuid(id: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(id).map_err(|_| Error::Internal("replica_log holds a malformed id".into()))
}

fn bytes(id: Option<Uuid>) -> Vec<u8> {
    id.map(|u| u.as_bytes().to_vec()).unwrap_or_default()
}

fn days(r: &rusqlite::Row, i: usize) -> rusqlite::Result<i32> {
    let d: NaiveDate = date_column(r, i)?;
    Ok(days_since_epoch(d))
}

/// The row as it is now, if the device may hold it; `None` means "send a tombstone".
fn current_row(
    conn: &ReadTx,
    kind: RowKind,
    id: &[u8],
    scope: &Scope,
    assignment_path: &str,
) -> Result<Option<Row>> {
    let id = uuid(id)?;
    let in_scope = |path: &str| scope.contains(Some(path));
    let row = match kind {
        RowKind::Location => conn.sqlite()
            .prepare_cached("SELECT id, code, name, level, path FROM locations WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(wire::Location {
                    id: bytes(r.get(0)?),
                    code: r.get(1)?,
                    name: r.get(2)?,
                    level: r.get(3)?,
                    path: r.get(4)?,
                })
            })
            .optional()?
            .filter(|l| {
                in_scope(&l.path)
                    || assignment_path
                        .strip_prefix(l.path.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(Row::Location),
        RowKind::Plan => conn.sqlite()
            .prepare_cached(
                "SELECT id, code, name, currency, beneficiary_type, provisions, rule, extra_schema
                 FROM benefit_plans WHERE id = ?1",
            )?
            .query_row([id], |r| {
                let provisions: String = r.get(5)?;
                let rule: String = r.get(6)?;
                Ok((
                    wire::Plan {
                        id: bytes(r.get(0)?),
                        code: r.get(1)?,
                        name: r.get(2)?,
                        currency: r.get(3)?,
                        beneficiary_type: r.get(4)?,
                        extra_schema_json: r.get(7)?,
                        ..Default::default()
                    },
                    provisions,
                    rule,
                ))
            })
            .optional()?
            .map(|(mut plan, provisions, rule)| -> Result<Row> {
                plan.provisions = serde_json::from_str(&provisions)?;
                let rule: serde_json::Value = serde_json::from_str(&rule)?;
                plan.limit_per_transaction_minor = rule
                    .get("limit_per_transaction")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0);
                Ok(Row::Plan(plan))
            })
            .transpose()?,
        RowKind::GoodsItem => conn.sqlite()
            .prepare_cached("SELECT id, code, name, unit FROM goods_items WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(Row::GoodsItem(wire::GoodsItem {
                    id: bytes(r.get(0)?),
                    code: r.get(1)?,
                    name: r.get(2)?,
                    unit: r.get(3)?,
                }))
            })
            .optional()?,
        RowKind::Project => conn.sqlite()
            .prepare_cached(
                "SELECT w.id, w.code, w.name, w.plan_id, l.code, w.daily_wage_minor, l.path
                 FROM work_projects w JOIN locations l ON l.id = w.location_id WHERE w.id = ?1",
            )?
            .query_row([id], |r| {
                let path: String = r.get(6)?;
                Ok(in_scope(&path).then(|| -> rusqlite::Result<Row> {
                    Ok(Row::Project(wire::Project {
                        id: bytes(r.get(0)?),
                        code: r.get(1)?,
                        name: r.get(2)?,
                        plan_id: bytes(r.get(3)?),
                        location_code: r.get(4)?,
                        daily_wage_minor: r.get(5)?,
                    }))
                }))
            })
            .optional()?
            .flatten()
            .transpose()?,
        RowKind::Person => conn.sqlite()
            .prepare_cached(
                "SELECT i.id, i.external_id, i.first_name, i.last_name, i.dob, COALESCE(i.sex, ''),
                        l.code, m.group_id, COALESCE(m.relationship, ''), COALESCE(m.recipient, 'NONE'), l.path
                 FROM individuals i JOIN locations l ON l.id = i.location_id
                 LEFT JOIN group_members m ON m.individual_id = i.id WHERE i.id = ?1",
            )?
            .query_row([id], |r| {
                let path: String = r.get(10)?;
                Ok(in_scope(&path).then(|| -> rusqlite::Result<Row> {
                    Ok(Row::Person(wire::Person {
                        id: bytes(r.get(0)?),
                        external_id: r.get(1)?,
                        first_name: r.get(2)?,
                        last_name: r.get(3)?,
                        dob_days: days(r, 4)?,
                        sex: r.get(5)?,
                        location_code: r.get(6)?,
                        household_id: bytes(r.get(7)?),
                        relationship: r.get(8)?,
                        recipient: r.get(9)?,
                    }))
                }))
            })
            .optional()?
            .flatten()
            .transpose()?,
        RowKind::Household => conn.sqlite()
            .prepare_cached(
                "SELECT g.id, g.code, l.code, l.path FROM groups g
                 JOIN locations l ON l.id = g.location_id WHERE g.id = ?1",
            )?
            .query_row([id], |r| {
                let path: String = r.get(3)?;
                Ok(in_scope(&path).then(|| -> rusqlite::Result<Row> {
                    Ok(Row::Household(wire::Household {
                        id: bytes(r.get(0)?),
                        code: r.get(1)?,
                        location_code: r.get(2)?,
                    }))
                }))
            })
            .optional()?
            .flatten()
            .transpose()?,
        RowKind::Beneficiary => {
            let found = conn.sqlite()
                .prepare_cached(
                    "SELECT b.id, b.plan_id, b.individual_id, b.group_id, b.status, p.path
                     FROM beneficiaries b JOIN beneficiary_paths p ON p.beneficiary_id = b.id
                     WHERE b.id = ?1",
                )?
                .query_row([id], |r| {
                    let path: String = r.get(5)?;
                    Ok(in_scope(&path).then(|| -> rusqlite::Result<wire::Beneficiary> {
                        Ok(wire::Beneficiary {
                            id: bytes(r.get(0)?),
                            plan_id: bytes(r.get(1)?),
                            individual_id: bytes(r.get(2)?),
                            household_id: bytes(r.get(3)?),
                            status: r.get(4)?,
                            card_serials: Vec::new(),
                        })
                    }))
                })
                .optional()?
                .flatten()
                .transpose()?;
            match found {
                Some(mut b) => {
                    b.card_serials = conn.sqlite()
                        .prepare_cached(
                            "SELECT serial FROM cards WHERE beneficiary_id = ?1 AND revoked_at IS NULL
                             ORDER BY serial",
                        )?
                        .query_map([id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    Some(Row::Beneficiary(b))
                }
                None => None,
            }
        }
        RowKind::Entitlement => conn.sqlite()
            .prepare_cached(&format!(
                "SELECT e.id, e.beneficiary_id, e.payroll_id, c.code, c.start_date, c.end_date,
                        e.recipient_id, e.amount_minor, e.currency, e.goods, e.status, bp.path
                 FROM entitlements e
                 JOIN payrolls pr ON pr.id = e.payroll_id AND pr.status IN {FIELD_PAYROLLS}
                 JOIN payment_cycles c ON c.id = e.cycle_id
                 JOIN beneficiary_paths bp ON bp.beneficiary_id = e.beneficiary_id
                 WHERE e.id = ?1"
            ))?
            .query_row([id], |r| {
                let path: String = r.get(11)?;
                Ok(in_scope(&path).then(|| -> rusqlite::Result<(wire::Entitlement, String)> {
                    Ok((
                        wire::Entitlement {
                            id: bytes(r.get(0)?),
                            beneficiary_id: bytes(r.get(1)?),
                            payroll_id: bytes(r.get(2)?),
                            cycle_code: r.get(3)?,
                            cycle_start_days: days(r, 4)?,
                            cycle_end_days: days(r, 5)?,
                            recipient_id: bytes(r.get(6)?),
                            amount_minor: r.get(7)?,
                            currency: r.get(8)?,
                            goods: Vec::new(),
                            status: r.get(10)?,
                        },
                        r.get(9)?,
                    ))
                }))
            })
            .optional()?
            .flatten()
            .transpose()?
            .map(|(mut e, goods)| -> Result<Row> {
                let lines: Vec<crate::plans::rules::GoodsLine> = serde_json::from_str(&goods)?;
                e.goods = lines
                    .into_iter()
                    .map(|g| wire::GoodsLine {
                        item_code: g.item,
                        quantity: g.quantity,
                    })
                    .collect();
                Ok(Row::Entitlement(e))
            })
            .transpose()?,
        RowKind::RevokedCard => conn.sqlite()
            .prepare_cached(
                "SELECT c.id, c.serial, c.beneficiary_id, bp.path FROM cards c
                 JOIN beneficiary_paths bp ON bp.beneficiary_id = c.beneficiary_id
                 WHERE c.id = ?1 AND c.revoked_at IS NOT NULL",
            )?
            .query_row([id], |r| {
                let path: String = r.get(3)?;
                Ok(in_scope(&path).then(|| -> rusqlite::Result<Row> {
                    Ok(Row::RevokedCard(wire::RevokedCard {
                        id: bytes(r.get(0)?),
                        serial: r.get(1)?,
                        beneficiary_id: bytes(r.get(2)?),
                    }))
                }))
            })
            .optional()?
            .flatten()
            .transpose()?,
        RowKind::GrievanceCategory => conn.sqlite()
            .prepare_cached("SELECT id, code, name FROM grievance_categories WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(Row::GrievanceCategory(wire::GrievanceCategory {
                    id: bytes(r.get(0)?),
                    code: r.get(1)?,
                    name: r.get(2)?,
                }))
            })
            .optional()?,
        RowKind::Unspecified => None,
    };
    Ok(row)
}
