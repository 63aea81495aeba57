//! The edge's HTTP hot path: one request from a client (HTTP/1.1 or h2, as
//! pingora-core decoded it) carried to a replica over a pooled HTTP/1.1
//! connection, and its response carried back, with every decision taken
//! by [`policy`] (shared with HTTP/3).
//!
//! Written on pingora-core directly (its HTTP codecs and upstream
//! connection pool) rather than on pingora-proxy's `ProxyHttp`: one task
//! per request, no boxed future per hook, no channels between a client
//! half and a replica half. Issue #6 measured that machinery at about
//! twice nginx's CPU per small request.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue};
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::v1::client::HttpSession as ReplicaSession;
use pingora_core::protocols::http::{HttpTask, ServerSession};
use pingora_core::server::ShutdownWatch;
use pingora_error::{Error, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};

use berth_acme::Http01Tokens;

use crate::policy::{self, Decision, ErrorPage};
use crate::policy::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::pool::{self, ReplicaPool};
use crate::service::CONNECTION;
use crate::{ProxyMetrics, Route, Router, SiteResponse, UpstreamGuard};

/// Settings of one edge listener.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Whether the listener terminates TLS (sets `X-Forwarded-Proto`).
    pub tls: bool,
    /// Deadline to connect to one replica before trying the next.
    pub connect_timeout: Duration,
    /// Port of the HTTPS listener, for redirects.
    pub https_port: u16,
    /// UDP port of the HTTP/3 listener, advertised in `Alt-Svc` on TLS.
    pub h3_port: Option<u16>,
}

/// Idle upstream connections kept per listener (per worker). Below the
/// client concurrency, every request past it opens and closes a connection
/// to its replica: twice the CPU, and TIME_WAIT piling up until connects
/// fail (pingora's default is 128).
const UPSTREAM_POOL: usize = 2048;

/// The edge proxy of one listener (or one worker of it): routes by the
/// shared [`Router`], reaches replicas through its own connection pool.
pub struct EdgeProxy {
    router: Arc<Router>,
    metrics: ProxyMetrics,
    options: EdgeOptions,
    challenges: Arc<Http01Tokens>,
    pool: ReplicaPool,
    /// `Alt-Svc` of TLS responses, built once.
    alt_svc: Option<String>,
}

impl EdgeProxy {
    /// A proxy reading routes from `router` and answering ACME HTTP-01
    /// validations from `challenges`.
    pub fn new(
        router: Arc<Router>,
        metrics: ProxyMetrics,
        options: EdgeOptions,
        challenges: Arc<Http01Tokens>,
    ) -> Self {
        let alt_svc = policy::alt_svc(options.tls, options.h3_port);
        Self {
            router,
            metrics,
            options,
            challenges,
            pool: ReplicaPool::new(UPSTREAM_POOL),
            alt_svc,
        }
    }
}

#[async_trait]
impl HttpServerApp for EdgeProxy {
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
        let _in_flight = self.metrics.in_flight();
        let mut exchange = Exchange {
            edge: self,
            app: None,
            reusable: true,
        };
        exchange.run(&mut session).await;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.metrics.observe_request(exchange.app.as_ref(), status);
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
    /// The app the request went to, for metrics.
    app: Option<Arc<str>>,
    /// Whether the client connection may carry another request.
    reusable: bool,
}

/// How forwarding ended when it did not end with a relayed response.
enum Failure {
    /// No replica could be connected to (502), or the last try timed out (504).
    Unreachable { timed_out: bool },
    /// Every replica of the route is draining (503).
    Draining,
    /// The route is gone from the table (404).
    Gone,
    /// The replica failed before a response header was relayed.
    Replica(Box<Error>),
    /// The client went away or sent something unusable.
    Client(Box<Error>),
}

