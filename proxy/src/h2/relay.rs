//! One h2 request relayed to one connected replica over HTTP/1.1: the
//! request head and body sent, the response streamed back, an upgrade
//! carried as a tunnel, the replica connection kept when both ended
//! cleanly.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue};
use pingora_core::protocols::http::v1::client::HttpSession as ReplicaSession;
use pingora_core::protocols::http::{HttpTask, ServerSession};
use pingora_error::{Error, ErrorType};
use pingora_http::ResponseHeader;
use tokio_util::sync::CancellationToken;

use crate::compress::Encoder;
use crate::edge::EdgeProxy;
use crate::policy::{self, X_REQUEST_ID};
use crate::rules::Outgoing;
use crate::{Route, UpstreamGuard};

use super::request::upstream_request;

/// Why relaying failed.
pub(super) enum RelayError {
    /// The replica connection failed before any of the request body was
    /// sent and before any response byte came: safe to send again.
    Stale(Box<Error>),
    /// The replica failed later.
    Replica(Box<Error>),
    /// The client failed.
    Client(Box<Error>),
    /// The client's body ran past the route's limit.
    TooLarge,
}

/// One request relayed to one connected replica.
pub(super) struct Relay<'r> {
    pub(super) edge: &'r EdgeProxy,
    pub(super) route: &'r Route,
    /// Counts the request on the replica (draining waits for it).
    pub(super) guard: UpstreamGuard,
    pub(super) started: Instant,
    pub(super) request_id: &'r HeaderValue,
    /// Cancels the client connection, should the request become a tunnel.
    pub(super) cut: &'r CancellationToken,
    /// What the route's rules do to the response.
    pub(super) outgoing: Option<&'r Outgoing>,
    /// Compresses the response body, when the rules and the response say so.
    pub(super) encoder: Option<Encoder>,
}

impl Relay<'_> {
    /// Sends the request and relays the response; `Ok(reusable)` when a
    /// response was relayed, telling whether the client connection may be
    /// kept. The replica connection goes back to the pool when both
    /// messages ended cleanly.
    pub(super) async fn run(
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
        let limit = self.route.rules().and_then(|r| r.max_body());
        let mut uploaded = 0u64;
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
                                self.filter_response(&mut resp, end)
                                    .map_err(RelayError::Replica)?;
                                let default = self.edge.options().read_timeout;
                                if let Some(rules) = self.route.rules() {
                                    replica.read_timeout = Some(rules.timeouts(default).1);
                                }
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
                            let data = self
                                .encode(data.unwrap_or_default(), end)
                                .map_err(RelayError::Replica)?;
                            session
                                .write_response_body(data, end)
                                .await
                                .map_err(RelayError::Client)?;
                        }
                        HttpTask::Done => {
                            let rest = self.encode(Bytes::new(), true).map_err(RelayError::Replica)?;
                            session
                                .write_response_body(rest, true)
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
                            uploaded += data.len() as u64;
                            if limit.is_some_and(|max| uploaded > max) {
                                return Err(RelayError::TooLarge);
                            }
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
    fn filter_response(
        &mut self,
        resp: &mut Box<ResponseHeader>,
        end: bool,
    ) -> pingora_error::Result<()> {
        let edge = self.edge;
        if let Some(out) = self.outgoing {
            let status = resp.status.as_u16();
            let (coding, varies) = out.compression(status, &resp.headers);
            let coding = coding.filter(|_| !end);
            let mut headers = resp.headers.clone();
            out.apply(&mut headers, coding, varies);
            let mut edited = ResponseHeader::build(resp.status, Some(headers.len() + 3))?;
            for (name, value) in &headers {
                edited.append_header(name.clone(), value.clone())?;
            }
            **resp = edited;
            if let Some(coding) = coding {
                self.encoder = Some(
                    Encoder::new(coding)
                        .map_err(|e| Error::because(ErrorType::InternalError, "encoder", e))?,
                );
            }
        }
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
        Ok(())
    }

    /// A piece of the response body as the client gets it: compressed
    /// when the response is (flushed at each piece, so a stream flows;
    /// ended with the body).
    fn encode(&mut self, data: Bytes, end: bool) -> pingora_error::Result<Bytes> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(data);
        };
        let fail = |e| Error::because(ErrorType::InternalError, "compressing", e);
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        encoder.push(&data, &mut out).map_err(fail)?;
        if end {
            if let Some(encoder) = self.encoder.take() {
                encoder.finish(&mut out).map_err(fail)?;
            }
        } else {
            encoder.flush(&mut out).map_err(fail)?;
        }
        Ok(Bytes::from(out))
    }
}
