//! The sync client against a real server: crashes at every step, two devices, another agent
//! on the same phone, revocation, a full disk, progress and cancellation.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use outpost_core::{Error, Outpost, store, types::*};
use outpost_proto::{Currency, Money, records};

/// Payouts the server holds for a device.
fn server_payouts(server: &Server, device: &str) -> i64 {
    let id = uuid::Uuid::parse_str(device).unwrap();
    let hex: String = id.as_bytes().iter().map(|b| format!("{b:02X}")).collect();
    server.sql(
        &format!(
            "SELECT count(*) FROM payouts p JOIN documents d ON d.id = p.doc_id
             WHERE d.device_id = x'{hex}'"
        ),
        |r| r.get(0),
    )
}

fn records(d: &Device) -> i64 {
    d.core.with_connection(|c| {
        c.query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap()
    })
}

/// Pays the first `n` payable entitlements in full.
fn pay_many(d: &Device, n: usize) -> Vec<String> {
    d.cash(1_000_000_000);
    let due: Vec<DueEntitlement> = d
        .core
        .due(Some(demo_day()), 1000)
        .unwrap()
        .into_iter()
        .filter(|x| x.entitlement.goods.is_empty())
        .take(n)
        .collect();
    assert_eq!(due.len(), n, "enough entitlements in the demo");
    due.iter()
        .map(|x| {
            let detail = d.core.beneficiary(x.beneficiary.id.clone()).unwrap();
            d.pay(&x.entitlement, &collector(&detail)).unwrap()
        })
        .collect()
}

#[derive(Default)]
struct Seen(Mutex<Vec<SyncProgressInfo>>);

struct Listener(Arc<Seen>, Option<Arc<Outpost>>);

impl SyncListener for Listener {
    fn on_progress(&self, p: SyncProgressInfo) {
        if let Some(core) = &self.1
            && p.phase == SyncPhase::Downloading
        {
            core.cancel_sync();
        }
        self.0.0.lock().unwrap().push(p);
    }
}

#[test]
fn a_crash_at_any_step_loses_nothing_and_duplicates_nothing() {
    let server = Server::start(60);
    let mut d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let device = d.core.status().unwrap().device_id.unwrap();
    pay_many(&d, 3);

    // A write that dies before its commit leaves nothing behind.
    d.core.crash_at("record:before-commit");
    let (e, detail) = d.payable_nth(0);
    assert!(matches!(
        d.pay(&e, &collector(&detail)),
        Err(Error::Internal { .. })
    ));
    d.reopen();
    d.core.unlock(PIN.into()).unwrap();
    assert_eq!(records(&d), 3);

    // Each step of a sync, killed in turn; reopening and syncing again always ends the same.
    let mut made = 3;
    for point in [
        "push:before-send",
        "push:before-acknowledge",
        "replica:before-apply",
        "replica:inside-apply",
        "changes:before-apply",
    ] {
        if point.starts_with("replica") {
            // Something new to download: a card issued at the office.
            let (_, detail) = d.payable_nth(made);
            server.card(&detail.summary.id, None);
        }
        d.core.crash_at(point);
        assert!(
            matches!(d.core.sync(None), Err(Error::Internal { .. })),
            "{point}"
        );
        d.reopen();
        d.core.unlock(PIN.into()).unwrap();
        let report = d.core.sync(None).unwrap();
        assert!(report.status.up_to_date, "{point}: {report:?}");
        assert_eq!(records(&d), made as i64, "{point}");
        assert_eq!(server_payouts(&server, &device), made as i64, "{point}");
        // One more payout before the next crash.
        let (e, detail) = d.payable_nth(0);
        d.pay(&e, &collector(&detail)).unwrap();
        made += 1;
    }
    d.core.sync(None).unwrap();
    assert_eq!(server_payouts(&server, &device), made as i64);
    // The server saw every record number: none is missing.
    let info = server.device(&device);
    assert_eq!(info["records_received"], made as i64);
    assert_eq!(info["records_missing"], 0);
    // The replica after all those interruptions is the one a fresh device downloads.
    let fresh = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let rows = |d: &Device| -> Vec<i64> {
        [
            "people",
            "beneficiaries",
            "entitlements",
            "cards",
            "households",
        ]
        .iter()
        .map(|t| {
            d.core.with_connection(|c| {
                c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                    .unwrap()
            })
        })
        .collect()
    };
    assert_eq!(rows(&d), rows(&fresh));
}

