//! The demo programme: a deterministic, realistic registry for the demo, tests and benchmarks.
//!
//! It is loaded through the same import, plan and payroll code administrators use, so the
//! demo is also a smoke test of those paths. Everything dated in it (the cycle, timesheet
//! days, plan start dates, dates of birth) is placed relative to the day it is generated on,
//! so a demo loaded on any date has payments due that day; for a seed and a day it is always
//! the same.

use chrono::{Datelike, Days, Local, Months, NaiveDate};
use outpost_proto::BeneficiaryStatus;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;

use crate::{
    Result,
    payroll::store as payroll,
    plans::store as plans,
    registry::{
        import::{FileFormat, parse_individuals},
        store::{self as registry, ImportOptions, LocationLevel, NewLocation, Scope},
    },
    store::Store,
    store::audit,
    tasks::{
        policy::{TaskKind, Verdict},
        store as tasks,
    },
    users::store::{self as users, NewUser, Role, sessions},
    works::store as works,
};

/// The password of every demo account (never use the demo data in production).
pub const DEMO_PASSWORD: &str = "outpost-demo-2026";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub households: usize,
    pub seed: u64,
    /// The day the demo is generated as of: its cycle is the calendar month holding it.
    pub as_of: NaiveDate,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            households: 200,
            seed: 7,
            as_of: today(),
        }
    }
}

/// Today in the machine's zone (where its phones are): the day a demo is generated as of
/// unless told otherwise.
pub fn today() -> NaiveDate {
    Local::now().date_naive()
}

/// The demo's payment cycle for a day: the calendar month holding it, coded `YYYY-MM`.
pub fn cycle_of(as_of: NaiveDate) -> plans::Cycle {
    let start = as_of.with_day(1).expect("the first of a month exists");
    let end = start + Months::new(1) - Days::new(1);
    plans::Cycle {
        code: start.format("%Y-%m").to_string(),
        start_date: start,
        end_date: end,
    }
}

#[derive(Debug, Serialize)]
pub struct DemoSummary {
    pub individuals: usize,
    pub households: usize,
    pub payrolls: usize,
    pub entitlements: usize,
    /// The day the demo was generated as of, and its cycle's code.
    pub as_of: NaiveDate,
    pub cycle: String,
    pub users: Vec<String>,
    pub password: &'static str,
}

/// A location's (code, name).
type Place = (&'static str, &'static str);
/// A district and its three villages.
type District = (&'static str, &'static str, [Place; 3]);

/// Regions, their districts, and three villages each.
const GEOGRAPHY: &[(&str, &str, &[District])] = &[
    (
        "N",
        "Northern",
        &[
            (
                "N-MZ",
                "Mzimba",
                [
                    ("N-MZ-01", "Ekwendeni"),
                    ("N-MZ-02", "Embangweni"),
                    ("N-MZ-03", "Jenda"),
                ],
            ),
            (
                "N-RU",
                "Rumphi",
                [
                    ("N-RU-01", "Bolero"),
                    ("N-RU-02", "Chiweta"),
                    ("N-RU-03", "Nchenachena"),
                ],
            ),
        ],
    ),
    (
        "S",
        "Southern",
        &[
            (
                "S-CK",
                "Chikwawa",
                [
                    ("S-CK-01", "Ngabu"),
                    ("S-CK-02", "Mitondo"),
                    ("S-CK-03", "Kasinthula"),
                ],
            ),
            (
                "S-NS",
                "Nsanje",
                [
                    ("S-NS-01", "Bangula"),
                    ("S-NS-02", "Makhanga"),
                    ("S-NS-03", "Tengani"),
                ],
            ),
        ],
    ),
];

const FIRST_NAMES: &[&str] = &[
    "Chikondi",
    "Thoko",
    "Mphatso",
    "Kondwani",
    "Tiyamike",
    "Chisomo",
    "Madalitso",
    "Yamikani",
    "Aïssata",
    "José",
    "Zoë",
    "Ngozi",
    "Fátima",
    "Amara",
    "Ousmane",
    "Hélène",
    "Ibrahima",
    "Chidi",
    "Łucja",
    "Nguyễn Thị",
    "فاطمة",
    "محمد",
    "አበበ",
    "ሰላም",
    "सीता",
    "राम",
    "Thandiwe",
    "Esther",
    "Grace",
    "Blessings",
    "Precious",
    "Memory",
];
const LAST_NAMES: &[&str] = &[
    "Banda",
    "Phiri",
    "Mwale",
    "Tembo",
    "Chirwa",
    "Nyirenda",
    "Kumwenda",
    "Gondwe",
    "Mhango",
    "Diallo",
    "N'Diaye",
    "Sow",
    "Mbeki",
    "García",
    "Nguyễn",
    "حسن",
    "ተስፋዬ",
    "शर्मा",
    "Zulu",
    "Moyo",
    "Kachingwe",
    "Chimwemwe",
];

