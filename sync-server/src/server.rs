//! Serving the router over plain HTTP or HTTPS (rustls with ring), shared by the binary and by
//! tests and benchmarks that run the server in-process on a loopback port.

use std::{path::Path, sync::Arc};

use axum_server::{Handle, tls_rustls::RustlsConfig};

use crate::{Error, Result, app::AppState};

/// The URL clients use for a bound listener.
pub fn base_url(listener: &std::net::TcpListener, tls: bool) -> Result<String> {
    let addr = listener.local_addr()?;
    Ok(format!("{}://{addr}", if tls { "https" } else { "http" }))
}

/// Serves until `handle` is told to shut down.
pub async fn run(
    state: AppState,
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    handle: Handle<std::net::SocketAddr>,
) -> Result<()> {
    listener.set_nonblocking(true)?;
    let state = AppState {
        secure_cookies: tls.is_some(),
        ..state
    };
    // A connection that does not send its request head in time is closed, so idle
    // connections hold nothing (the rest of `app::limits::Timeouts` applies per request).
    let header_timeout = state.limits.timeouts.header;
    let app = crate::router::router(state).layer(tower_http::trace::TraceLayer::new_for_http());
    // The client's address reaches handlers (log-in throttles) and `app::limits` as
    // `ConnectInfo`.
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        Some(config) => {
            let mut server = axum_server::from_tcp_rustls(listener, config)?.handle(handle);
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_timeout);
            server.serve(service).await?
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.handle(handle);
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_timeout);
            server.serve(service).await?
        }
    }
    Ok(())
}

/// rustls with ring, from PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<axum_server::tls_rustls::RustlsConfig> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let bad = |what: &Path, e: rustls_pki_types::pem::Error| {
        Error::Invalid(format!("{}: not a usable PEM file: {e}", what.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Internal(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| Error::Invalid(format!("the TLS certificate and key do not fit: {e}")))?;
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}
