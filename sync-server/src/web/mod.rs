//! The supervisors' web: server-rendered pages (minijinja templates, a little htmx), small
//! enough for a slow office link. Every page needs a full session (password and TOTP), every
//! form carries the session's CSRF token, and every query is scoped to the user's area by the
//! store functions it calls. Strings come from `locales/*.toml` (English and French).
//!
//! - [`auth`]: log-in, the second factor and its enrolment, log-out, language.
//! - [`pages`]: everything after log-in.

mod auth;
mod pages;

use std::{collections::HashMap, sync::LazyLock};

use axum::{
    Router,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Deserialize;

use crate::{
    Error, Result,
    app::{AppState, db},
    users::store::{
        Role,
        sessions::{self, Session, Stage},
    },
};

pub use crate::app::SESSION_COOKIE;
pub const LANGUAGE_COOKIE: &str = "outpost_lang";
pub const LANGUAGES: [&str; 2] = ["en", "fr"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(auth::login_page).post(auth::log_in))
        .route("/login/totp", get(auth::totp_page).post(auth::totp))
        .route("/account/totp", get(auth::enrol_page).post(auth::enrol))
        .route("/logout", post(auth::log_out))
        .route("/language", post(auth::language))
        .route("/payrolls", get(pages::payrolls))
        .route("/payrolls/generate", post(pages::generate))
        .route("/payrolls/{id}", get(pages::payroll))
        .route("/payrolls/{id}/reconciliation", get(pages::reconciliation))
        .route(
            "/payrolls/{id}/reconciliation.csv",
            get(pages::reconciliation_csv),
        )
        .route("/payrolls/{id}/openimis.csv", get(pages::openimis_csv))
        .route("/payrolls/{id}/openimis", post(pages::openimis_import))
        .route("/payrolls/{id}/statement", post(pages::statement_import))
        .route("/payrolls/{id}/resolve", post(pages::resolve))
        .route("/payrolls/{id}/float", post(pages::float))
        .route("/payrolls/{id}/sign-off", post(pages::sign_off))
        .route("/tasks", get(pages::tasks))
        .route("/tasks/{id}/decide", post(pages::decide))
        .route("/grievances", get(pages::grievances))
        .route("/grievances/{id}", get(pages::grievance))
        .route("/grievances/{id}/comment", post(pages::grievance_comment))
        .route("/grievances/{id}/status", post(pages::grievance_status))
        .route("/beneficiaries", get(pages::beneficiaries))
        .route("/beneficiaries/{id}", get(pages::beneficiary))
        .route("/devices", get(pages::devices))
        .route("/devices/enrol", post(pages::enrol_device))
        .route("/devices/{id}/revoke", post(pages::revoke_device))
        .route("/assets/{file}", get(asset))
        .layer(axum::middleware::from_fn(flash_context))
}

// ---------------------------------------------------------------------------------------------
// Templates and strings

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A missing string or variable is an error, so a page never shows a blank where a word
    // should be (and the browser tests catch it).
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    macro_rules! templates {
        ($($name:literal),+ $(,)?) => {
            $(env.add_template($name, include_str!(concat!("templates/", $name)))
                .expect(concat!("template ", $name, " parses"));)+
        };
    }
    templates!(
        "base.html",
        "login.html",
        "totp.html",
        "dashboard.html",
        "payrolls.html",
        "payroll.html",
        "reconciliation.html",
        "tasks.html",
        "grievances.html",
        "grievance.html",
        "beneficiaries.html",
        "beneficiary.html",
        "devices.html",
        "error.html",
        "task.html",
    );
    env.add_filter("when", |s: Option<String>| -> String {
        match s {
            Some(s) if s.len() >= 16 => format!("{} {}", &s[..10], &s[11..16]),
            Some(s) => s,
            None => "—".into(),
        }
    });
    env.add_filter("money", |minor: i128, currency: String| -> String {
        match currency.parse::<outpost_proto::Currency>() {
            Ok(c) => format!("{} {c}", group(&c.format_wide(minor))),
            Err(_) => format!("{minor} {currency}"),
        }
    });
    env
});

