//! Reconciliation benchmarks: the pure engine over a million entitlements held in memory, then
//! the supervisors' dashboard (payment progress, and each payroll's reconciliation loaded from
//! the database) over the same payroll written to a fresh server database.
//!
//! The payroll is made up: 100 agents each paying villages of 100 beneficiaries, where 5% are
//! still unpaid, 1% paid twice (once over the device's warning), 1% have a voided payout (half
//! of them paid again), 0.1% partly paid, 0.1% paid while suspended, a few received too late
//! or paid while awaiting their own approval, and four agents short on their cash returns.

use std::{path::Path, time::Instant};

use chrono::{DateTime, Duration, TimeZone, Utc};
use outpost_proto::{BeneficiaryStatus, Currency};
use outpost_server::{
    payroll::store as payroll,
    reconciliation::{
        self as reconcile, EntitlementFacts, ExceptionKind, FloatMovement, Holding, Input,
        PayoutFacts, PayrollFacts, StatusChange, Totals, store as reconciliation,
    },
    registry::store::Scope,
    store::Store,
};
use rusqlite::params;
use uuid::Uuid;

use super::{Figure, figure, heap};

const AGENTS: usize = 100;
/// Cash each agent is issued beyond what they pay out, and returns.
const SPARE: i64 = 10_000_000;

/// Both benchmarks over one payroll of `n` entitlements.
pub fn run(dir: &Path, n: usize) -> Vec<Figure> {
    heap::start();
    let payroll = Payroll::generate(n);
    let mut figures = engine(&payroll);
    figures.extend(dashboard(dir, &payroll));
    figures
}

/// The pure engine: only the `reconcile` call is timed and measured.
fn engine(p: &Payroll) -> Vec<Figure> {
    let n = p.input.entitlements.len();
    let before = heap::current();
    heap::reset_peak();
    let start = Instant::now();
    let report = reconcile::reconcile(std::hint::black_box(&p.input));
    let secs = start.elapsed().as_secs_f64();
    let peak = heap::peak();
    p.check(&report.totals, |k| {
        report.exceptions.iter().filter(|x| x.kind == k).count()
    });
    drop(report);
    heap::stop();
    let mib = |bytes: isize| bytes as f64 / (1024.0 * 1024.0);
    vec![
        figure(
            &format!(
                "reconciliation engine ({n} entitlements, {} payouts)",
                p.input.payouts.len()
            ),
            n as f64 / secs,
            "lines/s",
            ">= 500000",
            "higher",
        ),
        figure(
            "reconciliation engine peak memory (beyond its input)",
            mib(peak - before),
            "MiB",
            "-",
            "lower",
        ),
        figure(
            "reconciliation engine peak memory (with its input)",
            mib(peak),
            "MiB",
            "-",
            "lower",
        ),
    ]
}

