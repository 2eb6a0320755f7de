//! The sync client: upload pending record changes, download replica pages, receive changes
//! made elsewhere. Every step commits on its own, so a sync cut at any point (cancelled, the
//! connection dropped, the app killed) resumes where it stopped: uploads are idempotent on the
//! server (changes are content-addressed) and each replica page moves the cursor with its rows.

use std::sync::Arc;
use std::time::Duration;

use outpost_proto::{
    auth,
    wire::{
        self, ChangesReply, ChangesRequest, DocChanges, DocOutcome, EnrolReply, EnrolRequest,
        ErrorCode, ErrorReply, HelloReply, PushReply, PushRequest, ReplicaPage, ReplicaRequest,
        header as h,
    },
};
use prost::Message;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rusqlite::Connection;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{self, Enrolment, records as docs, replica};
use crate::types::{SyncPhase, SyncProgressInfo, SyncReport};

/// How long one request may take before the sync gives up (and resumes next time).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Replica page size asked for: small enough to apply in a blink on a slow phone.
const REPLICA_PAGE_BYTES: u32 = 512 * 1024;
/// Upload batches stay under this many body bytes (the server's limit is far above).
const PUSH_BATCH_BYTES: usize = 1024 * 1024;
/// Times a sync waits and asks again when the server says it is busy (`429` or `503` with
/// `BUSY`), each wait twice the last, before it gives up until the next sync.
const BUSY_RETRIES: u32 = 5;
/// The longest single wait, whatever the server's `Retry-After` says.
const BUSY_WAIT_CAP: Duration = Duration::from_secs(120);

/// One device identity talking to one server.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    key: Ed25519KeyPair,
    device: String,
    /// Server clock − phone clock, learnt from every answer.
    pub offset_ms: i64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The `Retry-After` of the last `BUSY` answer.
    pub retry_after: Option<Duration>,
}