/// Thousands separated by a thin space: readable in English and French alike.
fn group(decimal: &str) -> String {
    let (sign, rest) = decimal
        .strip_prefix('-')
        .map_or(("", decimal), |r| ("-", r));
    let (whole, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(w, f)| (w, Some(f)));
    let mut out = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

static LOCALES: LazyLock<HashMap<&'static str, HashMap<String, String>>> = LazyLock::new(|| {
    let mut all = HashMap::new();
    for (lang, text) in [
        ("en", include_str!("../../locales/en.toml")),
        ("fr", include_str!("../../locales/fr.toml")),
    ] {
        let strings: HashMap<String, String> =
            toml::from_str(text).unwrap_or_else(|e| panic!("locales/{lang}.toml: {e}"));
        all.insert(lang, strings);
    }
    all
});

fn strings(lang: &str) -> Value {
    let lang = if LANGUAGES.contains(&lang) {
        lang
    } else {
        "en"
    };
    Value::from(minijinja::value::Serde(&LOCALES[lang]))
}

/// One string in a language, for messages built in code.
pub fn tr(lang: &str, key: &str) -> String {
    LOCALES
        .get(lang)
        .and_then(|s| s.get(key))
        .or_else(|| LOCALES["en"].get(key))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

/// What every page's frame needs, plus the page's own values.
pub struct View<'a> {
    pub lang: &'a str,
    pub session: Option<&'a Session>,
    pub nav: &'a str,
    pub flash: Flash,
}

/// A message carried to the next page in its query string. Only messages the server chose
/// are shown: `ok` is a key of the locale files (anything else is dropped), and `error` is
/// shown only with the `sig` [`after`] put beside it, so a link cannot put its own text on a
/// page (the log-in page especially) as if the server said it.
///
/// Many errors echo what was typed, so a signature alone would let anyone get a text of
/// their choosing signed and send the link to someone else. The signature therefore covers
/// the page it was made for, its time `at` (shown for [`FLASH_SECONDS`] only) and the
/// session cookie of the request that made it (`none` before log-in): replayed on another
/// page, in another browser or later, the message is not shown.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct Flash {
    #[serde(default)]
    pub ok: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub at: Option<i64>,
    #[serde(default)]
    pub sig: Option<String>,
}

/// How long a signed message is shown after it was made: long enough for a redirect.
pub const FLASH_SECONDS: i64 = 120;

/// Signs flash messages; made fresh each start (a message is only ever read on the next page).
static FLASH_KEY: LazyLock<ring::hmac::Key> = LazyLock::new(|| {
    ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
        .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand_fallback()))
});

/// Without system randomness the key is still unguessable enough for a message's signature:
/// the process id and the time. (System randomness failing means much else fails first.)
fn rand_fallback() -> Vec<u8> {
    format!("{}:{:?}", std::process::id(), std::time::SystemTime::now()).into_bytes()
}

/// What a flash signature is bound to besides its text: the request's path and session.
#[derive(Debug, Clone)]
struct Here {
    path: String,
    /// SHA-256 of the session cookie, base64url; `none` without one.
    session: String,
}

tokio::task_local! {
    /// The request being answered, for [`after`] (signing) and [`render`] (checking): set by
    /// [`flash_context`] around every web handler.
    static HERE: Here;
}

fn session_binding(headers: &HeaderMap) -> String {
    use base64::Engine;
    cookie(headers, SESSION_COOKIE).map_or_else(
        || "none".to_owned(),
        |token| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
                &ring::digest::SHA256,
                token.as_bytes(),
            ))
        },
    )
}

async fn flash_context(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let here = Here {
        path: request.uri().path().to_owned(),
        session: session_binding(request.headers()),
    };
    HERE.scope(here, next.run(request)).await
}

fn flash_signed(path: &str, at: i64, session: &str, message: &str) -> Vec<u8> {
    format!("{path}\n{at}\n{session}\n{message}").into_bytes()
}

/// A message's signature for the page `to` (its path), made now for the current session.
fn flash_sig(to: &str, at: i64, message: &str) -> String {
    use base64::Engine;
    let path = to.split(['?', '#']).next().unwrap_or(to);
    let session = HERE
        .try_with(|h| h.session.clone())
        .unwrap_or_else(|_| "none".into());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::hmac::sign(&FLASH_KEY, &flash_signed(path, at, &session, message)).as_ref())
}

