//! Reconciliation over the JSON API: a payroll's lines and exceptions, and resolutions,
//! through the same store functions and rules as the web pages.

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{Json, Path, Query, page_limit, read_json, write_json};
use crate::app::AppState;
use crate::users::caller::{Caller, OFFICE};
use crate::{
    Result,
    payroll::store::Payroll,
    reconciliation::{
        Exception, HoldingBalance, Line, Totals,
        store::{self as rec, Resolution},
    },
};

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
