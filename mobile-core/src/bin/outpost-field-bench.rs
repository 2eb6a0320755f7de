//! `outpost-field-bench`: the device core's figures with a replica of about 10,000
//! beneficiaries, against a real `outpost-server` on loopback: applying the first replica,
//! search and payout latency, database size, and syncing 1,000 offline payouts.
//!
//! Prints the figures as JSON on standard output (the shape `outpost-bench` reads; it runs
//! this as its `device` benchmark); progress goes to standard error.
//!
//! `outpost-field-bench [--quick] [--server-bin PATH]`

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use outpost_core::{
    Outpost, store,
    sync::Client,
    types::{PayoutInput, ProofInput},
};
use outpost_proto::wire::{self, ReplicaPage, ReplicaRequest};
use serde_json::{Value, json};

const PIN: &str = "2580";

fn figure(name: &str, value: f64, unit: &str, target: &str, better: &str) -> Value {
    json!({"name": name, "value": value, "unit": unit, "target": target, "better": better})
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    let i = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[i]
}

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(bin: &Path, data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(bin);
    cmd.arg("--data").arg(data).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("outpost-server runs");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("stdin written");
    }
    let out = child.wait_with_output().expect("outpost-server ends");
    assert!(
        out.status.success(),
        "outpost-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let server_bin = args
        .iter()
        .position(|a| a == "--server-bin")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .expect("own path")
                .with_file_name("outpost-server")
        });
    assert!(
        server_bin.exists(),
        "{} is missing: build it (scripts/bench does)",
        server_bin.display()
    );
    let dir = std::env::temp_dir().join(format!("outpost-field-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let figures = bench(&server_bin, &dir, quick);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&figures).expect("json"));
}

fn bench(server_bin: &Path, dir: &Path, quick: bool) -> Vec<Value> {
    // The demo enrols each household in three plans; region N holds about half of them.
    let households = if quick { "1400" } else { "6700" };
    let payouts = if quick { 300 } else { 1000 };
    let data = dir.join("server");
    // The demo as of the bench's own today, whose due list it then reads.
    let today = chrono::Local::now().date_naive().to_string();
    eprintln!("loading the demo ({households} households)...");
    run(
        server_bin,
        &data,
        &["demo", "--households", households, "--as-of", &today],
        None,
    );
    // An agent whose area and assignment is the whole region N.
    run(
        server_bin,
        &data,
        &[
            "user",
            "agent.bench",
            "--role",
            "field_agent",
            "--area",
            "N",
        ],
        Some("bench-password-123\n"),
    );
    let code: Value = serde_json::from_str(&run(
        server_bin,
        &data,
        &["enrol-code", "--agent", "agent.bench", "--assignment", "N"],
        None,
    ))
    .expect("enrolment JSON");
    let code = code["code"].as_str().expect("a code").to_owned();
    let mut child = Command::new(server_bin)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let _server = ServerProcess(child);
    let url = line.trim().trim_start_matches("listening on ").to_owned();

    let key = vec![7u8; 32];
    let db = dir.join("device.db");
    let device = Outpost::open(db.to_string_lossy().into_owned(), key.clone()).expect("open");
    device
        .enrol(url.clone(), code, PIN.into(), "bench".into(), None)
        .expect("enrol");
    eprintln!("first sync...");
    let start = Instant::now();
    let report = device.sync(None).expect("first sync");
    let first_sync = start.elapsed().as_secs_f64();
    let beneficiaries: i64 = device.with_connection(|c| {
        c.query_row("SELECT count(*) FROM beneficiaries", [], |r| r.get(0))
            .expect("count")
    });

    // Applying alone: the same pages, fetched first, applied to an empty database.
    let (key_pkcs8, device_id, offset): (Vec<u8>, uuid::Uuid, i64) = device.with_connection(|c| {
        c.query_row(
            "SELECT key_pkcs8, id, clock_offset_ms FROM enrolments WHERE active = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("enrolment")
    });
    let mut client = Client::new(&url, None, &key_pkcs8, Some(device_id), offset).expect("client");
    let mut pages: Vec<ReplicaPage> = Vec::new();
    let mut cursor = 0;
    loop {
        let page: ReplicaPage = client
            .call(
                wire::path::REPLICA,
                &ReplicaRequest {
                    cursor,
                    max_bytes: 512 * 1024,
                },
            )
            .expect("page");
        cursor = page.next_cursor;
        let more = page.more;
        pages.push(page);
        if !more {
            break;
        }
    }
    let mut other = store::open(&dir.join("apply.db"), &key).expect("open");
    let start = Instant::now();
    for page in &pages {
        store::write(&mut other, |tx| {
            store::replica::apply_page(tx, device_id, page)
        })
        .expect("apply");
    }
    let apply = start.elapsed().as_secs_f64();
    drop(other);

    // Search: name prefixes of people on the phone.
    let prefixes: Vec<String> = device.with_connection(|c| {
        let mut stmt = c
            .prepare(
                "SELECT substr(first_name, 1, 3), substr(last_name, 1, 4) FROM people
                 ORDER BY rowid LIMIT 1000",
            )
            .expect("prepare");
        stmt.query_map([], |r| {
            Ok(format!(
                "{} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
    });
    let mut search_ms = Vec::new();
    for (i, q) in prefixes.iter().enumerate() {
        // Alternate two-word and one-word prefixes (the broad case returns more rows).
        let q = if i % 2 == 0 {
            q.clone()
        } else {
            q.split(' ').next().unwrap_or("a").to_owned()
        };
        let start = Instant::now();
        let hits = device.search(q, 20).expect("search");
        search_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(!hits.is_empty() || i % 2 == 1);
    }
    search_ms.sort_by(f64::total_cmp);

    // Payouts, each one transaction with its document, its row and the float check.
    device
        .record_cash(true, 100_000_000_000, "MWK".into(), "bench float".into())
        .expect("cash");
    let due: Vec<_> = device
        .due(Some(today.clone()), 100_000)
        .expect("due")
        .into_iter()
        .filter(|d| d.entitlement.goods.is_empty() && d.entitlement.amount.currency == "MWK")
        .take(payouts)
        .collect();
    assert_eq!(due.len(), payouts, "enough payable entitlements");
    let collectors: Vec<String> = due
        .iter()
        .map(|d| {
            device
                .beneficiary(d.beneficiary.id.clone())
                .expect("detail")
                .members
                .into_iter()
                .find(|m| m.may_collect)
                .expect("a collector")
                .id
        })
        .collect();
    let mut pay_ms = Vec::new();
    for (d, collector) in due.iter().zip(&collectors) {
        let start = Instant::now();
        device
            .pay(PayoutInput {
                entitlement_id: d.entitlement.id.clone(),
                collector_id: collector.clone(),
                amount_minor: d.entitlement.remaining_minor,
                currency: "MWK".into(),
                proof: ProofInput::Signature {
                    reference: "bench".into(),
                },
                override_reason: None,
            })
            .expect("pay");
        pay_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    pay_ms.sort_by(f64::total_cmp);

    eprintln!("syncing {payouts} payouts...");
    let start = Instant::now();
    let report2 = device.sync(None).expect("sync");
    let sync_secs = start.elapsed().as_secs_f64();
    assert_eq!(report2.accepted as usize, payouts);
    assert!(report2.status.up_to_date);

    device.with_connection(|c| {
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint")
    });
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let db_mib = (size(&db) + size(Path::new(&wal))) as f64 / (1024.0 * 1024.0);

    let n = if quick { " (quick)" } else { "" };
    vec![
        figure(
            &format!("device: beneficiaries in the replica{n}"),
            beneficiaries as f64,
            "rows",
            "10,000",
            "higher",
        ),
        figure(
            "device: first replica, applying",
            apply,
            "s",
            "<= 1",
            "lower",
        ),
        figure(
            "device: first sync (download + apply)",
            first_sync,
            "s",
            "-",
            "lower",
        ),
        figure(
            "device: first sync, bytes received",
            report.bytes_received as f64 / (1024.0 * 1024.0),
            "MiB",
            "-",
            "lower",
        ),
        figure(
            "device: search p50",
            percentile(&search_ms, 0.5),
            "ms",
            "-",
            "lower",
        ),
        figure(
            "device: search p99",
            percentile(&search_ms, 0.99),
            "ms",
            "-",
            "lower",
        ),
        figure(
            "device: payout recording p50",
            percentile(&pay_ms, 0.5),
            "ms",
            "-",
            "lower",
        ),
        figure(
            "device: payout recording p99",
            percentile(&pay_ms, 0.99),
            "ms",
            "<= 5",
            "lower",
        ),
        figure("device: database on disk", db_mib, "MiB", "-", "lower"),
        figure(
            &format!("device: sync of {payouts} offline payouts"),
            sync_secs,
            "s",
            "<= 2 (1,000)",
            "lower",
        ),
    ]
}
