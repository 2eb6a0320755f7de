//! API clients: named integrations an administrator creates with a role, a set of
//! permissions, an area and an expiry, so that no program is given a person's password.
//!
//! A client's secret is a bearer token like a user's (`opc_…`, shown once); only its SHA-256
//! is stored. A client acts as a principal with its role and area ([`User::for_client`]);
//! what it may do beyond reading is what its permissions name (checked once, in the API's
//! `Caller` extractor). Expired and revoked clients are refused like an unknown token.
//!
//! Every client answers to a person, its *owner*: the administrator who created it, or for a
//! client created by a client that client's owner, or the person the command line names. The
//! tasks and timesheets a client makes count its owner as their maker (see
//! [`crate::users::store::actor_user`]), so the person behind a client cannot approve what it made;
//! and a client stops working when its owner's account is disabled.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
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
    areas::store::{IN_SCOPE, Scope, location_by_code, unique_to_conflict},
    store::audit,
    store::{json_column, now, text_column},
    users::store::{Role, User},
};

/// Every client secret starts with this, so the API knows which table to look in (and a
/// secret scanner can spot one pasted somewhere).
pub const SECRET_PREFIX: &str = "opc_";

/// The longest a client may live: an integration is re-issued at least once a year.
pub const MAX_LIFETIME_DAYS: i64 = 366;

/// What a client may do besides what its role already allows. Decisions that need a person
/// (four-eyes approvals, timesheet decisions, exception resolutions) are never granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read what the role may read in the area (every `GET`).
    Read,
    /// Change the registry: locations, people, beneficiaries, imports, plans, cycles, goods,
    /// work projects, timesheets, payroll generation, cards.
    Registry,
    /// Create device enrolment codes and revoke devices.
    Devices,
    /// Create and revoke other API clients (never beyond its own area, permissions or
    /// expiry). Never person accounts: those are made by people.
    Accounts,
}

/// A client as listed; never its secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Client {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub permissions: Vec<Permission>,
    /// A location code; `None` is national.
    pub area: Option<String>,
    pub created_by: String,
    /// The username of the person the client answers to.
    pub owner: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    /// `ACTIVE`, `EXPIRED` or `REVOKED`, as of the read.
    pub state: ClientState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientState {
    Active,
    Expired,
    Revoked,
}

/// A new client, as an administrator asks for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    /// The role it acts as: `ADMIN` or `SUPERVISOR` (field agents work through devices).
    pub role: Role,
    pub permissions: Vec<Permission>,
    /// A location code inside the creator's area; omitted for national (national creators
    /// only).
    #[serde(default)]
    pub area: Option<String>,
    /// When it stops working (RFC 3339 with a zone); at most [`MAX_LIFETIME_DAYS`] ahead.
    pub expires_at: DateTime<FixedOffset>,
}

/// The answer to a creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClient {
    pub client: Client,
    pub secret: String,
}

/// A client authenticated by its secret: the principal it acts as, and its permissions.
#[derive(Debug, Clone)]
pub struct Grant {
    pub principal: User,
    pub permissions: Vec<Permission>,
}

const CLIENT_SELECT: &str = "SELECT c.id, c.name, c.role, c.permissions, l.code, c.created_by,
    c.created_at, c.expires_at, c.revoked_at, c.revoked_by, c.revoke_reason, l.path, o.username
    FROM api_clients c LEFT JOIN locations l ON l.id = c.area_id
    LEFT JOIN users o ON o.id = c.owner_id";

fn client_from_row(r: &Row, now: &str) -> rusqlite::Result<Client> {
    let expires_at: String = r.get(7)?;
    let revoked_at: Option<String> = r.get(8)?;
    let state = if revoked_at.is_some() {
        ClientState::Revoked
    } else if expires_at.as_str() <= now {
        ClientState::Expired
    } else {
        ClientState::Active
    };
    Ok(Client {
        id: r.get(0)?,
        name: r.get(1)?,
        role: text_column(r, 2)?,
        permissions: json_column(r, 3)?,
        area: r.get(4)?,
        created_by: r.get(5)?,
        owner: r.get(12)?,
        created_at: r.get(6)?,
        expires_at,
        revoked_at,
        revoked_by: r.get(9)?,
        revoke_reason: r.get(10)?,
        state,
    })
}

