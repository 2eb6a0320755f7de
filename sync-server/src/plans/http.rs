//! Plans over the JSON API: plans, goods items, cycles, cash-for-work projects and timesheets.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::{ADMIN, Caller, Json, OFFICE, Path, read_json, write_json};
use crate::app::{AppState, db};
use crate::{
    Error, Result,
    store::{
        plans::{self, Cycle, GoodsItem, NewPlan},
        tasks,
        works::{self, TimesheetEntry, TimesheetStatus, WorkProject},
    },
    tasks::policy::{TaskKind, Verdict},
};

pub async fn list_plans(State(state): State<AppState>, _caller: Caller) -> Result<Response> {
    read_json(&state, plans::list_plans).await
}

pub async fn get_plan(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> Result<Response> {
    read_json(&state, move |c| plans::plan_by_code(c, &code)).await
}

/// Defines a plan: who it serves, what it provides, its extra-field schema and its rule,
/// all checked together before anything is saved.
pub async fn create_plan(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewPlan>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let actor = caller.0.actor();
    write_json(&state, StatusCode::CREATED, move |tx| {
        plans::create_plan(tx, &actor, &new)
    })
    .await
}

pub async fn list_goods(State(state): State<AppState>, _caller: Caller) -> Result<Response> {
    read_json(&state, plans::list_goods_items).await
}

pub async fn create_goods(
    State(state): State<AppState>,
    caller: Caller,
    Json(item): Json<GoodsItem>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let actor = caller.0.actor();
    write_json(&state, StatusCode::CREATED, move |tx| {
        plans::add_goods_item(tx, &actor, &item)?;
        Ok(item)
    })
    .await
}

pub async fn list_cycles(State(state): State<AppState>, _caller: Caller) -> Result<Response> {
    read_json(&state, plans::list_cycles).await
}

pub async fn create_cycle(
    State(state): State<AppState>,
    caller: Caller,
    Json(cycle): Json<Cycle>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let actor = caller.0.actor();
    write_json(&state, StatusCode::CREATED, move |tx| {
        plans::create_cycle(tx, &actor, &cycle)?;
        Ok(cycle)
    })
    .await
}

pub async fn create_work_project(
    State(state): State<AppState>,
    caller: Caller,
    Json(p): Json<WorkProject>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    write_json(&state, StatusCode::CREATED, move |tx| {
        works::add_work_project(tx, &actor, &scope, &p)?;
        Ok(p)
    })
    .await
}

/// Records a day of cash-for-work at the office (devices record theirs through sync).
pub async fn record_timesheet(
    State(state): State<AppState>,
    caller: Caller,
    Json(entry): Json<TimesheetEntry>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    write_json(&state, StatusCode::CREATED, move |tx| {
        let id = works::record_timesheet(tx, &actor, &scope, &entry)?;
        Ok(serde_json::json!({ "id": id }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    status: TimesheetStatus,
    /// Needed to reject.
    #[serde(default)]
    reason: String,
}

/// Approves or rejects a pending timesheet; whoever recorded it cannot decide it.
pub async fn decide_timesheet(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(d): Json<Decision>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let verdict = match d.status {
        TimesheetStatus::Approved => Verdict::Approve,
        TimesheetStatus::Rejected => Verdict::Reject,
        TimesheetStatus::Pending => {
            return Err(Error::Invalid(
                "a timesheet is decided APPROVED or REJECTED".into(),
            ));
        }
    };
    let user = caller.0;
    // Through its four-eyes task, so the API and the web apply the same rules.
    db(&state, move |s| {
        s.write(|tx| {
            tasks::decide_subject(
                tx,
                &user,
                TaskKind::Timesheet,
                id,
                verdict,
                &d.reason,
                false,
            )
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
