//! The request policy as plain functions over berth's own types: which
//! route a request takes, how its path is rewritten, which headers reach a
//! replica ([`forwardable`]), which forwarding headers it carries and what
//! error page it gets. The three front ends (HTTP/1.1 in `h1.rs`/`head.rs`,
//! h2 in `h2.rs`, HTTP/3 in `h3.rs`) call these, so they cannot drift;
//! they also share the path normalization of `path.rs` and the
//! domain-fronting check of `fronting.rs`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use berth_acme::Http01Tokens;
use http::HeaderValue;

use crate::rules::{Ask, Own};
use crate::table::{prefix_matches, Backend};
use crate::{Route, RouteTable, Site};

/// What to do with a request.
#[derive(Debug)]
pub enum Decision<'t> {
    /// Forward to the route's backend.
    Forward(&'t Route),
    /// Answer from the route's static site, in the edge: no replica.
    Static(&'t Route, &'t Arc<Site>),
    /// No app owns this host and path: 404.
    UnknownHost,
    /// The app exists but has no live replica: 503.
    NoReplica(&'t Route),
    /// The app's owner stopped it: 503 with a page that says so.
    Stopped(&'t Route),
}

/// Decides where a request goes from its `Host` (or `:authority`) and path.
pub fn decide<'t>(table: &'t RouteTable, host: Option<&str>, path: &str) -> Decision<'t> {
    let Some(host) = host.and_then(berth_config::normalize_host) else {
        return Decision::UnknownHost;
    };
    match table.lookup(&host, path) {
        None => Decision::UnknownHost,
        Some(route) => match route.backend().static_site() {
            Some(site) => Decision::Static(route, site),
            None if route.backend().is_stopped() => Decision::Stopped(route),
            None if route.backend().upstreams().is_empty() => Decision::NoReplica(route),
            None => Decision::Forward(route),
        },
    }
}

/// The path (and query) sent upstream: the prefix removed when the route
/// strips it, so `/api/users?x=1` under `/api` becomes `/users?x=1`.
pub fn upstream_path<'a>(route: &Route, path_and_query: &'a str) -> Cow<'a, str> {
    if !route.strip_prefix() || route.prefix() == "/" {
        return Cow::Borrowed(path_and_query);
    }
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    if !prefix_matches(route.prefix(), path) {
        return Cow::Borrowed(path_and_query);
    }
    let rest = &path[route.prefix().len()..];
    let rest = if rest.is_empty() { "/" } else { rest };
    Cow::Owned(format!("{rest}{query}"))
}

/// The path a static site is asked for: the request path, query dropped,
/// with the prefix removed when the route strips it (as for a replica).
pub fn site_path<'a>(route: &Route, path: &'a str) -> Cow<'a, str> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    upstream_path(route, path)
}

/// The key authorization for an ACME HTTP-01 validation request, which
/// the edge answers itself on plain HTTP before any routing or redirect.
pub fn acme_challenge(tls: bool, path: &str, tokens: &Http01Tokens) -> Option<String> {
    if tls {
        return None;
    }
    tokens.answer(path)
}

/// Where a plain HTTP request for a route that redirects to HTTPS goes:
/// same host (normalized, so nothing of the client's `Host` beyond the name
/// is reflected), the HTTPS port when it is not 443, path and query kept.
/// ACME validation paths are never redirected.
pub fn https_redirect(
    route: &Route,
    tls: bool,
    host: Option<&str>,
    path_and_query: &str,
    https_port: u16,
) -> Option<String> {
    if tls || !route.redirect_https() || Http01Tokens::is_challenge_path(path_and_query) {
        return None;
    }
    let host = berth_config::normalize_host(host?)?;
    Some(if https_port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{https_port}{path_and_query}")
    })
}

/// `Strict-Transport-Security` value for HTTPS responses of routes that
/// ask for it: one year, subdomains not included (they may be other apps).
pub fn hsts(route: &Route, tls: bool) -> Option<&'static str> {
    (tls && route.hsts()).then_some("max-age=31536000")
}

/// `Alt-Svc` for responses over TLS when HTTP/3 listens on `h3_port`.
pub fn alt_svc(tls: bool, h3_port: Option<u16>) -> Option<String> {
    let port = h3_port.filter(|_| tls)?;
    Some(format!("h3=\":{port}\"; ma=86400"))
}

