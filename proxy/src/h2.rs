//! The h2 front end: a request as pingora-core's h2 codec decoded it,
//! planned by the listener's [`EdgeProxy`], carried to a replica over
//! pooled HTTP/1.1 with pingora-core's client codec, attempts and failures
//! as `attempt.rs` decides, berth's pages as `pages.rs` renders them.
//!
//! HTTP/1.1 clients take the edge's own codec in `h1.rs` instead: issue
//! #6 measured pingora's HTTP/1 session code (header maps kept twice, a
//! 64 KB body buffer and a new session per request) at twice nginx's CPU
//! per small request.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue};
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::v1::client::HttpSession as ReplicaSession;
use pingora_core::protocols::http::{HttpTask, ServerSession};
use pingora_core::server::ShutdownWatch;
use pingora_error::{Error, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use tokio_util::sync::CancellationToken;

use crate::attempt::{self, Attempts, Failure};
use crate::edge::{EdgeProxy, Plan};
use crate::pages;
use crate::path;
use crate::policy::{self, ErrorPage};
use crate::policy::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::pool;
use crate::{Route, SiteResponse, UpstreamGuard};

/// One h2 client connection: the edge, and the name its TLS handshake
/// asked for (SNI), which the host of every stream is checked against.
pub(crate) struct H2Connection {
    pub(crate) edge: Arc<EdgeProxy>,
    pub(crate) sni: Option<String>,
    /// Cancels the client connection: a tunnel registers it with its
    /// replica, whose drain deadline may then end the connection.
    pub(crate) cut: CancellationToken,
}

#[async_trait]
impl HttpServerApp for H2Connection {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // An idle keep-alive connection ends at shutdown; a request already
        // being read is finished.
        let mut stop = shutdown.clone();
        let stopping = async {
            // A dropped sender never asks to stop.
            if stop.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let read = tokio::select! {
            biased;
            read = session.read_request() => read,
            () = stopping => return None,
        };
        match read {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                    bad_request(&mut session).await;
                }
                tracing::debug!(err = %e, "unreadable request");
                session.shutdown().await;
                return None;
            }
        }
        if *shutdown.borrow() {
            // Stop the client from reusing the connection.
            session.set_keepalive(None);
        }
        let edge = &self.edge;
        let _in_flight = edge.metrics().in_flight();
        let mut exchange = Exchange {
            edge,
            sni: self.sni.as_deref(),
            cut: &self.cut,
            app: None,
            reusable: true,
        };
        exchange.run(&mut session).await;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        edge.metrics()
            .observe_request(exchange.app.as_ref(), status);
        if !exchange.reusable {
            session.shutdown().await;
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        let stream = session.finish().await.ok().flatten()?;
        Some(ReusedHttpStream::from_reusable_stream(stream, settings))
    }
}

/// One request's walk through the edge.
struct Exchange<'e> {
    edge: &'e EdgeProxy,
    /// The name the connection's TLS handshake asked for.
    sni: Option<&'e str>,
    /// Cancels the client connection (`H2Connection::cut`).
    cut: &'e CancellationToken,
    /// The app the request went to, for metrics.
    app: Option<Arc<str>>,
    /// Whether the client connection may carry another request.
    reusable: bool,
}

