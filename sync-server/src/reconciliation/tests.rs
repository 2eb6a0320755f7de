//! One test per line status and per exception, on inputs built by hand.

use chrono::{TimeZone, Utc};

use super::*;

fn mwk() -> Currency {
    "MWK".parse().unwrap()
}

fn t(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn id(n: u64) -> Uuid {
    Uuid::from_u64_pair(0x0190_0000_0000_7000, n)
}

const AGENT: u64 = 900;

struct Case {
    input: Input,
}

impl Case {
    /// Entitlement `n` (id n, beneficiary 100 + n) due 15000 MWK, beneficiary ACTIVE since
    /// before the cycle.
    fn new(entitlements: u64) -> Case {
        let input = Input {
            payroll: PayrollFacts {
                currency: mwk(),
                window_start: t(1, 0),
                window_end: t(30, 23),
                sync_grace: Duration::days(14),
                closed_at: None,
                overpayment_tolerance: 0,
            },
            entitlements: (1..=entitlements)
                .map(|n| EntitlementFacts {
                    id: id(n),
                    beneficiary: id(100 + n),
                    amount_minor: 15000,
                    currency: mwk(),
                    goods: vec![],
                    awaiting_approval: false,
                })
                .collect(),
            payouts: vec![],
            distributions: vec![],
            status_changes: (1..=entitlements)
                .map(|n| StatusChange {
                    beneficiary: id(100 + n),
                    at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                    to: BeneficiaryStatus::Active,
                })
                .collect(),
            floats: vec![],
            external: vec![],
        };
        Case { input }
    }

    /// Payout `p` of entitlement `n`.
    fn pay(&mut self, p: u64, n: u64, amount: i64) -> &mut PayoutFacts {
        self.input.payouts.push(PayoutFacts {
            id: id(1000 + p),
            entitlement: id(n),
            beneficiary: id(100 + n),
            agent: Some(id(AGENT)),
            device: Some(id(800)),
            amount_minor: amount,
            currency: mwk(),
            paid_at: t(10, 9),
            received_at: t(11, 9),
            overridden: false,
            voided: false,
        });
        self.input.payouts.last_mut().unwrap()
    }

    fn issue(&mut self, amount: i64) {
        self.input.floats.push(FloatMovement {
            agent: id(AGENT),
            what: Holding::Cash(mwk()),
            quantity: amount,
        });
    }

    fn run(&self) -> Report {
        reconcile(&self.input)
    }
}

fn kinds(r: &Report) -> Vec<ExceptionKind> {
    r.exceptions.iter().map(|e| e.kind).collect()
}

#[test]
fn paid_in_full_with_the_float_balanced_has_no_exception() {
    let mut c = Case::new(1);
    c.pay(1, 1, 15000);
    c.issue(15000);
    let r = c.run();
    assert_eq!(r.lines[0].status, LineStatus::Paid);
    assert_eq!(r.lines[0].paid_minor, 15000);
    assert!(r.exceptions.is_empty(), "{:?}", r.exceptions);
    assert_eq!(r.totals.by_status["PAID"], 1);
    assert_eq!(r.holdings[0].outstanding(), 0);
}

#[test]
fn unpaid_partly_paid_and_overpaid() {
    let mut c = Case::new(3);
    c.pay(2, 2, 10000);
    c.pay(3, 3, 20000);
    c.issue(30000);
    let r = c.run();
    let statuses: Vec<_> = r.lines.iter().map(|l| l.status).collect();
    assert_eq!(
        statuses,
        [
            LineStatus::Unpaid,
            LineStatus::PartlyPaid,
            LineStatus::Overpaid
        ]
    );
    assert_eq!(
        kinds(&r),
        [ExceptionKind::AmountMismatch, ExceptionKind::AmountMismatch]
    );
    assert_eq!(r.totals.paid_minor, 30000);
    assert_eq!(r.totals.due_minor, 45000);
}

#[test]
fn two_payouts_of_one_entitlement_are_paid_twice() {
    let mut c = Case::new(1);
    c.pay(1, 1, 15000);
    c.pay(2, 1, 15000).device = Some(id(801));
    c.issue(30000);
    let r = c.run();
    assert_eq!(r.lines[0].status, LineStatus::Overpaid);
    assert_eq!(r.lines[0].payouts, 2);
    assert_eq!(
        kinds(&r),
        [ExceptionKind::AmountMismatch, ExceptionKind::PaidTwice]
    );
    let twice = &r.exceptions[1];
    assert_eq!(twice.key, format!("PAID_TWICE:{}", id(1)));
    assert_eq!(twice.entitlement, Some(id(1)));
    assert_eq!(r.lines[0].exceptions, 2);
}

#[test]
fn an_override_on_one_device_is_paid_twice_and_says_so() {
    let mut c = Case::new(1);
    c.pay(1, 1, 15000);
    c.pay(2, 1, 15000).overridden = true;
    c.issue(30000);
    let r = c.run();
    let twice = r
        .exceptions
        .iter()
        .find(|e| e.kind == ExceptionKind::PaidTwice)
        .unwrap();
    assert!(
        twice.detail.contains("over the device's warning"),
        "{}",
        twice.detail
    );
}

#[test]
fn a_voided_payout_is_not_counted_but_is_listed() {
    let mut c = Case::new(1);
    c.pay(1, 1, 15000).voided = true;
    let r = c.run();
    assert_eq!(r.lines[0].status, LineStatus::Unpaid);
    assert_eq!(kinds(&r), [ExceptionKind::Voided]);
    assert_eq!(r.exceptions[0].payout, Some(id(1001)));
}

#[test]
fn a_payout_to_another_beneficiary_or_unknown_entitlement_is_not_entitled() {
    let mut c = Case::new(2);
    c.pay(1, 1, 15000).beneficiary = id(102);
    c.pay(2, 7, 15000);
    c.issue(30000);
    let r = c.run();
    let not: Vec<_> = r
        .exceptions
        .iter()
        .filter(|e| e.kind == ExceptionKind::NotEntitled)
        .map(|e| e.payout)
        .collect();
    assert_eq!(not, [Some(id(1001)), Some(id(1002))]);
}

#[test]
fn an_entitlement_awaiting_its_own_approval_is_not_entitled() {
    let mut c = Case::new(1);
    c.input.entitlements[0].awaiting_approval = true;
    c.pay(1, 1, 15000);
    c.issue(15000);
    assert_eq!(kinds(&c.run()), [ExceptionKind::NotEntitled]);
}

#[test]
fn not_active_is_judged_at_the_earlier_of_device_time_and_receipt() {
    let mut c = Case::new(2);
    // Suspended on the 5th; beneficiary 1 paid on the 10th: not active.
    c.input.status_changes.push(StatusChange {
        beneficiary: id(101),
        at: t(5, 0),
        to: BeneficiaryStatus::Suspended,
    });
    c.pay(1, 1, 15000);
    // Beneficiary 2 suspended on the 12th; paid (device clock) on the 20th but received on
    // the 11th: the device clock is wrong, the payment came first.
    c.input.status_changes.push(StatusChange {
        beneficiary: id(102),
        at: t(12, 0),
        to: BeneficiaryStatus::Suspended,
    });
    let p = c.pay(2, 2, 15000);
    p.paid_at = t(20, 0);
    p.received_at = t(11, 0);
    c.issue(30000);
    let r = c.run();
    assert_eq!(kinds(&r), [ExceptionKind::NotActive]);
    assert_eq!(r.exceptions[0].payout, Some(id(1001)));
    assert!(r.exceptions[0].detail.contains("SUSPENDED"));
}

#[test]
fn outside_the_window_is_judged_by_receipt_time() {
    let mut c = Case::new(3);
    // Device says the 10th, but the server had it before the cycle began.
    c.pay(1, 1, 15000).received_at = Utc.with_ymd_and_hms(2026, 10, 30, 0, 0, 0).unwrap();
    // Received 10 days after the cycle: inside the 14-day grace.
    c.pay(2, 2, 15000).received_at = Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap();
    // Received 20 days after, with a device clock claiming the 10th of November.
    c.pay(3, 3, 15000).received_at = Utc.with_ymd_and_hms(2026, 12, 20, 0, 0, 0).unwrap();
    c.issue(45000);
    let r = c.run();
    let outside: Vec<_> = r
        .exceptions
        .iter()
        .filter(|e| e.kind == ExceptionKind::OutsideWindow)
        .map(|e| e.payout)
        .collect();
    assert_eq!(outside, [Some(id(1001)), Some(id(1003))]);
}

#[test]
fn a_payout_received_after_sign_off_is_a_late_sync() {
    let mut c = Case::new(2);
    c.input.payroll.closed_at = Some(t(25, 0));
    c.pay(1, 1, 15000).received_at = t(24, 0);
    c.pay(2, 2, 15000).received_at = t(26, 0);
    c.issue(30000);
    let r = c.run();
    assert_eq!(kinds(&r), [ExceptionKind::LateSync]);
    assert_eq!(r.exceptions[0].payout, Some(id(1002)));
}

#[test]
fn a_payout_in_another_currency_is_not_counted() {
    let mut c = Case::new(1);
    c.pay(1, 1, 15000).currency = "USD".parse().unwrap();
    c.input.floats.push(FloatMovement {
        agent: id(AGENT),
        what: Holding::Cash("USD".parse().unwrap()),
        quantity: 15000,
    });
    let r = c.run();
    assert_eq!(r.lines[0].status, LineStatus::Unpaid);
    assert_eq!(kinds(&r), [ExceptionKind::CurrencyMismatch]);
}

#[test]
fn goods_handed_out_against_entitled() {
    let mut c = Case::new(3);
    for e in &mut c.input.entitlements {
        e.amount_minor = 0;
        e.goods = vec![("MAIZE".into(), 2), ("SOAP".into(), 1)];
    }
    let hand = |n: u64, items: &[(&str, i64)]| DistributionFacts {
        id: id(2000 + n),
        entitlement: id(n),
        agent: Some(id(AGENT)),
        items: items.iter().map(|(k, q)| (k.to_string(), *q)).collect(),
        voided: false,
    };
    c.input.distributions = vec![
        hand(1, &[("MAIZE", 2), ("SOAP", 1)]),
        hand(2, &[("MAIZE", 1)]),
    ];
    for (item, qty) in [("MAIZE", 3), ("SOAP", 1)] {
        c.input.floats.push(FloatMovement {
            agent: id(AGENT),
            what: Holding::Item(item.into()),
            quantity: qty,
        });
    }
    let r = c.run();
    let statuses: Vec<_> = r.lines.iter().map(|l| l.status).collect();
    assert_eq!(
        statuses,
        [LineStatus::Paid, LineStatus::PartlyPaid, LineStatus::Unpaid]
    );
    assert_eq!(kinds(&r), [ExceptionKind::GoodsMismatch]);
    assert_eq!(r.exceptions[0].entitlement, Some(id(2)));
}

#[test]
fn float_that_does_not_add_up() {
    let mut c = Case::new(2);
    c.pay(1, 1, 15000);
    c.pay(2, 2, 15000);
    c.issue(40000);
    // Returned 5000 of the 10000 left: 5000 unaccounted for.
    c.issue(-5000);
    let r = c.run();
    assert_eq!(kinds(&r), [ExceptionKind::FloatMismatch]);
    let h = &r.holdings[0];
    assert_eq!(
        (h.issued, h.used, h.returned, h.outstanding()),
        (40000, 30000, 5000, 5000)
    );
    assert!(
        r.exceptions[0].detail.contains("issued 400.00 MWK"),
        "{}",
        r.exceptions[0].detail
    );
}

#[test]
fn stock_that_does_not_add_up() {
    let mut c = Case::new(1);
    c.input.entitlements[0].goods = vec![("MAIZE".into(), 1)];
    c.input.entitlements[0].amount_minor = 0;
    c.input.distributions.push(DistributionFacts {
        id: id(2001),
        entitlement: id(1),
        agent: Some(id(AGENT)),
        items: vec![("MAIZE".into(), 1)],
        voided: false,
    });
    let r = c.run();
    assert_eq!(kinds(&r), [ExceptionKind::StockMismatch]);
    assert!(r.exceptions[0].key.ends_with(":MAIZE"));
}

#[test]
fn external_payments_match_by_reference_then_by_beneficiary() {
    let mut c = Case::new(3);
    let line =
        |n: i64, entitlement: Option<Uuid>, beneficiary: Option<Uuid>, amount| ExternalPayment {
            id: n,
            source: "MPAMBA".into(),
            reference: format!("TX{n}"),
            entitlement,
            beneficiary,
            amount_minor: amount,
            currency: mwk(),
        };
    c.input.external = vec![
        line(1, Some(id(1)), None, 15000),
        line(2, None, Some(id(102)), 14000),
        line(3, None, Some(id(999)), 15000),
    ];
    let r = c.run();
    assert_eq!(r.lines[0].status, LineStatus::Paid);
    assert_eq!(r.lines[1].status, LineStatus::PartlyPaid);
    assert_eq!(r.lines[2].status, LineStatus::Unpaid);
    let mut k = kinds(&r);
    k.sort();
    assert_eq!(
        k,
        [
            ExceptionKind::AmountMismatch,
            ExceptionKind::ExternalUnmatched,
            ExceptionKind::ExternalAmountMismatch
        ]
    );
}

#[test]
fn exception_keys_are_stable_and_the_report_is_deterministic() {
    let mut c = Case::new(2);
    c.pay(1, 1, 15000);
    c.pay(2, 1, 15000);
    let a = c.run();
    c.input.payouts.reverse();
    let b = c.run();
    assert_eq!(a.exceptions, b.exceptions);
    assert_eq!(a.lines, b.lines);
}

#[test]
fn sums_beyond_an_i64_are_exact_not_wrapped() {
    // Amounts no edge lets in any more, as an older server may have stored them.
    const HUGE: i64 = 4_700_000_000_000_000_000;
    let mut c = Case::new(2);
    c.pay(1, 1, HUGE);
    c.pay(2, 1, HUGE);
    c.pay(3, 2, HUGE);
    c.issue(i64::MAX);
    c.issue(i64::MAX);
    c.issue(i64::MIN);
    let r = c.run();
    let twice = 2 * i128::from(HUGE);
    assert_eq!(r.lines[0].paid_minor, twice);
    assert_eq!(r.lines[0].status, LineStatus::Overpaid);
    assert_eq!(r.totals.paid_minor, 3 * i128::from(HUGE));
    assert_eq!(r.totals.due_minor, 30000);
    let h = &r.holdings[0];
    assert_eq!(h.issued, 2 * i128::from(i64::MAX));
    assert_eq!(h.returned, -i128::from(i64::MIN));
    assert_eq!(h.used, 3 * i128::from(HUGE));
    assert_eq!(h.outstanding(), h.issued - h.used - h.returned);
    let amount = r
        .exceptions
        .iter()
        .find(|e| e.kind == ExceptionKind::AmountMismatch && e.entitlement == Some(id(1)))
        .unwrap();
    assert!(
        amount.detail.contains("paid 94000000000000000.00 MWK"),
        "{}",
        amount.detail
    );
}

#[test]
fn the_plans_tolerance_decides_when_overpaid_is_an_exception() {
    let mut c = Case::new(3);
    c.input.payroll.overpayment_tolerance = 100;
    c.pay(1, 1, 15100);
    c.pay(2, 2, 15101);
    c.pay(3, 3, 14900);
    c.issue(45101);
    let r = c.run();
    let statuses: Vec<_> = r.lines.iter().map(|l| l.status).collect();
    assert_eq!(
        statuses,
        [
            LineStatus::Overpaid,
            LineStatus::Overpaid,
            LineStatus::PartlyPaid
        ],
        "the status is the fact, whatever the tolerance"
    );
    let flagged: Vec<_> = r
        .exceptions
        .iter()
        .filter(|e| e.kind == ExceptionKind::AmountMismatch)
        .map(|e| e.entitlement)
        .collect();
    assert_eq!(
        flagged,
        [Some(id(2)), Some(id(3))],
        "within the tolerance is no exception; beyond it, or short, is"
    );
}
