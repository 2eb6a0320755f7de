//! The registry: imports, lifecycle, rules, payroll generation.

use super::open_in;
use chrono::NaiveDate;
use outpost_proto::{BeneficiaryStatus, EntitlementStatus, PayrollStatus};
use outpost_server::{
    Error,
    payroll::store as payroll,
    plans::store as plans,
    registry::{
        import::{FileFormat, parse_individuals},
        store::{self as registry, ImportOptions, ImportReport, LocationLevel, NewLocation, Scope},
    },
    store::Store,
    tasks::{
        policy::{TaskKind, TaskStatus},
        store as tasks,
    },
    users::store::{self as users, NewUser, Role},
    works::store as works,
};
use serde_json::json;
use tempfile::TempDir;

const ACTOR: &str = "test:registry";

struct Fixture {
    _dir: TempDir,
    store: Store,
}

/// A fresh database with two districts of two villages each, and the plans the tests use.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), "registry");
    store
        .write(|tx| {
            let loc = |code: &str, name: &str, level, parent: Option<&str>| NewLocation {
                code: code.into(),
                name: name.into(),
                level,
                parent_code: parent.map(Into::into),
            };
            for l in [
                loc("R1", "Region One", LocationLevel::Region, None),
                loc("D1", "District One", LocationLevel::District, Some("R1")),
                loc("D2", "District Two", LocationLevel::District, Some("R1")),
                loc("V1", "Washington DC", LocationLevel::Village, Some("D1")),
                loc("V2", "Fairfax", LocationLevel::Village, Some("D1")),
                loc("V3", "Kaédi", LocationLevel::Village, Some("D2")),
                loc("V4", "Fairfax", LocationLevel::Village, Some("D2")),
            ] {
                registry::add_location(tx, ACTOR, &Scope::National, &l)?;
            }
            plans::add_goods_item(
                tx,
                ACTOR,
                &plans::GoodsItem {
                    code: "MAIZE".into(),
                    name: "Maize".into(),
                    unit: "bag".into(),
                },
            )?;
            plans::create_cycle(
                tx,
                ACTOR,
                &plans::Cycle {
                    code: "C1".into(),
                    start_date: date("2026-11-01"),
                    end_date: date("2026-11-30"),
                },
            )?;
            Ok(())
        })
        .unwrap();
    Fixture { _dir: dir, store }
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn add_plan(f: &Fixture, v: serde_json::Value) {
    let mut base = json!({
        "name": "Plan", "start_date": "2026-01-01", "currency": "MWK",
        "extra_schema": {"fields": [
            {"name": "disability", "type": "boolean"},
            {"name": "income", "type": "integer", "min": 0}
        ]},
    });
    base.as_object_mut()
        .unwrap()
        .extend(v.as_object().unwrap().clone());
    let plan: plans::NewPlan = serde_json::from_value(base).unwrap();
    f.store
        .write(|tx| plans::create_plan(tx, ACTOR, &plan))
        .unwrap();
}

fn import(f: &Fixture, csv: &str, opts: ImportOptions) -> Result<ImportReport, Error> {
    f.store.write(|tx| {
        let schema = match &opts.plan {
            Some(p) => Some(plans::plan_by_code(tx, p)?.extra_schema),
            None => None,
        };
        let parsed = parse_individuals(csv.as_bytes(), FileFormat::Csv, schema.as_ref())?;
        registry::apply_import(tx, ACTOR, &Scope::National, &parsed, &opts)
    })
}

fn count(f: &Fixture, table: &str) -> i64 {
    f.store.read(|c| c.row_count(table)).unwrap()
}

fn counts(f: &Fixture) -> [i64; 5] {
    [
        "individuals",
        "groups",
        "group_members",
        "beneficiaries",
        "audit_log",
    ]
    .map(|t| count(f, t))
}

fn plan(code: &str) -> ImportOptions {
    ImportOptions {
        plan: Some(code.into()),
        status: Some(BeneficiaryStatus::Active),
        partial: false,
    }
}

const OPENIMIS: &str =
    "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Mia,Foo,1989-01-01,A1,Washington DC,HEAD,1,AA
Bob,Foo,1988-01-01,A2,Washington DC,SPOUSE,2,AA
Michelle,Bar,1990-01-01,B1,V2,HEAD,0,BB
";

