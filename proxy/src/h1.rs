//! The edge's HTTP/1.1 front end: one client connection served request
//! after request (pipelined ones too), each forwarded to a replica over a
//! pooled HTTP/1.1 connection, with the policy and replica choice shared
//! with the other front ends (`edge.rs`, `attempt.rs`, `pages.rs`).
//!
//! This is the hot path, so it is written for few syscalls and no
//! per-request allocation: heads are parsed in place from a buffer the
//! connection keeps ([`head`]), the replica's head is written straight
//! from the client's, and a small response (head and body) reaches the
//! client in one write. Bodies stream through in both directions with
//! their framing checked ([`Chunked`]); the request body is relayed while
//! the response is awaited, so a replica answering early (a 413) is heard.
//! h2 clients are served by pingora-core's codec in `h2.rs`.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::StatusCode;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::attempt::{Attempts, Failure};
use crate::chunked::Chunked;
use crate::edge::{EdgeProxy, Plan};
use crate::head::{self, Framing, Refused, Reply};
use crate::pages;
use crate::policy::{self, X_REQUEST_ID};
use crate::pool;
use crate::tunnel;
use crate::{Route, UpstreamGuard};

/// How long an idle keep-alive connection is kept open.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for a whole request head once its first byte came.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next bytes of a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a write to a client may stall.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read size for heads, and what a connection's buffers start with (and
/// shrink back to after a large message): memory per idle connection.
const HEAD_READ: usize = 4 * 1024;
/// How long, and how much, a closing connection still reads and drops.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
/// Read size for bodies.
const BODY_READ: usize = 16 * 1024;
/// Pipelined bytes read ahead while a response is awaited.
const PIPELINED_MAX: usize = 64 * 1024;

/// Serves one HTTP/1.1 client connection until it closes, fails, idles
/// out, or the edge shuts down; `sni` is the name its TLS handshake asked
/// for, if any. `cut` cancels the connection: a tunnel registers it with
/// its replica, whose drain deadline may then end the connection.
pub(crate) async fn serve<C>(
    edge: &EdgeProxy,
    io: C,
    peer: SocketAddr,
    sni: Option<String>,
    shutdown: &ShutdownWatch,
    cut: CancellationToken,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    // One wait for shutdown for the connection's whole life: registered
    // once, not again for every request.
    let mut stop = shutdown.clone();
    let stopping = async move {
        // A dropped sender never asks to stop.
        if stop.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stopping);
    let mut conn = Conn {
        edge,
        io,
        stopping: stopping.as_mut(),
        fwd: head::Forwarding::new(Some(peer.ip()), edge.options().tls),
        sni,
        rbuf: BytesMut::with_capacity(HEAD_READ),
        wbuf: Vec::with_capacity(HEAD_READ),
        ubuf: BytesMut::with_capacity(HEAD_READ),
        block: Vec::with_capacity(1024),
        sbuf: Vec::with_capacity(1024),
        req: head::Request::default(),
        shutdown: shutdown.clone(),
        cut,
        idle: Deadline::new(),
        replica_wait: Deadline::new(),
    };
    conn.run().await;
}

/// One client connection and the buffers it reuses.
struct Conn<'e, C> {
    edge: &'e EdgeProxy,
    io: C,
    /// Resolves once the edge shuts down; not polled after that.
    stopping: Pin<&'e mut (dyn Future<Output = ()> + Send)>,
    fwd: head::Forwarding,
    /// The name the connection's TLS handshake asked for.
    sni: Option<String>,
    /// Bytes from the client not consumed yet (pipelined requests too).
    rbuf: BytesMut,
    /// Bytes for the client.
    wbuf: Vec<u8>,
    /// Bytes from the replica.
    ubuf: BytesMut,
    /// The header section of the request for the replica.
    block: Vec<u8>,
    /// The head sent to the replica.
    sbuf: Vec<u8>,
    req: head::Request,
    shutdown: ShutdownWatch,
    /// Cancels the connection (see [`serve`]).
    cut: CancellationToken,
    /// Times the wait for the client's next request.
    idle: Deadline,
    /// Times the waits for the replica.
    replica_wait: Deadline,
}

/// How reading the next request ended.
enum Next {
    Request,
    /// Closed, idle too long, or shutting down: nothing to answer.
    Closed,
    /// A head that cannot be served: answered with this status, then closed.
    Refused(u16),
}

/// How one exchange ended.
struct Outcome {
    /// Status sent to the client (0: none).
    status: u16,
    /// The client connection may carry another request.
    keep: bool,
}

