//! Caps on work the server does before it knows who is asking, so that an outsider cannot
//! stall it: requests beyond a cap are answered `429 Too Many Requests` with `Retry-After`
//! at once, before any body is read or any password hashed.
//!
//! Three classes of work, each with its own [`Limiter`] in [`Limits`]:
//!
//! - **log-ins** (`POST /login`, `POST /login/totp`, `POST /api/v1/auth/token`): an argon2
//!   hash each, so few per client address and few in total;
//! - **anonymous** requests (enrolment, `hello`, the log-in pages, and any route called
//!   without a bearer token or session cookie): cheap each, capped loosely per address;
//! - **device bodies** (`/sync/v1/replica`, `push`, `changes`): the handler first checks the
//!   signature headers and that the device is known and not revoked (one indexed read), then
//!   reads the body under a per-*device* cap (a real device sends one request at a time) and
//!   a waiting global cap on bodies read at once ([`BODY_READS`]). Many devices behind one
//!   address (a NAT, the load tests on loopback) are therefore never refused for sharing it.
//!
//! Requests that carry a credential are not counted: the check of a bearer token or a
//! session cookie is one indexed read (tokens are kept as SHA-256), and a wrong one is
//! answered 401 or redirected at once.
//!
//! Every cap counts requests *in progress*, not a rate: a permit is released when its
//! handler returns (or its client leaves), so the counters never grow without bound: an
//! address with nothing in progress has no entry.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use outpost_proto::wire;
use uuid::Uuid;

use super::AppState;
use crate::Error;

/// What a refused client is told to wait, in seconds: long enough for a log-in to finish.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Sync bodies read at once, whoever sends them. Each may be 8 MiB, so this bounds the memory
/// held by bodies whose signature is not yet checked; beyond it requests wait in line (they
/// already passed the device check, so they are most likely real devices).
pub static BODY_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);

/// The caps in force; [`Limits::default`] suits a programme's server and the load tests (many
/// devices from one loopback address).
pub struct Limits {
    pub logins: Arc<Limiter<IpAddr>>,
    pub anonymous: Arc<Limiter<IpAddr>>,
    pub devices: Arc<Limiter<Uuid>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Argon2 takes tens of milliseconds and megabytes on a small server's two cores.
            logins: Limiter::new("log-ins", 4, 16),
            // The fleet benchmark enrols 32 devices at once from one address.
            anonymous: Limiter::new("requests without credentials", 64, 512),
            // A device sends one request at a time; a few allow for a retry racing the
            // original. The total only bounds the table.
            devices: Limiter::new("sync requests", 4, 8192),
        }
    }
}

/// Counts work in progress per key (a client address, a device) and in total, refusing
/// beyond either cap. Keys with nothing in progress are removed, so the table holds at most
/// `total` entries.
pub struct Limiter<K> {
    what: &'static str,
    per_key: usize,
    total: usize,
    state: Mutex<Counts<K>>,
}

struct Counts<K> {
    in_progress: usize,
    by_key: HashMap<K, usize>,
}

/// One unit of work in progress; released on drop.
pub struct Permit<K: Hash + Eq + Copy> {
    limiter: Arc<Limiter<K>>,
    key: K,
}

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub fn new(what: &'static str, per_key: usize, total: usize) -> Arc<Limiter<K>> {
        Arc::new(Limiter {
            what,
            per_key,
            total,
            state: Mutex::new(Counts {
                in_progress: 0,
                by_key: HashMap::new(),
            }),
        })
    }

    /// A permit for `key`, or [`Error::Busy`] when `key` or everyone together is at the cap.
    pub fn try_acquire(self: &Arc<Self>, key: K, whose: &str) -> Result<Permit<K>, Error> {
        let mut counts = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if counts.in_progress >= self.total {
            return Err(Error::Busy(format!(
                "the server is handling {} {} at once; try again in {RETRY_AFTER_SECS} s",
                self.total, self.what
            )));
        }
        let mine = counts.by_key.entry(key).or_insert(0);
        if *mine >= self.per_key {
            return Err(Error::Busy(format!(
                "{} {} already in progress from {whose}; try again in {RETRY_AFTER_SECS} s",
                self.per_key, self.what
            )));
        }
        *mine += 1;
        counts.in_progress += 1;
        Ok(Permit {
            limiter: self.clone(),
            key,
        })
    }

    /// Work in progress, all keys together.
    pub fn in_progress(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_progress
    }

    /// How many keys have work in progress (the size of the table).
    pub fn keys(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }
}

impl<K: Hash + Eq + Copy> Drop for Permit<K> {
    fn drop(&mut self) {
        let mut counts = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        counts.in_progress = counts.in_progress.saturating_sub(1);
        if let Some(n) = counts.by_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.by_key.remove(&self.key);
            }
        }
    }
}

