//! Load before authentication (issue 14): unauthenticated work is capped per address and in
//! total with 429 + `Retry-After`, sync bodies are not read for devices the headers already
//! rule out, and an enrolment cannot make the server expand a large body. Requests are held
//! open by sending their headers and not their body, well within the server's timeouts (30 s
//! by default; the tests of the timeouts shorten them and wait for the server to act);
//! nothing here asserts on timing (the polling loops only wait for the server to have seen
//! every held request).

use chrono::DateTime;
use outpost_proto::{
    Money,
    records::{self, Comment, Grievance, GrievanceStatus, Payout, Proof, Record, bounds},
    wire::{self, DocOutcome, EnrolRequest, ErrorCode, ErrorReply, Row, RowKind, header as h},
};
use outpost_server::{
    app::limits::{FirstDownloads, Limits, Timeouts},
    devices::store as devices,
    registry::store::Scope,
};
use outpost_test_kit::{self as kit, TestServer};
use outpost_tests::{device::SimDevice, phone::Phone};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use uuid::Uuid;

const SUP: &str = "sup.north1";
const AREA: &str = "N-MZ";

async fn enrolled(server: &TestServer) -> SimDevice {
    let code = server.enrolment_code(SUP, "agent.n-mz", AREA).await;
    let mut device = SimDevice::new(server.http.clone(), &server.base);
    device.hello().await;
    device.enrol(&code).await.expect("enrols");
    device.sync_replica(0).await.expect("replica");
    device
}

/// One payout of an entitlement the device holds.
fn payout(device: &mut SimDevice) -> wire::DocChanges {
    let e = device
        .rows(RowKind::Entitlement)
        .find_map(|r| match r {
            Row::Entitlement(e) if !e.recipient_id.is_empty() && e.amount_minor > 0 => {
                Some(e.clone())
            }
            _ => None,
        })
        .expect("an approved entitlement in the replica");
    let record = Record::Payout(Payout {
        beneficiary_id: Uuid::from_slice(&e.beneficiary_id).unwrap(),
        entitlement_id: Uuid::from_slice(&e.id).unwrap(),
        collector_id: Uuid::from_slice(&e.recipient_id).unwrap(),
        amount: Money::new(e.amount_minor, e.currency.parse().unwrap()),
        proof: Proof::Pin,
        paid_at: DateTime::parse_from_rfc3339("2026-11-20T10:15:00+01:00").unwrap(),
        override_reason: None,
        void: None,
    });
    device.new_record(&record).2
}

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Opens a connection and sends a request's head only: the body it announces never comes.
async fn head_only(server: &TestServer, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address(server)).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream
}

/// A raw HTTP/1.1 answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the answer to a request whose body was never sent. A generous guard turns a server
/// that waits for the body (the behaviour this file tests against) into a failure, not a hang.
async fn answer(stream: &mut TcpStream) -> Answer {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed the connection without answering");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .expect("a content length");
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "the answer was cut short");
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        Answer {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the server answered without waiting for the body")
}

/// The head of a signed-looking push in `device`'s name announcing `length` body bytes.
fn push_head(device: &str, length: usize, signature: &str) -> String {
    let timestamp = chrono::Utc::now().timestamp_millis();
    format!(
        "POST {} HTTP/1.1\r\nhost: outpost\r\ncontent-type: {}\r\n{}: 1\r\n{}: {device}\r\n\
         {}: {timestamp}\r\n{}: {}\r\n{}: {signature}\r\ncontent-length: {length}\r\n\r\n",
        wire::path::PUSH,
        wire::CONTENT_TYPE,
        h::PROTOCOL,
        h::DEVICE,
        h::TIMESTAMP,
        h::NONCE,
        outpost_proto::auth::nonce(),
        h::SIGNATURE,
    )
}

/// A signature-shaped header value (64 bytes), signed by nobody.
fn fake_signature() -> String {
    "A".repeat(86)
}

