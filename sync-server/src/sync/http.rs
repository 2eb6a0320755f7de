//! The device sync endpoints (`/sync/v1/*`, protobuf; see `proto/README.md`).

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use outpost_proto::wire::{
    self, ChangesRequest, EnrolReply, EnrolRequest, ErrorCode, ErrorReply, HelloReply, PushReply,
    PushRequest, ReplicaRequest, header as h,
};
use prost::Message;
use uuid::Uuid;

use crate::api::{Query, read_json};
use crate::app::{AppState, db};
use crate::users::caller::{Caller, STAFF};
use crate::{
    Error, Result,
    devices::store::{self as devices, Device},
    sync::store::{
        records::{self, Origin},
        replica,
    },
};
use serde::Deserialize;

/// The largest sync request body accepted (compressed size as sent).
pub const SYNC_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// The largest enrolment body, as sent and once decompressed. An `EnrolRequest` is a code, a
/// key and two short labels; its signature can only be checked with the key inside it, so
/// this is all an unauthenticated caller can make the server read or expand.
pub const ENROL_BODY_LIMIT: usize = 16 * 1024;
/// Upload batches decoded at once, before they queue for the writer.
static PREPARE_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
/// The most documents in one upload batch.
pub const MAX_BATCH_DOCS: usize = 2000;

fn server_time_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

fn code_status(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        Malformed | UnsupportedProtocol | EnrolmentCodeInvalid | CursorInvalid | Unspecified => {
            StatusCode::BAD_REQUEST
        }
        UnknownDevice | BadSignature | ClockSkew => StatusCode::UNAUTHORIZED,
        DeviceRevoked | OutOfScope | AgentDisabled => StatusCode::FORBIDDEN,
        Replayed => StatusCode::CONFLICT,
        EnrolmentCodeExpired | EnrolmentCodeUsed => StatusCode::GONE,
        BodyTooLarge | BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Busy => StatusCode::TOO_MANY_REQUESTS,
        NotFound => StatusCode::NOT_FOUND,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal on a sync route: the protocol's `ErrorReply`, never JSON.
pub struct SyncFailure(Error);

impl From<Error> for SyncFailure {
    fn from(e: Error) -> Self {
        SyncFailure(e)
    }
}

impl IntoResponse for SyncFailure {
    fn into_response(self) -> Response {
        let timed_out = matches!(self.0, Error::TimedOut(_));
        let unavailable = match self.0 {
            Error::Unavailable { retry_after, .. } => Some(retry_after),
            _ => None,
        };
        let (code, message) = match self.0 {
            Error::Refused { code, message } => (code, message),
            Error::Invalid(m) | Error::Conflict(m) => (ErrorCode::Malformed, m),
            e @ (Error::Fields { .. } | Error::Transition(_)) => {
                (ErrorCode::Malformed, e.to_string())
            }
            e @ Error::NotFound { .. } => (ErrorCode::Malformed, e.to_string()),
            Error::Forbidden(m) => (ErrorCode::OutOfScope, m),
            Error::TooLarge(m) => (ErrorCode::BodyTooLarge, m),
            // Too slow a sender: try again, as when busy, but answered 408.
            Error::Busy(m) | Error::TimedOut(m) | Error::Unavailable { message: m, .. } => {
                (ErrorCode::Busy, m)
            }
            e @ Error::StorageFull => (ErrorCode::Internal, e.to_string()),
            e => {
                tracing::error!("sync request failed: {e}");
                (
                    ErrorCode::Internal,
                    "the server failed; try again later".into(),
                )
            }
        };
        let reply = ErrorReply {
            code: code as i32,
            message,
            wipe: code == ErrorCode::DeviceRevoked,
            server_time_ms: server_time_ms(),
            supported: if code == ErrorCode::UnsupportedProtocol {
                wire::PROTOCOL_VERSIONS.to_vec()
            } else {
                Vec::new()
            },
        };
        let mut response = protobuf(&reply, None);
        *response.status_mut() = if timed_out {
            StatusCode::REQUEST_TIMEOUT
        } else if unavailable.is_some() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            code_status(code)
        };
        if let Some(seconds) = unavailable {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if code == ErrorCode::Busy && !timed_out {
            crate::app::limits::retry_after(&mut response);
        }
        response
    }
}

type SyncResult = std::result::Result<Response, SyncFailure>;

/// A protobuf answer with the server's clock (devices correct their offset from it).
fn protobuf<M: Message>(message: &M, version: Option<u32>) -> Response {
    let (body, compressed) = wire::encode(message);
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wire::CONTENT_TYPE),
    );
    if compressed {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    }
    headers.insert(h::SERVER_TIME, HeaderValue::from(server_time_ms()));
    if let Some(v) = version {
        headers.insert(h::PROTOCOL, HeaderValue::from(v));
    }
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Negotiates the protocol version from the headers.
fn version(headers: &HeaderMap) -> Result<u32> {
    wire::negotiate(header(headers, h::PROTOCOL)).ok_or_else(|| {
        Error::refused(
            ErrorCode::UnsupportedProtocol,
            format!(
                "protocol version `{}` is not supported; this server speaks {:?}: update the app",
                header(headers, h::PROTOCOL),
                wire::PROTOCOL_VERSIONS
            ),
        )
    })
}

