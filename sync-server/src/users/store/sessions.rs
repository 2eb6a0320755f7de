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
use rusqlite::{OptionalExtension, params};
use serde_json::json;
use totp_rs::{Secret, Totp};

use crate::store::{ReadTx, WriteTx};
use crate::{Error, Result, users::store::User};
use crate::{
    store::audit,
    store::{Store, now},
    users::store as users,
};

/// How long a web session lives without a new log-in (a working day).
pub const SESSION_HOURS: i64 = 10;
/// Failures in a row before the account pauses, and for how long.
pub const MAX_FAILURES: i64 = 5;
pub const LOCK_MINUTES: i64 = 15;

/// The demo supervisors' shared secret, printed in the README so a newcomer can log in
/// (`outpost-server totp-code` prints its current code). Never used outside demo data.
pub const DEMO_TOTP_SECRET: &str = "OUTPOSTDEMOTOTPSECRETAAAAAAAAAAA";

outpost_proto::named_enum!(
    /// How far a web session's log-in has come.
    Stage, "log-in stage" {
        /// Password checked; the TOTP code is next.
        SecondFactor = "SECOND_FACTOR",
        /// Password checked; the user has no authenticator yet and must enrol one.
        EnrolSecondFactor = "ENROL_SECOND_FACTOR",
        Full = "FULL",
    }
);

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
    /// Too many failures for this name or from this address: no new log-in until this time.
    /// Known and unknown names pause alike, so the answer tells nothing about which exist.
    Paused(String),
}

/// How a password check went; `Right` carries what was done with the account inside the
/// same small write.
#[derive(Debug)]
pub enum Password<T> {
    Right(T),
    Refused,
    Paused(String),
}

/// Failed passwords from one client address within [`LOCK_MINUTES`] before it pauses. Higher
/// than [`MAX_FAILURES`]: an office behind one address has several people mistyping.
pub const ADDRESS_MAX_FAILURES: i64 = 20;

fn throttle_keys(username: &str, address: &str) -> [String; 2] {
    [format!("name:{username}"), format!("address:{address}")]
}