#[test]
fn an_openimis_upload_imports_unchanged_and_again_changes_nothing() {
    let f = fixture();
    let report = import(&f, OPENIMIS, ImportOptions::default()).unwrap();
    assert_eq!(
        (report.created, report.households_created, report.rows),
        (3, 2, 3)
    );
    let before = counts(&f);
    let again = import(&f, OPENIMIS, ImportOptions::default()).unwrap();
    assert_eq!(
        (
            again.created,
            again.updated,
            again.unchanged,
            again.households_created
        ),
        (0, 0, 3, 0)
    );
    assert_eq!(counts(&f), before, "re-import wrote something");

    let found = f
        .store
        .read(|c| registry::search_individuals(c, &Scope::National, Some("Mia"), 10, 0))
        .unwrap();
    let mia = &found[0];
    assert_eq!(mia.location.as_deref(), Some("V1"));
    let household = f
        .store
        .read(|c| {
            registry::get_household(
                c,
                &Scope::National,
                mia.household.as_ref().unwrap().group_id,
            )
        })
        .unwrap();
    assert_eq!(household.members.len(), 2);
    assert_eq!(
        household.members[0].first_name, "Mia",
        "the head comes first"
    );

    // A changed row updates that person only.
    let changed = OPENIMIS.replace("Bob,Foo,1988-01-01", "Bobby,Foo,1988-01-02");
    let r = import(&f, &changed, ImportOptions::default()).unwrap();
    assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 2));

    // A file without the location column (or with empty cells) keeps the stored locations.
    let names_only = "first_name,last_name,dob,id,individual_role,recipient_info,group_code
Mia,Foo,1989-01-01,A1,HEAD,1,AA
";
    let r = import(&f, names_only, ImportOptions::default()).unwrap();
    assert_eq!((r.updated, r.unchanged), (0, 1));
    let mia = f
        .store
        .read(|c| registry::get_individual(c, &Scope::National, mia.id))
        .unwrap();
    assert_eq!(mia.location.as_deref(), Some("V1"));
    let household = f
        .store
        .read(|c| registry::get_household(c, &Scope::National, household.id))
        .unwrap();
    assert_eq!(household.location.as_deref(), Some("V1"));
}

#[test]
fn a_bad_file_writes_nothing_and_lists_every_bad_row() {
    let f = fixture();
    let before = counts(&f);
    let bad = "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Mia,Foo,1989-01-01,A1,Washington DC,HEAD,1,AA
Bob,Foo,1988-13-01,A2,Washington DC,SPOUSE,1,AA
Eve,,1990-01-01,A3,Nowhere,,,
Ann,Lee,1990-01-01,A1,Fairfax,,,
";
    let Err(Error::ImportRejected { errors }) = import(&f, bad, ImportOptions::default()) else {
        panic!("the file should be refused");
    };
    let rows: Vec<(usize, Option<&str>)> = errors
        .iter()
        .map(|e| (e.row, e.column.as_deref()))
        .collect();
    assert!(rows.contains(&(3, Some("dob"))), "{errors:?}");
    assert!(rows.contains(&(4, Some("last_name"))), "{errors:?}");
    assert!(rows.contains(&(4, Some("location_name"))), "{errors:?}");
    // "Fairfax" names two villages: the row must use a code.
    let ambiguous = errors
        .iter()
        .find(|e| e.row == 5 && e.column.as_deref() == Some("location_name"));
    assert!(
        ambiguous.is_some_and(|e| e.reason.contains("V2, V4")),
        "{errors:?}"
    );
    assert!(rows.contains(&(5, Some("id"))), "duplicate id: {errors:?}");
    assert_eq!(counts(&f), before, "a refused file wrote something");
}

#[test]
fn partial_import_writes_the_valid_rows_and_returns_the_rest() {
    let f = fixture();
    let mixed =
        "first_name,last_name,dob,id,location_name,group_code,individual_role,recipient_info
Mia,Foo,1989-01-01,A1,V1,AA,HEAD,1
Bob,Foo,1988-01-01,A2,V1,AA,SPOUSE,1
Zoë,Ngozi,2001-02-03,A3,V3,,,
";
    let parsed = parse_individuals(mixed.as_bytes(), FileFormat::Csv, None).unwrap();
    let report = f
        .store
        .write(|tx| {
            registry::apply_import(
                tx,
                ACTOR,
                &Scope::National,
                &parsed,
                &ImportOptions {
                    partial: true,
                    ..Default::default()
                },
            )
        })
        .unwrap();
    assert_eq!(report.created, 2);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(
        report.rejected[0].row, 3,
        "Bob is a second primary recipient in AA"
    );
    let rejected = String::from_utf8(parsed.rejected_csv(&report.rejected)).unwrap();
    assert!(
        rejected.contains("Bob") && !rejected.contains("Mia"),
        "{rejected}"
    );
}

#[test]
fn names_in_any_script_round_trip_exactly() {
    let f = fixture();
    let names = [
        ("José", "Müller-Lüdenscheidt"),
        ("فاطمة", "حسن"),
        ("अनीता", "शर्मा"),
        ("አበበ", "ተስፋዬ"),
        ("明", "王"),
        ("Nguyễn Thị", "N'Diaye"),
    ];
    let mut csv = "\u{feff}first_name,last_name,dob,id,location_name\r\n".to_string();
    for (i, (first, last)) in names.iter().enumerate() {
        csv.push_str(&format!(
            "\"{first}\",\"{last}\",1990-01-0{},N{i},V3\r\n",
            i + 1
        ));
    }
    import(&f, &csv, ImportOptions::default()).unwrap();
    for (first, last) in names {
        let found = f
            .store
            .read(|c| registry::search_individuals(c, &Scope::National, Some(first), 5, 0))
            .unwrap();
        assert_eq!(found.len(), 1, "{first}");
        assert_eq!(
            (found[0].first_name.as_str(), found[0].last_name.as_str()),
            (first, last)
        );
    }
}