impl Flash {
    /// The error message, if the server signed it for this page and session, lately.
    fn verified_error(&self) -> Option<String> {
        use base64::Engine;
        let (error, at, sig) = (self.error.as_ref()?, self.at?, self.sig.as_ref()?);
        let age = chrono::Utc::now().timestamp() - at;
        if !(-5..=FLASH_SECONDS).contains(&age) {
            return None;
        }
        let here = HERE.try_with(Here::clone).ok()?;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .ok()?;
        ring::hmac::verify(
            &FLASH_KEY,
            &flash_signed(&here.path, at, &here.session, error),
            &sig,
        )
        .ok()
        .map(|()| error.clone())
    }
}

pub fn render(view: View, template: &str, page: Value) -> Response {
    let user = view.session.map(|s| {
        minijinja::context! {
            username => s.user.username.clone(),
            display_name => s.user.display_name.clone(),
            role => format!("{:?}", s.user.role),
            area => s.user.area.clone().unwrap_or_default(),
        }
    });
    let ok = view.flash.ok.as_deref().and_then(|k| {
        let key = format!("ok_{k}");
        LOCALES["en"]
            .contains_key(&key)
            .then(|| tr(view.lang, &key))
    });
    let ctx = minijinja::context! {
        tr => strings(view.lang),
        lang => view.lang,
        user => user,
        csrf => view.session.map(|s| s.csrf.clone()),
        nav => view.nav,
        flash_ok => ok,
        flash_error => view.flash.verified_error(),
        ..page
    };
    match TEMPLATES.get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e) => {
            tracing::error!(error = %e, template, "page failed to render");
            html_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<h1>Something went wrong on the server; the error is logged.</h1>".into(),
            )
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    r
}

/// No framing, no inline script, nothing cached: pages hold personal data.
fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (include_bytes!("assets/htmx.min.js"), "text/javascript"),
        "style.css" => (include_bytes!("assets/style.css"), "text/css"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Sessions

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The session behind the request's cookie, at any stage.
pub async fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    db(state, move |s| s.read(|c| sessions::session(c, &token))).await
}

/// The language for pages before log-in: a cookie, else the browser's first choice we have.
fn guest_language(headers: &HeaderMap) -> String {
    if let Some(l) = cookie(headers, LANGUAGE_COOKIE).filter(|l| LANGUAGES.contains(&l.as_str())) {
        return l;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .map(|part| part.trim().get(..2).unwrap_or("").to_ascii_lowercase())
                .find(|l| LANGUAGES.contains(&l.as_str()))
        })
        .unwrap_or_else(|| "en".into())
}

/// A logged-in supervisor or administrator with a full session (password and TOTP).
pub struct Staff(pub Session);

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let found = session(state, &parts.headers).await.map_err(server_error)?;
        match found {
            Some(s) if s.stage == Stage::Full => {
                if matches!(s.user.role, Role::Supervisor | Role::Admin) {
                    Ok(Staff(s))
                } else {
                    Err(Redirect::to("/login").into_response())
                }
            }
            Some(s) if s.stage == Stage::EnrolSecondFactor => {
                Err(Redirect::to("/account/totp").into_response())
            }
            Some(_) => Err(Redirect::to("/login/totp").into_response()),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// A form posted from a staff page, taken only once its CSRF token and origin check out:
/// the session that sent it, the form, and the page it goes back to. A refused form never
/// reaches the handler; it goes back with the reason. Every staff page's form is taken
/// through this (or [`Upload`]), so no handler can forget the check.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
    /// Where the form was sent from ([`PageForm::back`]): where its outcome is shown.
    pub back: String,
}

/// A form a staff page posts.
pub trait PageForm: serde::de::DeserializeOwned + Send + 'static {
    /// The page the form's outcome (or its refusal) is shown on, from the path it was posted
    /// to: by default the page its action belongs to (`/grievances/{id}/status` →
    /// `/grievances/{id}`, `/logout` → `/`).
    fn back(&self, posted_to: &str) -> String {
        page_of(posted_to).to_owned()
    }
}

/// The path without its last segment: the page an action posted to `path` belongs to.
pub fn page_of(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((page, _)) => page,
    }
}

/// The form and the token it carries; the token is kept apart so no form declares it.
#[derive(Deserialize)]
struct WithToken<T> {
    #[serde(rename = "_csrf", default)]
    csrf: Option<String>,
    #[serde(flatten)]
    form: T,
}

