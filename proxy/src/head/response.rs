//! A replica's response head: parsed, checked, and rewritten for the
//! client with berth's own fields.

use crate::compress::Coding;
use crate::policy::{self, X_REQUEST_ID};
use crate::rules::Outgoing;

use super::fields::{
    chunked_coding, content_length, is_one_of, put_header, ConnectionFields, Framing, MAX_HEAD,
    MAX_HEADERS,
};

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
    /// What the route's rules do to the response (`None`: no rules).
    pub out: Option<&'a Outgoing>,
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
    /// The body is compressed on its way to the client (chunked to an
    /// HTTP/1.1 client, up to the close to an HTTP/1.0 one).
    pub coding: Option<Coding>,
    /// The compressed body goes out chunked (an HTTP/1.1 client).
    pub chunk_coded: bool,
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
    // The route's rules: the fields the client gets, and the coding.
    let (edited, coding) = match reply.out {
        // A map only when the response may be compressed (the facts and
        // the framing change); header edits alone are written in passing.
        Some(out) if !informational && !switching && out.compress => {
            let mut map = http::HeaderMap::with_capacity(headers.len());
            for h in headers.iter() {
                let hop = is_one_of(h.name.as_bytes(), &policy::HOP_BY_HOP_HEADERS)
                    || h.name.eq_ignore_ascii_case(X_REQUEST_ID)
                    || connection.names(h.name);
                if let (false, Ok(n), Ok(v)) = (
                    hop,
                    http::HeaderName::from_bytes(h.name.as_bytes()),
                    http::HeaderValue::from_bytes(h.value),
                ) {
                    map.append(n, v);
                }
            }
            let (coding, varies) = match body {
                Framing::Empty => (None, out.compression(status, &map).1),
                _ => out.compression(status, &map),
            };
            out.apply(&mut map, coding, varies);
            (Some(map), coding)
        }
        _ => (None, None),
    };
    let dechunk = body == Framing::Chunked && !reply.http11 && coding.is_none();
    let client_keep = reply.keep_alive
        && !switching
        && body != Framing::Close
        && !dechunk
        && (coding.is_none() || reply.http11);
    let response = Response {
        status,
        head_len,
        body,
        informational,
        client_keep,
        replica_keep,
        dechunk,
        coding,
        chunk_coded: coding.is_some() && reply.http11,
    };
    if informational && (!reply.http11 || status == 100) {
        return Ok(Some(response));
    }

    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let raw = edited.is_none();
    // The route's header edits, written in passing (no compression).
    let direct = reply.out.filter(|_| raw && !informational && !switching);
    if let Some(map) = &edited {
        for (name, value) in map {
            let own = name == http::header::CONTENT_LENGTH
                || (reply.hsts.is_some() && name == http::header::STRICT_TRANSPORT_SECURITY)
                || (reply.alt_svc.is_some() && name == http::header::ALT_SVC);
            if !own {
                put_header(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
    }
    for h in headers.iter().filter(|_| raw) {
        let name = h.name;
        let own = is_one_of(name.as_bytes(), &policy::HOP_BY_HOP_HEADERS)
            || name.eq_ignore_ascii_case(X_REQUEST_ID)
            || name.eq_ignore_ascii_case("content-length")
            || (reply.hsts.is_some() && name.eq_ignore_ascii_case("strict-transport-security"))
            || (reply.alt_svc.is_some() && name.eq_ignore_ascii_case("alt-svc"))
            || connection.names(name)
            || direct.is_some_and(|d| d.drops(name));
        if !own {
            put_header(out, name.as_bytes(), h.value);
        }
    }
    if let Some(edits) = direct {
        for (name, value) in &edits.set {
            put_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
        for (name, value) in &edits.defaults {
            if !headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name.as_str()))
            {
                put_header(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
    }
    if !informational {
        match (body, length, te) {
            _ if coding.is_some() && reply.http11 => {
                put_header(out, b"transfer-encoding", b"chunked")
            }
            _ if coding.is_some() => {}
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