/// The protocol's name of an error code, as `proto/README.md` writes it (`CURSOR_INVALID`).
pub fn code_name(code: ErrorCode) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn tls_config(extra_ca_pem: Option<&str>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| Error::invalid(format!("the server CA: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::invalid(format!("the server CA: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal {
            reason: format!("TLS: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Client {
    pub fn new(
        server_url: &str,
        extra_ca_pem: Option<&str>,
        key_pkcs8: &[u8],
        device: Option<Uuid>,
        offset_ms: i64,
    ) -> Result<Client> {
        let base = server_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::invalid(format!(
                "`{server_url}` is not a server address (https://...)"
            )));
        }
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls_config(extra_ca_pem)?)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        let key = Ed25519KeyPair::from_pkcs8(key_pkcs8).map_err(|_| Error::Internal {
            reason: "the device key does not load".into(),
        })?;
        Ok(Client {
            http,
            base,
            key,
            device: device.map(|d| d.to_string()).unwrap_or_default(),
            offset_ms,
            bytes_sent: 0,
            bytes_received: 0,
            retry_after: None,
        })
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// `GET /sync/v1/hello`: the server's clock and limits.
    pub fn hello(&mut self) -> Result<HelloReply> {
        let r = self
            .http
            .get(format!("{}{}", self.base, wire::path::HELLO))
            .send()?;
        let status = r.status();
        let bytes = r.bytes()?;
        self.bytes_received += bytes.len() as u64;
        if !status.is_success() {
            return Err(Error::Network {
                reason: format!(
                    "the server answered {status} to hello: is this an Outpost server?"
                ),
            });
        }
        let reply: HelloReply =
            wire::decode("hello", &bytes, false).map_err(|e| Error::Network {
                reason: format!("not an Outpost server's answer: {e}"),
            })?;
        self.offset_ms = reply.server_time_ms as i64 - now_ms();
        Ok(reply)
    }

    /// A signed call. On `CLOCK_SKEW` it corrects its clock from the answer and retries once.
    pub fn call<Req: Message, Resp: Message + Default>(
        &mut self,
        path: &str,
        request: &Req,
    ) -> Result<Resp> {
        let (body, compressed) = wire::encode(request);
        self.retry_after = None;
        for attempt in 0..2 {
            let timestamp = (now_ms() + self.offset_ms).max(0) as u64;
            let nonce = auth::nonce();
            let text = auth::signed_text("POST", path, &self.device, timestamp, &nonce, &body);
            let mut req = self
                .http
                .post(format!("{}{path}", self.base))
                .header(h::PROTOCOL, "1")
                .header("content-type", wire::CONTENT_TYPE)
                .header(h::DEVICE, &self.device)
                .header(h::TIMESTAMP, timestamp.to_string())
                .header(h::NONCE, nonce)
                .header(h::SIGNATURE, auth::sign(&self.key, &text));
            if compressed {
                req = req.header("content-encoding", "zstd");
            }
            self.bytes_sent += body.len() as u64;
            let r = req.body(body.clone()).send()?;
            let status = r.status();
            if let Some(t) = r
                .headers()
                .get(h::SERVER_TIME)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok())
            {
                self.offset_ms = t - now_ms();
            }
            let zstd = r
                .headers()
                .get("content-encoding")
                .is_some_and(|v| v == "zstd");
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = r.bytes()?;
            self.bytes_received += bytes.len() as u64;
            if status.is_success() {
                return wire::decode("reply", &bytes, zstd).map_err(|e| Error::Network {
                    reason: format!("the server's answer does not decode: {e}"),
                });
            }
            let reply: ErrorReply =
                wire::decode("error", &bytes, zstd).map_err(|_| Error::Network {
                    reason: format!("the server answered {status}"),
                })?;
            if reply.code() == ErrorCode::ClockSkew && attempt == 0 {
                continue;
            }
            // Busy (429, 503) says when to come back; a request that timed out (408) is
            // not retried here: the link, not the server, was too slow.
            self.retry_after = retry_after.filter(|_| {
                reply.code() == ErrorCode::Busy && matches!(status.as_u16(), 429 | 503)
            });
            if reply.wipe {
                return Err(Error::Revoked {
                    reason: reply.message,
                });
            }
            return Err(Error::ServerRefused {
                code: code_name(reply.code()),
                reason: reply.message,
            });
        }
        Err(Error::Network {
            reason: "the server refused the phone's clock twice".into(),
        })
    }

    pub fn enrol(&mut self, code: &str, label: &str) -> Result<EnrolReply> {
        let request = EnrolRequest {
            code: code.trim().to_owned(),
            public_key: self.public_key(),
            label: label.to_owned(),
            app_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        self.call(wire::path::ENROL, &request)
    }
}

/// What the sync needs from the core: the database, a way to stop, and test crash points.
pub trait Host {
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T>;
    /// Fails with `Cancelled` once the app asked to stop.
    fn check_cancelled(&self) -> Result<()>;
    /// Fails if a test asked for a crash here.
    fn crash_point(&self, name: &str) -> Result<()>;
    fn progress(&self, p: SyncProgressInfo);
}

struct Run<'a, H: Host> {
    host: &'a H,
    report: SyncReport,
    /// Time spent waiting on a busy server.
    waited: Duration,
}

impl<H: Host> Run<'_, H> {
    fn tell(&self, client: &Client, phase: SyncPhase, items: u64, total: Option<u64>) {
        self.host.progress(SyncProgressInfo {
            phase,
            items,
            total,
            bytes_sent: self.report.bytes_sent + client.bytes_sent,
            bytes_received: self.report.bytes_received + client.bytes_received,
        });
    }

    fn finish_client(&mut self, client: &Client) {
        self.report.bytes_sent += client.bytes_sent;
        self.report.bytes_received += client.bytes_received;
    }
}

