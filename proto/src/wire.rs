//! The sync wire protocol: protobuf messages (prost), zstd for large bodies, and the headers
//! that carry the protocol version, the device's signature and the server's clock.
//!
//! Protobuf because it is compact on 2G links and ignores unknown fields, so an old app keeps
//! syncing with a newer server; field numbers are the contract and are never reused.
//! `proto/README.md` documents every message, field and error code.

use prost::Message;

/// Protocol versions this build speaks, oldest first. A client lists the versions it speaks
/// (`1` or `1,2`); the server answers with the highest it shares, or `UNSUPPORTED_PROTOCOL` and
/// this list.
pub const PROTOCOL_VERSIONS: &[u32] = &[1];
/// Bodies at least this large are zstd-compressed; below it the frame costs more than it saves.
pub const COMPRESS_FROM: usize = 512;
/// A decompressed body may not exceed this (a small compressed body can expand enormously).
pub const MAX_DECOMPRESSED: usize = 32 * 1024 * 1024;
/// Media type of every protocol body.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// Header names; lower case, as HTTP/2 sends them.
pub mod header {
    pub const PROTOCOL: &str = "outpost-protocol";
    pub const DEVICE: &str = "outpost-device";
    pub const TIMESTAMP: &str = "outpost-timestamp";
    pub const NONCE: &str = "outpost-nonce";
    pub const SIGNATURE: &str = "outpost-signature";
    /// On every response, errors included: milliseconds since the Unix epoch (UTC).
    pub const SERVER_TIME: &str = "outpost-server-time";
}

/// Paths of the sync endpoints (all `POST` except hello).
pub mod path {
    pub const HELLO: &str = "/sync/v1/hello";
    pub const ENROL: &str = "/sync/v1/enrol";
    pub const REPLICA: &str = "/sync/v1/replica";
    pub const PUSH: &str = "/sync/v1/push";
    pub const CHANGES: &str = "/sync/v1/changes";
}

/// Why a request was refused. The numbers are the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorCode {
    Unspecified = 0,
    /// The body is not a valid message, or a field has an impossible value.
    Malformed = 1,
    /// None of the client's protocol versions is spoken here; `supported` lists ours.
    UnsupportedProtocol = 2,
    UnknownDevice = 3,
    /// The device was revoked: stop syncing and wipe local data (`wipe` is set).
    DeviceRevoked = 4,
    BadSignature = 5,
    /// The request's timestamp is outside the window; correct the clock offset from
    /// `server_time_ms` and retry.
    ClockSkew = 6,
    /// This nonce was already used: a replayed request.
    Replayed = 7,
    EnrolmentCodeInvalid = 8,
    EnrolmentCodeExpired = 9,
    EnrolmentCodeUsed = 10,
    BodyTooLarge = 11,
    BatchTooLarge = 12,
    /// Reserved: a request naming an area outside the device's assignment. (Records about
    /// beneficiaries outside it are refused per document, as `REJECTED`.)
    OutOfScope = 13,
    /// The cursor is not one this server handed out.
    CursorInvalid = 14,
    Internal = 15,
    /// The endpoint does not exist in this protocol version.
    NotFound = 16,
    /// The agent's account is disabled: stop syncing, keep local data (unsynced records
    /// included) until a supervisor re-enables the account or revokes the device.
    AgentDisabled = 17,
    /// Too much unauthenticated work at once from this address or in this device's name
    /// (HTTP 429): retry after the `Retry-After` header's seconds.
    Busy = 18,
}

/// Every refusal, whatever the endpoint, has this body.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorReply {
    #[prost(enumeration = "ErrorCode", tag = "1")]
    pub code: i32,
    /// For people: shown by the app as is.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Only with `DEVICE_REVOKED`: delete local data.
    #[prost(bool, tag = "3")]
    pub wipe: bool,
    #[prost(uint64, tag = "4")]
    pub server_time_ms: u64,
    /// Only with `UNSUPPORTED_PROTOCOL`.
    #[prost(uint32, repeated, tag = "5")]
    pub supported: Vec<u32>,
}

