//! Money a device reports, against a real server on a loopback port: amounts beyond any
//! plausible payment are refused as malformed, amounts the entitlement does not match are
//! kept and flagged, and no total, however large the stored amounts, stops a page.
//! Also who signs a grievance comment: the device's agent, never the text the device wrote.

use automerge::transaction::Transactable;
use chrono::DateTime;
use outpost_proto::{
    Money,
    records::{Comment, Grievance, GrievanceStatus, Payout, Proof, Record},
    wire::{self, DocOutcome, Row, RowKind},
};
use outpost_test_kit::{self as kit, TestServer};
use outpost_tests::device::SimDevice;
use reqwest::Method;
use uuid::Uuid;

const SUP: &str = "sup.north1";
const AGENT: &str = "agent.n-mz";
const AREA: &str = "N-MZ";

/// Two of these overflow an `i64` total (and SQLite's `SUM`).
const HUGE: i64 = 4_700_000_000_000_000_000;

async fn enrolled(server: &TestServer) -> SimDevice {
    let code = server.enrolment_code(SUP, AGENT, AREA).await;
    let mut device = SimDevice::new(server.http.clone(), &server.base);
    device.hello().await;
    device.enrol(&code).await.expect("enrols");
    device.sync_replica(0).await.unwrap();
    device
}

fn id(bytes: &[u8]) -> Uuid {
    Uuid::from_slice(bytes).unwrap()
}

/// Cash entitlements the device holds, each with who may collect it.
fn payable(device: &SimDevice) -> Vec<(wire::Entitlement, Uuid)> {
    device
        .rows(RowKind::Entitlement)
        .filter_map(|r| match r {
            Row::Entitlement(e) if !e.recipient_id.is_empty() && e.amount_minor > 0 => {
                Some((e.clone(), id(&e.recipient_id)))
            }
            _ => None,
        })
        .collect()
}

fn payout(e: &wire::Entitlement, collector: Uuid, minor: i64, currency: &str) -> Record {
    Record::Payout(Payout {
        beneficiary_id: id(&e.beneficiary_id),
        entitlement_id: id(&e.id),
        collector_id: collector,
        amount: Money::new(minor, currency.parse().unwrap()),
        proof: Proof::Pin,
        paid_at: DateTime::parse_from_rfc3339("2026-11-20T10:15:00+01:00").unwrap(),
        override_reason: None,
        void: None,
    })
}