/// A signed call that, when the server is busy, waits as long as its `Retry-After` says
/// (doubled on each new refusal, with up to half again of random jitter, so a fleet told to
/// wait together does not come back together) and asks again; the wait stops as soon as
/// the app cancels. The time waited is told in the sync's warnings.
fn patiently<H: Host, Req: Message, Resp: Message + Default>(
    run: &mut Run<H>,
    client: &mut Client,
    path: &str,
    request: &Req,
) -> Result<Resp> {
    let mut attempt: u32 = 0;
    loop {
        let outcome = client.call(path, request);
        let Some(asked) = client.retry_after.take() else {
            return outcome;
        };
        if outcome.is_ok() || attempt == BUSY_RETRIES {
            return outcome;
        }
        let base = asked
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(BUSY_WAIT_CAP);
        let wait = base + base.mul_f64(jitter() / 2.0);
        let until = std::time::Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            run.host.check_cancelled()?;
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        run.waited += wait;
        attempt += 1;
    }
}

/// A random fraction in [0, 1), for spreading retries.
fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => u32::from_le_bytes(b) as f64 / (u32::MAX as f64 + 1.0),
        Err(_) => 0.5,
    }
}

/// Syncs every enrolment on the phone: earlier agents' unsent records go up with their own
/// identity, then the active one uploads, downloads its replica and receives changes.
pub fn run<H: Host>(host: &H) -> Result<SyncReport> {
    // Earlier agents' enrolments still holding unsent records sync too, even when no agent
    // is enrolled any more (the active one was revoked).
    let enrolments = host.with_conn(|c| store::enrolments(c))?;
    if enrolments.is_empty() {
        return Err(Error::NotEnrolled);
    }
    let mut run = Run {
        host,
        waited: Duration::ZERO,
        report: SyncReport {
            uploaded: 0,
            accepted: 0,
            refused: Vec::new(),
            replica_rows: 0,
            replica_tombstones: 0,
            replica_pages: 0,
            changes_received: 0,
            warnings: Vec::new(),
            bytes_sent: 0,
            bytes_received: 0,
            status: host.with_conn(|c| store::queries::sync_status(c))?,
        },
    };
    for e in enrolments {
        let outcome = sync_enrolment(&mut run, &e);
        match outcome {
            Err(Error::Revoked { reason }) => {
                host.with_conn(|c| store::write(c, |tx| store::wipe_enrolment(tx, e.id)))?;
                if e.active {
                    return Err(Error::Revoked { reason });
                }
                run.report.warnings.push(format!(
                    "{}'s earlier enrolment was revoked and removed: {reason}",
                    e.agent_username
                ));
            }
            // The current agent's sync stands on its own; an earlier agent's trouble is told,
            // and its records wait for the next sync.
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(other) if !e.active => run.report.warnings.push(format!(
                "{}'s unsent records could not be sent: {other}",
                e.agent_username
            )),
            other => other?,
        }
    }
    if !run.waited.is_zero() {
        run.report.warnings.push(format!(
            "the server was busy: this sync waited {:.0} s for it",
            run.waited.as_secs_f64().ceil()
        ));
    }
    run.report.status = host.with_conn(|c| store::queries::sync_status(c))?;
    Ok(run.report)
}

fn sync_enrolment<H: Host>(run: &mut Run<H>, e: &Enrolment) -> Result<()> {
    let host = run.host;
    let mut client = Client::new(
        &e.server_url,
        e.server_ca_pem.as_deref(),
        &e.key_pkcs8,
        Some(e.id),
        e.clock_offset_ms,
    )?;
    run.tell(&client, SyncPhase::Connecting, 0, None);
    host.check_cancelled()?;
    let outcome = (|| {
        let hello = client.hello()?;
        upload(run, &mut client, e, &hello)?;
        if !e.active {
            // Everything of the earlier agent is on the server: its identity can go.
            host.with_conn(|c| store::write(c, |tx| store::forget_if_drained(tx, e.id)))?;
        }
        if e.active {
            download(run, &mut client, e)?;
            receive(run, &mut client, e)?;
            let at = chrono::Local::now().fixed_offset().to_rfc3339();
            host.with_conn(|c| store::write(c, |tx| store::set_last_sync(tx, e.id, &at)))?;
            run.tell(&client, SyncPhase::Done, 0, None);
        }
        Ok(())
    })();
    // What was learnt about the clock is kept even when the sync stopped half way.
    let offset = client.offset_ms;
    host.with_conn(|c| store::write(c, |tx| store::set_clock_offset(tx, e.id, offset)))?;
    run.finish_client(&client);
    outcome
}

