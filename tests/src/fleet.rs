//! A fleet of simulated field devices that sync a day's records at the same moment: the load
//! test runs a small one in `scripts/test`, the benchmark a thousand.

use std::time::{Duration, Instant};

use outpost_proto::{
    Money,
    records::{Payout, Proof, Record},
    wire::{self, DocChanges, PushReply, PushRequest, Row, RowKind},
};
use tokio::{sync::Semaphore, task::JoinSet};
use uuid::Uuid;

use crate::device::SimDevice;

/// A device ready to sync, with the records it made offline.
pub struct Member {
    pub device: SimDevice,
    pub docs: Vec<DocChanges>,
    /// The total of its payouts, in minor units.
    pub paid_minor: i64,
}

/// Enrols one device per code, downloads each replica, and has each record `per_device`
/// payouts of the entitlements it holds (round-robin: repeats are second payments, which a
/// real fleet sends too and reconciliation flags). At most `parallel` devices prepare at once.
pub async fn prepare(
    http: reqwest::Client,
    base: &str,
    codes: Vec<String>,
    per_device: usize,
    parallel: usize,
) -> Vec<Member> {
    let gate = std::sync::Arc::new(Semaphore::new(parallel.max(1)));
    let mut set = JoinSet::new();
    for (i, code) in codes.into_iter().enumerate() {
        let (http, base, gate) = (http.clone(), base.to_owned(), gate.clone());
        set.spawn(async move {
            let _slot = gate.acquire_owned().await.expect("semaphore");
            let mut d = SimDevice::new(http, &base);
            d.hello().await;
            d.enrol(&code).await.expect("enrol");
            d.sync_replica(0).await.expect("replica");
            let payouts = payouts(&d, per_device);
            let paid_minor = payouts
                .iter()
                .map(|r| match r {
                    Record::Payout(p) => p.amount.minor,
                    _ => 0,
                })
                .sum();
            let docs = payouts.iter().map(|r| d.new_record(r).2).collect();
            (
                i,
                Member {
                    device: d,
                    docs,
                    paid_minor,
                },
            )
        });
    }
    let mut members: Vec<(usize, Member)> = set.join_all().await;
    members.sort_by_key(|(i, _)| *i);
    members.into_iter().map(|(_, m)| m).collect()
}

/// Payouts of the entitlements a device holds, `n` of them round-robin, made now.
pub fn payouts(d: &SimDevice, n: usize) -> Vec<Record> {
    let paid_at = chrono::Local::now().fixed_offset();
    let payable: Vec<Record> = d
        .rows(RowKind::Entitlement)
        .filter_map(|r| match r {
            Row::Entitlement(e) if e.amount_minor > 0 => Some(e.clone()),
            _ => None,
        })
        .filter_map(|e| {
            let collector = if e.recipient_id.is_empty() {
                person_of(d, &e.beneficiary_id)?
            } else {
                Uuid::from_slice(&e.recipient_id).ok()?
            };
            Some(Record::Payout(Payout {
                beneficiary_id: Uuid::from_slice(&e.beneficiary_id).ok()?,
                entitlement_id: Uuid::from_slice(&e.id).ok()?,
                collector_id: collector,
                amount: Money::new(e.amount_minor, e.currency.parse().ok()?),
                proof: Proof::Card(1000 + e.amount_minor as u64 % 97),
                paid_at,
                override_reason: None,
                void: None,
            }))
        })
        .collect();
    assert!(
        !payable.is_empty(),
        "the device holds approved entitlements"
    );
    (0..n).map(|i| payable[i % payable.len()].clone()).collect()
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

/// What a fleet's sync did.
pub struct Report {
    pub devices: usize,
    pub records: usize,
    pub accepted: usize,
    pub wall: Duration,
    /// Each device's sync, from its first request to its last answer, shortest first.
    pub latencies: Vec<Duration>,
    /// Requests the server refused (none, when all is well).
    pub refused: usize,
}

impl Report {
    /// The `p`th percentile (0-100) of the devices' sync times.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

/// Every device syncs at once: it sends its records (signed batches of at most 250, as the
/// app does), then downloads its replica since its cursor and the changes made elsewhere.
pub async fn sync_all(fleet: Vec<Member>) -> (Report, Vec<SimDevice>) {
    let devices = fleet.len();
    let records: usize = fleet.iter().map(|m| m.docs.len()).sum();
    // Requests are encoded and signed before the clock starts: the timed part is the
    // server's work and the round trips, as a phone that syncs sees it.
    let work: Vec<(SimDevice, Vec<_>)> = fleet
        .into_iter()
        .map(|m| {
            let requests: Vec<_> = m
                .docs
                .chunks(250)
                .map(|batch| {
                    let (body, compressed) = wire::encode(&PushRequest {
                        docs: batch.to_vec(),
                    });
                    (
                        m.device.headers(wire::path::PUSH, &body, compressed, true),
                        body,
                    )
                })
                .collect();
            (m.device, requests)
        })
        .collect();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for (mut d, requests) in work {
        set.spawn(async move {
            let began = Instant::now();
            let mut accepted = 0usize;
            let mut refused = 0usize;
            for (headers, body) in requests {
                let raw = d.send(wire::path::PUSH, headers, body).await;
                if raw.status != 200 {
                    refused += 1;
                    continue;
                }
                let reply: PushReply =
                    wire::decode("PushReply", &raw.body, raw.compressed).expect("push reply");
                accepted += reply
                    .results
                    .iter()
                    .filter(|r| r.outcome() == wire::DocOutcome::Accepted)
                    .count();
            }
            // Then what the app does next: the replica since its cursor, and the changes
            // made elsewhere.
            if d.sync_replica(0).await.is_err() {
                refused += 1;
            }
            if d.pull_changes().await.is_err() {
                refused += 1;
            }
            (began.elapsed(), accepted, refused, d)
        });
    }
    let mut latencies = Vec::with_capacity(devices);
    let mut accepted = 0;
    let mut refused = 0;
    let mut back = Vec::with_capacity(devices);
    while let Some(done) = set.join_next().await {
        let (took, a, r, d) = done.expect("device task");
        latencies.push(took);
        accepted += a;
        refused += r;
        back.push(d);
    }
    let wall = start.elapsed();
    latencies.sort();
    (
        Report {
            devices,
            records,
            accepted,
            wall,
            latencies,
            refused,
        },
        back,
    )
}
