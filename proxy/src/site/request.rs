//! What a request asks of a [`Site`](super::Site): its path, decoded and
//! checked against traversal, and the conditional and content-negotiation
//! headers (`If-None-Match`, `Accept-Encoding`, `Accept`).

use http::header::{self, HeaderMap, HeaderValue};

/// A request path, decoded and checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Target {
    /// Relative, `/`-joined, without empty or `.` segments.
    pub(super) rel: String,
    /// Whether the path names a directory (root or trailing slash).
    pub(super) dir: bool,
}

impl Target {
    /// `None` when the path must be refused: a bad escape, not UTF-8, or a
    /// NUL, a backslash or a `..` segment.
    pub(super) fn parse(path: &str) -> Option<Target> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let decoded = String::from_utf8(percent_decode(path)?).ok()?;
        if decoded.contains(['\0', '\\']) {
            return None;
        }
        let mut segments = Vec::new();
        for segment in decoded.split('/') {
            match segment {
                "" | "." => {}
                ".." => return None,
                s => segments.push(s),
            }
        }
        Some(Target {
            dir: segments.is_empty() || decoded.ends_with('/'),
            rel: segments.join("/"),
        })
    }

    /// Whether the last segment has a file extension (`app.js`, not `about`).
    pub(super) fn has_extension(&self) -> bool {
        !self.dir && self.rel.rsplit('/').next().is_some_and(|s| s.contains('.'))
    }
}

/// `%XX` escapes decoded; `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = hex(bytes.next()?)?;
            let lo = hex(bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// The items of a comma-separated header, all its lines together.
fn header_items(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether `If-None-Match` matches `etag` (weak comparison, `*` included).
pub(super) fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    header_items(headers, header::IF_NONE_MATCH)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag)
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`) with a
/// non-zero quality, or, when gzip is not listed, `*` with one.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: Option<f32> = None;
    let mut any: Option<f32> = None;
    for item in header_items(headers, header::ACCEPT_ENCODING) {
        let mut params = item.split(';');
        let coding = params.next().unwrap_or("").trim();
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.map_or(q, |g| g.max(q)));
        } else if coding == "*" {
            any = Some(q);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

/// Whether `Accept` names `text/html` (a browser navigating).
pub(super) fn accepts_html(headers: &HeaderMap) -> bool {
    header_items(headers, header::ACCEPT).any(|item| {
        item.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
    })
}
