//! Load, reduced for CI: many devices sync a day's records at the same moment, and the server
//! stays correct (every record exactly once, totals equal, nothing outside an assignment) and
//! answers every one of them. The full thousand devices run in `scripts/bench`.

use std::collections::HashSet;

use outpost_proto::wire::{Row, RowKind};
use outpost_server::{devices::store as devices, registry::store::Scope};
use outpost_test_kit as kit;
use outpost_tests::fleet;
use uuid::Uuid;

const DEVICES: usize = 60;
const RECORDS_PER_DEVICE: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_devices_syncing_at_once_lose_and_double_nothing() {
    let server = kit::demo(300).start();
    let areas = [("agent.n-mz", "N-MZ"), ("agent.n-ru", "N-RU")];
    let codes: Vec<String> = (0..DEVICES)
        .map(|i| {
            let (agent, area) = areas[i % 2];
            server
                .state()
                .store
                .write(|tx| {
                    devices::create_enrolment(tx, "test", &Scope::National, agent, area, None)
                })
                .expect("enrolment code")
                .code
        })
        .collect();
    let members = fleet::prepare(
        server.http.clone(),
        &server.base,
        codes,
        RECORDS_PER_DEVICE,
        8,
    )
    .await;
    let sent_minor: i64 = members.iter().map(|m| m.paid_minor).sum();
    let sent_ids: HashSet<Vec<u8>> = members
        .iter()
        .flat_map(|m| m.docs.iter().map(|d| d.doc_id.clone()))
        .collect();

    let (report, synced) = fleet::sync_all(members).await;
    eprintln!(
        "load: {} devices, {} records in {:.2} s; sync p50 {:?}, p99 {:?}",
        report.devices,
        report.records,
        report.wall.as_secs_f64(),
        report.percentile(50.0),
        report.percentile(99.0)
    );
    assert_eq!(report.refused, 0, "every device was answered");
    assert_eq!(report.accepted, DEVICES * RECORDS_PER_DEVICE);

    // Every record is on the server exactly once, and the money adds up.
    let (docs, paid): (i64, i64) = server
        .state()
        .store
        .read(|c| {
            Ok(c.sqlite().query_row(
                "SELECT (SELECT count(*) FROM documents WHERE kind = 'payout'),
                        (SELECT COALESCE(SUM(amount_minor), 0) FROM payouts)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .unwrap();
    assert_eq!(docs as usize, sent_ids.len());
    assert_eq!(
        paid, sent_minor,
        "totals paid on the devices equal the server's"
    );
    let on_server: HashSet<Vec<u8>> = server
        .state()
        .store
        .read(|c| {
            let mut stmt = c
                .sqlite()
                .prepare("SELECT id FROM documents WHERE kind = 'payout'")?;
            let ids = stmt
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(ids)
        })
        .unwrap();
    assert_eq!(on_server, sent_ids);

    // No device holds a beneficiary outside its assignment.
    for d in &synced {
        let area = match d.id {
            Some(id) => server
                .state()
                .store
                .read(|c| {
                    Ok(c.sqlite().query_row(
                        "SELECT l.path FROM devices d JOIN locations l ON l.id = d.assignment_id WHERE d.id = ?1",
                        [id],
                        |r| r.get::<_, String>(0),
                    )?)
                })
                .unwrap(),
            None => panic!("an enrolled device has an id"),
        };
        for row in d.rows(RowKind::Beneficiary) {
            let Row::Beneficiary(b) = row else { continue };
            let path: String = server
                .state()
                .store
                .read(|c| {
                    Ok(c.sqlite().query_row(
                        "SELECT path FROM beneficiary_paths WHERE beneficiary_id = ?1",
                        [Uuid::from_slice(&b.id).unwrap()],
                        |r| r.get(0),
                    )?)
                })
                .unwrap();
            assert!(
                path == area || path.starts_with(&format!("{area}/")),
                "a device of {area} holds a beneficiary of {path}"
            );
        }
    }
}
