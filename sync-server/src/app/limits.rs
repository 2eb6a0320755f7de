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
//! Requests that carry a credential are not counted, even a made-up one (`Bearer x`, a bogus
//! session cookie): telling a wrong credential from a right one is the check itself, one
//! indexed read (tokens are kept as SHA-256) on a database slot ([`super::db`], which waits
//! in line rather than starting threads), answered 401 or redirected at once. Counting them
//! afterwards would bound nothing the slots do not already bound.
//!
//! Every cap counts requests *in progress*, not a rate: a permit is released when its
//! handler returns (or its client leaves), so the counters never grow without bound: an
//! address with nothing in progress has no entry. Argon2 itself runs under [`Hashing`],
//! whose permit goes with the hash onto its blocking thread, so a client that hangs up
//! frees its log-in permit but not a hash slot until the hash is done.
//!
//! Nothing waits on a client forever ([`Timeouts`]): a connection must send its request
//! head in time, a log-in or anonymous request must be done within its deadline (else
//! `408`, and its permit is freed), and a sync body must keep arriving at a minimum rate.
//!
//! One cap applies after the device is known: [`FirstDownloads`], on whole-replica downloads,
//! the costliest thing a device asks for, answered `503` with `Retry-After` beyond it.
//!
//! Clients are keyed by [`address_key`]: an IPv6 client by its /64 (one subscriber's
//! network), an IPv4-mapped IPv6 address as the IPv4 address it is.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::ConnectInfo,
    http::{HeaderMap, HeaderValue, Method, header},
    response::Response,
};
use outpost_proto::wire;
use uuid::Uuid;

use crate::Error;
use axum::{extract::FromRequestParts, http::request::Parts};

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
    /// Argon2 hashes running at once, whoever asked and whether or not they still wait.
    pub hashing: Hashing,
    /// Prepared upload batches held at once, waiting for the writer or being merged. Each
    /// holds its records as automerge documents, so the queue is bounded; the writer groups
    /// what waits, and a few dozen keep it busy.
    pub queued_batches: Arc<tokio::sync::Semaphore>,
    /// Devices downloading their whole replica at once (after enrolment, or a reset).
    pub first_downloads: Arc<FirstDownloads>,
    pub timeouts: Timeouts,
}

/// How long the server waits on a client; tests shorten them.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// For a connection's request head (hyper's header read timeout).
    pub header: Duration,
    /// For a whole log-in or anonymous request, hashing included; then `408`.
    pub request: Duration,
    /// For each piece of a sync body, and the grace before [`body_min_rate`](Self::body_min_rate)
    /// applies: a body must arrive within `body + received / body_min_rate`.
    pub body: Duration,
    /// Bytes per second a sync body must average past the grace (a slow 2G link sends more).
    pub body_min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(30),
            request: Duration::from_secs(30),
            body: Duration::from_secs(30),
            body_min_rate: 16 * 1024,
        }
    }
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
            // Two cores; a few more than that keep them busy while one hash's reads finish.
            hashing: Hashing::new(4),
            queued_batches: Arc::new(tokio::sync::Semaphore::new(32)),
            // A first download reads a whole district's rows, page after page; a few dozen
            // at once keep two cores busy, and a fleet enrolled in the same morning is told
            // to come back rather than piling up behind them.
            // Two minutes without moving forward: a 512 KiB page over a 2G link takes one.
            // Pages take seconds each over a slow link, so places free up at about the
            // pace of the ten seconds a device beyond the cap is told to wait.
            first_downloads: FirstDownloads::new(
                32,
                Duration::from_secs(120),
                Duration::from_secs(10),
            ),
            timeouts: Timeouts::default(),
        }
    }
}

/// Caps the devices in the middle of a first download (a replica download from cursor 0,
/// until its last page). A first download is the costliest thing a device asks for, so when
/// a whole fleet is enrolled at once the devices beyond the cap are answered `503` with
/// `Retry-After` on their first page, and come back with jitter, instead of all being served
/// slowly together. A device that stops moving forward loses its place after `idle`: asking
/// for the same page again does not keep it, so a stalled or hostile device cannot sit on a
/// place.
pub struct FirstDownloads {
    cap: usize,
    idle: Duration,
    /// What a device beyond the cap is told to wait, in seconds.
    retry_after: u64,
    /// Each device holding a place: when it last moved forward, and to which cursor.
    active: Mutex<HashMap<Uuid, (std::time::Instant, u64)>>,
}

impl FirstDownloads {
    pub fn new(cap: usize, idle: Duration, retry_after: Duration) -> Arc<FirstDownloads> {
        Arc::new(FirstDownloads {
            cap,
            idle,
            retry_after: retry_after.as_secs().max(1),
            active: Mutex::new(HashMap::new()),
        })
    }

    /// Lets `device` have a replica page from `cursor`, or answers [`Error::Unavailable`].
    /// A page from a later cursor is always served: the device either holds a place already
    /// or is syncing what changed since its last download.
    pub fn admit(&self, device: Uuid, cursor: u64) -> Result<(), Error> {
        self.admit_at(device, cursor, std::time::Instant::now())
    }

