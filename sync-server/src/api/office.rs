//! Four-eyes tasks and reconciliation for integrations: the same store functions the web
//! pages call, with the same rules (the maker never decides; a TOTP code, when sent, is
//! checked and spent; money needs it as the policy says).

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, Json, Path, Query, page_limit, read_json, write_json};
use crate::app::{AppState, db};
use crate::{
    Error, Result,
    approvals::{TaskKind, Verdict},
    reconcile::{Exception, HoldingBalance, Line, Totals},
    store::{
        payroll::Payroll,
        reconciliation::{self as rec, Resolution},
        sessions, tasks,
        users::Role,
    },
};

const OFFICE: &[Role] = &[Role::Admin, Role::Supervisor];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    kind: Option<String>,
    /// PENDING (default), APPROVED or REJECTED.
    status: Option<String>,
    limit: Option<u32>,
}

pub async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TaskQuery>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let kind = match q.kind.as_deref() {
        Some(k) => Some(
            TaskKind::parse(k)
                .ok_or_else(|| Error::Invalid(format!("'{k}' is not a task kind")))?,
        ),
        None => None,
    };
    let status = q.status.unwrap_or_else(|| "PENDING".into());
    if !["PENDING", "APPROVED", "REJECTED"].contains(&status.as_str()) {
        return Err(Error::Invalid(format!(
            "'{status}' is not a task status; expected PENDING, APPROVED or REJECTED"
        )));
    }
    let scope = caller.0.scope();
    read_json(&state, move |c| {
        tasks::list(c, &scope, &status, kind, page_limit(q.limit))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDecision {
    verdict: Verdict,
    #[serde(default)]
    reason: String,
    /// The current code of the caller's authenticator app, when the task's policy wants one.
    #[serde(default)]
    code: Option<String>,
}

pub async fn decide_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(d): Json<TaskDecision>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let user = caller.0;
    // The code is checked in a transaction of its own, so a wrong one is counted even though
    // the decision is not taken.
    let code = d
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let second_factor = code.is_some();
    if let Some(code) = code {
        let checker = user.clone();
        db(&state, move |st| {
            sessions::require_code(st, &checker, &code)
        })
        .await?;
    }
    write_json(&state, StatusCode::OK, move |tx| {
        tasks::decide(tx, &user, id, d.verdict, &d.reason, second_factor)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinesQuery {
    limit: Option<u32>,
    offset: Option<u32>,
}

/// A payroll's reconciliation: totals, every exception with its resolution, holdings, and a
/// page of lines.
#[derive(Serialize)]
pub struct ReconciliationAnswer {
    payroll: Payroll,
    totals: Totals,
    open_exceptions: usize,
    exceptions: Vec<ExceptionAnswer>,
    holdings: Vec<HoldingBalance>,
    lines: Vec<Line>,
}

#[derive(Serialize)]
pub struct ExceptionAnswer {
    #[serde(flatten)]
    exception: Exception,
    resolution: Option<Resolution>,
}

pub async fn reconciliation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<LinesQuery>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let scope = caller.0.scope();
    let cache = state.reports.clone();
    read_json(&state, move |c| {
        let r = cache.get(c, &scope, id)?;
        let offset = q.offset.unwrap_or(0) as usize;
        Ok(ReconciliationAnswer {
            payroll: r.payroll.clone(),
            totals: r.report.totals.clone(),
            open_exceptions: r.open_exceptions(),
            exceptions: r
                .report
                .exceptions
                .iter()
                .map(|e| ExceptionAnswer {
                    exception: e.clone(),
                    resolution: r.resolutions.get(&e.key).cloned(),
                })
                .collect(),
            holdings: r.report.holdings.clone(),
            lines: r
                .report
                .lines
                .iter()
                .skip(offset)
                .take(page_limit(q.limit) as usize)
                .cloned()
                .collect(),
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    key: String,
    reason: String,
}

pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(r): Json<Resolve>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let user = caller.0;
    write_json(&state, StatusCode::OK, move |tx| {
        rec::resolve(tx, &user, id, &r.key, &r.reason)?;
        Ok(serde_json::json!({ "resolved": r.key }))
    })
    .await
}
