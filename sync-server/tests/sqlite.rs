//! The SQLite backend's own tests: what only a SQLite file shows (its bytes on disk, its
//! write-ahead log, rows changed behind the store's back) and the key file beside it. What
//! every backend must do is in the conformance suite (`tests/store/`), whose own `sqlite.rs`
//! runs it on SQLite.

use outpost_server::{
    Error,
    demo::{self, DemoOptions},
    registry::store::{self as registry, Scope},
    store::Store,
    users::store::{self as users, sessions},
};
use tempfile::TempDir;

/// The client address these tests log in from.
const ADDRESS: &str = "192.0.2.1";

struct Office {
    _dir: TempDir,
    store: Store,
}

/// The demo programme in a SQLite file of its own, as the conformance suite's office has it.
fn office() -> Office {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("registry.db")).unwrap();
    demo::load(
        &store,
        &DemoOptions {
            households: 30,
            seed: 3,
            as_of: demo::today(),
        },
    )
    .unwrap();
    Office { _dir: dir, store }
}

/// TOTP secrets are encrypted at rest with a key file beside the database; secrets a database
/// held in plain text before are encrypted when it opens, and still work.
#[test]
fn totp_secrets_are_encrypted_at_rest_and_plain_ones_are_sealed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = Store::open(&path).unwrap();
    demo::load(
        &store,
        &DemoOptions {
            households: 5,
            seed: 3,
            as_of: demo::today(),
        },
    )
    .unwrap();
    let raw = || rusqlite::Connection::open(&path).unwrap();
    let stored = |user: &str| -> String {
        raw()
            .query_row(
                "SELECT totp_secret FROM users WHERE username = ?1",
                [user],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(stored("sup.north1").starts_with("v1:"));
    assert!(!stored("sup.north1").contains(sessions::DEMO_TOTP_SECRET));
    let key = dir
        .path()
        .join(outpost_server::store::secrets::SecretKey::FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // As a database written before encryption held it.
    drop(store);
    raw()
        .execute(
            "UPDATE users SET totp_secret = ?1 WHERE username = 'sup.north2'",
            [sessions::DEMO_TOTP_SECRET],
        )
        .unwrap();
    let store = Store::open(&path).unwrap();
    assert!(stored("sup.north2").starts_with("v1:"), "sealed on open");
    let u = store
        .read(|c| users::user_by_username(c, "sup.north2"))
        .unwrap();
    let code = sessions::current_code(sessions::DEMO_TOTP_SECRET).unwrap();
    assert_eq!(
        store
            .write(|tx| sessions::check_code(tx, &u, &code))
            .unwrap(),
        sessions::Code::Accepted
    );
    // Without its key file the database's secrets are of no use: with another key they do
    // not open.
    drop(store);
    std::fs::remove_file(&key).unwrap();
    let other = outpost_server::store::secrets::SecretKey::create(dir.path()).unwrap();
    let sealed = stored("sup.north1");
    assert!(other.open(&sealed).is_err());
}

/// A lost key file is not silently replaced (every sealed secret would then fail to open and
/// every staff log-in answer 500): the store refuses to open and says what to do; resetting
/// each account's authenticator (which opens without the key) is the way back.
#[test]
fn a_missing_key_file_with_sealed_secrets_refuses_to_open_until_each_account_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let key = dir
        .path()
        .join(outpost_server::store::secrets::SecretKey::FILE);
    let store = Store::open(&path).unwrap();
    demo::load(
        &store,
        &DemoOptions {
            households: 5,
            seed: 3,
            as_of: demo::today(),
        },
    )
    .unwrap();
    drop(store);
    std::fs::remove_file(&key).unwrap();
    let err = refused(&path);
    for words in [
        "login-secrets.key",
        "missing",
        "reset-login USERNAME --totp",
        "sup.north1",
        "from a backup",
    ] {
        assert!(err.contains(words), "{words}: {err}");
    }
    assert!(!key.exists(), "no new key was made in its place");
    // Another key in its place is refused alike.
    outpost_server::store::secrets::SecretKey::create(dir.path()).unwrap();
    let err = refused(&path);
    assert!(err.contains("not the one"), "{err}");
    // The way back: reset each account's authenticator, then the store opens.
    let sealed: Vec<String> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT username FROM users WHERE totp_secret IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(sealed.len() > 1);
    let reset = users::Reset {
        password: None,
        totp: true,
    };
    for (i, name) in sealed.iter().enumerate() {
        if i + 1 < sealed.len() {
            // Until the last one is reset, the plain open still refuses, naming those left.
            let err = refused(&path);
            assert!(err.contains(name.as_str()), "{err}");
        }
        let store = Store::open_to_reset_logins(&path).unwrap();
        store
            .write(|tx| users::reset_login(tx, "cli", &Scope::National, name, &reset, None))
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let opened = sessions::log_in(&store, "sup.north1", demo::DEMO_PASSWORD, ADDRESS).unwrap();
    assert!(matches!(opened, sessions::LogIn::Opened(_)), "{opened:?}");
}

/// Why the store does not open.
fn refused(path: &std::path::Path) -> String {
    match Store::open(path) {
        Ok(_) => panic!("the store opened"),
        Err(e) => e.to_string(),
    }
}

/// A fresh key file is written whole and private, and a key already there is never replaced.
#[test]
fn the_key_file_is_made_private_and_never_replaced() {
    use outpost_server::store::secrets::SecretKey;
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::create(dir.path()).unwrap();
    let sealed = key.seal("JBSWY3DPEHPK3PXP").unwrap();
    let file = dir.path().join(SecretKey::FILE);
    assert_eq!(std::fs::read(&file).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(SecretKey::create(dir.path()).is_err(), "not replaced");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    let again = SecretKey::load(dir.path()).unwrap().unwrap();
    assert_eq!(again.open(&sealed).unwrap(), "JBSWY3DPEHPK3PXP");
}

/// Sealing the plain secrets of an older database leaves no copy of them in its files: not
/// in the space the old rows freed, not in the write-ahead log.
#[test]
fn sealing_plain_secrets_leaves_no_plain_text_in_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let store = Store::open(&path).unwrap();
    demo::load(
        &store,
        &DemoOptions {
            households: 5,
            seed: 3,
            as_of: demo::today(),
        },
    )
    .unwrap();
    drop(store);
    // As a database written before encryption held it, settled into the main file.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let plain = raw
        .execute(
            "UPDATE users SET totp_secret = ?1 WHERE totp_secret IS NOT NULL",
            [sessions::DEMO_TOTP_SECRET],
        )
        .unwrap();
    assert!(plain > 1);
    raw.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(raw);
    let files = || -> Vec<u8> {
        let mut all = Vec::new();
        for end in ["", "-wal"] {
            let mut p = path.clone().into_os_string();
            p.push(end);
            if let Ok(bytes) = std::fs::read(&p) {
                all.extend(bytes);
            }
        }
        all
    };
    let secret = sessions::DEMO_TOTP_SECRET.as_bytes();
    let holds = |bytes: &[u8]| bytes.windows(secret.len()).any(|w| w == secret);
    assert!(holds(&files()), "the plain secret is there before");
    let store = Store::open(&path).unwrap();
    assert!(!holds(&files()), "no plain secret left once sealed");
    let u = store
        .read(|c| users::user_by_username(c, "sup.north1"))
        .unwrap();
    let code = sessions::current_code(sessions::DEMO_TOTP_SECRET).unwrap();
    assert_eq!(
        store
            .write(|tx| sessions::check_code(tx, &u, &code))
            .unwrap(),
        sessions::Code::Accepted
    );
}

/// A new account's first log-in enrols an authenticator app; the secret offered and the one
/// enrolled are stored encrypted, and the enrolled one then opens a token.
#[test]
fn enrolling_an_authenticator_stores_its_secret_encrypted_and_it_then_buys_a_token() {
    let o = office();
    let path = o.store.path().to_owned();
    o.store
        .write(|tx| {
            users::create_user(
                tx,
                "user:admin",
                &Scope::National,
                &users::NewUser {
                    username: "sup.new".into(),
                    display_name: "New supervisor".into(),
                    role: users::Role::Supervisor,
                    area: Some("N".into()),
                    password: "a long enough password".into(),
                },
            )
        })
        .unwrap();
    let sessions::LogIn::Opened(cookie) =
        sessions::log_in(&o.store, "sup.new", "a long enough password", ADDRESS).unwrap()
    else {
        panic!("opened");
    };
    let s = o
        .store
        .read(|c| sessions::session(c, &cookie))
        .unwrap()
        .unwrap();
    assert_eq!(s.stage, sessions::Stage::EnrolSecondFactor);
    let (secret, url) = o
        .store
        .write(|tx| sessions::enrolment_offer(tx, &s))
        .unwrap();
    assert!(url.starts_with("otpauth://"));
    let raw = rusqlite::Connection::open(&path).unwrap();
    let pending: String = raw
        .query_row(
            "SELECT pending_totp FROM web_sessions WHERE pending_totp IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(pending.starts_with("v1:") && !pending.contains(&secret));
    // Reloading the page offers the same secret.
    let s = o
        .store
        .read(|c| sessions::session(c, &cookie))
        .unwrap()
        .unwrap();
    assert_eq!(
        o.store
            .write(|tx| sessions::enrolment_offer(tx, &s))
            .unwrap()
            .0,
        secret
    );
    let codes = outpost_test_kit::FreshCodes::default();
    let (code, wait) = codes.next("sup.new", |at| sessions::code_at(&secret, at).unwrap());
    std::thread::sleep(wait);
    o.store
        .write(|tx| sessions::enrol_second_factor(tx, &s, &code))
        .unwrap();
    let enrolled: String = raw
        .query_row(
            "SELECT totp_secret FROM users WHERE username = 'sup.new'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(enrolled.starts_with("v1:") && !enrolled.contains(&secret));
    let (code, wait) = codes.next("sup.new", |at| sessions::code_at(&secret, at).unwrap());
    std::thread::sleep(wait);
    let (user, _, _) = sessions::api_token(
        &o.store,
        "sup.new",
        "a long enough password",
        Some(&code),
        ADDRESS,
    )
    .unwrap();
    assert_eq!(user.username, "sup.new");
}

/// A status the code does not know, written behind the store's back, is an error when read,
/// never a silent default.
#[test]
fn a_status_the_code_does_not_know_is_an_error_when_read() {
    let o = office();
    let any = o
        .store
        .read(|c| registry::list_beneficiaries(c, &Scope::National, None, None, 1, 0))
        .unwrap();
    assert!(
        o.store
            .read(|c| registry::status_history(c, any[0].id))
            .is_ok()
    );
    let damaged = o
        .store
        .write(|tx| {
            let sql = "UPDATE beneficiary_status_history SET to_status = 'BOGUS' WHERE beneficiary_id = ?1";
            Ok(tx.sqlite().execute(sql, [any[0].id])?)
        })
        .unwrap();
    assert!(damaged > 0, "the beneficiary has a history to damage");
    let misread = o.store.read(|c| registry::status_history(c, any[0].id));
    assert!(matches!(misread, Err(Error::Storage { .. })), "{misread:?}");
}
