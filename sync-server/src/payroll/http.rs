//! Payrolls over the JSON API: generation for a plan and cycle, lists, one payroll, its entitlements.

use axum::{extract::State, http::StatusCode, response::Response};
use outpost_proto::PayrollStatus;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::{Json, Path, Query, page_limit, read_json, write_json};
use crate::app::AppState;
use crate::users::caller::{Caller, OFFICE};
use crate::{Result, payroll::store as payroll};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    plan: String,
    cycle: String,
}

/// Generates the plan's entitlements for a cycle; safe to run again, it only adds what is new.
pub async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    Json(g): Json<Generate>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    write_json(&state, StatusCode::OK, move |tx| {
        payroll::generate(tx, &actor, &scope, &g.plan, &g.cycle)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayrollQuery {
    plan: Option<String>,
    cycle: Option<String>,
    status: Option<PayrollStatus>,
}

pub async fn list_payrolls(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(q): Query<PayrollQuery>,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| {
        payroll::list_payrolls(c, &scope, q.plan.as_deref(), q.cycle.as_deref(), q.status)
    })
    .await
}

pub async fn get_payroll(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| payroll::get_payroll(c, &scope, id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementQuery {
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
}

pub async fn entitlements(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<EntitlementQuery>,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| {
        payroll::entitlements(c, &scope, id, page_limit(q.limit), q.offset)
    })
    .await
}
