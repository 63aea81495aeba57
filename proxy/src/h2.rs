//! The h2 front end: a request as pingora-core's h2 codec decoded it,
//! planned by the listener's [`EdgeProxy`], carried to a replica over
//! pooled HTTP/1.1 with pingora-core's client codec, attempts and failures
//! as `attempt.rs` decides, berth's pages as `pages.rs` renders them.
//!
//! HTTP/1.1 clients take the edge's own codec in `h1.rs` instead: issue
//! #6 measured pingora's HTTP/1 session code (header maps kept twice, a
//! 64 KB body buffer and a new session per request) at twice nginx's CPU
//! per small request.
//!
//! Its parts, top to bottom: the connection and the exchange here →
//! `relay` (a request relayed to one replica) → `request` (the client's
//! request: its id, its host, the request the replica gets); `answer`
//! (berth's own responses) beside them.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue};
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::v1::client::HttpSession as ReplicaSession;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_error::ErrorType;
use tokio_util::sync::CancellationToken;

use crate::attempt::{self, Attempts, Failure};
use crate::edge::{EdgeProxy, Plan};
use crate::path;
use crate::policy::X_REQUEST_ID;
use crate::pool;
use crate::{Backend, Route};

use crate::rules::Outgoing;

use answer::{answer, bad_request, page, screen, send_own, send_site};
use relay::{Relay, RelayError};
use request::{request_host, request_id};

mod answer;
mod relay;
mod request;

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
        let mut outgoing = None;
        if let Plan::Forward(route) | Plan::Site { route, .. } | Plan::Page(_, Some(route)) = &plan
        {
            match screen(session, route, edge.options().tls).await {
                Ok(out) => outgoing = out,
                Err(own) => {
                    let r = send_own(session, own, request_id).await;
                    self.settle(r);
                    return;
                }
            }
        }
        let r = match plan {
            Plan::Forward(route) => {
                let app = route.backend().clone();
                let forwarded = self
                    .forward(session, route, &request_id_value, outgoing.as_ref())
                    .await;
                if let Err(failure) = forwarded {
                    self.fail(session, failure, Some(&app), request_id).await;
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
            Plan::Page(p, route) => {
                let app = route.as_ref().map(|r| &**r.backend());
                page(session, p, app, request_id).await
            }
            Plan::Site {
                site, path, hsts, ..
            } => {
                let req = session.req_header();
                let mut response = site.respond(&req.method, &path, &req.headers);
                if let Some(out) = &outgoing {
                    out.apply(&mut response.headers, None, false);
                }
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
    async fn fail(
        &mut self,
        session: &mut ServerSession,
        failure: Failure,
        app: Option<&Backend>,
        request_id: &str,
    ) {
        // A failed request leaves its client connection in an unknown state.
        self.reusable = false;
        if let Some(p) = failure.page() {
            if session.response_written().is_none() {
                let r = page(session, p, app, request_id).await;
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
        outgoing: Option<&Outgoing>,
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
            let default = edge.options().read_timeout;
            let route = attempts.route();
            let (head_wait, _) = route
                .rules()
                .map_or((default, default), |r| r.timeouts(default));
            replica.read_timeout = Some(head_wait);
            replica.write_timeout = Some(attempt::REPLICA_WRITE_TIMEOUT);
            let relay = Relay {
                edge,
                route: attempts.route(),
                guard,
                started,
                request_id,
                cut: self.cut,
                outgoing,
                encoder: None,
            };
            let (stale, e) = match relay.run(session, replica, addr).await {
                Ok(reusable) => {
                    self.reusable &= reusable;
                    return Ok(());
                }
                Err(RelayError::Stale(e)) => (true, e),
                Err(RelayError::Replica(e)) => (false, e),
                Err(RelayError::TooLarge) => return Err(Failure::TooLarge),
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
