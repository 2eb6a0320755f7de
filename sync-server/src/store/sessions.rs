//! Web log-in: password, then a TOTP second factor (enrolled on first log-in), sessions and
//! their CSRF tokens, and the lock-out after repeated failures.
//!
//! A session token and its CSRF token are random; only the session token's SHA-256 is
//! stored. A password alone opens a session that can reach nothing but the second-factor page.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use ring::{
    digest::{SHA256, digest},
    rand::{SecureRandom, SystemRandom},
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::json;
use totp_rs::{Secret, Totp};

use super::{audit, now, users};
use crate::{Error, Result, store::users::User};

/// How long a web session lives without a new log-in (a working day).
pub const SESSION_HOURS: i64 = 10;
/// Failures in a row before the account pauses, and for how long.
pub const MAX_FAILURES: i64 = 5;
pub const LOCK_MINUTES: i64 = 15;

/// The demo supervisors' shared secret, printed in the README so a newcomer can log in
/// (`outpost-server totp-code` prints its current code). Never used outside demo data.
pub const DEMO_TOTP_SECRET: &str = "OUTPOSTDEMOTOTPSECRETAAAAAAAAAAA";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Password checked; the TOTP code is next.
    SecondFactor,
    /// Password checked; the user has no authenticator yet and must enrol one.
    EnrolSecondFactor,
    Full,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::SecondFactor => "SECOND_FACTOR",
            Stage::EnrolSecondFactor => "ENROL_SECOND_FACTOR",
            Stage::Full => "FULL",
        }
    }

    fn parse(s: &str) -> Stage {
        match s {
            "FULL" => Stage::Full,
            "ENROL_SECOND_FACTOR" => Stage::EnrolSecondFactor,
            _ => Stage::SecondFactor,
        }
    }
}

/// A live session, as a request finds it.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub stage: Stage,
    pub csrf: String,
    pub language: String,
    pub token_hash: Vec<u8>,
    pub pending_totp: Option<String>,
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("no randomness for a session".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn hash(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How a log-in went. Refusals are answers, not errors, so the failure count they write
/// commits (an error would roll it back with the rest of the transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum LogIn {
    /// The session token for the cookie; the second factor is next.
    Opened(String),
    /// Wrong username or password (the same answer for both).
    Refused,
    /// Too many failures: no log-in until this time.
    Paused(String),
}

fn paused_until(tx: &Transaction, user: &str) -> Result<Option<String>> {
    let until: Option<String> = tx
        .query_row(
            "SELECT locked_until FROM users WHERE username = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(until.filter(|u| u.as_str() > stamp(Utc::now()).as_str()))
}

/// Counts a failure (wrong password or code); at [`MAX_FAILURES`] the account pauses for
/// [`LOCK_MINUTES`] and its sessions end. Returns the pause, if one began.
fn count_failure(tx: &Transaction, username: &str, what: &str) -> Result<Option<String>> {
    let failures: Option<i64> = tx
        .query_row(
            "SELECT failed_logins FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )
        .optional()?;
    let Some(failures) = failures.map(|f| f + 1) else {
        return Ok(None);
    };
    let until =
        (failures >= MAX_FAILURES).then(|| stamp(Utc::now() + Duration::minutes(LOCK_MINUTES)));
    tx.execute(
        "UPDATE users SET failed_logins = ?2, locked_until = COALESCE(?3, locked_until) WHERE username = ?1",
        params![username, if until.is_some() { 0 } else { failures }, until],
    )?;
    if until.is_some() {
        tx.execute(
            "DELETE FROM web_sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
            [username],
        )?;
    }
    audit::append(
        tx,
        &format!("user:{username}"),
        "auth.failed",
        "user",
        None,
        &json!({ "what": what, "failures": failures, "paused_until": until }),
    )?;
    Ok(until)
}

/// Checks the password and opens a session at the second-factor stage. Failures count
/// towards a pause of the account; the answer never says whether the user exists.
pub fn log_in(tx: &Transaction, username: &str, password: &str) -> Result<LogIn> {
    let username = username.trim();
    if let Some(until) = paused_until(tx, username)? {
        return Ok(LogIn::Paused(until));
    }
    let user = match users::authenticate(tx, username, password) {
        Ok(u) => u,
        Err(Error::Unauthenticated) => {
            return Ok(match count_failure(tx, username, "password")? {
                Some(until) => LogIn::Paused(until),
                None => LogIn::Refused,
            });
        }
        Err(e) => return Err(e),
    };
    tx.execute(
        "UPDATE users SET failed_logins = 0 WHERE id = ?1",
        [user.id],
    )?;
    let has_totp: bool = tx.query_row(
        "SELECT totp_secret IS NOT NULL FROM users WHERE id = ?1",
        [user.id],
        |r| r.get(0),
    )?;
    let stage = if has_totp {
        Stage::SecondFactor
    } else {
        Stage::EnrolSecondFactor
    };
    let token = random_token()?;
    let now_t = Utc::now();
    tx.execute(
        "INSERT INTO web_sessions (token_hash, user_id, stage, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            hash(&token),
            user.id,
            stage.as_str(),
            random_token()?,
            now(),
            stamp(now_t + Duration::hours(SESSION_HOURS))
        ],
    )?;
    tx.execute(
        "DELETE FROM web_sessions WHERE expires_at < ?1",
        [stamp(now_t)],
    )?;
    Ok(LogIn::Opened(token))
}

/// The session behind a cookie's token, if it is live.
pub fn session(conn: &Connection, token: &str) -> Result<Option<Session>> {
    let found: Option<(String, String, String, Option<String>)> = conn
        .query_row(
            "SELECT s.stage, s.csrf, u.username, s.pending_totp FROM web_sessions s
             JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
            params![hash(token), stamp(Utc::now())],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((stage, csrf, username, pending_totp)) = found else {
        return Ok(None);
    };
    let user = users::user_by_username(conn, &username)?;
    let language: String =
        conn.query_row("SELECT language FROM users WHERE id = ?1", [user.id], |r| {
            r.get(0)
        })?;
    Ok(Some(Session {
        user,
        stage: Stage::parse(&stage),
        csrf,
        language,
        token_hash: hash(token),
        pending_totp,
    }))
}

pub fn log_out(tx: &Transaction, session: &Session) -> Result<()> {
    tx.execute(
        "DELETE FROM web_sessions WHERE token_hash = ?1",
        [&session.token_hash],
    )?;
    audit::append(
        tx,
        &session.user.actor(),
        "auth.logout",
        "user",
        Some(&session.user.id.to_string()),
        &json!({}),
    )
}

fn totp_for(secret_base32: &str, account: &str) -> Result<Totp> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|_| Error::Internal("a stored TOTP secret is not base32".into()))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some("Outpost"))
        .with_account_name(account)
        .build()
        .map_err(|e| Error::Internal(format!("TOTP: {e:?}")))
}

