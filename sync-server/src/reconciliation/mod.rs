//! Reconciliation: what was due against what was paid, handed out, issued and returned.
//!
//! [`reconcile`] is a pure function of its inputs (no clock, no database), so every status and
//! exception has a unit test and a million-line payroll reconciles in well under a second. The
//! store loads the inputs (`reconciliation::store`) and keeps what people decide about the
//! exceptions; the engine itself never changes.
//!
//! Times are judged with the server's receipt time wherever a device's clock could mislead: a
//! payout cannot have happened after the server received it, so "when" is the earlier of the
//! device's time and the receipt.
//!
//! Sums (paid per line, totals, each agent's float and stock) are `i128`: the amounts are
//! device facts, bounded at the edge but summed over a million lines, and a report must come
//! out whole whatever the records hold, never wrapped, never a panic.

pub mod cache;
pub mod http;
pub mod sheets;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Duration, Utc};
use outpost_proto::{BeneficiaryStatus, Currency};
use serde::Serialize;
use uuid::Uuid;

/// The payroll as reconciliation needs it.
#[derive(Debug, Clone)]
pub struct PayrollFacts {
    pub currency: Currency,
    /// The cycle, as instants: from the first day's start to the last day's end (UTC).
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// How long after the cycle a payout may still reach the server without being judged
    /// outside it (devices are offline for days).
    pub sync_grace: Duration,
    /// When the payroll was signed off, if it was.
    pub closed_at: Option<DateTime<Utc>>,
    /// How far a line may be paid above its due before that is an exception (the plan's
    /// `rule.overpayment_tolerance`, 0 unless set): rounding at a cash point, say.
    pub overpayment_tolerance: i64,
}

#[derive(Debug, Clone)]
pub struct EntitlementFacts {
    pub id: Uuid,
    pub beneficiary: Uuid,
    pub amount_minor: i64,
    pub currency: Currency,
    /// Goods due, by item code.
    pub goods: Vec<(String, i64)>,
    /// Above the plan's single-transaction limit and not yet approved on its own.
    pub awaiting_approval: bool,
}

#[derive(Debug, Clone)]
pub struct PayoutFacts {
    pub id: Uuid,
    pub entitlement: Uuid,
    pub beneficiary: Uuid,
    /// The agent whose device recorded it (None: recorded at the office).
    pub agent: Option<Uuid>,
    pub device: Option<Uuid>,
    pub amount_minor: i64,
    pub currency: Currency,
    pub paid_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Paid over the device's "already paid" warning, with a reason.
    pub overridden: bool,
    pub voided: bool,
}

#[derive(Debug, Clone)]
pub struct DistributionFacts {
    pub id: Uuid,
    pub entitlement: Uuid,
    pub agent: Option<Uuid>,
    pub items: Vec<(String, i64)>,
    pub voided: bool,
}

/// One status change of a beneficiary (the history is complete: enrolment is the first).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub beneficiary: Uuid,
    pub at: DateTime<Utc>,
    pub to: BeneficiaryStatus,
}

/// Cash or goods handed to an agent for this payroll, or handed back.
#[derive(Debug, Clone)]
pub struct FloatMovement {
    pub agent: Uuid,
    pub what: Holding,
    /// Positive: issued to the agent; negative: returned by the agent.
    pub quantity: i64,
}

/// What an agent holds: cash in a currency (minor units) or an item (its unit).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "type", content = "code", rename_all = "lowercase")]
pub enum Holding {
    Cash(Currency),
    Item(String),
}

/// A payment reported by someone else: a provider's statement line, or a row of an imported
/// openIMIS reconciliation sheet.
#[derive(Debug, Clone)]
pub struct ExternalPayment {
    pub id: i64,
    pub source: String,
    pub reference: String,
    /// Set when the line names the entitlement (by reference); otherwise matched by
    /// beneficiary and amount.
    pub entitlement: Option<Uuid>,
    pub beneficiary: Option<Uuid>,
    pub amount_minor: i64,
    pub currency: Currency,
}

/// Everything reconciliation reads.
#[derive(Debug, Clone)]
pub struct Input {
    pub payroll: PayrollFacts,
    pub entitlements: Vec<EntitlementFacts>,
    pub payouts: Vec<PayoutFacts>,
    pub distributions: Vec<DistributionFacts>,
    pub status_changes: Vec<StatusChange>,
    pub floats: Vec<FloatMovement>,
    pub external: Vec<ExternalPayment>,
}

