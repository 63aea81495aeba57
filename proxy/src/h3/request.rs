//! The request an HTTP/3 client's request becomes for a replica:
//! HTTP/1.1, its path rewritten, berth's forwarding headers, the body
//! streamed from the client.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use http::header;
use http::Request;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;

use crate::policy;
use crate::Route;

use super::front::{RecvHalf, UpstreamBody};
use super::headers::{set, strip_hop_by_hop, strip_unforwardable};

/// Longest wait for the client's next piece of a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The request to the replica: path rewritten by the route, hop-by-hop and
/// untrusted forwarding headers dropped, berth's forwarding headers set,
/// the body streamed from the client as it arrives. The receiver turns
/// true once the whole body was handed on (at once without a body).
pub(super) fn upstream_request(
    route: &Route,
    req: Request<()>,
    mut recv: RecvHalf,
    host: Option<&str>,
    client: IpAddr,
    request_id: &str,
) -> (
    Request<UpstreamBody>,
    tokio::sync::watch::Receiver<bool>,
    Arc<AtomicBool>,
) {
    let limit = route.rules().and_then(|r| r.max_body());
    let too_large = Arc::new(AtomicBool::new(false));
    let (parts, ()) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = policy::upstream_path(route, pq).into_owned();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    strip_unforwardable(&mut headers);
    let fwd = policy::forwarded(Some(client), true, host);
    if let Some(ip) = &fwd.for_ip {
        set(&mut headers, policy::X_FORWARDED_FOR, ip);
    }
    set(&mut headers, policy::X_FORWARDED_PROTO, fwd.proto);
    if let Some(h) = fwd.host {
        set(&mut headers, policy::X_FORWARDED_HOST, h);
        set(&mut headers, header::HOST.as_str(), h);
    }
    set(&mut headers, policy::X_REQUEST_ID, request_id);
    if let Some(rules) = route.rules() {
        rules.edit_request(&mut headers);
    }
    let bodiless = headers.get(header::CONTENT_LENGTH).is_none()
        && matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::DELETE | http::Method::OPTIONS
        );
    let (done, uploaded) = tokio::sync::watch::channel(bodiless);
    let body: UpstreamBody = if bodiless {
        empty_body()
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let over = too_large.clone();
        tokio::spawn(async move {
            let mut total = 0u64;
            loop {
                let next = tokio::time::timeout(BODY_TIMEOUT, recv.recv_data()).await;
                let frame = match next {
                    Ok(Ok(Some(mut chunk))) => {
                        total += chunk.remaining() as u64;
                        if limit.is_some_and(|max| total > max) {
                            // The replica's request fails; the client gets 413.
                            over.store(true, Ordering::Relaxed);
                            let _ = tx.send(Err(std::io::Error::other("body too large"))).await;
                            return;
                        }
                        Ok(Frame::data(chunk.copy_to_bytes(chunk.remaining())))
                    }
                    Ok(Ok(None)) => {
                        let trailers = tokio::time::timeout(BODY_TIMEOUT, recv.recv_trailers());
                        match trailers.await {
                            Ok(Ok(Some(trailers))) => Ok(Frame::trailers(trailers)),
                            Ok(Ok(None)) => {
                                let _ = done.send(true);
                                return;
                            }
                            Ok(Err(err)) => Err(std::io::Error::other(err.to_string())),
                            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                        }
                    }
                    Ok(Err(err)) => Err(std::io::Error::other(err.to_string())),
                    Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                };
                let last = frame.as_ref().map_or(true, |f| f.is_trailers());
                let trailers = frame.is_ok() && last;
                let sent = tx.send(frame).await.is_ok();
                if sent && trailers {
                    let _ = done.send(true);
                }
                if !sent || last {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        StreamBody::new(stream.boxed()).boxed_unsync()
    };
    let mut out = Request::builder()
        .method(parts.method)
        .uri(path)
        .body(body)
        .unwrap_or_else(|_| Request::new(empty_body()));
    *out.headers_mut() = headers;
    (out, uploaded, too_large)
}

fn empty_body() -> UpstreamBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A copy of a body-less request, to send again on a new connection when
/// a kept one turns out closed after it was written and before any answer
/// (as the TCP path retries such requests once).
pub(super) fn spare(request: &Request<UpstreamBody>) -> Option<Request<UpstreamBody>> {
    use http_body::Body as _;
    if !request.method().is_idempotent() || !request.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(empty_body());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}
