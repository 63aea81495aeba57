//! HTTP/1.1 message heads on the edge's own fast path: a client's request
//! head parsed in place (httparse, no header map) and checked, the head
//! sent to the replica written straight from it, and a replica's response
//! head rewritten for the client the same way.
//!
//! What is refused, and why (RFC 9112): a body framed by both
//! `Content-Length` and `Transfer-Encoding`, differing lengths, any
//! transfer coding but `chunked`, a missing or repeated `Host` in
//! HTTP/1.1 — the shapes request smuggling is made of. Every head the
//! edge writes is its own, with CRLF line ends, so nothing of a client's
//! framing reaches a replica unchecked.

use std::borrow::Cow;
use std::io::Write;
use std::mem::MaybeUninit;
use std::net::IpAddr;

use http::Method;

use crate::path;
use crate::policy::{self, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one head.
const MAX_HEADERS: usize = 100;
/// Most `Connection` header fields in one head.
const MAX_CONNECTION_FIELDS: usize = 8;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the sender closes (responses only).
    Close,
}

/// A request refused before it reached any route: the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u16);

/// What the edge keeps of a client's request head. Its strings are reused
/// from request to request on a connection.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// The path and query (`*` for `OPTIONS *`).
    pub target: String,
    /// `Host`, or the authority of an absolute-form target.
    pub host: String,
    /// The request id: the client's when sane, else a fresh one.
    pub request_id: String,
    pub body: Framing,
    /// The client may send another request after this one.
    pub keep_alive: bool,
    /// A protocol upgrade (WebSocket) is asked for.
    pub upgrade: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub expect_continue: bool,
    /// Length of the head in the buffer it was parsed from.
    pub head_len: usize,
}

impl Default for Request {
    fn default() -> Self {
        Self {
            method: Method::GET,
            http11: true,
            target: String::new(),
            host: String::new(),
            request_id: String::with_capacity(128),
            body: Framing::Empty,
            keep_alive: false,
            upgrade: false,
            expect_continue: false,
            head_len: 0,
        }
    }
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// Whether the request may be sent again on another connection.
    pub fn retryable(&self) -> bool {
        self.method.is_idempotent() && self.body == Framing::Empty
    }
}

/// The edge's own forwarding values for a client connection, the client's
/// address written out once for all its requests.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The client's address as text (`INET6_ADDRSTRLEN` bytes at most).
    client: Option<([u8; 46], usize)>,
    tls: bool,
}

impl Forwarding {
    /// The values for a connection from `client` (IPv4-mapped addresses as
    /// IPv4), over TLS or not.
    pub fn new(client: Option<IpAddr>, tls: bool) -> Self {
        let client = client.map(|ip| {
            let mut text = [0u8; 46];
            let mut out = std::io::Cursor::new(&mut text[..]);
            let _ = write!(out, "{}", ip.to_canonical());
            let len = usize::try_from(out.position()).unwrap_or(0);
            (text, len)
        });
        Forwarding { client, tls }
    }

    fn client(&self) -> Option<&[u8]> {
        self.client.as_ref().map(|(text, len)| &text[..*len])
    }
}

fn is_one_of(name: &[u8], names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// The names a `Connection` field lists.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// The `Connection` fields of a head, bounded.
struct ConnectionFields<'h> {
    values: [&'h [u8]; MAX_CONNECTION_FIELDS],
    len: usize,
}

impl<'h> ConnectionFields<'h> {
    fn of(headers: &[httparse::Header<'h>]) -> Option<Self> {
        let mut fields = Self {
            values: [&[]; MAX_CONNECTION_FIELDS],
            len: 0,
        };
        for h in headers {
            if h.name.eq_ignore_ascii_case("connection") {
                *fields.values.get_mut(fields.len)? = h.value;
                fields.len += 1;
            }
        }
        Some(fields)
    }

    fn has(&self, token: &str) -> bool {
        self.values[..self.len]
            .iter()
            .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(token.as_bytes())))
    }

    /// Whether `name` is listed (so connection-specific).
    fn names(&self, name: &str) -> bool {
        self.len > 0 && self.has(name)
    }
}