#[test]
fn extra_columns_are_checked_against_the_plan_schema() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "P", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "flat", "amount": 100}}}),
    );
    let csv = "first_name,last_name,dob,id,location_name,disability,income
A,B,1990-01-01,X1,V1,yes,100
C,D,1990-01-01,X2,V1,maybe,-5
";
    let Err(Error::ImportRejected { errors }) = import(&f, csv, plan("P")) else {
        panic!("refused")
    };
    let columns: Vec<_> = errors
        .iter()
        .map(|e| (e.row, e.column.clone().unwrap_or_default()))
        .collect();
    assert!(
        columns.contains(&(3, "disability".into())) && columns.contains(&(3, "income".into())),
        "{errors:?}"
    );
    // Without a plan, the same columns are unknown.
    let err = import(&f, csv, ImportOptions::default()).unwrap_err();
    assert!(matches!(err, Error::File(_)), "{err}");
    assert!(err.to_string().contains("disability"), "{err}");
}

#[test]
fn a_later_import_cannot_give_a_household_a_second_head() {
    let f = fixture();
    import(&f, OPENIMIS, ImportOptions::default()).unwrap();
    let second_head =
        "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Tom,Foo,1970-01-01,A9,V1,HEAD,1,AA
";
    let Err(Error::ImportRejected { errors }) = import(&f, second_head, ImportOptions::default())
    else {
        panic!()
    };
    let reasons: Vec<_> = errors.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("already has a head (A1)")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("already has a primary recipient (A1)")),
        "{reasons:?}"
    );
    // Handing headship over within one file is fine.
    let handover =
        "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Mia,Foo,1989-01-01,A1,V1,SPOUSE,2,AA
Tom,Foo,1970-01-01,A9,V1,HEAD,1,AA
";
    let r = import(&f, handover, ImportOptions::default()).unwrap();
    assert_eq!((r.created, r.updated), (1, 1));
}

#[test]
fn an_import_cannot_reach_into_another_areas_household() {
    let f = fixture();
    // Household CC lives in District Two.
    import(
        &f,
        "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Ada,Cee,1980-01-01,C1,V3,SPOUSE,0,CC
",
        ImportOptions::default(),
    )
    .unwrap();
    let district_one = Scope::Area {
        path: "R1/D1".into(),
    };
    let scoped = |csv: &str, partial: bool| {
        let parsed = parse_individuals(csv.as_bytes(), FileFormat::Csv, None).unwrap();
        f.store.write(|tx| {
            registry::apply_import(
                tx,
                ACTOR,
                &district_one,
                &parsed,
                &ImportOptions {
                    partial,
                    ..Default::default()
                },
            )
        })
    };
    let before = counts(&f);
    // A member, a primary recipient and a head (who would move CC to V1), each from D1.
    let reach =
        "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Mem,Ber,1990-01-01,D1-1,V1,CHILD,0,CC
Rec,Ipient,1990-01-01,D1-2,V1,,1,CC
New,Head,1970-01-01,D1-3,V1,HEAD,0,CC
";
    let Err(Error::ImportRejected { errors }) = scoped(reach, false) else {
        panic!("another area's household must be refused");
    };
    for row in [2, 3, 4] {
        assert!(
            errors.iter().any(|e| e.row == row
                && e.column.as_deref() == Some("group_code")
                && e.reason == "household CC belongs to another area"),
            "row {row}: {errors:?}"
        );
    }
    assert_eq!(counts(&f), before, "a refused file wrote something");

    // Partial: the row for D1's own household goes in; the one reaching into CC does not.
    let mixed =
        "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Own,Head,1970-01-01,D1-4,V1,HEAD,1,DD
New,Head,1970-01-01,D1-3,V1,HEAD,0,CC
";
    let report = scoped(mixed, true).unwrap();
    assert_eq!(report.created, 1);
    assert_eq!(
        report.rejected.iter().map(|e| e.row).collect::<Vec<_>>(),
        [3]
    );
    let cc = f
        .store
        .read(|c| {
            let id = registry::household_id_by_code(c, "CC")?;
            registry::get_household(c, &Scope::National, id)
        })
        .unwrap();
    assert_eq!(cc.location.as_deref(), Some("V3"), "CC did not move");
    assert_eq!(cc.members.len(), 1);
    let found = f
        .store
        .read(|c| registry::search_individuals(c, &Scope::National, Some("D1-3"), 5, 0))
        .unwrap();
    assert!(found.is_empty(), "nothing of a refused row is written");
}

