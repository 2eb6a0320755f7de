//! The offline rules, each allowed and refused, on a device enrolled with a real server.

mod common;

use common::*;
use outpost_core::{Error, Outpost, types::*};

fn refused(r: outpost_core::Result<impl std::fmt::Debug>) -> Error {
    r.expect_err("refused")
}

/// Rows in a device table (read through the core's own connection).
fn count(d: &Device, table: &str) -> i64 {
    d.core.with_connection(|c| {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    })
}

#[test]
fn a_wrong_database_key_opens_nothing_and_a_short_key_is_refused() {
    let d = Device::new();
    let path = d.db_path();
    drop(d.core);
    let mut wrong = d.key.clone();
    wrong[0] ^= 1;
    assert!(matches!(
        Outpost::open(path.clone(), wrong),
        Err(Error::WrongDatabaseKey)
    ));
    assert!(matches!(
        Outpost::open(path.clone(), vec![1; 16]),
        Err(Error::Invalid { .. })
    ));
    // The file is not readable as plain SQLite either: it is encrypted.
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.starts_with(b"SQLite format 3"));
    Outpost::open(path, d.key.clone()).expect("the right key still opens it");
}

#[test]
fn pin_is_checked_and_locks_after_repeated_failures() {
    let server = Server::start(30);
    let mut d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    // A weak PIN is refused at enrolment, before the code is spent.
    let other = Device::new();
    let code = server.code("agent.n-mz", "N-MZ-01");
    assert!(matches!(
        other.core.enrol(
            server.base.clone(),
            code.clone(),
            "1234".into(),
            "x".into(),
            None
        ),
        Err(Error::Invalid { .. })
    ));
    other
        .core
        .enrol(server.base.clone(), code, "9071".into(), "x".into(), None)
        .expect("the code was not spent by the refused attempt");

    d.core.lock();
    assert!(matches!(
        d.core.search("a".into(), 5),
        Err(Error::LoginRequired)
    ));
    for left in (1..=4).rev() {
        match d.core.unlock("0000".into()) {
            Err(Error::WrongPin { attempts_left }) => assert_eq!(attempts_left, left),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        d.core.unlock("0000".into()),
        Err(Error::PinLocked {
            retry_after_seconds: 30
        })
    ));
    // Locked: even the right PIN waits, and closing the app does not reset the count.
    d.reopen();
    assert!(matches!(
        d.core.unlock(PIN.into()),
        Err(Error::PinLocked { .. })
    ));
    // The lockout passes (moved back in time here rather than waiting 30 s).
    d.core.with_connection(|c| {
        c.execute("UPDATE enrolments SET locked_until_ms = 0", [])
            .unwrap()
    });
    d.core.unlock(PIN.into()).unwrap();
    assert!(d.core.status().unwrap().unlocked);
    // The PIN is stored only as a salted slow hash.
    let stored: String = d.core.with_connection(|c| {
        c.query_row(
            "SELECT pin_hash FROM enrolments WHERE active = 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert!(stored.starts_with("$argon2id$") && !stored.contains(PIN));
}

#[test]
fn search_folds_accents_and_case_and_finds_members_cards_and_ids() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let names = |q: &str| -> Vec<String> {
        d.core
            .search(q.into(), 500)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    // The demo has people named Zoë, Nguyễn and Arabic family names.
    let zoe = names("zoe");
    assert!(zoe.iter().any(|n| n.contains("Zoë")), "{zoe:?}");
    assert_eq!(names("ZOË"), zoe);
    assert_eq!(names("Zo"), names("zo"));
    let arabic = names("حس");
    assert!(arabic.iter().any(|n| n.contains("حسن")), "{arabic:?}");
    let nguyen = names("nguyen");
    assert!(nguyen.iter().any(|n| n.contains("Nguyễn")), "{nguyen:?}");

    // A member who is not the head finds the household's beneficiaries.
    let (_, detail) = d.payable();
    let member = detail.members.last().unwrap();
    let first = member.name.split(' ').next().unwrap();
    let last = member.name.rsplit(' ').next().unwrap();
    let hits = d.core.search(format!("{first} {last}"), 500).unwrap();
    assert!(hits.iter().any(|h| h.id == detail.summary.id));
    // By external id, by id, by card number and by the card's QR text.
    let by_ext = d.core.search(member.external_id.to_lowercase(), 5).unwrap();
    assert!(by_ext.iter().any(|h| h.id == detail.summary.id));
    let by_id = d.core.search(detail.summary.id.clone(), 5).unwrap();
    assert_eq!(by_id[0].id, detail.summary.id);
    let qr = server.card(&detail.summary.id, None);
    d.core.sync(None).unwrap();
    let serial = d
        .core
        .beneficiary(detail.summary.id.clone())
        .unwrap()
        .card_serials[0];
    assert_eq!(
        d.core.search(serial.to_string(), 5).unwrap()[0].id,
        detail.summary.id
    );
    assert_eq!(d.core.search(qr, 5).unwrap()[0].id, detail.summary.id);
    assert!(matches!(
        d.core.search("  ".into(), 5),
        Err(Error::Invalid { .. })
    ));
    // Nothing outside the assignment is on the phone.
    let south: i64 = d.core.with_connection(|c| {
        c.query_row(
            "SELECT count(*) FROM locations WHERE path LIKE 'S%'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(south, 0);
}

#[test]
fn payouts_follow_the_rules() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let (e, detail) = d.payable();
    let who = collector(&detail);
    let pay = |amount: i64, collector: &str, proof: ProofInput, over: Option<&str>| {
        d.core.pay(PayoutInput {
            entitlement_id: e.id.clone(),
            collector_id: collector.into(),
            amount_minor: amount,
            currency: "MWK".into(),
            proof,
            override_reason: over.map(str::to_owned),
        })
    };
    let sig = || ProofInput::Signature {
        reference: "sig-7".into(),
    };
    // No cash float yet.
    assert!(matches!(
        refused(pay(e.amount.amount_minor, &who, sig(), None)),
        Error::OverFloat { in_hand: 0, .. }
    ));
    d.cash(10_000_000);
    // A child of the household may not collect.
    if let Some(child) = detail.members.iter().find(|m| !m.may_collect) {
        assert!(matches!(
            refused(pay(1000, &child.id, sig(), None)),
            Error::NotAllowedCollector { .. }
        ));
    }
    assert!(matches!(
        refused(pay(e.amount.amount_minor + 1, &who, sig(), None)),
        Error::OverEntitlement { .. }
    ));
    assert!(matches!(
        refused(pay(0, &who, sig(), None)),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(d.core.pay(PayoutInput {
            currency: "USD".into(),
            ..PayoutInput {
                entitlement_id: e.id.clone(),
                collector_id: who.clone(),
                amount_minor: 100,
                currency: String::new(),
                proof: sig(),
                override_reason: None,
            }
        })),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(pay(
            100,
            &who,
            ProofInput::Signature {
                reference: " ".into()
            },
            None
        )),
        Error::Invalid { .. }
    ));
    assert_eq!(count(&d, "records"), 0, "nothing refused was written");

    // Part now, the rest later; then it is paid.
    let part = e.amount.amount_minor / 3;
    pay(part, &who, sig(), None).unwrap();
    pay(e.amount.amount_minor - part, &who, sig(), None).unwrap();
    assert!(matches!(
        refused(pay(1, &who, sig(), None)),
        Error::AlreadyPaid { .. }
    ));
    // A deliberate second payment is possible, with a reason, and flagged.
    assert!(matches!(
        refused(pay(100, &who, sig(), Some(" "))),
        Error::Invalid { .. }
    ));
    let again = pay(100, &who, sig(), Some("first payout lost in a robbery")).unwrap();
    let detail = d.core.beneficiary(detail.summary.id.clone()).unwrap();
    let flagged = detail
        .payouts
        .iter()
        .find(|p| p.record_id == again)
        .unwrap();
    assert_eq!(
        flagged.override_reason.as_deref(),
        Some("first payout lost in a robbery")
    );

    // Void: with a reason, once; the money counts back into the float.
    let summary = d.core.day_summary(None).unwrap();
    let paid = summary.float[0].paid_out_minor;
    assert!(matches!(
        refused(d.core.void_record(again.clone(), "".into())),
        Error::Invalid { .. }
    ));
    d.core
        .void_record(again.clone(), "paid twice by mistake".into())
        .unwrap();
    assert!(matches!(
        refused(d.core.void_record(again.clone(), "again".into())),
        Error::AlreadyRecorded { .. }
    ));
    let summary = d.core.day_summary(None).unwrap();
    assert_eq!(summary.float[0].paid_out_minor, paid - 100);
    assert_eq!(
        summary.float[0].in_hand_minor,
        10_000_000 - e.amount.amount_minor
    );
    assert_eq!(summary.payouts, 2);
}

#[test]
fn a_beneficiary_who_is_not_active_is_not_paid() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.cash(10_000_000);
    let (e, detail) = d.payable();
    let (status, body) = server.api(
        "sup.north1",
        "POST",
        &format!("/api/v1/beneficiaries/{}/status", detail.summary.id),
        serde_json::json!({"status": "SUSPENDED", "reason": "moved away"}),
    );
    // An office status change waits for four eyes: another supervisor approves its task.
    assert_eq!(status, 202, "{body}");
    let (status, body) = server.api(
        "sup.north2",
        "POST",
        &format!("/api/v1/tasks/{}/decision", body["id"].as_str().unwrap()),
        serde_json::json!({"verdict": "APPROVE"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "APPROVED");
    d.core.sync(None).unwrap();
    assert!(matches!(
        refused(d.pay(&e, &collector(&detail))),
        Error::NotActive { status } if status == "SUSPENDED"
    ));
    // Nor is it in the day's list any more.
    let due = d.core.due(Some(demo_day()), 1000).unwrap();
    assert!(due.iter().all(|x| x.beneficiary.id != detail.summary.id));
}

#[test]
fn cards_are_verified_offline() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.cash(10_000_000);
    let (e, detail) = d.payable();
    let (e2, other) = d.payable_nth(1);
    let qr = server.card(&detail.summary.id, None);
    let other_qr = server.card(&other.summary.id, None);
    d.core.sync(None).unwrap();
    let programme_key: Vec<u8> = d.core.with_connection(|c| {
        c.query_row("SELECT programme_key FROM enrolments", [], |r| r.get(0))
            .unwrap()
    });
    let holder = |qr: &str| {
        outpost_proto::auth::Card::verify(qr, &programme_key)
            .unwrap()
            .holder_id
            .to_string()
    };
    let pay = |e: &EntitlementView, collector: String, text: String| {
        d.core.pay(PayoutInput {
            entitlement_id: e.id.clone(),
            collector_id: collector,
            amount_minor: e.remaining_minor,
            currency: "MWK".into(),
            proof: ProofInput::Card { text },
            override_reason: None,
        })
    };
    // Forged: one character of the signature changed.
    let mut forged = qr.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(matches!(
        refused(pay(&e, holder(&qr), forged)),
        Error::CardRefused { .. }
    ));
    assert!(matches!(
        refused(pay(&e, holder(&qr), "not a card".into())),
        Error::CardRefused { .. }
    ));
    // Another beneficiary's card.
    assert!(matches!(
        refused(pay(&e, holder(&qr), other_qr.clone())),
        Error::CardRefused { .. }
    ));
    // Revoked: the card is reissued at the office; the old one is refused after a sync.
    let reissued = server.card(&other.summary.id, None);
    d.core.sync(None).unwrap();
    match refused(pay(&e2, holder(&other_qr), other_qr.clone())) {
        Error::CardRefused { reason } => assert!(reason.contains("revoked"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Valid cards pay, and the payout records the card's serial.
    let id = pay(&e, holder(&qr), qr.clone()).unwrap();
    pay(&e2, holder(&reissued), reissued).unwrap();
    let detail = d.core.beneficiary(detail.summary.id.clone()).unwrap();
    let p = detail.payouts.iter().find(|p| p.record_id == id).unwrap();
    assert!(p.proof.starts_with("CARD "), "{}", p.proof);
    // The agent's PIN as witness is checked too.
    let (e3, third) = d.payable_nth(2);
    let witness = |pin: &str| {
        d.core.pay(PayoutInput {
            entitlement_id: e3.id.clone(),
            collector_id: collector(&third),
            amount_minor: 100,
            currency: "MWK".into(),
            proof: ProofInput::AgentPin { pin: pin.into() },
            override_reason: None,
        })
    };
    assert!(matches!(refused(witness("1357")), Error::WrongPin { .. }));
    witness(PIN).unwrap();
}

#[test]
fn goods_are_handed_out_against_entitlements_and_stock() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let due = d.core.due(Some(demo_day()), 1000).unwrap();
    let kit = due
        .iter()
        .find(|x| !x.entitlement.goods.is_empty())
        .expect("a food kit entitlement");
    let detail = d.core.beneficiary(kit.beneficiary.id.clone()).unwrap();
    let give = |items: Vec<(&str, i64)>| {
        d.core.distribute(DistributionInput {
            entitlement_id: kit.entitlement.id.clone(),
            collector_id: collector(&detail),
            items: items
                .into_iter()
                .map(|(c, q)| ItemQuantity {
                    item_code: c.into(),
                    quantity: q,
                })
                .collect(),
        })
    };
    assert!(matches!(
        refused(give(vec![("MAIZE-25KG", 1)])),
        Error::OutOfStock { in_hand: 0, .. }
    ));
    d.core
        .record_stock(true, "MAIZE-25KG".into(), 10, "from the warehouse".into())
        .unwrap();
    d.core
        .record_stock(true, "SOAP-KIT".into(), 1, "".into())
        .unwrap();
    assert!(matches!(
        refused(d.core.record_stock(true, "CEMENT".into(), 1, "".into())),
        Error::NotSyncedYet { .. }
    ));
    assert!(matches!(
        refused(give(vec![("MAIZE-25KG", 2)])),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(give(vec![("CEMENT", 1)])),
        Error::Invalid { .. }
    ));
    assert!(matches!(refused(give(vec![])), Error::Invalid { .. }));
    let id = give(vec![("MAIZE-25KG", 1), ("SOAP-KIT", 1)]).unwrap();
    assert!(matches!(
        refused(give(vec![("MAIZE-25KG", 1)])),
        Error::AlreadyRecorded { .. }
    ));
    let stock = d.core.day_summary(None).unwrap().stock;
    let maize = stock.iter().find(|s| s.item_code == "MAIZE-25KG").unwrap();
    assert_eq!(
        (maize.received, maize.handed_out, maize.in_hand),
        (10, 1, 9)
    );
    // A void puts the goods back in stock and the entitlement back in the list.
    d.core.void_record(id, "wrong household".into()).unwrap();
    let stock = d.core.day_summary(None).unwrap().stock;
    assert_eq!(
        stock
            .iter()
            .find(|s| s.item_code == "SOAP-KIT")
            .unwrap()
            .in_hand,
        1
    );
    // Handing back more than held is refused.
    assert!(matches!(
        refused(d.core.record_stock(false, "SOAP-KIT".into(), 2, "".into())),
        Error::OutOfStock { .. }
    ));
}

#[test]
fn timesheets_verifications_grievances_and_contacts() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    // Timesheets: one entry per worker per day.
    let project = d.core.projects().unwrap().pop().expect("the road project");
    let worker: uuid::Uuid = d.core.with_connection(|c| {
        c.query_row(
            "SELECT b.id FROM beneficiaries b JOIN projects p ON p.plan_id = b.plan_id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    let worker = worker.to_string();
    let sheet = |date: &str, days: i64| {
        d.core.record_timesheet(TimesheetInput {
            project_id: project.id.clone(),
            worker_id: worker.clone(),
            work_date: date.into(),
            day_hundredths: days,
        })
    };
    // Two past days the demo's own timesheets (from its cycle's first day on) never take: the
    // last two of the month before (the device refuses only days to come).
    let first = chrono::Datelike::with_day(&demo_date(), 1).unwrap();
    let (early, late) = (
        (first - chrono::Days::new(2)).to_string(),
        (first - chrono::Days::new(1)).to_string(),
    );
    sheet(&early, 100).unwrap();
    assert!(matches!(
        refused(sheet(&early, 50)),
        Error::AlreadyRecorded { .. }
    ));
    assert!(matches!(refused(sheet(&late, 0)), Error::Invalid { .. }));
    assert!(matches!(
        refused(sheet("2026-13-01", 50)),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(sheet("2999-01-01", 50)),
        Error::Invalid { .. }
    ));
    let half = sheet(&late, 50).unwrap();
    d.core.void_record(half, "wrong worker".into()).unwrap();
    sheet(&late, 100).expect("a voided day can be recorded again");

    // Verification: the plan's questions, checked answers, a proposed status.
    let (_, detail) = d.payable();
    let b = detail.summary.id.clone();
    let questions = d.core.questions(b.clone()).unwrap();
    assert!(
        questions
            .iter()
            .any(|q| q.name == "housing" && q.values.contains(&"RENTED".to_string()))
    );
    let verify = |answers: Vec<(&str, &str)>, propose: Option<&str>| {
        d.core.verify(VerificationInput {
            beneficiary_id: b.clone(),
            answers: answers
                .into_iter()
                .map(|(q, a)| Answer {
                    question: q.into(),
                    answer: a.into(),
                })
                .collect(),
            proposed_status: propose.map(str::to_owned),
            note: String::new(),
        })
    };
    assert!(matches!(
        refused(verify(vec![("housing", "CASTLE")], None)),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(verify(vec![("income", "1")], None)),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(verify(vec![], Some("POTENTIAL"))),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(verify(vec![], None)),
        Error::Invalid { .. }
    ));
    verify(
        vec![("housing", "RENTED"), ("disability", "false")],
        Some("SUSPENDED"),
    )
    .unwrap();

    // Grievances: a known category, status moves that make sense, comments.
    let new = |category: &str, text: &str| {
        d.core.create_grievance(GrievanceInput {
            beneficiary_id: Some(b.clone()),
            category: category.into(),
            description: text.into(),
        })
    };
    assert!(matches!(
        refused(new("NO-SUCH", "x")),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        refused(new("PAYMENT", " ")),
        Error::Invalid { .. }
    ));
    let category = d.core.grievance_categories().unwrap()[0].code.clone();
    let g = new(&category, "the agent came on the wrong day").unwrap();
    d.core
        .comment_grievance(g.clone(), "called the household".into())
        .unwrap();
    d.core
        .set_grievance_status(g.clone(), "IN_PROGRESS".into(), Some("agent.n-mz".into()))
        .unwrap();
    assert!(matches!(
        refused(
            d.core
                .set_grievance_status(g.clone(), "CLOSED".into(), None)
        ),
        Error::Invalid { .. }
    ));
    // Beyond the bounds the server enforces, nothing is kept: a description or a comment
    // too long for one record.
    let long = "x".repeat(outpost_proto::records::bounds::MAX_TEXT_CHARS + 1);
    let e = refused(new(&category, &long));
    assert!(
        matches!(&e, Error::RecordTooLarge { reason } if reason.contains("`description` is 4001 characters")),
        "{e}"
    );
    let long = "x".repeat(outpost_proto::records::bounds::MAX_COMMENT_CHARS + 1);
    let e = refused(d.core.comment_grievance(g.clone(), long));
    assert!(matches!(&e, Error::RecordTooLarge { .. }), "{e}");
    assert!(
        e.to_string().ends_with("shorten it, or record a new one"),
        "{e}"
    );
    let view = d.core.grievance(g).unwrap();
    assert_eq!(view.status, "IN_PROGRESS");
    assert_eq!(view.assignee.as_deref(), Some("agent.n-mz"));
    assert_eq!(view.comments.len(), 1);

    // Contact updates: a member of the household, a plausible phone number.
    let person = detail.members[0].id.clone();
    let contact = |phone: &str| {
        d.core.update_contact(ContactInput {
            beneficiary_id: b.clone(),
            individual_id: person.clone(),
            phone: Some(phone.into()),
            address: None,
        })
    };
    assert!(matches!(refused(contact("call me")), Error::Invalid { .. }));
    assert!(matches!(refused(contact("")), Error::Invalid { .. }));
    contact("+265 991 234 567").unwrap();

    let summary = d.core.day_summary(None).unwrap();
    assert_eq!((summary.verifications, summary.grievances), (1, 1));
    assert_eq!(summary.timesheets, 3, "three entries, one of them void");

    // All of it goes to the server, accepted.
    let report = d.core.sync(None).unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.accepted, 6);
    assert!(report.status.up_to_date);
}

#[test]
fn a_database_from_a_newer_app_is_refused_untouched_and_reopening_keeps_records() {
    let server = Server::start(30);
    let mut d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.cash(100_000_000);
    let (e, detail) = d.payable();
    d.pay(&e, &collector(&detail)).unwrap();
    let version = outpost_core::store::SCHEMA_VERSION;
    d.core.with_connection(|c| {
        c.pragma_update(None, "user_version", version + 1).unwrap();
    });
    let path = d.db_path();
    assert!(matches!(
        Outpost::open(path.clone(), d.key.clone()),
        Err(Error::Invalid { reason }) if reason.contains("newer app")
    ));
    d.core.with_connection(|c| {
        c.pragma_update(None, "user_version", version).unwrap();
    });
    // Reopened by this app (as after an upgrade that had nothing to migrate), the unsent
    // payout is still there and still pending.
    d.reopen();
    assert_eq!(d.core.sync_status().unwrap().pending, 1);
    assert_eq!(count(&d, "payouts"), 1);
}