outpost_proto::named_enum!(
    LineStatus, "line status" {
        Paid = "PAID",
        PartlyPaid = "PARTLY_PAID",
        Unpaid = "UNPAID",
        Overpaid = "OVERPAID",
    }
);

impl LineStatus {
    fn judge(due: i64, paid: i128) -> LineStatus {
        let due = i128::from(due);
        match paid {
            0 if due > 0 => LineStatus::Unpaid,
            p if p > due => LineStatus::Overpaid,
            p if p == due => LineStatus::Paid,
            _ => LineStatus::PartlyPaid,
        }
    }
}

/// One entitlement's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub entitlement: Uuid,
    pub beneficiary: Uuid,
    pub due_minor: i64,
    /// Payouts not voided, in the payroll's currency, plus matched external payments.
    pub paid_minor: i128,
    pub payouts: u32,
    pub status: LineStatus,
    /// Whether any exception names this entitlement or one of its payouts.
    pub exceptions: u32,
}

outpost_proto::named_enum!(
    ExceptionKind, "exception kind" {
        /// More than one payout of one entitlement stands (two devices, or an override).
        PaidTwice = "PAID_TWICE",
        /// A payout against an entitlement not payable yet, or of another beneficiary.
        NotEntitled = "NOT_ENTITLED",
        /// The beneficiary was not ACTIVE when paid.
        NotActive = "NOT_ACTIVE",
        /// Received before the cycle began, or later than the cycle plus the sync grace.
        OutsideWindow = "OUTSIDE_WINDOW",
        /// Received after the payroll was signed off.
        LateSync = "LATE_SYNC",
        CurrencyMismatch = "CURRENCY_MISMATCH",
        /// Partly paid, or paid above the due by more than the plan's tolerance.
        AmountMismatch = "AMOUNT_MISMATCH",
        /// A payout was voided: someone should know why.
        Voided = "VOIDED",
        /// Goods handed out differ from those entitled.
        GoodsMismatch = "GOODS_MISMATCH",
        /// An agent's cash issued ≠ paid out + returned.
        FloatMismatch = "FLOAT_MISMATCH",
        /// An agent's goods issued ≠ handed out + returned.
        StockMismatch = "STOCK_MISMATCH",
        /// A provider or sheet line that matches no entitlement.
        ExternalUnmatched = "EXTERNAL_UNMATCHED",
        /// A provider or sheet line whose amount differs from the entitlement's.
        ExternalAmountMismatch = "EXTERNAL_AMOUNT_MISMATCH",
    }
);

/// Something a supervisor must look at before signing the payroll off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exception {
    pub kind: ExceptionKind,
    /// Stable across recomputations (kind and subject), so a resolution stays attached.
    pub key: String,
    pub entitlement: Option<Uuid>,
    pub beneficiary: Option<Uuid>,
    pub payout: Option<Uuid>,
    pub agent: Option<Uuid>,
    /// Facts for the reader, e.g. "2 payouts of 15000 MWK".
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub lines: usize,
    pub due_minor: i128,
    pub paid_minor: i128,
    pub by_status: BTreeMap<&'static str, usize>,
    pub exceptions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub lines: Vec<Line>,
    pub exceptions: Vec<Exception>,
    /// Per agent and holding: issued, used (paid out or handed out), returned.
    pub holdings: Vec<HoldingBalance>,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldingBalance {
    pub agent: Uuid,
    pub what: Holding,
    pub issued: i128,
    pub used: i128,
    pub returned: i128,
}

impl HoldingBalance {
    /// What the agent should still hold: zero once the payroll is done.
    pub fn outstanding(&self) -> i128 {
        self.issued - self.used - self.returned
    }
}

/// UUIDv7 ids end in random bits, so their last eight bytes are already a good hash; SipHash
/// over a million keys was a third of the engine's time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
        self.0 = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<Uuid, V, BuildHasherDefault<IdHasher>>;

fn id_map<V>(capacity: usize) -> IdMap<V> {
    HashMap::with_capacity_and_hasher(capacity, Default::default())
}

