//! The HTTP surface: every route is registered in [`router`]; handlers live beside it by
//! resource. Errors become HTTP answers in one place ([`Error`]'s `IntoResponse`).

mod clients;
pub mod limits;
mod office;

pub use clients::{PERSONS_ONLY, client_permission};
mod payroll;
mod registry;
pub mod sync;

use std::sync::Arc;

use axum::{
    Router,
    extract::{
        FromRequest, FromRequestParts, MatchedPath,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use outpost_proto::wire;
use serde::Serialize;
use serde_json::json;

use crate::{
    Error, Result,
    store::{
        Store, clients as store_clients,
        devices::ProgrammeKey,
        records::Ingest,
        sessions,
        users::{self, Role, User},
    },
};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Signs beneficiary cards; its public half goes to devices at enrolment.
    pub programme: Arc<ProgrammeKey>,
    /// Merges device uploads, several batches per commit.
    pub ingest: Arc<Ingest>,
    /// Reconciliation reports the web pages reuse until something they read changes.
    pub reports: Arc<crate::store::reconciliation::ReportCache>,
    /// Session cookies are `Secure` when the server speaks HTTPS.
    pub secure_cookies: bool,
    /// Caps on unauthenticated work in progress (`api::limits`).
    pub limits: Arc<limits::Limits>,
}

impl AppState {
    pub fn new(store: Store, programme: ProgrammeKey) -> AppState {
        let store = Arc::new(store);
        AppState {
            ingest: Arc::new(Ingest::start(store.clone())),
            store,
            programme: Arc::new(programme),
            reports: Arc::default(),
            secure_cookies: false,
            limits: Arc::default(),
        }
    }
}

/// Bodies above this are refused before they are read (imports have their own limit).
pub const JSON_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The largest registry file accepted in one upload.
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    use axum::extract::DefaultBodyLimit;
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/auth/token", post(registry::token))
        .route("/api/v1/me", get(registry::me))
        .route(
            "/api/v1/users",
            get(registry::list_users).post(registry::create_user),
        )
        .route(
            "/api/v1/clients",
            get(clients::list_clients).post(clients::create_client),
        )
        .route("/api/v1/clients/{id}/revoke", post(clients::revoke_client))
        .route(
            "/api/v1/users/{username}/reset-login",
            post(registry::reset_login),
        )
        .route(
            "/api/v1/locations",
            get(registry::list_locations).post(registry::create_location),
        )
        .route(
            "/api/v1/individuals",
            get(registry::search_individuals).post(registry::create_individual),
        )
        .route("/api/v1/individuals/{id}", get(registry::get_individual))
        .route("/api/v1/households/{id}", get(registry::get_household))
        .route(
            "/api/v1/imports/individuals",
            post(registry::import_individuals).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route(
            "/api/v1/plans",
            get(payroll::list_plans).post(payroll::create_plan),
        )
        .route("/api/v1/plans/{code}", get(payroll::get_plan))
        .route(
            "/api/v1/goods-items",
            get(payroll::list_goods).post(payroll::create_goods),
        )
        .route(
            "/api/v1/cycles",
            get(payroll::list_cycles).post(payroll::create_cycle),
        )
        .route(
            "/api/v1/beneficiaries",
            get(registry::list_beneficiaries).post(registry::enrol_beneficiary),
        )
        .route("/api/v1/beneficiaries/{id}", get(registry::get_beneficiary))
        .route(
            "/api/v1/beneficiaries/{id}/status",
            post(registry::change_status),
        )
        .route("/api/v1/work-projects", post(payroll::create_work_project))
        .route("/api/v1/timesheets", post(payroll::record_timesheet))
        .route(
            "/api/v1/timesheets/{id}/decision",
            post(payroll::decide_timesheet),
        )
        .route("/api/v1/payrolls", get(payroll::list_payrolls))
        .route("/api/v1/payrolls/generate", post(payroll::generate))
        .route("/api/v1/payrolls/{id}", get(payroll::get_payroll))
        .route(
            "/api/v1/payrolls/{id}/entitlements",
            get(payroll::entitlements),
        )
        .route(
            "/api/v1/payrolls/{id}/reconciliation",
            get(office::reconciliation),
        )
        .route("/api/v1/payrolls/{id}/resolutions", post(office::resolve))
        .route("/api/v1/tasks", get(office::list_tasks))
        .route("/api/v1/tasks/{id}/decision", post(office::decide_task))
        .route("/api/v1/audit", get(registry::audit_log))
        .route("/api/v1/devices", get(sync::list_devices))
        .route("/api/v1/devices/enrolments", post(sync::create_enrolment))
        .route("/api/v1/devices/{id}/revoke", post(sync::revoke_device))
        .route("/api/v1/cards", post(sync::issue_card))
        .route("/api/v1/cards/sheet", post(sync::card_sheet))
        .route("/api/v1/quarantine", get(sync::quarantine))
        // Device sync: protobuf bodies read by the handlers themselves (their own limit).
        .route(wire::path::HELLO, get(sync::hello))
        .route(wire::path::ENROL, post(sync::enrol))
        .route(wire::path::REPLICA, post(sync::replica))
        .route(wire::path::PUSH, post(sync::push))
        .route(wire::path::CHANGES, post(sync::changes))
        .route("/sync/{*rest}", any(sync::not_found))
        // The supervisors' web pages.
        .merge(crate::web::router())
        // "endpoint '/api/v1/x' not found"; the API is described at /api/v1/openapi.json.
        .fallback(|uri: axum::http::Uri| async move { Error::not_found("endpoint", uri.path()) })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        // Log-ins and requests without credentials, capped per address and in total.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        .with_state(state)
}

async fn health() -> Response {
    axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "schema_version": crate::store::SCHEMA_VERSION,
        "time": crate::store::now(),
    }))
    .into_response()
}