/// The later pause among a name's and an address's, if either is on now.
fn throttled(tx: &WriteTx, keys: &[String]) -> Result<Option<String>> {
    let now = stamp(Utc::now());
    let mut until: Option<String> = None;
    for key in keys {
        let u: Option<String> = tx
            .sqlite()
            .query_row(
                "SELECT paused_until FROM login_throttle WHERE key = ?1 AND paused_until > ?2",
                params![key, now],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        until = until.max(u);
    }
    Ok(until)
}

/// Counts a wrong password against the name and the address; returns the pause, if one
/// began (and audits it). Windows older than [`LOCK_MINUTES`] start again, and finished rows are dropped so
/// names tried once do not pile up.
fn count_password_failure(tx: &WriteTx, username: &str, address: &str) -> Result<Option<String>> {
    let now_t = Utc::now();
    let (now_s, window) = (stamp(now_t), stamp(now_t - Duration::minutes(LOCK_MINUTES)));
    tx.sqlite().execute(
        "DELETE FROM login_throttle WHERE window_start < ?1 AND (paused_until IS NULL OR paused_until < ?2)",
        params![window, now_s],
    )?;
    let until = stamp(now_t + Duration::minutes(LOCK_MINUTES));
    let mut paused = None;
    for (key, limit) in throttle_keys(username, address)
        .into_iter()
        .zip([MAX_FAILURES, ADDRESS_MAX_FAILURES])
    {
        let failures: i64 = tx.sqlite().query_row(
            "INSERT INTO login_throttle (key, failures, window_start) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN window_start < ?3 THEN 1 ELSE failures + 1 END,
               window_start = CASE WHEN window_start < ?3 THEN ?2 ELSE window_start END
             RETURNING failures",
            params![key, now_s, window],
            |r| r.get(0),
        )?;
        if failures >= limit {
            tx.sqlite().execute(
                "UPDATE login_throttle SET failures = 0, window_start = ?2, paused_until = ?3 WHERE key = ?1",
                params![key, now_s, until],
            )?;
            // Only a pause is audited, not each failure: the throttle rows are the counter,
            // so outsiders cannot grow the append-only log with names of their choosing
            // faster than one entry per pause (and an address pauses after 20 tries).
            // Known and unknown names are recorded alike.
            audit::append(
                tx,
                &format!("user:{username}"),
                "auth.paused",
                "user",
                None,
                &json!({
                    "what": "password",
                    "key": key,
                    "failures": failures,
                    "address": address,
                    "paused_until": until,
                }),
            )?;
            paused = Some(until.clone());
        }
    }
    Ok(paused)
}

/// A name's stored password hash, read on a reader: the first of a password check's three
/// steps (read, [`verify`](Self::verify) with nothing held, [`Verified::record`]).
#[derive(Debug)]
pub struct Stored {
    username: String,
    record: Option<(String, bool)>,
}

impl Stored {
    pub fn read(store: &Store, username: &str) -> Result<Stored> {
        // No username is longer than 64 characters: a longer name typed is cut (still too long
        // to be anyone's) before it becomes a throttle key and an audit entry.
        let username: String = username.trim().chars().take(65).collect();
        let record = store.read(|c| users::password_record(c, &username))?;
        Ok(Stored { username, record })
    }

    /// Runs argon2 (slow on purpose) for known and unknown names alike; holds no
    /// connection, transaction or lock, so slow (and bad) log-ins never hold up the writer
    /// that uploads and approvals need. The API runs it outside its database slots too.
    pub fn verify(self, password: &str) -> Verified {
        let right = users::verify_password(self.record.as_ref().map(|(h, _)| h.as_str()), password);
        Verified {
            username: self.username,
            record: self.record,
            right,
        }
    }
}

/// A password checked against the stored hash, not yet recorded (see [`check_password`]).
#[derive(Debug)]
pub struct Verified {
    username: String,
    record: Option<(String, bool)>,
    right: bool,
}

impl Verified {
    /// [`Stored::read`] then [`Stored::verify`].
    pub fn check(store: &Store, username: &str, password: &str) -> Result<Verified> {
        Ok(Stored::read(store, username)?.verify(password))
    }

    /// Records the outcome in one small write: the pauses and the account are checked again
    /// there (the hash verified must still be the account's, not changed by a reset
    /// meanwhile, and the account not disabled meanwhile). On a right password, `then` runs
    /// in that same write with the account.
    pub fn record<T>(
        self,
        tx: &WriteTx,
        address: &str,
        then: impl FnOnce(&WriteTx, &User) -> Result<T>,
    ) -> Result<Password<T>> {
        let username = self.username.as_str();
        if let Some(until) = throttled(tx, &throttle_keys(username, address))? {
            return Ok(Password::Paused(until));
        }
        let now_record = users::password_record(tx, username)?;
        let right = self.right
            && matches!((&self.record, &now_record), (Some((h, _)), Some((n, false))) if h == n);
        if !right {
            return Ok(match count_password_failure(tx, username, address)? {
                Some(until) => Password::Paused(until),
                None => Password::Refused,
            });
        }
        tx.sqlite().execute(
            "DELETE FROM login_throttle WHERE key = ?1",
            [format!("name:{username}")],
        )?;
        let user = users::user_by_username(tx, username)?;
        if let Some(until) = account_paused(tx, &user)? {
            return Ok(Password::Paused(until));
        }
        then(tx, &user).map(Password::Right)
    }
}

/// Checks a password the way every log-in does (web and API token): [`Verified::check`] with
/// no lock held, then [`Verified::record`] in one small write.
///
/// The answer costs the same for known and unknown names, paused or not: argon2 runs every
/// time, and a pause is per name typed, whether an account has it or not.
pub fn check_password<T>(
    store: &Store,
    username: &str,
    password: &str,
    address: &str,
    then: impl FnOnce(&WriteTx, &User) -> Result<T>,
) -> Result<Password<T>> {
    let verified = Verified::check(store, username, password)?;
    store.write(|tx| verified.record(tx, address, then))
}

/// Checks the password and opens a session at the second-factor stage. Failures count
/// towards a pause of the name and of the address; the answer never says whether the user
/// exists.
pub fn log_in(store: &Store, username: &str, password: &str, address: &str) -> Result<LogIn> {
    Ok(check_password(store, username, password, address, open_session)?.into())
}

impl From<Password<String>> for LogIn {
    fn from(p: Password<String>) -> LogIn {
        match p {
            Password::Right(token) => LogIn::Opened(token),
            Password::Refused => LogIn::Refused,
            Password::Paused(until) => LogIn::Paused(until),
        }
    }
}

/// Opens a web session at the second-factor stage (or enrolment, for an account without an
/// authenticator app) for a user whose password was right.
pub fn open_session(tx: &WriteTx, user: &User) -> Result<String> {
    let has_totp: bool = tx.sqlite().query_row(
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
    tx.sqlite().execute(
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
    tx.sqlite().execute(
        "DELETE FROM web_sessions WHERE expires_at < ?1",
        [stamp(now_t)],
    )?;
    Ok(token)
}

/// Exchanges a password and a code from the account's authenticator app for an API token.
/// Every role needs the code: a token reads the area's people whatever its role, and field
/// agents' devices sign their requests instead of using tokens, so the code costs them
/// nothing in the field. Wrong passwords and codes count as on the web, and the code is
/// spent as on the web (an overheard one cannot be replayed).
pub fn api_token(
    store: &Store,
    username: &str,
    password: &str,
    code: Option<&str>,
    address: &str,
) -> Result<(User, String, String)> {
    let code = code.map(str::to_owned);
    token_answer(check_password(
        store,
        username,
        password,
        address,
        |tx, user| issue_for_code(tx, user, code),
    )?)
}

/// An issued token: the account, the token and when it expires.
pub type Issued = (User, String, String);

/// The second half of [`api_token`], for a user whose password was right: the code is
/// checked (and counted) in the same write, and a refusal is the inner error, so the counts
/// commit.
pub fn issue_for_code(tx: &WriteTx, user: &User, code: Option<String>) -> Result<Result<Issued>> {
    let has_totp: bool = tx.sqlite().query_row(
        "SELECT totp_secret IS NOT NULL FROM users WHERE id = ?1",
        [user.id],
        |r| r.get(0),
    )?;
    if !has_totp {
        return Ok(Err(Error::Forbidden(
            "this account has no authenticator app yet: log in once on the web (/login) \
             to set one up, then ask for a token with a code from it"
                .into(),
        )));
    }
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Ok(Err(Error::Invalid(
            "a token needs the code from your authenticator app: send it as `code`".into(),
        )));
    };
    Ok(match check_code(tx, user, &code)? {
        Code::Accepted => users::issue_token(tx, user).map(|(t, e)| (user.clone(), t, e)),
        refused => refused
            .into_result()
            .and_then(|()| Err(Error::Internal("a refused code was accepted".into()))),
    })
}

/// The answer to a token request.
pub fn token_answer(outcome: Password<Result<Issued>>) -> Result<Issued> {
    match outcome {
        Password::Right(result) => result,
        Password::Refused => Err(Error::Unauthenticated),
        Password::Paused(until) => Err(paused_error(&until)),
    }
}

/// The one message for a paused log-in, whoever it is for.
pub fn paused_error(until: &str) -> Error {
    Error::Forbidden(format!(
        "too many failed log-ins with this name or from this address: new log-ins are \
         paused until {until}"
    ))
}

/// The account's own pause (after wrong second-factor codes), if it is on now.
fn account_paused(tx: &WriteTx, user: &User) -> Result<Option<String>> {
    let until: Option<String> = tx.sqlite().query_row(
        "SELECT locked_until FROM users WHERE id = ?1",
        [user.id],
        |r| r.get(0),
    )?;
    Ok(until.filter(|u| u.as_str() > stamp(Utc::now()).as_str()))
}

/// Counts a wrong second-factor code, apart from wrong passwords (a right password does not
/// reset it). At [`MAX_FAILURES`] the account pauses for [`LOCK_MINUTES`]: whoever is
/// guessing codes knows the password, so the pause also refuses the account's tokens and
/// sessions, and ends the half-open log-ins waiting for a code. Returns the pause, if one
/// began.
fn count_code_failure(tx: &WriteTx, user: &User) -> Result<Option<String>> {
    let failures: i64 = tx.sqlite().query_row(
        "UPDATE users SET failed_codes = failed_codes + 1 WHERE id = ?1 RETURNING failed_codes",
        [user.id],
        |r| r.get(0),
    )?;
    let until =
        (failures >= MAX_FAILURES).then(|| stamp(Utc::now() + Duration::minutes(LOCK_MINUTES)));
    if let Some(until) = &until {
        tx.sqlite().execute(
            "UPDATE users SET failed_codes = 0, locked_until = ?2 WHERE id = ?1",
            params![user.id, until],
        )?;
        tx.sqlite().execute(
            "DELETE FROM web_sessions WHERE user_id = ?1 AND stage <> 'FULL'",
            [user.id],
        )?;
    }
    audit::append(
        tx,
        &user.actor(),
        "auth.failed",
        "user",
        Some(&user.id.to_string()),
        &json!({ "what": "code", "failures": failures, "paused_until": until }),
    )?;
    Ok(until)
}

/// The session behind a cookie's token, if it is live.
pub fn session(conn: &ReadTx, token: &str) -> Result<Option<Session>> {
    let found: Option<(String, String, String, Option<String>)> = conn
        .sqlite()
        .query_row(
            "SELECT s.stage, s.csrf, u.username, totp_open(s.pending_totp) FROM web_sessions s
             JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0
               AND (u.locked_until IS NULL OR u.locked_until <= ?2)",
            params![hash(token), stamp(Utc::now())],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((stage, csrf, username, pending_totp)) = found else {
        return Ok(None);
    };
    let user = users::user_by_username(conn, &username)?;
    let language: String =
        conn.sqlite()
            .query_row("SELECT language FROM users WHERE id = ?1", [user.id], |r| {
                r.get(0)
            })?;
    Ok(Some(Session {
        user,
        // An unknown stage is never a full log-in.
        stage: Stage::parse(&stage).unwrap_or(Stage::SecondFactor),
        csrf,
        language,
        token_hash: hash(token),
        pending_totp,
    }))
}

pub fn log_out(tx: &WriteTx, session: &Session) -> Result<()> {
    tx.sqlite().execute(
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
    code_at(secret_base32, Utc::now().timestamp())
}

/// Seconds per TOTP step.
pub const STEP_SECONDS: i64 = 30;

/// The code for a base32 secret at a Unix time (for tests that need a code of a step not yet
/// spent: the server accepts one step either side of its own).
pub fn code_at(secret_base32: &str, unix_seconds: i64) -> Result<String> {
    let totp = totp_for(secret_base32, "demo")?;
    Ok(totp.generate(unix_seconds.max(0) as u64).to_string())
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
/// codes count towards a pause of their own (see [`count_code_failure`]).
pub fn check_code(tx: &WriteTx, user: &User, code: &str) -> Result<Code> {
    if let Some(until) = account_paused(tx, user)? {
        return Ok(Code::Paused(until));
    }
    let (secret, last): (Option<String>, i64) = tx.sqlite().query_row(
        "SELECT totp_open(totp_secret), totp_last_step FROM users WHERE id = ?1",
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
            tx.sqlite().execute(
                "UPDATE users SET totp_last_step = ?2, failed_codes = 0 WHERE id = ?1",
                params![user.id, step as i64],
            )?;
            Ok(Code::Accepted)
        }
        Some(_) => Ok(Code::Reused),
        None => Ok(match count_code_failure(tx, user)? {
            Some(until) => Code::Paused(until),
            None => Code::Wrong,
        }),
    }
}

/// Checks a code in a transaction of its own, so a wrong one is counted even though what it
/// was meant to confirm is not done.
pub fn require_code(store: &Store, user: &User, code: &str) -> Result<()> {
    store.write(|tx| check_code(tx, user, code))?.into_result()
}

/// Completes a log-in at the second-factor stage.
pub fn second_factor(tx: &WriteTx, session: &Session, code: &str) -> Result<Code> {
    let outcome = check_code(tx, &session.user, code)?;
    if outcome == Code::Accepted {
        promote(tx, session)?;
    }
    Ok(outcome)
}

fn promote(tx: &WriteTx, session: &Session) -> Result<()> {
    // A fresh CSRF token for the full session.
    tx.sqlite().execute(
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
pub fn enrolment_offer(tx: &WriteTx, session: &Session) -> Result<(String, String)> {
    let secret = match &session.pending_totp {
        Some(s) => s.clone(),
        None => {
            let mut bytes = [0u8; 20];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| Error::Internal("no randomness for a TOTP secret".into()))?;
            let s = Secret::from(bytes.to_vec()).to_base32();
            tx.sqlite().execute(
                "UPDATE web_sessions SET pending_totp = totp_seal(?2) WHERE token_hash = ?1",
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
pub fn enrol_second_factor(tx: &WriteTx, session: &Session, code: &str) -> Result<()> {
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
    let set = tx.sqlite().execute(
        "UPDATE users SET totp_secret = totp_seal(?2), totp_last_step = ?3 WHERE id = ?1 AND totp_secret IS NULL",
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
pub fn set_secret(tx: &WriteTx, username: &str, secret_base32: &str) -> Result<()> {
    totp_for(secret_base32, username)?;
    tx.sqlite().execute(
        "UPDATE users SET totp_secret = totp_seal(?2) WHERE username = ?1",
        params![username, secret_base32],
    )?;
    Ok(())
}

pub fn set_language(tx: &WriteTx, user: &User, language: &str) -> Result<()> {
    tx.sqlite().execute(
        "UPDATE users SET language = ?2 WHERE id = ?1",
        params![user.id, language],
    )?;
    Ok(())
}
