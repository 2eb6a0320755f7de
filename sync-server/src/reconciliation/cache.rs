//! Reconciliation reports the pages reuse: recomputed whenever records arrive or the office
//! writes (the store's change stamp), never otherwise, so a dashboard costs a lookup while
//! nothing changes.

use std::{collections::HashMap, sync::Arc};

use outpost_proto::PayrollStatus;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    Result,
    areas::store::Scope,
    payroll::store::{self as payroll, Payroll},
    reconciliation::store::{Reconciliation, reconcile_with, stamp},
    store::ReadTx,
};

/// Reconciliation reports by payroll, each with the stamp it was computed at ([`stamp`]):
/// recomputed whenever records arrive or the office writes, never otherwise, so the pages
/// that show them cost a lookup while nothing changes.
#[derive(Default)]
pub struct ReportCache {
    inner: std::sync::Mutex<HashMap<Uuid, Cached>>,
}

type Cached = ((i64, i64), Arc<Reconciliation>);

impl ReportCache {
    pub fn get(
        &self,
        conn: &ReadTx,
        scope: &Scope,
        payroll_id: Uuid,
    ) -> Result<Arc<Reconciliation>> {
        // Scope first: a cached report must not reach someone who may not see the payroll.
        let payroll = payroll::get_payroll(conn, scope, payroll_id)?;
        let at = stamp(conn)?;
        if let Some((when, r)) = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&payroll_id)
            && *when == at
        {
            return Ok(r.clone());
        }
        let fresh = Arc::new(reconcile_with(conn, payroll, payroll_id)?);
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(payroll_id, (at, fresh.clone()));
        Ok(fresh)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub payroll: Payroll,
    pub paid_minor: i128,
    /// Entitlements with at least one payment standing.
    pub paid_lines: i64,
    pub open_exceptions: usize,
}

/// Payrolls in the field or done, with what has been paid and what is open, from their
/// (cached) reconciliation.
pub fn progress(conn: &ReadTx, scope: &Scope, cache: &ReportCache) -> Result<Vec<Progress>> {
    let mut out = Vec::new();
    for p in payroll::list_payrolls(conn, scope, None, None, None)? {
        if matches!(
            p.status,
            PayrollStatus::PendingApproval | PayrollStatus::Rejected
        ) {
            continue;
        }
        let r = cache.get(conn, scope, p.id)?;
        out.push(Progress {
            paid_minor: r.report.totals.paid_minor,
            paid_lines: r.report.lines.iter().filter(|l| l.payouts > 0).count() as i64,
            open_exceptions: r.open_exceptions(),
            payroll: p,
        });
    }
    Ok(out)
}