/// The dashboard's server time: `progress`, then each listed payroll reconciled from the
/// database to count its open exceptions. The registry is written with SQL (not timed).
fn dashboard(dir: &Path, p: &Payroll) -> Vec<Figure> {
    let store = Store::open(&dir.join("server.db")).expect("open store");
    let started = Instant::now();
    let payroll_id = store.write(|tx| p.write(tx)).expect("fill the database");
    store.checkpoint().expect("checkpoint");
    eprintln!(
        "reconcile: database filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let scope = Scope::National;
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1000.0;

    let start = Instant::now();
    let rec = store
        .read(|c| reconciliation::reconcile_payroll(c, &scope, payroll_id))
        .expect("reconcile the payroll");
    let reconcile_ms = ms(start);
    p.check(&rec.report.totals, |k| {
        rec.report.exceptions.iter().filter(|x| x.kind == k).count()
    });
    assert_eq!(
        rec.report.totals,
        p.totals(),
        "the database holds the same payroll"
    );
    drop(rec);

    // Where that time goes, for whoever speeds it up (stderr only).
    let (payroll_ms, inputs_ms, engine_ms) = store
        .read(|c| {
            let start = Instant::now();
            payroll::get_payroll(c, &scope, payroll_id)?;
            let payroll_ms = ms(start);
            let start = Instant::now();
            let input = reconciliation::inputs(c, payroll_id)?;
            let inputs_ms = ms(start);
            let start = Instant::now();
            std::hint::black_box(reconcile::reconcile(&input));
            Ok((payroll_ms, inputs_ms, ms(start)))
        })
        .expect("reconciliation in parts");
    eprintln!(
        "reconcile: from the database, the payroll row {payroll_ms:.0} ms, inputs {inputs_ms:.0} ms, engine {engine_ms:.0} ms"
    );

    // The dashboard as the web computes it: progress over the cached reports. Cold is the
    // first view after records arrived (everything recomputed); warm is every view after.
    let cache = outpost_server::reconciliation::cache::ReportCache::default();
    let start = Instant::now();
    let progress = store
        .read(|c| outpost_server::reconciliation::cache::progress(c, &scope, &cache))
        .expect("dashboard");
    let dashboard_ms = ms(start);
    assert_eq!(progress.len(), 1, "the one payroll is in progress");
    assert_eq!(progress[0].paid_lines as usize, p.paid_lines);
    assert_eq!(
        progress[0].open_exceptions, p.exceptions,
        "no exception is resolved"
    );
    let start = Instant::now();
    let again = store
        .read(|c| outpost_server::reconciliation::cache::progress(c, &scope, &cache))
        .expect("dashboard");
    let progress_ms = ms(start);
    assert_eq!(again[0].open_exceptions, p.exceptions);

    let n = p.input.entitlements.len();
    vec![
        figure(
            &format!("payroll reconciliation from the database ({n} entitlements)"),
            reconcile_ms,
            "ms",
            "-",
            "lower",
        ),
        figure(
            "dashboard server time, warm (nothing changed since the last view)",
            progress_ms,
            "ms",
            "<= 100",
            "lower",
        ),
        figure(
            "dashboard server time, cold (records just arrived)",
            dashboard_ms,
            "ms",
            "<= 2000",
            "lower",
        ),
    ]
}

/// splitmix64: random-looking id bits without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A UUIDv7 made at `at`: time-ordered, random in its tail, like the ids in production.
    fn v7(&mut self, at: DateTime<Utc>) -> Uuid {
        let ms = at.timestamp_millis() as u64;
        let hi = (ms << 16) | 0x7000 | (self.next() >> 52);
        let lo = (self.next() >> 2) | 0x8000_0000_0000_0000;
        Uuid::from_u64_pair(hi, lo)
    }
}

fn utc(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0)
        .single()
        .expect("valid time")
}

/// The made-up payroll, with what reconciling it must find.
struct Payroll {
    input: Input,
    agents: Vec<Uuid>,
    devices: Vec<Uuid>,
    paid_twice: usize,
    voided: usize,
    float_short: usize,
    /// Entitlements with a payout not voided.
    paid_lines: usize,
    /// Every exception the engine must report.
    exceptions: usize,
}

