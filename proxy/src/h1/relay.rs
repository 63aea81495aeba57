//! A request forwarded from an HTTP/1.1 connection to replicas: the
//! attempts, the head sent, the response head read and rewritten, then
//! the body relayed or the connection upgraded into a tunnel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use pingora_core::protocols::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::attempt::{Attempts, Failure};
use crate::edge::EdgeProxy;
use crate::head::{self, Framing, Reply};
use crate::policy;
use crate::pool;
use crate::rules::Outgoing;
use crate::tunnel;
use crate::{Route, UpstreamGuard};

use super::body::{relay_body, send_body, SendError};
use super::conn::{Conn, Outcome};
use super::io::{write_all, Deadline, HEAD_READ, PIPELINED_MAX, TIMED_OUT};

/// Why relaying to one replica failed.
enum RelayError {
    /// Nothing of the request was delivered and nothing came back, on a
    /// pooled connection: safe to send again on a new one.
    Stale(std::io::Error),
    /// The replica failed, timed out or broke the protocol.
    Replica { timed_out: bool },
    /// The client failed (went away, stalled, or sent a malformed body).
    Client { malformed: bool },
    /// The client's body ran past the route's limit.
    TooLarge,
}

fn replica_io(e: std::io::Error) -> RelayError {
    tracing::debug!(err = %e, "replica failed");
    RelayError::Replica { timed_out: false }
}

