//! A client's request head: parsed in place and checked, and the header
//! section the replica gets written straight from it.

use std::borrow::Cow;
use std::io::Write;
use std::mem::MaybeUninit;
use std::net::IpAddr;

use http::Method;

use crate::path;
use crate::policy::{self, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};

use super::fields::{
    chunked_coding, content_length, is_one_of, put_header, ConnectionFields, Framing, MAX_HEADERS,
};

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

    pub(super) fn client(&self) -> Option<&[u8]> {
        self.client.as_ref().map(|(text, len)| &text[..*len])
    }
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
