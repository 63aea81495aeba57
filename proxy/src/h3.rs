//! HTTP/3 on the HTTPS address over UDP (quinn + h3): the same
//! certificates (the rustls resolver over the shared store, so a new or
//! renewed certificate never rebuilds the QUIC endpoint), the same route
//! table and the same [`policy`] as the TCP path. Each request goes to a
//! replica over HTTP/1.1 with both bodies streamed, on a kept connection
//! when one is idle (hyper client connections in a [`ReplicaPool`]); a
//! replica that refuses the connection is skipped for the next one, and a
//! kept connection found closed costs a new one, not an error, as on TCP.
//! Static sites are answered from memory, as on TCP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use h3::server::{RequestResolver, RequestStream};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use pingora_core::server::ShutdownWatch;
use rustls::server::ResolvesServerCert;

use crate::attempt::{self, Attempts, Failure};
use crate::fronting::{self, HostCertificates};
use crate::pages;
use crate::path;
use crate::policy::{self, Decision, ErrorPage};
use crate::pool::{self, ReplicaPool};
use crate::{ProxyMetrics, Route, Router, SiteResponse, UpstreamGuard};

/// Largest header section a client may send.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Deadline of the QUIC handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle QUIC connections close after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the client's next piece of a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the client to take a piece of the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// A kept connection that fails this soon after a body-less idempotent
/// request was written to it was closed by the replica before it read the
/// request (not while it worked on it): the request goes again.
const RESEND_WINDOW: Duration = Duration::from_secs(1);
/// Idle connections to replicas kept in all.
const KEPT_CONNECTIONS: usize = 1024;

type H3Conn = h3_quinn::Connection;
type SendHalf =
    RequestStream<<h3_quinn::BidiStream<Bytes> as h3::quic::BidiStream<Bytes>>::SendStream, Bytes>;
type RecvHalf =
    RequestStream<<h3_quinn::BidiStream<Bytes> as h3::quic::BidiStream<Bytes>>::RecvStream, Bytes>;
type UpstreamBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
/// One HTTP/1.1 client connection to a replica.
type Sender = hyper::client::conn::http1::SendRequest<UpstreamBody>;

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

/// Settings of the HTTP/3 listener.
#[derive(Debug, Clone)]
pub struct H3Options {
    /// Deadline to connect to one replica before trying the next.
    pub connect_timeout: Duration,
    /// Longest wait for a replica's next bytes: its response head, then
    /// each piece of its body ([`crate::REPLICA_READ_TIMEOUT`] by default).
    pub read_timeout: Duration,
}