impl Exchange<'_> {
    async fn run(&mut self, session: &mut ServerSession) {
        let edge = self.edge;
        // Routing, prefix stripping and the replica see the path without
        // dot segments (`path.rs`).
        if let Some(uri) = path::normalize_uri(&session.req_header().uri) {
            session.req_header_mut().set_uri(uri);
        }
        let req = session.req_header();
        let request_id_value = request_id(req);
        let request_id = request_id_value.to_str().unwrap_or_default();
        let path_and_query = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let host = request_host(req);
        let (plan, app) = edge.plan(self.sni, host, req.uri.path(), path_and_query);
        self.app = app;
        let r = match plan {
            Plan::Forward(route) => {
                if let Err(failure) = self.forward(session, route, &request_id_value).await {
                    self.fail(session, failure, request_id).await;
                }
                return;
            }
            Plan::Challenge(key_auth) => {
                let body = Bytes::from(key_auth);
                answer(session, 200, "text/plain", body, None, request_id).await
            }
            Plan::Redirect(to) => {
                let body = Bytes::from_static(b"Moved to HTTPS\n");
                answer(session, 308, "text/plain", body, Some(&to), request_id).await
            }
            Plan::Page(p) => page(session, p, request_id).await,
            Plan::Site { site, path, hsts } => {
                let req = session.req_header();
                let response = site.respond(&req.method, &path, &req.headers);
                let extra = [
                    (X_REQUEST_ID, Some(request_id)),
                    (header::STRICT_TRANSPORT_SECURITY.as_str(), hsts),
                    (header::ALT_SVC.as_str(), edge.alt_svc()),
                ];
                send_site(session, response, &extra).await
            }
        };
        self.settle(r);
    }

    /// Records the end of an answer berth wrote itself.
    fn settle(&mut self, written: pingora_error::Result<()>) {
        if let Err(e) = written {
            tracing::debug!(err = %e, "could not answer the client");
            self.reusable = false;
        }
    }

    /// Answers a failure with an error page when nothing was sent yet;
    /// otherwise the client connection is cut.
    async fn fail(&mut self, session: &mut ServerSession, failure: Failure, request_id: &str) {
        // A failed request leaves its client connection in an unknown state.
        self.reusable = false;
        if let Some(p) = failure.page() {
            if session.response_written().is_none() {
                let r = page(session, p, request_id).await;
                self.settle(r);
            }
        }
    }

    /// Forwards the request along `route`, replica after replica as
    /// [`Attempts`] hands them out.
    async fn forward(
        &mut self,
        session: &mut ServerSession,
        route: Route,
        request_id: &HeaderValue,
    ) -> Result<(), Failure> {
        let edge = self.edge;
        let started = Instant::now();
        let retryable = session.req_header().method.is_idempotent() && session.is_body_empty();
        let mut attempts = Attempts::new(route);
        loop {
            let req = session.req_header();
            let (addr, guard) = attempts.next(edge.router(), request_host(req), req.uri.path())?;
            let connect_timeout = edge.options().connect_timeout;
            let dial = || pool::connect(addr, connect_timeout);
            let connected = attempts.connect(edge.pool(), addr, retryable, dial).await;
            let Some((stream, reused)) = connected else {
                continue;
            };
            let mut replica = ReplicaSession::new(stream);
            replica.read_timeout = Some(edge.options().read_timeout);
            replica.write_timeout = Some(attempt::REPLICA_WRITE_TIMEOUT);
            let relay = Relay {
                edge,
                route: attempts.route(),
                guard,
                started,
                request_id,
                cut: self.cut,
            };
            let (stale, e) = match relay.run(session, replica, addr).await {
                Ok(reusable) => {
                    self.reusable &= reusable;
                    return Ok(());
                }
                Err(RelayError::Stale(e)) => (true, e),
                Err(RelayError::Replica(e)) => (false, e),
                Err(RelayError::Client(e)) => {
                    tracing::debug!(err = %e, "client failed");
                    let malformed = matches!(e.etype(), ErrorType::InvalidHTTPHeader);
                    return Err(Failure::Client { malformed });
                }
            };
            let timed_out = matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            );
            // A kept connection the replica had closed goes again, once.
            attempts.replica_failed(reused, stale, timed_out)?;
            tracing::debug!(err = %e, "pooled connection was closed; retrying");
        }
    }
}

/// Why relaying failed.
enum RelayError {
    /// The replica connection failed before any of the request body was
    /// sent and before any response byte came: safe to send again.
    Stale(Box<Error>),
    /// The replica failed later.
    Replica(Box<Error>),
    /// The client failed.
    Client(Box<Error>),
}

/// One request relayed to one connected replica.
struct Relay<'r> {
    edge: &'r EdgeProxy,
    route: &'r Route,
    /// Counts the request on the replica (draining waits for it).
    guard: UpstreamGuard,
    started: Instant,
    request_id: &'r HeaderValue,
    /// Cancels the client connection, should the request become a tunnel.
    cut: &'r CancellationToken,
}