impl Payroll {
    fn generate(n: usize) -> Payroll {
        let mut rng = Rng(0x0ddba11);
        let mwk: Currency = "MWK".parse().expect("currency");
        let window_start = utc(11, 1, 0);
        let agents: Vec<Uuid> = (0..AGENTS).map(|_| rng.v7(utc(1, 5, 9))).collect();
        let devices: Vec<Uuid> = (0..AGENTS).map(|_| rng.v7(utc(2, 1, 9))).collect();
        let mut used = vec![0i64; AGENTS];
        let mut entitlements = Vec::with_capacity(n);
        let mut payouts = Vec::with_capacity(n + n / 50);
        let mut status_changes = Vec::new();
        let (mut paid_twice, mut voided, mut paid_lines, mut late, mut suspended) = (0, 0, 0, 0, 0);
        let (mut partly, mut awaiting) = (0, 0);
        let span = 29 * 86_400 * 1000 / n.max(1) as i64;
        for i in 0..n {
            let beneficiary = rng.v7(utc(1, 10, 0) + Duration::milliseconds(i as i64 / 16));
            let id = rng.v7(utc(10, 28, 12) + Duration::milliseconds(i as i64 / 64));
            let amount = if i % 10 == 0 { 2_000_000 } else { 1_500_000 };
            let awaiting_approval = i % 100_000 == 12;
            awaiting += usize::from(awaiting_approval);
            entitlements.push(EntitlementFacts {
                id,
                beneficiary,
                amount_minor: amount,
                currency: mwk,
                goods: Vec::new(),
                awaiting_approval,
            });
            // A village of 100 beneficiaries per agent, paid through the month.
            let k = (i / 100) % AGENTS;
            let paid_at = window_start
                + Duration::hours(8)
                + Duration::milliseconds(span * i as i64 / 1000 * 1000);
            let late_sync = i % 10_000 == 9;
            late += usize::from(late_sync);
            let received_at = if late_sync {
                utc(12, 25, 12)
            } else {
                paid_at + Duration::hours(2)
            };
            let mut pay =
                |rng: &mut Rng, k: usize, at: DateTime<Utc>, amount: i64, o: bool, v: bool| {
                    if !v {
                        used[k] += amount;
                    }
                    payouts.push(PayoutFacts {
                        id: rng.v7(at),
                        entitlement: id,
                        beneficiary,
                        agent: Some(agents[k]),
                        device: Some(devices[k]),
                        amount_minor: amount,
                        currency: mwk,
                        paid_at: at,
                        received_at: at.max(received_at),
                        overridden: o,
                        voided: v,
                    });
                };
            match i % 100 {
                0..=4 => continue,
                5 => {
                    pay(&mut rng, k, paid_at, amount, false, false);
                    let again = paid_at + Duration::days(1);
                    pay(&mut rng, (k + 1) % AGENTS, again, amount, true, false);
                    paid_twice += 1;
                }
                6 => {
                    pay(&mut rng, k, paid_at, amount, false, true);
                    voided += 1;
                    if i % 200 == 106 {
                        // Voided and not paid again.
                        continue;
                    }
                    pay(
                        &mut rng,
                        k,
                        paid_at + Duration::hours(1),
                        amount,
                        false,
                        false,
                    );
                }
                _ if i % 1000 == 7 => {
                    pay(&mut rng, k, paid_at, amount - 10_000, false, false);
                    partly += 1;
                }
                _ => pay(&mut rng, k, paid_at, amount, false, false),
            }
            paid_lines += 1;
            // Every thousandth beneficiary has a history; some were suspended before being paid.
            if i % 1000 == 11 || i % 1000 == 21 {
                status_changes.push(StatusChange {
                    beneficiary,
                    at: utc(1, 10, 0),
                    to: BeneficiaryStatus::Active,
                });
                if i % 1000 == 11 {
                    status_changes.push(StatusChange {
                        beneficiary,
                        at: window_start,
                        to: BeneficiaryStatus::Suspended,
                    });
                    suspended += 1;
                }
            }
        }
        // Each agent is issued what they pay plus a spare, in two tranches, and returns the
        // spare; every 25th agent comes back short.
        let mut floats = Vec::new();
        let mut float_short = 0;
        for (k, agent) in agents.iter().enumerate() {
            let cash = |quantity| FloatMovement {
                agent: *agent,
                what: Holding::Cash(mwk),
                quantity,
            };
            let issued = used[k] + SPARE;
            floats.push(cash(issued / 2));
            floats.push(cash(issued - issued / 2));
            let short = if k % 25 == 0 { 5_000 } else { 0 };
            float_short += usize::from(short > 0);
            floats.push(cash(-(SPARE - short)));
        }
        let input = Input {
            payroll: PayrollFacts {
                currency: mwk,
                window_start,
                // The cycle's last day (30 November) ends at midnight.
                window_end: utc(12, 1, 0),
                sync_grace: Duration::days(reconciliation::SYNC_GRACE_DAYS),
                closed_at: None,
                overpayment_tolerance: 0,
            },
            entitlements,
            payouts,
            distributions: Vec::new(),
            status_changes,
            floats,
            external: Vec::new(),
        };
        Payroll {
            // A payout made twice is also an overpayment.
            exceptions: 2 * paid_twice
                + voided
                + partly
                + awaiting
                + late
                + suspended
                + float_short,
            input,
            agents,
            devices,
            paid_twice,
            voided,
            float_short,
            paid_lines,
        }
    }

