//! Cash for work over the JSON API: projects, timesheets and their four-eyes decisions.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::{Json, Path, write_json};
use crate::app::{AppState, db};
use crate::users::caller::{ADMIN, Caller, OFFICE};
use crate::{
    Error, Result,
    tasks::{
        policy::{TaskKind, Verdict},
        store as tasks,
    },
    works::store::{self as works, TimesheetEntry, TimesheetStatus, WorkProject},
};

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