fn client_io(e: std::io::Error) -> RelayError {
    tracing::debug!(err = %e, "client failed");
    RelayError::Client { malformed: false }
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> Conn<'_, C> {
    /// Forwards the request along `route`, trying replicas as
    /// [`Attempts`] hands them out; a failure before anything reached the
    /// client gets an error page.
    pub(super) async fn forward(&mut self, route: Route, keep: bool) -> Outcome {
        let edge = self.edge;
        let started = Instant::now();
        let retryable = self.req.retryable();
        let mut attempts = Attempts::new(route);
        self.consume_head();
        let failure = loop {
            let host = (!self.req.host.is_empty()).then_some(self.req.host.as_str());
            let (addr, guard) = match attempts.next(edge.router(), host, self.req.path()) {
                Ok(next) => next,
                Err(failure) => break failure,
            };
            let connect_timeout = edge.options().connect_timeout;
            let dial = || pool::connect(addr, connect_timeout);
            let connected = attempts.connect(edge.pool(), addr, retryable, dial).await;
            let Some((replica, reused)) = connected else {
                continue;
            };
            let relay = self.relay(attempts.route(), guard, replica, addr, keep, started);
            let (stale, timed_out) = match relay.await {
                Ok(outcome) => return outcome,
                Err(RelayError::Stale(e)) => {
                    tracing::debug!(err = %e, "replica closed the connection");
                    (true, false)
                }
                Err(RelayError::Replica { timed_out }) => (false, timed_out),
                Err(RelayError::Client { malformed }) => break Failure::Client { malformed },
                Err(RelayError::TooLarge) => break Failure::TooLarge,
            };
            // A kept connection the replica had closed goes again, once.
            if let Err(failure) = attempts.replica_failed(reused, stale, timed_out) {
                break failure;
            }
        };
        // Nothing reached the client; what is left of the request cannot
        // be told from a next one, so the connection ends after the page.
        let Some(page) = failure.page() else {
            return Outcome {
                status: 0,
                keep: false,
            };
        };
        self.req.keep_alive = false;
        let app = attempts.route().backend().clone();
        self.send_page(page, Some(&app)).await
    }

    /// Sends the request to one connected replica and relays the answer.
    /// An error means nothing reached the client; once the response head
    /// went out, failures cut the connection and end as an [`Outcome`].
    async fn relay(
        &mut self,
        route: &Route,
        mut guard: UpstreamGuard,
        mut replica: Stream,
        addr: SocketAddr,
        keep: bool,
        started: Instant,
    ) -> Result<Outcome, RelayError> {
        let edge = self.edge;
        self.sbuf.clear();
        self.sbuf
            .extend_from_slice(self.req.method.as_str().as_bytes());
        self.sbuf.push(b' ');
        let path = policy::upstream_path(route, &self.req.target);
        self.sbuf.extend_from_slice(path.as_bytes());
        self.sbuf.extend_from_slice(b" HTTP/1.1\r\n");
        match route.rules().filter(|r| r.edits_request()) {
            Some(rules) => {
                let (remove, set) = rules.request_edits();
                head::edit_block(&self.block, remove, set, &mut self.sbuf);
            }
            None => self.sbuf.extend_from_slice(&self.block),
        }
        // A body already here whole goes out in the same write.
        let mut body = self.req.body;
        let mut inline = 0;
        if let Framing::Length(n) = body {
            if let Some(n) = usize::try_from(n).ok().filter(|n| *n <= self.rbuf.len()) {
                self.sbuf.extend_from_slice(&self.rbuf[..n]);
                inline = n;
                body = Framing::Empty;
            }
        }
        match write_all(&mut replica, &self.sbuf).await {
            Ok(()) => {}
            // Part of it may have gone: not sent again.
            Err(e) if e.kind() == TIMED_OUT => return Err(RelayError::Replica { timed_out: true }),
            // Refused outright (a closed pooled connection): nothing went.
            Err(e) => return Err(RelayError::Stale(e)),
        }
        self.rbuf.advance(inline);
        self.ubuf.clear();
        self.wbuf.clear();
        if body != Framing::Empty {
            return self
                .relay_streaming(route, guard, replica, addr, keep, started, body)
                .await;
        }
        let reply = reply_for(edge, &self.req, route, keep, self.outgoing.as_ref());
        let (head_wait, body_wait) = deadlines(edge, route);
        // Sending again is safe while nothing came back.
        let mut stale_ok = self.req.retryable();
        let response = loop {
            let read = read_head(
                &mut replica,
                &mut self.replica_wait,
                head_wait,
                &mut self.ubuf,
                &mut self.wbuf,
                &reply,
                stale_ok,
                None,
            );
            // A client gone meanwhile ends the wait (and the replica's
            // work, as its connection closes), as nginx does.
            let response = tokio::select! {
                biased;
                response = read => response?,
                () = client_gone(&mut self.io, &mut self.rbuf) => {
                    tracing::debug!("client closed before the response came");
                    return Err(RelayError::Client { malformed: false });
                }
            };
            if !response.informational {
                break response;
            }
            stale_ok = false;
            if !self.wbuf.is_empty() {
                write_all(&mut self.io, &self.wbuf)
                    .await
                    .map_err(client_io)?;
                self.wbuf.clear();
            }
        };
        let status = response.status;
        let seconds = started.elapsed().as_secs_f64();
        edge.metrics()
            .observe_upstream(route.backend().app(), seconds);
        if status == 101 {
            guard.become_tunnel(self.cut.clone());
            self.tunnel(&mut replica).await;
            drop(guard);
            return Ok(Outcome {
                status,
                keep: false,
            });
        }
        let relayed = relay_body(
            &mut self.io,
            &mut replica,
            &mut self.replica_wait,
            body_wait,
            &mut self.ubuf,
            &mut self.wbuf,
            &response,
        )
        .await;
        if let Err(e) = relayed {
            tracing::debug!(err = %e, "response cut short");
            return Ok(Outcome {
                status,
                keep: false,
            });
        }
        if response.replica_keep && self.ubuf.is_empty() {
            // After a response without a body, stray bytes from the replica
            // would pass for the next response: that one is checked.
            let checked = response.body == Framing::Empty;
            edge.pool().put(addr, replica, checked);
        }
        drop(guard);
        Ok(Outcome {
            status,
            keep: response.client_keep,
        })
    }

    /// [`Self::relay`] for a request whose body streams: the body is sent
    /// while the response is awaited and relayed, so a replica answering
    /// early (a 413) is heard, and one answering before it read the body
    /// (full duplex) still gets all of it.
    #[allow(clippy::too_many_arguments)]
    async fn relay_streaming(
        &mut self,
        route: &Route,
        mut guard: UpstreamGuard,
        replica: Stream,
        addr: SocketAddr,
        keep: bool,
        started: Instant,
        body: Framing,
    ) -> Result<Outcome, RelayError> {
        let edge = self.edge;
        if self.req.expect_continue {
            write_all(&mut self.io, b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(client_io)?;
        }
        let reply = reply_for(edge, &self.req, route, keep, self.outgoing.as_ref());
        let (head_wait, body_wait) = deadlines(edge, route);
        let body_done = AtomicBool::new(false);
        let (mut from, mut to) = tokio::io::split(replica);
        let (mut client_in, mut client_out) = tokio::io::split(&mut self.io);
        let (ubuf, wbuf) = (&mut self.ubuf, &mut self.wbuf);
        let replica_wait = &mut self.replica_wait;
        // Boxed so it can be dropped (ending its borrows) before the end.
        let mut send = Box::pin(send_body(
            &mut client_in,
            &mut self.rbuf,
            &mut to,
            body,
            route.rules().and_then(|r| r.max_body()),
            &body_done,
        ));
        // None while the body is still going; then whether all of it went.
        let mut sent: Option<bool> = None;
        let response = {
            let recv = async {
                loop {
                    let read = read_head(
                        &mut from,
                        replica_wait,
                        head_wait,
                        ubuf,
                        wbuf,
                        &reply,
                        false,
                        Some(&body_done),
                    );
                    let response = read.await?;
                    if !response.informational {
                        break Ok::<_, RelayError>(response);
                    }
                    // 1xx while the body streams: not passed on.
                    wbuf.clear();
                }
            };
            tokio::pin!(recv);
            loop {
                tokio::select! {
                    biased;
                    response = &mut recv => break response?,
                    result = &mut send, if sent.is_none() => match result {
                        Err(SendError::Client { malformed }) => {
                            return Err(RelayError::Client { malformed });
                        }
                        Err(SendError::TooLarge) => return Err(RelayError::TooLarge),
                        Err(SendError::Replica(e)) => {
                            // The replica may still answer (a 413).
                            tracing::debug!(err = %e, "replica stopped reading the request");
                            sent = Some(false);
                        }
                        Ok(()) => sent = Some(true),
                    },
                }
            }
        };
        let status = response.status;
        let seconds = started.elapsed().as_secs_f64();
        edge.metrics()
            .observe_upstream(route.backend().app(), seconds);
        if status == 101 {
            if sent != Some(true) {
                // An upgrade before the request body ended: no tunnel.
                return Err(RelayError::Replica { timed_out: false });
            }
            drop(send);
            drop((client_in, client_out));
            let mut replica = from.unsplit(to);
            guard.become_tunnel(self.cut.clone());
            self.tunnel(&mut replica).await;
            return Ok(Outcome {
                status,
                keep: false,
            });
        }
        // The response streams back while the rest of the body goes on.
        let relayed = {
            let relay = relay_body(
                &mut client_out,
                &mut from,
                replica_wait,
                body_wait,
                ubuf,
                wbuf,
                &response,
            );
            tokio::pin!(relay);
            loop {
                tokio::select! {
                    biased;
                    relayed = &mut relay => break relayed,
                    result = &mut send, if sent.is_none() => {
                        if result.is_err() {
                            tracing::debug!("request body ended early");
                        }
                        sent = Some(result.is_ok());
                    }
                }
            }
        };
        let complete = sent == Some(true);
        if let Err(e) = relayed {
            tracing::debug!(err = %e, "response cut short");
            return Ok(Outcome {
                status,
                keep: false,
            });
        }
        drop(send);
        drop((client_in, client_out));
        if response.replica_keep && complete && ubuf.is_empty() {
            let checked = response.body == Framing::Empty;
            edge.pool().put(addr, from.unsplit(to), checked);
        }
        drop(guard);
        Ok(Outcome {
            status,
            // A body left unread ends the connection.
            keep: response.client_keep && complete,
        })
    }

    /// Carries an upgraded connection both ways until both ends closed
    /// (or the replica's drain deadline cuts the client connection).
    async fn tunnel(&mut self, replica: &mut Stream) {
        self.wbuf.extend_from_slice(&self.ubuf);
        self.ubuf.clear();
        if write_all(&mut self.io, &self.wbuf).await.is_err() {
            return;
        }
        if !self.rbuf.is_empty() {
            if write_all(replica, &self.rbuf).await.is_err() {
                return;
            }
            self.rbuf.clear();
        }
        match tunnel::carry(&mut self.io, replica, self.edge.options().tunnel_idle).await {
            tunnel::End::Closed(None) => {}
            tunnel::End::Closed(Some(e)) => tracing::debug!(err = %e, "tunnel ended"),
            tunnel::End::Idle => tracing::debug!("idle tunnel closed"),
        }
    }
}

/// How the response to `req`, forwarded along `route`, is written.
fn reply_for<'a>(
    edge: &'a EdgeProxy,
    req: &'a head::Request,
    route: &Route,
    keep: bool,
    out: Option<&'a Outgoing>,
) -> Reply<'a> {
    Reply {
        head_request: req.method == http::Method::HEAD,
        http11: req.http11,
        keep_alive: keep,
        upgrade: req.upgrade,
        request_id: &req.request_id,
        hsts: policy::hsts(route, edge.options().tls),
        alt_svc: edge.alt_svc(),
        out,
    }
}

