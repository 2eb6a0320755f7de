//! Staff accounts, their roles and areas, and API tokens.
//!
//! Passwords are stored only as argon2id hashes (slow and salted); tokens only as SHA-256.

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
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit, now,
    registry::{Scope, in_scope_or_unplaced, location_by_code, unique_to_conflict},
    text_column,
};
use crate::{Error, Result};

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
    /// Set when the caller is an API client ([`super::clients`]) acting with this role and
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

pub fn create_user(tx: &Transaction, actor: &str, scope: &Scope, new: &NewUser) -> Result<User> {
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
    let hash = hash_password(&new.password)?;
    let id = Uuid::now_v7();
    // Kept so an approval policy can refuse accounts the maker of a change created.
    let created_by = super::tasks::actor_user(tx, actor)?;
    tx.execute(
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

fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

pub fn user_by_username(conn: &Connection, username: &str) -> Result<User> {
    conn.query_row(
        &format!("{USER_SELECT} WHERE u.username = ?1"),
        [username],
        user_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::not_found("user", username))
}

pub fn list_users(conn: &Connection, scope: &Scope) -> Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!(
        "{USER_SELECT} WHERE {} ORDER BY u.username",
        in_scope_or_unplaced()
    ))?;
    let rows = stmt.query_map([scope.sql()], user_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Checks a username and password. The same error, and about the same time, whether the user
/// exists or not, so the answer does not reveal which usernames exist.
pub fn authenticate(conn: &Connection, username: &str, password: &str) -> Result<User> {
    let found: Option<(String, bool)> = conn
        .query_row(
            "SELECT password_hash, disabled FROM users WHERE username = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let hash = found
        .as_ref()
        .map_or(DUMMY_HASH.as_str(), |(h, _)| h.as_str());
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok();
    match found {
        Some((_, false)) if ok => user_by_username(conn, username),
        _ => Err(Error::Unauthenticated),
    }
}

/// A real hash, verified against when the user is unknown so that case costs the same time.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no user has this password").unwrap_or_default());

/// How long an API token lives.
pub const TOKEN_TTL_HOURS: i64 = 12;

/// Issues a bearer token; only its hash is stored, so a copy of the database cannot be used
/// to call the API.
pub fn issue_token(tx: &Transaction, user: &User) -> Result<(String, String)> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("no randomness for a token".into()))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let expires = (Utc::now() + Duration::hours(TOKEN_TTL_HOURS))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tx.execute(
        "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash(&token), user.id, now(), expires],
    )?;
    tx.execute(
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

pub fn user_for_token(conn: &Connection, token: &str) -> Result<User> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    conn.query_row(
        &format!(
            "{USER_SELECT} JOIN api_tokens t ON t.user_id = u.id
             WHERE t.token_hash = ?1 AND t.expires_at > ?2 AND u.disabled = 0"
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