/// `GET /sync/v1/hello`: unauthenticated, so a device can learn the server's clock and limits
/// before it enrols.
#[derive(Clone, PartialEq, Message)]
pub struct HelloReply {
    #[prost(uint64, tag = "1")]
    pub server_time_ms: u64,
    #[prost(uint32, repeated, tag = "2")]
    pub versions: Vec<u32>,
    #[prost(uint32, tag = "3")]
    pub max_body_bytes: u32,
    #[prost(uint32, tag = "4")]
    pub max_batch_docs: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct EnrolRequest {
    /// The one-time code a supervisor created, as typed or scanned.
    #[prost(string, tag = "1")]
    pub code: String,
    /// Ed25519 public key, 32 bytes; the request is signed with its private half.
    #[prost(bytes = "vec", tag = "2")]
    pub public_key: Vec<u8>,
    /// Free text for supervisors' device lists, e.g. the phone model.
    #[prost(string, tag = "3")]
    pub label: String,
    #[prost(string, tag = "4")]
    pub app_version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct EnrolReply {
    /// 16 bytes (UUID).
    #[prost(bytes = "vec", tag = "1")]
    pub device_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub agent_username: String,
    #[prost(string, tag = "3")]
    pub agent_name: String,
    #[prost(message, optional, tag = "4")]
    pub assignment: Option<Location>,
    /// Ed25519 public key that signs beneficiary cards.
    #[prost(bytes = "vec", tag = "5")]
    pub programme_key: Vec<u8>,
}

/// Replica download: registry rows in the device's assignment changed after `cursor`.
#[derive(Clone, PartialEq, Message)]
pub struct ReplicaRequest {
    /// 0 for a first download; otherwise `next_cursor` of the last page applied.
    #[prost(uint64, tag = "1")]
    pub cursor: u64,
    /// Soft page limit in encoded bytes (before compression); the server caps it.
    #[prost(uint32, tag = "2")]
    pub max_bytes: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReplicaPage {
    #[prost(message, repeated, tag = "1")]
    pub rows: Vec<ReplicaRow>,
    /// Rows that left the assignment: remove them.
    #[prost(message, repeated, tag = "2")]
    pub tombstones: Vec<Tombstone>,
    #[prost(uint64, tag = "3")]
    pub next_cursor: u64,
    /// More pages follow; ask again with `next_cursor`.
    #[prost(bool, tag = "4")]
    pub more: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReplicaRow {
    #[prost(oneof = "Row", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub row: Option<Row>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Row {
    #[prost(message, tag = "1")]
    Location(Location),
    #[prost(message, tag = "2")]
    Plan(Plan),
    #[prost(message, tag = "3")]
    GoodsItem(GoodsItem),
    #[prost(message, tag = "4")]
    Project(Project),
    #[prost(message, tag = "5")]
    Person(Person),
    #[prost(message, tag = "6")]
    Household(Household),
    #[prost(message, tag = "7")]
    Beneficiary(Beneficiary),
    #[prost(message, tag = "8")]
    Entitlement(Entitlement),
    #[prost(message, tag = "9")]
    RevokedCard(RevokedCard),
    #[prost(message, tag = "10")]
    GrievanceCategory(GrievanceCategory),
}

/// Which kind of row a tombstone removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RowKind {
    Unspecified = 0,
    Location = 1,
    Plan = 2,
    GoodsItem = 3,
    Project = 4,
    Person = 5,
    Household = 6,
    Beneficiary = 7,
    Entitlement = 8,
    RevokedCard = 9,
    GrievanceCategory = 10,
}

#[derive(Clone, PartialEq, Message)]
pub struct Tombstone {
    #[prost(enumeration = "RowKind", tag = "1")]
    pub kind: i32,
    /// The row's id (16-byte UUID).
    #[prost(bytes = "vec", tag = "2")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub code: String,
    #[prost(string, tag = "3")]
    pub name: String,
    /// REGION, DISTRICT or VILLAGE.
    #[prost(string, tag = "4")]
    pub level: String,
    /// Codes from the root, `/`-joined.
    #[prost(string, tag = "5")]
    pub path: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Plan {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub code: String,
    #[prost(string, tag = "3")]
    pub name: String,
    /// ISO 4217.
    #[prost(string, tag = "4")]
    pub currency: String,
    /// INDIVIDUAL or GROUP.
    #[prost(string, tag = "5")]
    pub beneficiary_type: String,
    /// CASH, GOODS, CASH_FOR_WORK (as the plan's provisions).
    #[prost(string, repeated, tag = "6")]
    pub provisions: Vec<String>,
    /// Above this, an entitlement needs its own approval; 0 = no limit.
    #[prost(int64, tag = "7")]
    pub limit_per_transaction_minor: i64,
    /// The plan's extra-field schema (JSON), for eligibility verification questions.
    #[prost(string, tag = "8")]
    pub extra_schema_json: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GoodsItem {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub code: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub unit: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Project {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub code: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(bytes = "vec", tag = "4")]
    pub plan_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub location_code: String,
    #[prost(int64, tag = "6")]
    pub daily_wage_minor: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Person {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub external_id: String,
    #[prost(string, tag = "3")]
    pub first_name: String,
    #[prost(string, tag = "4")]
    pub last_name: String,
    /// Days since 1970-01-01 (compact; negative before 1970).
    #[prost(sint32, tag = "5")]
    pub dob_days: i32,
    /// M, F, O or empty.
    #[prost(string, tag = "6")]
    pub sex: String,
    #[prost(string, tag = "7")]
    pub location_code: String,
    /// Empty when not in a household.
    #[prost(bytes = "vec", tag = "8")]
    pub household_id: Vec<u8>,
    /// As openIMIS's individual_role (HEAD, SPOUSE, ...); empty if none.
    #[prost(string, tag = "9")]
    pub relationship: String,
    /// NONE, PRIMARY or SECONDARY: who may collect for the household.
    #[prost(string, tag = "10")]
    pub recipient: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Household {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub code: String,
    #[prost(string, tag = "3")]
    pub location_code: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Beneficiary {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub plan_id: Vec<u8>,
    /// One of these two is set.
    #[prost(bytes = "vec", tag = "3")]
    pub individual_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub household_id: Vec<u8>,
    /// POTENTIAL, ENROLLED, ACTIVE, SUSPENDED, GRADUATED.
    #[prost(string, tag = "5")]
    pub status: String,
    /// Serials of the beneficiary's cards in force.
    #[prost(uint64, repeated, tag = "6")]
    pub card_serials: Vec<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Entitlement {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub beneficiary_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub payroll_id: Vec<u8>,
    #[prost(string, tag = "4")]
    pub cycle_code: String,
    /// The cycle's window, days since 1970-01-01.
    #[prost(sint32, tag = "5")]
    pub cycle_start_days: i32,
    #[prost(sint32, tag = "6")]
    pub cycle_end_days: i32,
    /// Who collects by default (empty: the beneficiary's own person).
    #[prost(bytes = "vec", tag = "7")]
    pub recipient_id: Vec<u8>,
    #[prost(int64, tag = "8")]
    pub amount_minor: i64,
    #[prost(string, tag = "9")]
    pub currency: String,
    #[prost(message, repeated, tag = "10")]
    pub goods: Vec<GoodsLine>,
    /// DUE or AWAITING_APPROVAL.
    #[prost(string, tag = "11")]
    pub status: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GoodsLine {
    #[prost(string, tag = "1")]
    pub item_code: String,
    #[prost(int64, tag = "2")]
    pub quantity: i64,
}

/// A card serial that must no longer be accepted (reissued or withdrawn).
#[derive(Clone, PartialEq, Message)]
pub struct RevokedCard {
    /// The revocation's id, for tombstones; cards themselves are named by serial.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub serial: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub beneficiary_id: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GrievanceCategory {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub code: String,
    #[prost(string, tag = "3")]
    pub name: String,
}

/// Upload of automerge changes, grouped by record document.
#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub docs: Vec<DocChanges>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DocChanges {
    /// The record's UUID (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub doc_id: Vec<u8>,
    /// payout, distribution, timesheet, grievance, verification, contact_update.
    #[prost(string, tag = "2")]
    pub kind: String,
    /// Raw automerge change chunks, in causal order where the sender knows it.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub changes: Vec<Vec<u8>>,
    /// The device's own number for the record (1, 2, 3, ...), so gaps can be listed. 0 in
    /// documents sent by the server.
    #[prost(uint64, tag = "4")]
    pub device_seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DocOutcome {
    Unspecified = 0,
    /// Merged; `heads` are the server's heads for the document.
    Accepted = 1,
    /// Some change depends on changes the server has not got: send every change after the
    /// `heads` given (the server's, possibly empty). Nothing was stored.
    MissingDeps = 2,
    /// A change could not be decoded or fails its checksum. Nothing was merged; the bytes are
    /// kept in quarantine.
    InvalidChange = 3,
    /// The merged record breaks its schema or a rule; kept in quarantine with `reason`.
    Rejected = 4,
}

#[derive(Clone, PartialEq, Message)]
pub struct DocResult {
    #[prost(bytes = "vec", tag = "1")]
    pub doc_id: Vec<u8>,
    #[prost(enumeration = "DocOutcome", tag = "2")]
    pub outcome: i32,
    /// The server's heads for the document (32-byte hashes).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub heads: Vec<Vec<u8>>,
    /// For people, when not accepted.
    #[prost(string, tag = "4")]
    pub reason: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct PushReply {
    /// One per document in the request, in the same order.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<DocResult>,
}

/// Changes to documents the device follows, made elsewhere, after `cursor`.
#[derive(Clone, PartialEq, Message)]
pub struct ChangesRequest {
    #[prost(uint64, tag = "1")]
    pub cursor: u64,
    #[prost(uint32, tag = "2")]
    pub max_bytes: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ChangesReply {
    /// `device_seq` is 0 here.
    #[prost(message, repeated, tag = "1")]
    pub docs: Vec<DocChanges>,
    #[prost(uint64, tag = "2")]
    pub next_cursor: u64,
    #[prost(bool, tag = "3")]
    pub more: bool,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("the body is not a valid {what} message: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("the compressed body is corrupt or expands beyond {MAX_DECOMPRESSED} bytes")]
    Decompress,
    /// From [`decode_within`]: the body (after decompression) is larger than the caller allows.
    #[error("the {what} message is larger than {limit} bytes once decompressed")]
    TooLarge { what: &'static str, limit: usize },
}

/// Encodes a message; returns the bytes and whether they are zstd-compressed (then the HTTP
/// body carries `Content-Encoding: zstd`).
pub fn encode<M: Message>(message: &M) -> (Vec<u8>, bool) {
    let plain = message.encode_to_vec();
    if plain.len() < COMPRESS_FROM {
        return (plain, false);
    }
    match zstd::bulk::compress(&plain, 3) {
        Ok(packed) if packed.len() < plain.len() => (packed, true),
        _ => (plain, false),
    }
}

/// Decodes a body, decompressing first when the sender said it is zstd.
pub fn decode<M: Message + Default>(
    what: &'static str,
    body: &[u8],
    compressed: bool,
) -> Result<M, WireError> {
    let plain;
    let bytes = if compressed {
        plain =
            zstd::bulk::decompress(body, MAX_DECOMPRESSED).map_err(|_| WireError::Decompress)?;
        &plain[..]
    } else {
        body
    };
    M::decode(bytes).map_err(|e| WireError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// Decodes a body of at most `limit` bytes once decompressed, for endpoints whose messages are
/// small (an enrolment): the decompression streams and stops at the limit, so a zstd bomb costs
/// `limit` bytes of memory, not [`MAX_DECOMPRESSED`].
pub fn decode_within<M: Message + Default>(
    what: &'static str,
    body: &[u8],
    compressed: bool,
    limit: usize,
) -> Result<M, WireError> {
    use std::io::Read;
    let too_large = WireError::TooLarge { what, limit };
    let plain;
    let bytes = if compressed {
        let mut decoder =
            zstd::stream::read::Decoder::with_buffer(body).map_err(|_| WireError::Decompress)?;
        // A frame may declare a window (the memory its decoder allocates) far beyond its
        // content: no window above what the limit itself needs is accepted (a frame over the
        // limit is refused as too large, as its content would be).
        decoder
            .window_log_max(window_log_for(limit))
            .map_err(|_| WireError::Decompress)?;
        let mut out = Vec::new();
        decoder
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                // zstd's stable name for a frame whose window is beyond `window_log_max`: the
                // frame is built for more than the limit allows.
                if e.to_string().contains("too much memory") {
                    WireError::TooLarge { what, limit }
                } else {
                    WireError::Decompress
                }
            })?;
        plain = out;
        &plain[..]
    } else {
        body
    };
    if bytes.len() > limit {
        return Err(too_large);
    }
    M::decode(bytes).map_err(|e| WireError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// The smallest zstd window log (from zstd's minimum, 10, to 23, 8 MiB) covering `limit`
/// bytes: a message within the limit never needs a larger window.
fn window_log_for(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(10, 23)
}

/// Picks the version to speak from the client's `outpost-protocol` header, which lists the
/// versions it speaks (`1` or `1,2`).
pub fn negotiate(client: &str) -> Option<u32> {
    client
        .split(',')
        .filter_map(|v| v.trim().parse::<u32>().ok())
        .filter(|v| PROTOCOL_VERSIONS.contains(v))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_within_refuses_a_frame_declaring_a_window_beyond_its_limit() {
        use std::io::Write;
        let message = HelloReply {
            server_time_ms: 7,
            ..Default::default()
        };
        let plain = message.encode_to_vec();
        // A tiny frame whose header asks for a 128 MiB window (streamed: no content size).
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.write_all(&plain).unwrap();
        let wide = encoder.finish().unwrap();
        assert!(wide.len() < 64, "{} bytes", wide.len());
        assert_eq!(
            decode_within::<HelloReply>("HelloReply", &wide, true, 16 * 1024),
            Err(WireError::TooLarge {
                what: "HelloReply",
                limit: 16 * 1024
            })
        );
        // The same message framed as senders frame it decodes.
        let narrow = zstd::bulk::compress(&plain, 3).unwrap();
        let decoded: HelloReply = decode_within("HelloReply", &narrow, true, 16 * 1024).unwrap();
        assert_eq!(decoded, message);
        assert_eq!(window_log_for(16 * 1024), 14);
        assert_eq!(window_log_for(100), 10);
        assert_eq!(window_log_for(32 * 1024 * 1024), 23);
    }

    #[test]
    fn small_bodies_stay_plain_and_large_ones_compress() {
        let small = ReplicaRequest {
            cursor: 7,
            max_bytes: 1000,
        };
        let (bytes, compressed) = encode(&small);
        assert!(!compressed);
        assert_eq!(
            decode::<ReplicaRequest>("replica", &bytes, false).unwrap(),
            small
        );

        let rows = (0..200)
            .map(|i| ReplicaRow {
                row: Some(Row::Household(Household {
                    id: vec![i as u8; 16],
                    code: format!("HH{i:06}"),
                    location_code: "N-MZ-01".into(),
                })),
            })
            .collect();
        let page = ReplicaPage {
            rows,
            next_cursor: 9,
            ..Default::default()
        };
        let (bytes, compressed) = encode(&page);
        assert!(compressed);
        assert!(bytes.len() < page.encoded_len() / 2);
        assert_eq!(decode::<ReplicaPage>("page", &bytes, true).unwrap(), page);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // A newer peer's message with an extra field 99 still reads.
        let mut bytes = ReplicaRequest {
            cursor: 5,
            max_bytes: 10,
        }
        .encode_to_vec();
        prost::encoding::string::encode(99, &"from the future".to_string(), &mut bytes);
        let read: ReplicaRequest = decode("replica", &bytes, false).unwrap();
        assert_eq!(read.cursor, 5);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            decode::<PushRequest>("push", &[0xff, 0xff, 0xff, 0x01], false),
            Err(WireError::Decode { .. })
        ));
        assert_eq!(
            decode::<PushRequest>("push", b"not zstd", true),
            Err(WireError::Decompress)
        );
        // A zstd bomb: 64 MiB of zeros compress to a few KiB but may not expand here.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 * 1024 * 1024], 3).unwrap();
        assert_eq!(
            decode::<PushRequest>("push", &bomb, true),
            Err(WireError::Decompress)
        );
    }

    #[test]
    fn bounded_decoding_stops_at_its_limit() {
        let small = ReplicaRequest {
            cursor: 7,
            max_bytes: 1000,
        };
        let plain = small.encode_to_vec();
        let packed = zstd::bulk::compress(&plain, 3).unwrap();
        assert_eq!(
            decode_within::<ReplicaRequest>("replica", &packed, true, 64).unwrap(),
            small
        );
        assert_eq!(
            decode_within::<ReplicaRequest>("replica", &plain, false, 64).unwrap(),
            small
        );
        let bomb = zstd::bulk::compress(&vec![0u8; 64 * 1024 * 1024], 3).unwrap();
        assert_eq!(
            decode_within::<ReplicaRequest>("replica", &bomb, true, 4096),
            Err(WireError::TooLarge {
                what: "replica",
                limit: 4096
            })
        );
        assert_eq!(
            decode_within::<ReplicaRequest>("replica", &[0u8; 5000], false, 4096),
            Err(WireError::TooLarge {
                what: "replica",
                limit: 4096
            })
        );
        assert_eq!(
            decode_within::<ReplicaRequest>("replica", b"not zstd", true, 4096),
            Err(WireError::Decompress)
        );
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate("1"), Some(1));
        assert_eq!(negotiate("1, 7"), Some(1));
        assert_eq!(negotiate("7"), None);
        assert_eq!(negotiate("garbage"), None);
    }
}
