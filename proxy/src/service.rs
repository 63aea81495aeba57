//! The pingora glue: a `ProxyHttp` implementation that asks [`policy`] what
//! to do and carries it out, and [`serve`], which runs it on a listener the
//! caller bound, on the caller's tokio runtime.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::ShutdownWatch;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use rustls::server::ResolvesServerCert;
use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use berth_acme::Http01Tokens;

use crate::metrics::InFlight;
use crate::policy::{self, Decision, ErrorPage};
use crate::UpstreamGuard;
use crate::{ProxyMetrics, Route, Router, SiteResponse};

use policy::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};

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

/// The edge proxy: routes by the shared [`Router`].
pub struct EdgeProxy {
    router: Arc<Router>,
    metrics: ProxyMetrics,
    options: EdgeOptions,
    challenges: Arc<Http01Tokens>,
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
        Self {
            router,
            metrics,
            options,
            challenges,
        }
    }
}

/// Per-request state.
pub struct RequestCtx {
    route: Option<Route>,
    app: Option<Arc<str>>,
    turn: usize,
    attempt: usize,
    /// Whether the route was looked up again after its replicas ran out.
    rerouted: bool,
    /// Whether connecting to some replica failed.
    connect_failed: bool,
    /// The replica serving this request, counted until the request ends.
    upstream: Option<UpstreamGuard>,
    request_id: String,
    upstream_started: Option<Instant>,
    _in_flight: InFlight,
}

fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

async fn respond(session: &mut Session, page: ErrorPage, request_id: &str) -> Result<()> {
    let body = Bytes::from_static(page.body.as_bytes());
    let html = "text/html; charset=utf-8";
    answer(session, page.status, html, body, None, request_id).await
}

/// Writes a whole response berth makes itself.
async fn answer(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
    location: Option<&str>,
    request_id: &str,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, content_type)?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if let Some(location) = location {
        resp.insert_header(header::LOCATION, location)?;
    }
    resp.insert_header(X_REQUEST_ID, request_id)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// What the edge answers itself, without a replica.