/// What every HTTP/3 request needs.
struct Front {
    router: Arc<Router>,
    /// The served certificates by name, for the domain-fronting check.
    certs: Arc<dyn HostCertificates>,
    metrics: ProxyMetrics,
    options: H3Options,
    pool: ReplicaPool<Sender>,
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

/// What the metrics record of one request.
struct Outcome {
    app: Option<Arc<str>>,
    status: u16,
}

/// A replica, connected, and the guard that counts the request on it.
struct Connected {
    addr: SocketAddr,
    sender: Sender,
    /// Taken from the pool: it may turn out closed.
    reused: bool,
    _guard: UpstreamGuard,
}

/// Opens an HTTP/1.1 connection to a replica within `timeout`.
async fn dial(addr: SocketAddr, timeout: Duration) -> std::io::Result<Sender> {
    let tcp = pool::dial(addr, timeout).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    // Ends when the sender is dropped (or the replica closes).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Connects to the replica [`Attempts`] hands out next, trying the next
/// one on failure as it decides. `Err` is the failure to answer.
async fn connect(
    front: &Front,
    attempts: &mut Attempts,
    host: Option<&str>,
    path: &str,
) -> Result<Connected, Failure> {
    loop {
        let (addr, guard) = attempts.next(&front.router, host, path)?;
        let connect_timeout = front.options.connect_timeout;
        let dialed = || dial(addr, connect_timeout);
        if let Some((sender, reused)) = attempts.connect(&front.pool, addr, false, dialed).await {
            return Ok(Connected {
                addr,
                sender,
                reused,
                _guard: guard,
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    front: &Front,
    mut req: Request<()>,
    recv: RecvHalf,
    send: &mut SendHalf,
    client: IpAddr,
    sni: Option<&str>,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    // Routing, prefix stripping and the replica see the path without dot
    // segments (`path.rs`).
    if let Some(uri) = path::normalize_uri(req.uri()) {
        *req.uri_mut() = uri;
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    let host_field = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let host = policy::request_host(authority, host_field).map(str::to_string);
    let head = req.method() == http::Method::HEAD;
    let answer = Answer { request_id, head };
    if fronting::misdirected(Some(&*front.certs), sni, host.as_deref()) {
        return page(send, policy::MISDIRECTED, answer, outcome).await;
    }
    let path = req.uri().path().to_string();
    let route = {
        let table = front.router.load();
        match policy::decide(&table, host.as_deref(), &path) {
            Decision::Forward(route) => route.clone(),
            Decision::Static(route, site) => {
                outcome.app = Some(route.backend().app().clone());
                let site_path = policy::site_path(route, &path);
                let response = site.respond(req.method(), &site_path, req.headers());
                let hsts = policy::hsts(route, true);
                drop(table);
                return send_site(send, response, hsts, request_id, outcome).await;
            }
            Decision::NoReplica(route) => {
                outcome.app = Some(route.backend().app().clone());
                return page(send, policy::NO_REPLICA, answer, outcome).await;
            }
            Decision::Stopped(route) => {
                outcome.app = Some(route.backend().app().clone());
                return page(send, policy::STOPPED, answer, outcome).await;
            }
            Decision::UnknownHost => return page(send, policy::NOT_FOUND, answer, outcome).await,
        }
    };
    outcome.app = Some(route.backend().app().clone());
    let mut attempts = Attempts::new(route);
    let connected = connect(front, &mut attempts, host.as_deref(), &path).await;
    let route = attempts.route().clone();
    outcome.app = Some(route.backend().app().clone());
    let connected = match connected {
        Ok(connected) => connected,
        Err(failure) => return fail(send, failure, answer, outcome).await,
    };
    let started = Instant::now();
    let Connected {
        addr,
        mut sender,
        mut reused,
        _guard,
    } = connected;
    let (request, uploaded) =
        upstream_request(&route, req, recv, host.as_deref(), client, request_id);
    let mut spare = if reused { spare(&request) } else { None };
    let mut pending = Some(request);
    let response = loop {
        let Some(request) = pending.take() else {
            let failure = Failure::Replica { timed_out: false };
            return fail(send, failure, answer, outcome).await;
        };
        // A kept connection is idle: ready at once, unless it closed.
        let ready = tokio::time::timeout(front.options.connect_timeout, sender.ready()).await;
        let err = if !matches!(ready, Ok(Ok(()))) {
            pending = Some(request);
            match ready {
                Ok(Err(err)) => err.to_string(),
                _ => "the connection was not ready".to_string(),
            }
        } else {
            // The deadline for the answer runs from the end of the upload.
            let mut upload = uploaded.clone();
            let read_timeout = front.options.read_timeout;
            let deadline = async move {
                let _ = upload.wait_for(|done| *done).await;
                tokio::time::sleep(read_timeout).await;
            };
            let sent_at = Instant::now();
            tokio::select! {
                sent = sender.try_send_request(request) => match sent {
                    Ok(response) => break response,
                    Err(mut err) => {
                        pending = err.take_message();
                        let early = sent_at.elapsed() < RESEND_WINDOW;
                        if pending.is_none() && early && err.error().is_incomplete_message() {
                            pending = spare.take();
                        }
                        err.into_error().to_string()
                    }
                },
                () = deadline => {
                    let failure = Failure::Replica { timed_out: true };
                    return fail(send, failure, answer, outcome).await;
                }
            }
        };
        // A kept connection closed meanwhile took nothing of the request
        // (hyper hands it back): it goes once more, on a new connection.
        tracing::debug!(%err, "HTTP/3: the replica failed");
        if let Err(failure) = attempts.replica_failed(reused, pending.is_some(), false) {
            return fail(send, failure, answer, outcome).await;
        }
        reused = false;
        match dial(addr, front.options.connect_timeout).await {
            Ok(fresh) => sender = fresh,
            Err(e) => {
                let failure = Failure::Unreachable {
                    timed_out: attempt::timed_out(&e),
                };
                return fail(send, failure, answer, outcome).await;
            }
        }
    };
    front
        .metrics
        .observe_upstream(route.backend().app(), started.elapsed().as_secs_f64());
    let (parts, mut body) = response.into_parts();
    let mut head = Response::builder()
        .status(parts.status)
        .body(())
        .unwrap_or_default();
    *head.headers_mut() = parts.headers;
    strip_hop_by_hop(head.headers_mut());
    set(head.headers_mut(), policy::X_REQUEST_ID, request_id);
    if let Some(value) = policy::hsts(&route, true) {
        set(
            head.headers_mut(),
            header::STRICT_TRANSPORT_SECURITY.as_str(),
            value,
        );
    }
    outcome.status = parts.status.as_u16();
    send.send_response(head).await?;
    loop {
        let frame = match tokio::time::timeout(front.options.read_timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            // The replica broke off mid-body (or stalled): reset the
            // stream so the client sees a failure, not a short success.
            Ok(Some(Err(_))) | Err(_) => {
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Ok(());
            }
        };
        let written = match frame.into_data() {
            Ok(data) => tokio::time::timeout(WRITE_TIMEOUT, send.send_data(data)).await,
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => {
                    tokio::time::timeout(WRITE_TIMEOUT, send.send_trailers(trailers)).await
                }
                Err(_) => Ok(Ok(())),
            },
        };
        match written {
            Ok(result) => result?,
            // A client that takes nothing holds no replica for long.
            Err(_) => {
                send.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
                return Ok(());
            }
        }
    }
    // The whole response came, and the whole request went: the connection
    // can serve the next request (hyper closes it instead when the replica
    // said `Connection: close`). A connection still carrying an upload is
    // busy and is not kept.
    drop(body);
    if *uploaded.borrow() {
        front.pool.put(addr, sender, false);
    }
    send.finish().await
}

/// The request to the replica: path rewritten by the route, hop-by-hop and
/// untrusted forwarding headers dropped, berth's forwarding headers set,
/// the body streamed from the client as it arrives. The receiver turns
/// true once the whole body was handed on (at once without a body).
fn upstream_request(
    route: &Route,
    req: Request<()>,
    mut recv: RecvHalf,
    host: Option<&str>,
    client: IpAddr,
    request_id: &str,
) -> (Request<UpstreamBody>, tokio::sync::watch::Receiver<bool>) {
    let (parts, ()) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = policy::upstream_path(route, pq).into_owned();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    strip_unforwardable(&mut headers);
    let fwd = policy::forwarded(Some(client), true, host);
    if let Some(ip) = &fwd.for_ip {
        set(&mut headers, policy::X_FORWARDED_FOR, ip);
    }
    set(&mut headers, policy::X_FORWARDED_PROTO, fwd.proto);
    if let Some(h) = fwd.host {
        set(&mut headers, policy::X_FORWARDED_HOST, h);
        set(&mut headers, header::HOST.as_str(), h);
    }
    set(&mut headers, policy::X_REQUEST_ID, request_id);
    let bodiless = headers.get(header::CONTENT_LENGTH).is_none()
        && matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::DELETE | http::Method::OPTIONS
        );
    let (done, uploaded) = tokio::sync::watch::channel(bodiless);
    let body: UpstreamBody = if bodiless {
        empty_body()
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        tokio::spawn(async move {
            loop {
                let next = tokio::time::timeout(BODY_TIMEOUT, recv.recv_data()).await;
                let frame = match next {
                    Ok(Ok(Some(mut chunk))) => {
                        Ok(Frame::data(chunk.copy_to_bytes(chunk.remaining())))
                    }
                    Ok(Ok(None)) => {
                        let trailers = tokio::time::timeout(BODY_TIMEOUT, recv.recv_trailers());
                        match trailers.await {
                            Ok(Ok(Some(trailers))) => Ok(Frame::trailers(trailers)),
                            Ok(Ok(None)) => {
                                let _ = done.send(true);
                                return;
                            }
                            Ok(Err(err)) => Err(std::io::Error::other(err.to_string())),
                            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                        }
                    }
                    Ok(Err(err)) => Err(std::io::Error::other(err.to_string())),
                    Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                };
                let last = frame.as_ref().map_or(true, |f| f.is_trailers());
                let trailers = frame.is_ok() && last;
                let sent = tx.send(frame).await.is_ok();
                if sent && trailers {
                    let _ = done.send(true);
                }
                if !sent || last {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        StreamBody::new(stream.boxed()).boxed_unsync()
    };
    let mut out = Request::builder()
        .method(parts.method)
        .uri(path)
        .body(body)
        .unwrap_or_else(|_| Request::new(empty_body()));
    *out.headers_mut() = headers;
    (out, uploaded)
}

fn empty_body() -> UpstreamBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A copy of a body-less request, to send again on a new connection when
/// a kept one turns out closed after it was written and before any answer
/// (as the TCP path retries such requests once).
fn spare(request: &Request<UpstreamBody>) -> Option<Request<UpstreamBody>> {
    use http_body::Body as _;
    if !request.method().is_idempotent() || !request.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(empty_body());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// Sends a static site's response, with the headers the edge adds to
/// every response (request id, and HSTS when the route asks for it).
async fn send_site(
    send: &mut SendHalf,
    site: SiteResponse,
    hsts: Option<&str>,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    let mut head = Response::new(());
    *head.status_mut() = site.status;
    *head.headers_mut() = site.headers;
    set(head.headers_mut(), policy::X_REQUEST_ID, request_id);
    if let Some(value) = hsts {
        set(
            head.headers_mut(),
            header::STRICT_TRANSPORT_SECURITY.as_str(),
            value,
        );
    }
    outcome.status = site.status.as_u16();
    send.send_response(head).await?;
    if !site.body.is_empty() {
        send.send_data(site.body).await?;
    }
    send.finish().await
}

/// What berth's own answer to a request depends on.
#[derive(Clone, Copy)]
struct Answer<'a> {
    request_id: &'a str,
    /// The request is a HEAD: headers only.
    head: bool,
}

/// Answers a failure with its page, if the client gets one.
async fn fail(
    send: &mut SendHalf,
    failure: Failure,
    answer: Answer<'_>,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    match failure.page() {
        Some(p) => page(send, p, answer, outcome).await,
        None => Ok(()),
    }
}

/// Sends one of berth's own pages, as [`pages`] renders it.
async fn page(
    send: &mut SendHalf,
    page: ErrorPage,
    answer: Answer<'_>,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    let page = pages::render(page, answer.head, answer.request_id);
    let mut head = Response::new(());
    *head.status_mut() = page.status;
    let h = head.headers_mut();
    for (name, value) in page.fields() {
        set(h, name, value);
    }
    set(
        h,
        header::CONTENT_LENGTH.as_str(),
        itoa::Buffer::new().format(page.length),
    );
    outcome.status = page.status.as_u16();
    send.send_response(head).await?;
    if !page.body.is_empty() {
        send.send_data(Bytes::from_static(page.body)).await?;
    }
    send.finish().await
}

fn set(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

/// Removes the client's headers that [`policy::forwardable`] keeps from a
/// replica (berth's own forwarding ones are set afresh after).
fn strip_unforwardable(headers: &mut HeaderMap) {
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| !policy::forwardable(name.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
}

/// Removes connection-specific headers (RFC 9110 §7.6.1), including those
/// the `Connection` header names; HTTP/3 forbids them.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(policy::connection_names)
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in policy::HOP_BY_HOP_HEADERS {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}
