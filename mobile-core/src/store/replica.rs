//! Applying the server's replica pages: each page, rows and tombstones and the cursor after
//! them, is one transaction, so an interrupted download resumes from the last page applied.

use outpost_proto::wire::{ReplicaPage, Row, RowKind};
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use crate::error::{Error, Result};

fn id(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| Error::ServerRefused {
        code: "BAD_REPLICA".into(),
        reason: format!("a replica row has a {}-byte id", bytes.len()),
    })
}

fn opt_id(bytes: &[u8]) -> Result<Option<Uuid>> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        id(bytes).map(Some)
    }
}

/// Applies one page and moves the enrolment's cursor past it.
pub fn apply_page(tx: &Transaction, enrolment: Uuid, page: &ReplicaPage) -> Result<()> {
    for row in &page.rows {
        if let Some(row) = &row.row {
            upsert(tx, row)?;
        }
    }
    for t in &page.tombstones {
        remove(tx, t.kind, id(&t.id)?)?;
    }
    tx.execute(
        "UPDATE enrolments SET replica_cursor = ?2 WHERE id = ?1",
        params![enrolment, page.next_cursor as i64],
    )?;
    Ok(())
}

fn upsert(tx: &Transaction, row: &Row) -> Result<()> {
    match row {
        Row::Location(l) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO locations (id, code, name, level, path) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id(&l.id)?, l.code, l.name, l.level, l.path])?;
        }
        Row::Plan(p) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO plans (id, code, name, currency, beneficiary_type, provisions,
                     limit_per_transaction_minor, extra_schema) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id(&p.id)?,
                p.code,
                p.name,
                p.currency,
                p.beneficiary_type,
                p.provisions.join(","),
                p.limit_per_transaction_minor,
                p.extra_schema_json
            ])?;
        }
        Row::GoodsItem(g) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO goods_items (id, code, name, unit) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id(&g.id)?, g.code, g.name, g.unit])?;
        }
        Row::Project(p) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO projects (id, code, name, plan_id, location_code, daily_wage_minor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                id(&p.id)?,
                p.code,
                p.name,
                id(&p.plan_id)?,
                p.location_code,
                p.daily_wage_minor
            ])?;
        }
        Row::Person(p) => {
            // An upsert keeps the rowid, which the search index points at.
            let rowid: i64 = tx
                .prepare_cached(
                    "INSERT INTO people (id, external_id, first_name, last_name, dob_days, sex,
                         location_code, household_id, relationship, recipient)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (id) DO UPDATE SET external_id = excluded.external_id,
                         first_name = excluded.first_name, last_name = excluded.last_name,
                         dob_days = excluded.dob_days, sex = excluded.sex,
                         location_code = excluded.location_code, household_id = excluded.household_id,
                         relationship = excluded.relationship, recipient = excluded.recipient
                     RETURNING rowid",
                )?
                .query_row(
                    params![
                        id(&p.id)?,
                        p.external_id,
                        p.first_name,
                        p.last_name,
                        p.dob_days,
                        p.sex,
                        p.location_code,
                        opt_id(&p.household_id)?,
                        p.relationship,
                        p.recipient
                    ],
                    |r| r.get(0),
                )?;
            tx.prepare_cached("DELETE FROM people_search WHERE rowid = ?1")?
                .execute([rowid])?;
            tx.prepare_cached("INSERT INTO people_search (rowid, terms) VALUES (?1, ?2)")?
                .execute(params![rowid, format!("{} {}", p.first_name, p.last_name)])?;
        }
        Row::Household(h) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO households (id, code, location_code) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id(&h.id)?, h.code, h.location_code])?;
        }
        Row::Beneficiary(b) => {
            let bid = id(&b.id)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO beneficiaries (id, plan_id, individual_id, household_id, status)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                bid,
                id(&b.plan_id)?,
                opt_id(&b.individual_id)?,
                opt_id(&b.household_id)?,
                b.status
            ])?;
            tx.prepare_cached("DELETE FROM cards WHERE beneficiary_id = ?1")?
                .execute([bid])?;
            for serial in &b.card_serials {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO cards (serial, beneficiary_id) VALUES (?1, ?2)",
                )?
                .execute(params![*serial as i64, bid])?;
            }
        }
        Row::Entitlement(e) => {
            let goods: serde_json::Map<String, serde_json::Value> = e
                .goods
                .iter()
                .map(|g| (g.item_code.clone(), g.quantity.into()))
                .collect();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO entitlements (id, beneficiary_id, payroll_id, cycle_code,
                     cycle_start_days, cycle_end_days, recipient_id, amount_minor, currency, goods, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                id(&e.id)?,
                id(&e.beneficiary_id)?,
                id(&e.payroll_id)?,
                e.cycle_code,
                e.cycle_start_days,
                e.cycle_end_days,
                opt_id(&e.recipient_id)?,
                e.amount_minor,
                e.currency,
                serde_json::Value::Object(goods).to_string(),
                e.status
            ])?;
        }
        Row::RevokedCard(c) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO revoked_cards (id, serial, beneficiary_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                id(&c.id)?,
                c.serial as i64,
                id(&c.beneficiary_id)?
            ])?;
            tx.prepare_cached("DELETE FROM cards WHERE serial = ?1")?
                .execute([c.serial as i64])?;
        }
        Row::GrievanceCategory(g) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO grievance_categories (id, code, name) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id(&g.id)?, g.code, g.name])?;
        }
    }
    Ok(())
}

fn remove(tx: &Transaction, kind: i32, id: Uuid) -> Result<()> {
    let table = match RowKind::try_from(kind) {
        Ok(RowKind::Location) => "locations",
        Ok(RowKind::Plan) => "plans",
        Ok(RowKind::GoodsItem) => "goods_items",
        Ok(RowKind::Project) => "projects",
        Ok(RowKind::Person) => {
            if let Some(rowid) = tx
                .prepare_cached("DELETE FROM people WHERE id = ?1 RETURNING rowid")?
                .query_row([id], |r| r.get::<_, i64>(0))
                .optional()?
            {
                tx.prepare_cached("DELETE FROM people_search WHERE rowid = ?1")?
                    .execute([rowid])?;
            }
            return Ok(());
        }
        Ok(RowKind::Household) => "households",
        Ok(RowKind::Beneficiary) => {
            tx.prepare_cached("DELETE FROM cards WHERE beneficiary_id = ?1")?
                .execute([id])?;
            "beneficiaries"
        }
        Ok(RowKind::Entitlement) => "entitlements",
        Ok(RowKind::RevokedCard) => "revoked_cards",
        Ok(RowKind::GrievanceCategory) => "grievance_categories",
        // A kind this build does not know: nothing of it is held.
        _ => return Ok(()),
    };
    tx.prepare_cached(&format!("DELETE FROM {table} WHERE id = ?1"))?
        .execute([id])?;
    Ok(())
}
