//! The one harness every suite starts its server with: the server's own tests
//! (`sync-server/tests`), the end-to-end suites and benchmarks (`tests/`) and the device
//! core's (`mobile-core/tests`).
//!
//! [`demo`] makes a [`Builder`] for a server with the demo programme; it runs in this process
//! (with the `in-process` feature, so a test can reach its store) or as the `outpost-server`
//! binary ([`Builder::binary`], which can be killed and restarted), over HTTP or HTTPS
//! ([`Builder::https`]), with a proxy in front that cuts connections on demand
//! ([`Builder::fault_proxy`]). The running [`TestServer`] hands out what a client needs:
//! TOTP codes the server has not seen yet, staff tokens, JSON calls, a web session.
//!
//! The server runs on a runtime of the kit's own, so suites with a runtime and suites without
//! one use it alike; a suite without one calls the async helpers through
//! [`TestServer::block_on`].

pub mod codes;
pub mod proxy;

use std::{
    future::Future,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, OnceLock},
};

use serde_json::{Value, json};
use tempfile::TempDir;

pub use codes::FreshCodes;
pub use proxy::{Fault, Proxy};

/// The demo staff's password (published in the README, as the demo's TOTP secret is).
pub const DEMO_PASSWORD: &str = "outpost-demo-2026";

/// The day every demo in this test process is generated as of: the process's today in the
/// local zone (as a phone sees it), taken once, so a run that crosses midnight still pays
/// inside the cycle it made. Pay and list what is due on this day, never on the clock's.
pub fn today() -> chrono::NaiveDate {
    static DAY: OnceLock<chrono::NaiveDate> = OnceLock::new();
    *DAY.get_or_init(|| chrono::Local::now().date_naive())
}

/// The demo's payment cycle code for a day (`YYYY-MM`: the calendar month holding it).
pub fn cycle_of(day: chrono::NaiveDate) -> String {
    day.format("%Y-%m").to_string()
}

