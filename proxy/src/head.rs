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
//!
//! Its parts, top to bottom: the functions here (heads berth writes
//! itself, a header map for the static site) → `request` (a client's
//! head) and `response` (a replica's head) → `fields` (the header fields
//! both read and write, and the body framing they declare).

use std::mem::MaybeUninit;

use fields::{put_header, MAX_HEADERS};

pub use fields::{Framing, MAX_HEAD};
pub use request::{parse_request, Forwarding, Refused, Request};
pub use response::{parse_response, Reply, Response};

mod fields;
mod request;
mod response;

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

/// Writes a request's header section for the replica (`block`, as
/// [`parse_request`] wrote it, ending in the blank line) into `out`
/// with a route's edits: the fields named in `remove` or `set` dropped,
/// the `set` fields added before the blank line.
pub fn edit_block(
    block: &[u8],
    remove: &[http::HeaderName],
    set: &[(http::HeaderName, http::HeaderValue)],
    out: &mut Vec<u8>,
) {
    let body = block.strip_suffix(b"\r\n").unwrap_or(block);
    for line in body.split_inclusive(|b| *b == b'\n') {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        let edited = remove
            .iter()
            .chain(set.iter().map(|(n, _)| n))
            .any(|n| name.eq_ignore_ascii_case(n.as_str().as_bytes()));
        if !edited {
            out.extend_from_slice(line);
        }
    }
    for (name, value) in set {
        put_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The request fields route rules read (credentials, CORS, codings
/// accepted) as a map: only those are copied out of the head.
pub fn rule_fields(buf: &[u8]) -> http::HeaderMap {
    use http::header::{
        ACCEPT_ENCODING, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
        AUTHORIZATION, ORIGIN,
    };
    let wanted = [
        AUTHORIZATION,
        ORIGIN,
        ACCESS_CONTROL_REQUEST_METHOD,
        ACCESS_CONTROL_REQUEST_HEADERS,
        ACCEPT_ENCODING,
    ];
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let mut map = http::HeaderMap::new();
    if parsed.parse_with_uninit_headers(buf, &mut slots).is_ok() {
        for h in parsed.headers.iter() {
            let name = wanted
                .iter()
                .find(|n| h.name.eq_ignore_ascii_case(n.as_str()));
            if let (Some(name), Ok(value)) = (name, http::HeaderValue::from_bytes(h.value)) {
                map.append(name.clone(), value);
            }
        }
    }
    map
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
mod tests;