/// The current code for a base32 secret (for the demo helper and tests).
pub fn current_code(secret_base32: &str) -> Result<String> {
    let totp = totp_for(secret_base32, "demo")?;
    Ok(totp.generate(Utc::now().timestamp() as u64).to_string())
}

/// How a TOTP code went; like [`LogIn`], refusals are answers so their count commits.
#[must_use = "a wrong code is an answer, not an error: act on it (see `into_result`)"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Accepted,
    Wrong,
    /// Right, but its time step was already used: wait for the next code.
    Reused,
    Paused(String),
}

impl Code {
    /// The refusal as an error for the person who typed the code.
    pub fn into_result(self) -> Result<()> {
        match self {
            Code::Accepted => Ok(()),
            Code::Wrong => Err(Error::Invalid(
                "the code from your authenticator app is not right".into(),
            )),
            Code::Reused => Err(Error::Invalid(
                "this code was already used; wait for the next one".into(),
            )),
            Code::Paused(until) => Err(Error::Forbidden(format!(
                "too many wrong codes: this account is paused until {until}"
            ))),
        }
    }
}

/// Checks a code against the user's enrolled secret. A code is accepted once (its time step
/// must be later than the last accepted one), so an overheard code cannot be replayed; wrong
/// codes count towards the same pause as wrong passwords.
pub fn check_code(tx: &Transaction, user: &User, code: &str) -> Result<Code> {
    if let Some(until) = paused_until(tx, &user.username)? {
        return Ok(Code::Paused(until));
    }
    let (secret, last): (Option<String>, i64) = tx.query_row(
        "SELECT totp_secret, totp_last_step FROM users WHERE id = ?1",
        [user.id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let secret = secret.ok_or_else(|| {
        Error::Forbidden("set up your authenticator app first (log in again)".into())
    })?;
    let totp = totp_for(&secret, &user.username)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    match totp.check(&code, Utc::now().timestamp() as u64) {
        Some(step) if step as i64 > last => {
            tx.execute(
                "UPDATE users SET totp_last_step = ?2, failed_logins = 0 WHERE id = ?1",
                params![user.id, step as i64],
            )?;
            Ok(Code::Accepted)
        }
        Some(_) => Ok(Code::Reused),
        None => Ok(match count_failure(tx, &user.username, "code")? {
            Some(until) => Code::Paused(until),
            None => Code::Wrong,
        }),
    }
}

/// Checks a code in a transaction of its own, so a wrong one is counted even though what it
/// was meant to confirm is not done.
pub fn require_code(store: &super::Store, user: &User, code: &str) -> Result<()> {
    store.write(|tx| check_code(tx, user, code))?.into_result()
}

/// Completes a log-in at the second-factor stage.
pub fn second_factor(tx: &Transaction, session: &Session, code: &str) -> Result<Code> {
    let outcome = check_code(tx, &session.user, code)?;
    if outcome == Code::Accepted {
        promote(tx, session)?;
    }
    Ok(outcome)
}

fn promote(tx: &Transaction, session: &Session) -> Result<()> {
    // A fresh CSRF token for the full session.
    tx.execute(
        "UPDATE web_sessions SET stage = 'FULL', csrf = ?2, pending_totp = NULL WHERE token_hash = ?1",
        params![session.token_hash, random_token()?],
    )?;
    audit::append(
        tx,
        &session.user.actor(),
        "auth.login",
        "user",
        Some(&session.user.id.to_string()),
        &json!({}),
    )
}

/// The secret offered for enrolment (made once per session, so reloading the page shows the
/// same QR code), and its `otpauth://` URL for the QR code.
pub fn enrolment_offer(tx: &Transaction, session: &Session) -> Result<(String, String)> {
    let secret = match &session.pending_totp {
        Some(s) => s.clone(),
        None => {
            let mut bytes = [0u8; 20];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| Error::Internal("no randomness for a TOTP secret".into()))?;
            let s = Secret::from(bytes.to_vec()).to_base32();
            tx.execute(
                "UPDATE web_sessions SET pending_totp = ?2 WHERE token_hash = ?1",
                params![session.token_hash, s],
            )?;
            s
        }
    };
    let url = totp_for(&secret, &session.user.username)?
        .to_url()
        .map_err(|e| Error::Internal(format!("TOTP URL: {e:?}")))?;
    Ok((secret, url))
}

/// Enrols the offered secret once the user's app shows a right code for it.
pub fn enrol_second_factor(tx: &Transaction, session: &Session, code: &str) -> Result<()> {
    let secret = session
        .pending_totp
        .clone()
        .ok_or_else(|| Error::Invalid("open the set-up page first".into()))?;
    let totp = totp_for(&secret, &session.user.username)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let step = totp
        .check(&code, Utc::now().timestamp() as u64)
        .ok_or_else(|| {
            Error::Invalid("the code from your authenticator app is not right".into())
        })?;
    // Only an account without a secret enrols one: a session opened before the user set up
    // their app cannot replace the secret afterwards.
    let set = tx.execute(
        "UPDATE users SET totp_secret = ?2, totp_last_step = ?3 WHERE id = ?1 AND totp_secret IS NULL",
        params![session.user.id, secret, step as i64],
    )?;
    if set == 0 {
        return Err(Error::Conflict(
            "an authenticator app is already set up for this account; log in again".into(),
        ));
    }
    audit::append(
        tx,
        &session.user.actor(),
        "auth.totp_enrolled",
        "user",
        Some(&session.user.id.to_string()),
        &json!({}),
    )?;
    promote(tx, session)
}

/// Gives a user a known secret (demo data only).
pub fn set_secret(tx: &Transaction, username: &str, secret_base32: &str) -> Result<()> {
    totp_for(secret_base32, username)?;
    tx.execute(
        "UPDATE users SET totp_secret = ?2 WHERE username = ?1",
        params![username, secret_base32],
    )?;
    Ok(())
}

pub fn set_language(tx: &Transaction, user: &User, language: &str) -> Result<()> {
    tx.execute(
        "UPDATE users SET language = ?2 WHERE id = ?1",
        params![user.id, language],
    )?;
    Ok(())
}