    /// The totals a correct reconciliation must come to.
    fn totals(&self) -> Totals {
        let e = &self.input.entitlements;
        let mut paid = std::collections::HashMap::new();
        for x in self.input.payouts.iter().filter(|x| !x.voided) {
            *paid.entry(x.entitlement).or_insert(0i64) += x.amount_minor;
        }
        let mut by_status = std::collections::BTreeMap::new();
        for s in reconcile::LineStatus::ALL {
            by_status.insert(s.as_str(), 0);
        }
        for x in e {
            let got = paid.get(&x.id).copied().unwrap_or(0);
            let status = match got {
                0 => "UNPAID",
                g if g > x.amount_minor => "OVERPAID",
                g if g == x.amount_minor => "PAID",
                _ => "PARTLY_PAID",
            };
            *by_status.entry(status).or_default() += 1;
        }
        Totals {
            lines: e.len(),
            due_minor: e.iter().map(|x| i128::from(x.amount_minor)).sum(),
            paid_minor: paid.values().map(|p| i128::from(*p)).sum(),
            by_status,
            exceptions: self.exceptions,
        }
    }

    /// The report is of this payroll and found what was planted: the figure is not of a no-op.
    fn check(&self, totals: &Totals, count: impl Fn(ExceptionKind) -> usize) {
        assert_eq!(totals.lines, self.input.entitlements.len(), "one line each");
        assert!(self.paid_twice > 0, "the payroll has payments made twice");
        assert_eq!(count(ExceptionKind::PaidTwice), self.paid_twice);
        assert_eq!(count(ExceptionKind::Voided), self.voided);
        assert_eq!(count(ExceptionKind::FloatMismatch), self.float_short);
        assert_eq!(
            totals.exceptions, self.exceptions,
            "every planted exception"
        );
    }