impl Relay<'_> {
    /// Sends the request and relays the response; `Ok(reusable)` when a
    /// response was relayed, telling whether the client connection may be
    /// kept. The replica connection goes back to the pool when both
    /// messages ended cleanly.
    async fn run(
        mut self,
        session: &mut ServerSession,
        mut replica: ReplicaSession,
        addr: SocketAddr,
    ) -> Result<bool, RelayError> {
        let has_body = !session.is_body_empty();
        let head = upstream_request(
            session,
            self.route,
            self.edge.options().tls,
            self.request_id,
        )
        .map_err(RelayError::Client)?;
        let idempotent = head.method.is_idempotent();
        replica
            .write_request_header(head)
            .await
            .map_err(RelayError::Stale)?;
        let mut request_done = !has_body;
        let mut response_done = false;
        let mut header_seen = false;
        let mut body_sent = false;
        let mut upgraded = false;
        let mut replica_reusable = true;
        if request_done {
            // Flushes the header; a body-less request ends there.
            replica.finish_body().await.map_err(RelayError::Stale)?;
        }
        while !request_done || !response_done {
            let watching = request_done;
            let client = async {
                if !watching {
                    return session.read_request_body().await;
                }
                // Only h2 streams come here; nothing to watch otherwise.
                let closed = match session.watch_h2_stream_close() {
                    Some(closed) => closed.await,
                    None => std::future::pending().await,
                };
                // The watch ends only when the client reset the stream or
                // left: never with a body to relay.
                Error::e_explain(ErrorType::H2Error, format!("client reset: {:?}", closed?))
            };
            tokio::select! {
                task = replica.read_response_task(), if !response_done => {
                    let task = match task {
                        Ok(task) => task,
                        // Nothing came back and sending it again is safe:
                        // a closed pooled connection, retried once.
                        Err(e) if idempotent && !header_seen && !body_sent => {
                            return Err(RelayError::Stale(e));
                        }
                        Err(e) => return Err(RelayError::Replica(e)),
                    };
                    response_done = task.is_end();
                    match task {
                        HttpTask::Header(mut resp, end) => {
                            let informational =
                                resp.status.is_informational() && resp.status != 101;
                            if !informational {
                                header_seen = true;
                                self.filter_response(&mut resp);
                            }
                            session
                                .write_response_header(resp)
                                .await
                                .map_err(RelayError::Client)?;
                            if end && !informational {
                                session
                                    .write_response_body(Bytes::new(), true)
                                    .await
                                    .map_err(RelayError::Client)?;
                            }
                            if !upgraded && session.was_upgraded() && replica.was_upgraded() {
                                // The client's side of a tunnel reads until
                                // it closes, whatever its request said.
                                upgraded = true;
                                request_done = false;
                                replica.maybe_upgrade_body_writer();
                            }
                        }
                        HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                            session
                                .write_response_body(data.unwrap_or_default(), end)
                                .await
                                .map_err(RelayError::Client)?;
                        }
                        HttpTask::Done => {
                            session
                                .write_response_body(Bytes::new(), true)
                                .await
                                .map_err(RelayError::Client)?;
                        }
                        HttpTask::Trailer(trailers) => {
                            if let Some(trailers) = trailers {
                                session
                                    .write_response_trailers(*trailers)
                                    .await
                                    .map_err(RelayError::Client)?;
                            }
                            session
                                .write_response_body(Bytes::new(), true)
                                .await
                                .map_err(RelayError::Client)?;
                        }
                        HttpTask::Failed(e) => return Err(RelayError::Replica(e)),
                    }
                    if response_done && upgraded {
                        // Either side closing ends a tunnel.
                        request_done = true;
                    }
                }
                // The request body while it lasts; after it, until the
                // response head comes, a watch on the stream: a client that
                // reset it (or left) frees the replica at once instead of
                // after the replica's answer.
                data = client, if !request_done || !header_seen => {
                    let data = data.map_err(RelayError::Client)?;
                    match data {
                        Some(data) => {
                            body_sent = true;
                            if let Err(e) = replica.write_body(&data).await {
                                // The replica may still answer (a 413, say);
                                // the rest of the request is dropped.
                                tracing::debug!(err = %e, "replica stopped reading the request");
                                replica_reusable = false;
                                request_done = true;
                            }
                        }
                        None => {
                            request_done = true;
                            if let Err(e) = replica.finish_body().await {
                                tracing::debug!(err = %e, "replica stopped reading the request");
                                replica_reusable = false;
                            }
                            if upgraded {
                                response_done = true;
                            }
                        }
                    }
                }
            }
        }
        let client_reusable = !upgraded && session.is_body_done();
        if replica_reusable && !upgraded {
            replica.respect_keepalive();
            if let Some(stream) = replica.reuse().await {
                self.edge.pool().put(addr, stream, false);
            }
        }
        drop(self.guard);
        Ok(client_reusable)
    }

    /// berth's response headers on a replica's response; a `101` makes the
    /// request a tunnel that the replica's drain deadline may cut.
    fn filter_response(&mut self, resp: &mut ResponseHeader) {
        let edge = self.edge;
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            self.guard.become_tunnel(self.cut.clone());
        } else {
            resp.remove_header("keep-alive");
            resp.remove_header("proxy-connection");
        }
        let seconds = self.started.elapsed().as_secs_f64();
        edge.metrics()
            .observe_upstream(self.route.backend().app(), seconds);
        let _ = resp.insert_header(X_REQUEST_ID, self.request_id.clone());
        if let Some(value) = policy::hsts(self.route, edge.options().tls) {
            let _ = resp.insert_header(header::STRICT_TRANSPORT_SECURITY, value);
        }
        if let Some(value) = edge.alt_svc() {
            let _ = resp.insert_header(header::ALT_SVC, value);
        }
    }
}

