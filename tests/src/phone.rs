//! A phone on the command line: one `outpost-field` database, the mobile core's real code,
//! run as a process so tests can cut its connections or kill it. Built by
//! `(cd mobile-core && cargo build --bin outpost-field)`; `scripts/test` does.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// The repository's root (where `target/` is).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A phone: the device database of one `outpost-field`.
pub struct Phone {
    pub db: PathBuf,
    bin: PathBuf,
}

impl Phone {
    pub fn new(dir: &Path, name: &str) -> Phone {
        let bin = root().join("target/debug/outpost-field");
        assert!(
            bin.exists(),
            "{} is missing: build it with (cd mobile-core && cargo build --bin outpost-field)",
            bin.display()
        );
        Phone {
            db: dir.join(format!("{name}.db")),
            bin,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--db")
            .arg(&self.db)
            .args(["--pin", "2468"])
            .args(args);
        c
    }

    /// Runs a command; Ok(stdout as JSON) or Err(exit code, stderr).
    pub fn try_run(&self, args: &[&str]) -> Result<Value, (i32, String)> {
        let out = self.command(args).output().expect("outpost-field runs");
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
        } else {
            Err((
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }

    pub fn run(&self, args: &[&str]) -> Value {
        self.try_run(args)
            .unwrap_or_else(|(code, err)| panic!("outpost-field {args:?} failed ({code}): {err}"))
    }

    pub fn pending(&self) -> u64 {
        self.run(&["status"])["sync"]["pending"].as_u64().unwrap()
    }

    /// Payouts this phone has made (sent or not).
    pub fn payouts_made(&self) -> i64 {
        self.run(&["records", "--limit", "1000"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "payout")
            .count() as i64
    }

    /// Pays the first entitlement of the beneficiary `query` finds (an external id), with the
    /// agent's PIN as witness; returns the amount.
    pub fn pay_beneficiary(&self, query: &str) -> i64 {
        let found = self.run(&["search", query]);
        let shown = self.run(&["show", found[0]["id"].as_str().expect("found")]);
        let e = &shown["entitlements"][0];
        let amount = e["amount"]["amount_minor"].as_i64().unwrap();
        let currency = e["amount"]["currency"].as_str().unwrap();
        self.run(&["cash", &amount.to_string(), currency, "--note", "float"]);
        self.run(&[
            "pay",
            "--entitlement",
            e["id"].as_str().unwrap(),
            "--collector",
            e["recipient_id"].as_str().unwrap(),
            "--amount",
            &amount.to_string(),
            "--currency",
            currency,
            "--witness-pin",
        ]);
        amount
    }

    /// Pays `n` entitlements due on `day` (the test's today) that this phone has not paid;
    /// returns their total.
    pub fn pay_some(&self, day: chrono::NaiveDate, n: usize) -> i64 {
        let due = self.run(&["due", "--day", &day.to_string(), "--limit", "200"]);
        let mut total = 0;
        let mut paid = 0;
        for d in due.as_array().unwrap() {
            if paid == n {
                break;
            }
            let e = &d["entitlement"];
            let amount = e["amount"]["amount_minor"].as_i64().unwrap();
            if amount == 0 || e["remaining_minor"].as_i64().unwrap() < amount {
                continue;
            }
            let collector = match e["recipient_id"].as_str() {
                Some(r) => r.to_owned(),
                None => {
                    let b = self.run(&["show", d["beneficiary"]["id"].as_str().unwrap()]);
                    b["members"][0]["id"].as_str().unwrap().to_owned()
                }
            };
            let currency = e["amount"]["currency"].as_str().unwrap();
            self.run(&["cash", &amount.to_string(), currency, "--note", "float"]);
            let id = e["id"].as_str().unwrap();
            let sig = format!("sig-{id}");
            let amount_s = amount.to_string();
            self.run(&[
                "pay",
                "--entitlement",
                id,
                "--collector",
                &collector,
                "--amount",
                &amount_s,
                "--currency",
                currency,
                "--signature",
                &sig,
            ]);
            total += amount;
            paid += 1;
        }
        assert_eq!(paid, n, "enough entitlements were due");
        total
    }
}
