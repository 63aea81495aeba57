//! The pingora glue: a `ProxyHttp` implementation that asks [`policy`] what
//! to do and carries it out, and [`serve`], which runs it on a listener the
//! caller bound, on the caller's tokio runtime.

use std::net::TcpListener;
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Fds, ShutdownWatch};
use pingora_core::services::Service as _;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::metrics::InFlight;
use crate::policy::{self, Decision, ErrorPage};
use crate::UpstreamGuard;
use crate::{ProxyMetrics, Route, Router};

const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Settings of one edge listener.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Whether the listener terminates TLS (sets `X-Forwarded-Proto`).
    pub tls: bool,
    /// Deadline to connect to one replica before trying the next.
    pub connect_timeout: Duration,
}

/// The edge proxy: routes by the shared [`Router`].
pub struct EdgeProxy {
    router: Arc<Router>,
    metrics: ProxyMetrics,
    options: EdgeOptions,
}

impl EdgeProxy {
    /// A proxy reading routes from `router`.
    pub fn new(router: Arc<Router>, metrics: ProxyMetrics, options: EdgeOptions) -> Self {
        Self {
            router,
            metrics,
            options,
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
    let mut resp = ResponseHeader::build(page.status, Some(4))?;
    resp.insert_header(header::CONTENT_TYPE, "text/html; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, page.body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    resp.insert_header(X_REQUEST_ID, request_id)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from_static(page.body.as_bytes())), true)
            .await?;
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
        let page = {
            let table = self.router.load();
            match policy::decide(&table, request_host(req), req.uri.path()) {
                Decision::Forward(route) => {
                    ctx.app = Some(route.backend().app().clone());
                    ctx.turn = route.backend().start();
                    ctx.route = Some(route.clone());
                    return Ok(false);
                }
                Decision::NoReplica(route) => {
                    ctx.app = Some(route.backend().app().clone());
                    policy::NO_REPLICA
                }
                Decision::UnknownHost => policy::NOT_FOUND,
            }
        };
        respond(session, page, &ctx.request_id).await?;
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
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
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

/// Serves `proxy` on an already bound listener until `shutdown` turns true.
/// The caller binds, so bind errors surface before anything starts and
/// `:0` ports work. Returns when the listener has stopped accepting;
/// requests in flight go on and are awaited by the caller.
pub async fn serve(
    listener: TcpListener,
    proxy: EdgeProxy,
    shutdown: ShutdownWatch,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?.to_string();
    let conf = Arc::new(ServerConf::default());
    let mut service = pingora_proxy::http_proxy_service_with_name(&conf, proxy, "berth-edge");
    service.add_tcp(&addr);
    let mut fds = Fds::new();
    // pingora takes ownership of the descriptor and closes it on shutdown.
    fds.add(addr, listener.into_raw_fd());
    let fds = Arc::new(parking_lot::Mutex::new(fds));
    service.start_service(Some(fds), shutdown, 1).await;
    Ok(())
}