impl<T: PageForm> axum::extract::FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Staff(session) = Staff::from_request_parts(&mut parts, state).await?;
        let (path, headers) = (parts.uri.path().to_owned(), parts.headers.clone());
        let req = axum::extract::Request::from_parts(parts, body);
        let axum::Form(WithToken { csrf, form }) =
            axum::Form::<WithToken<T>>::from_request(req, state)
                .await
                .map_err(IntoResponse::into_response)?;
        let back = form.back(&path);
        // A form carries its token as a field; one without it is refused, whatever headers
        // came with it (the header is for htmx's requests, not forms).
        let sent = Some(csrf.as_deref().unwrap_or_default());
        check_csrf(&session, &headers, sent).map_err(|e| after(&back, Err(e)))?;
        Ok(Posted {
            session,
            form,
            back,
        })
    }
}

/// A file posted from a staff page (multipart: the file and the form's other fields), its
/// token checked as [`Posted`] checks a form's. Its outcome shows on a page beside the one
/// its action belongs to (`/payrolls/{id}/openimis` from `reconciliation` →
/// `/payrolls/{id}/reconciliation`).
pub struct Upload {
    pub session: Session,
    pub fields: HashMap<String, String>,
    pub file: Vec<u8>,
    pub back: String,
}

impl Upload {
    /// Reads the upload, then checks its token; `page` names the sibling page it came from.
    pub async fn take(
        state: &AppState,
        req: axum::extract::Request,
        page: &str,
    ) -> Result<Upload, Response> {
        let (mut parts, body) = req.into_parts();
        let Staff(session) = Staff::from_request_parts(&mut parts, state).await?;
        let back = format!("{}/{page}", page_of(parts.uri.path()).trim_end_matches('/'));
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let multipart =
            <axum::extract::Multipart as axum::extract::FromRequest<AppState>>::from_request(
                req, state,
            )
            .await
            .map_err(|e| {
                after(
                    &back,
                    Err(Error::Invalid(format!("the upload is not valid: {e}"))),
                )
            })?;
        let (fields, file) = read_upload(multipart)
            .await
            .map_err(|e| after(&back, Err(e)))?;
        check_csrf(
            &session,
            &headers,
            Some(fields.get("_csrf").map(String::as_str).unwrap_or_default()),
        )
        .map_err(|e| after(&back, Err(e)))?;
        Ok(Upload {
            session,
            fields,
            file,
            back,
        })
    }
}

/// The file and the other fields of a multipart upload.
async fn read_upload(
    mut m: axum::extract::Multipart,
) -> Result<(HashMap<String, String>, Vec<u8>)> {
    let mut fields = HashMap::new();
    let mut file = Vec::new();
    while let Some(field) = m
        .next_field()
        .await
        .map_err(|e| Error::Invalid(format!("the upload is not valid: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some() {
            file = field
                .bytes()
                .await
                .map_err(|e| Error::Invalid(format!("the file could not be read: {e}")))?
                .to_vec();
        } else {
            fields.insert(
                name,
                field
                    .text()
                    .await
                    .map_err(|e| Error::Invalid(e.to_string()))?,
            );
        }
    }
    if file.is_empty() {
        return Err(Error::Invalid("choose a file to upload".into()));
    }
    Ok((fields, file))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Refuses a state-changing request without the session's CSRF token (a form field or the
/// `X-CSRF-Token` header htmx sends) or from another origin.
pub fn check_csrf(session: &Session, headers: &HeaderMap, form_token: Option<&str>) -> Result<()> {
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) && origin != "null"
        && origin.split("://").nth(1) != Some(host)
    {
        return Err(Error::Forbidden(
            "this form was sent from another site".into(),
        ));
    }
    let sent = form_token
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if constant_time_eq(&sent, &session.csrf) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "the form has expired; reload the page and try again".into(),
        ))
    }
}

/// Whether `path` is a path on this site (for `back` parameters): a single leading slash,
/// no backslash (browsers read `/\\evil` as `//evil`), no control characters.
pub fn local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/') | Some('\\'))
        && !path.chars().any(|c| c == '\\' || c.is_control())
}

pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

// ---------------------------------------------------------------------------------------------
// Answers