    /// Writes the payroll as the server holds it; returns the payroll's id.
    fn write(&self, tx: &outpost_server::store::WriteTx) -> outpost_server::Result<Uuid> {
        let mut rng = Rng(0x5eed);
        let at = utc(10, 28, 12);
        let created = at.to_rfc3339();
        let (location, plan, cycle, payroll) = (rng.v7(at), rng.v7(at), rng.v7(at), rng.v7(at));
        tx.sqlite().execute(
            "INSERT INTO locations (id, code, name, level, parent_id, path)
             VALUES (?1, 'BR', 'Bench region', 'REGION', NULL, 'BR')",
            [location],
        )?;
        tx.sqlite().execute(
            "INSERT INTO benefit_plans (id, code, name, beneficiary_type, start_date, end_date, currency,
                 provisions, extra_schema, rule, payment_point, created_at)
             VALUES (?1, 'RECON', 'Reconciliation bench', 'INDIVIDUAL', '2026-01-01', NULL, 'MWK',
                 '[\"CASH\"]', '{\"fields\":[]}', '{}', '{}', ?2)",
            params![plan, created],
        )?;
        tx.sqlite().execute(
            "INSERT INTO payment_cycles (id, code, start_date, end_date, created_at)
             VALUES (?1, 'R1', '2026-11-01', '2026-11-30', ?2)",
            params![cycle, created],
        )?;
        tx.sqlite().execute(
            "INSERT INTO payrolls (id, plan_id, cycle_id, location_id, agent_id, seq, name, status,
                 currency, created_by, created_at, entitlement_count, total_minor)
             VALUES (?1, ?2, ?3, ?4, NULL, 1, 'Bench payroll', 'APPROVED', 'MWK', 'bench', ?5, ?6, ?7)",
            params![
                payroll,
                plan,
                cycle,
                location,
                created,
                self.input.entitlements.len() as i64,
                self.input.entitlements.iter().map(|e| e.amount_minor).sum::<i64>()
            ],
        )?;
        for (k, (agent, device)) in self.agents.iter().zip(&self.devices).enumerate() {
            tx.sqlite().execute(
                "INSERT INTO users (id, username, display_name, role, area_id, password_hash, created_at)
                 VALUES (?1, ?2, ?2, 'FIELD_AGENT', ?3, '-', ?4)",
                params![agent, format!("agent.{k}"), location, created],
            )?;
            tx.sqlite().execute(
                "INSERT INTO devices (id, public_key, agent_id, assignment_id, label, app_version,
                     enrolled_at, enrolled_by)
                 VALUES (?1, ?1, ?2, ?3, 'bench', '1', ?4, 'bench')",
                params![device, agent, location, created],
            )?;
        }
        let mut stmt = tx.sqlite().prepare(
            "INSERT INTO entitlements (id, payroll_id, plan_id, cycle_id, beneficiary_id, recipient_id,
                 amount_minor, currency, goods, status)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, '[]', ?8)",
        )?;
        for e in &self.input.entitlements {
            let status = if e.awaiting_approval {
                "AWAITING_APPROVAL"
            } else {
                "DUE"
            };
            stmt.execute(params![
                e.id,
                payroll,
                plan,
                cycle,
                e.beneficiary,
                e.amount_minor,
                e.currency.as_str(),
                status
            ])?;
        }
        let mut stmt = tx.sqlite().prepare(
            "INSERT INTO payouts (doc_id, device_id, beneficiary_id, entitlement_id, collector_id, payroll_id,
                 amount_minor, currency, proof, paid_at, received_at, override_reason, voided_at, void_reason)
             VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6, ?7, 'CARD', ?8, ?9, ?10, ?11, ?12)",
        )?;
        for x in &self.input.payouts {
            let received = x.received_at.to_rfc3339();
            stmt.execute(params![
                x.id,
                x.device,
                x.beneficiary,
                x.entitlement,
                payroll,
                x.amount_minor,
                x.currency.as_str(),
                x.paid_at.to_rfc3339(),
                received,
                x.overridden.then_some("the beneficiary insisted"),
                x.voided.then_some(&received),
                x.voided.then_some("wrong person"),
            ])?;
        }
        // Histories need their beneficiaries (a foreign key), who need an individual each.
        let mut last = None;
        for c in &self.input.status_changes {
            if last != Some(c.beneficiary) {
                last = Some(c.beneficiary);
                let person = rng.v7(at);
                tx.sqlite().execute(
                    "INSERT INTO individuals (id, external_id, first_name, last_name, dob, sex, location_id,
                         extra, created_at, updated_at)
                     VALUES (?1, ?2, 'First', 'Last', '1980-01-01', 'F', ?3, '{}', ?4, ?4)",
                    params![person, format!("R{person}"), location, created],
                )?;
                tx.sqlite().execute(
                    "INSERT INTO beneficiaries (id, plan_id, individual_id, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'ACTIVE', ?4, ?4)",
                    params![c.beneficiary, plan, person, created],
                )?;
            }
            tx.sqlite().execute(
                "INSERT INTO beneficiary_status_history (beneficiary_id, from_status, to_status,
                     changed_by, changed_at, reason)
                 VALUES (?1, NULL, ?2, 'bench', ?3, 'bench')",
                params![c.beneficiary, c.to.as_str(), c.at.to_rfc3339()],
            )?;
        }
        for m in &self.input.floats {
            let Holding::Cash(currency) = &m.what else {
                unreachable!("the bench issues cash only")
            };
            tx.sqlite().execute(
                "INSERT INTO float_movements (payroll_id, agent_id, holding, is_cash, quantity, note,
                     recorded_by, recorded_at)
                 VALUES (?1, ?2, ?3, 1, ?4, '', 'bench', ?5)",
                params![payroll, m.agent, currency.as_str(), m.quantity, created],
            )?;
        }
        Ok(payroll)
    }
}
