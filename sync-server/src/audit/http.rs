//! The audit log, newest first, with whether its hash chain is intact.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Json, Query, page_limit};
use crate::users::caller::{ADMIN, Caller};
use crate::{
    Error, Result,
    app::{AppState, db},
    areas::store::Scope,
    store::audit,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    entity_id: Option<String>,
    limit: Option<u32>,
}

/// The audit log, newest first, with whether its hash chain is intact.
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    if caller.0.scope() != Scope::National {
        return Err(Error::Forbidden(
            "the audit log is for national administrators".into(),
        ));
    }
    let (entries, chain) = db(&state, move |s| {
        s.read(|c| {
            Ok((
                audit::list(c, q.entity_id.as_deref(), page_limit(q.limit))?,
                audit::verify(c)?,
            ))
        })
    })
    .await?;
    Ok(Json(json!({
        "chain_intact": chain.is_ok(),
        "first_broken_seq": chain.err(),
        "entries": entries,
    }))
    .into_response())
}
