//! The one router: the JSON API (`/api/v1`), the device sync protocol (`/sync/v1`) and the
//! supervisors' web pages, with the layers every request passes. Nothing below imports it:
//! handlers live in their own modules and reach shared state through [`crate::app`].

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use outpost_proto::wire;
use serde_json::json;

use crate::{
    Error, api,
    app::{AppState, limits},
    audit, devices, payroll, plans, reconciliation, registry, store, sync, tasks, users, web,
    works,
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
        .route("/api/v1/auth/token", post(users::http::token))
        .route("/api/v1/me", get(users::http::me))
        .route(
            "/api/v1/users",
            get(users::http::list_users).post(users::http::create_user),
        )
        .route(
            "/api/v1/clients",
            get(users::clients::list_clients).post(users::clients::create_client),
        )
        .route(
            "/api/v1/clients/{id}/revoke",
            post(users::clients::revoke_client),
        )
        .route(
            "/api/v1/users/{username}/reset-login",
            post(users::http::reset_login),
        )
        .route(
            "/api/v1/locations",
            get(registry::http::list_locations).post(registry::http::create_location),
        )
        .route(
            "/api/v1/individuals",
            get(registry::http::search_individuals).post(registry::http::create_individual),
        )
        .route(
            "/api/v1/individuals/{id}",
            get(registry::http::get_individual),
        )
        .route(
            "/api/v1/households/{id}",
            get(registry::http::get_household),
        )
        .route(
            "/api/v1/imports/individuals",
            post(registry::http::import_individuals)
                .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route(
            "/api/v1/plans",
            get(plans::http::list_plans).post(plans::http::create_plan),
        )
        .route("/api/v1/plans/{code}", get(plans::http::get_plan))
        .route(
            "/api/v1/goods-items",
            get(plans::http::list_goods).post(plans::http::create_goods),
        )
        .route(
            "/api/v1/cycles",
            get(plans::http::list_cycles).post(plans::http::create_cycle),
        )
        .route(
            "/api/v1/beneficiaries",
            get(registry::http::list_beneficiaries).post(registry::http::enrol_beneficiary),
        )
        .route(
            "/api/v1/beneficiaries/{id}",
            get(registry::http::get_beneficiary),
        )
        .route(
            "/api/v1/beneficiaries/{id}/status",
            post(registry::http::change_status),
        )
        .route(
            "/api/v1/work-projects",
            post(works::http::create_work_project),
        )
        .route("/api/v1/timesheets", post(works::http::record_timesheet))
        .route(
            "/api/v1/timesheets/{id}/decision",
            post(works::http::decide_timesheet),
        )
        .route("/api/v1/payrolls", get(payroll::http::list_payrolls))
        .route("/api/v1/payrolls/generate", post(payroll::http::generate))
        .route("/api/v1/payrolls/{id}", get(payroll::http::get_payroll))
        .route(
            "/api/v1/payrolls/{id}/entitlements",
            get(payroll::http::entitlements),
        )
        .route(
            "/api/v1/payrolls/{id}/reconciliation",
            get(reconciliation::http::reconciliation),
        )
        .route(
            "/api/v1/payrolls/{id}/resolutions",
            post(reconciliation::http::resolve),
        )
        .route("/api/v1/tasks", get(tasks::http::list_tasks))
        .route(
            "/api/v1/tasks/{id}/decision",
            post(tasks::http::decide_task),
        )
        .route("/api/v1/audit", get(audit::http::audit_log))
        .route("/api/v1/devices", get(devices::http::list_devices))
        .route(
            "/api/v1/devices/enrolments",
            post(devices::http::create_enrolment),
        )
        .route(
            "/api/v1/devices/{id}/revoke",
            post(devices::http::revoke_device),
        )
        .route("/api/v1/cards", post(devices::http::issue_card))
        .route("/api/v1/cards/sheet", post(devices::http::card_sheet))
        .route("/api/v1/quarantine", get(sync::http::quarantine))
        // Device sync: protobuf bodies read by the handlers themselves (their own limit).
        .route(wire::path::HELLO, get(sync::http::hello))
        .route(wire::path::ENROL, post(sync::http::enrol))
        .route(wire::path::REPLICA, post(sync::http::replica))
        .route(wire::path::PUSH, post(sync::http::push))
        .route(wire::path::CHANGES, post(sync::http::changes))
        .route("/sync/{*rest}", any(sync::http::not_found))
        // The supervisors' web pages.
        .merge(web::router())
        // "endpoint '/api/v1/x' not found"; the API is described at /api/v1/openapi.json.
        .fallback(|uri: axum::http::Uri| async move { Error::not_found("endpoint", uri.path()) })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        // Log-ins and requests without credentials, capped per address and in total.
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
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

/// The router's layer: takes a permit for log-ins and anonymous requests, or answers 429;
/// such a request not done within [`Timeouts::request`] is dropped (its permit with it) and
/// answered 408.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limiter = match limits::classify(request.method(), request.uri().path(), request.headers())
    {
        limits::Class::Login => &state.limits.logins,
        limits::Class::Anonymous => &state.limits.anonymous,
        limits::Class::Uncounted => return next.run(request).await,
    };
    let address = limits::client_address(request.extensions());
    let path = request.uri().path().to_owned();
    let permit = match limiter.try_acquire(
        address,
        &format!("the address {}", limits::address_label(address)),
    ) {
        Ok(permit) => permit,
        Err(busy) => return refusal(&path, busy),
    };
    let limit = state.limits.timeouts.request;
    let answer = tokio::time::timeout(limit, next.run(request)).await;
    drop(permit);
    answer.unwrap_or_else(|_| {
        refusal(
            &path,
            Error::TimedOut(format!(
                "the request took longer than {} s; send it whole and try again",
                limit.as_secs_f32()
            )),
        )
    })
}

/// A refusal in the format the path speaks: the protocol's `ErrorReply` on `/sync/`, the
/// API's JSON error on `/api/`, a short page for the web.
fn refusal(path: &str, error: Error) -> Response {
    if path.starts_with("/sync/") {
        sync::http::SyncFailure::from(error).into_response()
    } else if path.starts_with("/api/") {
        error.into_response()
    } else {
        let status = match error {
            Error::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::TOO_MANY_REQUESTS,
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<!doctype html><title>Outpost</title><p>{}</p><p><a href=\"/login\">Log in</a></p>",
                html_escape(&error.to_string())
            ),
        )
            .into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            limits::retry_after(&mut response);
        }
        response
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeMap, BTreeSet},
        path::{Path, PathBuf},
    };

    /// The modules a file's code names: `crate::a::b` paths and the items of `use crate::{..}`
    /// lists (to two segments, `a::b` when `a/b.rs` is a module of its own), and `super::b`
    /// from a file inside a folder.
    fn crate_uses(
        code: &str,
        folder: Option<&str>,
        is_module: &dyn Fn(&str) -> bool,
    ) -> BTreeSet<String> {
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        // `a`, `a::b`, or `a::{b, c}`, from the text right after `crate::`.
        let targets = |text: &str, out: &mut BTreeSet<String>| {
            let first = ident(text);
            let rest = &text[first.len()..];
            let mut seconds = Vec::new();
            if let Some(after) = rest.strip_prefix("::") {
                if let Some(group) = after.strip_prefix('{') {
                    let (mut depth, mut start) = (1, true);
                    for (i, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            ',' if depth == 1 => start = true,
                            c if start && depth == 1 && !c.is_whitespace() => {
                                seconds.push(ident(&group[i..]));
                                start = false;
                            }
                            _ => {}
                        }
                        if depth == 0 {
                            break;
                        }
                    }
                } else {
                    seconds.push(ident(after));
                }
            }
            let mut any = false;
            for second in seconds {
                let name = format!("{first}::{second}");
                if is_module(&name) {
                    out.insert(name);
                    any = true;
                } else if !any {
                    out.insert(first.clone());
                }
            }
            if !any {
                out.insert(first);
            }
        };
        let mut out = BTreeSet::new();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let (mut depth, mut start) = (1, true);
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 1 => start = true,
                        c if start && depth == 1 && !c.is_whitespace() => {
                            targets(&group[i..], &mut out);
                            start = false;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                }
            } else {
                targets(rest, &mut out);
            }
        }
        if let Some(folder) = folder {
            let mut rest = code;
            while let Some(at) = rest.find("super::") {
                rest = &rest[at + "super::".len()..];
                let firsts: Vec<String> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|item| ident(item.trim()))
                        .collect(),
                    None => vec![ident(rest)],
                };
                for first in firsts {
                    let name = format!("{folder}::{first}");
                    out.insert(if is_module(&name) {
                        name
                    } else {
                        folder.to_owned()
                    });
                }
            }
        }
        out
    }

    /// The server's modules import one another without a circle, and nothing imports the
    /// router: each domain reads from its folder and those below it, the task engine knows
    /// no domain (they register hooks), the app's state knows no handler. A folder's
    /// `mod.rs` may name its own files (it declares them).
    #[test]
    fn the_server_modules_import_one_another_without_a_circle() {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let node = |file: &Path| -> String {
            let relative = file.strip_prefix(&src).unwrap().with_extension("");
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .filter(|p| p != "mod")
                .collect();
            parts[..parts.len().min(2)].join("::")
        };
        let modules: BTreeSet<String> = files.iter().map(|f| node(f)).collect();
        let is_module = |name: &str| modules.contains(name);
        // The crate root's own items (the error type, the binary) are outside the graph.
        let outside = [
            "lib",
            "main",
            "error",
            "Error",
            "Result",
            "FieldError",
            "StorageFault",
        ];
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let me = node(file);
            if outside.contains(&me.as_str()) {
                continue;
            }
            let folder = file
                .strip_prefix(&src)
                .unwrap()
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| {
                    p.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("::")
                });
            let text = std::fs::read_to_string(file).unwrap();
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let used = deps.entry(me.clone()).or_default();
            for m in crate_uses(&code, folder.as_deref(), &is_module) {
                let own_child = m.starts_with(&format!("{me}::"));
                if m != me && !own_child && !m.is_empty() && !outside.contains(&m.as_str()) {
                    used.insert(m);
                }
            }
        }
        assert!(deps.len() > 40, "{deps:?}");
        for (m, used) in &deps {
            assert!(
                m == "server" || !used.contains("router"),
                "{m} imports the router"
            );
        }
        fn visit(
            m: &str,
            deps: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|p| p == m) {
                let mut circle = path[at..].to_vec();
                circle.push(m.to_owned());
                return Some(circle);
            }
            if done.contains(m) {
                return None;
            }
            path.push(m.to_owned());
            for d in deps.get(m).into_iter().flatten() {
                if let Some(c) = visit(d, deps, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(m.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        for m in deps.keys() {
            if let Some(circle) = visit(m, &deps, &mut Vec::new(), &mut done) {
                panic!("an import circle: {}\n{deps:#?}", circle.join(" -> "));
            }
        }
        // Whole folders too: a domain's rules, storage and handlers sit below the domains
        // that use them. The app's state, the router, the server and the demo compose them
        // all and stay out of this count.
        let composing = ["app", "router", "server", "demo"];
        let folder = |m: &str| m.split("::").next().unwrap().to_owned();
        let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (m, used) in &deps {
            if composing.contains(&folder(m).as_str()) {
                continue;
            }
            let entry = folders.entry(folder(m)).or_default();
            for u in used {
                if folder(u) != folder(m) && !composing.contains(&folder(u).as_str()) {
                    entry.insert(folder(u));
                }
            }
        }
        let mut done = BTreeSet::new();
        for m in folders.keys() {
            if let Some(circle) = visit(m, &folders, &mut Vec::new(), &mut done) {
                panic!(
                    "a circle between folders: {}\n{folders:#?}",
                    circle.join(" -> ")
                );
            }
        }
    }
}