/// Waits until the server has seen what the test sent (requests held open are taken up by the
/// server in its own time); a generous guard turns a condition never met into a failure.
async fn until(condition: impl Fn() -> bool) {
    for _ in 0..6000 {
        if condition() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the server never reached the expected state");
}

async fn wrong_token_request(server: &TestServer) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/v1/auth/token"))
        .header("content-type", "application/json")
        .body(r#"{"username": "admin", "password": "not the password"}"#)
        .send()
        .await
        .expect("the server answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_ins_from_one_address_are_capped_while_devices_and_tokens_carry_on() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;
    let token = server.token(SUP).await;

    // Log-ins held open from this address, each waiting for its body, up to the cap.
    let cap = 4;
    let head = "POST /api/v1/auth/token HTTP/1.1\r\nhost: outpost\r\n\
                content-type: application/json\r\ncontent-length: 64\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(head_only(&server, head).await);
    }
    // Once the server has seen them all, the next log-in is refused before any hashing.
    until(|| server.state().limits.logins.in_progress() == cap).await;
    let busy = wrong_token_request(&server).await;
    assert_eq!(busy.status(), 429);
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = serde_json::from_slice(&busy.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already in progress from the address 127.0.0.1"),
        "{body}"
    );
    // The web log-in shares the cap, and says so with a page.
    let web = server
        .http
        .post(server.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=admin&password=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(web.status(), 429);
    assert!(web.headers().contains_key("retry-after"));

    // Signed device work and authenticated API calls from the same address are not held up.
    let doc = payout(&mut device);
    let reply = device.push(vec![doc]).await.expect("a signed upload");
    assert_eq!(reply.results[0].outcome(), DocOutcome::Accepted);
    let (status, me) = server
        .json(&token, reqwest::Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(status, 200, "{me}");

    // The held requests end (their clients leave) and log-ins are served again.
    drop(held);
    until(|| server.state().limits.logins.in_progress() == 0).await;
    assert_eq!(wrong_token_request(&server).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_bodies_are_refused_unread_for_devices_the_headers_rule_out() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;
    let eight_mib = 8 * 1024 * 1024;

    // An unknown device announcing 8 MiB is answered before a byte of the body is sent.
    let mut unknown = head_only(
        &server,
        &push_head(&Uuid::now_v7().to_string(), eight_mib, &fake_signature()),
    )
    .await;
    let a = answer(&mut unknown).await;
    let reply: ErrorReply = wire::decode("error", &a.body, false).unwrap();
    assert_eq!((a.status, reply.code()), (401, ErrorCode::UnknownDevice));
    assert_eq!(a.header("content-type"), Some(wire::CONTENT_TYPE));

    // A known device's id with no usable signature: refused as well, unread.
    let id = device.id.unwrap().to_string();
    let mut garbled = head_only(&server, &push_head(&id, eight_mib, "AAAA")).await;
    let a = answer(&mut garbled).await;
    let reply: ErrorReply = wire::decode("error", &a.body, false).unwrap();
    assert_eq!((a.status, reply.code()), (401, ErrorCode::BadSignature));

    // In a known device's name, at most a few bodies are read at once: the next request is
    // told to retry, while another device's upload goes through.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(head_only(&server, &push_head(&id, 1000, &fake_signature())).await);
    }
    let mut other = enrolled(&server).await;
    until(|| server.state().limits.devices.in_progress() == 4).await;
    let busy = device.push(vec![]).await.unwrap_err();
    assert_eq!(busy.code(), ErrorCode::Busy);
    assert_eq!(busy.status, 429);
    assert!(
        busy.reply
            .message
            .contains("already in progress from the device")
    );
    let doc = payout(&mut other);
    let reply = other.push(vec![doc]).await.expect("another device uploads");
    assert_eq!(reply.results[0].outcome(), DocOutcome::Accepted);
    drop(held);
    until(|| server.state().limits.devices.in_progress() == 0).await;
    device.push(vec![]).await.expect("served again");

    // A revoked device is told so (and to wipe) without its body being read.
    let device_id = device.id.unwrap();
    server
        .state()
        .store
        .write(|tx| devices::revoke_device(tx, "test", &Scope::National, device_id, "lost"))
        .unwrap();
    let mut revoked = head_only(&server, &push_head(&id, eight_mib, &fake_signature())).await;
    let a = answer(&mut revoked).await;
    let reply: ErrorReply = wire::decode("error", &a.body, false).unwrap();
    assert_eq!((a.status, reply.code()), (403, ErrorCode::DeviceRevoked));
    assert!(reply.wipe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_that_expands_beyond_its_small_limit_is_refused() {
    let server = kit::demo(40).start();
    let code = server.enrolment_code(SUP, "agent.n-mz", AREA).await;
    let mut device = SimDevice::new(server.http.clone(), &server.base);
    device.hello().await;

    // A properly signed enrolment with a valid code whose label expands to 4 MiB: a few KiB
    // on the wire.
    let request = EnrolRequest {
        code: code.clone(),
        public_key: device.public_key(),
        label: "x".repeat(4 * 1024 * 1024),
        app_version: "test".into(),
    };
    let (body, compressed) = wire::encode(&request);
    assert!(compressed && body.len() < 16 * 1024, "{}", body.len());
    let r = device
        .raw(wire::path::ENROL, body, compressed, true, |_| {})
        .await;
    let reply: ErrorReply = wire::decode("error", &r.body, r.compressed).unwrap();
    assert_eq!((r.status, reply.code()), (413, ErrorCode::BodyTooLarge));
    assert!(
        reply
            .message
            .contains("larger than 16384 bytes once decompressed"),
        "{}",
        reply.message
    );

    // A bomb of zeros: refused the same way, without expanding it.
    let bomb = zstd_bomb();
    let r = device
        .raw(wire::path::ENROL, bomb, true, true, |_| {})
        .await;
    let reply: ErrorReply = wire::decode("error", &r.body, r.compressed).unwrap();
    assert_eq!((r.status, reply.code()), (413, ErrorCode::BodyTooLarge));

    // Nothing was used up: the code still enrols the phone.
    device.enrol(&code).await.expect("the code is still valid");
}

/// 64 MiB of zeros, compressed to a few KiB.
fn zstd_bomb() -> Vec<u8> {
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let (packed, compressed) = wire::encode(&wire::EnrolRequest {
        code: String::new(),
        public_key: Vec::new(),
        label: String::from_utf8(zeros).unwrap(),
        app_version: String::new(),
    });
    assert!(compressed);
    packed
}

fn grievance(description: &str) -> Record {
    Record::Grievance(Grievance {
        beneficiary_id: None,
        category: "WRONG_AMOUNT".into(),
        description: description.into(),
        status: GrievanceStatus::Open,
        assignee: None,
        comments: vec![],
        created_at: DateTime::parse_from_rfc3339("2026-11-20T10:15:00Z").unwrap(),
    })
}

fn quarantine_reasons(server: &TestServer, doc_id: Uuid) -> Vec<String> {
    server
        .state()
        .store
        .read(|c| {
            let mut stmt = c
                .sqlite()
                .prepare("SELECT reason FROM quarantine WHERE doc_id = ?1")?;
            let rows = stmt.query_map([doc_id], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_documents_beyond_their_bounds_are_refused_and_quarantined() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;

    // A grievance within bounds lands; comments past the cap, added later, do not.
    let (doc_id, mut doc, dc) = device.new_record(&grievance("Le montant est faux"));
    let reply = device.push(vec![dc]).await.unwrap();
    assert_eq!(reply.results[0].outcome(), DocOutcome::Accepted);
    let accepted = doc.get_heads();
    for i in 0..=bounds::MAX_COMMENTS {
        records::add_comment(
            &mut doc,
            &Comment {
                author: "agent.n-mz".into(),
                at: DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z").unwrap(),
                text: format!("relance {i}"),
            },
        )
        .unwrap();
    }
    let changes = doc
        .get_changes(&accepted)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let reply = device
        .push(vec![wire::DocChanges {
            doc_id: doc_id.as_bytes().to_vec(),
            kind: "grievance".into(),
            changes,
            device_seq: 0,
        }])
        .await
        .unwrap();
    let r = &reply.results[0];
    assert_eq!(r.outcome(), DocOutcome::Rejected);
    assert_eq!(
        r.reason,
        "the record is too large: the grievance has 101 comments; at most 100 are accepted"
    );
    assert_eq!(quarantine_reasons(&server, doc_id), vec![r.reason.clone()]);
    // The server's copy, which devices receive, is the accepted one.
    let held: Vec<u8> = server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite()
                .query_row("SELECT data FROM documents WHERE id = ?1", [doc_id], |r| {
                    r.get(0)
                })?)
        })
        .unwrap();
    let Record::Grievance(g) = Record::read(&automerge::Automerge::load(&held).unwrap()).unwrap()
    else {
        panic!("a grievance")
    };
    assert!(g.comments.is_empty());

    // A new record with a description past its bound is refused whole.
    let long = "é".repeat(bounds::MAX_TEXT_CHARS + 1);
    let (doc_id, _, dc) = device.new_record(&grievance(&long));
    let reply = device.push(vec![dc]).await.unwrap();
    let r = &reply.results[0];
    assert_eq!(r.outcome(), DocOutcome::Rejected);
    assert!(
        r.reason
            .contains("`description` is 4001 characters; at most 4000"),
        "{}",
        r.reason
    );
    assert_eq!(quarantine_reasons(&server, doc_id).len(), 1);
}

fn short_timeouts() -> Limits {
    let second = std::time::Duration::from_secs(1);
    Limits {
        timeouts: Timeouts {
            // Apart from the others: hyper times out an idle kept-alive connection by this
            // too, and a pooled connection closed as a held body times out would race a test's
            // next request.
            header: 5 * second,
            request: 2 * second,
            body: second,
            ..Timeouts::default()
        },
        ..Limits::default()
    }
}

/// Reads until the server closes the connection (or resets it); a generous guard turns a
/// server that keeps it open into a failure.
async fn closed_by_server(stream: &mut TcpStream) {
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the server closed the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_ins_whose_clients_hang_up_run_at_most_the_hashing_cap_at_once() {
    let server = kit::demo(10).start();
    // Taken first: on a fast machine some abandoned hashes finish and count as failures, which
    // may pause the name and the address before the loop ends.
    let admin = server.token("admin").await;
    let hashing = &server.state().limits.hashing;
    let body = r#"{"username": "admin", "password": "not the password"}"#;
    let request = format!(
        "POST /api/v1/auth/token HTTP/1.1\r\nhost: outpost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Whole log-ins, four at a time (the cap per address), each abandoned after 20 ms: the
    // log-in permits come back at once, the hashes they started do not stop.
    for _ in 0..16 {
        let mut round = Vec::new();
        for _ in 0..4 {
            let mut stream = TcpStream::connect(address(&server)).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            round.push(stream);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(round);
    }
    until(|| hashing.running() == 0).await;
    // Whatever pauses the finished ones caused are not what this test is about.
    server
        .state()
        .store
        .write(|tx| {
            tx.sqlite().execute("DELETE FROM login_throttle", [])?;
            Ok(())
        })
        .unwrap();
    assert_eq!(wrong_token_request(&server).await.status(), 401);
    assert!(hashing.done() >= 1);
    assert!(
        hashing.peak() <= hashing.cap(),
        "{} hashes ran at once; the cap is {}",
        hashing.peak(),
        hashing.cap()
    );

    // An account created over the API is hashed under the same cap, outside the writer.
    let before = hashing.done();
    let (status, body) = server
        .json(
            &admin,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(
                serde_json::json!({"username": "new.sup", "display_name": "New",
                "role": "SUPERVISOR", "area": "N", "password": "long enough password"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(hashing.done(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_log_ins_and_enrolments_are_dropped_after_their_timeout_and_free_their_permits() {
    let server = kit::demo(10).limits(short_timeouts()).start();
    let head = "POST /api/v1/auth/token HTTP/1.1\r\nhost: outpost\r\n\
                content-type: application/json\r\ncontent-length: 64\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(head_only(&server, head).await);
    }
    let mut enrolment = head_only(
        &server,
        &format!(
            "POST {} HTTP/1.1\r\nhost: outpost\r\ncontent-type: {}\r\n{}: 1\r\n\
             content-length: 100\r\n\r\n",
            wire::path::ENROL,
            wire::CONTENT_TYPE,
            h::PROTOCOL
        ),
    )
    .await;
    until(|| server.state().limits.logins.in_progress() == 4).await;
    assert_eq!(wrong_token_request(&server).await.status(), 429);

    // Each held log-in is answered 408 once its time is up, and its permit is freed.
    for stream in &mut held {
        let a = answer(stream).await;
        assert_eq!(a.status, 408);
        let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(body["error"]["code"], "timed_out", "{body}");
    }
    let a = answer(&mut enrolment).await;
    let reply: ErrorReply = wire::decode("error", &a.body, false).unwrap();
    assert_eq!((a.status, reply.code()), (408, ErrorCode::Busy));
    until(|| server.state().limits.logins.in_progress() == 0).await;
    until(|| server.state().limits.anonymous.in_progress() == 0).await;
    assert_eq!(wrong_token_request(&server).await.status(), 401);

    // A connection that never finishes its request head is closed.
    let mut partial = head_only(&server, "POST /api/v1/auth/token HTTP/1.1\r\nhost: o").await;
    closed_by_server(&mut partial).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_body_that_stops_arriving_is_answered_408_and_frees_the_device() {
    let server = kit::demo(40).limits(short_timeouts()).start();
    let mut device = enrolled(&server).await;
    let id = device.id.unwrap().to_string();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(head_only(&server, &push_head(&id, 1000, &fake_signature())).await);
    }
    until(|| server.state().limits.devices.in_progress() == 4).await;
    assert_eq!(
        device.push(vec![]).await.unwrap_err().code(),
        ErrorCode::Busy
    );
    for stream in &mut held {
        let a = answer(stream).await;
        let reply: ErrorReply = wire::decode("error", &a.body, false).unwrap();
        assert_eq!((a.status, reply.code()), (408, ErrorCode::Busy));
        assert!(
            reply.message.contains("stopped arriving"),
            "{}",
            reply.message
        );
    }
    until(|| server.state().limits.devices.in_progress() == 0).await;
    device.push(vec![]).await.expect("served again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_keeps_its_permit_until_its_push_is_answered() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;
    // The writer's queue is full: uploads whose bodies are read and signatures checked wait.
    let queue = server.state().limits.queued_batches.clone();
    let full = queue.clone().acquire_many_owned(32).await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let (body, compressed) = wire::encode(&wire::PushRequest { docs: vec![] });
        let headers = device.headers(wire::path::PUSH, &body, compressed, true);
        let request = server
            .http
            .post(server.url(wire::path::PUSH))
            .headers(headers)
            .body(body);
        waiting.push(tokio::spawn(async move {
            request.send().await.expect("answered").status().as_u16()
        }));
    }
    // Four pushes past their body, waiting for the queue, still count against the device.
    until(|| server.state().limits.devices.in_progress() == 4).await;
    let busy = device.push(vec![]).await.unwrap_err();
    assert_eq!((busy.status, busy.code()), (429, ErrorCode::Busy));
    assert_eq!(server.state().limits.devices.in_progress(), 4);
    drop(full);
    for push in waiting {
        assert_eq!(push.await.unwrap(), 200);
    }
    until(|| server.state().limits.devices.in_progress() == 0).await;
}

/// Text of `n` four-byte characters that no compression shrinks (a simple generator).
fn dense_text(n: usize, seed: u64) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from_u32(0x20000 + ((x >> 33) % 0xA000) as u32).unwrap()
        })
        .collect()
}

/// A grievance with `n` comments of the longest text, by the device's agent.
fn long_grievance(n: usize) -> Record {
    let Record::Grievance(g) = grievance(&dense_text(bounds::MAX_TEXT_CHARS, 0)) else {
        unreachable!()
    };
    Record::Grievance(Grievance {
        comments: (0..n)
            .map(|i| Comment {
                author: "agent.n-mz".into(),
                at: DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z").unwrap(),
                text: dense_text(bounds::MAX_COMMENT_CHARS, i as u64 + 1),
            })
            .collect(),
        ..g
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grievance_at_its_content_limits_can_still_be_closed_from_the_office() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;
    let (doc_id, _, dc) = device.new_record(&long_grievance(bounds::MAX_COMMENTS));
    let sent: usize = dc.changes.iter().map(Vec::len).sum();
    assert!(sent > 512 * 1024, "{sent} bytes");
    let reply = device.push(vec![dc]).await.unwrap();
    let r = &reply.results[0];
    assert_eq!(r.outcome(), DocOutcome::Accepted, "{}", r.reason);
    for to in [GrievanceStatus::Resolved, GrievanceStatus::Closed] {
        server
            .state()
            .store
            .write(|tx| {
                let sup = outpost_server::users::store::user_by_username(tx, SUP)?;
                outpost_server::sync::store::records::office_edit(tx, &sup, doc_id, |doc| {
                    records::set_grievance_status(doc, to, Some(SUP))
                })
            })
            .unwrap();
    }
    let g = server
        .state()
        .store
        .read(|c| outpost_server::sync::store::records::get_grievance(c, &Scope::National, doc_id))
        .unwrap();
    assert_eq!(g.comments.len(), bounds::MAX_COMMENTS);
    assert_eq!(g.status.as_str(), "CLOSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_document_leaves_a_small_quarantine_row() {
    let server = kit::demo(40).start();
    let mut device = enrolled(&server).await;
    let (doc_id, _, dc) = device.new_record(&long_grievance(bounds::MAX_COMMENTS + 1));
    let sent = dc.changes.concat();
    assert!(sent.len() > 512 * 1024, "{} bytes", sent.len());
    let reply = device.push(vec![dc]).await.unwrap();
    let r = &reply.results[0];
    assert_eq!(r.outcome(), DocOutcome::Rejected);
    assert_eq!(
        r.reason,
        "the record is too large: the grievance has 101 comments; at most 100 are accepted"
    );
    let (kept, hash, reason): (Vec<u8>, Vec<u8>, String) = server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite().query_row(
                "SELECT changes, changes_hash, reason FROM quarantine WHERE doc_id = ?1",
                [doc_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap();
    assert_eq!(kept, sent[..4096]);
    assert_eq!(
        hash,
        ring::digest::digest(&ring::digest::SHA256, &sent).as_ref()
    );
    assert_eq!(
        reason,
        format!(
            "{} (quarantine keeps only the first 4096 of the {} bytes sent, and their SHA-256)",
            r.reason,
            sent.len()
        )
    );
}

/// A fleet enrolled in one morning is let in a few at a time: a device beyond the cap on
/// first downloads is answered 503 `BUSY` (with `Retry-After`), one already downloading goes
/// on, and a real phone told to wait comes back by itself and downloads everything once a
/// place is free (here: the first device stalls, and its place lapses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_downloads_beyond_the_cap_are_told_to_come_back_and_the_phone_does() {
    let server = kit::demo(40)
        .limits(Limits {
            first_downloads: FirstDownloads::new(
                1,
                std::time::Duration::from_secs(2),
                std::time::Duration::from_secs(1),
            ),
            ..Limits::default()
        })
        .start();
    let mut first = SimDevice::new(server.http.clone(), &server.base);
    first.hello().await;
    let code = server.enrolment_code(SUP, "agent.n-mz", AREA).await;
    first.enrol(&code).await.expect("enrols");
    let page = first.replica_page(4096).await.expect("first page");
    assert!(page.more, "a 4 KiB page leaves more to come");
    assert_eq!(server.state().limits.first_downloads.in_progress(), 1);

    let mut second = SimDevice::new(server.http.clone(), &server.base);
    second.hello().await;
    let code = server.enrolment_code(SUP, "agent.n-mz", AREA).await;
    second.enrol(&code).await.expect("enrols");
    let refused = second.replica_page(0).await.expect_err("beyond the cap");
    assert_eq!((refused.status, refused.code()), (503, ErrorCode::Busy));
    // The one holding the place is never refused.
    assert!(first.replica_page(4096).await.expect("next page").more);

    let dir = tempfile::tempdir().unwrap();
    let phone = Phone::new(dir.path(), "phone");
    let code = server.enrolment_code(SUP, "agent.n-mz", AREA).await;
    phone.run(&["enrol", "--server", &server.base, "--code", &code]);
    let report = tokio::task::spawn_blocking(move || phone.run(&["sync"]))
        .await
        .unwrap();
    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("the server was busy")),
        "{report}"
    );
    let (_, full) = {
        let mut fresh = SimDevice::new(server.http.clone(), &server.base);
        fresh.hello().await;
        let code = server.enrolment_code(SUP, "agent.n-mz", AREA).await;
        fresh.enrol(&code).await.expect("enrols");
        let pages = fresh.sync_replica(0).await.expect("a place is free again");
        (pages, fresh.replica.len())
    };
    assert_eq!(
        report["replica_rows"].as_u64().unwrap() as usize,
        full,
        "{report}"
    );
    assert_eq!(server.state().limits.first_downloads.in_progress(), 0);
}