#[test]
fn a_household_shows_each_caller_only_the_members_in_their_area() {
    let f = fixture();
    // The head lives in District One (so does the household); a son has moved to District Two.
    import(
        &f,
        "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Mia,Foo,1989-01-01,A1,V1,HEAD,1,AA
Sam,Foo,2005-01-01,A2,V3,SON,0,AA
",
        ImportOptions::default(),
    )
    .unwrap();
    let id = f
        .store
        .read(|c| registry::household_id_by_code(c, "AA"))
        .unwrap();
    let members = |scope: Scope| {
        f.store
            .read(|c| registry::get_household(c, &scope, id))
            .map(|h| {
                h.members
                    .into_iter()
                    .map(|m| m.external_id)
                    .collect::<Vec<_>>()
            })
    };
    assert_eq!(members(Scope::National).unwrap(), ["A1", "A2"]);
    assert_eq!(
        members(Scope::Area {
            path: "R1/D1".into()
        })
        .unwrap(),
        ["A1"],
        "D2's member is not shown in D1"
    );
    let err = members(Scope::Area {
        path: "R1/D2".into(),
    })
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn every_lifecycle_transition_is_enforced_and_kept_in_history() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "P", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "flat", "amount": 100}}}),
    );
    use BeneficiaryStatus::*;
    for from in BeneficiaryStatus::ALL {
        for to in BeneficiaryStatus::ALL {
            let id = format!("L-{from}-{to}");
            let csv =
                format!("first_name,last_name,dob,id,location_name\nA,B,1990-01-01,{id},V1\n");
            import(
                &f,
                &csv,
                ImportOptions {
                    plan: Some("P".into()),
                    status: Some(from),
                    partial: false,
                },
            )
            .unwrap();
            let b = f
                .store
                .read(|c| {
                    registry::list_beneficiaries(c, &Scope::National, Some("P"), Some(from), 500, 0)
                })
                .unwrap();
            let b = b
                .into_iter()
                .find(|b| {
                    b.name == "A B"
                        && f.store
                            .read(|c| {
                                registry::get_individual(
                                    c,
                                    &Scope::National,
                                    b.individual_id.unwrap(),
                                )
                            })
                            .unwrap()
                            .external_id
                            == id
                })
                .unwrap();
            let audit_before = count(&f, "audit_log");
            let result = f.store.write(|tx| {
                registry::change_status(tx, "user:sup", &Scope::National, b.id, to, "field check")
            });
            let allowed = matches!(
                (from, to),
                (Potential, Enrolled)
                    | (Enrolled, Active)
                    | (Active, Suspended)
                    | (Suspended, Active)
            ) || (to == Graduated && from != Graduated);
            assert_eq!(result.is_ok(), allowed, "{from} -> {to}: {result:?}");
            let now = f
                .store
                .read(|c| registry::get_beneficiary(c, &Scope::National, b.id))
                .unwrap();
            let history = f.store.read(|c| registry::status_history(c, b.id)).unwrap();
            if allowed {
                assert_eq!(now.status, to);
                let last = history.last().unwrap();
                assert_eq!(
                    (last.from, last.to, last.by.as_str(), last.reason.as_str()),
                    (Some(from), to, "user:sup", "field check")
                );
                assert_eq!(count(&f, "audit_log"), audit_before + 1);
            } else {
                assert!(matches!(result, Err(Error::Transition(_))), "{result:?}");
                assert_eq!(now.status, from, "a refused change changed the status");
                assert_eq!(history.len(), 1, "a refused change left history");
            }
        }
    }
    let any = f
        .store
        .read(|c| registry::list_beneficiaries(c, &Scope::National, Some("P"), None, 1, 0))
        .unwrap();
    let err = f
        .store
        .write(|tx| {
            registry::change_status(tx, ACTOR, &Scope::National, any[0].id, Suspended, "  ")
        })
        .unwrap_err();
    assert!(err.to_string().contains("needs a reason"));
    // A value the code does not know, written behind the store's back, is an error when
    // read: `tests/sqlite.rs` damages a file to show it.
}

/// Imports households into a group plan as ACTIVE and generates C1.
fn generate(f: &Fixture, plan_code: &str) -> payroll::GenerateReport {
    f.store
        .write(|tx| payroll::generate(tx, ACTOR, &Scope::National, plan_code, "C1"))
        .unwrap()
}

fn amounts(f: &Fixture, plan_code: &str) -> Vec<(String, i64, String)> {
    f.store
        .read(|c| {
            let mut rows = Vec::new();
            for p in payroll::list_payrolls(c, &Scope::National, Some(plan_code), None, None)? {
                for e in payroll::entitlements(c, &Scope::National, p.id, u32::MAX, 0)? {
                    let Some(recipient) = e.recipient_id else {
                        continue;
                    };
                    let person = registry::get_individual(c, &Scope::National, recipient)?;
                    rows.push((person.external_id, e.amount_minor, e.status.to_string()));
                }
            }
            rows.sort();
            Ok(rows)
        })
        .unwrap()
}

#[test]
fn base_plus_criteria_with_a_limit() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "P", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "base_plus_criteria", "base": 1000, "criteria": [
            {"field": "disability", "op": "eq", "value": true, "amount": 500},
            {"field": "income", "op": "lt", "value": 50, "amount": 700}]},
          "limit_per_transaction": 2000}}),
    );
    let csv = "first_name,last_name,dob,id,location_name,disability,income
