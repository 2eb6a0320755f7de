//! The sync protocol and device trust, against a real server on a loopback port.

use chrono::DateTime;
use outpost_proto::{
    Money,
    auth::Card,
    records::{self, Comment, Grievance, GrievanceStatus, Payout, Proof, Record},
    wire::{self, DocOutcome, ErrorCode, ReplicaRequest, Row, RowKind},
};
use outpost_test_kit::{self as kit, TestServer};
use outpost_tests::device::SimDevice;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

const SUP: &str = "sup.north1";
const AGENT: &str = "agent.n-mz";
const AREA: &str = "N-MZ";

async fn enrolled(server: &TestServer, assignment: &str) -> SimDevice {
    enrolled_as(server, SUP, AGENT, assignment).await
}

/// A device enrolled for `agent` with a code from `supervisor`.
async fn enrolled_as(
    server: &TestServer,
    supervisor: &str,
    agent: &str,
    assignment: &str,
) -> SimDevice {
    let code = server.enrolment_code(supervisor, agent, assignment).await;
    let mut device = SimDevice::new(server.http.clone(), &server.base);
    device.hello().await;
    device.enrol(&code).await.expect("enrols");
    device
}

fn id(bytes: &[u8]) -> Uuid {
    Uuid::from_slice(bytes).unwrap()
}

/// An entitlement the device holds, with its beneficiary and who may collect.
fn payable(device: &SimDevice) -> (wire::Entitlement, Uuid) {
    let e = device
        .rows(RowKind::Entitlement)
        .find_map(|r| match r {
            Row::Entitlement(e) if !e.recipient_id.is_empty() && e.amount_minor > 0 => {
                Some(e.clone())
            }
            _ => None,
        })
        .expect("an approved entitlement in the replica");
    let collector = id(&e.recipient_id);
    (e, collector)
}