/// Which cap a request falls under, from its method, path and headers alone.
#[derive(Debug, PartialEq)]
enum Class {
    Login,
    Anonymous,
    /// Credentialed requests, and device sync requests (limited per device in `api::sync`).
    Uncounted,
}

fn classify(method: &Method, path: &str, headers: &HeaderMap) -> Class {
    let login_path = matches!(path, "/login" | "/login/totp" | "/api/v1/auth/token");
    if method == Method::POST && login_path {
        return Class::Login;
    }
    if path == wire::path::ENROL || path == wire::path::HELLO {
        return Class::Anonymous;
    }
    if path.starts_with("/sync/") || has_credential(headers) {
        return Class::Uncounted;
    }
    Class::Anonymous
}

/// A bearer token or a session cookie, right or wrong (a wrong one costs one indexed read).
fn has_credential(headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| {
            c.trim()
                .strip_prefix(crate::web::SESSION_COOKIE)
                .is_some_and(|rest| rest.starts_with('='))
        });
    bearer || session
}

/// The client's address; without one (a router served without connection info) every
/// request shares one key, which only makes the caps stricter.
pub fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The router's layer: takes a permit for log-ins and anonymous requests, or answers 429.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limiter = match classify(request.method(), request.uri().path(), request.headers()) {
        Class::Login => &state.limits.logins,
        Class::Anonymous => &state.limits.anonymous,
        Class::Uncounted => return next.run(request).await,
    };
    let address = client_address(&request);
    match limiter.try_acquire(address, &format!("the address {address}")) {
        Ok(_permit) => next.run(request).await,
        Err(busy) => busy_response(request.uri().path(), busy),
    }
}

/// A 429 in the format the path speaks: the protocol's `ErrorReply` on `/sync/`, the API's
/// JSON error on `/api/`, a short page for the web.
fn busy_response(path: &str, busy: Error) -> Response {
    if path.starts_with("/sync/") {
        super::sync::SyncFailure::from(busy).into_response()
    } else if path.starts_with("/api/") {
        busy.into_response()
    } else {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<!doctype html><title>Outpost</title><p>{}</p><p><a href=\"/login\">Log in</a></p>",
                html_escape(&busy.to_string())
            ),
        )
            .into_response();
        retry_after(&mut response);
        response
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Sets `Retry-After` on a 429.
pub fn retry_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_key_and_in_total_and_forgets_idle_keys() {
        let limiter = Limiter::<u8>::new("things", 2, 3);
        let a1 = limiter.try_acquire(1, "a").unwrap();
        let a2 = limiter.try_acquire(1, "a").unwrap();
        assert!(matches!(limiter.try_acquire(1, "a"), Err(Error::Busy(_))));
        let b1 = limiter.try_acquire(2, "b").unwrap();
        let total = limiter.try_acquire(3, "c");
        assert!(
            matches!(&total, Err(Error::Busy(m)) if m.contains("3 things at once")),
            "the total cap"
        );
        drop(a1);
        let a3 = limiter.try_acquire(1, "a").unwrap();
        drop((a2, a3, b1));
        assert_eq!(limiter.keys(), 0, "idle keys are removed");
    }

    #[test]
    fn log_ins_are_classed_by_path_whatever_headers_they_carry() {
        let mut with_cookie = HeaderMap::new();
        with_cookie.insert(header::COOKIE, "outpost_session=x".parse().unwrap());
        let mut with_bearer = HeaderMap::new();
        with_bearer.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        let none = HeaderMap::new();
        assert_eq!(
            classify(&Method::POST, "/login", &with_cookie),
            Class::Login
        );
        assert_eq!(
            classify(&Method::POST, "/api/v1/auth/token", &with_bearer),
            Class::Login
        );
        assert_eq!(
            classify(&Method::POST, wire::path::ENROL, &none),
            Class::Anonymous
        );
        assert_eq!(
            classify(&Method::POST, wire::path::PUSH, &none),
            Class::Uncounted
        );
        assert_eq!(
            classify(&Method::GET, "/api/v1/me", &with_bearer),
            Class::Uncounted
        );
        assert_eq!(
            classify(&Method::GET, "/payrolls", &with_cookie),
            Class::Uncounted
        );
        assert_eq!(classify(&Method::GET, "/payrolls", &none), Class::Anonymous);
        let mut other_cookie = HeaderMap::new();
        other_cookie.insert(header::COOKIE, "outpost_lang=fr".parse().unwrap());
        assert_eq!(
            classify(&Method::GET, "/api/v1/me", &other_cookie),
            Class::Anonymous
        );
    }
}
