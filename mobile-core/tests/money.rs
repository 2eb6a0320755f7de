//! Money totals on the device: amounts are bounded where they are written, and every total
//! (day summary, cash in hand, what is still due) is summed wide, so none wraps.

mod common;

use common::*;
use outpost_core::Error;

const MAX: i64 = outpost_proto::MAX_PAYMENT_MINOR;

#[test]
fn large_amounts_within_the_bound_add_up_exactly_and_beyond_it_are_refused() {
    let server = Server::start(40);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    let refused = d
        .core
        .record_cash(true, MAX + 1, "MWK".into(), "a slip of the finger".into())
        .expect_err("beyond the bound");
    assert!(
        matches!(&refused, Error::Invalid { reason } if reason.contains("beyond any plausible amount")),
        "{refused:?}"
    );
    for _ in 0..3 {
        d.cash(MAX);
    }
    let (e, detail) = d.payable();
    d.pay(&e, &collector(&detail)).unwrap();
    let summary = d.core.day_summary(None).unwrap();
    let cash = &summary.float[0];
    assert_eq!(cash.received_minor, 3 * MAX);
    assert_eq!(cash.paid_out_minor, e.amount.amount_minor);
    assert_eq!(cash.in_hand_minor, 3 * MAX - e.amount.amount_minor);
    assert_eq!(summary.paid[0].amount_minor, e.amount.amount_minor);
}

#[test]
fn totals_past_an_i64_say_so_instead_of_wrapping() {
    let server = Server::start(40);
    let d = Device::enrolled(&server, "agent.n-mz", "N-MZ");
    d.cash(1000);
    // Moves no check lets in any more, as an older app may have written them: their total
    // does not fit the i64 the screens show.
    d.core.with_connection(|c| {
        c.execute(
            "INSERT INTO ledger (enrolment_id, kind, currency, amount_minor, note, at, day)
             SELECT enrolment_id, kind, currency, 4700000000000000000, note, at, day FROM ledger",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO ledger (enrolment_id, kind, currency, amount_minor, note, at, day)
             SELECT enrolment_id, kind, currency, 4700000000000000000, note, at, day FROM ledger
             WHERE amount_minor = 1000",
            [],
        )
        .unwrap();
    });
    match d.core.day_summary(None) {
        Err(Error::Internal { reason }) => {
            assert!(
                reason.contains("beyond what this phone can show"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}
