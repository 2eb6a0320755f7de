//! Sync benchmarks: ingest of payouts from many devices, bytes per payout on the wire, and a
//! replica download; all against a real server on a loopback port.

use std::time::Instant;

use outpost_proto::wire::{self, DocChanges, PushReply, PushRequest, RowKind};
use outpost_server::{devices::store as devices, registry::store::Scope, sync::store::replica};
use outpost_test_kit as kit;
use outpost_tests::device::SimDevice;

use super::{Figure, figure};

/// Payouts from `devices` simulated devices, each pushing its payouts in batches, all at once.
pub fn ingest(quick: bool) -> Vec<Figure> {
    let (devices, per_device, households) = if quick {
        (20, 200, 1000)
    } else {
        (100, 500, 4000)
    };
    const BATCH: usize = 250;
    runtime().block_on(async {
        let server = kit::demo(households).start();
        let mut fleet = Vec::new();
        for i in 0..devices {
            let (agent, area) = if i % 2 == 0 {
                ("agent.n-mz", "N-MZ")
            } else {
                ("agent.n-ru", "N-RU")
            };
            let code = server
                .state()
                .store
                .write(|tx| {
                    devices::create_enrolment(tx, "bench", &Scope::National, agent, area, None)
                })
                .expect("enrolment code")
                .code;
            let mut d = SimDevice::new(server.http.clone(), &server.base);
            d.hello().await;
            d.enrol(&code).await.expect("enrol");
            d.sync_replica(0).await.expect("replica");
            fleet.push(d);
        }
        // Each device pays its entitlements round-robin (repeats are duplicates the server
        // keeps for reconciliation to flag, which is what a real fleet sends after a fault).
        let mut work = Vec::new();
        for mut d in fleet {
            let docs: Vec<DocChanges> = outpost_tests::fleet::payouts(&d, per_device)
                .iter()
                .map(|r| d.new_record(r).2)
                .collect();
            // Requests are encoded, compressed and signed before the clock starts, so the
            // timed part is the server's work (and the HTTP round trips).
            let requests: Vec<_> = docs
                .chunks(BATCH)
                .map(|batch| {
                    let (body, compressed) = wire::encode(&PushRequest {
                        docs: batch.to_vec(),
                    });
                    (d.headers(wire::path::PUSH, &body, compressed, true), body)
                })
                .collect();
            d.bytes_sent = 0;
            work.push((d, requests));
        }
        eprintln!("ingest: {devices} devices ready, pushing");
        let start = Instant::now();
        let tasks: Vec<_> = work
            .into_iter()
            .map(|(mut d, requests)| {
                tokio::spawn(async move {
                    let mut accepted = 0usize;
                    for (headers, body) in requests {
                        let raw = d.send(wire::path::PUSH, headers, body).await;
                        assert_eq!(raw.status, 200, "push refused");
                        let reply: PushReply =
                            wire::decode("PushReply", &raw.body, raw.compressed).expect("reply");
                        accepted += reply
                            .results
                            .iter()
                            .filter(|r| r.outcome() == wire::DocOutcome::Accepted)
                            .count();
                    }
                    (accepted, d.bytes_sent)
                })
            })
            .collect();
        let mut accepted = 0;
        let mut bytes = 0;
        for t in tasks {
            let (a, b) = t.await.expect("device task");
            accepted += a;
            bytes += b;
        }
        let secs = start.elapsed().as_secs_f64();
        let total = devices * per_device;
        assert_eq!(accepted, total, "every payout is accepted");
        vec![
            figure(
                &format!("sync ingest, {devices} devices x {per_device} payouts"),
                total as f64 / secs,
                "changes/s",
                ">= 20,000",
                "higher",
            ),
            figure(
                "sync bytes on the wire per payout (batches of 250, zstd)",
                bytes as f64 / total as f64,
                "bytes",
                "<= 200",
                "lower",
            ),
        ]
    })
}