/// The server binary the root workspace builds: `OUTPOST_SERVER_BIN` if set, else
/// `target/debug/outpost-server` (`scripts/test` builds it first).
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OUTPOST_SERVER_BIN") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/outpost-server");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p outpost-server` at the repository root first \
         (scripts/test does)",
        p.display()
    );
    p
}

/// How a test server is made; [`demo`] starts one.
#[must_use = "a builder does nothing until started"]
pub struct Builder {
    households: usize,
    tls: Option<(String, String)>,
    binary: Option<PathBuf>,
    proxy: bool,
    #[cfg(feature = "in-process")]
    limits: outpost_server::app::limits::Limits,
}

/// A server with the demo programme of `households` households, as of [`today`]: in this
/// process with the `in-process` feature, else the binary.
pub fn demo(households: usize) -> Builder {
    Builder {
        households,
        tls: None,
        binary: (!cfg!(feature = "in-process")).then(server_bin),
        proxy: false,
        #[cfg(feature = "in-process")]
        limits: Default::default(),
    }
}

impl Builder {
    /// Serves HTTPS with this certificate and key (PEM) for `localhost`; the kit's client
    /// trusts the certificate and reaches the server as `https://localhost:PORT`.
    pub fn https(mut self, cert_pem: &str, key_pem: &str) -> Builder {
        self.tls = Some((cert_pem.to_owned(), key_pem.to_owned()));
        self
    }

    /// Runs the `outpost-server` binary ([`server_bin`]) on the data directory, as an
    /// operator would: it can be killed and restarted, and the CLI reaches the same data.
    pub fn binary(mut self) -> Builder {
        self.binary = Some(server_bin());
        self
    }

    /// As [`binary`](Self::binary), with this binary (a suite of the server's own names the
    /// one cargo built for it).
    pub fn binary_at(mut self, path: impl Into<PathBuf>) -> Builder {
        self.binary = Some(path.into());
        self
    }

    /// Caps and timeouts of the test's choosing (shortened timeouts, so that a held request
    /// is dropped within the test's patience). In-process only.
    #[cfg(feature = "in-process")]
    pub fn limits(mut self, limits: outpost_server::app::limits::Limits) -> Builder {
        self.limits = limits;
        self
    }

    /// Puts a [`Proxy`] in front: [`TestServer::base`] is then the proxy's address, and
    /// [`TestServer::proxy`] sets its faults.
    pub fn fault_proxy(mut self) -> Builder {
        self.proxy = true;
        self
    }

    /// Makes the demo and starts the server; stopped when the [`TestServer`] drops.
    pub fn start(self) -> TestServer {
        assert!(
            !(self.proxy && self.tls.is_some()),
            "the fault proxy speaks plain HTTP to its clients: ask for HTTPS or a proxy"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("a data directory");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the kit's runtime");
        // Every client and server in Outpost uses ring; a process picks its provider once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = self.tls.as_ref().map(|(cert, key)| {
            let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&c, cert).expect("the certificate");
            std::fs::write(&k, key).expect("the key");
            (c, k)
        });
        let day = today();
        let (running, direct) = match &self.binary {
            Some(bin) => {
                let out = Command::new(bin)
                    .arg("--data")
                    .arg(&data)
                    .args(["demo", "--households", &self.households.to_string()])
                    .args(["--as-of", &day.to_string()])
                    .output()
                    .expect("the server binary runs");
                assert!(
                    out.status.success(),
                    "demo: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let mut serve_args: Vec<String> = Vec::new();
                if let Some((cert, key)) = &tls {
                    serve_args.extend([
                        "--tls-cert".into(),
                        cert.display().to_string(),
                        "--tls-key".into(),
                        key.display().to_string(),
                    ]);
                }
                let (child, url) = serve(bin, &data, &serve_args);
                (
                    Running::Binary {
                        bin: bin.clone(),
                        child: Some(child),
                        serve_args,
                    },
                    url,
                )
            }
            #[cfg(feature = "in-process")]
            None => in_process::start(&rt, &data, self.households, day, tls, self.limits),
            #[cfg(not(feature = "in-process"))]
            None => unreachable!("without `in-process` a server is always the binary"),
        };
        let direct = match &self.tls {
            // Reached by name, so the certificate for `localhost` matches.
            Some(_) => direct.replace("https://127.0.0.1:", "https://localhost:"),
            None => direct,
        };
        let mut http = reqwest::Client::builder();
        if let Some((cert, _)) = &self.tls {
            let port = direct.rsplit(':').next().unwrap_or_default();
            http = http
                .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).expect("PEM")])
                .resolve(
                    "localhost",
                    format!("127.0.0.1:{port}").parse().expect("an address"),
                );
        }
        let proxy = self.proxy.then(|| {
            let upstream = address(&direct);
            on_thread(|| rt.block_on(Proxy::start(upstream)))
        });
        TestServer {
            base: proxy.as_ref().map_or_else(|| direct.clone(), Proxy::url),
            direct,
            day,
            cycle: cycle_of(day),
            proxy,
            http: http.build().expect("the kit's client"),
            tokens: Default::default(),
            codes: Default::default(),
            running,
            data,
            _dir: dir,
            rt: Some(rt),
        }
    }
}

enum Running {
    #[cfg(feature = "in-process")]
    InProcess {
        state: outpost_server::app::AppState,
        handle: axum_server::Handle<SocketAddr>,
    },
    Binary {
        bin: PathBuf,
        child: Option<Child>,
        serve_args: Vec<String>,
    },
}

/// A running server with the demo programme in a data directory of its own; stopped on drop.
pub struct TestServer {
    /// Where clients go: the proxy when there is one, else the server itself.
    pub base: String,
    /// The server itself, past any proxy.
    pub direct: String,
    /// The day the demo was generated as of ([`today`]), and its cycle's code.
    pub day: chrono::NaiveDate,
    pub cycle: String,
    /// The proxy in front, when [`Builder::fault_proxy`] asked for one.
    pub proxy: Option<Proxy>,
    /// A client that reaches the server (trusting its certificate under HTTPS).
    pub http: reqwest::Client,
    /// Tokens already issued, per user: a token costs a TOTP code, and a code is accepted
    /// once per 30-second step.
    tokens: Mutex<std::collections::HashMap<String, String>>,
    codes: FreshCodes,
    running: Running,
    data: PathBuf,
    _dir: TempDir,
    rt: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's data directory: its database and the key files beside it.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The in-process server's state, to reach its store the way an administrator would.
    #[cfg(feature = "in-process")]
    pub fn state(&self) -> &outpost_server::app::AppState {
        match &self.running {
            Running::InProcess { state, .. } => state,
            Running::Binary { .. } => panic!("a server run as the binary has no state here"),
        }
    }