/// Times as stored in this table: UTC with milliseconds, so text order is time order.
fn stored(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Creates a client and returns its secret once. Only administrators (and the command line)
/// create clients; the creator's area bounds the client's, and a client creating a client
/// (`by_client`) cannot give more permissions or a later expiry than its own.
///
/// The owner is the person behind `actor` (a person, or a client's owner); the command line,
/// which is nobody, names one (`owner`, a username): an administrator, not disabled, whose
/// area holds the client's.
pub fn create_client(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    by_client: Option<Uuid>,
    owner: Option<&str>,
    new: &NewClient,
) -> Result<CreatedClient> {
    let name = new.name.trim();
    if name.len() < 2
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(Error::Invalid(
            "a client name is 2 to 64 lower-case letters, digits, '.', '_' or '-'".into(),
        ));
    }
    match new.role {
        Role::Admin | Role::Supervisor => {}
        Role::FieldAgent => {
            return Err(Error::Invalid(
                "a client acts as ADMIN or SUPERVISOR; field agents work through devices".into(),
            ));
        }
    }
    let mut permissions = new.permissions.clone();
    permissions.sort();
    permissions.dedup();
    if permissions.is_empty() {
        return Err(Error::Invalid(
            "a client needs at least one permission: read, registry, devices or accounts".into(),
        ));
    }
    let now_utc = Utc::now();
    let expires = new.expires_at.with_timezone(&Utc);
    if expires <= now_utc {
        return Err(Error::Invalid(
            "a client's expiry must be in the future".into(),
        ));
    }
    if expires > now_utc + Duration::days(MAX_LIFETIME_DAYS) {
        return Err(Error::Invalid(format!(
            "a client lives at most {MAX_LIFETIME_DAYS} days: choose an earlier expiry"
        )));
    }
    if let Some(creator) = by_client {
        let own = get_client(tx, creator)?;
        if let Some(p) = permissions.iter().find(|p| !own.permissions.contains(p)) {
            return Err(Error::Forbidden(format!(
                "a client cannot grant a permission it does not hold ({})",
                json!(p).as_str().unwrap_or_default()
            )));
        }
        if stored(expires) > own.expires_at {
            return Err(Error::Forbidden(
                "a client cannot create a client that outlives it".into(),
            ));
        }
    }
    let area = match new.area.as_deref() {
        Some(code) => Some(location_by_code(tx, code)?),
        None => None,
    };
    if !scope.contains(area.as_ref().map(|a| a.path.as_str())) {
        return Err(Error::Forbidden(
            "you can only create clients inside your area".into(),
        ));
    }
    let owner_id = match owner {
        Some(username) => {
            let person = crate::users::store::user_by_username(tx, username).map_err(|_| {
                Error::Invalid(format!("no person named '{username}' to own the client"))
            })?;
            let disabled: bool = tx.sqlite().query_row(
                "SELECT disabled FROM users WHERE id = ?1",
                [person.id],
                |r| r.get(0),
            )?;
            if person.role != Role::Admin || disabled {
                return Err(Error::Invalid(format!(
                    "a client's owner is an administrator whose account is in use; '{username}' is not"
                )));
            }
            if !person
                .scope()
                .contains(area.as_ref().map(|a| a.path.as_str()))
            {
                return Err(Error::Invalid(format!(
                    "the client's area is outside its owner '{username}''s area"
                )));
            }
            person.id
        }
        None => crate::users::store::actor_user(tx, actor)?.ok_or_else(|| {
            Error::Invalid("name the person the client answers to (its owner)".into())
        })?,
    };
    let secret = new_secret()?;
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO api_clients (id, name, role, permissions, area_id, secret_hash, created_by,
             created_at, expires_at, owner_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            name,
            json!(new.role).as_str(),
            json!(permissions).to_string(),
            area.as_ref().map(|a| a.id),
            secret_hash(&secret),
            actor,
            now(),
            stored(expires),
            owner_id,
        ],
    )
    .map_err(|e| unique_to_conflict(e, format!("a client named '{name}' exists")))?;
    audit::append(
        tx,
        actor,
        "client.create",
        "api_client",
        Some(&id.to_string()),
        &json!({
            "name": name,
            "role": new.role,
            "permissions": permissions,
            "area": new.area,
            "expires_at": stored(expires),
            "owner": owner_id,
        }),
    )?;
    Ok(CreatedClient {
        client: get_client(tx, id)?,
        secret,
    })
}

fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("no randomness for a client secret".into()))?;
    Ok(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn secret_hash(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

fn get_client(conn: &ReadTx, id: Uuid) -> Result<Client> {
    let now = now();
    conn.sqlite()
        .query_row(&format!("{CLIENT_SELECT} WHERE c.id = ?1"), [id], |r| {
            client_from_row(r, &now)
        })
        .optional()?
        .ok_or_else(|| Error::not_found("client", id.to_string()))
}

/// The clients whose area is inside `scope` (national clients only for national callers).
pub fn list_clients(conn: &ReadTx, scope: &Scope) -> Result<Vec<Client>> {
    let now = now();
    let mut stmt = conn.sqlite().prepare(&format!(
        "{CLIENT_SELECT} WHERE (?1 IS NULL OR (l.path IS NOT NULL AND {IN_SCOPE})) ORDER BY c.name"
    ))?;
    let rows = stmt.query_map([scope.sql()], |r| client_from_row(r, &now))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes a client at once: its next request is refused. A client outside the caller's
/// area is not found; one already revoked is a conflict.
pub fn revoke_client(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    id: Uuid,
    reason: &str,
) -> Result<Client> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Invalid("say why the client is revoked".into()));
    }
    let now = now();
    let (client, path) = tx
        .sqlite()
        .query_row(&format!("{CLIENT_SELECT} WHERE c.id = ?1"), [id], |r| {
            Ok((client_from_row(r, &now)?, r.get::<_, Option<String>>(11)?))
        })
        .optional()?
        .ok_or_else(|| Error::not_found("client", id.to_string()))?;
    if !scope.contains(path.as_deref()) {
        return Err(Error::not_found("client", id.to_string()));
    }
    if client.state == ClientState::Revoked {
        return Err(Error::Conflict(format!(
            "client '{}' is already revoked",
            client.name
        )));
    }
    // The clients it created (and theirs) go with it. What it did (records, payrolls, tasks
    // it opened) stays: those are facts, decided by people.
    let mut pending = vec![(id, client.name.clone(), reason.to_owned())];
    while let Some((id, name, reason)) = pending.pop() {
        tx.sqlite().execute(
            "UPDATE api_clients SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4
             WHERE id = ?1",
            params![id, now, actor, reason],
        )?;
        audit::append(
            tx,
            actor,
            "client.revoke",
            "api_client",
            Some(&id.to_string()),
            &json!({ "name": name, "reason": reason }),
        )?;
        let mut children = tx.sqlite().prepare(
            "SELECT id, name FROM api_clients WHERE created_by = ?1 AND revoked_at IS NULL",
        )?;
        let children = children
            .query_map([format!("client:{name}")], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(Uuid, String)>>>()?;
        pending.extend(children.into_iter().map(|(child, child_name)| {
            (
                child,
                child_name,
                format!("its creator, client '{name}', was revoked"),
            )
        }));
    }
    get_client(tx, id)
}

/// The principal behind a client secret, if the client exists, is not revoked, has not
/// expired and has an owner whose account is not disabled; anything else is
/// [`Error::Unauthenticated`], the same as an unknown token. An owner's pause (wrong
/// passwords) does not stop their clients: anyone can cause a pause, and an integration
/// should not fall with it.
pub fn grant_for_secret(conn: &ReadTx, secret: &str) -> Result<Grant> {
    let now = now();
    let found = conn
        .sqlite()
        .query_row(
            &format!(
                "{CLIENT_SELECT} WHERE c.secret_hash = ?1 AND c.revoked_at IS NULL
                 AND c.expires_at > ?2 AND o.id IS NOT NULL AND o.disabled = 0"
            ),
            params![secret_hash(secret), now],
            |r| Ok((client_from_row(r, &now)?, r.get::<_, Option<String>>(11)?)),
        )
        .optional()?;
    let (client, path) = found.ok_or(Error::Unauthenticated)?;
    let area = client.area.clone().zip(path);
    Ok(Grant {
        principal: User::for_client(client.id, client.name, client.role, area),
        permissions: client.permissions,
    })
}