/// The request id as a header value: the client's when sane (shared,
/// not copied), else a fresh one.
fn request_id(req: &RequestHeader) -> HeaderValue {
    let incoming = req.headers.get(X_REQUEST_ID);
    match policy::request_id(incoming.map(HeaderValue::as_bytes)) {
        Cow::Borrowed(_) => incoming.cloned(),
        Cow::Owned(fresh) => HeaderValue::try_from(fresh).ok(),
    }
    .unwrap_or_else(|| HeaderValue::from_static("-"))
}

/// The host a request asked for, by [`policy::request_host`]: the h2
/// `:authority`, else `Host`.
fn request_host(req: &RequestHeader) -> Option<&str> {
    let host = req.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    policy::request_host(req.uri.authority().map(|a| a.as_str()), host)
}

/// The request sent to the replica: HTTP/1.1 in origin form, the path
/// rewritten by the route, the client's headers but connection-specific
/// ones (RFC 9110 §7.6.1, and the ones `Connection` names; a WebSocket-
/// style upgrade is kept) and forwarding ones (replaced by berth's).
///
/// Built afresh rather than cloned and edited: a header map without
/// pingora's case map, sized once, so no header costs a rehash.
fn upstream_request(
    session: &mut ServerSession,
    route: &Route,
    tls: bool,
    request_id: &HeaderValue,
) -> pingora_error::Result<Box<RequestHeader>> {
    let upgrade = session.is_upgrade_req();
    let has_body = !session.is_body_empty();
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let req = session.req_header();
    let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = policy::upstream_path(route, pq);
    let capacity = req.headers.len() + 6;
    let method = req.method.clone();
    let mut up = RequestHeader::build_no_case(method, path.as_bytes(), Some(capacity))?;
    up.set_version(http::Version::HTTP_11);
    let nominated: Vec<String> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(policy::connection_names)
        .collect();
    for (name, value) in &req.headers {
        let lower = name.as_str();
        let named = name != header::HOST && nominated.iter().any(|n| n == lower);
        if named || !policy::forwardable(lower.as_bytes()) {
            continue;
        }
        up.append_header(name.clone(), value.clone())?;
    }
    if upgrade {
        if let Some(protocol) = req.headers.get(header::UPGRADE) {
            up.insert_header(header::CONNECTION, "upgrade")?;
            up.insert_header(header::UPGRADE, protocol.clone())?;
        }
    }
    if has_body && !up.headers.contains_key(header::CONTENT_LENGTH) {
        up.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }
    // The host the request is for (the rule every front end follows) is
    // the replica's Host.
    let host = match (req.uri.authority(), req.headers.get(header::HOST)) {
        (Some(authority), _) if !authority.as_str().is_empty() => {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "authority", e))?;
            up.insert_header(header::HOST, host.clone())?;
            Some(host)
        }
        (_, host) => host.cloned(),
    };
    let fwd = policy::forwarded(client, tls, None);
    if let Some(ip) = fwd.for_ip {
        up.insert_header(X_FORWARDED_FOR, ip)?;
    }
    up.insert_header(X_FORWARDED_PROTO, HeaderValue::from_static(fwd.proto))?;
    if let Some(host) = host {
        up.insert_header(X_FORWARDED_HOST, host)?;
    }
    up.insert_header(X_REQUEST_ID, request_id.clone())?;
    Ok(Box::new(up))
}