#[test]
fn two_devices_pay_the_same_entitlement_and_the_server_keeps_both() {
    let server = Server::start(60);
    let a = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let b = Device::enrolled(&server, "agent.n-mz", "N-MZ-01");
    a.cash(100_000_000);
    b.cash(100_000_000);
    // The same entitlement, in the village both cover, paid offline on each.
    let due_b = b.core.due(Some(demo_day()), 1000).unwrap();
    let x = due_b
        .iter()
        .find(|x| x.entitlement.goods.is_empty())
        .unwrap();
    let detail = b.core.beneficiary(x.beneficiary.id.clone()).unwrap();
    let pa = a.pay(&x.entitlement, &collector(&detail)).unwrap();
    let pb = b.pay(&x.entitlement, &collector(&detail)).unwrap();
    assert_ne!(pa, pb);
    a.core.sync(None).unwrap();
    b.core.sync(None).unwrap();
    a.core.sync(None).unwrap();
    let hex: String = uuid::Uuid::parse_str(&x.entitlement.id)
        .unwrap()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let on_server: i64 = server.sql(
        &format!(
            "SELECT count(*) FROM payouts WHERE entitlement_id = x'{hex}' AND voided_at IS NULL"
        ),
        |r| r.get(0),
    );
    assert_eq!(on_server, 2, "both payouts are kept");
    // Each device now sees the other's payout: the entitlement shows as paid twice.
    for d in [&a, &b] {
        let detail = d.core.beneficiary(x.beneficiary.id.clone()).unwrap();
        let paid: Vec<&PayoutView> = detail
            .payouts
            .iter()
            .filter(|p| p.entitlement_id == x.entitlement.id)
            .collect();
        assert_eq!(paid.len(), 2);
        assert_eq!(paid.iter().filter(|p| p.own).count(), 1);
        let e = detail
            .entitlements
            .iter()
            .find(|e| e.id == x.entitlement.id)
            .unwrap();
        assert_eq!(e.paid_minor, 2 * e.amount.amount_minor);
        // And a third payment needs an override.
        let again = d.core.pay(PayoutInput {
            entitlement_id: e.id.clone(),
            collector_id: collector(&detail),
            amount_minor: e.amount.amount_minor,
            currency: e.amount.currency.clone(),
            proof: ProofInput::Signature {
                reference: "sig".into(),
            },
            override_reason: None,
        });
        assert!(matches!(again, Err(Error::AlreadyPaid { .. })), "{again:?}");
        // Only its own payout is in its agent's cash.
        let summary = d.core.day_summary(None).unwrap();
        assert_eq!(summary.float[0].paid_out_minor, e.amount.amount_minor);
    }
}

#[test]
fn grievance_edits_from_two_devices_merge() {
    let server = Server::start(60);
    let a = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let b = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let category = a.core.grievance_categories().unwrap()[0].code.clone();
    let g = a
        .core
        .create_grievance(GrievanceInput {
            beneficiary_id: None,
            category,
            description: "the pay point moved without notice".into(),
        })
        .unwrap();
    a.core.sync(None).unwrap();
    b.core.sync(None).unwrap();
    assert!(!b.core.grievance(g.clone()).unwrap().own);
    // Both comment offline; b also takes it in hand.
    a.core
        .comment_grievance(g.clone(), "asked the chief".into())
        .unwrap();
    b.core
        .comment_grievance(g.clone(), "visited the village".into())
        .unwrap();
    b.core
        .set_grievance_status(g.clone(), "IN_PROGRESS".into(), Some("agent.n-mz".into()))
        .unwrap();
    assert!(!b.core.sync_status().unwrap().up_to_date);
    a.core.sync(None).unwrap();
    b.core.sync(None).unwrap();
    a.core.sync(None).unwrap();
    for d in [&a, &b] {
        let v = d.core.grievance(g.clone()).unwrap();
        let mut texts: Vec<String> = v.comments.iter().map(|c| c.text.clone()).collect();
        texts.sort();
        assert_eq!(texts, ["asked the chief", "visited the village"]);
        assert_eq!(v.status, "IN_PROGRESS");
        assert!(d.core.sync_status().unwrap().up_to_date);
    }
}