/// A `Content-Length` value: digits only (a list of equal values is one).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|b| *b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

/// Whether a `Transfer-Encoding` value ends in `chunked`, and whether it is
/// only `chunked`.
fn chunked_coding(value: &[u8]) -> (bool, bool) {
    let mut codings = tokens(value);
    let mut last = None;
    let mut count = 0;
    for c in codings.by_ref() {
        last = Some(c);
        count += 1;
    }
    let chunked = last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
    (chunked, chunked && count == 1)
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a request head at the start of `buf` into `req` and writes the
/// header section the replica gets (every field but connection-specific
/// and forwarding ones, then berth's own, then the blank line) into
/// `upstream`. `Ok(false)`: the head is not complete yet.
pub fn parse_request(
    buf: &[u8],
    req: &mut Request,
    upstream: &mut Vec<u8>,
    fwd: &Forwarding,
) -> Result<bool, Refused> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(false),
        Err(httparse::Error::TooManyHeaders) => return Err(Refused(431)),
        Err(_) => return Err(Refused(400)),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(Refused(400));
    };
    let headers = parsed.headers;
    req.head_len = head_len;
    req.http11 = version == 1;
    req.method = Method::from_bytes(method.as_bytes()).map_err(|_| Refused(400))?;
    req.target.clear();
    req.host.clear();
    let mut host_from_target = false;
    if req.method == Method::CONNECT {
        // The edge is no forward proxy; a 2xx would make it a tunnel.
        return Err(Refused(405));
    }
    if target.starts_with('/') || (target == "*" && req.method == Method::OPTIONS) {
        req.target.push_str(target);
    } else {
        // Absolute form: its authority is the host (RFC 9112 §3.2.2).
        let uri: http::Uri = target.parse().map_err(|_| Refused(400))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(Refused(400));
        };
        let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
        if !web || authority.as_str().contains('@') {
            return Err(Refused(400));
        }
        req.host.push_str(authority.as_str());
        let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
        if !pq.starts_with('/') {
            req.target.push('/');
        }
        req.target.push_str(pq);
        host_from_target = true;
    }
    // Routing, prefix stripping and the replica see the path without dot
    // segments; a path that has none is not copied.
    let normalized = match path::normalize_target(&req.target) {
        Cow::Owned(target) => Some(target),
        Cow::Borrowed(_) => None,
    };
    if let Some(target) = normalized {
        req.target.clear();
        req.target.push_str(&target);
    }
    let connection = ConnectionFields::of(headers).ok_or(Refused(400))?;
    let (mut hosts, mut length, mut chunked) = (0, None, false);
    let mut te = false;
    let mut incoming_id: Option<&[u8]> = None;
    let mut upgrade_value: Option<&[u8]> = None;
    req.expect_continue = false;
    for h in headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if !host_from_target {
                req.host
                    .push_str(std::str::from_utf8(h.value).map_err(|_| Refused(400))?);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(h.value).ok_or(Refused(400))?;
            if length.is_some_and(|l| l != n) {
                return Err(Refused(400));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let (ends_chunked, only_chunked) = chunked_coding(h.value);
            if !ends_chunked {
                return Err(Refused(400));
            }
            if !only_chunked || te {
                return Err(Refused(501));
            }
            te = true;
            chunked = true;
        } else if name.eq_ignore_ascii_case(X_REQUEST_ID.as_bytes()) {
            incoming_id = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_value = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                return Err(Refused(417));
            }
            req.expect_continue = req.http11;
        }
    }
    if hosts > 1 || (hosts == 0 && req.http11 && !host_from_target) {
        return Err(Refused(400));
    }
    if chunked && (length.is_some() || !req.http11) {
        return Err(Refused(400));
    }
    req.body = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0) | None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };
    if req.body == Framing::Empty {
        req.expect_continue = false;
    }
    req.keep_alive = if req.http11 {
        !connection.has("close")
    } else {
        connection.has("keep-alive")
    };
    req.upgrade = req.http11 && upgrade_value.is_some() && connection.has("upgrade");
    policy::write_request_id(incoming_id, &mut req.request_id);

    upstream.clear();
    for h in headers.iter() {
        let name = h.name;
        // Framing and `Expect` are the edge's own to write.
        let lower_known = !policy::forwardable(name.as_bytes())
            || is_one_of(name.as_bytes(), &["content-length", "expect"]);
        let host = name.eq_ignore_ascii_case("host");
        if lower_known || (host && host_from_target) || (!host && connection.names(name)) {
            continue;
        }
        put_header(upstream, name.as_bytes(), h.value);
    }
    if host_from_target {
        put_header(upstream, b"host", req.host.as_bytes());
    }
    if let Some(ip) = fwd.client() {
        put_header(upstream, X_FORWARDED_FOR.as_bytes(), ip);
    }
    let proto: &[u8] = if fwd.tls { b"https" } else { b"http" };
    put_header(upstream, X_FORWARDED_PROTO.as_bytes(), proto);
    if !req.host.is_empty() {
        put_header(upstream, X_FORWARDED_HOST.as_bytes(), req.host.as_bytes());
    }
    put_header(upstream, X_REQUEST_ID.as_bytes(), req.request_id.as_bytes());
    match req.body {
        Framing::Length(n) => put_header(
            upstream,
            b"content-length",
            itoa::Buffer::new().format(n).as_bytes(),
        ),
        Framing::Chunked => put_header(upstream, b"transfer-encoding", b"chunked"),
        Framing::Empty | Framing::Close => {}
    }
    if req.upgrade {
        if let Some(value) = upgrade_value {
            put_header(upstream, b"connection", b"upgrade");
            put_header(upstream, b"upgrade", value);
        }
    }
    upstream.extend_from_slice(b"\r\n");
    Ok(true)
}