/// Why relaying to one replica failed.
enum RelayError {
    /// Nothing of the request was delivered and nothing came back, on a
    /// pooled connection: safe to send again on a new one.
    Stale(std::io::Error),
    /// The replica failed, timed out or broke the protocol.
    Replica { timed_out: bool },
    /// The client failed (went away, stalled, or sent a malformed body).
    Client { malformed: bool },
}

fn replica_io(e: std::io::Error) -> RelayError {
    tracing::debug!(err = %e, "replica failed");
    RelayError::Replica { timed_out: false }
}

fn client_io(e: std::io::Error) -> RelayError {
    tracing::debug!(err = %e, "client failed");
    RelayError::Client { malformed: false }
}

const TIMED_OUT: std::io::ErrorKind = std::io::ErrorKind::TimedOut;

/// Reads up to `size` more bytes of `r` into `buf` within `limit`: `Ok(0)`
/// at end of stream.
async fn read_more<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    size: usize,
    limit: Duration,
) -> std::io::Result<usize> {
    buf.reserve(size);
    match timeout(limit, r.read_buf(buf)).await {
        Ok(read) => read,
        Err(_) => Err(TIMED_OUT.into()),
    }
}

/// A connection's timer for one kind of wait (the client's next request,
/// the replica's answer), armed lazily. A wait only computes its deadline;
/// the timer in tokio's wheel stays as it is until it fires, and is then
/// set to the deadline of the wait in progress. `timeout()` around every
/// read registered a timer per wait instead, and perf showed that
/// registering can wake the runtime's driver through its eventfd: a write
/// and an extra poll for about every other request.
struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Reads up to `size` more bytes of `r` into `buf` within `limit`:
    /// `Ok(0)` at end of stream.
    async fn read<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        buf: &mut BytesMut,
        size: usize,
        limit: Duration,
    ) -> std::io::Result<usize> {
        buf.reserve(size);
        let deadline = tokio::time::Instant::now() + limit;
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let read = r.read_buf(buf);
        tokio::pin!(read);
        loop {
            tokio::select! {
                biased;
                read = &mut read => return read,
                () = self.sleep.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(TIMED_OUT.into());
                    }
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// Writes all of `bytes` to `w` within [`WRITE_TIMEOUT`], and flushes.
async fn write_all<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    let write = async {
        w.write_all(bytes).await?;
        w.flush().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(written) => written,
        Err(_) => Err(TIMED_OUT.into()),
    }
}

/// Drops a buffer grown by a large message back to the usual size.
fn shrink(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > 2 * BODY_READ {
        *buf = Vec::with_capacity(HEAD_READ);
    }
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> Conn<'_, C> {
    async fn run(&mut self) {
        loop {
            match self.next_request().await {
                Next::Request => {}
                Next::Closed => return,
                Next::Refused(status) => {
                    let page = policy::error_page(status);
                    // No id of this request was read.
                    self.req.request_id.clear();
                    self.edge.metrics().observe_request(None, status);
                    self.wbuf.clear();
                    let page = pages::render(page, false, "");
                    page_head(&mut self.wbuf, &page, self.req.http11, false);
                    self.wbuf.extend_from_slice(page.body);
                    if write_all(&mut self.io, &self.wbuf).await.is_ok() {
                        self.close(true).await;
                    }
                    return;
                }
            }
            let outcome = {
                let _in_flight = self.edge.metrics().in_flight();
                self.exchange().await
            };
            if !outcome.keep {
                // Only a request with a body, or bytes sent after it, can
                // leave the client writing into a closing connection.
                let unread = self.req.body != Framing::Empty || !self.rbuf.is_empty();
                self.close(unread).await;
                return;
            }
            shrink(&mut self.wbuf);
            if self.rbuf.is_empty() && self.rbuf.capacity() > 2 * BODY_READ {
                self.rbuf = BytesMut::with_capacity(HEAD_READ);
            }
            if self.ubuf.capacity() > 2 * BODY_READ {
                self.ubuf = BytesMut::with_capacity(HEAD_READ);
            }
        }
    }

    /// Ends the connection after a response: FIN first (and TLS's
    /// close_notify). With `linger`, whatever the client still sends (an
    /// upload the edge answered early) is then read and dropped for a
    /// moment, so a reset does not destroy the response before the client
    /// read it (nginx's lingering close). Without, the socket closes at
    /// once, as nginx does when nothing of the client is left unread: no
    /// wait for the client's FIN, no wakeup more per connection.
    async fn close(&mut self, linger: bool) {
        if timeout(WRITE_TIMEOUT, self.io.shutdown()).await.is_err() || !linger {
            return;
        }
        let linger = async {
            let mut drained = 0;
            while drained < LINGER_BYTES {
                self.rbuf.clear();
                match read_more(&mut self.io, &mut self.rbuf, BODY_READ, LINGER_TIME).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        };
        let _ = timeout(LINGER_TIME, linger).await;
    }

    /// Reads until a whole request head is buffered and parsed into
    /// `self.req` (its forwarded header section into `self.block`).
    async fn next_request(&mut self) -> Next {
        let mut deadline = None;
        loop {
            if !self.rbuf.is_empty() {
                match head::parse_request(&self.rbuf, &mut self.req, &mut self.block, &self.fwd) {
                    Ok(true) => return Next::Request,
                    Ok(false) if self.rbuf.len() >= head::MAX_HEAD => return Next::Refused(431),
                    Ok(false) => {}
                    Err(Refused(status)) => return Next::Refused(status),
                }
            }
            let read = match deadline {
                Some(deadline) => {
                    let read = read_more(&mut self.io, &mut self.rbuf, HEAD_READ, HEAD_TIMEOUT);
                    match tokio::time::timeout_at(deadline, read).await {
                        Ok(read) => read,
                        Err(_) => Err(TIMED_OUT.into()),
                    }
                }
                None => {
                    // Idle between requests: shutdown ends the wait.
                    let read =
                        self.idle
                            .read(&mut self.io, &mut self.rbuf, HEAD_READ, KEEPALIVE_TIMEOUT);
                    tokio::select! {
                        biased;
                        read = read => read,
                        () = self.stopping.as_mut() => return Next::Closed,
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + HEAD_TIMEOUT);
                }
            }
        }
    }

    /// Serves the request in `self.req`.
    async fn exchange(&mut self) -> Outcome {
        let edge = self.edge;
        // The value is read (a lock shared by every connection) only once
        // it changed: shutting down.
        // (A dropped sender counts as changed: its last value holds.)
        let closing = self.shutdown.has_changed().unwrap_or(true) && *self.shutdown.borrow();
        let keep = self.req.keep_alive && !closing;
        // A body berth does not read itself (it answers on its own) ends
        // the connection.
        let own_keep = keep && self.req.body == Framing::Empty;
        let host = (!self.req.host.is_empty()).then_some(self.req.host.as_str());
        let sni = self.sni.as_deref();
        let (plan, app) = edge.plan(sni, host, self.req.path(), &self.req.target);
        let outcome = match plan {
            Plan::Forward(route) => self.forward(route, keep).await,
            Plan::Challenge(key_auth) => {
                let ctype = [(&b"content-type"[..], &b"text/plain"[..])];
                self.answer(StatusCode::OK, &ctype, key_auth.as_bytes(), own_keep)
                    .await
            }
            Plan::Redirect(to) => {
                let fields = [
                    (&b"content-type"[..], &b"text/plain"[..]),
                    (b"location", to.as_bytes()),
                    (b"cache-control", b"no-store"),
                ];
                let body = b"Moved to HTTPS\n";
                self.answer(StatusCode::PERMANENT_REDIRECT, &fields, body, own_keep)
                    .await
            }
            Plan::Page(page) => {
                self.req.keep_alive = own_keep;
                self.consume_head();
                self.send_page(page).await
            }
            Plan::Site { site, path, hsts } => {
                let headers = head::header_map(&self.rbuf[..self.req.head_len]);
                let resp = site.respond(&self.req.method, &path, &headers);
                let mut fields: Vec<(&[u8], &[u8])> = resp
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
                    .collect();
                fields.push((X_REQUEST_ID.as_bytes(), self.req.request_id.as_bytes()));
                if let Some(hsts) = hsts {
                    fields.push((b"strict-transport-security", hsts.as_bytes()));
                }
                if let Some(alt_svc) = edge.alt_svc() {
                    fields.push((b"alt-svc", alt_svc.as_bytes()));
                }
                let keep = own_keep;
                self.wbuf.clear();
                // The site sets Content-Length itself (and none on 304).
                head::own_head(
                    &mut self.wbuf,
                    resp.status,
                    fields,
                    None,
                    self.req.http11,
                    keep,
                );
                self.consume_head();
                self.wbuf.extend_from_slice(&resp.body);
                let written = write_all(&mut self.io, &self.wbuf).await;
                Outcome {
                    status: resp.status.as_u16(),
                    keep: keep && written.is_ok(),
                }
            }
        };
        edge.metrics().observe_request(app.as_ref(), outcome.status);
        outcome
    }

    /// Drops the request head from the read buffer.
    fn consume_head(&mut self) {
        self.rbuf.advance(self.req.head_len);
    }

    /// Answers with one of berth's pages (the head was consumed).
    async fn send_page(&mut self, page: policy::ErrorPage) -> Outcome {
        let keep = self.req.keep_alive;
        self.wbuf.clear();
        let head = self.req.method == http::Method::HEAD;
        let rendered = pages::render(page, head, &self.req.request_id);
        page_head(&mut self.wbuf, &rendered, self.req.http11, keep);
        self.wbuf.extend_from_slice(rendered.body);
        let written = write_all(&mut self.io, &self.wbuf).await;
        Outcome {
            status: page.status,
            keep: keep && written.is_ok(),
        }
    }

    /// Answers with a whole response berth makes itself.
    async fn answer(
        &mut self,
        status: StatusCode,
        fields: &[(&[u8], &[u8])],
        body: &[u8],
        keep: bool,
    ) -> Outcome {
        self.wbuf.clear();
        let id = (X_REQUEST_ID.as_bytes(), self.req.request_id.as_bytes());
        let fields = fields.iter().copied().chain([id]);
        head::own_head(
            &mut self.wbuf,
            status,
            fields,
            Some(body.len()),
            self.req.http11,
            keep,
        );
        if self.req.method != http::Method::HEAD {
            self.wbuf.extend_from_slice(body);
        }
        self.consume_head();
        let written = write_all(&mut self.io, &self.wbuf).await;
        Outcome {
            status: status.as_u16(),
            keep: keep && written.is_ok(),
        }
    }

    /// Forwards the request along `route`, trying replicas as
    /// [`Attempts`] hands them out; a failure before anything reached the
    /// client gets an error page.
    async fn forward(&mut self, route: Route, keep: bool) -> Outcome {
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
        self.send_page(page).await
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
        self.sbuf.extend_from_slice(&self.block);
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
        let reply = reply_for(edge, &self.req, route, keep);
        // Sending again is safe while nothing came back.
        let mut stale_ok = self.req.retryable();
        let response = loop {
            let read = read_head(
                &mut replica,
                &mut self.replica_wait,
                edge.options().read_timeout,
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
            edge.options().read_timeout,
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
        let reply = reply_for(edge, &self.req, route, keep);
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
                        edge.options().read_timeout,
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
                edge.options().read_timeout,
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
                        if let Err(SendError::Client { .. } | SendError::Replica(_)) = &result {
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

/// Writes the head of one of berth's pages, as [`pages`] rendered it, into
/// `out`.
fn page_head(out: &mut Vec<u8>, page: &pages::Rendered<'_>, http11: bool, keep: bool) {
    let fields = page.fields().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    head::own_head(out, page.status, fields, Some(page.length), http11, keep);
}

/// How the response to `req`, forwarded along `route`, is written.
fn reply_for<'a>(
    edge: &'a EdgeProxy,
    req: &'a head::Request,
    route: &Route,
    keep: bool,
) -> Reply<'a> {
    Reply {
        head_request: req.method == http::Method::HEAD,
        http11: req.http11,
        keep_alive: keep,
        upgrade: req.upgrade,
        request_id: &req.request_id,
        hsts: policy::hsts(route, edge.options().tls),
        alt_svc: edge.alt_svc(),
    }
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

/// Why sending a request body failed.
enum SendError {
    Client { malformed: bool },
    Replica(std::io::Error),
}

/// Relays the rest of a request body (framed by `framing`) from the client
/// to the replica; `done` turns true when all of it went.
async fn send_body<C, W>(
    io: &mut C,
    rbuf: &mut BytesMut,
    to: &mut W,
    framing: Framing,
    done: &AtomicBool,
) -> Result<(), SendError>
where
    C: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let client_gone = |e: std::io::Error| {
        tracing::debug!(err = %e, "client body failed");
        SendError::Client { malformed: false }
    };
    match framing {
        Framing::Length(mut left) => {
            while left > 0 {
                if rbuf.is_empty()
                    && read_more(io, rbuf, BODY_READ, BODY_TIMEOUT)
                        .await
                        .map_err(client_gone)?
                        == 0
                {
                    return Err(SendError::Client { malformed: false });
                }
                let n = usize::try_from(left).map_or(rbuf.len(), |l| l.min(rbuf.len()));
                write_all(to, &rbuf[..n])
                    .await
                    .map_err(SendError::Replica)?;
                rbuf.advance(n);
                left -= n as u64;
            }
        }
        Framing::Chunked => {
            // Re-chunked with berth's own size lines, extensions and
            // trailers dropped (as nginx does): however the client framed
            // it, the replica parses only framing the edge wrote.
            let mut chunked = Chunked::default();
            let mut out = Vec::with_capacity(BODY_READ + 64);
            loop {
                if !rbuf.is_empty() {
                    out.clear();
                    let n = chunked
                        .feed(rbuf, |data| {
                            let _ = write!(out, "{:x}\r\n", data.len());
                            out.extend_from_slice(data);
                            out.extend_from_slice(b"\r\n");
                        })
                        .map_err(|_| SendError::Client { malformed: true })?;
                    rbuf.advance(n);
                    if chunked.is_done() {
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    if !out.is_empty() {
                        write_all(to, &out).await.map_err(SendError::Replica)?;
                    }
                    if chunked.is_done() {
                        break;
                    }
                }
                if read_more(io, rbuf, BODY_READ, BODY_TIMEOUT)
                    .await
                    .map_err(client_gone)?
                    == 0
                {
                    return Err(SendError::Client { malformed: false });
                }
            }
        }
        Framing::Empty | Framing::Close => {}
    }
    done.store(true, Ordering::Relaxed);
    Ok(())
}

/// Relays a response body from the replica to the client after its head
/// (already in `wbuf`): a small response goes out in one write. Each read
/// of the replica waits at most `limit`.
async fn relay_body<C: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
    io: &mut C,
    replica: &mut R,
    wait: &mut Deadline,
    limit: Duration,
    ubuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
    response: &head::Response,
) -> std::io::Result<()> {
    let truncated = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body cut short");
    match response.body {
        Framing::Empty => write_all(io, wbuf).await,
        Framing::Length(mut left) => loop {
            let n = usize::try_from(left).map_or(ubuf.len(), |l| l.min(ubuf.len()));
            wbuf.extend_from_slice(&ubuf[..n]);
            ubuf.advance(n);
            left -= n as u64;
            write_all(io, wbuf).await?;
            wbuf.clear();
            if left == 0 {
                return Ok(());
            }
            if wait.read(replica, ubuf, BODY_READ, limit).await? == 0 {
                return Err(truncated());
            }
        },
        Framing::Chunked => {
            let mut chunked = Chunked::default();
            loop {
                if !ubuf.is_empty() {
                    let bad = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                    let n = if response.dechunk {
                        chunked
                            .feed(ubuf, |d| wbuf.extend_from_slice(d))
                            .map_err(bad)?
                    } else {
                        let n = chunked.feed(ubuf, |_| {}).map_err(bad)?;
                        wbuf.extend_from_slice(&ubuf[..n]);
                        n
                    };
                    ubuf.advance(n);
                    if chunked.is_done() {
                        return write_all(io, wbuf).await;
                    }
                }
                // What is here goes out before waiting for more (a stream
                // of events must flow).
                if !wbuf.is_empty() {
                    write_all(io, wbuf).await?;
                    wbuf.clear();
                }
                if wait.read(replica, ubuf, BODY_READ, limit).await? == 0 {
                    return Err(truncated());
                }
            }
        }
        Framing::Close => loop {
            wbuf.extend_from_slice(ubuf);
            ubuf.clear();
            write_all(io, wbuf).await?;
            wbuf.clear();
            if wait.read(replica, ubuf, BODY_READ, limit).await? == 0 {
                return Ok(());
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_times_each_wait_from_its_own_start() {
        let (mut near, mut far) = tokio::io::duplex(64);
        let mut wait = Deadline::new();
        let mut buf = BytesMut::new();
        let minute = Duration::from_secs(60);
        far.write_all(b"x").await.unwrap();
        assert_eq!(wait.read(&mut near, &mut buf, 16, minute).await.unwrap(), 1);
        // A wait that starts 50 s later ends 60 s after its own start, not
        // at the first wait's deadline.
        tokio::time::advance(Duration::from_secs(50)).await;
        let start = tokio::time::Instant::now();
        let err = wait
            .read(&mut near, &mut buf, 16, minute)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), TIMED_OUT);
        let waited = start.elapsed();
        assert!(
            waited >= minute && waited < minute + Duration::from_secs(1),
            "{waited:?}"
        );
        // A shorter wait after a longer one is not held to the longer one.
        let start = tokio::time::Instant::now();
        let short = Duration::from_secs(5);
        assert!(wait.read(&mut near, &mut buf, 16, short).await.is_err());
        let waited = start.elapsed();
        assert!(
            waited >= short && waited < short + Duration::from_secs(1),
            "{waited:?}"
        );
        // Data arriving in time is read.
        far.write_all(b"yz").await.unwrap();
        assert_eq!(wait.read(&mut near, &mut buf, 16, short).await.unwrap(), 2);
        assert_eq!(&buf[..], b"xyz");
    }
}
