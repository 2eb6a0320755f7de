//! What every JSON handler uses: the caller extractor (tokens and API clients), JSON, path
//! and query extractors whose rejections are our errors, roles, page sizes, and errors
//! become HTTP answers in one place ([`Error`]'s `IntoResponse`). The handlers live in their
//! domains' `http` modules; the OpenAPI document describing them is here.

use axum::{
    extract::{
        FromRequest, FromRequestParts,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use crate::{
    Error, Result,
    app::{AppState, db, limits},
};

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
            Error::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
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