impl Exchange<'_> {
    async fn run(&mut self, session: &mut ServerSession) {
        let edge = self.edge;
        let tls = edge.options.tls;
        let req = session.req_header();
        let request_id_value = request_id(req);
        let request_id = request_id_value.to_str().unwrap_or_default();
        if let Some(key_auth) = policy::acme_challenge(tls, req.uri.path(), &edge.challenges) {
            let body = Bytes::from(key_auth);
            let r = answer(session, 200, "text/plain", body, None, request_id).await;
            self.settle(r);
            return;
        }
        let reply = {
            let table = edge.router.load();
            let host = request_host(req);
            let decision = policy::decide(&table, host, req.uri.path());
            if let Decision::Forward(route)
            | Decision::NoReplica(route)
            | Decision::Static(route, _) = &decision
            {
                self.app = Some(route.backend().app().clone());
                let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let https_port = edge.options.https_port;
                if let Some(to) = policy::https_redirect(route, tls, host, pq, https_port) {
                    let body = Bytes::from_static(b"Moved to HTTPS\n");
                    let r = answer(session, 308, "text/plain", body, Some(&to), request_id).await;
                    self.settle(r);
                    return;
                }
            }
            match decision {
                Decision::Forward(route) => Reply::Forward(route.clone()),
                Decision::Static(route, site) => {
                    let path = policy::site_path(route, req.uri.path());
                    let response = site.respond(&req.method, &path, &req.headers);
                    Reply::Site(response, policy::hsts(route, tls))
                }
                Decision::NoReplica(_) => Reply::Page(policy::NO_REPLICA),
                Decision::UnknownHost => Reply::Page(policy::NOT_FOUND),
            }
        };
        let r = match reply {
            Reply::Forward(route) => {
                let failure = match self.forward(session, route, &request_id_value).await {
                    Ok(()) => return,
                    Err(failure) => failure,
                };
                self.fail(session, failure, request_id).await;
                return;
            }
            Reply::Page(p) => page(session, p, Some(request_id)).await,
            Reply::Site(response, hsts) => {
                let extra = [
                    (X_REQUEST_ID, Some(request_id)),
                    (header::STRICT_TRANSPORT_SECURITY.as_str(), hsts),
                    (header::ALT_SVC.as_str(), edge.alt_svc.as_deref()),
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
        let status = match &failure {
            Failure::Unreachable { timed_out: true } => 504,
            Failure::Unreachable { timed_out: false } => 502,
            Failure::Draining => 503,
            Failure::Gone => 404,
            Failure::Replica(e) => {
                tracing::debug!(err = %e, "replica failed");
                match e.etype() {
                    ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
                    _ => 502,
                }
            }
            Failure::Client(e) => {
                tracing::debug!(err = %e, "client failed");
                match e.etype() {
                    ErrorType::InvalidHTTPHeader => 400,
                    _ => 0,
                }
            }
        };
        // A failed request leaves its client connection in an unknown state.
        self.reusable = false;
        if status > 0 && session.response_written().is_none() {
            let r = page(session, policy::error_page(status), Some(request_id)).await;
            self.settle(r);
        }
    }

    /// Forwards the request along `route`: the next replica that is not
    /// draining and accepts a connection. Nothing is sent to a replica
    /// before it accepted, so moving on is always safe; once the route ran
    /// out, the current table is asked once more (a deploy may have
    /// switched it meanwhile).
    async fn forward(
        &mut self,
        session: &mut ServerSession,
        mut route: Route,
        request_id: &HeaderValue,
    ) -> Result<(), Failure> {
        let edge = self.edge;
        let started = Instant::now();
        let (mut turn, mut attempt) = (route.backend().start(), 0);
        let (mut rerouted, mut connect_failed, mut timed_out) = (false, false, false);
        // A stale pooled connection is retried once, on a new connection.
        let mut stale_retried = false;
        let retryable = session.req_header().method.is_idempotent() && session.is_body_empty();
        loop {
            let Some(upstream) = route.backend().pick(turn, attempt) else {
                if rerouted {
                    return Err(if connect_failed {
                        Failure::Unreachable { timed_out }
                    } else {
                        Failure::Draining
                    });
                }
                rerouted = true;
                let req = session.req_header();
                let table = edge.router.load();
                route = match policy::decide(&table, request_host(req), req.uri.path()) {
                    Decision::Forward(route) => route.clone(),
                    Decision::NoReplica(_) if connect_failed => {
                        return Err(Failure::Unreachable { timed_out })
                    }
                    Decision::NoReplica(_) => return Err(Failure::Draining),
                    _ => return Err(Failure::Gone),
                };
                self.app = Some(route.backend().app().clone());
                (turn, attempt) = (route.backend().start(), 0);
                continue;
            };
            attempt += 1;
            let Some(guard) = upstream.acquire() else {
                continue;
            };
            let addr = upstream.addr();
            let pooled = if stale_retried {
                None
            } else {
                edge.pool.take(addr, retryable)
            };
            let (stream, reused) = match pooled {
                Some(stream) => (stream, true),
                None => match pool::connect(addr, edge.options.connect_timeout).await {
                    Ok(stream) => (stream, false),
                    Err(e) => {
                        tracing::debug!(replica = %addr, err = %e, "connect failed");
                        connect_failed = true;
                        timed_out = e.kind() == std::io::ErrorKind::TimedOut;
                        continue;
                    }
                },
            };
            let relay = Relay {
                edge,
                route: &route,
                guard,
                started,
                app: self.app.as_ref(),
                request_id,
            };
            match relay.run(session, ReplicaSession::new(stream), addr).await {
                Ok(reusable) => {
                    self.reusable &= reusable;
                    return Ok(());
                }
                Err(RelayError::Stale(e)) if reused && !stale_retried => {
                    // The replica had closed the pooled connection; it is
                    // itself fine, so it gets the request on a new one
                    // (its other pooled ones may be closed too).
                    tracing::debug!(err = %e, "pooled connection was closed; retrying");
                    stale_retried = true;
                    attempt -= 1;
                }
                Err(RelayError::Stale(e) | RelayError::Replica(e)) => {
                    return Err(Failure::Replica(e))
                }
                Err(RelayError::Client(e)) => return Err(Failure::Client(e)),
            }
        }
    }
}

/// What the edge does with a request.
enum Reply {
    Forward(Route),
    /// One of berth's own pages.
    Page(ErrorPage),
    /// A static site's response, and the route's HSTS value.
    Site(SiteResponse, Option<&'static str>),
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
    app: Option<&'r Arc<str>>,
    request_id: &'r HeaderValue,
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
        let head = upstream_request(session, self.route, self.edge.options.tls, self.request_id)
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
                data = session.read_request_body(), if !request_done => {
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
                self.edge.pool.put(addr, stream);
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
            if let Ok(connection) = CONNECTION.try_with(Clone::clone) {
                self.guard.become_tunnel(connection);
            }
        } else {
            resp.remove_header("keep-alive");
            resp.remove_header("proxy-connection");
        }
        if let Some(app) = self.app {
            let seconds = self.started.elapsed().as_secs_f64();
            edge.metrics.observe_upstream(app, seconds);
        }
        let _ = resp.insert_header(X_REQUEST_ID, self.request_id.clone());
        if let Some(value) = policy::hsts(self.route, edge.options.tls) {
            let _ = resp.insert_header(header::STRICT_TRANSPORT_SECURITY, value);
        }
        if let Some(value) = &edge.alt_svc {
            let _ = resp.insert_header(header::ALT_SVC, value.as_str());
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

/// The host a request asked for: `Host`, or the h2 `:authority`.
fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
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
        if named || policy::is_hop_by_hop(lower) || policy::is_set_by_edge(lower) {
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
    // The client's Host, or an h2 request's :authority as Host.
    let host = match req.headers.get(header::HOST) {
        Some(host) => Some(host.clone()),
        None => match req.uri.authority() {
            Some(authority) => {
                let host = HeaderValue::from_str(authority.as_str())
                    .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "authority", e))?;
                up.insert_header(header::HOST, host.clone())?;
                Some(host)
            }
            None => None,
        },
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
    let page = policy::BAD_REQUEST;
    let body = Bytes::from_static(page.body.as_bytes());
    match own_header(page.status, HTML, body.len(), None, "") {
        Ok(resp) => {
            if let Err(e) = session.write_error_response(resp, body).await {
                tracing::debug!(err = %e, "could not answer a bad request");
            }
        }
        Err(e) => tracing::debug!(err = %e, "could not build a bad request page"),
    }
}

/// Content type of berth's own pages.
const HTML: &str = "text/html; charset=utf-8";

/// Writes one of berth's own pages.
async fn page(
    session: &mut ServerSession,
    page: ErrorPage,
    request_id: Option<&str>,
) -> pingora_error::Result<()> {
    let body = Bytes::from_static(page.body.as_bytes());
    let request_id = request_id.unwrap_or_default();
    answer(session, page.status, HTML, body, None, request_id).await
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