/// A first replica download for an assignment holding about 10,000 beneficiaries.
pub fn replica_download(quick: bool) -> Vec<Figure> {
    // The demo enrols each household in three plans; region N holds half of them.
    let households = if quick { 1_400 } else { 6_700 };
    runtime().block_on(async {
        let server = kit::demo(households).start();
        // The demo's agents each cover a district; this one is given the whole region N.
        let code = server
            .state()
            .store
            .write(|tx| {
                tx.sqlite().execute(
                    "UPDATE users SET area_id = (SELECT id FROM locations WHERE code = 'N')
                     WHERE username = 'agent.n-mz'",
                    [],
                )?;
                devices::create_enrolment(tx, "bench", &Scope::National, "agent.n-mz", "N", None)
            })
            .expect("enrolment")
            .code;
        let mut d = SimDevice::new(server.http.clone(), &server.base);
        d.hello().await;
        d.enrol(&code).await.expect("enrol");
        d.bytes_received = 0;
        let start = Instant::now();
        let pages = d.sync_replica(0).await.expect("replica");
        let wall = start.elapsed().as_secs_f64();
        let beneficiaries = d.rows(RowKind::Beneficiary).count();
        let people = d.rows(RowKind::Person).count();
        let entitlements = d.rows(RowKind::Entitlement).count();
        // The server's own share: building every page, without HTTP.
        let start = Instant::now();
        server
            .state()
            .store
            .read(|c| {
                let mut cursor = 0;
                loop {
                    let page = replica::page(c, "N", cursor, 0)?;
                    cursor = page.next_cursor;
                    if !page.more {
                        return Ok(());
                    }
                }
            })
            .expect("pages");
        let server_secs = start.elapsed().as_secs_f64();
        let scale = 10_000.0 / beneficiaries as f64;
        eprintln!(
            "replica: {beneficiaries} beneficiaries, {people} people, {entitlements} entitlements, {pages} pages, {} bytes",
            d.bytes_received
        );
        vec![
            figure(
                &format!("replica download, {beneficiaries} beneficiaries ({people} people, {entitlements} entitlements)"),
                d.bytes_received as f64 / 1024.0,
                "KiB on the wire",
                "",
                "lower",
            ),
            figure(
                "replica download scaled to 10,000 beneficiaries",
                d.bytes_received as f64 * scale / 1_000_000.0,
                "MB",
                "<= 1 MB",
                "lower",
            ),
            figure("replica download, server time", server_secs * 1000.0, "ms", "", "lower"),
            figure("replica download, wall time over loopback", wall * 1000.0, "ms", "", "lower"),
        ]
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A thousand devices (a hundred with `--quick`) sync a day's records each at the same
/// moment against a server process of its own, so its peak memory is the server's alone.
pub fn fleet(quick: bool) -> Vec<Figure> {
    // `OUTPOST_FLEET_SIZES=100,1000,5000` measures several fleets, each against a server of
    // its own, so the server's CPU per device sync can be compared across sizes.
    let sizes: Vec<usize> = std::env::var("OUTPOST_FLEET_SIZES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().parse().expect("OUTPOST_FLEET_SIZES: numbers"))
                .collect()
        })
        .unwrap_or_else(|| vec![if quick { 100 } else { 1_000 }]);
    let households = if quick { 600 } else { 2_000 };
    sizes
        .into_iter()
        .flat_map(|devices| fleet_of(devices, households))
        .collect()
}

fn fleet_of(devices: usize, households: usize) -> Vec<Figure> {
    const RECORDS: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    let server_bin = std::env::current_exe()
        .expect("own path")
        .with_file_name("outpost-server");
    let status = std::process::Command::new(&server_bin)
        .args([
            "--data",
            data.to_str().expect("utf-8 path"),
            "demo",
            "--households",
        ])
        .arg(households.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "{} (build it with scripts/bench): {e}",
                server_bin.display()
            )
        });
    assert!(status.success(), "demo data");
    let mut child = std::process::Command::new(&server_bin)
        .args([
            "--data",
            data.to_str().expect("utf-8 path"),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("server process");
    let base = {
        use std::io::BufRead;
        let out = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(out).lines();
        loop {
            let line = lines
                .next()
                .expect("the server says where it listens")
                .expect("line");
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_owned();
            }
        }
    };
    // Codes straight from the database, as an administrator's tool would make them.
    let store = outpost_server::store::Store::open(&data.join("registry.db")).expect("store");
    // The north's payrolls are approved in the demo: its devices have something to pay.
    let areas = [("agent.n-mz", "N-MZ"), ("agent.n-ru", "N-RU")];
    let codes: Vec<String> = (0..devices)
        .map(|i| {
            let (agent, area) = areas[i % areas.len()];
            store
                .write(|tx| {
                    devices::create_enrolment(tx, "bench", &Scope::National, agent, area, None)
                })
                .expect("enrolment code")
                .code
        })
        .collect();
    drop(store);
    let server_pid = child.id();
    let figures = runtime().block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(devices)
            .build()
            .expect("client");
        let start = Instant::now();
        let members = outpost_tests::fleet::prepare(http, &base, codes, RECORDS, 32).await;
        eprintln!(
            "fleet: {devices} devices enrolled with their replicas in {:.1} s; syncing",
            start.elapsed().as_secs_f64()
        );
        eprintln!(
            "fleet: server memory after enrolment: {}",
            server_memory(server_pid)
        );
        let members: Vec<_> = members
            .into_iter()
            .map(|mut m| {
                m.device.bytes_received = 0;
                m
            })
            .collect();
        let cpu_before = server_cpu_ms(server_pid);
        let (report, synced) = outpost_tests::fleet::sync_all(members).await;
        let cpu_ms = server_cpu_ms(server_pid) - cpu_before;
        let downloaded: u64 = synced.iter().map(|d| d.bytes_received).sum();
        eprintln!(
            "fleet: server memory after the sync: {}",
            server_memory(server_pid)
        );
        assert_eq!(report.refused, 0, "every device was answered");
        assert_eq!(report.accepted, report.records, "every record accepted");
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        vec![
            figure(
                &format!("sync latency p50, {devices} devices at once ({RECORDS} records each)"),
                ms(report.percentile(50.0)),
                "ms",
                "",
                "lower",
            ),
            figure(
                &format!("sync latency p99, {devices} devices at once"),
                ms(report.percentile(99.0)),
                "ms",
                "<= 10,000",
                "lower",
            ),
            figure(
                &format!("fleet sync throughput, {devices} devices"),
                report.records as f64 / report.wall.as_secs_f64(),
                "records/s",
                "",
                "higher",
            ),
            figure(
                &format!("server CPU per device sync, {devices} devices"),
                cpu_ms / devices as f64,
                "ms",
                "flat across fleet sizes",
                "lower",
            ),
            figure(
                &format!("bytes one device downloads per sync, {devices} devices in two districts"),
                downloaded as f64 / devices as f64,
                "B",
                "<= 40 B per entitlement changed for it",
                "lower",
            ),
        ]
    });
    // The server's own peak resident memory, from the kernel's account of the process.
    let peak_kib = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        });
    let _ = child.kill();
    let _ = child.wait();
    let mut figures = figures;
    if let Some(kib) = peak_kib {
        figures.push(figure(
            &format!("server peak memory, {devices} devices syncing"),
            kib / 1024.0,
            "MiB",
            "<= 512",
            "lower",
        ));
    }
    figures
}

/// The server process's CPU time so far (user and system), from the kernel, in ms.
fn server_cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), 1-based from `state`: utime is
    // the 12th, stime the 13th. Clock ticks are 100 a second on Linux.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) * 10.0
}

/// The server's resident and peak memory, as the kernel counts it.
fn server_memory(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("VmRSS:") || l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