fn count(server: &TestServer, sql: &str) -> i64 {
    server
        .state()
        .store
        .read(|c| Ok(c.sqlite().query_row(sql, [], |r| r.get(0))?))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_amounts_are_refused_and_every_total_still_answers() {
    let server = kit::demo(60).start();
    let mut device = enrolled(&server).await;
    let (e, collector) = payable(&device).remove(0);
    let payroll = id(&e.payroll_id);

    // Two payouts whose sum overflows: each is refused as malformed, with its reason, and
    // kept in quarantine.
    let (_, _, first) = device.new_record(&payout(&e, collector, HUGE, &e.currency));
    let (_, _, second) = device.new_record(&payout(&e, collector, HUGE, &e.currency));
    let reply = device.push(vec![first, second]).await.unwrap();
    for r in &reply.results {
        assert_eq!(r.outcome(), DocOutcome::Rejected);
        assert!(
            r.reason.contains("beyond any plausible payment"),
            "{}",
            r.reason
        );
    }
    assert_eq!(count(&server, "SELECT count(*) FROM payouts"), 0);
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM quarantine WHERE reason LIKE '%beyond any plausible payment%'"
        ),
        2
    );

    let token = server.token(SUP).await;
    let path = format!("/api/v1/payrolls/{payroll}/reconciliation");
    let (status, rec) = server.json(&token, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{rec}");
    assert_eq!(rec["totals"]["paid_minor"], 0);
    let web = server.web_session(SUP).await;
    let (status, _) = web.page("/").await;
    assert_eq!(status, 200, "the dashboard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_stored_before_the_bound_still_reconcile_and_draw() {
    let server = kit::demo(60).start();
    let device = enrolled(&server).await;
    let (e, collector) = payable(&device).remove(0);
    let payroll = id(&e.payroll_id);
    // Amounts accepted before the bound existed (written here as an older server stored
    // them) still reconcile and draw: totals are summed wide, never wrapped or refused.
    server
        .state()
        .store
        .write(|tx| {
            for _ in 0..2 {
                tx.sqlite().execute(
                    "INSERT INTO payouts (doc_id, beneficiary_id, entitlement_id, collector_id, payroll_id,
                         amount_minor, currency, proof, paid_at, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'PIN', ?8, ?8)",
                    rusqlite::params![
                        Uuid::now_v7(),
                        id(&e.beneficiary_id),
                        id(&e.id),
                        collector,
                        payroll,
                        HUGE,
                        e.currency,
                        format!("{}T10:00:00Z", server.day),
                    ],
                )?;
            }
            Ok(())
        })
        .unwrap();
    let token = server.token(SUP).await;
    let path = format!("/api/v1/payrolls/{payroll}/reconciliation");
    let (status, rec) = server.json(&token, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{rec}");
    let paid = rec["totals"]["paid_minor"].to_string();
    assert_eq!(paid, (2 * i128::from(HUGE)).to_string(), "{rec}");
    let web = server.web_session(SUP).await;
    let (status, page) = web.page("/").await;
    assert_eq!(status, 200, "the dashboard: {page}");
    let (status, _) = web
        .page(&format!("/payrolls/{payroll}/reconciliation"))
        .await;
    assert_eq!(status, 200, "the reconciliation page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_above_its_entitlement_or_in_another_currency_is_kept_and_flagged() {
    let server = kit::demo(60).start();
    let mut device = enrolled(&server).await;
    let due = payable(&device);
    let (over, over_collector) = due[0].clone();
    let (other, other_collector) = due
        .iter()
        .find(|(e, _)| e.payroll_id == over.payroll_id && e.id != over.id)
        .cloned()
        .expect("two entitlements in one payroll");
    let foreign = if other.currency == "USD" {
        "EUR"
    } else {
        "USD"
    };
    let (_, _, a) = device.new_record(&payout(
        &over,
        over_collector,
        over.amount_minor + 1,
        &over.currency,
    ));
    let (other_doc, _, b) = device.new_record(&payout(
        &other,
        other_collector,
        other.amount_minor,
        foreign,
    ));
    let reply = device.push(vec![a, b]).await.unwrap();
    for r in &reply.results {
        assert_eq!(r.outcome(), DocOutcome::Accepted, "{}", r.reason);
    }
    assert_eq!(count(&server, "SELECT count(*) FROM payouts"), 2);

    let token = server.token(SUP).await;
    let path = format!("/api/v1/payrolls/{}/reconciliation", id(&over.payroll_id));
    let (status, rec) = server.json(&token, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{rec}");
    let exceptions = rec["exceptions"].as_array().unwrap();
    let find = |kind: &str, subject: String| {
        exceptions
            .iter()
            .find(|x| x["kind"] == kind && x["key"] == format!("{kind}:{subject}"))
            .unwrap_or_else(|| panic!("{kind} for {subject} in {rec}"))
    };
    let overpaid = find("AMOUNT_MISMATCH", id(&over.id).to_string());
    assert_eq!(overpaid["entitlement"], id(&over.id).to_string());
    let foreign_paid = find("CURRENCY_MISMATCH", other_doc.to_string());
    assert!(
        foreign_paid["detail"].as_str().unwrap().contains(foreign),
        "{foreign_paid}"
    );
    let line = rec["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["entitlement"] == id(&over.id).to_string())
        .expect("the overpaid line");
    assert_eq!(line["status"], "OVERPAID");
    assert!(rec["open_exceptions"].as_u64().unwrap() >= 2, "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overpaying_within_the_plans_tolerance_is_no_exception() {
    let server = kit::demo(60).start();
    let mut device = enrolled(&server).await;
    let due = payable(&device);
    let (within, within_collector) = due[0].clone();
    let (beyond, beyond_collector) = due
        .iter()
        .find(|(e, _)| e.payroll_id == within.payroll_id && e.id != within.id)
        .cloned()
        .expect("two entitlements in one payroll");
    let payroll = id(&within.payroll_id);
    // The plan allows 1.00 over (plans are created whole; this one is set as an
    // administrator's plan file would have it).
    server
        .state()
        .store
        .write(|tx| {
            tx.sqlite().execute(
                "UPDATE benefit_plans SET rule = json_set(rule, '$.overpayment_tolerance', 100)
                 WHERE id = (SELECT plan_id FROM payrolls WHERE id = ?1)",
                [payroll],
            )?;
            Ok(())
        })
        .unwrap();
    let (_, _, a) = device.new_record(&payout(
        &within,
        within_collector,
        within.amount_minor + 100,
        &within.currency,
    ));
    let (_, _, b) = device.new_record(&payout(
        &beyond,
        beyond_collector,
        beyond.amount_minor + 101,
        &beyond.currency,
    ));
    let reply = device.push(vec![a, b]).await.unwrap();
    for r in &reply.results {
        assert_eq!(r.outcome(), DocOutcome::Accepted, "{}", r.reason);
    }
    let token = server.token(SUP).await;
    let path = format!("/api/v1/payrolls/{payroll}/reconciliation");
    let (status, rec) = server.json(&token, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{rec}");
    let flagged: Vec<&str> = rec["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "AMOUNT_MISMATCH")
        .map(|x| x["entitlement"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, [id(&beyond.id).to_string()], "{rec}");
    for e in [&within, &beyond] {
        let line = rec["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["entitlement"] == id(&e.id).to_string())
            .unwrap();
        assert_eq!(line["status"], "OVERPAID", "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_record_stored_before_the_bound_is_refused_not_failing_its_batch() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;
    let (e, collector) = payable(&device).remove(0);
    // A payout an older server accepted (stored here as it would have stored it).
    let (doc_id, mut doc, _) = device.new_record(&payout(&e, collector, HUGE, &e.currency));
    let heads: Vec<u8> = doc.get_heads().iter().flat_map(|h| h.0).collect();
    let data = doc.save();
    server
        .state()
        .store
        .write(|tx| {
            tx.sqlite().execute(
                "INSERT INTO documents (id, kind, beneficiary_id, path, data, heads, created_at, updated_at)
                 SELECT ?1, 'payout', ?2, path, ?3, ?4, ?5, ?5 FROM beneficiary_paths WHERE beneficiary_id = ?2",
                rusqlite::params![doc_id, id(&e.beneficiary_id), data, heads, format!("{}T10:00:00Z", server.day)],
            )?;
            Ok(())
        })
        .unwrap();
    let change = |doc: &mut automerge::AutoCommit| wire::DocChanges {
        doc_id: doc_id.as_bytes().to_vec(),
        kind: "payout".into(),
        changes: vec![doc.get_last_local_change().unwrap().raw_bytes().to_vec()],
        device_seq: 0,
    };
    // Any change but a void is refused, in a batch with a good payout that lands.
    let mut edited = doc.fork();
    edited
        .put(automerge::ROOT, "override", "the beneficiary insisted")
        .unwrap();
    edited.commit();
    let (_, _, good) = device.new_record(&payout(&e, collector, e.amount_minor, &e.currency));
    let reply = device.push(vec![change(&mut edited), good]).await.unwrap();
    assert_eq!(reply.results[0].outcome(), DocOutcome::Rejected);
    assert!(
        reply.results[0]
            .reason
            .contains("no longer passes its rules")
            && reply.results[0]
                .reason
                .contains("beyond any plausible payment"),
        "{}",
        reply.results[0].reason
    );
    assert_eq!(
        reply.results[1].outcome(),
        DocOutcome::Accepted,
        "{}",
        reply.results[1].reason
    );
    // The agent voids it: a fact the agent reports, accepted; the payout no longer counts.
    outpost_proto::records::void(
        &mut doc,
        &outpost_proto::records::Void {
            reason: "typed the wrong amount".into(),
            at: DateTime::parse_from_rfc3339("2026-11-20T11:00:00Z").unwrap(),
        },
    )
    .unwrap();
    let reply = device.push(vec![change(&mut doc)]).await.unwrap();
    assert_eq!(
        reply.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        reply.results[0].reason
    );
    assert_eq!(
        count(
            &server,
            &format!(
                "SELECT count(*) FROM payouts WHERE doc_id = x'{}' AND voided_at IS NOT NULL",
                doc_id.simple()
            )
        ),
        1
    );
    // Voided, it stays voided: a change undoing the void is refused like any other.
    let mut unvoided = doc.fork();
    unvoided.delete(automerge::ROOT, "void").unwrap();
    unvoided.commit();
    let reply = device.push(vec![change(&mut unvoided)]).await.unwrap();
    assert_eq!(reply.results[0].outcome(), DocOutcome::Rejected);
}

/// One change of a grievance document, as a device sends it.
fn grievance_change(doc_id: Uuid, changes: Vec<Vec<u8>>) -> wire::DocChanges {
    wire::DocChanges {
        doc_id: doc_id.as_bytes().to_vec(),
        kind: "grievance".into(),
        changes,
        device_seq: 0,
    }
}

/// The server's copy of a document and its comments as the office reads them.
fn held(server: &TestServer, doc_id: Uuid) -> (Vec<u8>, Vec<serde_json::Value>) {
    let data = server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite()
                .query_row("SELECT data FROM documents WHERE id = ?1", [doc_id], |r| {
                    r.get(0)
                })?)
        })
        .unwrap();
    let g = server
        .state()
        .store
        .read(|c| {
            outpost_server::sync::store::records::get_grievance(
                c,
                &outpost_server::registry::store::Scope::National,
                doc_id,
            )
        })
        .unwrap();
    (data, g.comments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_comment_is_signed_by_its_agent_whatever_it_claims() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;
    let (e, _) = payable(&device).remove(0);
    let by = |author: &str, text: &str, minute: u32| Comment {
        author: author.into(),
        at: DateTime::parse_from_rfc3339(&format!("2026-11-20T10:{minute:02}:00Z")).unwrap(),
        text: text.into(),
    };
    let claim = |text: &str, minute: u32| by(AGENT, text, minute);
    let grievance = |comments: Vec<Comment>| {
        Record::Grievance(Grievance {
            beneficiary_id: Some(id(&e.beneficiary_id)),
            category: "WRONG_AMOUNT".into(),
            description: "Le montant est faux".into(),
            status: GrievanceStatus::Open,
            assignee: None,
            comments,
            created_at: DateTime::parse_from_rfc3339("2026-11-20T10:15:00Z").unwrap(),
        })
    };
    // A new grievance whose comment claims another author is refused whole.
    let (forged_id, _, dc) = device.new_record(&grievance(vec![by(
        "the supervisor",
        "Approved, paid again",
        16,
    )]));
    let r = device.push(vec![dc]).await.unwrap();
    assert_eq!(r.results[0].outcome(), DocOutcome::Rejected);
    assert!(
        r.results[0]
            .reason
            .contains("signed `the supervisor` but was sent by `agent.n-mz`"),
        "{}",
        r.results[0].reason
    );
    assert_eq!(
        count(
            &server,
            &format!(
                "SELECT count(*) FROM documents WHERE id = x'{}'",
                forged_id.simple()
            )
        ),
        0
    );

    let (doc_id, mut doc, dc) =
        device.new_record(&grievance(vec![claim("Approved, paid again", 16)]));
    let r = device.push(vec![dc]).await.unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        r.results[0].reason
    );

    let web = server.web_session(SUP).await;
    let path = format!("/grievances/{doc_id}");
    let (status, page) = web.page(&path).await;
    assert_eq!(status, 200);
    let csrf = kit::csrf_of(&page);
    assert!(
        page.contains(&format!("<strong>{AGENT}</strong>")),
        "{page}"
    );
    assert!(!page.contains("<strong>the supervisor</strong>"), "{page}");

    // The supervisor answers on the web: signed by the staff user.
    let r = web
        .post_form(
            &format!("/grievances/{doc_id}/comment"),
            &format!("text=On+regarde&_csrf={csrf}"),
        )
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());

    // The device receives the supervisor's comment.
    for dc in device.pull_changes().await.unwrap() {
        if dc.doc_id == doc_id.as_bytes() {
            for c in dc.changes {
                doc.apply_changes([automerge::Change::from_bytes(c).unwrap()])
                    .unwrap();
            }
        }
    }
    let before = held(&server, doc_id);
    let comments = outpost_proto::records::read_comments(&doc).unwrap();
    let (sup_comment, original) = comments
        .iter()
        .find(|(_, c)| c.text == "On regarde")
        .cloned()
        .expect("the supervisor's comment reached the device");
    assert_eq!(original.author, SUP);

    // It rewrites the supervisor's comment in place and adds a copy of the original: refused,
    // and the server's copy is as it was.
    let mut forged = doc.fork();
    let heads = forged.get_heads();
    forged
        .put(&sup_comment, "text", "Closed, nothing owed")
        .unwrap();
    forged.commit();
    outpost_proto::records::add_comment(&mut forged, &original).unwrap();
    let changes = forged
        .get_changes(&heads)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let r = device
        .push(vec![grievance_change(doc_id, changes)])
        .await
        .unwrap();
    assert_eq!(r.results[0].outcome(), DocOutcome::Rejected);
    assert!(
        r.results[0]
            .reason
            .contains("was already recorded and cannot be changed"),
        "{}",
        r.results[0].reason
    );
    assert_eq!(held(&server, doc_id), before);

    // A new comment signed as the supervisor: refused too.
    let mut claimed = doc.fork();
    outpost_proto::records::add_comment(&mut claimed, &by(SUP, "Closed, nothing owed", 30))
        .unwrap();
    let r = device
        .push(vec![grievance_change(
            doc_id,
            vec![
                claimed
                    .get_last_local_change()
                    .unwrap()
                    .raw_bytes()
                    .to_vec(),
            ],
        )])
        .await
        .unwrap();
    assert_eq!(r.results[0].outcome(), DocOutcome::Rejected);
    assert!(
        r.results[0]
            .reason
            .contains("signed `sup.north1` but was sent by `agent.n-mz`"),
        "{}",
        r.results[0].reason
    );
    assert_eq!(held(&server, doc_id), before);

    // The device adds a comment of its own: signed by its agent, and the supervisor's comment
    // keeps its signer.
    outpost_proto::records::add_comment(&mut doc, &claim("Closed, nothing owed", 30)).unwrap();
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let r = device
        .push(vec![wire::DocChanges {
            doc_id: doc_id.as_bytes().to_vec(),
            kind: "grievance".into(),
            changes: vec![change],
            device_seq: 0,
        }])
        .await
        .unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        r.results[0].reason
    );
    let g = server
        .state()
        .store
        .read(|c| {
            outpost_server::sync::store::records::get_grievance(
                c,
                &outpost_server::registry::store::Scope::National,
                doc_id,
            )
        })
        .unwrap();
    let signed: Vec<(&str, &str)> = g
        .comments
        .iter()
        .map(|c| (c["by"].as_str().unwrap(), c["text"].as_str().unwrap()))
        .collect();
    assert_eq!(signed.len(), 3, "{signed:?}");
    assert!(
        signed.contains(&(AGENT, "Approved, paid again")),
        "{signed:?}"
    );
    assert!(signed.contains(&(SUP, "On regarde")), "{signed:?}");
    assert!(
        signed.contains(&(AGENT, "Closed, nothing owed")),
        "{signed:?}"
    );
    let (_, page) = web.page(&path).await;
    assert!(!page.contains("<strong>the supervisor</strong>"), "{page}");

    // Comments an older server materialised carry no id: they keep the signer they had.
    server
        .state()
        .store
        .write(|tx| {
            tx.sqlite().execute(
                "UPDATE grievances SET comments = (SELECT json_group_array(json_remove(value, '$.id'))
                     FROM json_each(grievances.comments)) WHERE doc_id = ?1",
                [doc_id],
            )?;
            Ok(())
        })
        .unwrap();
    outpost_proto::records::add_comment(&mut doc, &claim("Paid at last", 45)).unwrap();
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let r = device
        .push(vec![wire::DocChanges {
            doc_id: doc_id.as_bytes().to_vec(),
            kind: "grievance".into(),
            changes: vec![change],
            device_seq: 0,
        }])
        .await
        .unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        r.results[0].reason
    );
    let g = server
        .state()
        .store
        .read(|c| {
            outpost_server::sync::store::records::get_grievance(
                c,
                &outpost_server::registry::store::Scope::National,
                doc_id,
            )
        })
        .unwrap();
    let signed: Vec<(&str, &str)> = g
        .comments
        .iter()
        .map(|c| (c["by"].as_str().unwrap(), c["text"].as_str().unwrap()))
        .collect();
    assert_eq!(signed.len(), 4, "{signed:?}");
    assert!(signed.contains(&(SUP, "On regarde")), "{signed:?}");
    assert!(signed.contains(&(AGENT, "Paid at last")), "{signed:?}");
}
