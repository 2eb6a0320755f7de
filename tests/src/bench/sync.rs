//! Sync benchmarks: ingest of payouts from many devices, bytes per payout on the wire, and a
//! replica download; all against a real server on a loopback port.

use std::time::Instant;

use chrono::DateTime;
use outpost_proto::{
    Money,
    records::{Payout, Proof, Record},
    wire::{self, DocChanges, PushReply, PushRequest, Row, RowKind},
};
use outpost_server::store::{devices, registry::Scope, replica};
use outpost_tests::{device::SimDevice, harness::TestServer};
use uuid::Uuid;

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
        let server = TestServer::start(households).await;
        let mut fleet = Vec::new();
        for i in 0..devices {
            let (agent, area) = if i % 2 == 0 {
                ("agent.n-mz", "N-MZ")
            } else {
                ("agent.n-ru", "N-RU")
            };
            let code = server
                .state
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
            let payable: Vec<Record> = d
                .rows(RowKind::Entitlement)
                .filter_map(|r| match r {
                    Row::Entitlement(e) if e.amount_minor > 0 => Some(e.clone()),
                    _ => None,
                })
                .filter_map(|e| {
                    let collector = if e.recipient_id.is_empty() {
                        person_of(&d, &e.beneficiary_id)?
                    } else {
                        Uuid::from_slice(&e.recipient_id).ok()?
                    };
                    Some(Record::Payout(Payout {
                        beneficiary_id: Uuid::from_slice(&e.beneficiary_id).ok()?,
                        entitlement_id: Uuid::from_slice(&e.id).ok()?,
                        collector_id: collector,
                        amount: Money::new(e.amount_minor, e.currency.parse().ok()?),
                        proof: Proof::Card(1000 + e.amount_minor as u64 % 97),
                        paid_at: DateTime::parse_from_rfc3339("2026-11-20T10:15:00+01:00").ok()?,
                        override_reason: None,
                        void: None,
                    }))
                })
                .collect();
            assert!(
                !payable.is_empty(),
                "the device holds approved entitlements"
            );
            let docs: Vec<DocChanges> = (0..per_device)
                .map(|i| d.new_record(&payable[i % payable.len()]).2)
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

fn person_of(d: &SimDevice, beneficiary: &[u8]) -> Option<Uuid> {
    match d
        .replica
        .get(&(RowKind::Beneficiary as i32, beneficiary.to_vec()))?
    {
        Row::Beneficiary(b) if !b.individual_id.is_empty() => {
            Uuid::from_slice(&b.individual_id).ok()
        }
        _ => None,
    }
}

/// A first replica download for an assignment holding about 10,000 beneficiaries.
pub fn replica_download(quick: bool) -> Vec<Figure> {
    // The demo enrols each household in three plans; region N holds half of them.
    let households = if quick { 1_400 } else { 6_700 };
    runtime().block_on(async {
        let server = TestServer::start(households).await;
        // The demo's agents each cover a district; this one is given the whole region N.
        let code = server
            .state
            .store
            .write(|tx| {
                tx.execute(
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
            .state
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
