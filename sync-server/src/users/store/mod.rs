//! Staff accounts, their roles and areas, and API tokens.
//!
//! Passwords are stored only as argon2id hashes (slow and salted); tokens only as SHA-256.

pub mod clients;
pub mod sessions;

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use ring::{
    digest::{SHA256, digest},
    rand::{SecureRandom, SystemRandom},
};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::store::{ReadTx, WriteTx};
use crate::{Error, Result};
use crate::{
    areas::store::{Scope, in_scope_or_unplaced, location_by_code, unique_to_conflict},
    store::audit,
    store::{now, text_column},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Imports registries, defines plans, opens cycles, generates payrolls.
    Admin,
    /// Approves payrolls, enrols devices, resolves exceptions in their area.
    Supervisor,
    /// Works in the field with a device; reads their area.
    FieldAgent,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// The location code of the user's area; `None` is national.
    pub area: Option<String>,
    #[serde(skip)]
    area_path: Option<String>,
    /// Set when the caller is an API client ([`crate::users::store::clients`]) acting with this role and
    /// area; `id` and `username` are then the client's.
    #[serde(skip)]
    client: bool,
}

impl User {
    pub fn scope(&self) -> Scope {
        match &self.area_path {
            Some(path) => Scope::Area { path: path.clone() },
            None => Scope::National,
        }
    }

    /// How the audit log names this user (or API client).
    pub fn actor(&self) -> String {
        if self.client {
            format!("client:{}", self.username)
        } else {
            format!("user:{}", self.username)
        }
    }

    /// Whether this principal is an API client rather than a person.
    pub fn is_client(&self) -> bool {
        self.client
    }

    /// The principal an API client acts as: its own id and name, its role and area.
    pub(crate) fn for_client(
        id: Uuid,
        name: String,
        role: Role,
        area: Option<(String, String)>,
    ) -> User {
        let (area, area_path) = area.unzip();
        User {
            id,
            display_name: name.clone(),
            username: name,
            role,
            area,
            area_path,
            client: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// A location code; omitted for national users.
    #[serde(default)]
    pub area: Option<String>,
    pub password: String,
}

const USER_SELECT: &str = "SELECT u.id, u.username, u.display_name, u.role, l.code, l.path
    FROM users u LEFT JOIN locations l ON l.id = u.area_id";

fn user_from_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        role: text_column(r, 3)?,
        area: r.get(4)?,
        area_path: r.get(5)?,
        client: false,
    })
}

pub const MIN_PASSWORD_LEN: usize = 10;

/// Creates an account, hashing its password here: for the CLI and the demo. The API hashes
/// first, outside the writer ([`create_user_hashed`]).
pub fn create_user(tx: &WriteTx, actor: &str, scope: &Scope, new: &NewUser) -> Result<User> {
    create_user_with(tx, actor, scope, new, || hash_password(&new.password))
}

/// As [`create_user`], with the password already hashed by [`hash_password`] (slow: before the
/// transaction, so argon2 never holds the writer).
pub fn create_user_hashed(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    new: &NewUser,
    hash: String,
) -> Result<User> {
    create_user_with(tx, actor, scope, new, || Ok(hash))
}

fn create_user_with(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    new: &NewUser,
    hash: impl FnOnce() -> Result<String>,
) -> Result<User> {
    let username = new.username.trim();
    if username.len() < 2
        || username.len() > 64
        || !username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(Error::Invalid(
            "a username is 2 to 64 lower-case letters, digits, '.', '_' or '-'".into(),
        ));
    }
    if new.display_name.trim().is_empty() {
        return Err(Error::Invalid("a user needs a display name".into()));
    }
    if new.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "a password has at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let area = match new.area.as_deref() {
        Some(code) => Some(location_by_code(tx, code)?),
        None => None,
    };
    if !scope.contains(area.as_ref().map(|a| a.path.as_str())) {
        return Err(Error::Forbidden(
            "you can only create users inside your area".into(),
        ));
    }
    if new.role == Role::FieldAgent && area.is_none() {
        return Err(Error::Invalid(
            "a field agent works in an area: give one".into(),
        ));
    }
    let hash = hash()?;
    let id = Uuid::now_v7();
    // Kept so an approval policy can refuse accounts the maker of a change created.
    let created_by = actor_user(tx, actor)?;
    tx.sqlite().execute(
        "INSERT INTO users (id, username, display_name, role, area_id, password_hash, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            username,
            new.display_name.trim(),
            json!(new.role).as_str(),
            area.as_ref().map(|a| a.id),
            hash,
            now(),
            created_by
        ],
    )
    .map_err(|e| unique_to_conflict(e, format!("username '{username}' is taken")))?;
    audit::append(
        tx,
        actor,
        "user.create",
        "user",
        Some(&id.to_string()),
        &json!({ "username": username, "role": new.role, "area": new.area }),
    )?;
    user_by_username(tx, username)
}