pub fn server_error(e: Error) -> Response {
    tracing::error!(error = %e, "page failed");
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "<h1>Something went wrong on the server; the error is logged.</h1>".into(),
    )
}

/// After a form: back to `to`, with a message. A refusal (bad input, a rule) is shown on the
/// page it came from; a fault of ours is an error page.
pub fn after(to: &str, outcome: Result<&str>) -> Response {
    let query = match outcome {
        Ok(key) => serde_urlencoded::to_string([("ok", key)]),
        Err(e @ (Error::Storage { .. } | Error::Io(_) | Error::Internal(_))) => {
            return server_error(e);
        }
        Err(e) => {
            let message = e.to_string();
            let at = chrono::Utc::now().timestamp();
            let sig = flash_sig(to, at, &message);
            serde_urlencoded::to_string([("error", message), ("at", at.to_string()), ("sig", sig)])
        }
    }
    .unwrap_or_default();
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}{query}")).into_response()
}

/// A page that could not be shown: not found, forbidden, or our fault.
pub fn error_page(session: &Session, e: Error) -> Response {
    let status = match &e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        Error::Storage { .. } | Error::Io(_) | Error::Internal(_) => return server_error(e),
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let mut r = render(
        View {
            lang: &session.language,
            session: Some(session),
            nav: "",
            flash: Flash::default(),
        },
        "error.html",
        minijinja::context! { message => e.to_string() },
    );
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed message shows on the page and session it was made for, for two minutes.
    #[test]
    fn a_flash_signature_holds_for_its_page_its_session_and_two_minutes_only() {
        let here = |path: &str, session: &str| Here {
            path: path.into(),
            session: session.into(),
        };
        let now = chrono::Utc::now().timestamp();
        let flash = |at: i64| {
            let sig = HERE.sync_scope(here("/tasks", "S1"), || {
                flash_sig("/tasks?status=open", at, "household 'X' not found")
            });
            Flash {
                error: Some("household 'X' not found".into()),
                at: Some(at),
                sig: Some(sig),
                ..Flash::default()
            }
        };
        let shown = |f: &Flash, path: &str, session: &str| {
            HERE.sync_scope(here(path, session), || f.verified_error())
        };
        let fresh = flash(now);
        assert!(shown(&fresh, "/tasks", "S1").is_some(), "its own page");
        assert!(shown(&fresh, "/login", "S1").is_none(), "another page");
        assert!(shown(&fresh, "/tasks", "S2").is_none(), "another session");
        assert!(shown(&fresh, "/tasks", "none").is_none(), "no session");
        let mut moved = fresh.clone();
        moved.at = Some(now - 1);
        assert!(
            shown(&moved, "/tasks", "S1").is_none(),
            "its time is signed"
        );
        let old = flash(now - FLASH_SECONDS - 1);
        assert!(shown(&old, "/tasks", "S1").is_none(), "expired");
        assert!(
            shown(&flash(now - FLASH_SECONDS + 5), "/tasks", "S1").is_some(),
            "still in time"
        );
    }

    #[test]
    fn english_and_french_have_the_same_strings_and_every_template_parses() {
        let en: std::collections::BTreeSet<&String> = LOCALES["en"].keys().collect();
        let fr: std::collections::BTreeSet<&String> = LOCALES["fr"].keys().collect();
        assert_eq!(
            en, fr,
            "locales/en.toml and locales/fr.toml must hold the same keys"
        );
        for key in [
            "status_PENDING_APPROVAL",
            "line_OVERPAID",
            "exception_PAID_TWICE",
            "task_kind_TIMESHEET",
        ] {
            assert!(en.contains(&key.to_owned()), "{key}");
        }
        for name in [
            "base.html",
            "dashboard.html",
            "reconciliation.html",
            "task.html",
        ] {
            TEMPLATES.get_template(name).expect(name);
        }
        assert_eq!(group("-1234567.50"), "-1\u{202f}234\u{202f}567.50");
        assert_eq!(tr("fr", "nav_tasks"), "Tâches");
        for ok in ["/", "/payrolls/1?x=/y", "/tasks"] {
            assert!(local_path(ok), "{ok}");
        }
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "/\t/evil.com",
            "https://evil.com",
            "evil",
            "",
        ] {
            assert!(!local_path(bad), "{bad}");
        }
    }
}
