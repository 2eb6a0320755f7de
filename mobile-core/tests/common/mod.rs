//! A real `outpost-server` process with the demo programme (from the test kit), and real
//! devices over encrypted database files, for the core's tests.
#![allow(dead_code)]

use std::sync::Arc;

use outpost_core::{Outpost, types::*};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const PIN: &str = "2580";

/// The server binary with the demo programme (the test kit's), for the core's tests.
pub struct Server(outpost_test_kit::TestServer);

impl std::ops::Deref for Server {
    type Target = outpost_test_kit::TestServer;

    fn deref(&self) -> &outpost_test_kit::TestServer {
        &self.0
    }
}

impl Server {
    /// A server with the demo programme (`households` households), on a loopback port.
    pub fn start(households: usize) -> Server {
        Server(outpost_test_kit::demo(households).start())
    }

    /// A server speaking HTTPS with this certificate and key (PEM).
    pub fn start_tls(households: usize, cert_pem: &str, key_pem: &str) -> Server {
        Server(
            outpost_test_kit::demo(households)
                .https(cert_pem, key_pem)
                .start(),
        )
    }

    /// Runs a server subcommand on the same data directory; its JSON output.
    pub fn cli(&self, args: &[&str]) -> Value {
        self.0.cli_json(args)
    }

    /// A one-time enrolment code for an agent and an assignment.
    pub fn code(&self, agent: &str, assignment: &str) -> String {
        self.cli(&["enrol-code", "--agent", agent, "--assignment", assignment])["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A token for a demo user, one per user and server (a token costs a fresh TOTP code).
    pub fn token(&self, user: &str) -> String {
        self.block_on(self.0.token(user))
    }

    /// Calls the staff API as `user`.
    pub fn api(&self, user: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let token = self.token(user);
        let method = method.parse().expect("an HTTP method");
        self.block_on(self.0.json(&token, method, path, Some(body)))
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
        let conn = rusqlite::Connection::open(self.data().join("registry.db")).unwrap();
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
                server.base.clone(),
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

/// The day the tests' demo programmes are generated as of (the kit's: this test process's
/// today in the local zone, as the device sees it, taken once).
pub fn demo_day() -> String {
    demo_date().to_string()
}

pub fn demo_date() -> chrono::NaiveDate {
    outpost_test_kit::today()
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
