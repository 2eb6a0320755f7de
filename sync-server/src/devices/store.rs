//! Field devices: one-time enrolment codes, enrolled devices and their revocation, the check
//! every signed sync request passes, and beneficiary cards signed with the programme key.

use std::path::Path;

use chrono::{Duration, NaiveDate, Utc};
use outpost_proto::{auth, wire::ErrorCode};
use ring::signature::{Ed25519KeyPair, KeyPair};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::{Error, Result};
use crate::{
    areas::store as areas,
    store::{ReadTx, WriteTx},
};
use crate::{
    areas::store::{IN_SCOPE, Scope},
    registry::store::{self as registry},
    store::audit,
    store::now,
    users::store::{self as users, Role, User},
};

/// The programme's card-signing key, kept in the data directory (mode 0600), never in the
/// database, so a copy of the database cannot forge cards.
pub struct ProgrammeKey {
    pair: Ed25519KeyPair,
}

impl ProgrammeKey {
    pub const FILE: &'static str = "programme-key.p8";

    /// Loads the key, creating it on first start.
    pub fn load_or_create(dir: &Path) -> Result<ProgrammeKey> {
        let path = dir.join(Self::FILE);
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (pkcs8, _) = auth::generate_key().map_err(|e| {
                    Error::Internal(format!("cannot create the programme key: {e}"))
                })?;
                crate::store::secrets::write_private(&path, &pkcs8)?;
                pkcs8
            }
            Err(e) => return Err(e.into()),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| {
            Error::Invalid(format!("{} is not an Ed25519 PKCS#8 key", path.display()))
        })?;
        Ok(ProgrammeKey { pair })
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub fn pair(&self) -> &Ed25519KeyPair {
        &self.pair
    }
}

// ---------------------------------------------------------------------------------------------
// Enrolment

/// How long an enrolment code lives unless the supervisor says otherwise.
pub const ENROLMENT_TTL_MINUTES: i64 = 24 * 60;
/// No ambiguous characters (0/O, 1/I/L), so a code read over the phone is typed right.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    /// Shown once; only its hash is stored.
    pub code: String,
    pub agent: String,
    pub assignment: String,
    pub expires_at: String,
    /// Text for a QR code the app scans: `outpost:enrol?code=...`.
    pub qr_payload: String,
}

fn code_hash(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    ring::digest::digest(&ring::digest::SHA256, normal.as_bytes())
        .as_ref()
        .to_vec()
}

/// A supervisor creates a one-time code for an agent and an assignment inside both their areas.
pub fn create_enrolment(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    agent: &str,
    assignment: &str,
    ttl_minutes: Option<i64>,
) -> Result<Enrolment> {
    let ttl = ttl_minutes.unwrap_or(ENROLMENT_TTL_MINUTES);
    if !(1..=7 * 24 * 60).contains(&ttl) {
        return Err(Error::Invalid(
            "ttl_minutes must be between 1 and 10080 (7 days)".into(),
        ));
    }
    let agent = users::user_by_username(tx, agent)?;
    if agent.role != Role::FieldAgent {
        return Err(Error::Invalid(format!(
            "{} is not a field agent; devices are enrolled for field agents",
            agent.username
        )));
    }
    let location = areas::location_by_code(tx, assignment)?;
    if !scope.contains(Some(&location.path)) {
        return Err(Error::Forbidden(format!(
            "{} is outside your area",
            location.code
        )));
    }
    if !agent.scope().contains(Some(&location.path)) {
        return Err(Error::Invalid(format!(
            "{} is outside {}'s area ({})",
            location.code,
            agent.username,
            agent.area.as_deref().unwrap_or("national")
        )));
    }
    let mut random = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| Error::Internal("no randomness".into()))?;
    let chars: String = random
        .iter()
        .map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char)
        .collect();
    let code = format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..]);
    let expires_at =
        (Utc::now() + Duration::minutes(ttl)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tx.sqlite().execute(
        "INSERT INTO enrolment_codes (code_hash, agent_id, assignment_id, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![code_hash(&code), agent.id, location.id, actor, now(), expires_at],
    )?;
    audit::append(
        tx,
        actor,
        "create_enrolment",
        "device",
        None,
        &json!({"agent": agent.username, "assignment": location.code, "expires_at": expires_at}),
    )?;
    Ok(Enrolment {
        qr_payload: format!("outpost:enrol?code={code}"),
        code,
        agent: agent.username,
        assignment: location.code,
        expires_at,
    })
}