/// A request's side of writing its response to the client.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// The request was HEAD: no body, whatever the headers say.
    pub head_request: bool,
    pub http11: bool,
    /// The client connection may carry another request after this one.
    pub keep_alive: bool,
    /// The request asked for an upgrade.
    pub upgrade: bool,
    pub request_id: &'a str,
    pub hsts: Option<&'a str>,
    pub alt_svc: Option<&'a str>,
}

/// A replica's response head, as parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub head_len: usize,
    /// How the body is delimited on the replica connection.
    pub body: Framing,
    /// A 1xx other than 101: another head follows.
    pub informational: bool,
    /// The client connection may carry another request.
    pub client_keep: bool,
    /// The replica connection may carry another request.
    pub replica_keep: bool,
    /// A chunked body is unwrapped for an HTTP/1.0 client.
    pub dechunk: bool,
}

/// A response head berth cannot pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadResponse {
    #[error("malformed response head")]
    Malformed,
    #[error("response head too large")]
    TooLarge,
    #[error("invalid Content-Length in response")]
    Length,
    #[error("101 Switching Protocols without an upgrade request")]
    Unasked,
}

/// Parses a replica's response head at the start of `buf` and writes the
/// head the client gets into `out`: connection-specific fields dropped,
/// berth's own added. `Ok(None)`: not complete yet. An informational
/// head for an HTTP/1.0 client, or a `100` (berth answers `Expect`
/// itself), writes nothing.
pub fn parse_response(
    buf: &[u8],
    reply: &Reply<'_>,
    out: &mut Vec<u8>,
) -> Result<Option<Response>, BadResponse> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(BadResponse::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (Some(status), Some(version)) = (parsed.code, parsed.version) else {
        return Err(BadResponse::Malformed);
    };
    if !(100..=599).contains(&status) {
        return Err(BadResponse::Malformed);
    }
    let headers = parsed.headers;
    let reason = parsed.reason.unwrap_or_default();
    let switching = status == 101;
    if switching && !reply.upgrade {
        return Err(BadResponse::Unasked);
    }
    let informational = (100..200).contains(&status) && !switching;
    let connection = ConnectionFields::of(headers).ok_or(BadResponse::Malformed)?;
    let mut length = None;
    let mut te: Option<&[u8]> = None;
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value).ok_or(BadResponse::Length)?;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse::Length);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if te.is_some() {
                // Codings split over fields: not worth the ambiguity.
                return Err(BadResponse::Malformed);
            }
            te = Some(h.value);
        }
    }
    let bodiless = reply.head_request || informational || status == 204 || status == 304;
    let body = match (te, length) {
        _ if bodiless || switching => Framing::Empty,
        (Some(value), _) if chunked_coding(value).0 => Framing::Chunked,
        (Some(_), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    let replica_keep = !switching
        && !connection.has("close")
        && (version == 1 || connection.has("keep-alive"))
        // A length next to a transfer coding: the replica's framing is
        // suspect (RFC 9112 §6.3), its connection is not reused.
        && !(te.is_some() && length.is_some())
        && body != Framing::Close;
    let dechunk = body == Framing::Chunked && !reply.http11;
    let client_keep = reply.keep_alive && !switching && body != Framing::Close && !dechunk;
    let response = Response {
        status,
        head_len,
        body,
        informational,
        client_keep,
        replica_keep,
        dechunk,
    };
    if informational && (!reply.http11 || status == 100) {
        return Ok(Some(response));
    }

    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers.iter() {
        let name = h.name;
        let own = is_one_of(name.as_bytes(), &policy::HOP_BY_HOP_HEADERS)
            || name.eq_ignore_ascii_case(X_REQUEST_ID)
            || name.eq_ignore_ascii_case("content-length")
            || (reply.hsts.is_some() && name.eq_ignore_ascii_case("strict-transport-security"))
            || (reply.alt_svc.is_some() && name.eq_ignore_ascii_case("alt-svc"))
            || connection.names(name);
        if !own {
            put_header(out, name.as_bytes(), h.value);
        }
    }
    if !informational {
        match (body, length, te) {
            (Framing::Chunked, _, Some(value)) if !dechunk => {
                put_header(out, b"transfer-encoding", value)
            }
            // A length is kept on HEAD, 304 and 204 responses as sent.
            (Framing::Length(_) | Framing::Empty, Some(n), None) if !switching => put_header(
                out,
                b"content-length",
                itoa::Buffer::new().format(n).as_bytes(),
            ),
            _ => {}
        }
        put_header(out, X_REQUEST_ID.as_bytes(), reply.request_id.as_bytes());
        if let Some(hsts) = reply.hsts {
            put_header(out, b"strict-transport-security", hsts.as_bytes());
        }
        if let Some(alt_svc) = reply.alt_svc {
            put_header(out, b"alt-svc", alt_svc.as_bytes());
        }
        if switching {
            if let Some(h) = headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
            {
                put_header(out, b"connection", b"upgrade");
                put_header(out, b"upgrade", h.value);
            }
        } else if !client_keep {
            put_header(out, b"connection", b"close");
        } else if !reply.http11 {
            put_header(out, b"connection", b"keep-alive");
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(response))
}

/// Writes the head of a response berth makes itself: status line, the
/// given fields, `Content-Length`, and `Connection` as `keep_alive` and
/// the client's version need.
pub fn own_head<'v>(
    out: &mut Vec<u8>,
    status: http::StatusCode,
    fields: impl IntoIterator<Item = (&'v [u8], &'v [u8])>,
    length: Option<usize>,
    http11: bool,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        put_header(out, name, value);
    }
    if let Some(n) = length {
        put_header(
            out,
            b"content-length",
            itoa::Buffer::new().format(n).as_bytes(),
        );
    }
    if !keep_alive {
        put_header(out, b"connection", b"close");
    } else if !http11 {
        put_header(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
}

/// The request's header fields as a map, for the static site (which reads
/// conditional and negotiation fields); off the forwarding path.
pub fn header_map(buf: &[u8]) -> http::HeaderMap {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let mut map = http::HeaderMap::new();
    if parsed.parse_with_uninit_headers(buf, &mut slots).is_ok() {
        for h in parsed.headers.iter() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(h.name.as_bytes()),
                http::HeaderValue::from_bytes(h.value),
            ) {
                map.append(name, value);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd() -> Forwarding {
        Forwarding::new(
            Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7))),
            false,
        )
    }

    fn request(raw: &str) -> Result<(Request, String), Refused> {
        let mut req = Request::default();
        let mut up = Vec::new();
        assert!(parse_request(raw.as_bytes(), &mut req, &mut up, &fwd())?);
        Ok((req, String::from_utf8(up).unwrap()))
    }

    #[test]
    fn client_addresses_are_written_as_forwarded_for_text() {
        let text = |ip: &str| {
            let fwd = Forwarding::new(Some(ip.parse().unwrap()), false);
            String::from_utf8(fwd.client().unwrap().to_vec()).unwrap()
        };
        assert_eq!(text("203.0.113.9"), "203.0.113.9");
        assert_eq!(text("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(text("2001:db8::1"), "2001:db8::1");
        let longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        assert_eq!(text(longest), longest);
        assert!(Forwarding::new(None, true).client().is_none());
    }

    #[test]
    fn forwarded_heads_drop_connection_fields_and_carry_berths() {
        let (req, up) = request(
            "POST /a?b=1 HTTP/1.1\r\nHost: App.test\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=x\r\n\
             X-Request-Id: abc\r\nContent-Length: 3\r\nAccept: */*\r\nX_Real_IP: 6.6.6.6\r\n\
             True-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n\r\nabc",
        )
        .unwrap();
        assert_eq!(req.target, "/a?b=1");
        assert_eq!(req.path(), "/a");
        assert_eq!(req.host, "App.test");
        assert_eq!(req.request_id, "abc");
        assert_eq!(req.body, Framing::Length(3));
        assert!(req.keep_alive && !req.upgrade && !req.retryable());
        assert_eq!(
            up,
            "Host: App.test\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.7\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: App.test\r\nx-request-id: abc\r\n\
             content-length: 3\r\n\r\n"
        );
    }

    #[test]
    fn targets_lose_their_dot_segments_but_not_their_query() {
        let (req, _) = request("GET /api/../x?a=.. HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((req.target.as_str(), req.path()), ("/x?a=..", "/x"));
        let (req, _) = request("GET http://a/b/%2e%2E/../c HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(req.target, "/c");
    }

    #[test]
    fn upgrades_keep_their_protocol_and_absolute_targets_their_host() {
        let (req, up) = request(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap();
        assert!(req.upgrade && req.retryable());
        assert!(up.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"));
        let (req, up) = request("GET http://b.test:8/x HTTP/1.1\r\nHost: evil\r\n\r\n").unwrap();
        assert_eq!((req.host.as_str(), req.target.as_str()), ("b.test:8", "/x"));
        assert!(up.starts_with("host: b.test:8\r\n") && !up.contains("evil"));
        let (req, _) = request("GET http://b.test?q HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(req.target, "/?q");
        let (req, _) = request("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!req.keep_alive && req.host.is_empty());
        let (req, _) = request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(req.keep_alive);
    }

    #[test]
    fn smuggling_shapes_and_bad_heads_are_refused() {
        for (raw, status) in [
            ("GARBAGE\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            ("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            ("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            ("GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ] {
            assert_eq!(request(raw).err(), Some(Refused(status)), "{raw:?}");
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(request(&many).err(), Some(Refused(431)));
        let mut req = Request::default();
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHo", &mut req, &mut Vec::new(), &fwd()),
            Ok(false)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_refuse_without_panic(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let mut req = Request::default();
            let mut up = Vec::new();
            let _ = parse_request(&input, &mut req, &mut up, &fwd());
            let _ = parse_response(&input, &REPLY, &mut up);
            let _ = header_map(&input);
        }

        #[test]
        fn header_fields_survive_the_rewrite(
            fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,20}", "[ -~]{0,40}"), 0..20),
        ) {
            let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
            for (name, value) in &fields {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
            raw.push_str("\r\n");
            if let Ok((_, up)) = request(&raw) {
                // Every line the replica gets is a well-formed field.
                proptest::prop_assert!(up.ends_with("\r\n\r\n"));
                for line in up[..up.len() - 4].split("\r\n") {
                    proptest::prop_assert!(line.contains(':') && !line.contains('\n'), "{line:?}");
                }
            }
        }
    }

    const REPLY: Reply<'static> = Reply {
        head_request: false,
        http11: true,
        keep_alive: true,
        upgrade: false,
        request_id: "rid",
        hsts: Some("max-age=1"),
        alt_svc: None,
    };

    fn response(raw: &str, reply: &Reply<'_>) -> Result<(Response, String), BadResponse> {
        let mut out = Vec::new();
        let r = parse_response(raw.as_bytes(), reply, &mut out)?.expect("complete");
        Ok((r, String::from_utf8(out).unwrap()))
    }

    #[test]
    fn responses_are_rewritten_for_the_client() {
        let raw =
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n\
             Content-Length: 2\r\nX-Request-Id: theirs\r\nStrict-Transport-Security: x\r\n\r\nok";
        let (r, out) = response(raw, &REPLY).unwrap();
        assert_eq!((r.body, r.head_len), (Framing::Length(2), raw.len() - 2));
        assert!(r.client_keep && r.replica_keep);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-request-id: rid\r\n\
             strict-transport-security: max-age=1\r\n\r\n"
        );
        let (r, out) = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &REPLY,
        )
        .unwrap();
        assert_eq!(r.body, Framing::Chunked);
        assert!(out.contains("transfer-encoding: chunked\r\n") && r.client_keep);
        let old = Reply {
            http11: false,
            ..REPLY
        };
        let (r, out) = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &old,
        )
        .unwrap();
        assert!(r.dechunk && !r.client_keep && !out.contains("chunked"));
        assert!(out.contains("connection: close"));
        let (r, out) = response("HTTP/1.0 200 OK\r\n\r\nbody", &REPLY).unwrap();
        assert_eq!(r.body, Framing::Close);
        assert!(!r.client_keep && !r.replica_keep && out.contains("connection: close"));
        let head = Reply {
            head_request: true,
            ..REPLY
        };
        let (r, out) = response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", &head).unwrap();
        assert_eq!(r.body, Framing::Empty);
        assert!(out.contains("content-length: 9") && r.client_keep);
    }

    #[test]
    fn informational_and_switching_heads() {
        let (r, out) = response("HTTP/1.1 100 Continue\r\n\r\n", &REPLY).unwrap();
        assert!(r.informational && out.is_empty());
        let (r, out) = response("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", &REPLY).unwrap();
        assert!(r.informational);
        assert_eq!(out, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
        let raw =
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(response(raw, &REPLY).err(), Some(BadResponse::Unasked));
        let upgrade = Reply {
            upgrade: true,
            ..REPLY
        };
        let (r, out) = response(raw, &upgrade).unwrap();
        assert!(!r.informational && !r.client_keep && !r.replica_keep);
        assert!(out.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"));
        for bad in [
            "HTTP/1.1 042 Odd\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(response(bad, &REPLY).err(), Some(BadResponse::Malformed));
        }
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert_eq!(response(bad, &REPLY).err(), Some(BadResponse::Length));
        }
        assert_eq!(
            response("NOT HTTP\r\n\r\n", &REPLY).err(),
            Some(BadResponse::Malformed)
        );
    }
}