A,A,1990-01-01,X1,V1,no,100
B,B,1990-01-01,X2,V1,yes,100
C,C,1990-01-01,X3,V1,yes,10
";
    import(&f, csv, plan("P")).unwrap();
    let r = generate(&f, "P");
    assert_eq!(
        (r.entitlements_created, r.awaiting_approval, r.total_minor),
        (3, 1, 1000 + 1500 + 2200)
    );
    assert_eq!(
        amounts(&f, "P"),
        vec![
            ("X1".into(), 1000, "DUE".into()),
            ("X2".into(), 1500, "DUE".into()),
            ("X3".into(), 2200, "AWAITING_APPROVAL".into())
        ]
    );
}

#[test]
fn a_rejected_payrolls_limit_approvals_are_withdrawn_and_its_people_generated_again() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "P", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "flat", "amount": 3000}, "limit_per_transaction": 2000}}),
    );
    import(
        &f,
        "first_name,last_name,dob,id,location_name\nA,A,1990-01-01,X1,V1\n",
        plan("P"),
    )
    .unwrap();
    let waiting = |f: &Fixture| {
        f.store
            .read(|c| {
                let kind = Some(TaskKind::EntitlementApproval);
                tasks::list(c, &Scope::National, TaskStatus::Pending, kind, u32::MAX)
            })
            .unwrap()
            .len()
    };
    let first = generate(&f, "P");
    assert_eq!(
        (first.entitlements_created, first.awaiting_approval),
        (1, 1)
    );
    assert_eq!(waiting(&f), 1);
    f.store
        .write(|tx| {
            payroll::set_payroll_status(
                tx,
                ACTOR,
                &Scope::National,
                first.payrolls[0],
                PayrollStatus::Rejected,
                "wrong plan",
            )
        })
        .unwrap();
    assert_eq!(
        waiting(&f),
        0,
        "nothing left to approve on a rejected payroll"
    );
    let again = generate(&f, "P");
    assert_eq!(
        (again.entitlements_created, again.awaiting_approval),
        (1, 1)
    );
    assert_ne!(again.payrolls, first.payrolls);
    assert_eq!(
        waiting(&f),
        1,
        "the new entitlement waits for its own approval"
    );
}

#[test]
fn flat_amounts_only_for_active_beneficiaries_and_never_twice() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "P", "beneficiary_type": "GROUP", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "flat", "amount": 15000}}}),
    );
    import(&f, OPENIMIS, plan("P")).unwrap();
    let first = generate(&f, "P");
    assert_eq!(
        (first.entitlements_created, first.payrolls.len()),
        (2, 2),
        "one payroll per village"
    );
    // AA's primary recipient (Mia) collects; BB has no primary, so its head does.
    assert_eq!(
        amounts(&f, "P"),
        vec![
            ("A1".into(), 15000, "DUE".into()),
            ("B1".into(), 15000, "DUE".into())
        ]
    );
    let again = generate(&f, "P");
    assert_eq!(again.entitlements_created, 0);
    assert_eq!(count(&f, "entitlements"), 2);
    assert_eq!(count(&f, "payrolls"), 2);

    // A new household after the first payroll was approved goes to a new payroll; the
    // approved one is never changed. A suspended one gets nothing.
    let payrolls = f
        .store
        .read(|c| payroll::list_payrolls(c, &Scope::National, Some("P"), None, None))
        .unwrap();
    let v1 = payrolls.iter().find(|p| p.location == "V1").unwrap();
    f.store
        .write(|tx| {
            payroll::set_payroll_status(
                tx,
                ACTOR,
                &Scope::National,
                v1.id,
                PayrollStatus::Approved,
                "ok",
            )
        })
        .unwrap();
    let more = "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Ken,Cee,1980-01-01,C1,V1,HEAD,1,CC
Lou,Dee,1980-01-01,D1,V1,HEAD,1,DD
";
    import(&f, more, plan("P")).unwrap();
    let dd = f
        .store
        .read(|c| registry::list_beneficiaries(c, &Scope::National, Some("P"), None, 10, 0))
        .unwrap();
    let dd = dd.iter().find(|b| b.name == "Lou Dee").unwrap();
    f.store
        .write(|tx| {
            registry::change_status(
                tx,
                ACTOR,
                &Scope::National,
                dd.id,
                BeneficiaryStatus::Suspended,
                "moved away",
            )
        })
        .unwrap();
    let third = generate(&f, "P");
    assert_eq!(third.entitlements_created, 1);
    let after = f
        .store
        .read(|c| payroll::get_payroll(c, &Scope::National, v1.id))
        .unwrap();
    assert_eq!(after.entitlements, 1, "the approved payroll was changed");
    let supplementary = f
        .store
        .read(|c| payroll::get_payroll(c, &Scope::National, third.payrolls[0]))
        .unwrap();
    assert!(supplementary.name.ends_with("#2"), "{}", supplementary.name);
    assert_eq!(supplementary.status, PayrollStatus::PendingApproval);
    // An approved payroll cannot be rejected.
    let err = f
        .store
        .write(|tx| {
            payroll::set_payroll_status(
                tx,
                ACTOR,
                &Scope::National,
                v1.id,
                PayrollStatus::Rejected,
                "no",
            )
        })
        .unwrap_err();
    assert!(matches!(err, Error::Transition(_)), "{err}");
}