/// What a device learns when it enrols.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub device_id: Uuid,
    pub agent: User,
    pub assignment: registry::Location,
}

/// Enrols a device with a code and its public key. The caller has checked that the request
/// is signed by that key.
pub fn enrol(
    tx: &WriteTx,
    code: &str,
    public_key: &[u8],
    label: &str,
    app_version: &str,
) -> Result<Enrolled> {
    if public_key.len() != 32 {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "the public key must be 32 bytes (Ed25519)",
        ));
    }
    let row: Option<(Uuid, Uuid, String, Option<String>, String, bool)> = tx.sqlite()
        .query_row(
            "SELECT c.agent_id, c.assignment_id, c.expires_at, c.used_at, u.username, u.disabled <> 0
             FROM enrolment_codes c JOIN users u ON u.id = c.agent_id WHERE c.code_hash = ?1",
            [code_hash(code)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((agent_id, assignment_id, expires_at, used_at, username, disabled)) = row else {
        return Err(Error::refused(
            ErrorCode::EnrolmentCodeInvalid,
            "this enrolment code is not known; check it with your supervisor",
        ));
    };
    if used_at.is_some() {
        return Err(Error::refused(
            ErrorCode::EnrolmentCodeUsed,
            "this enrolment code was already used; ask your supervisor for a new one",
        ));
    }
    if disabled {
        return Err(Error::refused(
            ErrorCode::AgentDisabled,
            "this agent's account is disabled; ask your supervisor",
        ));
    }
    if expires_at < now() {
        return Err(Error::refused(
            ErrorCode::EnrolmentCodeExpired,
            "this enrolment code has expired; ask your supervisor for a new one",
        ));
    }
    let known: bool = tx.sqlite().query_row(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE public_key = ?1)",
        [public_key],
        |r| r.get(0),
    )?;
    if known {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "this key is already enrolled; generate a new key for a new enrolment",
        ));
    }
    let device_id = Uuid::now_v7();
    let label = label.trim().chars().take(100).collect::<String>();
    let app_version = app_version.trim().chars().take(40).collect::<String>();
    let at = now();
    tx.sqlite().execute(
        "INSERT INTO devices (id, public_key, agent_id, assignment_id, label, app_version, enrolled_at, enrolled_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![device_id, public_key, agent_id, assignment_id, label, app_version, at, format!("user:{username}")],
    )?;
    tx.sqlite().execute(
        "UPDATE enrolment_codes SET used_at = ?2, device_id = ?3 WHERE code_hash = ?1",
        params![code_hash(code), at, device_id],
    )?;
    let agent = users::user_by_username(tx, &username)?;
    let assignment = areas::location_by_id(tx, assignment_id)?;
    audit::append(
        tx,
        &format!("device:{device_id}"),
        "enrol",
        "device",
        Some(&device_id.to_string()),
        &json!({"agent": username, "assignment": assignment.code, "label": label}),
    )?;
    Ok(Enrolled {
        device_id,
        agent,
        assignment,
    })
}

// ---------------------------------------------------------------------------------------------
// Devices

/// An enrolled device, as a signed request finds it.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub agent: String,
    pub assignment_path: String,
    pub public_key: Vec<u8>,
    pub revoked: bool,
    pub agent_disabled: bool,
}

impl Device {
    pub fn scope(&self) -> Scope {
        Scope::Area {
            path: self.assignment_path.clone(),
        }
    }

    pub fn actor(&self) -> String {
        format!("device:{}", self.id)
    }
}

