//! Staff accounts over the JSON API: tokens (password and second factor), who am I, accounts and log-in resets.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Json, Path, read_json, write_json};
use crate::users::caller::{ADMIN, Caller};
use crate::{
    Result,
    app::{AppState, db, limits::ClientAddress},
    users::store::{self as users, NewUser, sessions},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
    /// The current code from the account's authenticator app.
    #[serde(default)]
    code: Option<String>,
}

/// Exchanges a username, password and authenticator code for a bearer token, with the same
/// failure counts and pauses as the web log-in.
pub async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(c): Json<Credentials>,
) -> Result<Response> {
    let code = c.code;
    let outcome =
        crate::app::check_password(&state, c.username, c.password, address, move |tx, u| {
            sessions::issue_for_code(tx, u, code)
        })
        .await?;
    let (user, token, expires_at) = sessions::token_answer(outcome)?;
    Ok(Json(json!({ "token": token, "expires_at": expires_at, "user": user })).into_response())
}

pub async fn me(Caller(user): Caller) -> Response {
    Json(user).into_response()
}

pub async fn list_users(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.require(ADMIN)?;
    let scope = caller.0.scope();
    read_json(&state, move |c| users::list_users(c, &scope)).await
}

/// Resets a user's password and/or authenticator app (administrators, inside their area);
/// the user's tokens and web sessions end.
pub async fn reset_login(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Json(reset): Json<users::Reset>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    // Hashed before the write and under the hashing cap, so argon2 never runs while
    // holding the writer or a database slot.
    let (reset, hash) = state
        .limits
        .hashing
        .run(move || {
            let hash = reset.prepare();
            (reset, hash)
        })
        .await?;
    let hash = hash?;
    let user = db(&state, move |s| {
        s.write(|tx| users::reset_login(tx, &actor, &scope, &username, &reset, hash.as_deref()))
    })
    .await?;
    Ok(Json(user).into_response())
}

pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewUser>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    // Hashed first, under the hashing cap, so argon2 never runs while holding the writer.
    let (new, hash) = state
        .limits
        .hashing
        .run(move || {
            let hash = users::hash_password(&new.password);
            (new, hash)
        })
        .await?;
    let hash = hash?;
    write_json(&state, StatusCode::CREATED, move |tx| {
        users::create_user_hashed(tx, &actor, &scope, &new, hash)
    })
    .await
}