#[test]
fn per_child_amounts_go_to_the_recipient_by_payment_point() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "CG", "beneficiary_type": "GROUP", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "per_member", "base": 100, "per_member": 1000, "child_age_limit": 18, "max_members": 2}},
        "payment_point": {"by": "location", "level": "DISTRICT"}}),
    );
    let csv = "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Ma,K,1980-01-01,K1,V1,HEAD,0,KK
Pa,K,1981-01-01,K2,V1,SPOUSE,1,KK
C1,K,2010-01-01,K3,V1,SON,,KK
C2,K,2012-01-01,K4,V1,DAUGHTER,,KK
C3,K,2015-01-01,K5,V1,SON,,KK
Solo,L,1950-01-01,L1,V2,HEAD,1,LL
Kid,M,2020-01-01,M1,V3,DAUGHTER,,MM
Mum,M,1995-01-01,M2,V3,HEAD,1,MM
";
    import(&f, csv, plan("CG")).unwrap();
    let r = generate(&f, "CG");
    assert_eq!(
        r.payrolls.len(),
        2,
        "V1 and V2 share district D1; V3 is in D2"
    );
    assert_eq!(
        amounts(&f, "CG"),
        vec![
            ("K2".into(), 100 + 2 * 1000, "DUE".into()),
            ("L1".into(), 100, "DUE".into()),
            ("M2".into(), 1100, "DUE".into())
        ]
    );
}

#[test]
fn an_office_timesheet_passes_the_checks_a_device_timesheet_does() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "CFW", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "cash_for_work", "project": "ROAD"}}}),
    );
    add_plan(
        &f,
        json!({"code": "FOOD", "beneficiary_type": "INDIVIDUAL", "provisions": ["GOODS"],
        "rule": {"goods": [{"item": "MAIZE", "quantity": 2}]}}),
    );
    // W1 in District One, W2 in District Two; the road is in District One.
    let csv = "first_name,last_name,dob,id,location_name\nW,One,1990-01-01,W1,V1\nW,Two,1990-01-01,W2,V3\n";
    import(&f, csv, plan("CFW")).unwrap();
    import(&f, csv, plan("FOOD")).unwrap();
    f.store
        .write(|tx| {
            works::add_work_project(
                tx,
                ACTOR,
                &Scope::National,
                &works::WorkProject {
                    code: "ROAD".into(),
                    name: "Road".into(),
                    plan: "CFW".into(),
                    location: "D1".into(),
                    daily_wage_minor: 2000,
                },
            )
        })
        .unwrap();
    let beneficiary = |plan: &str, name: &str| {
        f.store
            .read(|c| registry::list_beneficiaries(c, &Scope::National, Some(plan), None, 10, 0))
            .unwrap()
            .into_iter()
            .find(|b| b.name == name)
            .unwrap()
            .id
    };
    let record = |scope: Scope, b| {
        f.store.write(|tx| {
            works::record_timesheet(
                tx,
                "user:clerk",
                &scope,
                &works::TimesheetEntry {
                    project: "ROAD".into(),
                    beneficiary_id: b,
                    work_date: date("2026-11-02"),
                    day_hundredths: 100,
                },
            )
        })
    };
    let district = |d: &str| Scope::Area {
        path: format!("R1/{d}"),
    };
    let before = (count(&f, "timesheets"), count(&f, "tasks"));

    // A beneficiary of another plan does not work on the plan's project.
    let err = record(Scope::National, beneficiary("FOOD", "W One")).unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref m) if m.contains("not of the project's plan CFW")),
        "{err}"
    );
    // District Two's clerk sees W2, but the road is District One's.
    let err = record(district("D2"), beneficiary("CFW", "W Two")).unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(ref m) if m == "project ROAD is outside your area"),
        "{err}"
    );
    assert_eq!(
        (count(&f, "timesheets"), count(&f, "tasks")),
        before,
        "a refused timesheet writes nothing"
    );
    record(district("D1"), beneficiary("CFW", "W One")).unwrap();
    assert_eq!(count(&f, "timesheets"), before.0 + 1);
}