/// A signed request, opened: the device's permit ([`Limits::devices`](crate::app::limits::Limits))
/// is held for as long as this is, so the handler keeps it until its answer is made (decoding
/// and merging included), not only while the body is read.
struct Opened {
    version: u32,
    device: Device,
    bytes: Bytes,
    _in_progress: crate::app::limits::Permit<Uuid>,
}

/// Opens a signed request: negotiates the version, checks what the headers alone allow (well
/// formed, a known device, not revoked) before a byte of the body is read, reads the body
/// under the device's cap and [`BODY_READS`](crate::app::limits::BODY_READS), then checks the
/// signature.
async fn open_signed(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Opened> {
    let version = version(headers)?;
    let get = |n| header(headers, n).to_owned();
    let (device, timestamp, nonce, signature) = (
        get(h::DEVICE),
        get(h::TIMESTAMP),
        get(h::NONCE),
        get(h::SIGNATURE),
    );
    let id = db(state, move |s| {
        s.read(|c| devices::check_claim(c, &device, &timestamp, &nonce, &signature))
    })
    .await?;
    let in_progress = state
        .limits
        .devices
        .try_acquire(id, &format!("the device {id}"))?;
    let bytes = {
        let _reading = crate::app::limits::BODY_READS
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        read_body(body, SYNC_BODY_LIMIT, &state.limits.timeouts).await?
    };
    let (device, bytes) = signed(state, method, uri, headers, bytes).await?;
    Ok(Opened {
        version,
        device,
        bytes,
        _in_progress: in_progress,
    })
}

/// Reads a body up to `limit`. A larger body is read to its end (up to a bound) and
/// discarded, so the device receives the `BODY_TOO_LARGE` answer instead of a reset
/// connection it would take for a network fault and retry forever. A sender that stalls for
/// [`Timeouts::body`](crate::app::limits::Timeouts) or falls below its minimum rate is answered
/// 408, so that a held body does not keep its caps.
async fn read_body(
    body: Body,
    limit: usize,
    timeouts: &crate::app::limits::Timeouts,
) -> Result<Bytes> {
    use http_body_util::BodyExt;
    use tokio::time::Instant;
    let drain_limit = 8 * limit;
    let mut body = body;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let start = Instant::now();
    loop {
        let earned =
            std::time::Duration::from_secs_f64(seen as f64 / timeouts.body_min_rate.max(1) as f64);
        let deadline = (start + timeouts.body + earned).min(Instant::now() + timeouts.body);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                return Err(Error::TimedOut(format!(
                    "the request body stopped arriving after {seen} bytes; send it again"
                )));
            }
        };
        let frame = frame.map_err(|e| {
            Error::refused(
                ErrorCode::Malformed,
                format!("the body could not be read: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > drain_limit {
                break;
            }
        }
    }
    if seen > limit {
        return Err(Error::refused(
            ErrorCode::BodyTooLarge,
            format!("the request body is over {limit} bytes; send smaller batches"),
        ));
    }
    Ok(Bytes::from(buf))
}

fn decode<M: Message + Default>(what: &'static str, headers: &HeaderMap, body: &[u8]) -> Result<M> {
    let compressed = header(headers, header::CONTENT_ENCODING.as_str()) == "zstd";
    wire::decode(what, body, compressed)
        .map_err(|e| Error::refused(ErrorCode::Malformed, e.to_string()))
}

/// Checks the device's signature and replay protection; returns the device.
async fn signed(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Device, Bytes)> {
    let method = method.as_str().to_owned();
    let path = uri.path().to_owned();
    let get = |n| header(headers, n).to_owned();
    let (device, timestamp, nonce, signature) = (
        get(h::DEVICE),
        get(h::TIMESTAMP),
        get(h::NONCE),
        get(h::SIGNATURE),
    );
    db(state, move |s| {
        s.write(|tx| {
            devices::authenticate(
                tx,
                &devices::SignedRequest {
                    method: &method,
                    path: &path,
                    device: &device,
                    timestamp_ms: &timestamp,
                    nonce: &nonce,
                    signature: &signature,
                    body: &body,
                },
                server_time_ms(),
            )
            .map(|d| (d, body.clone()))
        })
    })
    .await
}

/// `GET /sync/v1/hello`: the server's clock, versions and limits, before enrolment.
pub async fn hello() -> Response {
    protobuf(
        &HelloReply {
            server_time_ms: server_time_ms(),
            versions: wire::PROTOCOL_VERSIONS.to_vec(),
            max_body_bytes: SYNC_BODY_LIMIT as u32,
            max_batch_docs: MAX_BATCH_DOCS as u32,
        },
        None,
    )
}

/// `POST /sync/v1/enrol`: signed with the new key itself, which proves the device holds it.
pub async fn enrol(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> SyncResult {
    let version = version(&headers)?;
    let bytes = read_body(body, ENROL_BODY_LIMIT, &state.limits.timeouts).await?;
    let compressed = header(&headers, header::CONTENT_ENCODING.as_str()) == "zstd";
    let request: EnrolRequest =
        wire::decode_within("EnrolRequest", &bytes, compressed, ENROL_BODY_LIMIT).map_err(|e| {
            match e {
                e @ wire::WireError::TooLarge { .. } => {
                    Error::refused(ErrorCode::BodyTooLarge, e.to_string())
                }
                e => Error::refused(ErrorCode::Malformed, e.to_string()),
            }
        })?;
    if request.public_key.len() != 32 {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "the public key must be 32 bytes (Ed25519)",
        )
        .into());
    }
    let timestamp: u64 = header(&headers, h::TIMESTAMP).parse().unwrap_or(0);
    let text = outpost_proto::auth::signed_text(
        method.as_str(),
        uri.path(),
        "",
        timestamp,
        header(&headers, h::NONCE),
        &bytes,
    );
    if !outpost_proto::auth::verify(&request.public_key, &text, header(&headers, h::SIGNATURE)) {
        return Err(Error::refused(
            ErrorCode::BadSignature,
            "the enrolment must be signed with the key being enrolled",
        )
        .into());
    }
    let programme_key = state.programme.public_key();
    let enrolled = db(&state, move |s| {
        s.write(|tx| {
            devices::enrol(
                tx,
                &request.code,
                &request.public_key,
                &request.label,
                &request.app_version,
            )
        })
    })
    .await?;
    let a = enrolled.assignment;
    Ok(protobuf(
        &EnrolReply {
            device_id: enrolled.device_id.as_bytes().to_vec(),
            agent_username: enrolled.agent.username,
            agent_name: enrolled.agent.display_name,
            assignment: Some(wire::Location {
                id: a.id.as_bytes().to_vec(),
                code: a.code,
                name: a.name,
                level: serde_json::to_value(a.level)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                path: a.path,
            }),
            programme_key,
        },
        Some(version),
    ))
}