fn device(conn: &ReadTx, id: Uuid) -> Result<Option<Device>> {
    Ok(conn.sqlite()
        .query_row(
            "SELECT d.id, d.agent_id, u.username, l.path, d.public_key, d.revoked_at IS NOT NULL,
                    u.disabled <> 0
             FROM devices d JOIN users u ON u.id = d.agent_id JOIN locations l ON l.id = d.assignment_id
             WHERE d.id = ?1",
            [id],
            |r| {
                Ok(Device {
                    id: r.get(0)?,
                    agent_id: r.get(1)?,
                    agent: r.get(2)?,
                    assignment_path: r.get(3)?,
                    public_key: r.get(4)?,
                    revoked: r.get(5)?,
                    agent_disabled: r.get(6)?,
                })
            },
        )
        .optional()?)
}

/// The device id and timestamp of a signed request's headers, checked for form.
fn parse_claim(device: &str, timestamp_ms: &str, nonce: &str) -> Result<(Uuid, u64)> {
    let id: Uuid = device.parse().map_err(|_| {
        Error::refused(
            ErrorCode::UnknownDevice,
            "the device id is missing or not a UUID",
        )
    })?;
    let timestamp: u64 = timestamp_ms.parse().map_err(|_| {
        Error::refused(
            ErrorCode::Malformed,
            "the timestamp header must be milliseconds since 1970",
        )
    })?;
    if nonce.len() < 8 || nonce.len() > 64 {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "the nonce must be 8 to 64 characters",
        ));
    }
    Ok((id, timestamp))
}

/// What can be checked of a signed request before its body is read (the body is signed, so
/// the signature waits for it): the headers are well-formed and name a device that is
/// enrolled and not revoked. A request failing here is answered without reading its body;
/// [`authenticate`] checks everything again once the body is in. Returns the device's id.
pub fn check_claim(
    conn: &ReadTx,
    device: &str,
    timestamp_ms: &str,
    nonce: &str,
    signature: &str,
) -> Result<Uuid> {
    let (id, _) = parse_claim(device, timestamp_ms, nonce)?;
    if !auth::signature_is_well_formed(signature) {
        return Err(Error::refused(
            ErrorCode::BadSignature,
            "the request signature is missing or not an Ed25519 signature",
        ));
    }
    let known: Option<bool> = conn
        .sqlite()
        .query_row(
            "SELECT revoked_at IS NOT NULL FROM devices WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    match known {
        None => Err(Error::refused(
            ErrorCode::UnknownDevice,
            "this device is not enrolled; enrol it again",
        )),
        Some(true) => Err(Error::refused(
            ErrorCode::DeviceRevoked,
            "this device was revoked by a supervisor; its local data must be wiped",
        )),
        Some(false) => Ok(id),
    }
}

/// The headers of a signed request, as received.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub device: &'a str,
    pub timestamp_ms: &'a str,
    pub nonce: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// Checks a signed request: known device, valid signature, not revoked, timestamp inside the