enum Reply {
    /// One of berth's own pages.
    Page(ErrorPage),
    /// A static site's response, and the route's HSTS value.
    Site(SiteResponse, Option<&'static str>),
}

/// Writes a static site's response with the `extra` headers that are set.
async fn send_site(
    session: &mut Session,
    site: SiteResponse,
    extra: &[(&'static str, Option<&str>)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(site.status.as_u16(), Some(site.headers.len() + 3))?;
    for (name, value) in &site.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    for (name, value) in extra {
        if let Some(value) = value {
            resp.insert_header(*name, *value)?;
        }
    }
    let end = site.body.is_empty();
    session.write_response_header(Box::new(resp), end).await?;
    if !end {
        session.write_response_body(Some(site.body), true).await?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            route: None,
            app: None,
            turn: 0,
            attempt: 0,
            rerouted: false,
            connect_failed: false,
            upstream: None,
            request_id: String::new(),
            upstream_started: None,
            _in_flight: self.metrics.in_flight(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id =
            policy::request_id(req.headers.get(X_REQUEST_ID).map(|v| v.as_bytes())).into_owned();
        let tls = self.options.tls;
        if let Some(key_auth) = policy::acme_challenge(tls, req.uri.path(), &self.challenges) {
            let text = "text/plain";
            let body = Bytes::from(key_auth);
            answer(session, 200, text, body, None, &ctx.request_id).await?;
            return Ok(true);
        }
        let reply = {
            let table = self.router.load();
            let host = request_host(req);
            let decision = policy::decide(&table, host, req.uri.path());
            if let Decision::Forward(route)
            | Decision::NoReplica(route)
            | Decision::Static(route, _) = &decision
            {
                let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let https_port = self.options.https_port;
                if let Some(to) = policy::https_redirect(route, tls, host, pq, https_port) {
                    ctx.app = Some(route.backend().app().clone());
                    let (status, text) = (308, "text/plain");
                    let body = Bytes::from_static(b"Moved to HTTPS\n");
                    answer(session, status, text, body, Some(&to), &ctx.request_id).await?;
                    return Ok(true);
                }
            }
            match decision {
                Decision::Forward(route) => {
                    ctx.app = Some(route.backend().app().clone());
                    ctx.turn = route.backend().start();
                    ctx.route = Some(route.clone());
                    return Ok(false);
                }
                Decision::Static(route, site) => {
                    ctx.app = Some(route.backend().app().clone());
                    let path = policy::site_path(route, req.uri.path());
                    let response = site.respond(&req.method, &path, &req.headers);
                    Reply::Site(response, policy::hsts(route, tls))
                }
                Decision::NoReplica(route) => {
                    ctx.app = Some(route.backend().app().clone());
                    Reply::Page(policy::NO_REPLICA)
                }
                Decision::UnknownHost => Reply::Page(policy::NOT_FOUND),
            }
        };
        match reply {
            Reply::Page(page) => respond(session, page, &ctx.request_id).await?,
            Reply::Site(response, hsts) => {
                let alt_svc = policy::alt_svc(tls, self.options.h3_port);
                let extra = [
                    (X_REQUEST_ID, Some(ctx.request_id.as_str())),
                    (header::STRICT_TRANSPORT_SECURITY.as_str(), hsts),
                    (header::ALT_SVC.as_str(), alt_svc.as_deref()),
                ];
                send_site(session, response, &extra).await?;
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        loop {
            let route = ctx
                .route
                .as_ref()
                .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
            // Next replica of this turn that is not draining.
            while let Some(upstream) = route.backend().pick(ctx.turn, ctx.attempt) {
                ctx.attempt += 1;
                if let Some(guard) = upstream.acquire() {
                    ctx.upstream = Some(guard);
                    ctx.upstream_started.get_or_insert_with(Instant::now);
                    let mut peer = HttpPeer::new(upstream.addr(), false, String::new());
                    peer.options.connection_timeout = Some(self.options.connect_timeout);
                    return Ok(Box::new(peer));
                }
            }
            // Every replica of the route this request saw is draining or
            // failed: a deploy switched the table meanwhile. Look once more.
            if ctx.rerouted {
                return Err(Error::new_up(ErrorType::ConnectNoRoute));
            }
            ctx.rerouted = true;
            let req = session.req_header();
            let table = self.router.load();
            match policy::decide(&table, request_host(req), req.uri.path()) {
                Decision::Forward(route) => {
                    ctx.turn = route.backend().start();
                    ctx.attempt = 0;
                    ctx.app = Some(route.backend().app().clone());
                    ctx.route = Some(route.clone());
                }
                _ => return Err(Error::new_up(ErrorType::ConnectNoRoute)),
            }
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.upstream = None;
        ctx.connect_failed = true;
        let replicas = ctx
            .route
            .as_ref()
            .map_or(0, |r| r.backend().upstreams().len());
        // Nothing was sent yet: another replica (or, once, the current
        // route table) is always safe to try.
        if ctx.attempt < replicas || !ctx.rerouted {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        if e.retry() {
            // A pooled connection the replica had closed: the replica itself
            // is fine, so the retry goes to it again on a fresh connection.
            ctx.attempt = ctx.attempt.saturating_sub(1);
            ctx.upstream = None;
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(route) = &ctx.route {
            if route.strip_prefix() {
                let original = upstream
                    .uri
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_string();
                let rewritten = policy::upstream_path(route, &original);
                if rewritten != original {
                    let uri = http::Uri::try_from(rewritten.as_ref()).map_err(|e| {
                        Error::because(ErrorType::InvalidHTTPHeader, "rewriting path", e)
                    })?;
                    upstream.set_uri(uri);
                }
            }
        }
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let host = request_host(session.req_header()).map(str::to_string);
        let fwd = policy::forwarded(client, self.options.tls, host.as_deref());
        match fwd.for_ip {
            Some(ip) => upstream.insert_header(X_FORWARDED_FOR, ip)?,
            None => {
                upstream.remove_header(X_FORWARDED_FOR);
            }
        }
        upstream.insert_header(X_FORWARDED_PROTO, fwd.proto)?;
        match fwd.host {
            Some(h) => upstream.insert_header(X_FORWARDED_HOST, h)?,
            None => {
                upstream.remove_header(X_FORWARDED_HOST);
            }
        }
        upstream.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        for name in policy::UNTRUSTED_FORWARDING_HEADERS {
            upstream.remove_header(name);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            if let (Some(guard), Ok(connection)) =
                (ctx.upstream.as_mut(), CONNECTION.try_with(Clone::clone))
            {
                guard.become_tunnel(connection);
            }
        }
        if let (Some(app), Some(started)) = (&ctx.app, ctx.upstream_started) {
            self.metrics
                .observe_upstream(app, started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        if let Some(value) = ctx
            .route
            .as_ref()
            .and_then(|r| policy::hsts(r, self.options.tls))
        {
            response.insert_header(header::STRICT_TRANSPORT_SECURITY, value)?;
        }
        if let Some(value) = policy::alt_svc(self.options.tls, self.options.h3_port) {
            response.insert_header(header::ALT_SVC, value)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            // Replicas ran out: unreachable (502) or all draining (503).
            ErrorType::ConnectNoRoute if ctx.connect_failed => 502,
            ErrorType::ConnectNoRoute => 503,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        // Only answer if nothing was sent yet; otherwise the connection is cut.
        if code > 0 && session.response_written().is_none() {
            if let Err(err) = respond(session, policy::error_page(code), &ctx.request_id).await {
                tracing::debug!(%err, "could not send error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.metrics.observe_request(ctx.app.as_deref(), status);
    }
}

tokio::task_local! {
    /// The cancellation of the client connection being served.
    static CONNECTION: CancellationToken;
}

/// Idle upstream connections kept per listener (per worker). Below the
/// client concurrency, every request past it opens and closes a connection
/// to its replica: twice the CPU, and TIME_WAIT piling up until connects
/// fail (pingora's default is 128).
const UPSTREAM_POOL: usize = 2048;

/// Deadline of a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls configuration of the HTTPS listener: TLS 1.2 and 1.3, ALPN
/// h2 then http/1.1 (and `acme-tls/1` for TLS-ALPN-01 validation, which
/// the resolver answers with the challenge certificate), certificates by
/// SNI from `resolver`.
pub fn tls_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<ServerConfig> {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut config = ServerConfig::builder_with_protocol_versions(&versions)
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
        berth_acme::ACME_TLS_ALPN.to_vec(),
    ];
    Arc::new(config)
}

/// Serves `proxy` on `threads` threads of its own, each a single-threaded
/// runtime accepting on the same socket, with its own upstream connection
/// pool (nothing is handed between runtimes). Each thread ends once
/// `shutdown` turned true and its connections have ended.
pub fn serve_on_threads(
    listener: TcpListener,
    threads: usize,
    make_proxy: impl Fn() -> EdgeProxy,
    tls: Option<Arc<ServerConfig>>,
    shutdown: ShutdownWatch,
) -> std::io::Result<EdgeThreads> {
    let addr = listener.local_addr()?;
    let mut done = Vec::with_capacity(threads);
    for i in 0..threads {
        let listener = listener.try_clone()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (proxy, tls, shutdown) = (make_proxy(), tls.clone(), shutdown.clone());
        let (finished, wait) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("berth-edge-{i}"))
            .spawn(move || {
                if let Err(err) = runtime.block_on(serve(listener, proxy, tls, shutdown)) {
                    tracing::error!(%addr, %err, "an edge worker stopped");
                }
                let _ = finished.send(());
            })?;
        done.push(wait);
    }
    Ok(EdgeThreads(done))
}

/// The threads of [`serve_on_threads`]. They are not joined, so a
/// connection that never ends cannot hold up the process's exit.
pub struct EdgeThreads(Vec<tokio::sync::oneshot::Receiver<()>>);

impl EdgeThreads {
    /// Resolves when every thread has ended.
    pub async fn finished(self) {
        for wait in self.0 {
            let _ = wait.await;
        }
    }
}

/// Serves `proxy` on an already bound listener until `shutdown` turns true,
/// terminating TLS with `tls` when given. The caller binds, so bind errors
/// surface before anything starts and `:0` ports work. After `shutdown`
/// no connection is accepted; returns when the open ones have ended (idle
/// keep-alive connections close at once; the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    proxy: EdgeProxy,
    tls: Option<Arc<ServerConfig>>,
    mut shutdown: ShutdownWatch,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let connections = tokio_util::task::TaskTracker::new();
    let conf = Arc::new(ServerConf {
        upstream_keepalive_pool_size: UPSTREAM_POOL,
        ..ServerConf::default()
    });
    let app = Arc::new(pingora_proxy::http_proxy(&conf, proxy));
    let acceptor = tls.map(|config| Arc::new(Acceptor::from_server_config(config)));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of descriptors or a connection reset before accept:
                // pause briefly rather than spin.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (app, acceptor, shutdown) = (app.clone(), acceptor.clone(), shutdown.clone());
        connections.spawn(async move {
            let mut stream = L4Stream::from(tcp);
            if let Err(err) = stream.set_nodelay() {
                tracing::debug!(%err, "TCP_NODELAY");
            }
            let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
            let _ = digest.peer_addr.set(Some(peer.into()));
            stream.set_socket_digest(digest);
            let stream: Stream = match acceptor {
                Some(acceptor) => {
                    let handshake = acceptor.tls_handshake(stream);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(tls)) => Box::new(tls),
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => Box::new(stream),
            };
            // A tunnel on this connection registers `cut` with its replica,
            // whose drain deadline may then end the whole connection.
            let cut = CancellationToken::new();
            let serve = async {
                let mut next = app.process_new(stream, &shutdown).await;
                while let Some(stream) = next {
                    next = app.process_new(stream, &shutdown).await;
                }
            };
            CONNECTION
                .scope(cut.clone(), async {
                    tokio::select! {
                        _ = serve => {}
                        _ = cut.cancelled() => {
                            tracing::debug!(%peer, "tunnel closed at its replica's drain deadline");
                        }
                    }
                })
                .await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}
