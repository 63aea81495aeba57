//! An HTTP/3 request carried to a replica: the route decided, a replica
//! connected (the next one on failure), the request sent (again on a new
//! connection when a kept one turns out closed), the response streamed
//! back.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::attempt::{self, Attempts, Failure};
use crate::compress::Encoder;
use crate::fronting;
use crate::path;
use crate::policy::{self, Decision};
use crate::pool;
use crate::UpstreamGuard;

use super::answer::{fail, page, screen, send_own, send_site, Answer};
use super::front::{Front, Outcome, RecvHalf, SendHalf, Sender};
use super::headers::{set, strip_hop_by_hop};
use super::request::{spare, upstream_request};

/// Longest wait for the client to take a piece of the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// A kept connection that fails this soon after a body-less idempotent
/// request was written to it was closed by the replica before it read the
/// request (not while it worked on it): the request goes again.
const RESEND_WINDOW: Duration = Duration::from_secs(1);

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
pub(super) async fn forward(
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
    let answer = Answer {
        request_id,
        head,
        app: None,
    };
    if fronting::misdirected(Some(&*front.certs), sni, host.as_deref()) {
        return page(send, policy::MISDIRECTED, answer, outcome).await;
    }
    let path = req.uri().path().to_string();
    let (route, site, unserved) = {
        let table = front.router.load();
        match policy::decide(&table, host.as_deref(), &path) {
            Decision::Forward(route) => (route.clone(), None, None),
            Decision::Static(route, site) => (route.clone(), Some(site.clone()), None),
            Decision::NoReplica(route) => (route.clone(), None, Some(policy::NO_REPLICA)),
            Decision::Stopped(route) => (route.clone(), None, Some(policy::STOPPED)),
            Decision::UnknownHost => return page(send, policy::NOT_FOUND, answer, outcome).await,
        }
    };
    outcome.app = Some(route.backend().app().clone());
    let app = route.backend().clone();
    let answer = Answer {
        app: Some(&app),
        ..answer
    };
    let outgoing = match screen(&route, &req, host.as_deref(), client).await {
        Ok(outgoing) => outgoing,
        Err(own) => return send_own(send, own, answer, outcome).await,
    };
    if let Some(unserved) = unserved {
        return page(send, unserved, answer, outcome).await;
    }
    if let Some(site) = site {
        let site_path = policy::site_path(&route, &path);
        let mut response = site.respond(req.method(), &site_path, req.headers());
        if let Some(out) = &outgoing {
            out.apply(&mut response.headers, None, false);
        }
        let hsts = policy::hsts(&route, true);
        return send_site(send, response, hsts, request_id, outcome).await;
    }
    let default = front.options.read_timeout;
    let (head_wait, body_wait) = route
        .rules()
        .map_or((default, default), |r| r.timeouts(default));
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
    let (request, uploaded, too_large) =
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
            let read_timeout = head_wait;
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
        if too_large.load(std::sync::atomic::Ordering::Relaxed) {
            return fail(send, Failure::TooLarge, answer, outcome).await;
        }
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
    let mut encoder = None;
    if let Some(out) = &outgoing {
        let (coding, varies) = out.compression(parts.status.as_u16(), head.headers());
        // Compressed only if its encoder could be made: the head says so
        // only then.
        encoder = coding.and_then(|c| Encoder::new(c).ok());
        let coding = coding.filter(|_| encoder.is_some());
        out.apply(head.headers_mut(), coding, varies);
    }
    outcome.status = parts.status.as_u16();
    send.send_response(head).await?;
    loop {
        let frame = match tokio::time::timeout(body_wait, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => {
                if let Some(encoder) = encoder.take() {
                    let mut out = Vec::new();
                    if encoder.finish(&mut out).is_err() {
                        send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                        return Ok(());
                    }
                    let written =
                        tokio::time::timeout(WRITE_TIMEOUT, send.send_data(Bytes::from(out)));
                    if written.await.is_err() {
                        send.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
                        return Ok(());
                    }
                }
                break;
            }
            // The replica broke off mid-body (or stalled): reset the
            // stream so the client sees a failure, not a short success.
            Ok(Some(Err(_))) | Err(_) => {
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Ok(());
            }
        };
        let written = match frame.into_data() {
            Ok(data) => {
                let data = match encoder.as_mut().map(|e| compress_piece(e, &data)) {
                    None => data,
                    Some(Ok(packed)) => packed,
                    Some(Err(_)) => {
                        send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                        return Ok(());
                    }
                };
                tokio::time::timeout(WRITE_TIMEOUT, send.send_data(data)).await
            }
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

/// A piece of a compressed response body: what `data` adds, flushed so
/// the client can read it now (a stream of events flows).
fn compress_piece(encoder: &mut Encoder, data: &[u8]) -> std::io::Result<Bytes> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    encoder.push(data, &mut out)?;
    encoder.flush(&mut out)?;
    Ok(Bytes::from(out))
}
