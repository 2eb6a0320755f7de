//! Unsent records survive an app upgrade. `fixtures/schema1-pending.db` was written by the
//! first schema (version 1) with two payouts and a grievance not yet sent; every later build
//! must open it, migrate it if its schema moved on, and still hold and list those records as
//! waiting. When a migration is added, this test is what proves it keeps them (add a fixture of
//! the version before it, too).

use outpost_core::Outpost;

fn fixture() -> (tempfile::TempDir, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let db = dir.path().join("field.db");
    std::fs::copy(here.join("schema1-pending.db"), &db).unwrap();
    let hex = std::fs::read_to_string(here.join("schema1-pending.db.key")).unwrap();
    let key = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).unwrap())
        .collect();
    (dir, db.to_string_lossy().into_owned(), key)
}

#[test]
fn records_written_before_an_upgrade_are_kept_and_still_waiting() {
    let (_dir, db, key) = fixture();
    let device = Outpost::open(db.clone(), key.clone()).expect("an older database opens");
    device.unlock("2468".into()).unwrap();
    let status = device.status().unwrap();
    assert_eq!(status.sync.pending, 3);
    assert!(
        !status.sync.up_to_date,
        "never up to date while records wait"
    );
    let waiting = device.records(true, 50).unwrap();
    let mut kinds: Vec<&str> = waiting.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["grievance", "payout", "payout"]);
    // The schema is this build's now, and opening again changes nothing.
    drop(device);
    let again = Outpost::open(db, key).unwrap();
    again.unlock("2468".into()).unwrap();
    assert_eq!(again.status().unwrap().sync.pending, 3);
}