/// An argon2id hash of a password (slow: outside any transaction).
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

pub fn user_by_username(conn: &ReadTx, username: &str) -> Result<User> {
    conn.sqlite()
        .query_row(
            &format!("{USER_SELECT} WHERE u.username = ?1"),
            [username],
            user_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::not_found("user", username))
}

pub fn list_users(conn: &ReadTx, scope: &Scope) -> Result<Vec<User>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "{USER_SELECT} WHERE {} ORDER BY u.username",
        in_scope_or_unplaced()
    ))?;
    let rows = stmt.query_map([scope.sql()], user_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The stored password hash of a name, and whether the account is disabled; read on a
/// reader so the slow check ([`verify_password`]) runs with no lock held.
pub fn password_record(conn: &ReadTx, username: &str) -> Result<Option<(String, bool)>> {
    Ok(conn
        .sqlite()
        .query_row(
            "SELECT password_hash, disabled FROM users WHERE username = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Checks a password against a stored hash, or against a dummy one when the name is unknown,
/// so both cases cost the same time. Slow on purpose (argon2id): call it outside any
/// transaction.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash.unwrap_or(DUMMY_HASH.as_str()))
        .is_ok()
        && hash.is_some()
}

/// A real hash, verified against when the user is unknown so that case costs the same time.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no user has this password").unwrap_or_default());

/// How long an API token lives.
pub const TOKEN_TTL_HOURS: i64 = 12;

/// Issues a bearer token; only its hash is stored, so a copy of the database cannot be used
/// to call the API.
pub fn issue_token(tx: &WriteTx, user: &User) -> Result<(String, String)> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("no randomness for a token".into()))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let expires = (Utc::now() + Duration::hours(TOKEN_TTL_HOURS))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tx.sqlite().execute(
        "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash(&token), user.id, now(), expires],
    )?;
    tx.sqlite().execute(
        "DELETE FROM api_tokens WHERE expires_at < ?1",
        [Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)],
    )?;
    audit::append(
        tx,
        &user.actor(),
        "auth.token",
        "user",
        Some(&user.id.to_string()),
        &json!({}),
    )?;
    Ok((token, expires))
}

/// The user a token belongs to, if it is live and the account is neither disabled nor paused
/// (a pause after wrong second-factor codes refuses the account's tokens until it ends).
pub fn user_for_token(conn: &ReadTx, token: &str) -> Result<User> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    conn.sqlite()
        .query_row(
            &format!(
                "{USER_SELECT} JOIN api_tokens t ON t.user_id = u.id
             WHERE t.token_hash = ?1 AND t.expires_at > ?2 AND u.disabled = 0
               AND (u.locked_until IS NULL OR u.locked_until <= ?2)"
            ),
            params![token_hash(token), now],
            user_from_row,
        )
        .optional()?
        .ok_or(Error::Unauthenticated)
}

fn token_hash(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// What an administrator resets on an account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    /// A new password; omitted to keep the current one.
    #[serde(default)]
    pub password: Option<String>,
    /// Forget the enrolled authenticator app: the next web log-in enrols a new one.
    #[serde(default)]
    pub totp: bool,
}