fn upload<H: Host>(
    run: &mut Run<H>,
    client: &mut Client,
    e: &Enrolment,
    hello: &HelloReply,
) -> Result<()> {
    let host = run.host;
    let max_docs = (hello.max_batch_docs as usize).clamp(1, 500);
    let total: u64 = host.with_conn(|c| {
        Ok(c.query_row(
            &format!("SELECT count(*) FROM records WHERE {}", docs::UPLOADS),
            rusqlite::params![e.id, e.active],
            |r| r.get::<_, i64>(0),
        )? as u64)
    })?;
    let mut done = 0;
    // Documents not to send again in this sync: refused as undecodable, or already re-sent
    // whole after the server missed their earlier changes.
    let mut skip: Vec<Uuid> = Vec::new();
    let mut resent: Vec<Uuid> = Vec::new();
    run.tell(client, SyncPhase::Uploading, 0, Some(total));
    loop {
        host.check_cancelled()?;
        let pending = host.with_conn(|c| {
            let tx = c.transaction()?;
            docs::pending(&tx, e.id, e.active, max_docs, &skip)
        })?;
        if pending.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        for p in pending {
            let size: usize = p.changes.iter().map(Vec::len).sum();
            if !batch.is_empty() && bytes + size > PUSH_BATCH_BYTES {
                break;
            }
            bytes += size;
            batch.push(p);
        }
        let request = PushRequest {
            docs: batch
                .iter()
                .map(|p| DocChanges {
                    doc_id: p.id.as_bytes().to_vec(),
                    kind: p.kind.as_str().to_owned(),
                    changes: p.changes.clone(),
                    device_seq: p.seq,
                })
                .collect(),
        };
        host.crash_point("push:before-send")?;
        let reply: PushReply = patiently(run, client, wire::path::PUSH, &request)?;
        // The server has committed; a crash here means the next sync sends the same changes
        // again, which the server takes as a no-op.
        host.crash_point("push:before-acknowledge")?;
        let mut refused = Vec::new();
        let mut accepted = 0;
        host.with_conn(|c| {
            store::write(c, |tx| {
                if reply.results.len() != batch.len() {
                    return Err(Error::Network {
                        reason: format!(
                            "the server answered for {} documents of {} sent",
                            reply.results.len(),
                            batch.len()
                        ),
                    });
                }
                for (p, result) in batch.iter().zip(&reply.results) {
                    if result.doc_id != p.id.as_bytes() {
                        return Err(Error::Network {
                            reason: "the server's answer lists other documents than were sent"
                                .into(),
                        });
                    }
                    match result.outcome() {
                        DocOutcome::Accepted => {
                            docs::acknowledge(tx, p.id, &p.heads, None)?;
                            accepted += 1;
                        }
                        DocOutcome::Rejected => {
                            docs::acknowledge(tx, p.id, &p.heads, Some(&result.reason))?;
                            refused.push(format!(
                                "{} {}: {}",
                                p.kind.as_str(),
                                p.seq,
                                result.reason
                            ));
                        }
                        DocOutcome::MissingDeps => {
                            docs::forget_acknowledgement(tx, p.id)?;
                            if resent.contains(&p.id) {
                                skip.push(p.id);
                            } else {
                                resent.push(p.id);
                            }
                        }
                        DocOutcome::InvalidChange | DocOutcome::Unspecified => {
                            tx.execute(
                                "UPDATE records SET refused = ?2 WHERE id = ?1",
                                rusqlite::params![p.id, result.reason],
                            )?;
                            skip.push(p.id);
                        }
                    }
                }
                Ok(())
            })
        })?;
        done += batch.len() as u64;
        run.report.uploaded += batch.len() as u64;
        run.report.accepted += accepted;
        run.report.refused.extend(refused);
        run.tell(client, SyncPhase::Uploading, done, Some(total.max(done)));
    }
}