    fn admit_at(&self, device: Uuid, cursor: u64, now: std::time::Instant) -> Result<(), Error> {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active.retain(|_, (seen, _)| now.duration_since(*seen) < self.idle);
        if let Some((seen, at)) = active.get_mut(&device) {
            if cursor > *at {
                *seen = now;
                *at = cursor;
            }
            return Ok(());
        }
        if cursor != 0 {
            return Ok(());
        }
        if active.len() >= self.cap {
            return Err(Error::Unavailable {
                message: format!(
                    "{} devices are downloading their replica now; try again in {} s",
                    active.len(),
                    self.retry_after
                ),
                retry_after: self.retry_after,
            });
        }
        active.insert(device, (now, 0));
        Ok(())
    }

    /// The device's first download reached its last page: its place is free.
    pub fn finished(&self, device: Uuid) {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&device);
    }

    /// Devices holding a place now.
    pub fn in_progress(&self) -> usize {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Bounds argon2 work (about 19 MiB and tens of milliseconds each) by a semaphore whose
/// permit moves into the blocking task, as [`super::db`] does with its slot: the bound holds
/// for hashes still running after their client left, and the blocking pool `db` shares is
/// never filled with hashes.
pub struct Hashing {
    slots: Arc<tokio::sync::Semaphore>,
    cap: usize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Hashing {
    pub fn new(cap: usize) -> Hashing {
        Hashing {
            slots: Arc::new(tokio::sync::Semaphore::new(cap)),
            cap,
            running: Arc::default(),
            peak: Arc::default(),
            done: Arc::default(),
        }
    }

    /// Runs `f` (which hashes) on a blocking thread once a slot is free; waiting holds no
    /// thread, and a caller dropped while waiting starts nothing.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (running, peak, done) = (self.running.clone(), self.peak.clone(), self.done.clone());
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = f();
            running.fetch_sub(1, Ordering::SeqCst);
            done.fetch_add(1, Ordering::SeqCst);
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    }

    /// At most this many hashes run at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Hashes running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most hashes that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Hashes finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
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
pub(crate) enum Class {
    Login,
    Anonymous,
    /// Credentialed requests, and device sync requests (limited per device in `sync::http`).
    Uncounted,
}

pub(crate) fn classify(method: &Method, path: &str, headers: &HeaderMap) -> Class {
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
                .strip_prefix(super::SESSION_COOKIE)
                .is_some_and(|rest| rest.starts_with('='))
        });
    bearer || session
}

/// The key a client is counted and throttled by, for the limiter and the log-in throttle
/// alike: an IPv4 address as it is (also when it comes IPv4-mapped, `::ffff:a.b.c.d`), an
/// IPv6 address by its /64, the smallest network a subscriber is given, so that one client
/// cannot take 2^64 keys. Without connection info (a router served in-process) every
/// request shares `0.0.0.0`, which only makes the caps stricter.
pub fn address_key(address: Option<IpAddr>) -> IpAddr {
    match address {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

/// How a key reads in messages and audit entries: an IPv6 key with its `/64`.
pub fn address_label(key: IpAddr) -> String {
    match key {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

/// The client's address key ([`address_key`]) from the connection.
pub fn client_address(extensions: &axum::http::Extensions) -> IpAddr {
    address_key(
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
    )
}

/// Sets `Retry-After` on a 429.
pub fn retry_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
}

/// The client's address key ([`address_key`]: an IPv6 client by its /64), from the
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
        Ok(ClientAddress(address_label(client_address(
            &parts.extensions,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_downloads_are_capped_and_a_stalled_one_loses_its_place() {
        let cap = FirstDownloads::new(2, Duration::from_secs(10), Duration::from_secs(1));
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        cap.admit_at(a, 0, at(0)).unwrap();
        cap.admit_at(b, 0, at(0)).unwrap();
        let refused = cap.admit_at(c, 0, at(0));
        assert!(
            matches!(&refused, Err(Error::Unavailable { retry_after: 1, .. })),
            "{refused:?}"
        );
        // Those holding a place go on; an incremental sync is never held back.
        cap.admit_at(a, 40, at(1)).unwrap();
        cap.admit_at(c, 7, at(1)).unwrap();
        assert_eq!(cap.in_progress(), 2);
        cap.finished(a);
        cap.admit_at(c, 0, at(2)).unwrap();
        // b stops moving (it asks for its first page again and again): after `idle` its
        // place goes to the next device, while c, which moves forward, keeps its own.
        cap.admit_at(b, 0, at(6)).unwrap();
        cap.admit_at(c, 90, at(6)).unwrap();
        let d = Uuid::now_v7();
        cap.admit_at(d, 0, at(11)).unwrap();
        assert!(matches!(
            cap.admit_at(b, 0, at(11)),
            Err(Error::Unavailable { .. })
        ));
        assert_eq!(cap.in_progress(), 2, "c and d; b was dropped");
    }

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
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let key = |s: &str| address_key(Some(s.parse().unwrap()));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            key("2001:db8:1:2:abcd::9"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(address_key(None), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(address_label(key("2001:db8::5")), "2001:db8::/64");
        assert_eq!(address_label(key("::ffff:10.0.0.1")), "10.0.0.1");
        // One /64 shares one limiter entry, whatever addresses it sends from.
        let limiter = Limiter::<IpAddr>::new("things", 1, 10);
        let _first = limiter.try_acquire(key("2001:db8:1:2::1"), "a").unwrap();
        assert!(limiter.try_acquire(key("2001:db8:1:2::2"), "a").is_err());
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