/// `POST /sync/v1/replica`: a page of the registry rows in the device's assignment.
pub async fn replica(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> SyncResult {
    let opened = open_signed(&state, &method, &uri, &headers, body).await?;
    let (version, device) = (opened.version, opened.device.clone());
    let request: ReplicaRequest = decode("ReplicaRequest", &headers, &opened.bytes)?;
    let device_id = device.id;
    state
        .limits
        .first_downloads
        .admit(device_id, request.cursor)?;
    let page = db(&state, move |s| {
        s.read(|c| {
            replica::page(
                c,
                &device.assignment_path,
                request.cursor,
                request.max_bytes,
            )
        })
    })
    .await?;
    if !page.more {
        state.limits.first_downloads.finished(device_id);
    }
    Ok(protobuf(&page, Some(version)))
}

/// `POST /sync/v1/push`: one batch of record changes, merged in one transaction.
pub async fn push(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> SyncResult {
    let opened = open_signed(&state, &method, &uri, &headers, body).await?;
    let (version, device) = (opened.version, &opened.device);
    let origin = Origin {
        device_id: Some(device.id),
        scope: device.scope(),
        home_path: device.assignment_path.clone(),
        actor: format!("agent:{}", device.agent),
        user_id: Some(device.agent_id),
        author: device.agent.clone(),
    };
    // Decoding (up to 32 MiB once decompressed) and reading the records needs no lock, only
    // the merge does. The queue slot comes first, so a batch is only ever decoded when it has
    // a place to wait in; then a few are decoded at a time, off the async threads (a hundred
    // devices at once would only crowd the allocator). The device's permit is held throughout.
    let _queued = state
        .limits
        .queued_batches
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    let prepared = {
        let slot = PREPARE_SLOTS
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let compressed = header(&headers, header::CONTENT_ENCODING.as_str()) == "zstd";
        let bytes = opened.bytes.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let request: PushRequest = wire::decode("PushRequest", &bytes, compressed)
                .map_err(|e| Error::refused(ErrorCode::Malformed, e.to_string()))?;
            if request.docs.len() > MAX_BATCH_DOCS {
                return Err(Error::refused(
                    ErrorCode::BatchTooLarge,
                    format!(
                        "{} documents in one batch; send at most {MAX_BATCH_DOCS}",
                        request.docs.len()
                    ),
                ));
            }
            Ok(records::prepare(request.docs))
        })
        .await
        .map_err(|e| Error::Internal(format!("prepare task failed: {e}")))??
    };
    let results = state.ingest.submit(origin, prepared).await?;
    Ok(protobuf(&PushReply { results }, Some(version)))
}

