//! The HTTP/1.1 request loop: read a head, plan it, answer it (berth's
//! own answer or a replica's), then keep the connection for the next
//! request or close it.

use bytes::BytesMut;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::edge::Plan;
use crate::head::{self, Framing, Refused};
use crate::pages;
use crate::policy::{self, X_REQUEST_ID};

use super::answer::page_head;
use super::conn::{Conn, Outcome};
use super::io::{
    read_more, write_all, BODY_READ, HEAD_READ, HEAD_TIMEOUT, KEEPALIVE_TIMEOUT, LINGER_BYTES,
    LINGER_TIME, TIMED_OUT, WRITE_TIMEOUT,
};

/// How reading the next request ended.
enum Next {
    Request,
    /// Closed, idle too long, or shutting down: nothing to answer.
    Closed,
    /// A head that cannot be served: answered with this status, then closed.
    Refused(u16),
}

/// Drops a buffer grown by a large message back to the usual size.
fn shrink(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > 2 * BODY_READ {
        *buf = Vec::with_capacity(HEAD_READ);
    }
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> Conn<'_, C> {
    pub(super) async fn run(&mut self) {
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
                    let page = pages::render(page, None, false, "");
                    page_head(&mut self.wbuf, &page, self.req.http11, false);
                    self.wbuf.extend_from_slice(&page.body);
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
        self.outgoing = None;
        let screened = match &plan {
            Plan::Forward(route) | Plan::Site { route, .. } | Plan::Page(_, Some(route)) => {
                self.screen(route).await
            }
            _ => None,
        };
        if let Some(own) = screened {
            let outcome = self.send_own(own, own_keep).await;
            edge.metrics().observe_request(app.as_ref(), outcome.status);
            return outcome;
        }
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
            Plan::Page(page, app) => {
                self.req.keep_alive = own_keep;
                self.consume_head();
                self.send_page(page, app.as_ref().map(|r| &**r.backend()))
                    .await
            }
            Plan::Site {
                site, path, hsts, ..
            } => {
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
}
