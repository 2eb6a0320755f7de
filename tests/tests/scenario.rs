//! The programme end to end, with a real server and two real phones (`outpost-field` over the
//! mobile core): import households → generate a payroll → approve it (four eyes) →
//! phones enrol and sync → offline payouts, a hand-out, a timesheet, a verification and
//! grievances → sync → the office answers a grievance and changes a status → the phones sync
//! and see both → reconciliation → sign-off. After every step the invariants hold: every
//! record a phone made is on the server exactly once, the totals agree, and no phone holds a
//! beneficiary outside its assignment.

use std::collections::{BTreeSet, HashMap};

use outpost_proto::{
    BeneficiaryStatus, PayrollStatus,
    records::{self, Comment, GrievanceStatus},
};
use outpost_server::{
    payroll::store as payroll,
    plans::store as plans,
    reconciliation::store::{self as rec},
    registry::{
        import::{FileFormat, parse_individuals},
        store::{self as registry, ImportOptions, Scope},
    },
    sync::store::records as office,
    tasks::{
        policy::{TaskKind, Verdict},
        store as tasks,
    },
    users::store::{self as users, User},
};
use outpost_test_kit::{self as kit, TestServer};
use outpost_tests::phone::Phone;
use serde_json::Value;
use uuid::Uuid;

struct World {
    server: TestServer,
    phones: Vec<(Phone, String, &'static str)>,
    /// Payout totals each phone made, by device id.
    paid: HashMap<String, i64>,
}

impl World {
    fn user(&self, name: &str) -> User {
        self.server
            .state()
            .store
            .read(|c| users::user_by_username(c, name))
            .unwrap()
    }

    /// The invariants, after any step.
    fn check(&self, step: &str) {
        for (phone, device, area) in &self.phones {
            assert_eq!(phone.pending(), 0, "{step}: {device} has records waiting");
            let mine: BTreeSet<String> = phone
                .run(&["records", "--limit", "1000"])
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            let id = Uuid::parse_str(device).unwrap();
            let (on_server, paid): (BTreeSet<String>, i64) = self
                .server
                .state()
                .store
                .read(|c| {
                    let mut stmt = c.sqlite().prepare("SELECT id FROM documents WHERE device_id = ?1")?;
                    let ids = stmt
                        .query_map([id], |r| r.get::<_, Uuid>(0))?
                        .map(|r| r.map(|u| u.to_string()))
                        .collect::<rusqlite::Result<_>>()?;
                    let paid = c.sqlite().query_row(
                        "SELECT COALESCE(SUM(amount_minor), 0) FROM payouts WHERE device_id = ?1 AND voided_at IS NULL",
                        [id],
                        |r| r.get(0),
                    )?;
                    Ok((ids, paid))
                })
                .unwrap();
            assert_eq!(
                mine, on_server,
                "{step}: every record of {device} on the server once"
            );
            eprintln!(
                "{step}: {device} made {} records, each on the server once",
                mine.len()
            );
            assert_eq!(
                paid,
                self.paid.get(device).copied().unwrap_or(0),
                "{step}: totals"
            );
            // Everything the phone can pay is in its assignment.
            let day = self.server.day.to_string();
            for d in phone
                .run(&["due", "--day", &day, "--limit", "500"])
                .as_array()
                .unwrap()
            {
                let at = d["beneficiary"]["location_code"].as_str().unwrap();
                assert!(
                    at.starts_with(area),
                    "{step}: a phone of {area} holds someone of {at}"
                );
            }
        }
    }