/// window, nonce never seen. Records the nonce and the time the device was last seen.
pub fn authenticate(tx: &WriteTx, req: &SignedRequest, now_ms: u64) -> Result<Device> {
    let (id, timestamp) = parse_claim(req.device, req.timestamp_ms, req.nonce)?;
    let device = device(tx, id)?.ok_or_else(|| {
        Error::refused(
            ErrorCode::UnknownDevice,
            "this device is not enrolled; enrol it again",
        )
    })?;
    let text = auth::signed_text(
        req.method, req.path, req.device, timestamp, req.nonce, req.body,
    );
    if !auth::verify(&device.public_key, &text, req.signature) {
        return Err(Error::refused(
            ErrorCode::BadSignature,
            "the request signature does not match this device's key",
        ));
    }
    if device.revoked {
        return Err(Error::refused(
            ErrorCode::DeviceRevoked,
            "this device was revoked by a supervisor; its local data must be wiped",
        ));
    }
    if device.agent_disabled {
        return Err(Error::refused(
            ErrorCode::AgentDisabled,
            "the agent's account is disabled; keep this device's data and ask a supervisor",
        ));
    }
    if timestamp.abs_diff(now_ms) > auth::TIMESTAMP_WINDOW_MS {
        return Err(Error::refused(
            ErrorCode::ClockSkew,
            "the request time is too far from the server's; correct the clock offset and retry",
        ));
    }
    let fresh = tx.sqlite().execute(
        "INSERT OR IGNORE INTO device_nonces (device_id, nonce, at_ms) VALUES (?1, ?2, ?3)",
        params![id, req.nonce, timestamp as i64],
    )?;
    if fresh == 0 {
        return Err(Error::refused(
            ErrorCode::Replayed,
            "this request was already received (replayed nonce)",
        ));
    }
    // Nonces older than twice the window can never be accepted again anyway.
    tx.sqlite().execute(
        "DELETE FROM device_nonces WHERE at_ms < ?1",
        [now_ms.saturating_sub(2 * auth::TIMESTAMP_WINDOW_MS) as i64],
    )?;
    tx.sqlite().execute(
        "UPDATE devices SET last_seen_at = ?2 WHERE id = ?1",
        params![id, now()],
    )?;
    Ok(device)
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    pub id: Uuid,
    pub agent: String,
    pub assignment: String,
    pub label: String,
    pub app_version: String,
    pub enrolled_at: String,
    pub last_seen_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoke_reason: Option<String>,
    /// Records received from the device, accepted or quarantined.
    pub records_received: u64,
    /// Of those, records refused by validation (in quarantine).
    pub records_quarantined: u64,
    /// Record numbers below the highest received that never arrived.
    pub records_missing: u64,
}

