//! API clients over the JSON API: created, listed and revoked by administrators (what
//! their permissions allow on each route is `api::permissions`).

use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::{Json, Path, read_json, write_json};
use crate::app::AppState;
use crate::users::caller::{ADMIN, Caller};
use crate::{
    Result,
    users::store::clients::{self, NewClient},
};

pub async fn create_client(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewClient>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let creator = caller.0;
    let by_client = creator.is_client().then_some(creator.id);
    write_json(&state, StatusCode::CREATED, move |tx| {
        clients::create_client(
            tx,
            &creator.actor(),
            &creator.scope(),
            by_client,
            None,
            &new,
        )
    })
    .await
}

pub async fn list_clients(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.require(ADMIN)?;
    let scope = caller.0.scope();
    read_json(&state, move |c| clients::list_clients(c, &scope)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    reason: String,
}

pub async fn revoke_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<Revoke>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    write_json(&state, StatusCode::OK, move |tx| {
        clients::revoke_client(tx, &actor, &scope, id, &body.reason)
    })
    .await
}