/// `POST /sync/v1/changes`: changes to the device's records made elsewhere.
pub async fn changes(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> SyncResult {
    let opened = open_signed(&state, &method, &uri, &headers, body).await?;
    let (version, device) = (opened.version, opened.device.clone());
    let request: ChangesRequest = decode("ChangesRequest", &headers, &opened.bytes)?;
    let reply = db(&state, move |s| {
        s.read(|c| {
            records::changes_since(
                c,
                device.id,
                &device.assignment_path,
                request.cursor,
                request.max_bytes,
            )
        })
    })
    .await?;
    Ok(protobuf(&reply, Some(version)))
}

/// Any other `/sync/...` path, answered in the protocol's format.
pub async fn not_found(uri: Uri) -> SyncFailure {
    SyncFailure(Error::refused(
        ErrorCode::NotFound,
        format!("{} is not a sync endpoint", uri.path()),
    ))
}

#[derive(Deserialize)]
pub struct QuarantineQuery {
    limit: Option<u32>,
}

pub async fn quarantine(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<QuarantineQuery>,
) -> Result<Response> {
    caller.require(STAFF)?;
    let scope = caller.0.scope();
    let limit = crate::api::page_limit(q.limit);
    read_json(&state, move |c| records::quarantined(c, &scope, limit)).await
}
