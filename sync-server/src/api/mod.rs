//! What every JSON handler uses: the caller extractor (tokens and API clients), JSON, path
//! and query extractors whose rejections are our errors, roles, page sizes, and errors
//! become HTTP answers in one place ([`Error`]'s `IntoResponse`). The handlers live in their
//! domains' `http` modules; the OpenAPI document describing them is here.

pub mod permissions;

use axum::{
    extract::{
        FromRequest, FromRequestParts, MatchedPath,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use crate::{
    Error, Result,
    app::{AppState, db, limits},
    store::{
        clients as store_clients,
        users::{self, Role, User},
    },
};

/// Who may call an endpoint, by role (the error names them in this order).
pub(crate) const ADMIN: &[Role] = &[Role::Admin];
pub(crate) const OFFICE: &[Role] = &[Role::Admin, Role::Supervisor];
pub(crate) const STAFF: &[Role] = &[Role::Supervisor, Role::Admin];

/// The OpenAPI document, kept beside the router; a test checks they list the same routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Runs a read off the async threads and answers its result as JSON.
pub(crate) async fn read_json<T: Serialize + Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::store::ReadTx) -> Result<T> + Send + 'static,
) -> Result<Response> {
    Ok(Json(db(state, move |s| s.read(f)).await?).into_response())
}

/// Runs one write transaction off the async threads and answers its result as JSON.
pub(crate) async fn write_json<T: Serialize + Send + 'static>(
    state: &AppState,
    status: StatusCode,
    f: impl FnOnce(&crate::store::WriteTx) -> Result<T> + Send + 'static,
) -> Result<Response> {
    Ok((status, Json(db(state, move |s| s.write(f)).await?)).into_response())
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthenticated)?
            .to_owned();
        if token.starts_with(store_clients::SECRET_PREFIX) {
            // A person's random token starts so about once in 16.7 million: if no client
            // has this secret, it may still be one.
            let found = db(state, move |s| {
                s.read(|c| match store_clients::grant_for_secret(c, &token) {
                    Err(Error::Unauthenticated) => users::user_for_token(c, &token).map(Err),
                    other => other.map(Ok),
                })
            })
            .await?;
            let grant = match found {
                Ok(grant) => grant,
                Err(person) => return Ok(Caller(person)),
            };
            // A client may do what its permissions name, on the route as registered.
            let route = parts
                .extensions
                .get::<MatchedPath>()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            return match permissions::client_permission(&parts.method, &route) {
                Some(p) if grant.permissions.contains(&p) => Ok(Caller(grant.principal)),
                Some(p) => Err(Error::Forbidden(format!(
                    "this client lacks the permission '{}'",
                    json!(p).as_str().unwrap_or_default()
                ))),
                None => Err(Error::Forbidden(
                    "API clients cannot use this endpoint: it is for people".into(),
                )),
            };
        }
        db(state, move |s| s.read(|c| users::user_for_token(c, &token)))
            .await
            .map(Caller)
    }
}

impl Caller {
    /// Refuses callers without one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<()> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            let names: Vec<String> = roles
                .iter()
                .map(|r| json!(r).as_str().unwrap_or_default().to_owned())
                .collect();
            Err(Error::Forbidden(format!(
                "this needs the role {}",
                names.join(" or ")
            )))
        }
    }
}

/// `axum::Json` whose rejections are our JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejections (a malformed id) are our JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

impl From<PathRejection> for Error {
    fn from(r: PathRejection) -> Self {
        Error::Invalid(format!("the path is not valid: {}", r.body_text()))
    }
}

/// `axum::extract::Query` whose rejections are our JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Error::TooLarge(r.body_text());
        }
        Error::Invalid(format!("the request body is not valid: {}", r.body_text()))
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::Invalid(format!("the query string is not valid: {}", r.body_text()))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Invalid(_) | Error::Fields { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            }
            Error::ImportRejected { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "import_rejected"),
            Error::File(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_file"),
            Error::Transition(_) => (StatusCode::CONFLICT, "transition_refused"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Busy(_) => (StatusCode::TOO_MANY_REQUESTS, "busy"),
            Error::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "timed_out"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Refused { .. } => (StatusCode::BAD_REQUEST, "refused"),
            Error::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            Error::Storage { .. } | Error::Io(_) | Error::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "something went wrong on the server; the error is logged".to_owned()
        } else {
            self.to_string()
        };
        let mut body = json!({ "error": { "code": code, "message": message } });
        match &self {
            Error::ImportRejected { errors } => body["error"]["rows"] = json!(errors),
            Error::Fields { fields, .. } => body["error"]["fields"] = json!(fields),
            _ => {}
        }
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            limits::retry_after(&mut response);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The page size of list endpoints: 50 unless asked, at most 500, so one request cannot pull
/// the whole registry.
pub fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(50).clamp(1, 500)
}