#[test]
fn cash_for_work_pays_approved_days_only_and_goods_carry_items() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "CFW", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "cash_for_work", "project": "ROAD"}}}),
    );
    add_plan(
        &f,
        json!({"code": "FOOD", "beneficiary_type": "INDIVIDUAL", "provisions": ["GOODS"],
        "rule": {"goods": [{"item": "MAIZE", "quantity": 2}]}}),
    );
    let csv = "first_name,last_name,dob,id,location_name\nW,One,1990-01-01,W1,V1\nW,Two,1990-01-01,W2,V1\nW,Three,1990-01-01,W3,V1\n";
    import(&f, csv, plan("CFW")).unwrap();
    import(&f, csv, plan("FOOD")).unwrap();
    f.store
        .write(|tx| {
            works::add_work_project(
                tx,
                ACTOR,
                &Scope::National,
                &works::WorkProject {
                    code: "ROAD".into(),
                    name: "Road".into(),
                    plan: "CFW".into(),
                    location: "D1".into(),
                    daily_wage_minor: 2000,
                },
            )
        })
        .unwrap();
    let unnamed = f.store.write(|tx| {
        let p = works::WorkProject {
            code: "NONAME".into(),
            name: " ".into(),
            plan: "CFW".into(),
            location: "D1".into(),
            daily_wage_minor: 2000,
        };
        works::add_work_project(tx, ACTOR, &Scope::National, &p)
    });
    assert!(unnamed.unwrap_err().to_string().contains("needs a name"));
    let bens = f
        .store
        .read(|c| registry::list_beneficiaries(c, &Scope::National, Some("CFW"), None, 10, 0))
        .unwrap();
    let by_name = |n: &str| bens.iter().find(|b| b.name == n).unwrap().id;
    let record = |b, day: &str, hundredths, approve: bool| {
        f.store
            .write(|tx| {
                let id = works::record_timesheet(
                    tx,
                    "user:clerk",
                    &Scope::National,
                    &works::TimesheetEntry {
                        project: "ROAD".into(),
                        beneficiary_id: b,
                        work_date: date(day),
                        day_hundredths: hundredths,
                    },
                )?;
                if approve {
                    works::decide_timesheet(
                        tx,
                        "user:sup",
                        &Scope::National,
                        id,
                        works::TimesheetStatus::Approved,
                    )?;
                }
                Ok(id)
            })
            .unwrap()
    };
    record(by_name("W One"), "2026-11-02", 100, true);
    record(by_name("W One"), "2026-11-03", 50, true);
    record(by_name("W One"), "2026-10-30", 100, true); // before the cycle
    record(by_name("W Two"), "2026-11-02", 100, false); // not approved
    let pending = record(by_name("W Three"), "2026-11-02", 100, false);
    // Whoever recorded a timesheet cannot approve it; one entry per worker per day.
    let err = f
        .store
        .write(|tx| {
            works::decide_timesheet(
                tx,
                "user:clerk",
                &Scope::National,
                pending,
                works::TimesheetStatus::Approved,
            )
        })
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    let dup = f.store.write(|tx| {
        works::record_timesheet(
            tx,
            "user:clerk",
            &Scope::National,
            &works::TimesheetEntry {
                project: "ROAD".into(),
                beneficiary_id: by_name("W One"),
                work_date: date("2026-11-02"),
                day_hundredths: 100,
            },
        )
    });
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");

    let r = generate(&f, "CFW");
    assert_eq!((r.entitlements_created, r.nothing_due), (1, 2));
    assert_eq!(amounts(&f, "CFW"), vec![("W1".into(), 3000, "DUE".into())]);

    generate(&f, "FOOD");
    let payrolls = f
        .store
        .read(|c| payroll::list_payrolls(c, &Scope::National, Some("FOOD"), None, None))
        .unwrap();
    let ents = f
        .store
        .read(|c| payroll::entitlements(c, &Scope::National, payrolls[0].id, 10, 0))
        .unwrap();
    assert_eq!(ents.len(), 3);
    assert!(ents.iter().all(|e| e.amount_minor == 0
        && e.goods.len() == 1
        && e.goods[0].quantity == 2
        && e.status == EntitlementStatus::Due));
}

#[test]
fn agents_as_payment_points_and_scoped_generation() {
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "P", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "flat", "amount": 10}}, "payment_point": {"by": "agent"}}),
    );
    f.store
        .write(|tx| {
            users::create_user(
                tx,
                ACTOR,
                &Scope::National,
                &NewUser {
                    username: "agent.d1".into(),
                    display_name: "Agent D1".into(),
                    role: Role::FieldAgent,
                    area: Some("D1".into()),
                    password: "long enough password".into(),
                },
            )
        })
        .unwrap();
    let nameless = f.store.write(|tx| {
        let u = NewUser {
            username: "agent.x".into(),
            display_name: "".into(),
            role: Role::FieldAgent,
            area: Some("D1".into()),
            password: "long enough password".into(),
        };
        users::create_user(tx, ACTOR, &Scope::National, &u)
    });
    assert!(nameless.unwrap_err().to_string().contains("display name"));
    let csv = "first_name,last_name,dob,id,location_name\nA,A,1990-01-01,X1,V1\nB,B,1990-01-01,X2,V2\nC,C,1990-01-01,X3,V3\n";
    import(&f, csv, plan("P")).unwrap();
    let district2 = Scope::Area {
        path: "R1/D2".into(),
    };
    let r = f
        .store
        .write(|tx| payroll::generate(tx, ACTOR, &district2, "P", "C1"))
        .unwrap();
    assert_eq!(
        (r.entitlements_created, r.unplaced),
        (0, 1),
        "no agent covers D2"
    );
    let r = generate(&f, "P");
    assert_eq!(
        (r.entitlements_created, r.unplaced, r.payrolls.len()),
        (2, 1, 1)
    );
    let p = f
        .store
        .read(|c| payroll::get_payroll(c, &Scope::National, r.payrolls[0]))
        .unwrap();
    assert_eq!(
        (p.agent.as_deref(), p.location.as_str()),
        (Some("agent.d1"), "D1")
    );
    assert!(
        f.store
            .read(|c| payroll::get_payroll(c, &district2, p.id))
            .is_err(),
        "visible outside its area"
    );
}

