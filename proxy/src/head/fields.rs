//! The header fields of an HTTP/1.1 head as the codec reads and writes
//! them: names, `Connection` tokens, `Content-Length` and
//! `Transfer-Encoding` values, and the body framing they declare.

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one head.
pub(super) const MAX_HEADERS: usize = 100;
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

pub(super) fn is_one_of(name: &[u8], names: &[&str]) -> bool {
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
pub(super) struct ConnectionFields<'h> {
    values: [&'h [u8]; MAX_CONNECTION_FIELDS],
    len: usize,
}

impl<'h> ConnectionFields<'h> {
    pub(super) fn of(headers: &[httparse::Header<'h>]) -> Option<Self> {
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

    pub(super) fn has(&self, token: &str) -> bool {
        self.values[..self.len]
            .iter()
            .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(token.as_bytes())))
    }

    /// Whether `name` is listed (so connection-specific).
    pub(super) fn names(&self, name: &str) -> bool {
        self.len > 0 && self.has(name)
    }
}

/// A `Content-Length` value: digits only (a list of equal values is one).
pub(super) fn content_length(value: &[u8]) -> Option<u64> {
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
pub(super) fn chunked_coding(value: &[u8]) -> (bool, bool) {
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

pub(super) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
