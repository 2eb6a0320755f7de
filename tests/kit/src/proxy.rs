//! A loopback TCP proxy that misbehaves on demand, standing between a device and the server:
//! it cuts a connection after so many bytes of an upload (`POST /sync/v1/push`) or of its
//! answer, swallows the answer once the upload has reached the server (the server committed,
//! the phone never hears), or slows every chunk down so a process can be killed mid-sync.
//! Faults count from the upload's first byte, whatever came before on the same connection
//! (clients reuse connections: the hello goes first).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the proxy does to the next connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes everything.
    None,
    /// Closes the connection after this many bytes of an upload.
    CutRequest(usize),
    /// Closes the connection after this many bytes of an upload's answer.
    CutResponse(usize),
    /// Forwards the upload, then closes without a byte of its answer.
    DropResponse,
    /// Waits this long before passing each chunk, either way.
    Slow(Duration),
}

pub struct Proxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    upstream: Arc<Mutex<SocketAddr>>,
    /// Connections cut by a fault so far.
    cuts: Arc<AtomicU64>,
    /// Uploads that started through the proxy so far.
    uploads: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let fault = Arc::new(Mutex::new(Fault::None));
        let upstream = Arc::new(Mutex::new(upstream));
        let cuts = Arc::new(AtomicU64::new(0));
        let uploads = Arc::new(AtomicU64::new(0));
        let (f, u, c, up) = (
            fault.clone(),
            upstream.clone(),
            cuts.clone(),
            uploads.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let fault = *f.lock().expect("fault");
                let to = *u.lock().expect("upstream");
                let (cuts, uploads) = (c.clone(), up.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(to).await
                        && relay(client, server, fault, uploads).await
                    {
                        cuts.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        Proxy {
            addr,
            fault,
            upstream,
            cuts,
            uploads,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies to connections opened from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("fault") = fault;
    }

    /// Points at a restarted server.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().expect("upstream") = upstream;
    }

    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }

    /// Waits (a little) until more than `seen` connections were cut: the proxy counts a cut
    /// when it has closed both sides, which can be just after the phone gave up.
    pub async fn cut_after(&self, seen: u64) -> bool {
        for _ in 0..500 {
            if self.cuts() > seen {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        false
    }

    pub fn uploads(&self) -> u64 {
        self.uploads.load(Ordering::SeqCst)
    }

    /// Waits until more than `seen` uploads have started (so a kill lands mid-upload).
    pub async fn upload_started(&self, seen: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.uploads() <= seen {
            assert!(std::time::Instant::now() < deadline, "no upload started");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The request line that arms the faults.
const UPLOAD: &[u8] = b"POST /sync/v1/push";

/// Copies both ways under `fault`; true when the fault cut the connection.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    fault: Fault,
    uploads: Arc<AtomicU64>,
) -> bool {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (request_budget, response_budget, delay) = match fault {
        Fault::None => (usize::MAX, usize::MAX, None),
        Fault::CutRequest(n) => (n, usize::MAX, None),
        Fault::CutResponse(n) => (usize::MAX, n, None),
        Fault::DropResponse => (usize::MAX, 0, None),
        Fault::Slow(d) => (usize::MAX, usize::MAX, Some(d)),
    };
    // Set once an upload starts: from then on the budgets count (HTTP/1.1 answers come in
    // request order, so the next answer bytes are the upload's).
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let armed_up = armed.clone();
    let mut up = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let chunk = &buf[..n];
            if !armed_up.load(Ordering::SeqCst) {
                match chunk.windows(UPLOAD.len()).position(|w| w == UPLOAD) {
                    Some(at) => {
                        // Bytes before the upload pass untouched.
                        if sw.write_all(&chunk[..at]).await.is_err() {
                            return false;
                        }
                        armed_up.store(true, Ordering::SeqCst);
                        uploads.fetch_add(1, Ordering::SeqCst);
                        let rest = &chunk[at..];
                        let allowed = rest.len().min(request_budget);
                        if sw.write_all(&rest[..allowed]).await.is_err() {
                            return false;
                        }
                        sent = allowed;
                        if allowed < rest.len() || sent == request_budget {
                            return true;
                        }
                        continue;
                    }
                    None => {
                        if sw.write_all(chunk).await.is_err() {
                            return false;
                        }
                        continue;
                    }
                }
            }
            let allowed = n.min(request_budget - sent);
            if sw.write_all(&chunk[..allowed]).await.is_err() {
                return false;
            }
            sent += allowed;
            if sent >= request_budget {
                return true;
            }
        }
    });
    let mut down = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if !armed.load(Ordering::SeqCst) {
                if cw.write_all(&buf[..n]).await.is_err() {
                    return false;
                }
                continue;
            }
            let allowed = n.min(response_budget - sent);
            if cw.write_all(&buf[..allowed]).await.is_err() {
                return false;
            }
            sent += allowed;
            if allowed < n || sent >= response_budget {
                // The server answered (so it has done the work); the device gets no more.
                let _ = cw.shutdown().await;
                return true;
            }
        }
    });
    // A cut on either side ends the whole connection.
    tokio::select! {
        r = &mut up => {
            if r.unwrap_or(false) {
                down.abort();
                return true;
            }
            // The device finished sending; the answer still comes (or is cut).
            down.await.unwrap_or(false)
        }
        r = &mut down => {
            up.abort();
            r.unwrap_or(false)
        }
    }
}