#[test]
fn payroll_generation_lists_the_plans_likely_duplicates_still_open() {
    use outpost_server::dedup::{self, matching::DEFAULT_THRESHOLD, store as candidates};
    let f = fixture();
    add_plan(
        &f,
        json!({"code": "P", "beneficiary_type": "INDIVIDUAL", "provisions": ["CASH"],
        "rule": {"cash": {"kind": "base_plus_criteria", "base": 1000, "criteria": []}}}),
    );
    // Grace Banda enrolled twice (a typo in the family name), among other people.
    let csv = "first_name,last_name,dob,id,location_name
Grace,Banda,1990-03-04,X1,V1
Grace,Bnada,1990-03-04,X2,V1
Chisomo,Phiri,1961-06-06,X3,V2
Yohane,Mwale,1975-09-12,X4,V3
Tiyamike,Tembo,2001-12-30,X5,V4
Esther,Chirwa,1983-02-17,X6,V1
";
    // Yohane Mwale also registered earlier outside the plan: his pair's first person (the
    // older id) is not enrolled, the second is.
    import(
        &f,
        "first_name,last_name,dob,id,location_name\nYohane,Mwale,1975-09-12,Y0,V3\n",
        ImportOptions {
            plan: None,
            status: None,
            partial: false,
        },
    )
    .unwrap();
    import(&f, csv, plan("P")).unwrap();
    let before = generate(&f, "P");
    assert!(before.possible_duplicates.is_empty(), "no run yet");

    let people = f.store.read(|c| candidates::people(c, Some("P"))).unwrap();
    assert_eq!(people.people.len(), 6);
    let run = dedup::run(&people.people, None, DEFAULT_THRESHOLD);
    let recorded = f
        .store
        .write(|tx| candidates::record(tx, ACTOR, &people, &run, Some("P")))
        .unwrap();
    assert_eq!(recorded.new, 1, "{:?}", run.matches);

    // The next generation (nothing new to generate) lists the pair for the checker.
    let after = generate(&f, "P");
    assert_eq!(after.entitlements_created, 0);
    let pair = &after.possible_duplicates;
    assert_eq!(pair.len(), 1);
    let mut ids = [pair[0].first.clone(), pair[0].second.clone()];
    ids.sort();
    assert_eq!(ids, ["X1".to_owned(), "X2".to_owned()]);
    assert!(pair[0].probability >= DEFAULT_THRESHOLD);

    // Scoped: a user of another district does not see it.
    let plan_id = f.store.read(|c| plans::plan_by_code(c, "P")).unwrap().id;
    let elsewhere = Scope::Area {
        path: "R1/D2".into(),
    };
    let seen = f
        .store
        .read(|c| candidates::open_for_plan(c, &elsewhere, plan_id, 100))
        .unwrap();
    assert!(seen.is_empty());
    let here = Scope::Area {
        path: "R1/D1".into(),
    };
    let seen = f
        .store
        .read(|c| candidates::open_for_plan(c, &here, plan_id, 100))
        .unwrap();
    assert_eq!(seen.len(), 1);

    // A whole-registry run finds Yohane's pair too: listed though only its second person
    // is enrolled, and only to whom both are in scope (he lives in D2).
    let everyone = f.store.read(|c| candidates::people(c, None)).unwrap();
    let run = dedup::run(&everyone.people, None, DEFAULT_THRESHOLD);
    let recorded = f
        .store
        .write(|tx| candidates::record(tx, ACTOR, &everyone, &run, None))
        .unwrap();
    assert_eq!(
        (recorded.new, recorded.refreshed),
        (1, 1),
        "{:?}",
        run.matches
    );
    let listed = generate(&f, "P").possible_duplicates;
    let mut pairs: Vec<[String; 2]> = listed
        .iter()
        .map(|p| {
            let mut ids = [p.first.clone(), p.second.clone()];
            ids.sort();
            ids
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ["X1".to_owned(), "X2".to_owned()],
            ["X4".to_owned(), "Y0".to_owned()]
        ]
    );
    let seen = f
        .store
        .read(|c| candidates::open_for_plan(c, &elsewhere, plan_id, 100))
        .unwrap();
    assert_eq!(seen.len(), 1, "D2 sees Yohane's pair: {seen:?}");
}
