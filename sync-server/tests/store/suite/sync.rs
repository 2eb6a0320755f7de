//! Sync's storage: what a merged upload leaves, and what devices download after it.

use automerge::AutoCommit;
use outpost_proto::{
    records::{Grievance, GrievanceStatus, Record},
    wire::{DocChanges, DocOutcome, ErrorCode},
};
use outpost_server::{
    Error,
    demo::{self, DemoOptions},
    store::Store,
    sync::store::{
        records::{self, Origin},
        replica,
    },
    users::store as users,
};
use uuid::Uuid;

use super::open_in;

fn demo_store(dir: &std::path::Path) -> Store {
    let store = open_in(dir, "registry");
    demo::load(
        &store,
        &DemoOptions {
            households: 5,
            seed: 3,
            as_of: demo::today(),
        },
    )
    .unwrap();
    store
}

/// The changes every device that did not make them downloads for `doc`, from the start.
fn downloaded(store: &Store, doc: Uuid) -> usize {
    let (mut changes, mut cursor) = (0, 0);
    loop {
        let reply = store
            .read(|c| records::changes_since(c, Uuid::nil(), "N", cursor, 0))
            .unwrap();
        changes += reply
            .docs
            .iter()
            .filter(|d| d.doc_id == doc.as_bytes())
            .map(|d| d.changes.len())
            .sum::<usize>();
        cursor = reply.next_cursor;
        if !reply.more {
            return changes;
        }
    }
}

/// A record merged once is downloaded once; the same changes sent again (a phone that never
/// heard the answer) are accepted and store nothing new.
#[test]
fn a_record_sent_twice_is_stored_and_downloaded_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo_store(dir.path());
    let agent = store
        .read(|c| users::user_by_username(c, "agent.n-mz"))
        .unwrap();
    let origin = Origin {
        device_id: None,
        scope: agent.scope(),
        home_path: "N/N-MZ".into(),
        actor: "agent:agent.n-mz".into(),
        user_id: Some(agent.id),
        author: "agent.n-mz".into(),
    };
    let mut doc = AutoCommit::new();
    Record::Grievance(Grievance {
        beneficiary_id: None,
        category: "PAYMENT_NOT_RECEIVED".into(),
        description: "no cash in October".into(),
        status: GrievanceStatus::Open,
        assignee: None,
        comments: vec![],
        created_at: chrono::Utc::now().fixed_offset(),
    })
    .write_new(&mut doc)
    .unwrap();
    let id = Uuid::now_v7();
    let changes: Vec<Vec<u8>> = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let send = || {
        let dc = DocChanges {
            doc_id: id.as_bytes().to_vec(),
            kind: "grievance".into(),
            changes: changes.clone(),
            device_seq: 0,
        };
        let result = store
            .write(|tx| records::push(tx, &origin, records::prepare(vec![dc])))
            .unwrap();
        assert_eq!(
            result[0].outcome,
            DocOutcome::Accepted as i32,
            "{}",
            result[0].reason
        );
    };
    send();
    let stored = store.read(|c| c.row_count("doc_changes")).unwrap();
    assert_eq!(downloaded(&store, id), changes.len());
    send();
    assert_eq!(store.read(|c| c.row_count("doc_changes")).unwrap(), stored);
    assert_eq!(downloaded(&store, id), changes.len());
    let g = store
        .read(|c| records::get_grievance(c, &agent.scope(), id))
        .unwrap();
    assert_eq!(g.status, GrievanceStatus::Open);
}

/// A cursor the server never gave (a phone restored from a backup of another server) is
/// refused with the code that tells the phone to start again, for both downloads.
#[test]
fn a_cursor_ahead_of_the_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo_store(dir.path());
    let ahead = u64::MAX / 2;
    let replica = store.read(|c| replica::page(c, "N", ahead, 0));
    assert!(
        matches!(
            replica,
            Err(Error::Refused {
                code: ErrorCode::CursorInvalid,
                ..
            })
        ),
        "{replica:?}"
    );
    let changes = store.read(|c| records::changes_since(c, Uuid::nil(), "N", ahead, 0));
    assert!(
        matches!(
            changes,
            Err(Error::Refused {
                code: ErrorCode::CursorInvalid,
                ..
            })
        ),
        "{changes:?}"
    );
    // From the start, both answer.
    let first = store.read(|c| replica::page(c, "N", 0, 0)).unwrap();
    assert!(!first.rows.is_empty());
    assert!(
        store
            .read(|c| records::changes_since(c, Uuid::nil(), "N", 0, 0))
            .is_ok()
    );
}

/// The replica log keeps one entry per row and partition, however often the row changes: a
/// first download reads the live rows, not their history, and a device that already holds
/// the row receives it once more, as it is now.
#[test]
fn the_replica_log_holds_each_row_once_however_often_it_changes() {
    use outpost_proto::BeneficiaryStatus;
    use outpost_server::{areas::store::Scope, registry::store as registry};
    let dir = tempfile::tempdir().unwrap();
    let store = demo_store(dir.path());
    let logged = || store.read(|c| c.row_count("replica_log")).unwrap();
    let head = |cursor| {
        let mut cursor = cursor;
        let mut rows = Vec::new();
        loop {
            let page = store.read(|c| replica::page(c, "N", cursor, 0)).unwrap();
            rows.extend(page.rows);
            cursor = page.next_cursor;
            if !page.more {
                return (cursor, rows);
            }
        }
    };
    let (cursor, first) = head(0);
    let before = logged();
    let beneficiary = store
        .read(|c| {
            registry::list_beneficiaries(
                c,
                &Scope::Area { path: "N".into() },
                None,
                Some(BeneficiaryStatus::Active),
                1,
                0,
            )
        })
        .unwrap()
        .remove(0);
    for to in [BeneficiaryStatus::Suspended, BeneficiaryStatus::Active].repeat(5) {
        store
            .write(|tx| {
                registry::change_status(
                    tx,
                    "user:sup",
                    &Scope::National,
                    beneficiary.id,
                    to,
                    "field check",
                )
            })
            .unwrap();
    }
    assert_eq!(
        logged(),
        before,
        "ten status changes left one entry for the row"
    );

    let (_, again) = head(cursor);
    let ids: Vec<_> = again
        .iter()
        .map(|r| match &r.row {
            Some(outpost_proto::wire::Row::Beneficiary(b)) => (b.id.clone(), b.status.clone()),
            other => panic!("only the changed beneficiary comes after the head: {other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        vec![(beneficiary.id.as_bytes().to_vec(), "ACTIVE".to_owned())]
    );
    // From the start, the same rows as before the changes: none twice.
    let (_, fresh) = head(0);
    assert_eq!(fresh.len(), first.len());
}