/// Answers a request that could not be read: there is no request header
/// to consult, and the connection is closed after.
async fn bad_request(session: &mut ServerSession) {
    let page = pages::render(policy::BAD_REQUEST, false, "");
    match page_header(&page) {
        Ok(resp) => {
            let body = Bytes::from_static(page.body);
            if let Err(e) = session.write_error_response(resp, body).await {
                tracing::debug!(err = %e, "could not answer a bad request");
            }
        }
        Err(e) => tracing::debug!(err = %e, "could not build a bad request page"),
    }
}

/// Writes one of berth's own pages, as [`pages`] renders it.
async fn page(
    session: &mut ServerSession,
    page: ErrorPage,
    request_id: &str,
) -> pingora_error::Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let page = pages::render(page, head, request_id);
    session
        .write_response_header(Box::new(page_header(&page)?))
        .await?;
    session
        .write_response_body(Bytes::from_static(page.body), true)
        .await
}

/// The response header of a rendered page.
fn page_header(page: &pages::Rendered<'_>) -> pingora_error::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(page.status, Some(4))?;
    for (name, value) in page.fields() {
        resp.insert_header(name, value)?;
    }
    resp.insert_header(header::CONTENT_LENGTH, page.length)?;
    Ok(resp)
}

/// The header of a response berth makes itself.
fn own_header(
    status: u16,
    content_type: &str,
    length: usize,
    location: Option<&str>,
    request_id: &str,
) -> pingora_error::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, content_type)?;
    resp.insert_header(header::CONTENT_LENGTH, length)?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if let Some(location) = location {
        resp.insert_header(header::LOCATION, location)?;
    }
    if !request_id.is_empty() {
        resp.insert_header(X_REQUEST_ID, request_id)?;
    }
    Ok(resp)
}

/// Writes a whole response berth makes itself to a request it read.
async fn answer(
    session: &mut ServerSession,
    status: u16,
    content_type: &str,
    body: Bytes,
    location: Option<&str>,
    request_id: &str,
) -> pingora_error::Result<()> {
    let resp = own_header(status, content_type, body.len(), location, request_id)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp)).await?;
    let body = if head_only { Bytes::new() } else { body };
    session.write_response_body(body, true).await
}

/// Writes a static site's response with the `extra` headers that are set.
async fn send_site(
    session: &mut ServerSession,
    site: SiteResponse,
    extra: &[(&'static str, Option<&str>)],
) -> pingora_error::Result<()> {
    let mut resp = ResponseHeader::build(site.status.as_u16(), Some(site.headers.len() + 3))?;
    for (name, value) in &site.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    for (name, value) in extra {
        if let Some(value) = value {
            resp.insert_header(*name, *value)?;
        }
    }
    session.write_response_header(Box::new(resp)).await?;
    session.write_response_body(site.body, true).await
}
