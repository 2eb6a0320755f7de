//! What an API client's permissions allow on each route, checked once in the `Caller`
//! extractor; routes not classified here are closed to clients.

use axum::http::Method;

use crate::users::store::clients::Permission;

/// What a client needs for `method` on the route pattern `route`. `None`: no client may,
/// whatever its permissions: the decisions only a person may take (four-eyes approvals,
/// timesheet decisions, exception resolutions, person accounts), and any route not classified here, so a new
/// endpoint is closed to clients until someone decides otherwise (a test checks that every
/// route is classified).
pub fn client_permission(method: &Method, route: &str) -> Option<Permission> {
    if method == Method::GET || method == Method::HEAD {
        return Some(Permission::Read);
    }
    match route {
        "/api/v1/clients" | "/api/v1/clients/{id}/revoke" => Some(Permission::Accounts),
        "/api/v1/devices/enrolments" | "/api/v1/devices/{id}/revoke" => Some(Permission::Devices),
        "/api/v1/locations"
        | "/api/v1/individuals"
        | "/api/v1/imports/individuals"
        | "/api/v1/plans"
        | "/api/v1/goods-items"
        | "/api/v1/cycles"
        | "/api/v1/beneficiaries"
        | "/api/v1/beneficiaries/{id}/status"
        | "/api/v1/work-projects"
        | "/api/v1/timesheets"
        | "/api/v1/payrolls/generate"
        | "/api/v1/cards"
        | "/api/v1/cards/sheet" => Some(Permission::Registry),
        _ => None,
    }
}

/// The routes no client may change anything through, whatever its permissions. Person
/// accounts among them: a client-made person would choose a password, enrol a second
/// factor, take persons-only decisions and outlive the client's expiry and revocation.
pub const PERSONS_ONLY: &[&str] = &[
    "/api/v1/auth/token",
    "/api/v1/users",
    "/api/v1/tasks/{id}/decision",
    "/api/v1/timesheets/{id}/decision",
    "/api/v1/payrolls/{id}/resolutions",
    "/api/v1/users/{username}/reset-login",
];