/// Reconciles one payroll. Deterministic: the same input gives the same report, lines in the
/// order of `input.entitlements` and exceptions sorted by key.
pub fn reconcile(input: &Input) -> Report {
    let p = &input.payroll;
    let mut index: IdMap<usize> = id_map(input.entitlements.len());
    for (i, e) in input.entitlements.iter().enumerate() {
        index.insert(e.id, i);
    }
    let mut lines: Vec<Line> = input
        .entitlements
        .iter()
        .map(|e| Line {
            entitlement: e.id,
            beneficiary: e.beneficiary,
            due_minor: e.amount_minor,
            paid_minor: 0,
            payouts: 0,
            status: LineStatus::Unpaid,
            exceptions: 0,
        })
        .collect();
    let mut exceptions: Vec<Exception> = Vec::new();
    let mut except = |kind: ExceptionKind, subject: Uuid, e: Exception| {
        exceptions.push(Exception {
            key: format!("{}:{subject}", kind.as_str()),
            kind,
            ..e
        });
    };
    let blank = Exception {
        kind: ExceptionKind::PaidTwice,
        key: String::new(),
        entitlement: None,
        beneficiary: None,
        payout: None,
        agent: None,
        detail: String::new(),
    };

    let history = StatusHistory::new(&input.status_changes);
    let mut used: BTreeMap<(Uuid, Holding), i128> = BTreeMap::new();
    let mut overridden = vec![false; lines.len()];

    for pay in &input.payouts {
        let at = pay.paid_at.min(pay.received_at);
        let line = index.get(&pay.entitlement).copied();
        let e = line.map(|i| &input.entitlements[i]);
        let this = |detail: String| Exception {
            entitlement: Some(pay.entitlement),
            beneficiary: Some(pay.beneficiary),
            payout: Some(pay.id),
            agent: pay.agent,
            detail,
            ..blank.clone()
        };
        if pay.voided {
            except(
                ExceptionKind::Voided,
                pay.id,
                this(money(pay.amount_minor, pay.currency)),
            );
            continue;
        }
        if let Some(agent) = pay.agent {
            *used
                .entry((agent, Holding::Cash(pay.currency)))
                .or_default() += i128::from(pay.amount_minor);
        }
        match e {
            None => except(
                ExceptionKind::NotEntitled,
                pay.id,
                this("the entitlement is not in this payroll".into()),
            ),
            Some(e) if e.beneficiary != pay.beneficiary => except(
                ExceptionKind::NotEntitled,
                pay.id,
                this("the entitlement belongs to another beneficiary".into()),
            ),
            Some(e) if e.awaiting_approval => except(
                ExceptionKind::NotEntitled,
                pay.id,
                this("the entitlement was still awaiting its own approval".into()),
            ),
            Some(_) => {}
        }
        if let Some(status) = history.at(pay.beneficiary, at)
            && status != BeneficiaryStatus::Active
        {
            except(
                ExceptionKind::NotActive,
                pay.id,
                this(format!("the beneficiary was {status} when paid")),
            );
        }
        // Before the cycle: by the earlier time (a payout cannot postdate its receipt).
        // After it: by receipt alone, with a grace for devices offline for days.
        if at < p.window_start || pay.received_at > p.window_end + p.sync_grace {
            except(
                ExceptionKind::OutsideWindow,
                pay.id,
                this(format!(
                    "received {}",
                    pay.received_at.format("%Y-%m-%d %H:%M UTC")
                )),
            );
        }
        if let Some(closed) = p.closed_at
            && pay.received_at > closed
        {
            except(
                ExceptionKind::LateSync,
                pay.id,
                this(format!(
                    "received {} after sign-off on {}",
                    pay.received_at.format("%Y-%m-%d %H:%M UTC"),
                    closed.format("%Y-%m-%d %H:%M UTC")
                )),
            );
        }
        let Some(i) = line else { continue };
        let e = &input.entitlements[i];
        if pay.currency != e.currency {
            except(
                ExceptionKind::CurrencyMismatch,
                pay.id,
                this(format!(
                    "paid {}, due in {}",
                    money(pay.amount_minor, pay.currency),
                    e.currency.as_str()
                )),
            );
            continue;
        }
        lines[i].paid_minor += i128::from(pay.amount_minor);
        lines[i].payouts += 1;
        overridden[i] |= pay.overridden;
    }

    // External payments: by reference first, else the beneficiary's one entitlement here.
    let mut by_beneficiary: IdMap<usize> = id_map(0);
    if input.external.iter().any(|x| x.entitlement.is_none()) {
        by_beneficiary.reserve(lines.len());
        for (i, e) in input.entitlements.iter().enumerate() {
            by_beneficiary.insert(e.beneficiary, i);
        }
    }
    let mut external_lines = vec![0u32; lines.len()];
    for x in &input.external {
        let found = match x.entitlement {
            Some(id) => index.get(&id).copied(),
            None => x.beneficiary.and_then(|b| by_beneficiary.get(&b).copied()),
        };
        let subject = Uuid::from_u64_pair(0, x.id as u64);
        let mut this = |kind, entitlement: Option<&EntitlementFacts>, detail: String| {
            except(
                kind,
                subject,
                Exception {
                    entitlement: entitlement.map(|e| e.id),
                    beneficiary: entitlement.map(|e| e.beneficiary).or(x.beneficiary),
                    detail: format!("{} {}: {detail}", x.source, x.reference),
                    ..blank.clone()
                },
            )
        };
        let Some(i) = found else {
            this(
                ExceptionKind::ExternalUnmatched,
                None,
                format!(
                    "{} matches no entitlement",
                    money(x.amount_minor, x.currency)
                ),
            );
            continue;
        };
        let e = &input.entitlements[i];
        if x.currency != e.currency || x.amount_minor != e.amount_minor {
            this(
                ExceptionKind::ExternalAmountMismatch,
                Some(e),
                format!(
                    "{} against {} due",
                    money(x.amount_minor, x.currency),
                    money(e.amount_minor, e.currency)
                ),
            );
        }
        if x.currency == e.currency {
            lines[i].paid_minor += i128::from(x.amount_minor);
            lines[i].payouts += 1;
            external_lines[i] += 1;
        }
    }

    // Goods handed out, per entitlement and item.
    let mut handed: IdMap<BTreeMap<&str, i128>> = id_map(0);
    for d in &input.distributions {
        if d.voided {
            except(
                ExceptionKind::Voided,
                d.id,
                Exception {
                    entitlement: Some(d.entitlement),
                    agent: d.agent,
                    detail: "goods hand-out voided".into(),
                    ..blank.clone()
                },
            );
            continue;
        }
        let entry = handed.entry(d.entitlement).or_default();
        for (item, qty) in &d.items {
            *entry.entry(item.as_str()).or_default() += i128::from(*qty);
            if let Some(agent) = d.agent {
                *used
                    .entry((agent, Holding::Item(item.clone())))
                    .or_default() += i128::from(*qty);
            }
        }
    }

    for (i, e) in input.entitlements.iter().enumerate() {
        let line = &mut lines[i];
        let got = handed.get(&e.id);
        line.status = if e.amount_minor > 0 || e.goods.is_empty() {
            LineStatus::judge(e.amount_minor, line.paid_minor)
        } else {
            goods_status(&e.goods, got)
        };
        let subject = |detail: String| Exception {
            entitlement: Some(e.id),
            beneficiary: Some(e.beneficiary),
            detail,
            ..blank.clone()
        };
        if line.payouts > 1 {
            let how = if overridden[i] {
                ", one over the device's warning"
            } else {
                ""
            };
            except(
                ExceptionKind::PaidTwice,
                e.id,
                subject(format!("{} payments{how}", line.payouts)),
            );
        }
        let beyond_tolerance = line.paid_minor
            > i128::from(e.amount_minor) + i128::from(p.overpayment_tolerance.max(0));
        if e.amount_minor > 0
            && (line.status == LineStatus::PartlyPaid
                || (line.status == LineStatus::Overpaid && beyond_tolerance))
        {
            except(
                ExceptionKind::AmountMismatch,
                e.id,
                subject(format!(
                    "paid {} of {}",
                    money(line.paid_minor, e.currency),
                    money(e.amount_minor, e.currency)
                )),
            );
        }
        if let Some(got) = got {
            let due: BTreeMap<&str, i128> = e
                .goods
                .iter()
                .map(|(k, q)| (k.as_str(), i128::from(*q)))
                .collect();
            if got.iter().any(|(item, q)| due.get(item) != Some(q))
                || due.keys().any(|item| !got.contains_key(item))
            {
                let list: Vec<String> = got.iter().map(|(k, q)| format!("{q} {k}")).collect();
                except(
                    ExceptionKind::GoodsMismatch,
                    e.id,
                    subject(format!("handed out {}", list.join(", "))),
                );
            }
        }
    }

    // Each agent's float and stock: issued = used + returned.
    let mut issued: BTreeMap<(Uuid, Holding), (i128, i128)> = BTreeMap::new();
    for m in &input.floats {
        let entry = issued.entry((m.agent, m.what.clone())).or_default();
        if m.quantity >= 0 {
            entry.0 += i128::from(m.quantity);
        } else {
            entry.1 -= i128::from(m.quantity);
        }
    }
    let mut holdings = Vec::new();
    let mut keys: Vec<(Uuid, Holding)> = issued.keys().chain(used.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    for (agent, what) in keys {
        let (given, returned) = issued
            .get(&(agent, what.clone()))
            .copied()
            .unwrap_or_default();
        let balance = HoldingBalance {
            agent,
            what: what.clone(),
            issued: given,
            used: used
                .get(&(agent, what.clone()))
                .copied()
                .unwrap_or_default(),
            returned,
        };
        if balance.outstanding() != 0 {
            let (kind, text) = match &what {
                Holding::Cash(c) => (
                    ExceptionKind::FloatMismatch,
                    format!(
                        "issued {}, paid out {}, returned {}",
                        money(balance.issued, *c),
                        money(balance.used, *c),
                        money(balance.returned, *c)
                    ),
                ),
                Holding::Item(item) => (
                    ExceptionKind::StockMismatch,
                    format!(
                        "{item}: issued {}, handed out {}, returned {}",
                        balance.issued, balance.used, balance.returned
                    ),
                ),
            };
            let name = match &what {
                Holding::Cash(c) => c.as_str().to_owned(),
                Holding::Item(item) => item.clone(),
            };
            exceptions.push(Exception {
                kind,
                key: format!("{}:{agent}:{name}", kind.as_str()),
                agent: Some(agent),
                detail: text,
                ..blank.clone()
            });
        }
        holdings.push(balance);
    }

    exceptions.sort_by(|a, b| a.key.cmp(&b.key));
    exceptions.dedup_by(|a, b| a.key == b.key);
    for x in &exceptions {
        if let Some(i) = x.entitlement.and_then(|id| index.get(&id)) {
            lines[*i].exceptions += 1;
        }
    }
    let mut totals = Totals {
        lines: lines.len(),
        exceptions: exceptions.len(),
        ..Totals::default()
    };
    for s in LineStatus::ALL {
        totals.by_status.insert(s.as_str(), 0);
    }
    for l in &lines {
        totals.due_minor += i128::from(l.due_minor);
        totals.paid_minor += l.paid_minor;
        *totals.by_status.entry(l.status.as_str()).or_default() += 1;
    }
    Report {
        lines,
        exceptions,
        holdings,
        totals,
    }
}

fn goods_status(due: &[(String, i64)], got: Option<&BTreeMap<&str, i128>>) -> LineStatus {
    let Some(got) = got else {
        return LineStatus::Unpaid;
    };
    let mut over = false;
    let mut short = false;
    for (item, q) in due {
        let have = got.get(item.as_str()).copied().unwrap_or(0);
        over |= have > i128::from(*q);
        short |= have < i128::from(*q);
    }
    over |= got.keys().any(|k| !due.iter().any(|(item, _)| item == k));
    match (over, short) {
        (true, _) => LineStatus::Overpaid,
        (false, false) => LineStatus::Paid,
        (false, true) if got.values().all(|q| *q == 0) => LineStatus::Unpaid,
        (false, true) => LineStatus::PartlyPaid,
    }
}

/// "150.00 MWK": in the currency's unit, as people read amounts.
fn money(minor: impl Into<i128>, currency: Currency) -> String {
    format!(
        "{} {}",
        currency.format_wide(minor.into()),
        currency.as_str()
    )
}

/// Each beneficiary's status over time, for "was it ACTIVE when paid".
struct StatusHistory<'a> {
    by_beneficiary: IdMap<Vec<&'a StatusChange>>,
}

impl<'a> StatusHistory<'a> {
    fn new(changes: &'a [StatusChange]) -> StatusHistory<'a> {
        let mut by_beneficiary: IdMap<Vec<&StatusChange>> = id_map(changes.len());
        for c in changes {
            by_beneficiary.entry(c.beneficiary).or_default().push(c);
        }
        for list in by_beneficiary.values_mut() {
            list.sort_by_key(|c| c.at);
        }
        StatusHistory { by_beneficiary }
    }

    /// The status at `at`; `None` when the history holds nothing for the beneficiary.
    fn at(&self, beneficiary: Uuid, at: DateTime<Utc>) -> Option<BeneficiaryStatus> {
        let list = self.by_beneficiary.get(&beneficiary)?;
        let after = list.partition_point(|c| c.at <= at);
        // Before the first change the beneficiary was not in the plan at all.
        Some(match after {
            0 => BeneficiaryStatus::Potential,
            n => list[n - 1].to,
        })
    }
}

#[cfg(test)]
mod tests;
