//! The one router: the JSON API (`/api/v1`), the device sync protocol (`/sync/v1`) and the
//! supervisors' web pages, with the layers every request passes. Nothing below imports it:
//! handlers live in their own modules and reach shared state through [`crate::app`].

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use outpost_proto::wire;
use serde_json::json;

use crate::{
    Error,
    api::{self, clients, office, payroll, registry, sync},
    app::{AppState, limits},
    store, web,
};

/// Bodies above this are refused before they are read (imports have their own limit).
pub const JSON_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The largest registry file accepted in one upload.
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Every route of the server, API, device sync and web pages, in one place.
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
        .merge(web::router())
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
        "schema_version": store::SCHEMA_VERSION,
        "time": store::now(),
    }))
    .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], api::OPENAPI).into_response()
}
