//! Field records as automerge documents: one small document per record, with the same schema
//! read and written on the device and on the server.
//!
//! Facts (a payout, a distribution, a day worked, a verification, a contact update) are
//! written once; the only later change they accept is a void with a reason. A grievance is
//! shared, evolving state: its status, assignee and comments merge as a CRDT, and
//! [`check_update`] then judges the merged state. Ids are stored as 16-byte values and keys are
//! short, because every byte crosses a 2G link.

use std::collections::BTreeMap;

use automerge::{
    AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value, transaction::Transactable,
};
use chrono::{DateTime, FixedOffset, NaiveDate};
use uuid::Uuid;

use crate::{BeneficiaryStatus, Currency, Money};

/// The schema version written into new documents (`v`). Readers accept this and older.
pub const SCHEMA_VERSION: u64 = 1;

crate::named_enum!(
    /// What a record document is, as its `kind` field says.
    RecordKind, "record kind" {
        Payout = "payout",
        Distribution = "distribution",
        Timesheet = "timesheet",
        Grievance = "grievance",
        Verification = "verification",
        ContactUpdate = "contact_update",
    }
);

/// How the collector proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// A programme-signed card, verified offline; its serial.
    Card(u64),
    Pin,
    /// A reference to a captured signature image.
    Signature(String),
    /// A reference to a photo.
    Photo(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Void {
    pub reason: String,
    pub at: DateTime<FixedOffset>,
}

impl Void {
    /// A fact's void as the two columns both ends store: `voided_at` (RFC 3339) and the reason.
    pub fn columns(void: &Option<Void>) -> (Option<String>, Option<String>) {
        (
            void.as_ref().map(|v| v.at.to_rfc3339()),
            void.as_ref().map(|v| v.reason.clone()),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub beneficiary_id: Uuid,
    pub entitlement_id: Uuid,
    /// The person who took the money.
    pub collector_id: Uuid,
    pub amount: Money,
    pub proof: Proof,
    /// Device time, with its zone.
    pub paid_at: DateTime<FixedOffset>,
    /// Set when the agent knowingly paid an entitlement already paid on this device.
    pub override_reason: Option<String>,
    pub void: Option<Void>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub beneficiary_id: Uuid,
    pub entitlement_id: Uuid,
    pub collector_id: Uuid,
    /// Goods item code → quantity handed out.
    pub items: BTreeMap<String, i64>,
    pub distributed_at: DateTime<FixedOffset>,
    pub void: Option<Void>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timesheet {
    pub project_id: Uuid,
    /// The worker's beneficiary id.
    pub beneficiary_id: Uuid,
    pub work_date: NaiveDate,
    /// Hundredths of a day, 1..=100.
    pub day_hundredths: i64,
    pub recorded_at: DateTime<FixedOffset>,
    pub void: Option<Void>,
}

crate::named_enum!(
    /// Where a grievance stands.
    GrievanceStatus, "grievance status" {
        Open = "OPEN",
        InProgress = "IN_PROGRESS",
        Resolved = "RESOLVED",
        Closed = "CLOSED",
    }
);

impl GrievanceStatus {
    /// Whether `to` can follow through any number of steps: an upload may carry several
    /// (OPEN → RESOLVED → CLOSED), and only the merged result is judged.
    pub fn can_reach(self, to: GrievanceStatus) -> bool {
        let mut seen = vec![self];
        let mut i = 0;
        while i < seen.len() {
            for next in Self::ALL {
                if seen[i].can_become(next) && !seen.contains(&next) {
                    seen.push(next);
                }
            }
            i += 1;
        }
        seen.contains(&to)
    }

    /// OPEN → IN_PROGRESS → RESOLVED → CLOSED; RESOLVED may reopen; CLOSED is final.
    pub fn can_become(self, to: GrievanceStatus) -> bool {
        use GrievanceStatus::*;
        self == to
            || matches!(
                (self, to),
                (Open, InProgress | Resolved)
                    | (InProgress, Resolved | Open)
                    | (Resolved, Closed | Open)
            )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub author: String,
    pub at: DateTime<FixedOffset>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grievance {
    /// Absent for a grievance from someone not in the registry.
    pub beneficiary_id: Option<Uuid>,
    pub category: String,
    pub description: String,
    pub status: GrievanceStatus,
    pub assignee: Option<String>,
    pub comments: Vec<Comment>,
    pub created_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub beneficiary_id: Uuid,
    /// Question (extra-field name) → answer as text.
    pub answers: BTreeMap<String, String>,
    /// A status change the verifier proposes; applied only once approved at the office.
    pub proposed_status: Option<BeneficiaryStatus>,
    pub note: String,
    pub verified_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactUpdate {
    pub beneficiary_id: Uuid,
    pub individual_id: Uuid,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub updated_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Payout(Payout),
    Distribution(Distribution),
    Timesheet(Timesheet),
    Grievance(Grievance),
    Verification(Verification),
    ContactUpdate(ContactUpdate),
}

/// Why a document is not a valid record, or an update not an allowed one. Shown to agents.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("record type `{0}` is unknown")]
    UnknownKind(String),
    #[error("schema version {0} is newer than this software reads")]
    NewerSchema(u64),
    #[error("`{0}` was already recorded and cannot be changed; void the record instead")]
    FactChanged(&'static str),
    #[error("the record's type cannot change")]
    KindChanged,
    #[error("grievance status cannot go from {from} to {to}")]
    GrievanceTransition {
        from: &'static str,
        to: &'static str,
    },
    #[error("a grievance comment was removed or edited")]
    CommentLost,
    /// An existing comment (same automerge object) whose text, author or time differs.
    #[error(
        "grievance comment {0} was already recorded and cannot be changed; add a new comment instead"
    )]
    CommentEdited(usize),
    /// A new comment signed by someone other than who sent it.
    #[error(
        "a new grievance comment is signed `{claimed}` but was sent by `{sender}`; comments are signed by their sender"
    )]
    CommentAuthor { claimed: String, sender: String },
    #[error("the document cannot be read: {0}")]
    Document(String),
    /// Beyond one of the [`bounds`]: the record is refused whole.
    #[error("the record is too large: {0}")]
    TooLarge(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn doc_error(e: automerge::AutomergeError) -> RecordError {
    RecordError::Document(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Reading

/// One map of a document, read in a single pass (one `map_range` walk costs about what two
/// `get` seeks do, and a record has ten fields).
struct Reader<'a, D: ReadDoc> {
    doc: &'a D,
    entries: Vec<(String, Value<'static>, ObjId)>,
}

impl<'a, D: ReadDoc> Reader<'a, D> {
    fn new(doc: &'a D, obj: ObjId) -> Reader<'a, D> {
        let entries = doc
            .map_range(&obj, ..)
            .map(|item| {
                (
                    item.key.to_string(),
                    item.value.clone().into_value(),
                    item.id(),
                )
            })
            .collect();
        Reader { doc, entries }
    }

    fn entry(&self, key: &str) -> Option<&(String, Value<'static>, ObjId)> {
        self.entries.iter().find(|(k, _, _)| k == key)
    }

    fn scalar(&self, key: &'static str) -> Result<Option<ScalarValue>, RecordError> {
        match self.entry(key) {
            None => Ok(None),
            Some((_, Value::Scalar(s), _)) => Ok(Some(s.clone().into_owned())),
            Some((_, Value::Object(_), _)) => {
                Err(invalid(key, "expected a value, found an object"))
            }
        }
    }

    fn opt_str(&self, key: &'static str) -> Result<Option<String>, RecordError> {
        match self.scalar(key)? {
            None | Some(ScalarValue::Null) => Ok(None),
            Some(ScalarValue::Str(s)) => Ok(Some(s.to_string())),
            Some(_) => Err(invalid(key, "expected text")),
        }
    }

    fn str(&self, key: &'static str) -> Result<String, RecordError> {
        self.opt_str(key)?.ok_or(RecordError::Missing(key))
    }

    fn text(&self, key: &'static str) -> Result<String, RecordError> {
        let s = self.str(key)?;
        if s.trim().is_empty() {
            return Err(invalid(key, "is blank"));
        }
        Ok(s)
    }

    fn int(&self, key: &'static str) -> Result<i64, RecordError> {
        match self.scalar(key)? {
            None => Err(RecordError::Missing(key)),
            Some(ScalarValue::Int(i)) => Ok(i),
            Some(ScalarValue::Uint(u)) => i64::try_from(u).map_err(|_| invalid(key, "too large")),
            Some(_) => Err(invalid(key, "expected a whole number")),
        }
    }

    fn opt_uint(&self, key: &'static str) -> Result<Option<u64>, RecordError> {
        match self.scalar(key)? {
            None | Some(ScalarValue::Null) => Ok(None),
            Some(ScalarValue::Uint(u)) => Ok(Some(u)),
            Some(ScalarValue::Int(i)) if i >= 0 => Ok(Some(i as u64)),
            Some(_) => Err(invalid(key, "expected a positive whole number")),
        }
    }

    fn opt_uuid(&self, key: &'static str) -> Result<Option<Uuid>, RecordError> {
        match self.scalar(key)? {
            None | Some(ScalarValue::Null) => Ok(None),
            Some(ScalarValue::Bytes(b)) => Uuid::from_slice(&b)
                .map(Some)
                .map_err(|_| invalid(key, "expected a 16-byte id")),
            Some(_) => Err(invalid(key, "expected a 16-byte id")),
        }
    }

    fn uuid(&self, key: &'static str) -> Result<Uuid, RecordError> {
        self.opt_uuid(key)?.ok_or(RecordError::Missing(key))
    }

    fn time(&self, key: &'static str) -> Result<DateTime<FixedOffset>, RecordError> {
        DateTime::parse_from_rfc3339(&self.str(key)?).map_err(|e| {
            invalid(
                key,
                format!("expected a time with its zone (RFC 3339): {e}"),
            )
        })
    }

    fn child(&self, key: &'static str, kind: ObjType) -> Result<Option<ObjId>, RecordError> {
        match self.entry(key) {
            None => Ok(None),
            Some((_, Value::Object(t), id)) if *t == kind => Ok(Some(id.clone())),
            Some(_) => Err(invalid(key, format!("expected a {kind:?}"))),
        }
    }

    fn at(&self, obj: ObjId) -> Reader<'a, D> {
        Reader::new(self.doc, obj)
    }

    fn void(&self) -> Result<Option<Void>, RecordError> {
        let Some(obj) = self.child("void", ObjType::Map)? else {
            return Ok(None);
        };
        let r = self.at(obj);
        Ok(Some(Void {
            reason: r.text("reason")?,
            at: r.time("at")?,
        }))
    }

    /// A map of text or integer values (answers, goods quantities).
    fn map(&self, key: &'static str) -> Result<BTreeMap<String, ScalarValue>, RecordError> {
        let Some(obj) = self.child(key, ObjType::Map)? else {
            return Err(RecordError::Missing(key));
        };
        let mut out = BTreeMap::new();
        for (k, value, _) in self.at(obj).entries {
            match value {
                Value::Scalar(s) => {
                    out.insert(k, s.into_owned());
                }
                _ => return Err(invalid(key, format!("`{k}` is not a plain value"))),
            }
        }
        Ok(out)
    }
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Payout(_) => RecordKind::Payout,
            Record::Distribution(_) => RecordKind::Distribution,
            Record::Timesheet(_) => RecordKind::Timesheet,
            Record::Grievance(_) => RecordKind::Grievance,
            Record::Verification(_) => RecordKind::Verification,
            Record::ContactUpdate(_) => RecordKind::ContactUpdate,
        }
    }

    /// The beneficiary the record is about, which decides who may see it.
    pub fn beneficiary_id(&self) -> Option<Uuid> {
        match self {
            Record::Payout(p) => Some(p.beneficiary_id),
            Record::Distribution(d) => Some(d.beneficiary_id),
            Record::Timesheet(t) => Some(t.beneficiary_id),
            Record::Grievance(g) => g.beneficiary_id,
            Record::Verification(v) => Some(v.beneficiary_id),
            Record::ContactUpdate(c) => Some(c.beneficiary_id),
        }
    }

    /// Reads and checks a document against its schema.
    pub fn read(doc: &impl ReadDoc) -> Result<Record, RecordError> {
        Self::read_with(doc, true)
    }

    /// Reads a document an older server stored, before amounts and quantities were bounded:
    /// the schema is checked, the plausibility bounds are not. Only for judging a change to
    /// such a record (a void), never for accepting a new one.
    pub fn read_held(doc: &impl ReadDoc) -> Result<Record, RecordError> {
        Self::read_with(doc, false)
    }

    fn read_with(doc: &impl ReadDoc, bounded: bool) -> Result<Record, RecordError> {
        let r = Reader::new(doc, ROOT);
        let v = r.opt_uint("v")?.ok_or(RecordError::Missing("v"))?;
        if v > SCHEMA_VERSION {
            return Err(RecordError::NewerSchema(v));
        }
        let kind = r.str("type")?;
        let kind = RecordKind::parse(&kind).ok_or(RecordError::UnknownKind(kind))?;
        Ok(match kind {
            RecordKind::Payout => {
                let currency: Currency = r
                    .str("currency")?
                    .parse()
                    .map_err(|e: crate::MoneyError| invalid("currency", e.to_string()))?;
                let minor = r.int("amount")?;
                if minor <= 0 {
                    return Err(invalid("amount", "must be more than zero"));
                }
                if bounded && minor > crate::MAX_PAYMENT_MINOR {
                    return Err(invalid(
                        "amount",
                        format!(
                            "{minor} is beyond any plausible payment (at most {} minor units)",
                            crate::MAX_PAYMENT_MINOR
                        ),
                    ));
                }
                let proof = match r.str("proof")?.as_str() {
                    "CARD" => Proof::Card(r.opt_uint("card")?.ok_or(RecordError::Missing("card"))?),
                    "PIN" => Proof::Pin,
                    "SIGNATURE" => Proof::Signature(r.text("ref")?),
                    "PHOTO" => Proof::Photo(r.text("ref")?),
                    other => {
                        return Err(invalid(
                            "proof",
                            format!("`{other}` is not CARD, PIN, SIGNATURE or PHOTO"),
                        ));
                    }
                };
                Record::Payout(Payout {
                    beneficiary_id: r.uuid("beneficiary")?,
                    entitlement_id: r.uuid("entitlement")?,
                    collector_id: r.uuid("collector")?,
                    amount: Money::new(minor, currency),
                    proof,
                    paid_at: r.time("at")?,
                    override_reason: r.opt_str("override")?,
                    void: r.void()?,
                })
            }
            RecordKind::Distribution => {
                let mut items = BTreeMap::new();
                for (code, qty) in r.map("items")? {
                    let qty = match qty {
                        ScalarValue::Int(i) if i > 0 => i,
                        ScalarValue::Uint(u) if u > 0 && u <= i64::MAX as u64 => u as i64,
                        _ => {
                            return Err(invalid(
                                "items",
                                format!("quantity of `{code}` must be a positive whole number"),
                            ));
                        }
                    };
                    if bounded && qty > bounds::MAX_GOODS_QUANTITY {
                        return Err(invalid(
                            "items",
                            format!(
                                "{qty} of `{code}` is beyond any plausible hand-out (at most {})",
                                bounds::MAX_GOODS_QUANTITY
                            ),
                        ));
                    }
                    items.insert(code, qty);
                }
                if items.is_empty() {
                    return Err(invalid("items", "no goods handed out"));
                }
                Record::Distribution(Distribution {
                    beneficiary_id: r.uuid("beneficiary")?,
                    entitlement_id: r.uuid("entitlement")?,
                    collector_id: r.uuid("collector")?,
                    items,
                    distributed_at: r.time("at")?,
                    void: r.void()?,
                })
            }
            RecordKind::Timesheet => {
                let day_hundredths = r.int("days")?;
                if !(1..=100).contains(&day_hundredths) {
                    return Err(invalid(
                        "days",
                        "must be between 1 and 100 hundredths of a day",
                    ));
                }
                let date = r.str("date")?;
                Record::Timesheet(Timesheet {
                    project_id: r.uuid("project")?,
                    beneficiary_id: r.uuid("beneficiary")?,
                    work_date: NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                        .map_err(|_| invalid("date", format!("`{date}` is not YYYY-MM-DD")))?,
                    day_hundredths,
                    recorded_at: r.time("at")?,
                    void: r.void()?,
                })
            }
            RecordKind::Grievance => {
                let status = r.str("status")?;
                let comments = read_comments(doc)?.into_iter().map(|(_, c)| c).collect();
                Record::Grievance(Grievance {
                    beneficiary_id: r.opt_uuid("beneficiary")?,
                    category: r.text("category")?,
                    description: r.text("description")?,
                    status: GrievanceStatus::parse(&status).ok_or_else(|| {
                        invalid("status", format!("`{status}` is not a grievance status"))
                    })?,
                    assignee: r.opt_str("assignee")?.filter(|a| !a.trim().is_empty()),
                    comments,
                    created_at: r.time("at")?,
                })
            }
            RecordKind::Verification => {
                let mut answers = BTreeMap::new();
                for (q, a) in r.map("answers")? {
                    let a = match a {
                        ScalarValue::Str(s) => s.to_string(),
                        _ => {
                            return Err(invalid("answers", format!("answer to `{q}` is not text")));
                        }
                    };
                    answers.insert(q, a);
                }
                let proposed_status = match r.opt_str("propose")? {
                    None => None,
                    Some(s) => Some(
                        s.parse()
                            .map_err(|e: crate::UnknownName| invalid("propose", e.to_string()))?,
                    ),
                };
                Record::Verification(Verification {
                    beneficiary_id: r.uuid("beneficiary")?,
                    answers,
                    proposed_status,
                    note: r.opt_str("note")?.unwrap_or_default(),
                    verified_at: r.time("at")?,
                })
            }
            RecordKind::ContactUpdate => {
                let phone = r.opt_str("phone")?.filter(|p| !p.trim().is_empty());
                let address = r.opt_str("address")?.filter(|a| !a.trim().is_empty());
                if phone.is_none() && address.is_none() {
                    return Err(invalid("phone", "neither a phone nor an address is given"));
                }
                if let Some(p) = &phone {
                    let digits = p.chars().filter(char::is_ascii_digit).count();
                    if digits < 6
                        || p.chars()
                            .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)))
                    {
                        return Err(invalid("phone", format!("`{p}` is not a phone number")));
                    }
                }
                Record::ContactUpdate(ContactUpdate {
                    beneficiary_id: r.uuid("beneficiary")?,
                    individual_id: r.uuid("individual")?,
                    phone,
                    address,
                    updated_at: r.time("at")?,
                })
            }
        })
    }
}

/// A grievance's comments, each with its automerge object id, in document order: the id is a
/// comment's identity across merges, whatever its text.
pub fn read_comments(doc: &impl ReadDoc) -> Result<Vec<(ObjId, Comment)>, RecordError> {
    let r = Reader::new(doc, ROOT);
    let mut comments = Vec::new();
    if let Some(list) = r.child("comments", ObjType::List)? {
        for (i, item) in doc.list_range(&list, ..).enumerate() {
            if !matches!(item.value, automerge::ValueRef::Object(ObjType::Map)) {
                return Err(invalid("comments", format!("comment {i} is not a map")));
            }
            let c = r.at(item.id());
            comments.push((
                item.id(),
                Comment {
                    author: c.text("by")?,
                    at: c.time("at")?,
                    text: c.text("text")?,
                },
            ));
        }
    }
    Ok(comments)
}

/// Whether a grievance's comments may go from `old` to `new` (both from [`read_comments`])
/// in a change sent by `sender`. A comment is immutable by object id: an edit in place keeps
/// the id, so comparing values alone would let a device rewrite someone's comment and add a
/// copy of the original. Every comment new to `old` must be signed by its sender (a device's
/// agent, the office's user), so a `by` can be shown as it stands.
pub fn check_comments(
    old: &[(ObjId, Comment)],
    new: &[(ObjId, Comment)],
    sender: &str,
) -> Result<(), RecordError> {
    for (i, (id, was)) in old.iter().enumerate() {
        match new.iter().find(|(n, _)| n == id) {
            None => return Err(RecordError::CommentLost),
            Some((_, now)) if now != was => return Err(RecordError::CommentEdited(i + 1)),
            Some(_) => {}
        }
    }
    for (id, c) in new {
        if !old.iter().any(|(o, _)| o == id) && c.author != sender {
            return Err(RecordError::CommentAuthor {
                claimed: c.author.clone(),
                sender: sender.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether `new` (the merged document) may follow `old` (what was accepted before).
pub fn check_update(old: &Record, new: &Record) -> Result<(), RecordError> {
    fn void_kept(old: &Option<Void>, new: &Option<Void>) -> Result<(), RecordError> {
        match (old, new) {
            (Some(a), Some(b)) if a != b => Err(RecordError::FactChanged("void")),
            (Some(_), None) => Err(RecordError::FactChanged("void")),
            _ => Ok(()),
        }
    }
    match (old, new) {
        (Record::Payout(a), Record::Payout(b)) => {
            void_kept(&a.void, &b.void)?;
            let same = Payout {
                void: None,
                ..a.clone()
            } == Payout {
                void: None,
                ..b.clone()
            };
            if !same {
                return Err(RecordError::FactChanged("payout"));
            }
            Ok(())
        }
        (Record::Distribution(a), Record::Distribution(b)) => {
            void_kept(&a.void, &b.void)?;
            if (Distribution {
                void: None,
                ..a.clone()
            }) != (Distribution {
                void: None,
                ..b.clone()
            }) {
                return Err(RecordError::FactChanged("distribution"));
            }
            Ok(())
        }
        (Record::Timesheet(a), Record::Timesheet(b)) => {
            void_kept(&a.void, &b.void)?;
            if (Timesheet {
                void: None,
                ..a.clone()
            }) != (Timesheet {
                void: None,
                ..b.clone()
            }) {
                return Err(RecordError::FactChanged("timesheet"));
            }
            Ok(())
        }
        (Record::Verification(a), Record::Verification(b)) => {
            if a != b {
                return Err(RecordError::FactChanged("verification"));
            }
            Ok(())
        }
        (Record::ContactUpdate(a), Record::ContactUpdate(b)) => {
            if a != b {
                return Err(RecordError::FactChanged("contact update"));
            }
            Ok(())
        }
        (Record::Grievance(a), Record::Grievance(b)) => {
            if a.beneficiary_id != b.beneficiary_id {
                return Err(RecordError::FactChanged("beneficiary"));
            }
            if a.created_at != b.created_at || a.description != b.description {
                return Err(RecordError::FactChanged("description"));
            }
            if !a.status.can_reach(b.status) {
                return Err(RecordError::GrievanceTransition {
                    from: a.status.as_str(),
                    to: b.status.as_str(),
                });
            }
            if !a.comments.iter().all(|c| b.comments.contains(c)) {
                return Err(RecordError::CommentLost);
            }
            Ok(())
        }
        _ => Err(RecordError::KindChanged),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

fn put_void(doc: &mut AutoCommit, void: &Void) -> Result<(), RecordError> {
    let obj = doc
        .put_object(ROOT, "void", ObjType::Map)
        .map_err(doc_error)?;
    doc.put(&obj, "reason", void.reason.as_str())
        .map_err(doc_error)?;
    doc.put(&obj, "at", void.at.to_rfc3339())
        .map_err(doc_error)?;
    Ok(())
}

impl Record {
    /// Writes a new record into an empty document and commits it as one change.
    pub fn write_new(&self, doc: &mut AutoCommit) -> Result<(), RecordError> {
        let e = doc_error;
        doc.put(ROOT, "type", self.kind().as_str()).map_err(e)?;
        doc.put(ROOT, "v", SCHEMA_VERSION).map_err(e)?;
        let id = |u: &Uuid| ScalarValue::Bytes(u.as_bytes().to_vec());
        match self {
            Record::Payout(p) => {
                doc.put(ROOT, "beneficiary", id(&p.beneficiary_id))
                    .map_err(e)?;
                doc.put(ROOT, "entitlement", id(&p.entitlement_id))
                    .map_err(e)?;
                doc.put(ROOT, "collector", id(&p.collector_id)).map_err(e)?;
                doc.put(ROOT, "amount", p.amount.minor).map_err(e)?;
                doc.put(ROOT, "currency", p.amount.currency.as_str())
                    .map_err(e)?;
                match &p.proof {
                    Proof::Card(serial) => {
                        doc.put(ROOT, "proof", "CARD").map_err(e)?;
                        doc.put(ROOT, "card", *serial).map_err(e)?;
                    }
                    Proof::Pin => doc.put(ROOT, "proof", "PIN").map_err(e)?,
                    Proof::Signature(r) | Proof::Photo(r) => {
                        let kind = if matches!(p.proof, Proof::Photo(_)) {
                            "PHOTO"
                        } else {
                            "SIGNATURE"
                        };
                        doc.put(ROOT, "proof", kind).map_err(e)?;
                        doc.put(ROOT, "ref", r.as_str()).map_err(e)?;
                    }
                }
                doc.put(ROOT, "at", p.paid_at.to_rfc3339()).map_err(e)?;
                if let Some(reason) = &p.override_reason {
                    doc.put(ROOT, "override", reason.as_str()).map_err(e)?;
                }
                if let Some(v) = &p.void {
                    put_void(doc, v)?;
                }
            }
            Record::Distribution(d) => {
                doc.put(ROOT, "beneficiary", id(&d.beneficiary_id))
                    .map_err(e)?;
                doc.put(ROOT, "entitlement", id(&d.entitlement_id))
                    .map_err(e)?;
                doc.put(ROOT, "collector", id(&d.collector_id)).map_err(e)?;
                let items = doc.put_object(ROOT, "items", ObjType::Map).map_err(e)?;
                for (code, qty) in &d.items {
                    doc.put(&items, code.as_str(), *qty).map_err(e)?;
                }
                doc.put(ROOT, "at", d.distributed_at.to_rfc3339())
                    .map_err(e)?;
                if let Some(v) = &d.void {
                    put_void(doc, v)?;
                }
            }
            Record::Timesheet(t) => {
                doc.put(ROOT, "project", id(&t.project_id)).map_err(e)?;
                doc.put(ROOT, "beneficiary", id(&t.beneficiary_id))
                    .map_err(e)?;
                doc.put(ROOT, "date", t.work_date.format("%Y-%m-%d").to_string())
                    .map_err(e)?;
                doc.put(ROOT, "days", t.day_hundredths).map_err(e)?;
                doc.put(ROOT, "at", t.recorded_at.to_rfc3339()).map_err(e)?;
                if let Some(v) = &t.void {
                    put_void(doc, v)?;
                }
            }
            Record::Grievance(g) => {
                if let Some(b) = &g.beneficiary_id {
                    doc.put(ROOT, "beneficiary", id(b)).map_err(e)?;
                }
                doc.put(ROOT, "category", g.category.as_str()).map_err(e)?;
                doc.put(ROOT, "description", g.description.as_str())
                    .map_err(e)?;
                doc.put(ROOT, "status", g.status.as_str()).map_err(e)?;
                if let Some(a) = &g.assignee {
                    doc.put(ROOT, "assignee", a.as_str()).map_err(e)?;
                }
                doc.put_object(ROOT, "comments", ObjType::List).map_err(e)?;
                for c in &g.comments {
                    add_comment(doc, c)?;
                }
                doc.put(ROOT, "at", g.created_at.to_rfc3339()).map_err(e)?;
            }
            Record::Verification(v) => {
                doc.put(ROOT, "beneficiary", id(&v.beneficiary_id))
                    .map_err(e)?;
                let answers = doc.put_object(ROOT, "answers", ObjType::Map).map_err(e)?;
                for (q, a) in &v.answers {
                    doc.put(&answers, q.as_str(), a.as_str()).map_err(e)?;
                }
                if let Some(s) = v.proposed_status {
                    doc.put(ROOT, "propose", s.as_str()).map_err(e)?;
                }
                if !v.note.is_empty() {
                    doc.put(ROOT, "note", v.note.as_str()).map_err(e)?;
                }
                doc.put(ROOT, "at", v.verified_at.to_rfc3339()).map_err(e)?;
            }
            Record::ContactUpdate(c) => {
                doc.put(ROOT, "beneficiary", id(&c.beneficiary_id))
                    .map_err(e)?;
                doc.put(ROOT, "individual", id(&c.individual_id))
                    .map_err(e)?;
                if let Some(p) = &c.phone {
                    doc.put(ROOT, "phone", p.as_str()).map_err(e)?;
                }
                if let Some(a) = &c.address {
                    doc.put(ROOT, "address", a.as_str()).map_err(e)?;
                }
                doc.put(ROOT, "at", c.updated_at.to_rfc3339()).map_err(e)?;
            }
        }
        doc.commit();
        Ok(())
    }
}

/// Voids a payout, distribution or timesheet: the only change a written fact accepts.
pub fn void(doc: &mut AutoCommit, void: &Void) -> Result<(), RecordError> {
    put_void(doc, void)?;
    doc.commit();
    Ok(())
}

/// Appends a comment to a grievance (merges with comments added elsewhere).
pub fn add_comment(doc: &mut AutoCommit, comment: &Comment) -> Result<(), RecordError> {
    let list = match doc.get(ROOT, "comments").map_err(doc_error)? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => doc
            .put_object(ROOT, "comments", ObjType::List)
            .map_err(doc_error)?,
    };
    let at = doc.length(&list);
    let obj = doc
        .insert_object(&list, at, ObjType::Map)
        .map_err(doc_error)?;
    doc.put(&obj, "by", comment.author.as_str())
        .map_err(doc_error)?;
    doc.put(&obj, "at", comment.at.to_rfc3339())
        .map_err(doc_error)?;
    doc.put(&obj, "text", comment.text.as_str())
        .map_err(doc_error)?;
    doc.commit();
    Ok(())
}

/// Sets a grievance's status and, optionally, its assignee.
pub fn set_grievance_status(
    doc: &mut AutoCommit,
    status: GrievanceStatus,
    assignee: Option<&str>,
) -> Result<(), RecordError> {
    doc.put(ROOT, "status", status.as_str())
        .map_err(doc_error)?;
    if let Some(a) = assignee {
        doc.put(ROOT, "assignee", a).map_err(doc_error)?;
    }
    doc.commit();
    Ok(())
}

/// Limits on one record document, checked by the device before it writes a record and by the
/// server before it merges one (beyond them a document is refused and quarantined): a record
/// document reaches every device in its area, so one device must not be able to store a huge
/// one. A real record is a few hundred bytes; a long-running grievance stays well inside.
pub mod bounds {
    /// Automerge operations in the document (a character typed into a text field is one).
    pub const MAX_DOC_OPS: usize = 20_000;
    /// Comments on one grievance.
    pub const MAX_COMMENTS: usize = 100;
    /// Characters in one grievance comment.
    pub const MAX_COMMENT_CHARS: usize = 2_000;
    /// Characters in a comment's author (a username).
    pub const MAX_AUTHOR_CHARS: usize = 200;
    /// Characters in any other text field (a description, a note, a reason, an answer).
    pub const MAX_TEXT_CHARS: usize = 4_000;
    /// Entries in a map field (a verification's answers, a distribution's items).
    pub const MAX_ENTRIES: usize = 100;
    /// Units of one goods item in one distribution. A household's ration is tens of kilos or
    /// a few items; a million is far beyond any hand-out, and keeps an entitlement's sum of
    /// hand-outs far inside an `i64` (nine million million distributions would be needed).
    pub const MAX_GOODS_QUANTITY: i64 = 1_000_000;

    /// The most a grievance's content can take within the bounds above: every text field and
    /// comment at its limit in four-byte characters, with some automerge framing per comment
    /// (its own change: header, dependency hashes, keys).
    pub const MAX_CONTENT_BYTES: usize = 4 * (4 * MAX_TEXT_CHARS)
        + MAX_COMMENTS * (4 * (MAX_COMMENT_CHARS + MAX_AUTHOR_CHARS) + 512);
    /// The document's changes, as stored and sent. Twice what the content bounds allow, so a
    /// grievance at its content limits still takes the office's status and assignee changes
    /// (a few hundred bytes each) and can be closed: the byte bound stops a hostile document,
    /// never a real one.
    pub const MAX_DOC_BYTES: usize = 2 * MAX_CONTENT_BYTES;
    const _: () = assert!(MAX_DOC_BYTES >= MAX_CONTENT_BYTES + 512 * 1024);
}

/// Checks a document's size (its changes) and its record's content against [`bounds`].
pub fn check_bounds(changes: &[automerge::Change], record: &Record) -> Result<(), RecordError> {
    let bytes: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
    if bytes > bounds::MAX_DOC_BYTES {
        return Err(RecordError::TooLarge(format!(
            "the document is {bytes} bytes; at most {} are accepted",
            bounds::MAX_DOC_BYTES
        )));
    }
    let ops: usize = changes.iter().map(|c| c.len()).sum();
    if ops > bounds::MAX_DOC_OPS {
        return Err(RecordError::TooLarge(format!(
            "the document holds {ops} operations; at most {} are accepted",
            bounds::MAX_DOC_OPS
        )));
    }
    check_content(record)
}

/// Checks a record's text fields, comments and maps against [`bounds`].
pub fn check_content(record: &Record) -> Result<(), RecordError> {
    fn text(field: &str, value: &str, max: usize) -> Result<(), RecordError> {
        let n = value.chars().count();
        if n > max {
            return Err(RecordError::TooLarge(format!(
                "`{field}` is {n} characters; at most {max} are accepted"
            )));
        }
        Ok(())
    }
    fn entries(field: &str, n: usize) -> Result<(), RecordError> {
        if n > bounds::MAX_ENTRIES {
            return Err(RecordError::TooLarge(format!(
                "`{field}` has {n} entries; at most {} are accepted",
                bounds::MAX_ENTRIES
            )));
        }
        Ok(())
    }
    let max = bounds::MAX_TEXT_CHARS;
    let void = |v: &Option<Void>| match v {
        Some(v) => text("void reason", &v.reason, max),
        None => Ok(()),
    };
    match record {
        Record::Payout(p) => {
            if let Proof::Signature(r) | Proof::Photo(r) = &p.proof {
                text("ref", r, max)?;
            }
            text("override", p.override_reason.as_deref().unwrap_or(""), max)?;
            void(&p.void)
        }
        Record::Distribution(d) => {
            entries("items", d.items.len())?;
            for code in d.items.keys() {
                text("items", code, max)?;
            }
            void(&d.void)
        }
        Record::Timesheet(t) => void(&t.void),
        Record::Grievance(g) => {
            text("category", &g.category, max)?;
            text("description", &g.description, max)?;
            text("assignee", g.assignee.as_deref().unwrap_or(""), max)?;
            if g.comments.len() > bounds::MAX_COMMENTS {
                return Err(RecordError::TooLarge(format!(
                    "the grievance has {} comments; at most {} are accepted",
                    g.comments.len(),
                    bounds::MAX_COMMENTS
                )));
            }
            for c in &g.comments {
                text("comment", &c.text, bounds::MAX_COMMENT_CHARS)?;
                text("comment author", &c.author, bounds::MAX_AUTHOR_CHARS)?;
            }
            Ok(())
        }
        Record::Verification(v) => {
            entries("answers", v.answers.len())?;
            for (q, a) in &v.answers {
                text("answers", q, max)?;
                text("answers", a, max)?;
            }
            text("note", &v.note, max)
        }
        Record::ContactUpdate(c) => {
            text("phone", c.phone.as_deref().unwrap_or(""), max)?;
            text("address", c.address.as_deref().unwrap_or(""), max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn time(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn payout() -> Record {
        Record::Payout(Payout {
            beneficiary_id: Uuid::now_v7(),
            entitlement_id: Uuid::now_v7(),
            collector_id: Uuid::now_v7(),
            amount: Money::new(150_000, "XOF".parse().unwrap()),
            proof: Proof::Card(42),
            paid_at: time("2026-11-20T10:15:00+01:00"),
            override_reason: None,
            void: None,
        })
    }

    #[test]
    fn every_kind_round_trips() {
        let grievance = Record::Grievance(Grievance {
            beneficiary_id: Some(Uuid::now_v7()),
            category: "PAYMENT_NOT_RECEIVED".into(),
            description: "Pas reçu en novembre".into(),
            status: GrievanceStatus::Open,
            assignee: None,
            comments: vec![Comment {
                author: "agent.n-mz".into(),
                at: time("2026-11-20T10:00:00Z"),
                text: "Noted".into(),
            }],
            created_at: time("2026-11-20T09:00:00Z"),
        });
        let records = [
            payout(),
            Record::Distribution(Distribution {
                beneficiary_id: Uuid::now_v7(),
                entitlement_id: Uuid::now_v7(),
                collector_id: Uuid::now_v7(),
                items: [("RICE-25".to_string(), 2)].into(),
                distributed_at: time("2026-11-20T10:15:00+01:00"),
                void: None,
            }),
            Record::Timesheet(Timesheet {
                project_id: Uuid::now_v7(),
                beneficiary_id: Uuid::now_v7(),
                work_date: NaiveDate::from_ymd_opt(2026, 11, 19).unwrap(),
                day_hundredths: 50,
                recorded_at: time("2026-11-19T17:00:00+01:00"),
                void: None,
            }),
            grievance,
            Record::Verification(Verification {
                beneficiary_id: Uuid::now_v7(),
                answers: [("school_enrolled".to_string(), "false".to_string())].into(),
                proposed_status: Some(BeneficiaryStatus::Suspended),
                note: "Moved away".into(),
                verified_at: time("2026-11-19T17:00:00+01:00"),
            }),
            Record::ContactUpdate(ContactUpdate {
                beneficiary_id: Uuid::now_v7(),
                individual_id: Uuid::now_v7(),
                phone: Some("+221 77 123 45 67".into()),
                address: None,
                updated_at: time("2026-11-19T17:00:00+01:00"),
            }),
        ];
        for record in records {
            let mut doc = AutoCommit::new();
            record.write_new(&mut doc).unwrap();
            let loaded = AutoCommit::load(&doc.save()).unwrap();
            assert_eq!(Record::read(&loaded).unwrap(), record);
        }
    }

    #[test]
    fn a_payout_may_be_voided_but_not_edited() {
        let record = payout();
        let mut doc = AutoCommit::new();
        record.write_new(&mut doc).unwrap();
        let mut voided = doc.fork();
        let v = Void {
            reason: "wrong person".into(),
            at: time("2026-11-20T11:00:00Z"),
        };
        void(&mut voided, &v).unwrap();
        let after = Record::read(&voided).unwrap();
        assert_eq!(check_update(&record, &after), Ok(()));

        let mut edited = doc.fork();
        edited.put(ROOT, "amount", 999_900_i64).unwrap();
        edited.commit();
        assert_eq!(
            check_update(&record, &Record::read(&edited).unwrap()),
            Err(RecordError::FactChanged("payout"))
        );
        // Un-voiding is an edit too.
        assert_eq!(
            check_update(&after, &record),
            Err(RecordError::FactChanged("void"))
        );
    }

    #[test]
    fn schema_violations_are_named() {
        let mut doc = AutoCommit::new();
        payout().write_new(&mut doc).unwrap();
        doc.put(ROOT, "amount", -5i64).unwrap();
        assert_eq!(
            Record::read(&doc).unwrap_err(),
            invalid("amount", "must be more than zero")
        );
        doc.put(ROOT, "amount", 4_611_686_018_427_387_904i64)
            .unwrap();
        assert!(matches!(
            Record::read(&doc).unwrap_err(),
            RecordError::Invalid { field: "amount", reason } if reason.contains("beyond any plausible payment")
        ));
        doc.put(ROOT, "amount", crate::MAX_PAYMENT_MINOR).unwrap();
        assert!(Record::read(&doc).is_ok(), "the bound itself is a payment");
        doc.put(ROOT, "amount", 5i64).unwrap();
        doc.put(ROOT, "at", "yesterday").unwrap();
        assert!(matches!(
            Record::read(&doc).unwrap_err(),
            RecordError::Invalid { field: "at", .. }
        ));
        doc.put(ROOT, "type", "bribe").unwrap();
        assert_eq!(
            Record::read(&doc).unwrap_err(),
            RecordError::UnknownKind("bribe".into())
        );
        doc.put(ROOT, "v", 9u64).unwrap();
        assert_eq!(Record::read(&doc).unwrap_err(), RecordError::NewerSchema(9));
        assert_eq!(
            Record::read(&AutoCommit::new()).unwrap_err(),
            RecordError::Missing("v")
        );
    }

    #[test]
    fn documents_beyond_the_bounds_are_refused() {
        let mut doc = AutoCommit::new();
        let g = Record::Grievance(Grievance {
            beneficiary_id: None,
            category: "OTHER".into(),
            description: "Queue too long".into(),
            status: GrievanceStatus::Open,
            assignee: None,
            comments: vec![],
            created_at: time("2026-11-20T09:00:00Z"),
        });
        g.write_new(&mut doc).unwrap();
        assert_eq!(check_bounds(&doc.get_changes(&[]), &g), Ok(()));
        let comment = |text: String| Comment {
            author: "agent".into(),
            at: time("2026-11-21T10:00:00Z"),
            text,
        };

        // One comment too long.
        let mut long = doc.fork();
        add_comment(
            &mut long,
            &comment("x".repeat(bounds::MAX_COMMENT_CHARS + 1)),
        )
        .unwrap();
        let read = Record::read(&long).unwrap();
        let err = check_bounds(&long.get_changes(&[]), &read).unwrap_err();
        assert!(
            matches!(&err, RecordError::TooLarge(m) if m.contains("`comment` is 2001 characters")),
            "{err}"
        );

        // One comment too many.
        let mut many = doc.fork();
        for i in 0..=bounds::MAX_COMMENTS {
            add_comment(&mut many, &comment(format!("comment {i}"))).unwrap();
        }
        let read = Record::read(&many).unwrap();
        let err = check_content(&read).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the record is too large: the grievance has 101 comments; at most 100 are accepted"
        );

        // A document whose content is within bounds, grown past its byte bound by history:
        // the assignee rewritten again and again.
        let mut big = doc.fork();
        for i in 0..(bounds::MAX_DOC_BYTES / 3_000 + 1) {
            let assignee = format!("{i:04}{}", "y".repeat(2_996));
            set_grievance_status(&mut big, GrievanceStatus::Open, Some(&assignee)).unwrap();
        }
        let read = Record::read(&big).unwrap();
        let err = check_bounds(&big.get_changes(&[]), &read).unwrap_err();
        assert!(
            matches!(&err, RecordError::TooLarge(m)
                if m.contains(&format!("bytes; at most {}", bounds::MAX_DOC_BYTES))),
            "{err}"
        );

        // Many operations in a small document: the assignee set over and over.
        let mut typed = doc.fork();
        for i in 0..(bounds::MAX_DOC_OPS / 1000 + 1) {
            for j in 0..1000 {
                typed.put(ROOT, "assignee", format!("{i}.{j}")).unwrap();
            }
            typed.commit();
        }
        let read = Record::read(&typed).unwrap();
        let err = check_bounds(&typed.get_changes(&[]), &read).unwrap_err();
        assert!(
            matches!(&err, RecordError::TooLarge(m) if m.contains("operations; at most 20000")),
            "{err}"
        );
    }

    #[test]
    fn distribution_quantities_beyond_any_hand_out_are_refused() {
        let d = |qty: i64| {
            Record::Distribution(Distribution {
                beneficiary_id: Uuid::now_v7(),
                entitlement_id: Uuid::now_v7(),
                collector_id: Uuid::now_v7(),
                items: [("MAIZE_KG".to_string(), qty)].into(),
                distributed_at: time("2026-11-20T10:15:00+01:00"),
                void: None,
            })
        };
        let most = d(bounds::MAX_GOODS_QUANTITY);
        let mut doc = AutoCommit::new();
        most.write_new(&mut doc).unwrap();
        assert_eq!(Record::read(&doc).unwrap(), most);
        let huge = d(i64::MAX);
        let mut doc = AutoCommit::new();
        huge.write_new(&mut doc).unwrap();
        let err = Record::read(&doc).unwrap_err();
        assert!(
            matches!(&err, RecordError::Invalid { field: "items", reason }
                if reason.contains("beyond any plausible hand-out")),
            "{err}"
        );
        // Held under older rules, it still reads for judging a void.
        assert_eq!(Record::read_held(&doc).unwrap(), huge);
    }

    #[test]
    fn comments_are_immutable_by_id_and_new_ones_signed_by_their_sender() {
        let mut doc = AutoCommit::new();
        Record::Grievance(Grievance {
            beneficiary_id: None,
            category: "OTHER".into(),
            description: "Queue too long".into(),
            status: GrievanceStatus::Open,
            assignee: None,
            comments: vec![],
            created_at: time("2026-11-20T09:00:00Z"),
        })
        .write_new(&mut doc)
        .unwrap();
        let sup = Comment {
            author: "sup.north1".into(),
            at: time("2026-11-21T09:00:00Z"),
            text: "Approved, paid again".into(),
        };
        add_comment(&mut doc, &sup).unwrap();
        let old = read_comments(&doc).unwrap();

        // Rewritten in place, the original re-added: same values, but not the same comment.
        let mut forged = doc.fork();
        let (id, _) = old[0].clone();
        forged.put(&id, "text", "Nothing owed").unwrap();
        forged.put(&id, "by", "agent").unwrap();
        forged.commit();
        add_comment(&mut forged, &sup).unwrap();
        let new = read_comments(&forged).unwrap();
        assert_eq!(
            check_comments(&old, &new, "agent"),
            Err(RecordError::CommentEdited(1))
        );

        // A new comment claiming another author.
        let mut claimed = doc.fork();
        add_comment(&mut claimed, &sup).unwrap();
        let new = read_comments(&claimed).unwrap();
        let err = check_comments(&old, &new, "agent").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a new grievance comment is signed `sup.north1` but was sent by `agent`; \
             comments are signed by their sender"
        );

        // An honest one.
        let mut honest = doc.fork();
        add_comment(
            &mut honest,
            &Comment {
                author: "agent".into(),
                ..sup.clone()
            },
        )
        .unwrap();
        let new = read_comments(&honest).unwrap();
        assert_eq!(check_comments(&old, &new, "agent"), Ok(()));
    }

    #[test]
    fn grievances_merge_and_their_transitions_are_judged() {
        let mut doc = AutoCommit::new();
        let g = Record::Grievance(Grievance {
            beneficiary_id: None,
            category: "OTHER".into(),
            description: "Queue too long".into(),
            status: GrievanceStatus::Open,
            assignee: None,
            comments: vec![],
            created_at: time("2026-11-20T09:00:00Z"),
        });
        g.write_new(&mut doc).unwrap();
        let mut office = doc.fork();
        let c1 = Comment {
            author: "sup.north1".into(),
            at: time("2026-11-21T09:00:00Z"),
            text: "Looking".into(),
        };
        add_comment(&mut office, &c1).unwrap();
        set_grievance_status(&mut office, GrievanceStatus::InProgress, Some("sup.north1")).unwrap();
        let c2 = Comment {
            author: "agent".into(),
            at: time("2026-11-21T10:00:00Z"),
            text: "More people".into(),
        };
        add_comment(&mut doc, &c2).unwrap();
        doc.merge(&mut office).unwrap();
        let Record::Grievance(merged) = Record::read(&doc).unwrap() else {
            panic!()
        };
        assert_eq!(merged.comments.len(), 2);
        assert_eq!(merged.status, GrievanceStatus::InProgress);
        assert_eq!(check_update(&g, &Record::Grievance(merged.clone())), Ok(()));

        // Several steps in one upload are judged as a path.
        let closed = Grievance {
            status: GrievanceStatus::Closed,
            ..merged.clone()
        };
        assert_eq!(check_update(&g, &Record::Grievance(closed.clone())), Ok(()));
        let reopened = Grievance {
            status: GrievanceStatus::Open,
            ..merged
        };
        assert_eq!(
            check_update(&Record::Grievance(closed), &Record::Grievance(reopened)),
            Err(RecordError::GrievanceTransition {
                from: "CLOSED",
                to: "OPEN"
            })
        );
    }
}