#[test]
fn another_agent_enrolling_on_the_phone_loses_none_of_the_first_agents_records() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let first = d.core.status().unwrap().device_id.unwrap();
    pay_many(&d, 4);
    // Offline; the phone is handed to another agent, who enrols before any sync.
    let code = server.code("agent.n-ru", "N-RU");
    d.core
        .enrol(
            server.base.clone(),
            code,
            "4826".into(),
            "shared phone".into(),
            None,
        )
        .unwrap();
    let status = d.core.status().unwrap();
    assert_eq!(status.agent_username.as_deref(), Some("agent.n-ru"));
    assert_eq!(
        status.sync.pending, 4,
        "the first agent's records are pending"
    );
    assert!(!status.sync.up_to_date);
    // The first agent's PIN does not open the second agent's session.
    d.core.lock();
    assert!(matches!(
        d.core.unlock(PIN.into()),
        Err(Error::WrongPin { .. })
    ));
    d.core.unlock("4826".into()).unwrap();
    assert_eq!(d.core.day_summary(None).unwrap().payouts, 0);
    // One sync sends them under the first agent's device identity.
    let report = d.core.sync(None).unwrap();
    assert_eq!(report.accepted, 4);
    assert!(report.status.up_to_date);
    assert_eq!(server_payouts(&server, &first), 4);
    // With nothing left to send, the first agent's identity is gone from the phone.
    let enrolments: i64 = d.core.with_connection(|c| {
        c.query_row("SELECT count(*) FROM enrolments", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(enrolments, 1);
    // The replica is the second agent's: nothing of Mzimba stays.
    let mz: i64 = d.core.with_connection(|c| {
        c.query_row(
            "SELECT count(*) FROM locations WHERE code LIKE 'N-MZ%'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(mz, 0);
}

#[test]
fn a_revoked_phone_is_wiped_and_told_why() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let id = d.core.status().unwrap().device_id.unwrap();
    pay_many(&d, 2);
    let (status, body) = server.api(
        "sup.north1",
        "POST",
        &format!("/api/v1/devices/{id}/revoke"),
        serde_json::json!({"reason": "phone reported stolen"}),
    );
    assert_eq!(status, 200, "{body}");
    match d.core.sync(None) {
        Err(Error::Revoked { reason }) => assert!(reason.contains("revoked"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let status = d.core.status().unwrap();
    assert!(!status.enrolled && !status.unlocked);
    assert_eq!(records(&d), 0);
    let people: i64 = d.core.with_connection(|c| {
        c.query_row("SELECT count(*) FROM people", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(people, 0);
    assert!(matches!(d.core.sync(None), Err(Error::NotEnrolled)));
}

#[test]
fn a_full_disk_refuses_the_write_and_keeps_everything() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    pay_many(&d, 1);
    // The database may not grow by a single page.
    d.core.with_connection(|c| {
        let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .unwrap();
    });
    let mut refused = 0;
    for n in 1..40 {
        let (e, detail) = d.payable_nth(n);
        match d.pay(&e, &collector(&detail)) {
            Ok(_) => continue,
            Err(Error::StorageFull) => {
                refused += 1;
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 1, "the disk filled up");
    let before = records(&d);
    d.core.with_connection(|c| {
        c.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))
            .unwrap();
    });
    let (e, detail) = d.payable_nth(0);
    d.pay(&e, &collector(&detail)).unwrap();
    assert_eq!(records(&d), before + 1);
    let report = d.core.sync(None).unwrap();
    assert_eq!(report.accepted as i64, before + 1);
}

#[test]
fn a_refused_record_does_not_hold_up_the_others_and_status_is_honest() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    pay_many(&d, 2);
    // A record no rule on this phone would write (an older app's bug, say): a payout for a
    // beneficiary the server does not know.
    let now = chrono::Local::now().fixed_offset();
    d.core.with_connection(|c| {
        let e = store::active_enrolment(c).unwrap().unwrap();
        let actor = store::actor(c).unwrap();
        let bogus = records::Record::Payout(records::Payout {
            beneficiary_id: uuid::Uuid::now_v7(),
            entitlement_id: uuid::Uuid::now_v7(),
            collector_id: uuid::Uuid::now_v7(),
            amount: Money::new(100, "MWK".parse::<Currency>().unwrap()),
            proof: records::Proof::Pin,
            paid_at: now,
            override_reason: None,
            void: None,
        });
        store::write(c, |tx| {
            store::records::insert_new(tx, e.id, &actor, &bogus, &now)
        })
        .unwrap();
    });
    pay_many(&d, 1);
    let status = d.core.sync_status().unwrap();
    assert_eq!(status.pending, 4);
    assert!(!status.up_to_date, "never up to date while records wait");

    let seen = Arc::new(Seen::default());
    let report = d
        .core
        .sync(Some(Box::new(Listener(seen.clone(), None))))
        .unwrap();
    assert_eq!(report.accepted, 3);
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    // The server keeps it in quarantine: nothing is pending, and the phone says why.
    assert_eq!((report.status.pending, report.status.refused), (0, 1));
    assert!(report.status.up_to_date);
    let listed = d.core.records(true, 10).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0]
            .refused
            .as_deref()
            .unwrap()
            .contains("beneficiary"),
        "{listed:?}"
    );

    // Progress: each phase in order, the upload's total known, bytes only growing.
    let seen = seen.0.lock().unwrap();
    let mut phases: Vec<SyncPhase> = seen.iter().map(|p| p.phase).collect();
    phases.dedup();
    assert_eq!(
        phases,
        [
            SyncPhase::Connecting,
            SyncPhase::Uploading,
            SyncPhase::Downloading,
            SyncPhase::Receiving,
            SyncPhase::Done
        ]
    );
    let upload = seen
        .iter()
        .rfind(|p| p.phase == SyncPhase::Uploading)
        .unwrap();
    assert_eq!((upload.items, upload.total), (4, Some(4)));
    assert!(
        seen.windows(2)
            .all(|w| w[0].bytes_sent <= w[1].bytes_sent
                && w[0].bytes_received <= w[1].bytes_received)
    );
    assert!(seen.last().unwrap().bytes_sent > 0);
}

#[test]
fn a_cancelled_sync_keeps_what_it_finished_and_resumes() {
    let server = Server::start(60);
    let d = Device::new();
    let code = server.code("agent.n-mz", "N-MZ");
    d.core
        .enrol(server.base.clone(), code, PIN.into(), "phone".into(), None)
        .unwrap();
    pay_many_without_replica(&d);
    let seen = Arc::new(Seen::default());
    let outcome = d
        .core
        .sync(Some(Box::new(Listener(seen.clone(), Some(d.core.clone())))));
    assert!(matches!(outcome, Err(Error::Cancelled)), "{outcome:?}");
    let status = d.core.sync_status().unwrap();
    assert!(!status.up_to_date && status.last_sync_at.is_none());
    // The page applied before the cancel stays; the next sync finishes the job.
    let people = |d: &Device| -> i64 {
        d.core.with_connection(|c| {
            c.query_row("SELECT count(*) FROM people", [], |r| r.get(0))
                .unwrap()
        })
    };
    assert!(people(&d) > 0);
    let report = d.core.sync(None).unwrap();
    assert!(report.status.up_to_date);
    assert_eq!(report.replica_rows, 0, "nothing downloaded twice");
}

/// Before the first sync nothing can be paid: the phone has no replica.
fn pay_many_without_replica(d: &Device) {
    assert!(d.core.due(Some(demo_day()), 10).unwrap().is_empty());
    assert!(matches!(
        d.core.pay(PayoutInput {
            entitlement_id: uuid::Uuid::now_v7().to_string(),
            collector_id: uuid::Uuid::now_v7().to_string(),
            amount_minor: 1,
            currency: "MWK".into(),
            proof: ProofInput::Signature {
                reference: "s".into()
            },
            override_reason: None,
        }),
        Err(Error::NotSyncedYet { .. })
    ));
}
