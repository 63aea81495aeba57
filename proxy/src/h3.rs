//! HTTP/3 on the HTTPS address over UDP (quinn + h3): the same
//! certificates (the rustls resolver over the shared store, so a new or
//! renewed certificate never rebuilds the QUIC endpoint), the same route
//! table and the same [`policy`] as the TCP path. Each request goes to a
//! replica over HTTP/1.1 with both bodies streamed, on a kept connection
//! when one is idle (hyper client connections in a [`ReplicaPool`]); a
//! replica that refuses the connection is skipped for the next one, and a
//! kept connection found closed costs a new one, not an error, as on TCP.
//! Static sites are answered from memory, as on TCP.
//!
//! Its parts, top to bottom: the listener and its connections here →
//! `forward` (a request carried to a replica) → `request` (the request
//! the replica gets) and `answer` (berth's own responses) → `headers`
//! (header map edits) and `front` (what every request needs).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h3::server::RequestResolver;
use http::header::HeaderValue;
use pingora_core::server::ShutdownWatch;
use rustls::server::ResolvesServerCert;

use crate::fronting::HostCertificates;
use crate::policy;
use crate::pool::ReplicaPool;
use crate::{ProxyMetrics, Router};

use forward::forward;
use front::{Front, Outcome};

pub use front::H3Options;

mod answer;
mod forward;
mod front;
mod headers;
mod request;

/// Largest header section a client may send.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Deadline of the QUIC handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle QUIC connections close after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections to replicas kept in all.
const KEPT_CONNECTIONS: usize = 1024;

type H3Conn = h3_quinn::Connection;

/// Why the HTTP/3 listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    /// The TLS configuration is not usable for QUIC.
    #[error("TLS for QUIC: {0}")]
    Tls(String),
    /// The UDP socket could not be used.
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The QUIC endpoint configuration: TLS 1.3 with ALPN `h3` and
/// certificates from `resolver`.
fn quic_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<quinn::ServerConfig, H3Error> {
    let mut tls = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| H3Error::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Serves HTTP/3 on an already bound UDP socket until `shutdown` turns
/// true; connections then get a GOAWAY-free close after the caller's grace.
/// `resolver` gives the handshakes their certificates, and tells which
/// certificate serves a request's host: a host the connection's
/// certificate does not serve gets 421 (`fronting.rs`).
pub async fn serve_h3<R>(
    socket: std::net::UdpSocket,
    resolver: Arc<R>,
    router: Arc<Router>,
    metrics: ProxyMetrics,
    options: H3Options,
    mut shutdown: ShutdownWatch,
) -> Result<(), H3Error>
where
    R: ResolvesServerCert + HostCertificates + 'static,
{
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(quic_config(resolver.clone())?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    let front = Arc::new(Front {
        router,
        certs: resolver,
        metrics,
        options,
        pool: ReplicaPool::new(KEPT_CONNECTIONS),
    });
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
        };
        let Some(incoming) = incoming else { break };
        let (front, shutdown) = (front.clone(), shutdown.clone());
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(conn)) => serve_connection(conn, front, shutdown).await,
                Ok(Err(err)) => tracing::debug!(%peer, %err, "QUIC handshake failed"),
                Err(_) => tracing::debug!(%peer, "QUIC handshake timed out"),
            }
        });
    }
    // Stop taking connections; requests in flight finish within the
    // caller's grace, then the endpoint goes with the process.
    endpoint.set_server_config(None);
    Ok(())
}

async fn serve_connection(conn: quinn::Connection, front: Arc<Front>, mut shutdown: ShutdownWatch) {
    let client = conn.remote_address().ip();
    // The name the client connected for, which every request's host is
    // checked against (`fronting.rs`).
    let sni: Option<Arc<str>> = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.server_name)
        .map(Arc::from);
    let mut h3 = match h3::server::builder()
        .max_field_section_size(MAX_HEADER_BYTES)
        .build::<H3Conn, Bytes>(h3_quinn::Connection::new(conn))
        .await
    {
        Ok(h3) => h3,
        Err(err) => {
            tracing::debug!(%err, "HTTP/3 connection setup failed");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            accepted = h3.accept() => accepted,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    // Let in-flight requests finish, take no new ones.
                    let _ = h3.shutdown(0).await;
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok(Some(resolver)) => {
                let (front, sni) = (front.clone(), sni.clone());
                tokio::spawn(async move { handle(resolver, front, client, sni).await });
            }
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(%err, "HTTP/3 connection ended");
                return;
            }
        }
    }
}

async fn handle(
    resolver: RequestResolver<H3Conn, Bytes>,
    front: Arc<Front>,
    client: IpAddr,
    sni: Option<Arc<str>>,
) {
    let _in_flight = front.metrics.in_flight();
    let (req, stream) = match resolver.resolve_request().await {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(%err, "HTTP/3 request headers");
            return;
        }
    };
    let (mut send, recv) = stream.split();
    let request_id = policy::request_id(
        req.headers()
            .get(policy::X_REQUEST_ID)
            .map(HeaderValue::as_bytes),
    )
    .into_owned();
    let mut outcome = Outcome {
        app: None,
        status: 0,
    };
    if let Err(err) = forward(
        &front,
        req,
        recv,
        &mut send,
        client,
        sni.as_deref(),
        &request_id,
        &mut outcome,
    )
    .await
    {
        tracing::debug!(%err, "HTTP/3 request failed");
    }
    front
        .metrics
        .observe_request(outcome.app.as_ref(), outcome.status);
}