fn payout_for(e: &wire::Entitlement, collector: Uuid) -> Record {
    Record::Payout(Payout {
        beneficiary_id: id(&e.beneficiary_id),
        entitlement_id: id(&e.id),
        collector_id: collector,
        amount: Money::new(e.amount_minor, e.currency.parse().unwrap()),
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
async fn enrolment_codes_are_single_use_and_expire() {
    let server = kit::demo(40).start();
    let mut device = SimDevice::new(server.http.clone(), &server.base);
    device.hello().await;

    let wrong = device.enrol("AAAA-BBBB-CCCC").await.unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::EnrolmentCodeInvalid);
    let short_key = prost::Message::encode_to_vec(&wire::EnrolRequest {
        code: "AAAA-BBBB-CCCC".into(),
        public_key: vec![7; 31],
        ..Default::default()
    });
    let r = device
        .raw(wire::path::ENROL, short_key, false, true, |_| {})
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &r.body, false).unwrap();
    assert_eq!((r.status, reply.code()), (400, ErrorCode::Malformed));

    let code = server.enrolment_code(SUP, AGENT, AREA).await;
    let reply = device.enrol(&code).await.expect("first use");
    assert_eq!(reply.agent_username, AGENT);
    assert_eq!(reply.assignment.unwrap().code, AREA);
    assert_eq!(reply.programme_key.len(), 32);

    let mut second = SimDevice::new(server.http.clone(), &server.base);
    let reused = second.enrol(&code).await.unwrap_err();
    assert_eq!(reused.code(), ErrorCode::EnrolmentCodeUsed);
    assert_eq!(reused.status, 410);

    let old = server.enrolment_code(SUP, AGENT, AREA).await;
    server
        .state()
        .store
        .write(|tx| {
            Ok(tx.sqlite().execute(
                "UPDATE enrolment_codes SET expires_at = '2020-01-01T00:00:00Z' WHERE used_at IS NULL",
                [],
            )?)
        })
        .unwrap();
    let expired = second.enrol(&old).await.unwrap_err();
    assert_eq!(expired.code(), ErrorCode::EnrolmentCodeExpired);

    // A supervisor cannot enrol outside their area, nor for an agent whose area it is not.
    let token = server.token(SUP).await;
    let (status, _) = server
        .json(
            &token,
            Method::POST,
            "/api/v1/devices/enrolments",
            Some(json!({"agent": "agent.s-ck", "assignment": "S-CK"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .json(
            &token,
            Method::POST,
            "/api/v1/devices/enrolments",
            Some(json!({"agent": AGENT, "assignment": "N-RU"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_stale_requests_are_refused() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server, AREA).await;
    let body = prost::Message::encode_to_vec(&ReplicaRequest {
        cursor: 0,
        max_bytes: 0,
    });

    // A replay: the same headers and body twice.
    let mut saved = reqwest::header::HeaderMap::new();
    let first = device
        .raw(wire::path::REPLICA, body.clone(), false, true, |h| {
            saved = h.clone()
        })
        .await;
    assert_eq!(first.status, 200);
    let replay = device
        .raw(wire::path::REPLICA, body.clone(), false, false, |h| {
            *h = saved.clone()
        })
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &replay.body, false).unwrap();
    assert_eq!((replay.status, reply.code()), (409, ErrorCode::Replayed));

    // A request signed with another key in this device's name, a garbled signature, and a
    // body swapped under a valid signature.
    let mut stranger = SimDevice::new(server.http.clone(), &server.base);
    stranger.id = device.id;
    let forged = stranger
        .raw(wire::path::REPLICA, body.clone(), false, true, |_| {})
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &forged.body, false).unwrap();
    assert_eq!(
        (forged.status, reply.code()),
        (401, ErrorCode::BadSignature)
    );
    let garbled = device
        .raw(wire::path::REPLICA, body.clone(), false, true, |h| {
            h.insert(wire::header::SIGNATURE, "AAAA".parse().unwrap());
        })
        .await;
    assert_eq!(garbled.status, 401);
    let mut headers = reqwest::header::HeaderMap::new();
    let other_body = prost::Message::encode_to_vec(&ReplicaRequest {
        cursor: 0,
        max_bytes: 9999,
    });
    // Headers signed for this path and `body`, sent with another body: only the body hash
    // differs from a valid request.
    headers.extend(device.headers(wire::path::REPLICA, &body, false, true));
    let tampered = device.send(wire::path::REPLICA, headers, other_body).await;
    let reply: wire::ErrorReply = wire::decode("e", &tampered.body, false).unwrap();
    assert_eq!(
        reply.code(),
        ErrorCode::BadSignature,
        "a body swapped under a signature"
    );

    // A phone three days behind: refused while it does not correct, fine once it does.
    device.clock_error_ms = -3 * 24 * 3600 * 1000;
    device.corrects_clock = false;
    let stale = device
        .raw(wire::path::REPLICA, body.clone(), false, true, |_| {})
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &stale.body, false).unwrap();
    assert_eq!((stale.status, reply.code()), (401, ErrorCode::ClockSkew));
    assert!(reply.server_time_ms > 0);
    device.corrects_clock = true;
    device.offset_ms = 0; // It has not measured yet: the first call fails, learns, retries.
    device
        .sync_replica(0)
        .await
        .expect("a corrected clock syncs");
    assert!(
        (device.offset_ms - 3 * 24 * 3600 * 1000).abs() < 60_000,
        "{}",
        device.offset_ms
    );

    // Unknown device.
    let mut unknown = SimDevice::new(server.http.clone(), &server.base);
    unknown.id = Some(Uuid::now_v7());
    let r = unknown.sync_replica(0).await.unwrap_err();
    assert_eq!((r.status, r.code()), (401, ErrorCode::UnknownDevice));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_versions_get_clear_codes() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server, AREA).await;

    let v = device
        .raw(wire::path::REPLICA, vec![], false, true, |h| {
            h.insert(wire::header::PROTOCOL, "99".parse().unwrap());
        })
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &v.body, false).unwrap();
    assert_eq!(reply.code(), ErrorCode::UnsupportedProtocol);
    assert_eq!(reply.supported, vec![1]);
    assert!(
        reply.message.contains("update the app"),
        "{}",
        reply.message
    );

    let garbage = device
        .raw(
            wire::path::PUSH,
            vec![0xff, 0xff, 0xff, 0x0f],
            false,
            true,
            |_| {},
        )
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &garbage.body, false).unwrap();
    assert_eq!((garbage.status, reply.code()), (400, ErrorCode::Malformed));
    let bad_zstd = device
        .raw(wire::path::PUSH, b"nope".to_vec(), true, true, |_| {})
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &bad_zstd.body, false).unwrap();
    assert_eq!(reply.code(), ErrorCode::Malformed);

    let huge = device
        .raw(
            wire::path::PUSH,
            vec![0u8; 9 * 1024 * 1024],
            false,
            true,
            |_| {},
        )
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &huge.body, false).unwrap();
    assert_eq!((huge.status, reply.code()), (413, ErrorCode::BodyTooLarge));

    let docs = (0..2001)
        .map(|i| wire::DocChanges {
            doc_id: vec![i as u8; 16],
            kind: "payout".into(),
            changes: vec![],
            device_seq: 0,
        })
        .collect();
    let r = device.push(docs).await.unwrap_err();
    assert_eq!((r.status, r.code()), (413, ErrorCode::BatchTooLarge));

    let missing = device
        .raw("/sync/v1/nothing", vec![], false, true, |_| {})
        .await;
    let reply: wire::ErrorReply = wire::decode("e", &missing.body, false).unwrap();
    assert_eq!((missing.status, reply.code()), (404, ErrorCode::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_holds_only_the_assignment_and_resumes_from_any_page() {
    let server = kit::demo(120).start();
    let mut whole = enrolled(&server, AREA).await;
    let pages = whole.sync_replica(0).await.unwrap();
    assert_eq!(pages, 1);
    let persons: Vec<_> = whole
        .rows(RowKind::Person)
        .map(|r| match r {
            Row::Person(p) => p.location_code.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert!(!persons.is_empty());
    assert!(
        persons.iter().all(|c| c.starts_with("N-MZ-")),
        "{persons:?}"
    );
    assert!(
        whole.rows(RowKind::Entitlement).count() > 0,
        "approved entitlements arrive"
    );
    assert!(whole.rows(RowKind::Plan).count() >= 4);
    assert!(whole.rows(RowKind::GrievanceCategory).count() >= 6);
    let locations: Vec<String> = whole
        .rows(RowKind::Location)
        .map(|r| match r {
            Row::Location(l) => l.code.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert!(
        locations.contains(&"N".to_string()),
        "ancestors come too: {locations:?}"
    );
    assert!(
        !locations
            .iter()
            .any(|c| c.starts_with("S") || c.starts_with("N-RU"))
    );

    // Small pages, and a device that loses its place mid-way and starts again from an older
    // cursor: the same replica.
    let mut paged = enrolled(&server, AREA).await;
    let mut cursors = vec![];
    loop {
        let page = paged.replica_page(4096).await.unwrap();
        cursors.push(page.next_cursor);
        if !page.more {
            break;
        }
    }
    assert!(cursors.len() > 3, "{} pages", cursors.len());
    assert_eq!(paged.replica, whole.replica);
    // A device that stops half-way and resumes from an older page than its last one.
    let mut resumed = enrolled(&server, AREA).await;
    for _ in 0..cursors.len() / 2 {
        resumed.replica_page(4096).await.unwrap();
    }
    assert!(resumed.replica.len() < whole.replica.len());
    resumed.replica_cursor = cursors[cursors.len() / 4];
    resumed.sync_replica(4096).await.unwrap();
    assert_eq!(resumed.replica, whole.replica);

    // Nothing new: an empty page; a cursor from the future is refused.
    let page: wire::ReplicaPage = whole
        .call(
            wire::path::REPLICA,
            &ReplicaRequest {
                cursor: whole.replica_cursor,
                max_bytes: 0,
            },
        )
        .await
        .unwrap();
    assert!(page.rows.is_empty() && page.tombstones.is_empty() && !page.more);
    let r = whole
        .call::<_, wire::ReplicaPage>(
            wire::path::REPLICA,
            &ReplicaRequest {
                cursor: 1 << 40,
                max_bytes: 0,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(r.code(), ErrorCode::CursorInvalid);
}

/// A first download cut after any page and resumed later, while the registry changed in the
/// meantime (a status changed back and forth, households moved out of the area and back in),
/// ends with exactly the replica a fresh download gives then: compaction drops a row's older
/// log entries, never the row, nor the tombstone of a row that left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_download_cut_after_any_page_and_resumed_equals_a_fresh_one() {
    let server = kit::demo(120).start();
    let mut reference = enrolled(&server, AREA).await;
    let mut pages = 0;
    loop {
        pages += 1;
        if !reference.replica_page(4096).await.unwrap().more {
            break;
        }
    }
    assert!(pages > 3, "{pages} pages");
    let households: Vec<Vec<u8>> = reference
        .rows(RowKind::Household)
        .filter_map(|r| match r {
            Row::Household(h) => Some(h.id.clone()),
            _ => None,
        })
        .collect();
    let beneficiaries: Vec<Vec<u8>> = reference
        .rows(RowKind::Beneficiary)
        .filter_map(|r| match r {
            Row::Beneficiary(b) if b.status == "ACTIVE" => Some(b.id.clone()),
            _ => None,
        })
        .collect();
    // Moves a household (and its people) to a village in N-RU, or back to N-MZ-01.
    let move_household = |household: &[u8], to: &str| {
        server
            .state()
            .store
            .write(|tx| {
                tx.sqlite().execute(
                    "UPDATE groups SET location_id = (SELECT id FROM locations WHERE code = ?2) WHERE id = ?1",
                    rusqlite::params![household, to],
                )?;
                tx.sqlite().execute(
                    "UPDATE individuals SET location_id = (SELECT id FROM locations WHERE code = ?2)
                     WHERE id IN (SELECT individual_id FROM group_members WHERE group_id = ?1)",
                    rusqlite::params![household, to],
                )?;
                Ok(())
            })
            .unwrap();
    };
    for cut in 1..pages {
        let mut device = enrolled(&server, AREA).await;
        for _ in 0..cut {
            device.replica_page(4096).await.unwrap();
        }
        // While it is away: one household leaves, the one that left last time comes back,
        // and a beneficiary is suspended, made active and suspended again.
        let leaving = &households[cut % households.len()];
        move_household(leaving, "N-RU-01");
        if cut > 1 {
            move_household(&households[(cut - 1) % households.len()], "N-MZ-01");
        }
        let b = &beneficiaries[cut % beneficiaries.len()];
        for status in ["SUSPENDED", "ACTIVE", "SUSPENDED"] {
            server
                .state()
                .store
                .write(|tx| {
                    tx.sqlite().execute(
                        "UPDATE beneficiaries SET status = ?2 WHERE id = ?1",
                        rusqlite::params![b, status],
                    )?;
                    Ok(())
                })
                .unwrap();
        }
        device.sync_replica(4096).await.unwrap();
        let mut fresh = enrolled(&server, AREA).await;
        fresh.sync_replica(0).await.unwrap();
        assert_eq!(device.replica, fresh.replica, "cut after page {cut}");
        assert!(
            !device
                .replica
                .contains_key(&(RowKind::Household as i32, leaving.clone())),
            "the household that left is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_household_that_moves_away_is_tombstoned_and_appears_where_it_went() {
    let server = kit::demo(80).start();
    let mut north = enrolled(&server, "N-MZ-01").await;
    north.sync_replica(0).await.unwrap();
    let mut ru = enrolled_as(&server, SUP, "agent.n-ru", "N-RU").await;
    ru.sync_replica(0).await.unwrap();

    let household = north
        .rows(RowKind::Household)
        .find_map(|r| match r {
            Row::Household(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    let members: Vec<Vec<u8>> = north
        .rows(RowKind::Person)
        .filter_map(|r| match r {
            Row::Person(p) if p.household_id == household.id => Some(p.id.clone()),
            _ => None,
        })
        .collect();
    // The north device has a grievance about the household, with a later comment.
    let beneficiary = north
        .rows(RowKind::Beneficiary)
        .find_map(|r| match r {
            Row::Beneficiary(b) if b.household_id == household.id => Some(id(&b.id)),
            _ => None,
        })
        .unwrap();
    let (_, mut doc, dc) = north.new_record(&open_grievance(
        Some(beneficiary),
        "OTHER",
        "Moving to Rufisque",
    ));
    records::add_comment(
        &mut doc,
        &Comment {
            author: AGENT.into(),
            at: DateTime::parse_from_rfc3339("2026-11-20T11:00:00Z").unwrap(),
            text: "Address to update".into(),
        },
    )
    .unwrap();
    let all: Vec<Vec<u8>> = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let r = north
        .push(vec![wire::DocChanges { changes: all, ..dc }])
        .await
        .unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        r.results[0].reason
    );
    assert!(
        ru.pull_changes().await.unwrap().is_empty(),
        "not yet in N-RU's area"
    );

    // The household (and its people) move to a village in N-RU, as a re-import would do.
    server
        .state()
        .store
        .write(|tx| {
            tx.sqlite().execute(
                "UPDATE groups SET location_id = (SELECT id FROM locations WHERE code = 'N-RU-01') WHERE id = ?1",
                [&household.id],
            )?;
            tx.sqlite().execute(
                "UPDATE individuals SET location_id = (SELECT id FROM locations WHERE code = 'N-RU-01')
                 WHERE id IN (SELECT individual_id FROM group_members WHERE group_id = ?1)",
                [&household.id],
            )?;
            Ok(())
        })
        .unwrap();
    let before = north.replica.len();
    north.sync_replica(0).await.unwrap();
    assert!(
        !north
            .replica
            .contains_key(&(RowKind::Household as i32, household.id.clone()))
    );
    for m in &members {
        assert!(
            !north
                .replica
                .contains_key(&(RowKind::Person as i32, m.clone()))
        );
    }
    assert!(north.rows(RowKind::Beneficiary).all(|r| match r {
        Row::Beneficiary(b) => b.household_id != household.id,
        _ => true,
    }));
    assert!(north.replica.len() < before);

    ru.sync_replica(0).await.unwrap();
    assert!(
        ru.replica
            .contains_key(&(RowKind::Household as i32, household.id.clone()))
    );
    for m in &members {
        assert!(
            ru.replica
                .contains_key(&(RowKind::Person as i32, m.clone()))
        );
    }

    // The household's records moved with it: the new area's device receives their whole
    // history, in an order it can apply.
    let ru_changes = ru.pull_changes().await.unwrap();
    assert_eq!(ru_changes.len(), 1, "the grievance, with both its changes");
    let mut copy = automerge::AutoCommit::new();
    copy.apply_changes(
        ru_changes[0]
            .changes
            .iter()
            .map(|c| automerge::Change::from_bytes(c.clone()).unwrap()),
    )
    .unwrap();
    assert!(copy.get_missing_deps(&[]).is_empty());
    let Record::Grievance(g) = Record::read(&copy).unwrap() else {
        panic!("a grievance")
    };
    assert_eq!(g.comments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_merge_once_whatever_the_network_does() {
    let server = kit::demo(80).start();
    let mut device = enrolled(&server, AREA).await;
    device.sync_replica(0).await.unwrap();
    let (e, collector) = payable(&device);

    let (_, mut doc, first) = device.new_record(&payout_for(&e, collector));
    let reply = device.push(vec![first.clone()]).await.unwrap();
    assert_eq!(
        reply.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        reply.results[0].reason
    );
    let heads = reply.results[0].heads.clone();
    assert_eq!(heads.len(), 1);

    // The answer was lost; the device sends the batch again: nothing is duplicated.
    let again = device.push(vec![first.clone()]).await.unwrap();
    assert_eq!(again.results[0].outcome(), DocOutcome::Accepted);
    assert_eq!(again.results[0].heads, heads);
    assert_eq!(count(&server, "SELECT count(*) FROM payouts"), 1);
    assert_eq!(count(&server, "SELECT count(*) FROM doc_changes"), 1);

    // A void arrives before the payout it voids (another record): the server asks for the
    // missing change and stores nothing; in order, both merge.
    let (_, mut doc2, second_payout) = {
        let (e2, c2) = device
            .rows(RowKind::Entitlement)
            .find_map(|r| match r {
                Row::Entitlement(x)
                    if x.id != e.id && !x.recipient_id.is_empty() && x.amount_minor > 0 =>
                {
                    Some((x.clone(), id(&x.recipient_id)))
                }
                _ => None,
            })
            .unwrap();
        device.new_record(&payout_for(&e2, c2))
    };
    records::void(
        &mut doc2,
        &records::Void {
            reason: "paid the wrong person".into(),
            at: DateTime::parse_from_rfc3339("2026-11-20T10:20:00+01:00").unwrap(),
        },
    )
    .unwrap();
    let all = doc2.get_changes(&[]);
    let void_only = wire::DocChanges {
        changes: vec![all[1].raw_bytes().to_vec()],
        ..second_payout.clone()
    };
    let early = device.push(vec![void_only.clone()]).await.unwrap();
    assert_eq!(early.results[0].outcome(), DocOutcome::MissingDeps);
    assert!(early.results[0].heads.is_empty());
    let in_order = device
        .push(vec![second_payout.clone(), void_only])
        .await
        .unwrap();
    assert!(
        in_order
            .results
            .iter()
            .all(|r| r.outcome() == DocOutcome::Accepted)
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM payouts WHERE voided_at IS NOT NULL"
        ),
        1
    );

    // A change whose bytes were altered (tampered or damaged) is refused and kept aside.
    let mut bytes = first.changes[0].clone();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    let (_, _, mut third) = device.new_record(&payout_for(&e, collector));
    third.changes = vec![bytes];
    let r = device.push(vec![third]).await.unwrap();
    assert_eq!(r.results[0].outcome(), DocOutcome::InvalidChange);

    // Editing a written fact (the amount) is refused; the payout stays as first accepted.
    automerge::transaction::Transactable::put(
        &mut doc,
        automerge::ROOT,
        "amount",
        e.amount_minor * 10,
    )
    .unwrap();
    doc.commit();
    let edit = doc.get_changes(&[])[1].raw_bytes().to_vec();
    let r = device
        .push(vec![wire::DocChanges {
            changes: vec![edit],
            ..first.clone()
        }])
        .await
        .unwrap();
    assert_eq!(r.results[0].outcome(), DocOutcome::Rejected);
    assert!(
        r.results[0].reason.contains("cannot be changed"),
        "{}",
        r.results[0].reason
    );
    assert_eq!(
        r.results[0].heads, heads,
        "the server keeps the accepted version"
    );
    assert_eq!(
        count(
            &server,
            &format!(
                "SELECT amount_minor FROM payouts WHERE entitlement_id = X'{}'",
                hex(&e.id)
            )
        ),
        e.amount_minor
    );
    assert_eq!(count(&server, "SELECT count(*) FROM quarantine"), 2);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_record_is_quarantined_and_the_rest_of_its_batch_lands() {
    let server = kit::demo(80).start();
    let mut device = enrolled(&server, AREA).await;
    device.sync_replica(0).await.unwrap();
    let (e, collector) = payable(&device);

    let (_, _, good) = device.new_record(&payout_for(&e, collector));
    // A payout collected by someone who is not a recipient of the household.
    let (_, _, wrong_collector) = device.new_record(&payout_for(&e, Uuid::now_v7()));
    // A beneficiary outside the device's assignment (in the south).
    let south: Uuid = server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite().query_row(
                "SELECT beneficiary_id FROM beneficiary_paths WHERE path LIKE 'S/%' LIMIT 1",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    let outside = open_grievance(Some(south), "OTHER", "not mine");
    let (_, _, outside) = device.new_record(&outside);
    let (_, _, unknown_kind) = {
        let (a, b, mut c) = device.new_record(&payout_for(&e, collector));
        c.kind = "bribe".into();
        (a, b, c)
    };
    let reply = device
        .push(vec![wrong_collector, good, outside, unknown_kind])
        .await
        .unwrap();
    let outcomes: Vec<_> = reply.results.iter().map(|r| r.outcome()).collect();
    assert_eq!(
        outcomes,
        [
            DocOutcome::Rejected,
            DocOutcome::Accepted,
            DocOutcome::Rejected,
            DocOutcome::Rejected
        ]
    );
    assert!(
        reply.results[0].reason.contains("may not collect"),
        "{}",
        reply.results[0].reason
    );
    assert!(
        reply.results[2]
            .reason
            .contains("outside this device's assignment"),
        "{}",
        reply.results[2].reason
    );
    assert_eq!(count(&server, "SELECT count(*) FROM payouts"), 1);
    assert_eq!(count(&server, "SELECT count(*) FROM grievances"), 0);

    let token = server.token(SUP).await;
    let (status, list) = server
        .json(&token, Method::GET, "/api/v1/quarantine", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");

    let (_, devices) = server
        .json(&token, Method::GET, "/api/v1/devices", None)
        .await;
    let d = &devices.as_array().unwrap()[0];
    assert_eq!(d["records_received"], 4);
    assert_eq!(
        d["records_quarantined"], 3,
        "numbers 1, 3, 4 were refused: {d}"
    );
    assert_eq!(d["records_missing"], 0, "{d}");

    // Record 10 arrives while 5 to 9 never did: the server can say which are missing.
    let (_, _, mut tenth) = device.new_record(&payout_for(&e, collector));
    tenth.device_seq = 10;
    let r = device.push(vec![tenth]).await.unwrap();
    assert_eq!(r.results[0].outcome(), DocOutcome::Accepted);
    let (_, devices) = server
        .json(&token, Method::GET, "/api/v1/devices", None)
        .await;
    assert_eq!(devices[0]["records_missing"], 5, "{devices}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_elsewhere_reach_the_devices_that_follow_them() {
    let server = kit::demo(60).start();
    let mut a = enrolled(&server, AREA).await;
    let mut b = enrolled(&server, AREA).await;
    let mut south = enrolled_as(&server, "sup.south1", "agent.s-ck", "S-CK").await;
    a.sync_replica(0).await.unwrap();
    let (e, _) = payable(&a);
    let grievance = open_grievance(
        Some(id(&e.beneficiary_id)),
        "WRONG_AMOUNT",
        "Le montant est faux",
    );
    let (doc_id, mut doc, dc) = a.new_record(&grievance);
    assert_eq!(
        a.push(vec![dc]).await.unwrap().results[0].outcome(),
        DocOutcome::Accepted
    );

    // B, in the same assignment, receives it; A does not get its own change back; the south
    // device sees nothing.
    let got = b.pull_changes().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(id(&got[0].doc_id), doc_id);
    let mut copy = automerge::AutoCommit::new();
    copy.apply_changes(
        got[0]
            .changes
            .iter()
            .map(|c| automerge::Change::from_bytes(c.clone()).unwrap()),
    )
    .unwrap();
    assert_eq!(Record::read(&copy).unwrap(), grievance);
    assert!(a.pull_changes().await.unwrap().is_empty());
    assert!(south.pull_changes().await.unwrap().is_empty());
    // A cursor the server never handed out (a server restored from an older backup).
    let saved = south.changes_cursor;
    south.changes_cursor = 1 << 40;
    let r = south.pull_changes().await.unwrap_err();
    assert_eq!(r.code(), ErrorCode::CursorInvalid);
    south.changes_cursor = saved;

    // B comments while A moves the status on; both merge at the server and reach the other.
    records::add_comment(
        &mut copy,
        &Comment {
            author: AGENT.into(),
            at: DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z").unwrap(),
            text: "Vu avec le ménage".into(),
        },
    )
    .unwrap();
    let b_change = copy.get_last_local_change().unwrap().raw_bytes().to_vec();
    records::set_grievance_status(&mut doc, GrievanceStatus::InProgress, Some(SUP)).unwrap();
    let a_change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let kind = "grievance".to_string();
    for (device, change) in [(&mut b, b_change), (&mut a, a_change)] {
        let r = device
            .push(vec![wire::DocChanges {
                doc_id: doc_id.as_bytes().to_vec(),
                kind: kind.clone(),
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
    }
    let (status, comments): (String, String) = server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite()
                .query_row("SELECT status, comments FROM grievances", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?)
        })
        .unwrap();
    assert_eq!(status, "IN_PROGRESS");
    assert!(comments.contains("Vu avec le ménage"));
    assert_eq!(
        a.pull_changes().await.unwrap().len(),
        1,
        "A receives B's comment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_refused_and_told_to_wipe() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server, AREA).await;
    device.sync_replica(0).await.unwrap();
    let token = server.token(SUP).await;
    let device_id = device.id.unwrap();

    let (status, _) = server
        .json(
            &token,
            Method::POST,
            &format!("/api/v1/devices/{device_id}/revoke"),
            Some(json!({"reason": ""})),
        )
        .await;
    assert_eq!(status, 422, "a reason is required");
    let south = server.token("sup.south1").await;
    let (status, _) = server
        .json(
            &south,
            Method::POST,
            &format!("/api/v1/devices/{device_id}/revoke"),
            Some(json!({"reason": "lost"})),
        )
        .await;
    assert_eq!(status, 404, "not a device the south supervisor can see");
    let (status, _) = server
        .json(
            &token,
            Method::POST,
            &format!("/api/v1/devices/{device_id}/revoke"),
            Some(json!({"reason": "phone stolen"})),
        )
        .await;
    assert_eq!(status, 200);

    let r = device.sync_replica(0).await.unwrap_err();
    assert_eq!((r.status, r.code()), (403, ErrorCode::DeviceRevoked));
    assert!(r.reply.wipe);
    let (_, list) = server
        .json(&token, Method::GET, "/api/v1/devices", None)
        .await;
    assert_eq!(list[0]["revoke_reason"], "phone stolen");
    let admin = server.token("admin").await;
    let (_, audit) = server
        .json(&admin, Method::GET, "/api/v1/audit?limit=5", None)
        .await;
    assert!(audit.to_string().contains("revoke"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_verify_offline_and_a_reissue_revokes_the_old_serial() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server, AREA).await;
    device.sync_replica(0).await.unwrap();
    let beneficiary = device
        .rows(RowKind::Beneficiary)
        .find_map(|r| match r {
            Row::Beneficiary(b) => Some(id(&b.id)),
            _ => None,
        })
        .unwrap();
    let token = server.token(SUP).await;
    let (status, first) = server
        .json(
            &token,
            Method::POST,
            "/api/v1/cards",
            Some(json!({"beneficiary_id": beneficiary})),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    let card =
        Card::verify(first["qr"].as_str().unwrap(), &device.programme_key).expect("a genuine card");
    assert_eq!(card.beneficiary_id, beneficiary);
    // A card only goes to the beneficiary, its household's head or one of its recipients.
    let (status, body) = server
        .json(
            &token,
            Method::POST,
            "/api/v1/cards",
            Some(json!({"beneficiary_id": beneficiary, "holder_id": Uuid::now_v7()})),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let (_, second) = server
        .json(
            &token,
            Method::POST,
            "/api/v1/cards",
            Some(json!({"beneficiary_id": beneficiary})),
        )
        .await;
    assert_ne!(second["serial"], first["serial"]);
    device.sync_replica(0).await.unwrap();
    let revoked: Vec<u64> = device
        .rows(RowKind::RevokedCard)
        .filter_map(|r| match r {
            Row::RevokedCard(c) => Some(c.serial),
            _ => None,
        })
        .collect();
    assert_eq!(revoked, vec![first["serial"].as_u64().unwrap()]);
    let serials = device
        .replica
        .get(&(RowKind::Beneficiary as i32, beneficiary.as_bytes().to_vec()))
        .map(|r| match r {
            Row::Beneficiary(b) => b.card_serials.clone(),
            _ => vec![],
        })
        .unwrap();
    assert_eq!(serials, vec![second["serial"].as_u64().unwrap()]);

    // A printable sheet for a village; a south supervisor cannot print the north's.
    let r = server
        .http
        .post(server.url("/api/v1/cards/sheet"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(json!({"plan": "CT-HH", "area": "N-MZ-01"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert!(r.bytes().await.unwrap().starts_with(b"%PDF"));
    let south = server.token("sup.south1").await;
    let (status, _) = server
        .json(
            &south,
            Method::POST,
            "/api/v1/cards/sheet",
            Some(json!({"plan": "CT-HH", "area": "N-MZ-01"})),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_tls_with_rustls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server = kit::demo(10)
        .https(&cert.cert.pem(), &cert.signing_key.serialize_pem())
        .start();
    assert!(server.base.starts_with("https://"));
    let code = server.enrolment_code(SUP, AGENT, AREA).await;
    let mut device = SimDevice::new(server.http.clone(), &server.base);
    device.hello().await;
    device.enrol(&code).await.expect("enrols over TLS");
    device.sync_replica(0).await.unwrap();
    assert!(device.rows(RowKind::Person).count() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_records_edge_cases_are_refused_per_document_not_per_server() {
    let server = kit::demo(80).start();
    let mut device = enrolled(&server, AREA).await;
    device.sync_replica(0).await.unwrap();
    let at = DateTime::parse_from_rfc3339("2026-11-20T10:15:00+01:00").unwrap();

    // A contact update for a household naming someone outside it: refused, not a server error.
    let household_beneficiary = device
        .rows(RowKind::Beneficiary)
        .find_map(|r| match r {
            Row::Beneficiary(b) if !b.household_id.is_empty() => Some(id(&b.id)),
            _ => None,
        })
        .unwrap();
    let (_, _, stranger) = device.new_record(&Record::ContactUpdate(records::ContactUpdate {
        beneficiary_id: household_beneficiary,
        individual_id: Uuid::now_v7(),
        phone: Some("+221 77 000 00 00".into()),
        address: None,
        updated_at: at,
    }));
    // A record number no device reaches.
    let (_, _, mut huge) = device.new_record(&payout_for(&payable(&device).0, payable(&device).1));
    huge.device_seq = u64::MAX;
    let r = device.push(vec![stranger, huge]).await.unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Rejected,
        "{}",
        r.results[0].reason
    );
    assert!(
        r.results[0]
            .reason
            .contains("not this beneficiary or a member")
    );
    assert_eq!(r.results[1].outcome(), DocOutcome::Rejected);

    let token = server.token(SUP).await;
    let (status, list) = server
        .json(&token, Method::GET, "/api/v1/quarantine", None)
        .await;
    assert_eq!(status, 200, "{list}");
    let (_, devices) = server
        .json(&token, Method::GET, "/api/v1/devices", None)
        .await;
    assert_eq!(
        devices[0]["records_missing"], 0,
        "refused numbers do not count: {devices}"
    );

    // Goods the programme does not have, and a status change the lifecycle does not allow.
    let (e, collector) = payable(&device);
    let (_, _, gold) = device.new_record(&Record::Distribution(records::Distribution {
        beneficiary_id: id(&e.beneficiary_id),
        entitlement_id: id(&e.id),
        collector_id: collector,
        items: [("GOLD".to_string(), 1)].into(),
        distributed_at: at,
        void: None,
    }));
    let (_, _, backwards) = device.new_record(&Record::Verification(records::Verification {
        beneficiary_id: id(&e.beneficiary_id),
        answers: Default::default(),
        proposed_status: Some(outpost_proto::BeneficiaryStatus::Potential),
        note: String::new(),
        verified_at: at,
    }));
    let r = device.push(vec![gold, backwards]).await.unwrap();
    assert!(
        r.results[0].reason.contains("goods item `GOLD` is unknown"),
        "{}",
        r.results[0].reason
    );
    assert!(
        r.results[1].reason.contains("cannot become POTENTIAL"),
        "{}",
        r.results[1].reason
    );

    // A day's work voided in the field can be recorded again, and the void is not paid.
    let project = device
        .rows(RowKind::Project)
        .find_map(|r| match r {
            Row::Project(p) => Some(p.clone()),
            _ => None,
        })
        .expect("the N-MZ road project");
    let worker = device
        .rows(RowKind::Beneficiary)
        .find_map(|r| match r {
            Row::Beneficiary(b) if b.plan_id == project.plan_id && b.status == "ACTIVE" => {
                Some(id(&b.id))
            }
            _ => None,
        })
        .unwrap();
    let day = Record::Timesheet(records::Timesheet {
        project_id: id(&project.id),
        beneficiary_id: worker,
        work_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        day_hundredths: 100,
        recorded_at: at,
        void: None,
    });
    let (first_id, mut first, dc) = device.new_record(&day);
    assert_eq!(
        device.push(vec![dc.clone()]).await.unwrap().results[0].outcome(),
        DocOutcome::Accepted
    );
    let (_, _, twice) = device.new_record(&day);
    let r = device.push(vec![twice]).await.unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Rejected,
        "one entry per worker and day"
    );
    records::void(
        &mut first,
        &records::Void {
            reason: "wrong worker".into(),
            at,
        },
    )
    .unwrap();
    let void = first.get_last_local_change().unwrap().raw_bytes().to_vec();
    let r = device
        .push(vec![wire::DocChanges {
            changes: vec![void],
            ..dc
        }])
        .await
        .unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        r.results[0].reason
    );
    let (_, _, again) = device.new_record(&day);
    let r = device.push(vec![again]).await.unwrap();
    assert_eq!(
        r.results[0].outcome(),
        DocOutcome::Accepted,
        "{}",
        r.results[0].reason
    );
    let (status, body) = server
        .json(
            &token,
            Method::POST,
            &format!("/api/v1/timesheets/{first_id}/decision"),
            Some(json!({"status": "APPROVED"})),
        )
        .await;
    assert_eq!(status, 409, "a voided day is not decided: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_stays_with_its_area_and_a_disabled_agent_stops_syncing() {
    let server = kit::demo(60).start();
    let mut north = enrolled(&server, AREA).await;
    let mut south = enrolled_as(&server, "sup.south1", "agent.s-ck", "S-CK").await;
    // A grievance with no beneficiary belongs to the assignment it came from.
    let grievance = open_grievance(None, "OTHER", "Queue too long at the market");
    let (doc_id, mut doc, dc) = north.new_record(&grievance);
    assert_eq!(
        north.push(vec![dc]).await.unwrap().results[0].outcome(),
        DocOutcome::Accepted
    );
    records::set_grievance_status(&mut doc, GrievanceStatus::Resolved, None).unwrap();
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let from_south = wire::DocChanges {
        doc_id: doc_id.as_bytes().to_vec(),
        kind: "grievance".into(),
        changes: vec![change],
        device_seq: 0,
    };
    let r = south.push(vec![from_south]).await.unwrap();
    assert_eq!(r.results[0].outcome(), DocOutcome::Rejected);
    assert!(
        r.results[0]
            .reason
            .contains("outside this device's assignment")
    );

    // A disabled agent's device is refused but not told to wipe (its records may be unsynced),
    // and a code created before the account was disabled no longer enrols.
    let code = server.enrolment_code(SUP, AGENT, AREA).await;
    server
        .state()
        .store
        .write(|tx| {
            Ok(tx.sqlite().execute(
                "UPDATE users SET disabled = 1 WHERE username = 'agent.n-mz'",
                [],
            )?)
        })
        .unwrap();
    let r = north.sync_replica(0).await.unwrap_err();
    assert_eq!((r.status, r.code()), (403, ErrorCode::AgentDisabled));
    let mut late = SimDevice::new(server.http.clone(), &server.base);
    let r = late.enrol(&code).await.unwrap_err();
    assert_eq!(r.code(), ErrorCode::AgentDisabled);
    assert!(!r.reply.wipe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_cards_follow_their_beneficiary_to_a_new_area() {
    let server = kit::demo(80).start();
    let mut mz = enrolled(&server, "N-MZ-01").await;
    mz.sync_replica(0).await.unwrap();
    let household = mz
        .rows(RowKind::Beneficiary)
        .find_map(|r| match r {
            Row::Beneficiary(b) if !b.household_id.is_empty() => {
                Some((id(&b.id), b.household_id.clone()))
            }
            _ => None,
        })
        .unwrap();
    let token = server.token(SUP).await;
    for _ in 0..2 {
        let (status, _) = server
            .json(
                &token,
                Method::POST,
                "/api/v1/cards",
                Some(json!({"beneficiary_id": household.0})),
            )
            .await;
        assert_eq!(status, 201);
    }
    server
        .state()
        .store
        .write(|tx| {
            Ok(tx.sqlite().execute(
                "UPDATE groups SET location_id = (SELECT id FROM locations WHERE code = 'N-RU-01') WHERE id = ?1",
                [&household.1],
            )?)
        })
        .unwrap();
    let mut ru = enrolled_as(&server, SUP, "agent.n-ru", "N-RU").await;
    ru.sync_replica(0).await.unwrap();
    let revoked: Vec<Uuid> = ru
        .rows(RowKind::RevokedCard)
        .filter_map(|r| match r {
            Row::RevokedCard(c) => Some(id(&c.beneficiary_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        revoked,
        vec![household.0],
        "the new area knows the old card is revoked"
    );
    mz.sync_replica(0).await.unwrap();
    assert_eq!(
        mz.rows(RowKind::RevokedCard).count(),
        0,
        "the old area drops it with the rest"
    );
}

/// A new OPEN grievance as a device records it (fixed time, no comments).
fn open_grievance(beneficiary_id: Option<Uuid>, category: &str, description: &str) -> Record {
    Record::Grievance(Grievance {
        beneficiary_id,
        category: category.into(),
        description: description.into(),
        status: GrievanceStatus::Open,
        assignee: None,
        comments: vec![],
        created_at: DateTime::parse_from_rfc3339("2026-11-20T10:15:00Z").unwrap(),
    })
}