    fn sync_all(&self) {
        for (phone, ..) in &self.phones {
            phone.run(&["sync"]);
        }
    }
}

fn first_due(due: &Value, goods: bool) -> &Value {
    due.as_array()
        .unwrap()
        .iter()
        .find(|d| {
            let e = &d["entitlement"];
            let has_goods = !e["goods_remaining"].as_array().unwrap().is_empty();
            let unpaid = e["remaining_minor"].as_i64() == e["amount"]["amount_minor"].as_i64();
            e["recipient_id"].is_string()
                && if goods {
                    has_goods && e["amount"]["amount_minor"] == 0
                } else {
                    !has_goods && unpaid && e["amount"]["amount_minor"].as_i64() > Some(0)
                }
        })
        .expect("something due")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_from_import_to_sign_off_keeps_every_record_once() {
    let server = kit::demo(80).start();
    let store = &server.state().store;
    let national = Scope::National;

    // Import: two new households in Mzimba, ACTIVE in the cash transfer.
    let csv = "id,first_name,last_name,dob,sex,location_name,group_code,individual_role,recipient_info,disability,housing\n\
               E2E-1,Tamanda,Gondwe,1979-05-06,F,N-MZ-02,HH-E2E-1,HEAD,1,no,OWNED\n\
               E2E-2,Kondwani,Gondwe,1981-07-08,M,N-MZ-02,HH-E2E-2,HEAD,1,yes,RENTED\n";
    store
        .write(|tx| {
            let schema = plans::plan_by_code(tx, "CT-HH")?.extra_schema;
            let parsed = parse_individuals(csv.as_bytes(), FileFormat::Csv, Some(&schema))?;
            let options = ImportOptions {
                plan: Some("CT-HH".into()),
                status: Some(BeneficiaryStatus::Active),
                partial: false,
            };
            registry::apply_import(tx, "user:admin", &national, &parsed, &options)?;
            // And a road worker who joins the public works this cycle, with no day worked yet.
            let worker = "id,first_name,last_name,dob,sex,location_name,group_code,individual_role,recipient_info,disability,housing\n\
                          E2E-W,Chifundo,Gondwe,1990-03-04,M,N-MZ-02,HH-E2E-W,HEAD,1,no,OWNED\n";
            let parsed = parse_individuals(worker.as_bytes(), FileFormat::Csv, Some(&schema))?;
            let none = ImportOptions { plan: None, status: None, partial: false };
            registry::apply_import(tx, "user:admin", &national, &parsed, &none)?;
            let id: Uuid = tx.sqlite().query_row("SELECT id FROM individuals WHERE external_id = 'E2E-W'", [], |r| r.get(0))?;
            let cfw = plans::plan_by_code(tx, "CFW-ROADS")?;
            registry::enrol_if_new(tx, "user:admin", cfw.id, registry::BeneficiaryTarget::Individual(id), BeneficiaryStatus::Active, "public works enrolment")
        })
        .unwrap();

    // Generate, then approve with four eyes.
    let mut world = World {
        server,
        phones: Vec::new(),
        paid: HashMap::new(),
    };
    let maker = world.user("sup.north1");
    let report = world
        .server
        .state()
        .store
        .write(|tx| {
            payroll::generate(
                tx,
                &maker.actor(),
                &maker.scope(),
                "CT-HH",
                &world.server.cycle,
            )
        })
        .unwrap();
    assert_eq!(report.entitlements_created, 2);
    let new_payroll = report.payrolls[0];
    let task = world
        .server
        .state()
        .store
        .read(|c| tasks::open_for(c, TaskKind::PayrollApproval, new_payroll))
        .unwrap()
        .unwrap();
    for who in ["sup.north2", "sup.north3"] {
        let u = world.user(who);
        world
            .server
            .state()
            .store
            .write(|tx| tasks::decide(tx, &u, task.id, Verdict::Approve, "", true))
            .unwrap();
    }

    // Two phones enrol and sync.
    let dir = tempfile::tempdir().unwrap();
    for (name, agent, area) in [
        ("mzimba", "agent.n-mz", "N-MZ"),
        ("rumphi", "agent.n-ru", "N-RU"),
    ] {
        let phone = Phone::new(dir.path(), name);
        let code = world.server.enrolment_code("sup.north1", agent, area).await;
        phone.run(&["enrol", "--server", &world.server.base, "--code", &code]);
        phone.run(&["sync"]);
        let device = phone.run(&["status"])["device_id"]
            .as_str()
            .unwrap()
            .to_owned();
        world.phones.push((phone, device, area));
    }
    world.check("after enrolment");

    // Offline work.
    let mz = &world.phones[0].0;
    let mz_device = world.phones[0].1.clone();
    let day = world.server.day.to_string();
    let mut paid_mz = mz.pay_some(world.server.day, 3);
    // And one of the households imported today, from the payroll approved today.
    paid_mz += mz.pay_beneficiary("E2E-1");
    let due = mz.run(&["due", "--day", &day, "--limit", "500"]);
    let kit = first_due(&due, true)["entitlement"].clone();
    for g in kit["goods_remaining"].as_array().unwrap() {
        let (item, qty) = (
            g["item_code"].as_str().unwrap(),
            g["quantity"].as_i64().unwrap(),
        );
        mz.run(&[
            "stock",
            item,
            &qty.to_string(),
            "--note",
            "from the warehouse",
        ]);
    }
    let items: Vec<String> = kit["goods_remaining"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| format!("{}={}", g["item_code"].as_str().unwrap(), g["quantity"]))
        .collect();
    let mut args = vec![
        "distribute",
        "--entitlement",
        kit["id"].as_str().unwrap(),
        "--collector",
        kit["recipient_id"].as_str().unwrap(),
    ];
    for i in &items {
        args.extend(["--item", i.as_str()]);
    }
    mz.run(&args);
    // A timesheet for a road worker, a verification proposing a suspension, a grievance.
    let (project, worker): (Uuid, Uuid) = world
        .server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite().query_row(
                "SELECT w.id, b.id FROM work_projects w JOIN beneficiaries b ON b.plan_id = w.plan_id
                 JOIN beneficiary_paths p ON p.beneficiary_id = b.id
                 WHERE w.code = 'ROAD-N-MZ' AND b.status = 'ACTIVE' AND p.path LIKE 'N/N-MZ/%'
                   AND NOT EXISTS (SELECT 1 FROM timesheets t WHERE t.beneficiary_id = b.id AND t.work_date = ?1)
                 LIMIT 1",
                [&day],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .unwrap();
    mz.run(&[
        "timesheet",
        "--project",
        &project.to_string(),
        "--worker",
        &worker.to_string(),
        "--date",
        &day,
    ]);
    let suspended = first_due(&due, false)["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    mz.run(&[
        "verify",
        "--beneficiary",
        &suspended,
        "--propose",
        "SUSPENDED",
        "--note",
        "moved to Mzuzu",
    ]);
    let grievance = mz.run(&[
        "grievance",
        "new",
        "--beneficiary",
        &suspended,
        "--category",
        "PAYMENT_NOT_RECEIVED",
        "--description",
        "no cash in October",
    ]);
    let grievance_id = grievance["record_id"].as_str().unwrap().to_owned();
    let ru = &world.phones[1].0;
    let ru_device = world.phones[1].1.clone();
    let paid_ru = ru.pay_some(world.server.day, 2);
    ru.run(&[
        "grievance",
        "new",
        "--category",
        "AGENT_CONDUCT",
        "--description",
        "the agent came late",
    ]);
    world.paid.insert(mz_device.clone(), paid_mz);
    world.paid.insert(ru_device.clone(), paid_ru);

    world.sync_all();
    world.check("after the field's sync");

    // The office answers the grievance and approves the proposed suspension.
    let sup = world.user("sup.north1");
    let gid = Uuid::parse_str(&grievance_id).unwrap();
    world
        .server
        .state()
        .store
        .write(|tx| {
            office::office_edit(tx, &sup, gid, |d| {
                records::add_comment(
                    d,
                    &Comment {
                        author: "sup.north1".into(),
                        at: chrono::Utc::now().fixed_offset(),
                        text: "Paid on the 20th; see receipt.".into(),
                    },
                )
            })?;
            office::office_edit(tx, &sup, gid, |d| {
                records::set_grievance_status(d, GrievanceStatus::InProgress, Some("sup.north1"))
            })
        })
        .unwrap();
    let verification = world
        .server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite().query_row(
                "SELECT doc_id FROM verifications WHERE beneficiary_id = ?1",
                [Uuid::parse_str(&suspended).unwrap()],
                |r| r.get::<_, Uuid>(0),
            )?)
        })
        .unwrap();
    let u = world.user("sup.north2");
    world
        .server
        .state()
        .store
        .write(|tx| {
            tasks::decide_subject(
                tx,
                &u,
                TaskKind::StatusChange,
                verification,
                Verdict::Approve,
                "",
                false,
            )
        })
        .unwrap();

    // The phones see both on their next sync.
    world.sync_all();
    let g = mz.run(&["grievance", "show", &grievance_id]);
    assert_eq!(g["status"], "IN_PROGRESS");
    assert!(
        g["comments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["text"] == "Paid on the 20th; see receipt."),
        "{g}"
    );
    let b = mz.run(&["show", &suspended]);
    assert_eq!(
        b["summary"]["status"], "SUSPENDED",
        "the phone knows the new status"
    );
    // A suspended beneficiary is refused a payout on the phone.
    if let Some(e) = b["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["remaining_minor"].as_i64() > Some(0) && e["recipient_id"].is_string())
    {
        let refused = mz.try_run(&[
            "pay",
            "--entitlement",
            e["id"].as_str().unwrap(),
            "--collector",
            e["recipient_id"].as_str().unwrap(),
            "--amount",
            "100",
            "--currency",
            "MWK",
            "--witness-pin",
        ]);
        let (code, err) = refused.expect_err("no payout to a suspended beneficiary");
        assert_eq!(code, 1, "{err}");
    }
    world.check("after the office's changes");

    // Reconciliation of the new payroll, and its sign-off.
    let r = world
        .server
        .state()
        .store
        .read(|c| rec::reconcile_payroll(c, &national, new_payroll))
        .unwrap();
    assert_eq!(r.report.lines.len(), 2);
    let paid_lines = r.report.lines.iter().filter(|l| l.payouts > 0).count();
    assert_eq!(
        paid_lines, 1,
        "the new household was paid, the other not yet"
    );
    let sup2 = world.user("sup.north2");
    for e in r.report.exceptions.clone() {
        world
            .server
            .state()
            .store
            .write(|tx| rec::resolve(tx, &sup, new_payroll, &e.key, "checked with the agent"))
            .unwrap();
    }
    let sign = world
        .server
        .state()
        .store
        .write(|tx| rec::request_sign_off(tx, &sup, new_payroll))
        .unwrap();
    world
        .server
        .state()
        .store
        .write(|tx| tasks::decide(tx, &sup2, sign, Verdict::Approve, "", true))
        .unwrap();
    let closed = world
        .server
        .state()
        .store
        .read(|c| payroll::get_payroll(c, &national, new_payroll))
        .unwrap();
    assert_eq!(closed.status, PayrollStatus::Closed);
    eprintln!("scenario: {paid_lines} of the new payroll's lines paid; signed off");

    // The other new household is paid late, after sign-off: the closed payroll flags it.
    paid_mz += mz.pay_beneficiary("E2E-2");
    world.paid.insert(mz_device, paid_mz);
    world.sync_all();
    let r = world
        .server
        .state()
        .store
        .read(|c| rec::reconcile_payroll(c, &national, new_payroll))
        .unwrap();
    assert!(
        r.report
            .exceptions
            .iter()
            .any(|x| x.kind == outpost_server::reconciliation::ExceptionKind::LateSync),
        "{:?}",
        r.report.exceptions
    );
    // Open again: the late payout, and the agent's float it changed (the resolution
    // covered the float as it was).
    let open: BTreeSet<&str> = r
        .report
        .exceptions
        .iter()
        .filter(|x| !r.resolutions.contains_key(&x.key))
        .map(|x| x.kind.as_str())
        .collect();
    assert_eq!(open, BTreeSet::from(["FLOAT_MISMATCH", "LATE_SYNC"]));
    world.check("after a late payout");
}
