//! A national-size registry (10 regions x 10 districts x 20 villages, a million beneficiaries
//! with an approved payroll) and what one device's download costs in it: a district's first
//! download, and a village's sync at the head while the rest of the country changes. Both
//! should follow the device's partitions, not the country.

use std::{path::Path, time::Instant};

use outpost_proto::wire::{self, Row};
use outpost_server::{
    areas::store::{LocationLevel, NewLocation},
    payroll::store as payroll,
    plans::store as plans,
    registry::store::{self as registry, Scope},
    store::Store,
    sync::store::{records, replica},
};
use serde_json::json;
use uuid::Uuid;

use super::{Figure, figure};

const REGIONS: usize = 10;
const DISTRICTS: usize = 10;
const VILLAGES: usize = 20;

pub fn run(dir: &Path, quick: bool) -> Vec<Figure> {
    let people = if quick { 100_000 } else { 1_000_000 };
    let store = Store::open(&dir.join("registry.db")).expect("open store");
    let start = Instant::now();
    fill(&store, people);
    eprintln!(
        "national: {people} beneficiaries in {} villages, filled in {:.0} s",
        REGIONS * DISTRICTS * VILLAGES,
        start.elapsed().as_secs_f64()
    );

    // A district's first download, every page, as the server builds and compresses it.
    let district = "R0/R0-D0";
    let start = Instant::now();
    let (mut cursor, mut bytes, mut beneficiaries, mut pages) = (0, 0usize, 0usize, 0usize);
    loop {
        let page = store
            .read(|c| replica::page(c, district, cursor, 0))
            .expect("page");
        bytes += wire::encode(&page).0.len();
        beneficiaries += page
            .rows
            .iter()
            .filter(|r| matches!(r.row, Some(Row::Beneficiary(_))))
            .count();
        pages += 1;
        cursor = page.next_cursor;
        if !page.more {
            break;
        }
    }
    let first_secs = start.elapsed().as_secs_f64();
    let district_head = cursor;

    // A village device at the head; then the other regions change (statuses, as a national
    // verification round would), and the village syncs again.
    let village = "R0/R0-D1/R0-D1-V00";
    let head = store
        .read(|c| {
            let mut cursor = 0;
            loop {
                let page = replica::page(c, village, cursor, 0)?;
                cursor = page.next_cursor;
                if !page.more {
                    return Ok(cursor);
                }
            }
        })
        .expect("village head");
    let elsewhere = people / 10;
    let start = Instant::now();
    store
        .write(|tx| {
            tx.sqlite().execute(
                "UPDATE beneficiaries SET status = 'SUSPENDED'
                 WHERE id IN (SELECT b.id FROM beneficiaries b
                                 JOIN individuals i ON i.id = b.individual_id
                                 JOIN locations l ON l.id = i.location_id
                                 WHERE l.path NOT LIKE 'R0/%' LIMIT ?1)",
                [elsewhere as i64],
            )?;
            Ok(())
        })
        .expect("changes elsewhere");
    eprintln!(
        "national: {elsewhere} beneficiaries changed elsewhere in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    const SYNCS: u32 = 1000;
    let start = Instant::now();
    for _ in 0..SYNCS {
        let page = store
            .read(|c| replica::page(c, village, head, 0))
            .expect("page at head");
        assert!(page.rows.is_empty() && page.tombstones.is_empty());
    }
    let head_us = start.elapsed().as_secs_f64() * 1e6 / SYNCS as f64;
    let start = Instant::now();
    for _ in 0..SYNCS {
        store
            .read(|c| records::changes_since(c, Uuid::nil(), village, 0, 0))
            .expect("changes");
    }
    let changes_us = start.elapsed().as_secs_f64() * 1e6 / SYNCS as f64;
    // The district device, too, after the country changed around it.
    let start = Instant::now();
    for _ in 0..SYNCS {
        let page = store
            .read(|c| replica::page(c, district, district_head, 0))
            .expect("district at head");
        assert!(page.rows.is_empty());
    }
    let district_head_us = start.elapsed().as_secs_f64() * 1e6 / SYNCS as f64;
    // What one shared log filtered per request would have walked for that village's sync.
    let walked: i64 = store
        .read(|c| {
            Ok(c.sqlite().query_row(
                "SELECT count(*) FROM replica_log WHERE seq > ?1",
                [head as i64],
                |r| r.get(0),
            )?)
        })
        .expect("log after the head");

    vec![
        figure(
            &format!(
                "first download of a district ({beneficiaries} beneficiaries, {pages} pages) out of {people}: server time"
            ),
            first_secs,
            "s",
            "<= 0.35 s",
            "lower",
        ),
        figure(
            "first download of that district: bytes per beneficiary (zstd pages)",
            bytes as f64 / beneficiaries.max(1) as f64,
            "B",
            "<= 70 B",
            "lower",
        ),
        figure(
            &format!("a village's replica sync at the head after {elsewhere} changes elsewhere"),
            head_us,
            "us",
            "flat",
            "lower",
        ),
        figure(
            "a village's changes feed from the start (no records there)",
            changes_us,
            "us",
            "flat",
            "lower",
        ),
        figure(
            "a district's replica sync at the head after those changes (23 partitions)",
            district_head_us,
            "us",
            "flat",
            "lower",
        ),
        figure(
            "log entries after the village's cursor, none of them its own (a shared log's walk)",
            walked as f64,
            "entries",
            "-",
            "lower",
        ),
    ]
}

/// The geography through the registry's API; the people and their enrolment with SQL, as
/// the payroll benchmark fills its registry, and an approved payroll (not timed).
fn fill(store: &Store, people: usize) {
    store
        .write(|tx| {
            for r in 0..REGIONS {
                let region = format!("R{r}");
                let add = |code: &str, level, parent: Option<&str>| {
                    registry::add_location(
                        tx,
                        "bench",
                        &Scope::National,
                        &NewLocation {
                            code: code.to_owned(),
                            name: code.to_owned(),
                            level,
                            parent_code: parent.map(str::to_owned),
                        },
                    )
                    .map(|_| ())
                };
                add(&region, LocationLevel::Region, None)?;
                for d in 0..DISTRICTS {
                    let district = format!("{region}-D{d}");
                    add(&district, LocationLevel::District, Some(&region))?;
                    for v in 0..VILLAGES {
                        add(
                            &format!("{district}-V{v:02}"),
                            LocationLevel::Village,
                            Some(&district),
                        )?;
                    }
                }
            }
            Ok(())
        })
        .expect("geography");
    let plan: plans::NewPlan = serde_json::from_value(json!({
        "code": "NAT", "name": "National cash transfer", "beneficiary_type": "INDIVIDUAL",
        "start_date": "2026-01-01", "currency": "MWK", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "flat", "amount": 1500000}},
    }))
    .expect("plan");
    store
        .write(|tx| {
            plans::create_plan(tx, "bench", &plan)?;
            plans::create_cycle(
                tx,
                "bench",
                &plans::Cycle {
                    code: "N1".into(),
                    start_date: "2026-11-01".parse().expect("date"),
                    end_date: "2026-11-30".parse().expect("date"),
                },
            )?;
            super::fill_beneficiaries(tx, people, "NAT", "NAT", "'{}'")
        })
        .expect("people");
    store
        .write(|tx| {
            let report = payroll::generate(tx, "bench", &Scope::National, "NAT", "N1")?;
            assert_eq!(report.entitlements_created, people);
            // Approved as the four-eyes flow leaves it, which is what logs the entitlements.
            tx.sqlite()
                .execute("UPDATE payrolls SET status = 'APPROVED'", [])?;
            tx.sqlite().execute(
                "UPDATE entitlements SET status = 'DUE' WHERE status = 'AWAITING_APPROVAL'",
                [],
            )?;
            Ok(())
        })
        .expect("payroll");
    store.checkpoint().expect("checkpoint");
}
