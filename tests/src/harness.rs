//! A real `outpost-server` on a loopback port, run in-process so tests can also reach its
//! store (to age an enrolment code, move a household) the way an administrator would.

use std::path::Path;

use outpost_server::{
    app::{AppState, limits::Limits},
    demo,
    devices::store::ProgrammeKey,
    store::Store,
    users::store::sessions,
};
use tempfile::TempDir;

/// A running server with the demo programme in its own data directory; stopped on drop.
pub struct TestServer {
    pub base: String,
    /// The day the demo was generated as of (the test's today), and its cycle's code: pay
    /// and list what is due on this day, never on the wall clock's.
    pub day: chrono::NaiveDate,
    pub cycle: String,
    pub state: AppState,
    pub http: reqwest::Client,
    /// Tokens already issued, per user: a token costs a TOTP code, and a code is accepted
    /// once per 30-second step.
    tokens: std::sync::Mutex<std::collections::HashMap<String, String>>,
    codes: sessions::testing::FreshCodes,
    handle: axum_server::Handle<std::net::SocketAddr>,
    _dir: TempDir,
}

impl TestServer {
    /// The demo programme with `households` households, served over plain HTTP.
    pub async fn start(households: usize) -> TestServer {
        Self::start_with(households, None).await
    }

    /// As [`start`](Self::start), over HTTPS with the PEM certificate and key given.
    pub async fn start_with(households: usize, tls: Option<(&Path, &Path)>) -> TestServer {
        Self::start_full(households, tls, Default::default()).await
    }

    /// As [`start`](Self::start), with caps and timeouts of the test's choosing (shortened
    /// timeouts, so that a held request is dropped within the test's patience).
    pub async fn start_with_limits(households: usize, limits: Limits) -> TestServer {
        Self::start_full(households, None, limits).await
    }

    async fn start_full(
        households: usize,
        tls: Option<(&Path, &Path)>,
        limits: Limits,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("registry.db")).expect("store");
        let day = demo::today();
        demo::load(
            &store,
            &demo::DemoOptions {
                households,
                as_of: day,
                ..Default::default()
            },
        )
        .expect("demo");
        let state = AppState {
            limits: std::sync::Arc::new(limits),
            ..AppState::new(
                store,
                ProgrammeKey::load_or_create(dir.path()).expect("key"),
            )
        };
        let tls_config = tls
            .map(|(cert, key)| outpost_server::server::tls_config(cert, key).expect("tls config"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = outpost_server::server::base_url(&listener, tls_config.is_some()).unwrap();
        let handle = axum_server::Handle::new();
        tokio::spawn(outpost_server::server::run(
            state.clone(),
            listener,
            tls_config,
            handle.clone(),
        ));
        TestServer {
            base,
            day,
            cycle: demo::cycle_of(day).code,
            state,
            http: reqwest::Client::new(),
            tokens: Default::default(),
            codes: Default::default(),
            handle,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A code from a demo user's authenticator app that the server has not seen yet (waits
    /// for the clock only when the user spent two codes within one step, three early in a step).
    pub async fn code(&self, username: &str) -> String {
        let (code, wait) = self
            .codes
            .next(username, sessions::DEMO_TOTP_SECRET)
            .expect("a TOTP code");
        tokio::time::sleep(wait).await;
        code
    }

    /// A bearer token for a demo user (one per user and server, kept for later calls).
    pub async fn token(&self, username: &str) -> String {
        if let Some(t) = self.tokens.lock().unwrap().get(username) {
            return t.clone();
        }
        let code = self.code(username).await;
        let r = self
            .http
            .post(self.url("/api/v1/auth/token"))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"username": username, "password": demo::DEMO_PASSWORD, "code": code})
                    .to_string(),
            )
            .send()
            .await
            .expect("token request");
        assert!(r.status().is_success(), "login as {username}");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let token = v["token"].as_str().unwrap().to_owned();
        self.tokens
            .lock()
            .unwrap()
            .insert(username.to_owned(), token.clone());
        token
    }

    /// A JSON call with a bearer token; returns the status and the parsed body.
    pub async fn json(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A new one-time enrolment code, created by `supervisor` through the API.
    pub async fn enrolment_code(&self, supervisor: &str, agent: &str, assignment: &str) -> String {
        let token = self.token(supervisor).await;
        let (status, body) = self
            .json(
                &token,
                reqwest::Method::POST,
                "/api/v1/devices/enrolments",
                Some(serde_json::json!({"agent": agent, "assignment": assignment})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["code"].as_str().unwrap().to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