    /// Runs `outpost-server ARGS` on this server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        let bin = match &self.running {
            Running::Binary { bin, .. } => bin.clone(),
            #[cfg(feature = "in-process")]
            Running::InProcess { .. } => server_bin(),
        };
        Command::new(bin)
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .output()
            .expect("the server binary runs")
    }

    /// As [`cli`](Self::cli), which must succeed; its JSON output (`Null` if none).
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Runs `f` to completion on the kit's runtime: how a suite without a runtime of its own
    /// calls the async helpers. Never call it from inside a runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("the kit's runtime").block_on(f)
    }

    /// Kills the server process (SIGKILL), as a power cut would. Binary only.
    #[cfg_attr(not(feature = "in-process"), allow(irrefutable_let_patterns))]
    pub fn kill(&mut self) {
        let Running::Binary { child, .. } = &mut self.running else {
            panic!("only a server run as the binary can be killed");
        };
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Serves the same data directory again (killing the process first if it runs), on a new
    /// port; the proxy, if any, follows it, so clients keep their address. Binary only.
    #[cfg_attr(not(feature = "in-process"), allow(irrefutable_let_patterns))]
    pub fn restart(&mut self) {
        self.kill();
        let Running::Binary {
            bin,
            child,
            serve_args,
        } = &mut self.running
        else {
            unreachable!("kill checked the mode");
        };
        let (again, url) = serve(bin, &self.data, serve_args);
        *child = Some(again);
        self.direct = url;
        match &self.proxy {
            Some(p) => p.set_upstream(address(&self.direct)),
            None => self.base = self.direct.clone(),
        }
    }

    /// A code from a demo user's authenticator app that the server has not seen yet (waits
    /// for the clock only when the user spent two codes within one step, three early in a
    /// step).
    pub async fn code(&self, username: &str) -> String {
        let (code, wait) = self.fresh_code(username);
        tokio::time::sleep(wait).await;
        code
    }

    /// As [`code`](Self::code), for a test without a runtime.
    pub fn code_blocking(&self, username: &str) -> String {
        let (code, wait) = self.fresh_code(username);
        std::thread::sleep(wait);
        code
    }

    fn fresh_code(&self, username: &str) -> (String, std::time::Duration) {
        self.codes.next(username, |at| match &self.running {
            #[cfg(feature = "in-process")]
            Running::InProcess { .. } => outpost_server::users::store::sessions::code_at(
                outpost_server::users::store::sessions::DEMO_TOTP_SECRET,
                at,
            )
            .expect("a TOTP code"),
            Running::Binary { bin, .. } => {
                let out = Command::new(bin)
                    .args(["totp-code", "--at", &at.to_string()])
                    .output()
                    .expect("the server binary runs");
                assert!(out.status.success(), "totp-code");
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
        })
    }

    /// A bearer token for a demo user (one per user and server, kept for later calls).
    pub async fn token(&self, username: &str) -> String {
        if let Some(t) = self.tokens.lock().unwrap().get(username) {
            return t.clone();
        }
        let code = self.code(username).await;
        let (status, body) = self
            .call(
                None,
                reqwest::Method::POST,
                "/api/v1/auth/token",
                Some(json!({"username": username, "password": DEMO_PASSWORD, "code": code})),
            )
            .await;
        assert_eq!(status, 200, "log-in as {username}: {body}");
        let token = body["token"].as_str().expect("a token").to_owned();
        self.tokens
            .lock()
            .unwrap()
            .insert(username.to_owned(), token.clone());
        token
    }

    /// A JSON call with a bearer token; the status and the parsed body (`Null` if none).
    pub async fn json(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call(Some(token), method, path, body).await
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.expect("the server answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
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
                Some(json!({"agent": agent, "assignment": assignment})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["code"].as_str().unwrap().to_owned()
    }

    /// A full web session for a demo user (password, then a fresh TOTP code), as a browser
    /// holds it.
    pub async fn web_session(&self, username: &str) -> WebSession {
        let web = WebSession {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookie: String::new(),
            csrf: String::new(),
        };
        let r = web
            .http
            .post(self.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username={username}&password={DEMO_PASSWORD}"))
            .send()
            .await
            .expect("the log-in page answers");
        let cookie = r
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let web = WebSession { cookie, ..web };
        let (_, page) = web.page("/login/totp").await;
        let csrf = csrf_of(&page);
        // A step the kit has not spent for this user (its token may have taken one).
        let code = self.code(username).await;
        let r = web
            .post_form("/login/totp", &format!("code={code}&_csrf={csrf}"))
            .await;
        assert_eq!(
            r.headers().get("location").map(|v| v.to_str().unwrap()),
            Some("/"),
            "the second factor is accepted"
        );
        let (_, page) = web.page("/").await;
        WebSession {
            csrf: csrf_of(&page),
            ..web
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        match &mut self.running {
            #[cfg(feature = "in-process")]
            Running::InProcess { handle, .. } => handle.shutdown(),
            Running::Binary { child, .. } => {
                if let Some(mut c) = child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        // Allowed inside another runtime, where dropping this one would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A browser's session on the supervisors' web: its cookie and the CSRF token its forms carry.
pub struct WebSession {
    base: String,
    /// A client that does not follow redirects, so a test sees where a form sends it.
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
}

impl WebSession {
    /// A page: its status and its text.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("the page answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// Posts an urlencoded form body as it is (add `_csrf` yourself).
    pub async fn post_form(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .expect("the form is answered")
    }
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(page: &str) -> String {
    let field = "name=\"_csrf\" value=\"";
    let at = page
        .find(field)
        .unwrap_or_else(|| panic!("a CSRF field in {page}"));
    let rest = &page[at + field.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// `outpost-server serve` on `data`, on a free loopback port; the process and its URL.
fn serve(bin: &Path, data: &Path, args: &[String]) -> (Child, String) {
    let mut child = Command::new(bin)
        .arg("--data")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary runs");
    let mut lines = BufReader::new(child.stdout.take().expect("its output")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .expect("a line");
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_owned();
        }
    };
    (child, url)
}

/// The socket address of a server URL.
pub fn address(url: &str) -> SocketAddr {
    let host = url.split("://").nth(1).unwrap_or(url);
    let host = host.split('/').next().unwrap_or(host);
    host.replace("localhost", "127.0.0.1")
        .parse()
        .expect("a loopback address")
}

/// Runs `f` on a thread of its own: a runtime cannot be entered from inside another.
fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("the kit's thread"))
}

#[cfg(feature = "in-process")]
mod in_process {
    use std::path::{Path, PathBuf};

    use outpost_server::{
        app::{AppState, limits::Limits},
        demo,
        devices::store::ProgrammeKey,
        store::Store,
    };

    use super::Running;

    /// The server in this process, on the kit's runtime; its state and URL.
    pub(super) fn start(
        rt: &tokio::runtime::Runtime,
        data: &Path,
        households: usize,
        day: chrono::NaiveDate,
        tls: Option<(PathBuf, PathBuf)>,
        limits: Limits,
    ) -> (Running, String) {
        let store = Store::open(&data.join("registry.db")).expect("store");
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
            ..AppState::new(store, ProgrammeKey::load_or_create(data).expect("key"))
        };
        let tls_config = tls.map(|(cert, key)| {
            outpost_server::server::tls_config(&cert, &key).expect("tls config")
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base =
            outpost_server::server::base_url(&listener, tls_config.is_some()).expect("an address");
        let handle = axum_server::Handle::new();
        rt.spawn(outpost_server::server::run(
            state.clone(),
            listener,
            tls_config,
            handle.clone(),
        ));
        (Running::InProcess { state, handle }, base)
    }

    #[test]
    fn the_kits_demo_constants_are_the_servers() {
        assert_eq!(super::DEMO_PASSWORD, demo::DEMO_PASSWORD);
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        assert_eq!(super::cycle_of(day), demo::cycle_of(day).code);
    }
}
