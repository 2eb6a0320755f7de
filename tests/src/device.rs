//! A simulated field device speaking the sync protocol: its own Ed25519 key, a phone clock
//! that may be wrong, and the offset it learns from the server's clock. Tests use it to play
//! well-behaved and misbehaving devices; the benchmark uses it to load the server.

use std::collections::HashMap;

use automerge::{ActorId, AutoCommit};
use outpost_proto::{
    auth,
    records::Record,
    wire::{
        self, ChangesReply, ChangesRequest, DocChanges, EnrolReply, EnrolRequest, ErrorReply,
        HelloReply, PushReply, PushRequest, ReplicaPage, ReplicaRequest, Row, RowKind, header as h,
    },
};
use prost::Message;
use ring::signature::{Ed25519KeyPair, KeyPair};
use uuid::Uuid;

/// A refusal: the HTTP status and the protocol's error body.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub reply: ErrorReply,
}

impl Refusal {
    pub fn code(&self) -> wire::ErrorCode {
        self.reply.code()
    }
}

/// What a raw call returned.
pub struct Raw {
    pub status: u16,
    pub server_time_ms: Option<u64>,
    pub body: Vec<u8>,
    pub compressed: bool,
}

pub struct SimDevice {
    http: reqwest::Client,
    base: String,
    key: Ed25519KeyPair,
    pub id: Option<Uuid>,
    /// How wrong the phone's clock is (simulated), in ms.
    pub clock_error_ms: i64,
    /// The correction learnt from the server's clock: server − phone.
    pub offset_ms: i64,
    /// Whether to correct with `offset_ms` (a naive device does not).
    pub corrects_clock: bool,
    pub programme_key: Vec<u8>,
    pub actor: ActorId,
    /// Replica rows held, by kind and id.
    pub replica: HashMap<(i32, Vec<u8>), Row>,
    pub replica_cursor: u64,
    pub changes_cursor: u64,
    /// Request and response body bytes as they crossed the wire (compressed when they were).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    next_seq: u64,
}