/// The OpenAPI document, kept beside the router; a test checks they list the same routes.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Database work running at once. Beyond this many, requests wait in line without holding a
/// blocking thread each (a burst of devices would otherwise start hundreds of threads, all
/// waiting on the same few cores).
static DB_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);

/// Runs blocking database work off the async threads.
pub(crate) async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = state.store.clone();
    let slot = DB_SLOTS
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    // The slot goes with the work: a request dropped half-way (the client left) does not
    // free it while its database work still runs.
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        f(&store)
    })
    .await
    .map_err(|e| Error::Internal(format!("database task failed: {e}")))?
}

/// Checks a log-in's password in three steps, so that argon2 (slow on purpose, and what a
/// flood of bad log-ins costs) holds neither the writer nor one of the database slots device
/// uploads and approvals wait for: the hash is read on a reader, verified on a blocking thread
/// with nothing held, and the outcome recorded in one small write where `then` runs for a
/// right password. The hash runs under [`limits::Hashing`], so however many clients start a
/// log-in and hang up, only so many hashes run at once.
pub(crate) async fn check_password<T: Send + 'static>(
    state: &AppState,
    username: String,
    password: String,
    address: String,
    then: impl FnOnce(&crate::store::WriteTx, &User) -> Result<T> + Send + 'static,
) -> Result<sessions::Password<T>> {
    let stored = db(state, move |s| sessions::Stored::read(s, &username)).await?;
    let verified = state
        .limits
        .hashing
        .run(move || stored.verify(&password))
        .await?;
    db(state, move |s| {
        s.write(|tx| verified.record(tx, &address, then))
    })
    .await
}

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

/// The client's address key ([`limits::address_key`]: an IPv6 client by its /64), from the
/// connection, for throttling log-ins by address, as the limiter counts it. Behind a reverse
/// proxy every client shares the proxy's address (the per-name pause still applies);
/// forwarded headers are not trusted, since any client can send them. Servers made without
/// connection info (in-process routers) count as one address, `0.0.0.0`.
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(ClientAddress(limits::address_label(
            limits::client_address(&parts.extensions),
        )))
    }
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
            return match clients::client_permission(&parts.method, &route) {
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
