//! Faults between a real device and a real server: connections cut mid-request and
//! mid-response, answers lost after the server committed, a device process killed (SIGKILL)
//! while it syncs or writes, and the server killed while it merges and restarted. After each,
//! the same invariants: every record the device made is on the server exactly once, the
//! totals agree, and the device says it is up to date only when nothing waits.
//!
//! The device is `outpost-field`, the mobile core's command line, so these need it built:
//! `(cd mobile-core && cargo build --bin outpost-field)` (`scripts/test` does).

use std::{path::Path, process::Stdio, time::Duration};

use outpost_test_kit::{self as kit, Fault, TestServer};
use outpost_tests::phone::Phone;

/// A phone of the Mzimba agent enrolled through `url` and synced once; its device id.
async fn enrolled(server: &TestServer, dir: &Path, url: &str) -> (Phone, String) {
    let phone = Phone::new(dir, "phone");
    let code = server
        .enrolment_code("sup.north1", "agent.n-mz", "N-MZ")
        .await;
    phone.run(&["enrol", "--server", url, "--code", &code]);
    phone.run(&["sync"]);
    let device = phone.run(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (phone, device)
}

/// (payouts of this phone on the server, their total, records it sent now in quarantine)
fn on_server(server: &TestServer, device: &str) -> (i64, i64, i64) {
    let id = uuid::Uuid::parse_str(device).unwrap();
    server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite().query_row(
                "SELECT (SELECT count(*) FROM payouts WHERE device_id = ?1),
                        (SELECT COALESCE(SUM(amount_minor), 0) FROM payouts WHERE device_id = ?1),
                        (SELECT count(*) FROM quarantine WHERE device_id = ?1)",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cut_anywhere_or_whose_answer_is_lost_loses_and_doubles_nothing() {
    let server = kit::demo(60).fault_proxy().start();
    let proxy = server.proxy.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (phone, device) = enrolled(&server, dir.path(), &proxy.url()).await;

    let mut made = 0;
    let mut total = 0;
    let faults = [
        Fault::CutRequest(20),
        Fault::CutRequest(200),
        Fault::CutRequest(600),
        Fault::CutResponse(10),
        Fault::CutResponse(120),
        Fault::DropResponse,
    ];
    for fault in faults {
        // Whatever earlier faults left waiting goes first, cleanly.
        proxy.set(Fault::None);
        phone.run(&["sync"]);
        assert_eq!(on_server(&server, &device), (made, total, 0));
        total += phone.pay_some(server.day, 2);
        made += 2;
        proxy.set(fault);
        let cuts = proxy.cuts();
        let (code, err) = phone.try_run(&["sync"]).expect_err("the cut sync fails");
        assert_eq!(code, 2, "a network failure is exit code 2: {err}");
        assert!(proxy.cut_after(cuts).await, "{fault:?} cut the upload");
        assert_eq!(
            phone.pending(),
            2,
            "{fault:?}: the phone still has its records waiting"
        );
        let (on, _, _) = on_server(&server, &device);
        match fault {
            // Cut before the upload was whole: the server has nothing of it.
            Fault::CutRequest(_) => assert_eq!(on, made - 2, "{fault:?}"),
            // The server committed; only the answer was lost.
            _ => assert_eq!(on, made, "{fault:?}"),
        }
    }
    proxy.set(Fault::None);
    phone.run(&["sync"]);
    assert_eq!(phone.pending(), 0);
    assert_eq!(on_server(&server, &device), (made, total, 0));
    // A second clean sync changes nothing.
    phone.run(&["sync"]);
    assert_eq!(on_server(&server, &device), (made, total, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_while_it_uploads_loses_and_doubles_nothing() {
    let server = kit::demo(60).fault_proxy().start();
    let proxy = server.proxy.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (phone, device) = enrolled(&server, dir.path(), &proxy.url()).await;

    // A slow link, and a SIGKILL at different moments after each upload has started: before
    // the server has it whole, while it merges, or after it answered but before the phone
    // marked its records sent. (A kill at each step of a write is the core's crash-point
    // test, mobile-core/tests/sync.rs.)
    proxy.set(Fault::Slow(Duration::from_millis(25)));
    let mut total = 0;
    for after_ms in [0u64, 20, 60, 150] {
        total += phone.pay_some(server.day, 3);
        let seen = proxy.uploads();
        let mut child = phone
            .command(&["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        proxy.upload_started(seen).await;
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        // The database opens and answers after every kill, and the records are not lost.
        assert!(phone.pending() <= 12);
        let on = on_server(&server, &device).0;
        let made = phone.payouts_made();
        assert!(on <= made, "the server never holds more than was made");
    }

    proxy.set(Fault::None);
    phone.run(&["sync"]);
    assert_eq!(phone.pending(), 0);
    let made = phone.payouts_made();
    assert_eq!(made, 12);
    assert_eq!(on_server(&server, &device), (made, total, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_during_an_upload_restarts_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = kit::demo(60).binary().fault_proxy().start();
    let day = server.day;
    let code = server.cli_json(&[
        "enrol-code",
        "--agent",
        "agent.n-mz",
        "--assignment",
        "N-MZ",
    ])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone = Phone::new(dir.path(), "phone");
    phone.run(&["enrol", "--server", &server.base, "--code", &code]);
    phone.run(&["sync"]);
    let device = phone.run(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut total = phone.pay_some(day, 15);

    // Killed (SIGKILL) at different moments after an upload started over a slow link: before
    // the body is whole, while it merges, or after it answered.
    server
        .proxy
        .as_ref()
        .unwrap()
        .set(Fault::Slow(Duration::from_millis(15)));
    for after_ms in [0u64, 40, 120] {
        let proxy = server.proxy.as_ref().unwrap();
        let seen = proxy.uploads();
        let sync = phone
            .command(&["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        proxy.upload_started(seen).await;
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        server.kill();
        let _ = tokio::task::spawn_blocking(move || sync.wait_with_output()).await;
        // On the same data, behind the same proxy.
        server.restart();
        total += phone.pay_some(day, 2);
    }
    server.proxy.as_ref().unwrap().set(Fault::None);
    phone.run(&["sync"]);
    assert_eq!(phone.pending(), 0);
    let made = phone.payouts_made();
    // The server's file is whole, its audit chain intact, and it holds each record once.
    let conn = rusqlite::Connection::open(server.data().join("registry.db")).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let id = uuid::Uuid::parse_str(&device).unwrap();
    let (count, sum): (i64, i64) = conn
        .query_row(
            "SELECT count(*), COALESCE(SUM(amount_minor), 0) FROM payouts WHERE device_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((count, sum), (made, total));
    drop(conn);
    server.kill();
    let verify = server.cli(&["audit-verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_on_the_server_is_said_plainly_and_nothing_is_half_written() {
    let server = kit::demo(200).start();
    let dir = tempfile::tempdir().unwrap();
    let (phone, device) = enrolled(&server, dir.path(), &server.base).await;
    // Enough records that storing them needs new pages, not just the room left in old ones.
    let total = phone.pay_some(server.day, 40);
    // The disk fills up: the database may not grow by a single page.
    let full_at: i64 = server
        .state()
        .store
        .write(|tx| {
            let pages: i64 = tx
                .sqlite()
                .query_row("PRAGMA page_count", [], |r| r.get(0))?;
            tx.sqlite()
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get::<_, i64>(0)
                })?;
            Ok(pages)
        })
        .unwrap();
    let (code, err) = phone
        .try_run(&["sync"])
        .expect_err("a full disk refuses the upload");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("storage is full"), "{err}");
    assert_eq!(
        on_server(&server, &device),
        (0, 0, 0),
        "nothing half-written"
    );
    assert_eq!(phone.pending(), 40, "the phone keeps every record");
    // Room is made: the same sync goes through, once.
    server
        .state()
        .store
        .write(|tx| {
            tx.sqlite().query_row(
                &format!("PRAGMA max_page_count = {}", full_at * 1000),
                [],
                |r| r.get::<_, i64>(0),
            )?;
            Ok(())
        })
        .unwrap();
    phone.run(&["sync"]);
    assert_eq!(phone.pending(), 0);
    assert_eq!(on_server(&server, &device), (40, total, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_whose_database_is_deleted_after_a_sync_enrols_again_and_loses_nothing() {
    let server = kit::demo(60).start();
    let dir = tempfile::tempdir().unwrap();
    let (phone, device) = enrolled(&server, dir.path(), &server.base).await;
    let total = phone.pay_some(server.day, 3);
    phone.run(&["sync"]);
    let day = server.day.to_string();
    let due_before = phone.run(&["due", "--day", &day, "--limit", "500"]);
    assert!(
        !due_before.as_array().unwrap().is_empty(),
        "something is due on the test's day"
    );
    // The app's data is wiped (a reset, a new phone): database and key are gone.
    std::fs::remove_file(&phone.db).unwrap();
    let _ = std::fs::remove_file(phone.db.with_extension("db.key"));
    let again = Phone::new(dir.path(), "phone");
    let code = server
        .enrolment_code("sup.north1", "agent.n-mz", "N-MZ")
        .await;
    again.run(&["enrol", "--server", &server.base, "--code", &code]);
    again.run(&["sync"]);
    // The old device's records stay on the server; the new one sees the same work, with
    // what was paid already paid.
    assert_eq!(on_server(&server, &device), (3, total, 0));
    let due_after = again.run(&["due", "--day", &day, "--limit", "500"]);
    assert_eq!(due_after, due_before);
    assert_eq!(again.pending(), 0);
}
