//! A real `outpost-server` process with the demo programme, and real devices over encrypted
//! database files, for the core's tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use outpost_core::{Outpost, types::*};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const PIN: &str = "2580";
pub const DEMO_PASSWORD: &str = "outpost-demo-2026";

/// The server binary the root workspace builds (`scripts/test` builds it first).
pub fn server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OUTPOST_SERVER_BIN") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/outpost-server");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p outpost-server` at the repository root first \
         (scripts/test does)",
        p.display()
    );
    p
}

pub struct Server {
    child: Child,
    pub url: String,
    pub dir: TempDir,
    http: reqwest::blocking::Client,
    tokens: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// A server with the demo programme (`households` households), on a loopback port.
    pub fn start(households: usize) -> Server {
        Self::start_with(households, tempfile::tempdir().unwrap(), &[])
    }

    /// A server speaking HTTPS with this certificate and key (PEM), written into its directory.
    pub fn start_tls(households: usize, cert_pem: &str, key_pem: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let (cert, key) = (
            cert.to_string_lossy().into_owned(),
            key.to_string_lossy().into_owned(),
        );
        Self::start_with(
            households,
            dir,
            &["--tls-cert", cert.as_str(), "--tls-key", key.as_str()],
        )
    }

    fn start_with(households: usize, dir: TempDir, serve_args: &[&str]) -> Server {
        let data = dir.path().join("data");
        let out = Command::new(server_bin())
            .arg("--data")
            .arg(&data)
            .args(["demo", "--households", &households.to_string()])
            .args(["--as-of", &demo_day()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "demo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = Command::new(server_bin())
            .arg("--data")
            .arg(&data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(serve_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Server {
            child,
            url,
            dir,
            http: {
                // The core's own client brings its TLS configuration; this one uses the
                // process-wide provider (ring, as the core does).
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::blocking::Client::new()
            },
            tokens: Default::default(),
        }
    }

    /// Runs a server subcommand on the same data directory; its JSON output.
    pub fn cli(&self, args: &[&str]) -> Value {
        let out = Command::new(server_bin())
            .arg("--data")
            .arg(self.dir.path().join("data"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// A one-time enrolment code for an agent and an assignment.
    pub fn code(&self, agent: &str, assignment: &str) -> String {
        self.cli(&["enrol-code", "--agent", agent, "--assignment", assignment])["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A token for a demo user, one per user and server: a token costs a code from the
    /// authenticator app (the demo's published secret, from `outpost-server totp-code`), and a
    /// code is accepted once per 30-second step.
    pub fn token(&self, user: &str) -> String {
        if let Some(t) = self.tokens.lock().unwrap().get(user) {
            return t.clone();
        }
        let out = Command::new(server_bin())
            .arg("totp-code")
            .output()
            .unwrap();
        assert!(out.status.success(), "totp-code");
        let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let r: Value = self
            .http
            .post(format!("{}/api/v1/auth/token", self.url))
            .header("content-type", "application/json")
            .body(json!({"username": user, "password": DEMO_PASSWORD, "code": code}).to_string())
            .send()
            .unwrap()
            .bytes()
            .map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null))
            .unwrap();
        let token = r["token"].as_str().expect("a token").to_owned();
        self.tokens
            .lock()
            .unwrap()
            .insert(user.to_owned(), token.clone());
        token
    }

    /// Calls the staff API as `user`.
    pub fn api(&self, user: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let token = self.token(user);
        let r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Issues a card for a beneficiary; returns its QR text.
    pub fn card(&self, beneficiary: &str, holder: Option<&str>) -> String {
        let (status, card) = self.api(
            "sup.north1",
            "POST",
            "/api/v1/cards",
            json!({"beneficiary_id": beneficiary, "holder_id": holder}),
        );
        assert_eq!(status, 201, "{card}");
        card["qr"].as_str().unwrap().to_owned()
    }

    /// What the server holds about a device's records.
    pub fn device(&self, id: &str) -> Value {
        let (_, list) = self.api("sup.north1", "GET", "/api/v1/devices", Value::Null);
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Reads the server's database directly (it runs in WAL, so this is safe beside it).
    pub fn sql<T>(&self, sql: &str, f: impl FnOnce(&rusqlite::Row) -> rusqlite::Result<T>) -> T {
        let conn = rusqlite::Connection::open(self.dir.path().join("data/registry.db")).unwrap();
        conn.query_row(sql, [], f).unwrap()
    }
}

/// A device: an encrypted database file in a temporary directory.
pub struct Device {
    pub dir: TempDir,
    pub key: Vec<u8>,
    pub core: Arc<Outpost>,
}

impl Device {
    pub fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let key: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        let core = Outpost::open(Self::path(&dir), key.clone()).unwrap();
        Device { dir, key, core }
    }

    fn path(dir: &TempDir) -> String {
        dir.path().join("device.db").to_string_lossy().into_owned()
    }

    pub fn db_path(&self) -> String {
        Self::path(&self.dir)
    }

    /// Closes the database and opens it again, as after the app was killed.
    pub fn reopen(&mut self) {
        let core = Outpost::open(self.db_path(), self.key.clone()).unwrap();
        self.core = core;
    }

    /// Enrols for `agent` on `assignment` and downloads the replica.
    pub fn enrolled(server: &Server, agent: &str, assignment: &str) -> Device {
        let d = Device::new();
        d.enrol(server, agent, assignment);
        d
    }

    pub fn enrol(&self, server: &Server, agent: &str, assignment: &str) -> Enrolled {
        let code = server.code(agent, assignment);
        let e = self
            .core
            .enrol(
                server.url.clone(),
                code,
                PIN.into(),
                "test phone".into(),
                None,
            )
            .unwrap();
        self.core.sync(None).unwrap();
        e
    }

    /// Something payable today in cash: (entitlement, beneficiary detail).
    pub fn payable(&self) -> (EntitlementView, BeneficiaryDetail) {
        self.payable_nth(0)
    }

    pub fn payable_nth(&self, n: usize) -> (EntitlementView, BeneficiaryDetail) {
        let due = self.core.due(Some(demo_day()), 1000).unwrap();
        let d = due
            .into_iter()
            .filter(|d| d.entitlement.amount.amount_minor > 0 && d.entitlement.goods.is_empty())
            .nth(n)
            .expect("something payable");
        let detail = self.core.beneficiary(d.beneficiary.id.clone()).unwrap();
        (d.entitlement, detail)
    }

    /// Pays an entitlement in full with a signature as proof, taking the cash it needs.
    pub fn pay(&self, e: &EntitlementView, collector: &str) -> outpost_core::Result<String> {
        self.core.pay(PayoutInput {
            entitlement_id: e.id.clone(),
            collector_id: collector.to_owned(),
            amount_minor: e.remaining_minor,
            currency: e.amount.currency.clone(),
            proof: ProofInput::Signature {
                reference: "sig-1".into(),
            },
            override_reason: None,
        })
    }

    pub fn cash(&self, amount: i64) {
        self.core
            .record_cash(
                true,
                amount,
                "MWK".into(),
                "float from the district office".into(),
            )
            .unwrap();
    }
}

/// The day the tests' demo programmes are generated as of: this test process's today (in
/// the local zone, as the device sees it), taken once, so a run that crosses midnight still
/// pays inside the cycle it made.
pub fn demo_day() -> String {
    demo_date().to_string()
}

pub fn demo_date() -> chrono::NaiveDate {
    static DAY: std::sync::OnceLock<chrono::NaiveDate> = std::sync::OnceLock::new();
    *DAY.get_or_init(|| chrono::Local::now().date_naive())
}

/// The first member who may collect.
pub fn collector(detail: &BeneficiaryDetail) -> String {
    detail
        .members
        .iter()
        .find(|m| m.may_collect)
        .expect("a collector")
        .id
        .clone()
}