impl Reset {
    /// Checks the request and hashes the new password (slow: call it before the write).
    pub fn prepare(&self) -> Result<Option<String>> {
        if self.password.is_none() && !self.totp {
            return Err(Error::Invalid(
                "say what to reset: a new password, the authenticator app, or both".into(),
            ));
        }
        match &self.password {
            Some(p) if p.chars().count() < MIN_PASSWORD_LEN => Err(Error::Invalid(format!(
                "a password has at least {MIN_PASSWORD_LEN} characters"
            ))),
            Some(p) => hash_password(p).map(Some),
            None => Ok(None),
        }
    }
}

/// Resets an account's password and/or authenticator app (for a user who lost either, or
/// whose credentials may be known to someone else), inside the caller's area. Every token and
/// web session of the account ends, and its pauses and failure counts are cleared.
/// `password_hash` comes from [`Reset::prepare`]. The API clients the account owns keep
/// working: a reset is the person regaining their account, and an integration's secret is not
/// their password; a client suspected known to someone else is revoked on its own.
pub fn reset_login(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    username: &str,
    reset: &Reset,
    password_hash: Option<&str>,
) -> Result<User> {
    let user = user_by_username(tx, username)?;
    if !scope.contains(user.area_path.as_deref()) {
        return Err(Error::not_found("user", username));
    }
    if let Some(hash) = password_hash {
        tx.sqlite().execute(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![user.id, hash],
        )?;
    }
    if reset.totp {
        tx.sqlite().execute(
            "UPDATE users SET totp_secret = NULL, totp_last_step = 0 WHERE id = ?1",
            [user.id],
        )?;
    }
    tx.sqlite().execute(
        "UPDATE users SET failed_codes = 0, locked_until = NULL WHERE id = ?1",
        [user.id],
    )?;
    // The person who reset it held this account's credentials: for the approval rules that
    // links the two accounts as creating one does.
    if let Some(by) = actor_user(tx, actor)?.filter(|by| *by != user.id) {
        tx.sqlite().execute(
            "UPDATE users SET login_reset_by = ?2 WHERE id = ?1",
            params![user.id, by],
        )?;
    }
    tx.sqlite().execute(
        "DELETE FROM login_throttle WHERE key = ?1",
        [format!("name:{}", user.username)],
    )?;
    let tokens = tx
        .sqlite()
        .execute("DELETE FROM api_tokens WHERE user_id = ?1", [user.id])?;
    let sessions = tx
        .sqlite()
        .execute("DELETE FROM web_sessions WHERE user_id = ?1", [user.id])?;
    audit::append(
        tx,
        actor,
        "user.reset_login",
        "user",
        Some(&user.id.to_string()),
        &json!({
            "username": user.username,
            "password": password_hash.is_some(),
            "totp": reset.totp,
            "tokens_revoked": tokens,
            "sessions_ended": sessions,
        }),
    )?;
    Ok(user)
}

/// The username of the account with this id, if there is one.
pub fn username_by_id(conn: &ReadTx, id: Uuid) -> Result<Option<String>> {
    Ok(conn
        .sqlite()
        .query_row("SELECT username FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The account that created `username`'s (`None` for one the system or the command line
/// made): the line four eyes follows for money, and what an administrator asks of an account.
pub fn creator(conn: &ReadTx, username: &str) -> Result<Option<String>> {
    conn.sqlite()
        .query_row(
            "SELECT c.username FROM users u LEFT JOIN users c ON c.id = u.created_by
             WHERE u.username = ?1",
            [username],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("user", username))
}

/// The person accountable for what an actor string names: the user for `user:name`, the
/// client's owner for `client:name` (so the person behind a client is the maker of what it
/// makes, and four eyes excludes them); `None` for devices and the command line.
pub fn actor_user(conn: &ReadTx, actor: &str) -> Result<Option<Uuid>> {
    if let Some(name) = actor.strip_prefix("user:") {
        return Ok(conn
            .sqlite()
            .query_row("SELECT id FROM users WHERE username = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?);
    }
    if let Some(name) = actor.strip_prefix("client:") {
        return Ok(conn
            .sqlite()
            .query_row(
                "SELECT owner_id FROM api_clients WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?
            .flatten());
    }
    Ok(None)
}