/// Opens the demo's cycle for `as_of` (its month): the road workers' approved timesheets, three
/// to six days each from the cycle's first day and never after `as_of`, then every plan's
/// payrolls, the north's approved through the four-eyes tasks. Returns (payrolls,
/// entitlements) generated.
fn open_cycle(tx: &crate::store::WriteTx, as_of: NaiveDate) -> Result<(usize, usize)> {
    let actor = "system:demo";
    let national = Scope::National;
    let cycle = cycle_of(as_of);
    let worked_days = (as_of - cycle.start_date).num_days() as usize + 1;
    plans::create_cycle(tx, actor, &cycle)?;
    let cfw = plans::plan_by_code(tx, "CFW-ROADS")?;
    let workers = registry::active_beneficiary_ids(tx, cfw.id)?;
    let checker = users::user_by_username(tx, "sup.north2")?;
    let second_checker = users::user_by_username(tx, "sup.north3")?;
    for (w, beneficiary) in workers.iter().enumerate() {
        for day in 0..(3 + w % 4).min(worked_days) {
            let id = works::record_timesheet(
                tx,
                "user:sup.north1",
                &national,
                &works::TimesheetEntry {
                    project: "ROAD-N-MZ".into(),
                    beneficiary_id: *beneficiary,
                    work_date: cycle.start_date + Days::new(day as u64),
                    day_hundredths: if day == 0 && w % 3 == 0 { 50 } else { 100 },
                },
            )?;
            tasks::decide_subject(
                tx,
                &checker,
                TaskKind::Timesheet,
                id,
                Verdict::Approve,
                "",
                false,
            )?;
        }
    }
    let mut payrolls = 0;
    let mut entitlements = 0;
    for plan in ["CT-HH", "CHILD-GRANT", "FOOD-KIT", "CFW-ROADS"] {
        let r = payroll::generate(tx, actor, &national, plan, &cycle.code)?;
        payrolls += r.payrolls.len();
        entitlements += r.entitlements_created;
        // The north's payrolls are already approved, so its agents have something to pay
        // as soon as their devices sync; the south's wait for a supervisor's approval.
        for id in r.payrolls {
            let p = payroll::get_payroll(tx, &national, id)?;
            if p.location.starts_with("N-") && plan != "CFW-ROADS" {
                // Through the same four-eyes task as on the web; the demo supervisors'
                // second factor is the published demo secret.
                for who in [&checker, &second_checker] {
                    tasks::decide_subject(
                        tx,
                        who,
                        TaskKind::PayrollApproval,
                        id,
                        Verdict::Approve,
                        "demo",
                        true,
                    )?;
                }
            }
        }
    }
    Ok((payrolls, entitlements))
}

/// Keeps a demo database current: when the database was made by [`load`] and has no cycle
/// for `as_of`'s month yet (a demo started last month and served again), opens that cycle as
/// [`load`] would have. Returns the code of the cycle it opened. Any other database is left
/// alone.
pub fn bring_current(store: &Store, as_of: NaiveDate) -> Result<Option<String>> {
    let code = cycle_of(as_of).code;
    store.write(|tx| {
        let first_actor = audit::first_actor(tx)?;
        let has_cycle = plans::cycle_exists(tx, &code)?;
        if first_actor.as_deref() != Some("system:demo") || has_cycle {
            return Ok(None);
        }
        open_cycle(tx, as_of)?;
        Ok(Some(code.clone()))
    })
}

/// Whether the database holds no registry and no users yet.
pub fn is_empty(store: &Store) -> Result<bool> {
    store.read(registry::is_empty)
}

/// Every village code of the demo geography.
pub fn village_codes() -> Vec<&'static str> {
    GEOGRAPHY
        .iter()
        .flat_map(|(_, _, districts)| {
            districts
                .iter()
                .flat_map(|(_, _, v)| v.iter().map(|(c, _)| *c))
        })
        .collect()
}