/// A feed's cursor as last committed (read again each page: the page before moved it).
fn stored_cursor<H: Host>(host: &H, enrolment: Uuid, column: &'static str) -> Result<i64> {
    host.with_conn(|c| {
        Ok(c.query_row(
            &format!("SELECT {column} FROM enrolments WHERE id = ?1"),
            [enrolment],
            |r| r.get(0),
        )?)
    })
}

fn download<H: Host>(run: &mut Run<H>, client: &mut Client, e: &Enrolment) -> Result<()> {
    let host = run.host;
    let mut rows = 0;
    loop {
        host.check_cancelled()?;
        let cursor = stored_cursor(host, e.id, "replica_cursor")?;
        let page: ReplicaPage = match patiently(
            run,
            client,
            wire::path::REPLICA,
            &ReplicaRequest {
                cursor: cursor as u64,
                max_bytes: REPLICA_PAGE_BYTES,
            },
        ) {
            Err(Error::ServerRefused { code, .. })
                if code == code_name(ErrorCode::CursorInvalid) && cursor > 0 =>
            {
                // The server was restored from a backup older than this phone's copy: start
                // the replica again (records are untouched).
                host.with_conn(|c| store::write(c, |tx| store::reset_replica(tx, e.id)))?;
                continue;
            }
            other => other?,
        };
        host.crash_point("replica:before-apply")?;
        host.with_conn(|c| {
            store::write(c, |tx| {
                replica::apply_page(tx, e.id, &page)?;
                host.crash_point("replica:inside-apply")
            })
        })?;
        rows += page.rows.len() as u64;
        run.report.replica_rows += page.rows.len() as u64;
        run.report.replica_tombstones += page.tombstones.len() as u64;
        run.report.replica_pages += 1;
        run.tell(client, SyncPhase::Downloading, rows, None);
        if !page.more {
            return Ok(());
        }
    }
}

fn receive<H: Host>(run: &mut Run<H>, client: &mut Client, e: &Enrolment) -> Result<()> {
    let host = run.host;
    let actor = host.with_conn(|c| store::actor(c))?;
    let mut received = 0;
    loop {
        host.check_cancelled()?;
        let cursor = stored_cursor(host, e.id, "changes_cursor")?;
        let reply: ChangesReply = match patiently(
            run,
            client,
            wire::path::CHANGES,
            &ChangesRequest {
                cursor: cursor as u64,
                max_bytes: 0,
            },
        ) {
            Err(Error::ServerRefused { code, .. })
                if code == code_name(ErrorCode::CursorInvalid) && cursor > 0 =>
            {
                // A server restored from an older backup: receive everything again (changes
                // already held are no-ops in automerge).
                host.with_conn(|c| {
                    Ok(c.execute(
                        "UPDATE enrolments SET changes_cursor = 0 WHERE id = ?1",
                        [e.id],
                    )?)
                })?;
                continue;
            }
            other => other?,
        };
        host.crash_point("changes:before-apply")?;
        let now = chrono::Local::now().fixed_offset();
        host.with_conn(|c| {
            store::write(c, |tx| {
                for dc in &reply.docs {
                    docs::apply_remote(tx, e.id, &actor, dc, &now)?;
                }
                tx.execute(
                    "UPDATE enrolments SET changes_cursor = ?2 WHERE id = ?1",
                    rusqlite::params![e.id, reply.next_cursor as i64],
                )?;
                Ok(())
            })
        })?;
        received += reply.docs.len() as u64;
        run.report.changes_received += reply.docs.len() as u64;
        run.tell(client, SyncPhase::Receiving, received, None);
        if !reply.more {
            return Ok(());
        }
    }
}