/// Request id header, kept from the client when sane, echoed back.
pub const X_REQUEST_ID: &str = "x-request-id";
/// The client's address, as the edge saw it.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// `http` or `https`, as the client connected.
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// The host the client asked for.
pub const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Connection-specific headers never forwarded (RFC 9110 §7.6.1); HTTP/3
/// and HTTP/2 forbid them outright.
pub const HOP_BY_HOP_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` (lowercase) is connection-specific, never forwarded.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP_HEADERS.contains(&name)
}

/// Whether a client's header field named `name` (any case) may go on to a
/// replica: the one test all three front ends apply to request headers.
/// Not forwarded are connection-specific fields ([`HOP_BY_HOP_HEADERS`]),
/// the forwarding fields berth sets itself (`X-Forwarded-*`,
/// `X-Request-Id`: the client's values are replaced), forwarding and
/// client-address fields berth never trusts ([`UNTRUSTED_FORWARDING_HEADERS`]),
/// and any name with an underscore: CGI-style apps read `X_Real_IP` and
/// `X-Real-IP` as the same variable, so an underscore spelling would slip
/// past the list (nginx drops such names by default too). The fields the
/// `Connection` header names are the caller's to drop.
pub fn forwardable(name: &[u8]) -> bool {
    let listed = |names: &[&str]| {
        names
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    };
    !(name.contains(&b'_')
        || listed(&HOP_BY_HOP_HEADERS)
        || listed(&[
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            X_REQUEST_ID,
        ])
        || listed(&UNTRUSTED_FORWARDING_HEADERS))
}

/// The header names a `Connection` header value lists, lowercased: the
/// sender's own connection-specific headers, never forwarded.
pub fn connection_names(value: &http::HeaderValue) -> impl Iterator<Item = String> + '_ {
    value
        .to_str()
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
}

/// Longest request id accepted from a client.
const MAX_REQUEST_ID: usize = 128;

/// The host a request is for, the one rule of every front end: the
/// authority of its target (HTTP/1.1's absolute form, h2's and HTTP/3's
/// `:authority`) when it has one, else its `Host` header (RFC 9112
/// §3.2.2, RFC 9113 §8.3.1, RFC 9114 §4.3.1). Empty counts as absent.
pub fn request_host<'a>(authority: Option<&'a str>, host: Option<&'a str>) -> Option<&'a str> {
    authority
        .filter(|a| !a.is_empty())
        .or(host.filter(|h| !h.is_empty()))
}

/// The request id: the client's `X-Request-Id` when it is a short token of
/// `[A-Za-z0-9._-]`, otherwise a fresh random 128-bit hex id.
pub fn request_id(incoming: Option<&[u8]>) -> Cow<'_, str> {
    match sane_request_id(incoming) {
        Some(id) => Cow::Borrowed(id),
        None => Cow::Owned(hex_id(rand::random::<u128>())),
    }
}

/// [`request_id`] written into `out` (cleared first): no allocation once
/// `out` has room for 128 bytes.
pub fn write_request_id(incoming: Option<&[u8]>, out: &mut String) {
    out.clear();
    match sane_request_id(incoming) {
        Some(id) => out.push_str(id),
        None => push_hex_id(rand::random::<u128>(), out),
    }
}

/// The client's request id, when it is one berth keeps.
fn sane_request_id(incoming: Option<&[u8]>) -> Option<&str> {
    let id = incoming?;
    let ok = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| std::str::from_utf8(id).ok()).flatten()
}

/// `id` as 32 lowercase hex digits.
fn hex_id(id: u128) -> String {
    let mut out = String::with_capacity(32);
    push_hex_id(id, &mut out);
    out
}

fn push_hex_id(id: u128, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend(
        (0..32)
            .rev()
            .map(|i| char::from(DIGITS[((id >> (i * 4)) & 0xf) as usize])),
    );
}

/// Headers berth sets on every forwarded request. Client-sent values of the
/// same headers are replaced, never trusted: berth is the edge.
#[derive(Debug, PartialEq, Eq)]
pub struct Forwarded<'a> {
    /// `X-Forwarded-For`: the client's address.
    pub for_ip: Option<String>,
    /// `X-Forwarded-Proto`: `http` or `https`.
    pub proto: &'static str,
    /// `X-Forwarded-Host`: the host the client asked for.
    pub host: Option<&'a str>,
}

/// The forwarding headers for a request from `client` for `host`.
pub fn forwarded<'a>(client: Option<IpAddr>, tls: bool, host: Option<&'a str>) -> Forwarded<'a> {
    Forwarded {
        for_ip: client.map(|ip| ip.to_canonical().to_string()),
        proto: if tls { "https" } else { "http" },
        host,
    }
}

/// A short page berth answers with itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPage {
    /// HTTP status.
    pub status: u16,
    /// HTML body; never echoes client input.
    pub body: &'static str,
}

/// No app owns the host.
pub const NOT_FOUND: ErrorPage = ErrorPage {
    status: 404,
    body: "<!doctype html><title>404 Not Found</title><h1>404 Not Found</h1><p>No app is configured for this host and path.</p>\n",
};

/// The app has no running replica.
pub const NO_REPLICA: ErrorPage = ErrorPage {
    status: 503,
    body: "<!doctype html><title>503 Service Unavailable</title><h1>503 Service Unavailable</h1><p>This app has no running replica right now. Try again shortly.</p>\n",
};

/// The app was stopped by its owner: no retry will help until it is
/// started again.
pub const STOPPED: ErrorPage = ErrorPage {
    status: 503,
    body: "<!doctype html><title>503 Service Unavailable</title><h1>503 Service Unavailable</h1><p>This app is stopped by its owner.</p>\n",
};

/// The connection's certificate does not serve the host asked for
/// (domain fronting, `fronting.rs`): the client connects again for it.
pub const MISDIRECTED: ErrorPage = ErrorPage {
    status: 421,
    body: "<!doctype html><title>421 Misdirected Request</title><h1>421 Misdirected Request</h1><p>This connection was made for another site. Connect again for this one.</p>\n",
};

/// No replica could be reached.
pub const BAD_GATEWAY: ErrorPage = ErrorPage {
    status: 502,
    body: "<!doctype html><title>502 Bad Gateway</title><h1>502 Bad Gateway</h1><p>The app could not be reached.</p>\n",
};

/// The request could not be parsed.
pub const BAD_REQUEST: ErrorPage = ErrorPage {
    status: 400,
    body: "<!doctype html><title>400 Bad Request</title><h1>400 Bad Request</h1><p>The request could not be understood.</p>\n",
};

/// Something failed inside berth.
pub const INTERNAL_ERROR: ErrorPage = ErrorPage {
    status: 500,
    body: "<!doctype html><title>500 Internal Server Error</title><h1>500 Internal Server Error</h1><p>The edge could not handle this request.</p>\n",
};

/// The request body is larger than the route allows (`max_body_bytes`).
pub const PAYLOAD_TOO_LARGE: ErrorPage = ErrorPage {
    status: 413,
    body: "<!doctype html><title>413 Content Too Large</title><h1>413 Content Too Large</h1><p>The request body is larger than this site accepts.</p>\n",
};

/// The app did not answer in time.
pub const GATEWAY_TIMEOUT: ErrorPage = ErrorPage {
    status: 504,
    body: "<!doctype html><title>504 Gateway Timeout</title><h1>504 Gateway Timeout</h1><p>The app did not answer in time.</p>\n",
};

/// The error page for a status berth produces itself; statuses without a
/// page of their own get the page of their class.
pub fn error_page(status: u16) -> ErrorPage {
    match status {
        404 => NOT_FOUND,
        413 => PAYLOAD_TOO_LARGE,
        421 => MISDIRECTED,
        503 => NO_REPLICA,
        502 => BAD_GATEWAY,
        504 => GATEWAY_TIMEOUT,
        400..=499 => ErrorPage {
            status,
            ..BAD_REQUEST
        },
        _ => ErrorPage {
            status,
            ..INTERNAL_ERROR
        },
    }
}

/// Forwarding and client-address headers a client may send that berth
/// never passes on, whoever sent them: berth has no trusted-peer setting
/// and is always the first hop, so only the values it sets itself can be
/// trusted. The vendor client-IP headers (a CDN's or load balancer's) are
/// stripped always for the same reason; an app behind berth that reads
/// one would otherwise take the client's word for its address.
pub const UNTRUSTED_FORWARDING_HEADERS: [&str; 9] = [
    "forwarded",
    "x-real-ip",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
];

// The route's rules and its app's maintenance, before the app.

/// Whether a request on `route` is screened at all: only a route with
/// rules or an app in maintenance reads more of the request.
pub(crate) fn screens(route: &Route) -> bool {
    route.rules().is_some() || route.backend().maintenance().is_some()
}

/// What a request on `route` gets instead of its app, if anything: the
/// rules' client checks, then the app's maintenance page, then the
/// rules' request checks (the order the README gives).
/// The answer carries the route's response headers (security headers,
/// CORS, `set` edits) as an app's response would, so a browser can read
/// a 401 of a CORS route.
pub(crate) async fn screen(route: &Route, ask: &Ask<'_>) -> Option<Own> {
    let mut own = before_app(route, ask).await?;
    if let Some(out) = route.rules().and_then(|r| r.outgoing(ask)) {
        out.decorate(&mut own.fields);
    }
    Some(own)
}

/// [`screen`]'s answer, before the route's response headers.
async fn before_app(route: &Route, ask: &Ask<'_>) -> Option<Own> {
    let rules = route.rules();
    if let Some(own) = rules.and_then(|r| r.screen_client(ask)) {
        return Some(own);
    }
    if let Some(own) = maintenance(route.backend()) {
        return Some(own);
    }
    let rules = rules?;
    if let Some(own) = rules.screen_request(ask).await {
        return Some(own);
    }
    let too_large = rules
        .max_body()
        .zip(ask.content_length)
        .is_some_and(|(max, len)| len > max);
    too_large.then(|| own_page(PAYLOAD_TOO_LARGE))
}

/// One of berth's pages as a whole answer of the edge.
fn own_page(page: ErrorPage) -> Own {
    let html = HeaderValue::from_static("text/html; charset=utf-8");
    Own {
        status: page.status,
        fields: vec![
            (http::header::CONTENT_TYPE, html),
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
        ],
        body: bytes::Bytes::from_static(page.body.as_bytes()),
    }
}

/// The app's maintenance page, when it is in maintenance.
fn maintenance(backend: &Backend) -> Option<Own> {
    let page = backend.maintenance()?;
    let mut own = Own {
        status: 503,
        fields: vec![
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
            (http::header::RETRY_AFTER, HeaderValue::from_static("300")),
        ],
        body: page.clone(),
    };
    own.fields.shrink_to_fit();
    Some(own)
}

#[cfg(test)]
mod tests;