/// Devices whose assignment is in `scope`.
pub fn list_devices(conn: &ReadTx, scope: &Scope) -> Result<Vec<DeviceInfo>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "SELECT d.id, u.username, l.code, d.label, d.app_version, d.enrolled_at, d.last_seen_at,
                d.revoked_at, d.revoke_reason, d.max_device_seq,
                (SELECT count(*) FROM (
                    SELECT device_seq FROM documents WHERE device_id = d.id AND device_seq > 0
                    UNION SELECT device_seq FROM quarantine WHERE device_id = d.id AND device_seq > 0)),
                (SELECT count(DISTINCT device_seq) FROM quarantine WHERE device_id = d.id AND device_seq > 0
                    AND device_seq NOT IN (SELECT device_seq FROM documents WHERE device_id = d.id))
         FROM devices d JOIN users u ON u.id = d.agent_id JOIN locations l ON l.id = d.assignment_id
         WHERE {IN_SCOPE} ORDER BY d.enrolled_at DESC"
    ))?;
    let rows = stmt.query_map([scope.sql()], |r| {
        let max: u64 = r.get(9)?;
        let received: u64 = r.get(10)?;
        let quarantined: u64 = r.get(11)?;
        Ok(DeviceInfo {
            id: r.get(0)?,
            agent: r.get(1)?,
            assignment: r.get(2)?,
            label: r.get(3)?,
            app_version: r.get(4)?,
            enrolled_at: r.get(5)?,
            last_seen_at: r.get(6)?,
            revoked_at: r.get(7)?,
            revoke_reason: r.get(8)?,
            records_received: received,
            records_quarantined: quarantined,
            records_missing: max.saturating_sub(received),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes a device: its next request is refused and told to wipe.
pub fn revoke_device(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    id: Uuid,
    reason: &str,
) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::Invalid(
            "give a reason for revoking the device".into(),
        ));
    }
    let found: Option<(String, bool)> = tx
        .sqlite()
        .query_row(
            &format!(
                "SELECT u.username, d.revoked_at IS NOT NULL FROM devices d
                 JOIN users u ON u.id = d.agent_id JOIN locations l ON l.id = d.assignment_id
                 WHERE {IN_SCOPE} AND d.id = ?2"
            ),
            params![scope.sql(), id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((agent, revoked)) = found else {
        return Err(Error::not_found("device", id));
    };
    if revoked {
        return Err(Error::Conflict("the device is already revoked".into()));
    }
    tx.sqlite().execute(
        "UPDATE devices SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4 WHERE id = ?1",
        params![id, now(), actor, reason.trim()],
    )?;
    audit::append(
        tx,
        actor,
        "revoke",
        "device",
        Some(&id.to_string()),
        &json!({"reason": reason.trim(), "agent": agent}),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Beneficiary cards

/// A card in force, with what a printed card shows.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedCard {
    pub serial: u64,
    pub beneficiary_id: Uuid,
    pub holder_id: Uuid,
    pub holder_name: String,
    pub reference: String,
    pub plan: String,
    pub village: String,
    pub issued_on: NaiveDate,
    /// The signed QR text.
    pub qr: String,
}

/// Who holds a beneficiary's card by default: the person, or the household's primary
/// recipient, else its head.
fn default_holder(conn: &ReadTx, beneficiary_id: Uuid) -> Result<Uuid> {
    conn.sqlite().query_row(
        "SELECT COALESCE(b.individual_id,
            (SELECT individual_id FROM group_members WHERE group_id = b.group_id AND recipient = 'PRIMARY'),
            (SELECT individual_id FROM group_members WHERE group_id = b.group_id AND relationship = 'HEAD'))
         FROM beneficiaries b WHERE b.id = ?1",
        [beneficiary_id],
        |r| r.get::<_, Option<Uuid>>(0),
    )
    .optional()?
    .flatten()
    .ok_or_else(|| {
        Error::Invalid(
            "the household has neither a primary recipient nor a head to hold the card".into(),
        )
    })
}

/// Issues a card to a beneficiary (or to one of its household's recipients); a card already
/// in force for the same holder is revoked, since a reissue replaces a lost or damaged card.
pub fn issue_card(
    tx: &WriteTx,
    key: &ProgrammeKey,
    actor: &str,
    scope: &Scope,
    beneficiary_id: Uuid,
    holder: Option<Uuid>,
) -> Result<IssuedCard> {
    registry::get_beneficiary(tx, scope, beneficiary_id)?;
    let holder = match holder {
        Some(h) => {
            let allowed: bool = tx.sqlite().query_row(
                "SELECT EXISTS (SELECT 1 FROM beneficiaries b WHERE b.id = ?1 AND (b.individual_id = ?2
                    OR EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = b.group_id
                               AND m.individual_id = ?2 AND (m.recipient <> 'NONE' OR m.relationship = 'HEAD'))))",
                params![beneficiary_id, h],
                |r| r.get(0),
            )?;
            if !allowed {
                return Err(Error::Invalid(
                    "the holder must be the beneficiary, the household head or one of its recipients".into(),
                ));
            }
            h
        }
        None => default_holder(tx, beneficiary_id)?,
    };
    let at = now();
    let replaced: Vec<u64> = {
        let mut stmt = tx.sqlite().prepare(
            "SELECT serial FROM cards WHERE beneficiary_id = ?1 AND holder_id = ?2 AND revoked_at IS NULL",
        )?;
        stmt.query_map(params![beneficiary_id, holder], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    tx.sqlite().execute(
        "UPDATE cards SET revoked_at = ?3, revoked_by = ?4, revoke_reason = 'reissued'
         WHERE beneficiary_id = ?1 AND holder_id = ?2 AND revoked_at IS NULL",
        params![beneficiary_id, holder, at, actor],
    )?;
    let serial: u64 =
        tx.sqlite()
            .query_row("SELECT COALESCE(MAX(serial), 0) + 1 FROM cards", [], |r| {
                r.get(0)
            })?;
    let today = Utc::now().date_naive();
    tx.sqlite().execute(
        "INSERT INTO cards (id, serial, beneficiary_id, holder_id, issued_on, issued_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            Uuid::now_v7(),
            serial,
            beneficiary_id,
            holder,
            today.to_string(),
            actor
        ],
    )?;
    audit::append(
        tx,
        actor,
        "issue_card",
        "beneficiary",
        Some(&beneficiary_id.to_string()),
        &json!({"serial": serial, "holder": holder, "replaces": replaced}),
    )?;
    card_by_serial(tx, key, serial)
}

const CARD_SELECT: &str = "SELECT c.serial, c.beneficiary_id, c.holder_id,
        i.first_name || ' ' || i.last_name, COALESCE(g.code, i.external_id), p.id, p.name,
        COALESCE(l.name, ''), c.issued_on
    FROM cards c
    JOIN beneficiaries b ON b.id = c.beneficiary_id
    JOIN benefit_plans p ON p.id = b.plan_id
    JOIN individuals i ON i.id = c.holder_id
    LEFT JOIN groups g ON g.id = b.group_id
    LEFT JOIN locations l ON l.id = COALESCE(g.location_id, i.location_id)";

fn card_from_row(key: &ProgrammeKey, r: &rusqlite::Row) -> rusqlite::Result<IssuedCard> {
    let issued_on: NaiveDate = crate::store::date_column(r, 8)?;
    let plan_id: Uuid = r.get(5)?;
    let card = auth::Card {
        beneficiary_id: r.get(1)?,
        holder_id: r.get(2)?,
        plan_id,
        serial: r.get(0)?,
        issued_days: days_since_epoch(issued_on),
    };
    Ok(IssuedCard {
        serial: card.serial,
        beneficiary_id: card.beneficiary_id,
        holder_id: card.holder_id,
        holder_name: r.get(3)?,
        reference: r.get(4)?,
        plan: r.get(6)?,
        village: r.get(7)?,
        issued_on,
        qr: card.sign(key.pair()),
    })
}

pub fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

fn card_by_serial(conn: &ReadTx, key: &ProgrammeKey, serial: u64) -> Result<IssuedCard> {
    Ok(conn.sqlite().query_row(
        &format!("{CARD_SELECT} WHERE c.serial = ?1"),
        [serial],
        |r| card_from_row(key, r),
    )?)
}

/// Cards in force for a plan's beneficiaries in an area, issuing one to each ACTIVE
/// beneficiary that has none yet (when `issue_missing`), ordered for printing by village.
pub fn cards_for_area(
    tx: &WriteTx,
    key: &ProgrammeKey,
    actor: &str,
    scope: &Scope,
    plan_code: &str,
    area_code: &str,
    issue_missing: bool,
) -> Result<Vec<IssuedCard>> {
    let plan = crate::plans::store::plan_by_code(tx, plan_code)?;
    let area = areas::location_by_code(tx, area_code)?;
    if !scope.contains(Some(&area.path)) {
        return Err(Error::Forbidden(format!(
            "{} is outside your area",
            area.code
        )));
    }
    let area_scope = Scope::Area { path: area.path };
    if issue_missing {
        let missing: Vec<Uuid> = {
            let mut stmt = tx.sqlite().prepare(&format!(
                "SELECT b.id FROM beneficiaries b JOIN beneficiary_paths bp ON bp.beneficiary_id = b.id
                 WHERE b.plan_id = ?2 AND b.status = 'ACTIVE' AND {}
                   AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.beneficiary_id = b.id AND c.revoked_at IS NULL)
                 ORDER BY b.id",
                areas::under_path("bp.path", "?1")
            ))?;
            stmt.query_map(params![area_scope.sql(), plan.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for id in missing {
            issue_card(tx, key, actor, &area_scope, id, None)?;
        }
    }
    let mut stmt = tx.sqlite().prepare(&format!(
        "{CARD_SELECT} JOIN beneficiary_paths bp ON bp.beneficiary_id = b.id
         WHERE c.revoked_at IS NULL AND b.plan_id = ?2 AND {}
         ORDER BY l.name, c.serial",
        areas::under_path("bp.path", "?1")
    ))?;
    let cards = stmt
        .query_map(params![area_scope.sql(), plan.id], |r| {
            card_from_row(key, r)
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(cards)
}