fn system_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SimDevice {
    pub fn new(http: reqwest::Client, base: &str) -> SimDevice {
        let (pkcs8, _) = auth::generate_key().expect("key");
        SimDevice {
            http,
            base: base.to_owned(),
            key: Ed25519KeyPair::from_pkcs8(&pkcs8).expect("pkcs8"),
            id: None,
            clock_error_ms: 0,
            offset_ms: 0,
            corrects_clock: true,
            programme_key: Vec::new(),
            actor: ActorId::from(Uuid::now_v7().as_bytes().as_slice()),
            replica: HashMap::new(),
            replica_cursor: 0,
            changes_cursor: 0,
            bytes_sent: 0,
            bytes_received: 0,
            next_seq: 1,
        }
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    fn phone_now_ms(&self) -> i64 {
        system_now_ms() + self.clock_error_ms
    }

    /// The timestamp the device puts on a request.
    pub fn timestamp_ms(&self) -> u64 {
        let t = self.phone_now_ms()
            + if self.corrects_clock {
                self.offset_ms
            } else {
                0
            };
        t.max(0) as u64
    }

    fn learn_clock(&mut self, server_time_ms: u64) {
        self.offset_ms = server_time_ms as i64 - self.phone_now_ms();
    }

    /// Sends a body as is, signed unless `sign` is false; `edit` may spoil any header.
    pub async fn raw(
        &mut self,
        path: &str,
        body: Vec<u8>,
        compressed: bool,
        sign: bool,
        edit: impl FnOnce(&mut reqwest::header::HeaderMap),
    ) -> Raw {
        let mut headers = self.headers(path, &body, compressed, sign);
        edit(&mut headers);
        self.send(path, headers, body).await
    }

    /// The headers of a request: protocol, encoding and, when `sign`, the signature.
    pub fn headers(
        &self,
        path: &str,
        body: &[u8],
        compressed: bool,
        sign: bool,
    ) -> reqwest::header::HeaderMap {
        let device = self.id.map(|i| i.to_string()).unwrap_or_default();
        let timestamp = self.timestamp_ms();
        let nonce = auth::nonce();
        let mut headers = reqwest::header::HeaderMap::new();
        let mut put = |k: &'static str, v: String| {
            headers.insert(k, v.parse().expect("header value"));
        };
        put(h::PROTOCOL, "1".into());
        put("content-type", wire::CONTENT_TYPE.into());
        if compressed {
            put("content-encoding", "zstd".into());
        }
        if sign {
            let text = auth::signed_text("POST", path, &device, timestamp, &nonce, body);
            put(h::DEVICE, device);
            put(h::TIMESTAMP, timestamp.to_string());
            put(h::NONCE, nonce);
            put(h::SIGNATURE, auth::sign(&self.key, &text));
        }
        headers
    }

    /// Sends a request prepared with [`headers`](Self::headers).
    pub async fn send(
        &mut self,
        path: &str,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    ) -> Raw {
        self.bytes_sent += body.len() as u64;
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .headers(headers)
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = r.status().as_u16();
        let server_time_ms = r
            .headers()
            .get(h::SERVER_TIME)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let compressed = r
            .headers()
            .get("content-encoding")
            .is_some_and(|v| v == "zstd");
        let body = r.bytes().await.expect("body").to_vec();
        self.bytes_received += body.len() as u64;
        if let Some(t) = server_time_ms {
            self.learn_clock(t);
        }
        Raw {
            status,
            server_time_ms,
            body,
            compressed,
        }
    }

    /// A signed call; on `CLOCK_SKEW` it corrects its clock from the answer and retries once.
    pub async fn call<Req: Message, Resp: Message + Default>(
        &mut self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, Refusal> {
        for attempt in 0..2 {
            let (body, compressed) = wire::encode(request);
            let raw = self.raw(path, body, compressed, true, |_| {}).await;
            if raw.status == 200 {
                return Ok(wire::decode("reply", &raw.body, raw.compressed).expect("a valid reply"));
            }
            let reply: ErrorReply =
                wire::decode("error", &raw.body, raw.compressed).expect("an ErrorReply");
            if reply.code() == wire::ErrorCode::ClockSkew && attempt == 0 && self.corrects_clock {
                continue;
            }
            return Err(Refusal {
                status: raw.status,
                reply,
            });
        }
        unreachable!("two attempts at most")
    }

    /// `GET /sync/v1/hello`; learns the server's clock.
    pub async fn hello(&mut self) -> HelloReply {
        let r = self
            .http
            .get(format!("{}{}", self.base, wire::path::HELLO))
            .send()
            .await
            .expect("hello");
        let bytes = r.bytes().await.unwrap();
        let reply: HelloReply = wire::decode("hello", &bytes, false).expect("hello reply");
        self.learn_clock(reply.server_time_ms);
        reply
    }

    pub async fn enrol(&mut self, code: &str) -> Result<EnrolReply, Refusal> {
        let request = EnrolRequest {
            code: code.to_owned(),
            public_key: self.public_key(),
            label: "simulated phone".into(),
            app_version: "test".into(),
        };
        let reply: EnrolReply = self.call(wire::path::ENROL, &request).await?;
        self.id = Some(Uuid::from_slice(&reply.device_id).expect("16-byte id"));
        self.programme_key = reply.programme_key.clone();
        Ok(reply)
    }

    /// Downloads and applies one replica page from the device's cursor.
    pub async fn replica_page(&mut self, max_bytes: u32) -> Result<ReplicaPage, Refusal> {
        let page: ReplicaPage = self
            .call(
                wire::path::REPLICA,
                &ReplicaRequest {
                    cursor: self.replica_cursor,
                    max_bytes,
                },
            )
            .await?;
        self.apply_page(&page);
        Ok(page)
    }

    /// Downloads replica pages until none is left; returns how many pages it took.
    pub async fn sync_replica(&mut self, max_bytes: u32) -> Result<usize, Refusal> {
        let mut pages = 1;
        while self.replica_page(max_bytes).await?.more {
            pages += 1;
        }
        Ok(pages)
    }

    pub fn apply_page(&mut self, page: &ReplicaPage) {
        for row in &page.rows {
            let row = row.row.clone().expect("a row");
            let (kind, id) = row_key(&row);
            self.replica.insert((kind as i32, id), row);
        }
        for t in &page.tombstones {
            self.replica.remove(&(t.kind, t.id.clone()));
        }
        self.replica_cursor = page.next_cursor;
    }

    /// Rows of one kind held.
    pub fn rows(&self, kind: RowKind) -> impl Iterator<Item = &Row> {
        self.replica
            .iter()
            .filter(move |((k, _), _)| *k == kind as i32)
            .map(|(_, r)| r)
    }

    /// A new record document with this device's actor; returns its id, document and changes.
    pub fn new_record(&mut self, record: &Record) -> (Uuid, AutoCommit, DocChanges) {
        let mut doc = AutoCommit::new().with_actor(self.actor.clone());
        record.write_new(&mut doc).expect("record writes");
        let id = Uuid::now_v7();
        let changes = doc
            .get_changes(&[])
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        let seq = self.next_seq;
        self.next_seq += 1;
        let dc = DocChanges {
            doc_id: id.as_bytes().to_vec(),
            kind: record.kind().as_str().into(),
            changes,
            device_seq: seq,
        };
        (id, doc, dc)
    }

    pub async fn push(&mut self, docs: Vec<DocChanges>) -> Result<PushReply, Refusal> {
        self.call(wire::path::PUSH, &PushRequest { docs }).await
    }

    /// Receives changes made elsewhere, all pages.
    pub async fn pull_changes(&mut self) -> Result<Vec<DocChanges>, Refusal> {
        let mut all = Vec::new();
        loop {
            let reply: ChangesReply = self
                .call(
                    wire::path::CHANGES,
                    &ChangesRequest {
                        cursor: self.changes_cursor,
                        max_bytes: 0,
                    },
                )
                .await?;
            self.changes_cursor = reply.next_cursor;
            all.extend(reply.docs);
            if !reply.more {
                return Ok(all);
            }
        }
    }
}

/// A row's kind and id.
pub fn row_key(row: &Row) -> (RowKind, Vec<u8>) {
    match row {
        Row::Location(r) => (RowKind::Location, r.id.clone()),
        Row::Plan(r) => (RowKind::Plan, r.id.clone()),
        Row::GoodsItem(r) => (RowKind::GoodsItem, r.id.clone()),
        Row::Project(r) => (RowKind::Project, r.id.clone()),
        Row::Person(r) => (RowKind::Person, r.id.clone()),
        Row::Household(r) => (RowKind::Household, r.id.clone()),
        Row::Beneficiary(r) => (RowKind::Beneficiary, r.id.clone()),
        Row::Entitlement(r) => (RowKind::Entitlement, r.id.clone()),
        Row::RevokedCard(r) => (RowKind::RevokedCard, r.id.clone()),
        Row::GrievanceCategory(r) => (RowKind::GrievanceCategory, r.id.clone()),
    }
}
