//! What a review of the device core found, each proven fixed: an orphaned record edit is
//! still sent, witness PINs count, a cursor reset recovers, a panicking listener does not
//! block later syncs, odd search text, goods-only entitlements, cards not yet in force,
//! and cash in hand whatever day the clock gave a payout.

mod common;

use common::*;
use outpost_core::{Error, types::*};

fn pending(d: &Device) -> u64 {
    d.core.sync_status().unwrap().pending
}

#[test]
fn an_edit_of_an_earlier_agents_record_is_sent_by_the_current_one() {
    let server = Server::start(30);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let category = d.core.grievance_categories().unwrap()[0].code.clone();
    let g = d
        .core
        .create_grievance(GrievanceInput {
            beneficiary_id: None,
            category,
            description: "queue too long".into(),
        })
        .unwrap();
    d.core.sync(None).unwrap();
    // Another enrolment on the phone; the first, with nothing left to send, is forgotten.
    let code = server.code("agent.n-mz", "N-MZ");
    d.core
        .enrol(server.base.clone(), code, "4826".into(), "p".into(), None)
        .unwrap();
    d.core.sync(None).unwrap();
    d.core
        .comment_grievance(g.clone(), "follow-up by the second agent".into())
        .unwrap();
    assert_eq!(pending(&d), 1);
    let report = d.core.sync(None).unwrap();
    assert_eq!(report.accepted, 1, "{report:?}");
    assert_eq!(pending(&d), 0);
    assert!(report.status.up_to_date);
}

#[test]
fn wrong_witness_pins_count_towards_the_lockout() {
    let server = Server::start(30);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.cash(10_000_000);
    let (e, detail) = d.payable();
    let witness = |pin: &str| {
        d.core.pay(PayoutInput {
            entitlement_id: e.id.clone(),
            collector_id: collector(&detail),
            amount_minor: 100,
            currency: "MWK".into(),
            proof: ProofInput::AgentPin { pin: pin.into() },
            override_reason: None,
        })
    };
    for left in (1..=4).rev() {
        assert!(
            matches!(witness("1357"), Err(Error::WrongPin { attempts_left }) if attempts_left == left)
        );
    }
    assert!(matches!(witness("1357"), Err(Error::PinLocked { .. })));
    assert!(matches!(witness(PIN), Err(Error::PinLocked { .. })));
}

#[test]
fn a_changes_cursor_the_server_no_longer_knows_starts_again() {
    let server = Server::start(30);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.core.with_connection(|c| {
        c.execute("UPDATE enrolments SET changes_cursor = 999999999", [])
            .unwrap()
    });
    let report = d.core.sync(None).unwrap();
    assert!(report.status.up_to_date);
}

struct Boom;

impl SyncListener for Boom {
    fn on_progress(&self, _: SyncProgressInfo) {
        panic!("listener threw")
    }
}

#[test]
fn a_panicking_listener_fails_one_sync_not_the_next() {
    let server = Server::start(30);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    assert!(matches!(
        d.core.sync(Some(Box::new(Boom))),
        Err(Error::Internal { reason }) if reason == "listener threw"
    ));
    d.core.sync(None).expect("the next sync runs");
}

#[test]
fn odd_search_text_finds_nothing_rather_than_failing() {
    let server = Server::start(30);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    for q in [
        "\"",
        "*",
        "NEAR",
        "-",
        "(",
        ")",
        "a OR b",
        "O'Brien",
        "x:y",
        "^a",
        "a\u{0}b",
        "💥",
        "NEAR(a b)",
        "-ab*",
        "\u{7}",
    ] {
        assert!(d.core.search(q.into(), 5).is_ok(), "{q:?}");
    }
}

#[test]
fn a_goods_only_entitlement_is_not_paid_in_cash() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.cash(10_000_000);
    let due = d.core.due(Some(demo_day()), 1000).unwrap();
    let g = due
        .iter()
        .find(|x| x.entitlement.amount.amount_minor == 0)
        .expect("a food kit");
    let detail = d.core.beneficiary(g.beneficiary.id.clone()).unwrap();
    let r = d.core.pay(PayoutInput {
        entitlement_id: g.entitlement.id.clone(),
        collector_id: collector(&detail),
        amount_minor: 1,
        currency: g.entitlement.amount.currency.clone(),
        proof: ProofInput::Signature {
            reference: "s".into(),
        },
        override_reason: None,
    });
    assert!(matches!(r, Err(Error::Invalid { reason }) if reason.contains("goods")));
}

#[test]
fn a_card_not_yet_in_force_on_the_phone_is_not_trusted() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.cash(10_000_000);
    let (e, detail) = d.payable();
    let qr = server.card(&detail.summary.id, None);
    // The card exists at the office, but this phone has not synced since: its serial is not
    // among the beneficiary's cards here (as after a first download cut half way).
    let r = d.core.pay(PayoutInput {
        entitlement_id: e.id.clone(),
        collector_id: collector(&detail),
        amount_minor: e.remaining_minor,
        currency: "MWK".into(),
        proof: ProofInput::Card { text: qr },
        override_reason: None,
    });
    assert!(matches!(r, Err(Error::NotSyncedYet { .. })), "{r:?}");
}

#[test]
fn cash_in_hand_counts_payouts_whatever_day_the_clock_gave_them() {
    let server = Server::start(60);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let (e, detail) = d.payable();
    d.cash(e.remaining_minor);
    d.pay(&e, &collector(&detail)).unwrap();
    // The phone's clock was a day ahead when it paid.
    d.core.with_connection(|c| {
        c.execute("UPDATE payouts SET day = '2999-01-01'", [])
            .unwrap()
    });
    let (e2, detail2) = d.payable_nth(0);
    assert!(matches!(
        d.pay(&e2, &collector(&detail2)),
        Err(Error::OverFloat { in_hand: 0, .. })
    ));
}
