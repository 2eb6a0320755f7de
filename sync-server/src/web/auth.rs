//! Log-in with password then TOTP; first log-in enrols the authenticator app from a QR code.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{
    Flash, LANGUAGE_COOKIE, LANGUAGES, PageForm, Posted, SESSION_COOKIE, View, check_csrf,
    guest_language, render, server_error, session, set_cookie,
};
use crate::{
    Error,
    app::{AppState, db, limits::ClientAddress},
    users::store::sessions::{self, Stage},
};

pub async fn login_page(headers: HeaderMap, Query(flash): Query<Flash>) -> Response {
    let lang = guest_language(&headers);
    render(
        View {
            lang: &lang,
            session: None,
            nav: "login",
            flash,
        },
        "login.html",
        context! {},
    )
}

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

pub async fn log_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(c): Form<Credentials>,
) -> Response {
    // No session yet, so no CSRF token: a log-in posted from another site is refused by its
    // origin (SameSite cookies already keep it from riding on anyone's session).
    if cross_site(&headers) {
        return super::after(
            "/login",
            Err(Error::Forbidden(
                "this form was sent from another site".into(),
            )),
        );
    }
    let outcome = crate::app::check_password(
        &state,
        c.username,
        c.password,
        address,
        sessions::open_session,
    )
    .await
    .map(sessions::LogIn::from);
    match outcome {
        Ok(sessions::LogIn::Opened(token)) => {
            let mut r = Redirect::to("/login/totp").into_response();
            let max_age = sessions::SESSION_HOURS * 3600;
            r.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&state, SESSION_COOKIE, &token, max_age),
            );
            r
        }
        Ok(sessions::LogIn::Refused) => super::after(
            "/login",
            Err(Error::Invalid(
                "the username or password is not right".into(),
            )),
        ),
        Ok(sessions::LogIn::Paused(until)) => {
            super::after("/login", Err(sessions::paused_error(&until)))
        }
        Err(e) => super::after("/login", Err(e)),
    }
}

fn cross_site(headers: &HeaderMap) -> bool {
    let get = |h| {
        headers
            .get(h)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    matches!((get(header::ORIGIN), get(header::HOST)),
        (Some(origin), Some(host)) if origin != "null" && origin.split("://").nth(1) != Some(host))
}

pub async fn totp_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    match session(&state, &headers).await {
        Ok(Some(s)) if s.stage == Stage::SecondFactor => render(
            View {
                lang: &s.language,
                session: Some(&s),
                nav: "login",
                flash,
            },
            "totp.html",
            context! { enrol => false },
        ),
        Ok(Some(s)) if s.stage == Stage::EnrolSecondFactor => {
            Redirect::to("/account/totp").into_response()
        }
        Ok(Some(_)) => Redirect::to("/").into_response(),
        Ok(None) => Redirect::to("/login").into_response(),
        Err(e) => server_error(e),
    }
}

#[derive(Deserialize)]
pub struct Code {
    code: String,
    #[serde(rename = "_csrf")]
    csrf: String,
}

pub async fn totp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<Code>,
) -> Response {
    let s = match posted_at(
        &state,
        &headers,
        Stage::SecondFactor,
        &f.csrf,
        "/login/totp",
    )
    .await
    {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    match db(&state, move |st| {
        st.write(|tx| sessions::second_factor(tx, &s, &f.code))
    })
    .await
    {
        Ok(sessions::Code::Accepted) => Redirect::to("/").into_response(),
        // Paused: the half-open log-ins are gone, so back to the start.
        Ok(outcome @ sessions::Code::Paused(_)) => {
            super::after("/login", outcome.into_result().map(|_| ""))
        }
        Ok(outcome) => super::after("/login/totp", outcome.into_result().map(|_| "")),
        Err(e) => super::after("/login/totp", Err(e)),
    }
}

pub async fn enrol_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(Some(s)) if s.stage == Stage::EnrolSecondFactor => s,
        Ok(Some(_)) => return Redirect::to("/").into_response(),
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return server_error(e),
    };
    let s2 = s.clone();
    let offer = db(&state, move |st| {
        st.write(|tx| sessions::enrolment_offer(tx, &s2))
    })
    .await;
    let (secret, url) = match offer {
        Ok(o) => o,
        Err(e) => return server_error(e),
    };
    let qr = match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(e) => return server_error(Error::Internal(format!("QR code: {e}"))),
    };
    render(
        View {
            lang: &s.language,
            session: Some(&s),
            nav: "login",
            flash,
        },
        "totp.html",
        context! { enrol => true, secret => secret, qr => Value::from_safe_string(qr) },
    )
}

pub async fn enrol(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<Code>,
) -> Response {
    let s = match posted_at(
        &state,
        &headers,
        Stage::EnrolSecondFactor,
        &f.csrf,
        "/account/totp",
    )
    .await
    {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    match db(&state, move |st| {
        st.write(|tx| sessions::enrol_second_factor(tx, &s, &f.code))
    })
    .await
    {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => super::after("/account/totp", Err(e)),
    }
}

/// The session of a form posted during log-in, at the stage the form belongs to, with its
/// CSRF token checked; otherwise the answer to send instead.
async fn posted_at(
    state: &AppState,
    headers: &HeaderMap,
    stage: Stage,
    csrf: &str,
    back: &str,
) -> Result<sessions::Session, Response> {
    let s = match session(state, headers).await {
        Ok(Some(s)) if s.stage == stage => s,
        Ok(_) => return Err(Redirect::to("/login").into_response()),
        Err(e) => return Err(server_error(e)),
    };
    check_csrf(&s, headers, Some(csrf)).map_err(|e| super::after(back, Err(e)))?;
    Ok(s)
}

/// The log-out button.
#[derive(Deserialize)]
pub struct LogOut {}

impl PageForm for LogOut {}

pub async fn log_out(State(state): State<AppState>, posted: Posted<LogOut>) -> Response {
    let s = posted.session;
    if let Err(e) = db(&state, move |st| st.write(|tx| sessions::log_out(tx, &s))).await {
        return server_error(e);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", 0),
    );
    r
}

#[derive(Deserialize)]
pub struct Language {
    lang: String,
    #[serde(rename = "_csrf", default)]
    csrf: Option<String>,
    #[serde(default)]
    back: Option<String>,
}

/// Switches the language: saved on the account when logged in, in a cookie before.
pub async fn language(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<Language>,
) -> Response {
    if !LANGUAGES.contains(&f.lang.as_str()) {
        return super::after(
            "/",
            // Not echoed: the message would carry a link's text onto the page.
            Err(Error::Invalid("this is not a language of this site".into())),
        );
    }
    let back = f
        .back
        .filter(|b| super::local_path(b))
        .unwrap_or_else(|| "/".into());
    let mut r = Redirect::to(&back).into_response();
    match session(&state, &headers).await {
        Ok(Some(s)) if s.stage == Stage::Full => {
            if let Err(e) = check_csrf(&s, &headers, f.csrf.as_deref()) {
                return super::after(&back, Err(e));
            }
            let lang = f.lang.clone();
            if let Err(e) = db(&state, move |st| {
                st.write(|tx| sessions::set_language(tx, &s.user, &lang))
            })
            .await
            {
                return server_error(e);
            }
        }
        Ok(_) => {}
        Err(e) => return server_error(e),
    }
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state, LANGUAGE_COOKIE, &f.lang, 365 * 86400),
    );
    r
}