/// The demo geography, parents first.
pub fn locations() -> Vec<NewLocation> {
    let mut out = Vec::new();
    for (rc, rn, districts) in GEOGRAPHY {
        out.push(NewLocation {
            code: rc.to_string(),
            name: rn.to_string(),
            level: LocationLevel::Region,
            parent_code: None,
        });
        for (dc, dn, villages) in *districts {
            out.push(NewLocation {
                code: dc.to_string(),
                name: dn.to_string(),
                level: LocationLevel::District,
                parent_code: Some(rc.to_string()),
            });
            for (vc, vn) in villages {
                out.push(NewLocation {
                    code: vc.to_string(),
                    name: vn.to_string(),
                    level: LocationLevel::Village,
                    parent_code: Some(dc.to_string()),
                });
            }
        }
    }
    out
}

/// An openIMIS individual upload of `households` households (1 to 7 members each, in the
/// given villages), with the demo plan's extra columns `disability` and `housing`.
/// Deterministic for a seed and a day (ages count back from the year before `as_of`, so every
/// date of birth is in the past). Returns the CSV and its number of data rows.
pub fn individuals_csv(
    households: usize,
    seed: u64,
    villages: &[&str],
    as_of: NaiveDate,
) -> (Vec<u8>, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = csv::Writer::from_writer(Vec::with_capacity(households * 6 * 90));
    out.write_record([
        "id",
        "first_name",
        "last_name",
        "dob",
        "sex",
        "location_name",
        "group_code",
        "individual_role",
        "recipient_info",
        "disability",
        "housing",
    ])
    .expect("writing to memory");
    let mut rows = 0;
    let pick = |rng: &mut ChaCha8Rng, list: &[&'static str]| list[rng.random_range(0..list.len())];
    let base_year = as_of.year() - 1;
    let dob = |rng: &mut ChaCha8Rng, min_age: i32, max_age: i32| {
        let year = base_year - rng.random_range(min_age..=max_age);
        NaiveDate::from_ymd_opt(year, rng.random_range(1..=12), rng.random_range(1..=28))
            .expect("valid date")
            .to_string()
    };
    for h in 0..households {
        let village = villages[rng.random_range(0..villages.len())];
        let last = pick(&mut rng, LAST_NAMES);
        let size = rng.random_range(1..=7usize);
        // Usually the head collects; in some households the spouse does, and the head not.
        let spouse_collects = size > 1 && rng.random_bool(0.3);
        let housing = ["OWNED", "RENTED", "NONE"][rng.random_range(0..3)];
        for m in 0..size {
            let (role, age, recipient) = match m {
                0 => ("HEAD", (22, 75), if spouse_collects { "0" } else { "1" }),
                1 => ("SPOUSE", (20, 70), if spouse_collects { "1" } else { "2" }),
                6 => ("GRANDMOTHER", (55, 90), "0"),
                _ => (
                    if rng.random_bool(0.5) {
                        "SON"
                    } else {
                        "DAUGHTER"
                    },
                    (0, 19),
                    "0",
                ),
            };
            let sex = match role {
                "DAUGHTER" | "GRANDMOTHER" => "F",
                "SON" => "M",
                _ if rng.random_bool(0.5) => "F",
                _ => "M",
            };
            let disability = if rng.random_bool(0.08) { "yes" } else { "no" };
            out.write_record([
                format!("P{seed}-{h:07}-{m}").as_str(),
                pick(&mut rng, FIRST_NAMES),
                last,
                &dob(&mut rng, age.0, age.1),
                sex,
                village,
                &format!("HH{seed}-{h:07}"),
                role,
                recipient,
                disability,
                if m == 0 { housing } else { "" },
            ])
            .expect("writing to memory");
            rows += 1;
        }
    }
    (out.into_inner().expect("writing to memory"), rows)
}

/// The demo's plans, started on 1 January of the year before `as_of`.
fn demo_plans(as_of: NaiveDate) -> Vec<plans::NewPlan> {
    let start = NaiveDate::from_ymd_opt(as_of.year() - 1, 1, 1)
        .expect("1 January exists")
        .to_string();
    let schema = json!({"fields": [
        {"name": "disability", "type": "boolean"},
        {"name": "housing", "type": "enum", "values": ["OWNED", "RENTED", "NONE"]},
    ]});
    let plan = |v: serde_json::Value| {
        serde_json::from_value::<plans::NewPlan>(v).expect("demo plan is valid JSON")
    };
    vec![
        plan(json!({
            "code": "CT-HH", "name": "Household cash transfer", "beneficiary_type": "GROUP",
            "start_date": start, "currency": "MWK", "provisions": ["CASH"],
            "extra_schema": schema,
            "rule": {"cash": {"kind": "base_plus_criteria", "base": 1500000, "criteria": [
                {"field": "disability", "op": "eq", "value": true, "amount": 500000},
                {"field": "housing", "op": "eq", "value": "NONE", "amount": 250000}]},
                "limit_per_transaction": 2000000},
            "payment_point": {"by": "location", "level": "VILLAGE"},
        })),
        plan(json!({
            "code": "CHILD-GRANT", "name": "Child grant (per child in school age)", "beneficiary_type": "GROUP",
            "start_date": start, "currency": "MWK", "provisions": ["CASH"], "extra_schema": schema,
            "rule": {"cash": {"kind": "per_member", "per_member": 300000, "child_age_limit": 18, "max_members": 4}},
            "payment_point": {"by": "agent"},
        })),
        plan(json!({
            "code": "FOOD-KIT", "name": "Lean season food kit", "beneficiary_type": "GROUP",
            "start_date": start, "currency": "MWK", "provisions": ["GOODS"], "extra_schema": schema,
            "rule": {"goods": [{"item": "MAIZE-25KG", "quantity": 1}, {"item": "SOAP-KIT", "quantity": 1}]},
            "payment_point": {"by": "location", "level": "DISTRICT"},
        })),
        plan(json!({
            "code": "CFW-ROADS", "name": "Cash for work: feeder roads", "beneficiary_type": "INDIVIDUAL",
            "start_date": start, "currency": "MWK", "provisions": ["CASH"], "extra_schema": schema,
            "rule": {"cash": {"kind": "cash_for_work", "project": "ROAD-N-MZ"}},
        })),
    ]
}

/// Loads the whole demo programme into an empty database, in one transaction.
pub fn load(store: &Store, opts: &DemoOptions) -> Result<DemoSummary> {
    // Its people are born up to the year before `as_of`, and the registry refuses births
    // after today.
    if opts.as_of > today() {
        return Err(crate::Error::Invalid(format!(
            "the demo is made as of today or an earlier day, not {} (its people would be \
             born after today)",
            opts.as_of
        )));
    }
    let actor = "system:demo";
    let national = Scope::National;
    let cycle = cycle_of(opts.as_of);
    let (csv, _) = individuals_csv(opts.households, opts.seed, &village_codes(), opts.as_of);
    // Adults (for the road works) were born at least 20 years before the demo's year.
    let adult_born_before =
        NaiveDate::from_ymd_opt(opts.as_of.year() - 20, 1, 1).expect("1 January exists");
    store.write(|tx| {
        for loc in locations() {
            registry::add_location(tx, actor, &national, &loc)?;
        }
        for (code, name, unit) in [
            ("MAIZE-25KG", "Maize flour", "bag of 25 kg"),
            ("SOAP-KIT", "Hygiene kit", "kit"),
        ] {
            plans::add_goods_item(
                tx,
                actor,
                &plans::GoodsItem {
                    code: code.into(),
                    name: name.into(),
                    unit: unit.into(),
                },
            )?;
        }
        let mut usernames = Vec::new();
        let mut add_user =
            |username: String, name: &str, role: Role, area: Option<&str>| -> Result<()> {
                users::create_user(
                    tx,
                    actor,
                    &national,
                    &NewUser {
                        username: username.clone(),
                        display_name: name.to_owned(),
                        role,
                        area: area.map(str::to_owned),
                        password: DEMO_PASSWORD.to_owned(),
                    },
                )?;
                usernames.push(username);
                Ok(())
            };
        add_user("admin".into(), "Programme administrator", Role::Admin, None)?;
        for (i, name) in ["Alinafe Banda", "Bertrand Diallo", "Chimwemwe Phiri"]
            .iter()
            .enumerate()
        {
            add_user(
                format!("sup.north{}", i + 1),
                name,
                Role::Supervisor,
                Some("N"),
            )?;
        }
        add_user(
            "sup.south1".into(),
            "Dalitso Mwale",
            Role::Supervisor,
            Some("S"),
        )?;
        add_user(
            "sup.south2".into(),
            "Esther Nkhoma",
            Role::Supervisor,
            Some("S"),
        )?;
        for (_, _, districts) in GEOGRAPHY {
            for (dc, dn, _) in *districts {
                add_user(
                    format!("agent.{}", dc.to_lowercase()),
                    &format!("Agent {dn}"),
                    Role::FieldAgent,
                    Some(dc),
                )?;
            }
        }
        // Staff log in to the web, and everyone asks for an API token, with a TOTP second
        // factor; the demo's is published.
        for username in &usernames {
            sessions::set_secret(tx, username, sessions::DEMO_TOTP_SECRET)?;
        }
        for plan in demo_plans(opts.as_of) {
            plans::create_plan(tx, actor, &plan)?;
        }
        let parsed = parse_individuals(
            &csv,
            FileFormat::Csv,
            Some(&plans::plan_by_code(tx, "CT-HH")?.extra_schema),
        )?;
        let import = |plan: &str| ImportOptions {
            plan: Some(plan.into()),
            status: Some(BeneficiaryStatus::Active),
            partial: false,
        };
        let report = registry::apply_import(tx, actor, &national, &parsed, &import("CT-HH"))?;
        registry::apply_import(tx, actor, &national, &parsed, &import("CHILD-GRANT"))?;
        registry::apply_import(tx, actor, &national, &parsed, &import("FOOD-KIT"))?;

        // Some households leave or pause, so the lifecycle has something to show.
        let ct = registry::list_beneficiaries(tx, &national, Some("CT-HH"), None, 500, 0)?;
        for (i, b) in ct.iter().enumerate() {
            let change = match i % 20 {
                7 => Some((
                    BeneficiaryStatus::Suspended,
                    "did not collect for three cycles",
                )),
                13 => Some((
                    BeneficiaryStatus::Graduated,
                    "household income above the threshold",
                )),
                _ => None,
            };
            // Through the office's four eyes, as the API does: a region's first supervisor
            // asks, its second approves.
            if let Some((to, why)) = change {
                let region = if b.location.as_deref().is_some_and(|l| l.starts_with("S-")) {
                    "south"
                } else {
                    "north"
                };
                let maker = users::user_by_username(tx, &format!("sup.{region}1"))?;
                let checker = users::user_by_username(tx, &format!("sup.{region}2"))?;
                match registry::request_status_change(tx, &maker, b.id, to, why)? {
                    registry::StatusRequest::Pending(task) => {
                        tasks::decide(tx, &checker, task.id, Verdict::Approve, "", false)?;
                    }
                    registry::StatusRequest::Applied(_) => {}
                }
            }
        }

        works::add_work_project(
            tx,
            actor,
            &national,
            &works::WorkProject {
                code: "ROAD-N-MZ".into(),
                name: "Ekwendeni feeder road".into(),
                plan: "CFW-ROADS".into(),
                location: "N-MZ".into(),
                daily_wage_minor: 200000,
            },
        )?;
        // Adults of Mzimba work on the road.
        let workers = registry::individuals_born_before(tx, "N-MZ", adult_born_before, 20)?;
        let cfw = plans::plan_by_code(tx, "CFW-ROADS")?;
        for worker in &workers {
            registry::enrol_if_new(
                tx,
                actor,
                cfw.id,
                registry::BeneficiaryTarget::Individual(*worker),
                BeneficiaryStatus::Active,
                "public works enrolment",
            )?;
        }
        let (payrolls, entitlements) = open_cycle(tx, opts.as_of)?;
        Ok(DemoSummary {
            individuals: report.created,
            households: report.households_created,
            payrolls,
            entitlements,
            as_of: opts.as_of,
            cycle: cycle.code.clone(),
            users: usernames,
            password: DEMO_PASSWORD,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_cycle_is_the_month_of_the_day_whatever_its_length() {
        for (on, code, start, end) in [
            ("2026-12-01", "2026-12", "2026-12-01", "2026-12-31"),
            ("2026-12-31", "2026-12", "2026-12-01", "2026-12-31"),
            ("2028-02-15", "2028-02", "2028-02-01", "2028-02-29"),
            ("2027-02-28", "2027-02", "2027-02-01", "2027-02-28"),
            ("2026-04-30", "2026-04", "2026-04-01", "2026-04-30"),
        ] {
            let c = cycle_of(day(on));
            assert_eq!(
                (c.code.as_str(), c.start_date, c.end_date),
                (code, day(start), day(end)),
                "{on}"
            );
        }
    }

    #[test]
    fn the_registry_file_depends_on_the_seed_and_day_only_and_nobody_is_born_later() {
        let villages = village_codes();
        let on = day("2026-02-04");
        let (a, rows) = individuals_csv(30, 5, &villages, on);
        assert_eq!(individuals_csv(30, 5, &villages, on).0, a);
        assert_ne!(individuals_csv(30, 5, &villages, day("2031-02-04")).0, a);
        let mut reader = csv::Reader::from_reader(a.as_slice());
        let mut seen = 0;
        for r in reader.records() {
            let dob: NaiveDate = r.unwrap()[3].parse().unwrap();
            assert!(dob < on, "born {dob}, after the demo's day");
            seen += 1;
        }
        assert_eq!(seen, rows);
    }
}
