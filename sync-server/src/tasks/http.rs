//! Four-eyes tasks over the JSON API: the inbox and decisions, through the same store
//! functions the web pages call, with the same rules (the maker never decides; a TOTP code,
//! when sent, is checked and spent; money needs it as the policy says).

use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::{Json, Path, Query, page_limit, read_json, write_json};
use crate::app::{AppState, db};
use crate::users::caller::{Caller, OFFICE};
use crate::{
    Error, Result,
    tasks::{
        policy::{TaskKind, TaskStatus, Verdict},
        store as tasks,
    },
    users::store::sessions,
};

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
    // Withdrawn tasks are not listed: nothing was decided.
    let status = match q.status.as_deref().map(|s| (s, TaskStatus::parse(s))) {
        None => TaskStatus::Pending,
        Some((
            _,
            Some(s @ (TaskStatus::Pending | TaskStatus::Approved | TaskStatus::Rejected)),
        )) => s,
        Some((given, _)) => {
            return Err(Error::Invalid(format!(
                "'{given}' is not a task status; expected PENDING, APPROVED or REJECTED"
            )));
        }
    };
    let scope = caller.0.scope();
    read_json(&state, move |c| {
        tasks::list(c, &scope, status, kind, page_limit(q.limit))
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
