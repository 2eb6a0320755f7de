//! The API the app calls (through uniffi) and the field CLI calls directly: one object over
//! one database file. Calls block; the app makes them off its main thread. A panic inside is
//! caught and returned as [`Error::Internal`], never carried across the boundary.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, FixedOffset};
use rusqlite::Connection;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::operations::{self as ops, Ctx, parse_id};
use crate::store::{self, Enrolment, queries};
use crate::sync::{self, Client, Host};
use crate::types::*;

/// The field device: its database, who is unlocked, and the sync in progress.
#[derive(uniffi::Object)]
pub struct Outpost {
    conn: Mutex<Connection>,
    /// The enrolment whose agent unlocked the app with their PIN.
    unlocked: Mutex<Option<Uuid>>,
    cancel: AtomicBool,
    /// Set while a sync runs: one at a time, and no enrolment under its feet.
    syncing: AtomicBool,
    listener: Mutex<Option<Box<dyn SyncListener>>>,
    crash_points: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock rolled its transaction back; the data is whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f`, turning a panic into an error the app can show.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let reason = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(Error::Internal { reason })
    })
}

fn now() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

#[uniffi::export]
impl Outpost {
    /// Opens (or creates) the device database at `path`, encrypted with the host's 32-byte
    /// key (kept in the Android Keystore). A wrong key fails with `WrongDatabaseKey`.
    #[uniffi::constructor]
    pub fn open(path: String, key: Vec<u8>) -> Result<std::sync::Arc<Self>> {
        guard(|| {
            let conn = store::open(Path::new(&path), &key)?;
            Ok(std::sync::Arc::new(Outpost {
                conn: Mutex::new(conn),
                unlocked: Mutex::new(None),
                cancel: AtomicBool::new(false),
                syncing: AtomicBool::new(false),
                listener: Mutex::new(None),
                crash_points: Mutex::new(Vec::new()),
            }))
        })
    }

    /// Enrols this phone with a one-time code from a supervisor, for the agent the code names.
    /// The PIN (4-12 digits) unlocks the app offline from then on. Another agent may enrol on
    /// the same phone later: the first agent's unsent records are kept and still sent.
    pub fn enrol(
        &self,
        server_url: String,
        code: String,
        pin: String,
        label: String,
        server_ca_pem: Option<String>,
    ) -> Result<Enrolled> {
        guard(|| {
            store::pin::check_strength(&pin)?;
            // The new assignment's replica replaces the old one: not while a sync writes it.
            let _no_sync = self.claim_sync()?;
            let (pkcs8, _) = outpost_proto::auth::generate_key().map_err(|e| Error::Internal {
                reason: e.to_string(),
            })?;
            let mut client = Client::new(&server_url, server_ca_pem.as_deref(), &pkcs8, None, 0)?;
            client.hello()?;
            let reply = client.enrol(&code, &label)?;
            let id = Uuid::from_slice(&reply.device_id).map_err(|_| Error::Network {
                reason: "the server sent a device id that is not 16 bytes".into(),
            })?;
            let assignment = reply.assignment.unwrap_or_default();
            let pin_hash = store::pin::hash(&pin)?;
            let enrolled_at = now().to_rfc3339();
            self.write(|tx| {
                store::add_enrolment(
                    tx,
                    &store::NewEnrolment {
                        id,
                        server_url: server_url.trim().trim_end_matches('/'),
                        key_pkcs8: &pkcs8,
                        agent_username: &reply.agent_username,
                        agent_name: &reply.agent_name,
                        assignment_code: &assignment.code,
                        assignment_name: &assignment.name,
                        assignment_path: &assignment.path,
                        programme_key: &reply.programme_key,
                        server_ca_pem: server_ca_pem.as_deref(),
                        pin_hash: &pin_hash,
                        clock_offset_ms: client.offset_ms,
                        enrolled_at: &enrolled_at,
                    },
                )
            })?;
            *lock(&self.unlocked) = Some(id);
            Ok(Enrolled {
                device_id: id.to_string(),
                agent_username: reply.agent_username,
                agent_name: reply.agent_name,
                assignment_code: assignment.code,
                assignment_name: assignment.name,
            })
        })
    }

    /// Unlocks the app with the agent's PIN. Five wrong PINs lock it for 30 s, then 60 s, ...
    pub fn unlock(&self, pin: String) -> Result<()> {
        guard(|| {
            let e = self.enrolment()?;
            let outcome =
                self.write(|tx| store::pin::verify(tx, e.id, &pin, now().timestamp_millis()))?;
            outcome?;
            *lock(&self.unlocked) = Some(e.id);
            Ok(())
        })
    }

    pub fn lock(&self) {
        *lock(&self.unlocked) = None;
    }

    pub fn status(&self) -> Result<DeviceStatus> {
        guard(|| {
            let conn = lock(&self.conn);
            let e = store::active_enrolment(&conn)?;
            let unlocked = e
                .as_ref()
                .is_some_and(|e| *lock(&self.unlocked) == Some(e.id));
            Ok(DeviceStatus {
                enrolled: e.is_some(),
                unlocked,
                device_id: e.as_ref().map(|e| e.id.to_string()),
                agent_username: e.as_ref().map(|e| e.agent_username.clone()),
                agent_name: e.as_ref().map(|e| e.agent_name.clone()),
                assignment_code: e.as_ref().map(|e| e.assignment_code.clone()),
                assignment_name: e.as_ref().map(|e| e.assignment_name.clone()),
                server_url: e.as_ref().map(|e| e.server_url.clone()),
                sync: queries::sync_status(&conn)?,
            })
        })
    }

    /// Beneficiaries by name prefix (any household member; accents and case ignored), external
    /// id, card number, card QR text, or id.
    pub fn search(&self, query: String, limit: u32) -> Result<Vec<BeneficiarySummary>> {
        self.query(|c, e| queries::search(c, &e.programme_key, &query, limit))
    }

    pub fn beneficiary(&self, id: String) -> Result<BeneficiaryDetail> {
        self.query(|c, _| queries::beneficiary(c, parse_id("beneficiary", &id)?))
    }

    /// Entitlements payable on `day` (`YYYY-MM-DD`, today if absent) with something left.
    pub fn due(&self, day: Option<String>, limit: u32) -> Result<Vec<DueEntitlement>> {
        self.query(|c, _| queries::due_on(c, ops::day_of(day.as_deref(), &now())?, limit))
    }

    /// The agent's day: paid, handed out, and what should be in hand.
    pub fn day_summary(&self, day: Option<String>) -> Result<DaySummary> {
        self.query(|c, e| queries::day_summary(c, e, ops::day_of(day.as_deref(), &now())?))
    }

    /// Cash the agent received for paying out (`receive`) or handed back (`!receive`).
    pub fn record_cash(
        &self,
        receive: bool,
        amount_minor: i64,
        currency: String,
        note: String,
    ) -> Result<()> {
        let kind = if receive { "CASH_IN" } else { "CASH_OUT" };
        self.operate(|tx, ctx| ops::ledger(tx, ctx, kind, currency.trim(), amount_minor, &note))
    }

    /// Goods the agent received to hand out (`receive`) or handed back.
    pub fn record_stock(
        &self,
        receive: bool,
        item_code: String,
        quantity: i64,
        note: String,
    ) -> Result<()> {
        let kind = if receive { "STOCK_IN" } else { "STOCK_OUT" };
        self.operate(|tx, ctx| ops::ledger(tx, ctx, kind, item_code.trim(), quantity, &note))
    }

    /// Pays an entitlement; returns the payout's record id.
    pub fn pay(&self, input: PayoutInput) -> Result<String> {
        if let ProofInput::AgentPin { pin } = &input.proof {
            // Committed on its own: wrong witness PINs count towards the lockout.
            guard(|| {
                let e = self.unlocked_enrolment(&lock(&self.conn))?;
                self.write(|tx| store::pin::verify(tx, e.id, pin, now().timestamp_millis()))?
            })?;
        }
        self.operate(|tx, ctx| ops::pay(tx, ctx, &input).map(|id| id.to_string()))
    }

    pub fn distribute(&self, input: DistributionInput) -> Result<String> {
        self.operate(|tx, ctx| ops::distribute(tx, ctx, &input).map(|id| id.to_string()))
    }

    pub fn record_timesheet(&self, input: TimesheetInput) -> Result<String> {
        self.operate(|tx, ctx| ops::timesheet(tx, ctx, &input).map(|id| id.to_string()))
    }

    /// Voids a payout, distribution or timesheet entry with a reason; it is never edited.
    pub fn void_record(&self, record_id: String, reason: String) -> Result<()> {
        self.operate(|tx, ctx| ops::void(tx, ctx, &record_id, &reason))
    }

    pub fn questions(&self, beneficiary_id: String) -> Result<Vec<Question>> {
        self.query(|c, _| queries::questions(c, parse_id("beneficiary", &beneficiary_id)?))
    }

    pub fn verify(&self, input: VerificationInput) -> Result<String> {
        self.operate(|tx, ctx| ops::verify(tx, ctx, &input).map(|id| id.to_string()))
    }

    pub fn create_grievance(&self, input: GrievanceInput) -> Result<String> {
        self.operate(|tx, ctx| ops::create_grievance(tx, ctx, &input).map(|id| id.to_string()))
    }

    pub fn comment_grievance(&self, record_id: String, text: String) -> Result<()> {
        self.operate(|tx, ctx| ops::comment_grievance(tx, ctx, &record_id, &text))
    }

    pub fn set_grievance_status(
        &self,
        record_id: String,
        status: String,
        assignee: Option<String>,
    ) -> Result<()> {
        self.operate(|tx, ctx| {
            ops::set_grievance_status(tx, ctx, &record_id, &status, assignee.as_deref())
        })
    }

    pub fn grievances(&self) -> Result<Vec<GrievanceView>> {
        self.query(|c, _| queries::grievances(c))
    }

    pub fn grievance(&self, record_id: String) -> Result<GrievanceView> {
        self.query(|c, _| queries::grievance(c, parse_id("grievance", &record_id)?))
    }

    pub fn update_contact(&self, input: ContactInput) -> Result<String> {
        self.operate(|tx, ctx| ops::update_contact(tx, ctx, &input).map(|id| id.to_string()))
    }

    pub fn projects(&self) -> Result<Vec<Choice>> {
        self.query(|c, _| queries::choices(c, "projects"))
    }

    pub fn goods_items(&self) -> Result<Vec<Choice>> {
        self.query(|c, _| queries::choices(c, "goods_items"))
    }

    pub fn grievance_categories(&self) -> Result<Vec<Choice>> {
        self.query(|c, _| queries::choices(c, "grievance_categories"))
    }

    /// This phone's records, newest first (only those pending or refused if `only_pending`).
    pub fn records(&self, only_pending: bool, limit: u32) -> Result<Vec<RecordView>> {
        self.query(|c, _| queries::records(c, only_pending, limit))
    }

    pub fn sync_status(&self) -> Result<SyncStatus> {
        guard(|| queries::sync_status(&lock(&self.conn)))
    }

    /// Uploads pending records, downloads the replica and receives changes made elsewhere,
    /// reporting progress to `listener`. Runs without the PIN (background sync). Cut at any
    /// point, it resumes next time without losing or duplicating anything. A revoked phone
    /// is wiped and gets `Revoked`.
    pub fn sync(&self, listener: Option<Box<dyn SyncListener>>) -> Result<SyncReport> {
        guard(|| {
            let _one = self.claim_sync()?;
            self.cancel.store(false, Ordering::SeqCst);
            *lock(&self.listener) = listener;
            let outcome = sync::run(self);
            *lock(&self.listener) = None;
            if matches!(outcome, Err(Error::Revoked { .. })) {
                *lock(&self.unlocked) = None;
            }
            outcome
        })
    }

    /// Asks a running sync to stop after its current step; what it finished is kept.
    pub fn cancel_sync(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

/// Not part of the app's API: tests use these to simulate crashes.
impl Outpost {
    /// Makes the next pass through a named point fail as if the app died there (the
    /// transaction in progress is not committed). Points: `push:before-send`,
    /// `push:before-acknowledge`, `replica:before-apply`, `replica:inside-apply`,
    /// `changes:before-apply`, `record:before-commit`.
    #[doc(hidden)]
    pub fn crash_at(&self, point: &str) {
        lock(&self.crash_points).push(point.to_owned());
    }

    /// The path of a raw connection for tests (e.g. to fill the disk).
    #[doc(hidden)]
    pub fn with_connection<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(&mut lock(&self.conn))
    }

    /// Marks a sync as running until the returned guard is dropped (even by a panic).
    fn claim_sync(&self) -> Result<SyncClaim<'_>> {
        if self.syncing.swap(true, Ordering::SeqCst) {
            return Err(Error::invalid("a sync is running: try again when it ends"));
        }
        Ok(SyncClaim(&self.syncing))
    }

    fn enrolment(&self) -> Result<Enrolment> {
        store::active_enrolment(&lock(&self.conn))?.ok_or(Error::NotEnrolled)
    }

    /// The active enrolment, if its agent unlocked the app.
    fn unlocked_enrolment(&self, conn: &Connection) -> Result<Enrolment> {
        let e = store::active_enrolment(conn)?.ok_or(Error::NotEnrolled)?;
        if *lock(&self.unlocked) != Some(e.id) {
            return Err(Error::LoginRequired);
        }
        Ok(e)
    }

    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        store::write(&mut lock(&self.conn), f)
    }

    fn query<T>(&self, f: impl FnOnce(&Connection, &Enrolment) -> Result<T>) -> Result<T> {
        guard(|| {
            let conn = lock(&self.conn);
            let e = self.unlocked_enrolment(&conn)?;
            f(&conn, &e)
        })
    }

    /// An operation by the unlocked agent, in one transaction.
    fn operate<T>(&self, f: impl FnOnce(&rusqlite::Transaction, &Ctx) -> Result<T>) -> Result<T> {
        guard(|| {
            let mut conn = lock(&self.conn);
            let e = self.unlocked_enrolment(&conn)?;
            let actor = store::actor(&conn)?;
            let ctx = Ctx {
                enrolment: &e,
                actor: &actor,
                now: now(),
            };
            store::write(&mut conn, |tx| {
                let out = f(tx, &ctx)?;
                self.crash_point("record:before-commit")?;
                Ok(out)
            })
        })
    }
}

struct SyncClaim<'a>(&'a AtomicBool);

impl Drop for SyncClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Host for Outpost {
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        f(&mut lock(&self.conn))
    }

    fn check_cancelled(&self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    fn crash_point(&self, name: &str) -> Result<()> {
        let mut points = lock(&self.crash_points);
        if let Some(i) = points.iter().position(|p| p == name) {
            points.remove(i);
            return Err(Error::Internal {
                reason: format!("simulated crash at {name}"),
            });
        }
        Ok(())
    }

    fn progress(&self, p: SyncProgressInfo) {
        if let Some(l) = lock(&self.listener).as_ref() {
            l.on_progress(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_comes_back_as_an_internal_error() {
        let out: Result<()> = guard(|| panic!("index out of range"));
        match out {
            Err(Error::Internal { reason }) => assert_eq!(reason, "index out of range"),
            other => panic!("{other:?}"),
        }
        let out: Result<()> = guard(|| panic!("{} of {}", 3, 2));
        assert!(matches!(out, Err(Error::Internal { reason }) if reason == "3 of 2"));
    }
}