/// The deadlines toward a replica of `route`: its response head, then
/// each piece of its body (the route's rules may set their own).
fn deadlines(edge: &EdgeProxy, route: &Route) -> (Duration, Duration) {
    let default = edge.options().read_timeout;
    route
        .rules()
        .map_or((default, default), |r| r.timeouts(default))
}

/// Reads a response head from a replica into `out` (rewritten for the
/// client), each read within `limit`. `stale_ok`: a connection closed
/// before any byte came is reported as stale (the request may go again).
#[allow(clippy::too_many_arguments)]
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    wait: &mut Deadline,
    limit: Duration,
    ubuf: &mut BytesMut,
    out: &mut Vec<u8>,
    reply: &Reply<'_>,
    stale_ok: bool,
    body_done: Option<&AtomicBool>,
) -> Result<head::Response, RelayError> {
    let fresh = ubuf.is_empty();
    loop {
        if !ubuf.is_empty() {
            // The client keeps its connection only if its whole body was
            // read by the time the answer came.
            let reply = match body_done {
                Some(done) => Reply {
                    keep_alive: reply.keep_alive && done.load(Ordering::Relaxed),
                    ..*reply
                },
                None => *reply,
            };
            match head::parse_response(ubuf, &reply, out) {
                Ok(Some(response)) => {
                    ubuf.advance(response.head_len);
                    return Ok(response);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(err = %e, "replica sent an unusable response");
                    return Err(RelayError::Replica { timed_out: false });
                }
            }
        }
        let nothing_yet = stale_ok && fresh && ubuf.is_empty();
        match wait.read(r, ubuf, HEAD_READ, limit).await {
            Ok(0) if nothing_yet => {
                return Err(RelayError::Stale(std::io::ErrorKind::UnexpectedEof.into()))
            }
            Ok(0) => return Err(replica_io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) if e.kind() == TIMED_OUT => return Err(RelayError::Replica { timed_out: true }),
            Err(e) if nothing_yet => return Err(RelayError::Stale(e)),
            Err(e) => return Err(replica_io(e)),
        }
    }
}

/// Resolves when the client closed its connection (or failed) while its
/// answer is awaited. Bytes it sends meanwhile (pipelined requests) stay in
/// `rbuf` for later; past [`PIPELINED_MAX`] of them it stops looking. A
/// client that only shut down its sending side counts as gone, as nginx
/// counts it by default (a 499 in its log): HTTP/1.1 gives a half-close
/// no meaning, and a long wait for nobody holds the replica.
async fn client_gone<C: AsyncRead + Unpin>(io: &mut C, rbuf: &mut BytesMut) {
    while rbuf.len() < PIPELINED_MAX {
        rbuf.reserve(HEAD_READ);
        match io.read_buf(rbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending().await
}
