//! A route's rules, compiled once when its table is built and applied by
//! every front end alike: what a request must pass before it reaches the
//! app ([`Rules::screen`]: IP lists, rate limit, maintenance, redirects,
//! CORS preflight, basic auth, body limit, in that order), the edits of
//! the request a replica gets, and what a response gets on its way out
//! ([`Outgoing`]: header edits, security headers, CORS, compression).
//! A route without rules carries none (`Option<Arc<Rules>>`), so the
//! plain hop pays nothing for them.

use std::net::IpAddr;
use std::time::Duration;

use berth_config::{Cidr, Cors, Encoding, RedirectWww, RouteRules};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::compress::{self, Coding};

mod auth;
mod cors;
mod limit;
mod redirect;

/// The security headers `security_headers: true` adds to responses that
/// do not carry them already.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
];

/// One route's compiled rules.
#[derive(Debug)]
pub struct Rules {
    source: RouteRules,
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    limiter: Option<limit::Limiter>,
    www: Option<RedirectWww>,
    redirects: Vec<redirect::Rule>,
    cors: Option<Cors>,
    auth: Option<auth::Auth>,
    max_body: Option<u64>,
    request_set: Vec<(HeaderName, HeaderValue)>,
    request_remove: Vec<HeaderName>,
    response_set: Vec<(HeaderName, HeaderValue)>,
    response_remove: Vec<HeaderName>,
    /// Added only where the response has none of its own.
    response_default: Vec<(HeaderName, HeaderValue)>,
    codings: Vec<Coding>,
    head_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

/// A request as the rules see it, whichever protocol carried it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) method: &'a Method,
    /// The host as the client wrote it (a port kept).
    pub(crate) host: Option<&'a str>,
    pub(crate) path_and_query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) client: Option<IpAddr>,
    pub(crate) tls: bool,
    /// The body's announced length, if any.
    pub(crate) content_length: Option<u64>,
}

/// A whole answer the edge gives itself instead of the app's.
#[derive(Debug, Clone)]
pub(crate) struct Own {
    pub(crate) status: u16,
    /// Fields besides `Content-Length` and the request id.
    pub(crate) fields: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
}

impl Own {
    pub(crate) fn text(
        status: u16,
        fields: Vec<(HeaderName, HeaderValue)>,
        body: &'static str,
    ) -> Self {
        let mut all = vec![
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
        ];
        all.extend(fields);
        Own {
            status,
            fields: all,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn redirect(status: u16, to: &str) -> Self {
        let fields = HeaderValue::from_str(to)
            .map(|v| vec![(http::header::LOCATION, v)])
            .unwrap_or_default();
        Own::text(status, fields, "Moved\n")
    }
}

impl Rules {
    /// Compiles validated rules; `None` when they ask for nothing.
    pub fn compile(source: &RouteRules) -> Option<Rules> {
        if source.is_empty() {
            return None;
        }
        let pairs = |set: &std::collections::BTreeMap<String, String>| {
            set.iter()
                .filter_map(|(n, v)| {
                    Some((
                        HeaderName::from_bytes(n.as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect::<Vec<_>>()
        };
        let names = |list: &[String]| {
            list.iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect::<Vec<_>>()
        };
        let response_default = if source.security_headers {
            SECURITY_HEADERS
                .iter()
                .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
                .collect()
        } else {
            Vec::new()
        };
        let seconds = |s: Option<u32>| s.map(|s| Duration::from_secs(u64::from(s)));
        Some(Rules {
            allow: source.ip_allow.clone(),
            deny: source.ip_deny.clone(),
            limiter: source
                .rate_limit
                .map(|l| limit::Limiter::new(l.per_second, l.burst)),
            www: source.redirect_www,
            redirects: source
                .redirects
                .iter()
                .filter_map(redirect::Rule::new)
                .collect(),
            cors: source.cors.clone(),
            auth: source.basic_auth.as_ref().map(auth::Auth::new),
            max_body: source.max_body_bytes,
            request_set: pairs(&source.headers.request.set),
            request_remove: names(&source.headers.request.remove),
            response_set: pairs(&source.headers.response.set),
            response_remove: names(&source.headers.response.remove),
            response_default,
            codings: source.compression.iter().map(|e| coding(*e)).collect(),
            head_timeout: seconds(source.timeouts.response_header_secs),
            idle_timeout: seconds(source.timeouts.idle_secs),
            source: source.clone(),
        })
    }

    /// The validated rules these were compiled from.
    pub fn source(&self) -> &RouteRules {
        &self.source
    }

    /// What the request gets instead of the app, if anything: 403 (IP
    /// lists), 429 (rate limit), a redirect, a preflight's 204 or 401
    /// (basic auth), checked in that order (`policy::screen` puts the
    /// app's maintenance between the client's checks and the rest, and
    /// the body limit last).
    #[cfg(test)]
    pub(crate) async fn screen(&self, ask: &Ask<'_>) -> Option<Own> {
        match self.screen_client(ask) {
            Some(own) => Some(own),
            None => self.screen_request(ask).await,
        }
    }

    /// The checks of the client's address: IP lists, then rate limit.
    pub(crate) fn screen_client(&self, ask: &Ask<'_>) -> Option<Own> {
        if let Some(ip) = ask.client {
            let denied = self.deny.iter().any(|n| n.contains(ip))
                || (!self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(ip)));
            if denied {
                return Some(Own::text(403, Vec::new(), "Forbidden\n"));
            }
            if let Some(limiter) = &self.limiter {
                if let Err(wait) = limiter.admit(ip) {
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    let retry = (http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                    return Some(Own::text(429, vec![retry], "Too Many Requests\n"));
                }
            }
        }
        None
    }

    /// The checks of the request itself: redirects, CORS preflight, basic
    /// auth (the body limit is the caller's: its answer is one of the
    /// pages of [`crate::policy`]).
    pub(crate) async fn screen_request(&self, ask: &Ask<'_>) -> Option<Own> {
        if let Some(preset) = self.www {
            let raw = ask.host.unwrap_or_default();
            if let Some(host) = berth_config::normalize_host(raw) {
                let port = raw.rsplit_once(':').map(|(_, p)| p).filter(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !raw.ends_with(']')
                });
                if let Some(to) = redirect::www(preset, ask.tls, &host, port, ask.path_and_query) {
                    return Some(Own::redirect(308, &to));
                }
            }
        }
        if let Some((status, to)) = redirect::first(&self.redirects, ask.path_and_query) {
            return Some(Own::redirect(status, &to));
        }
        if let Some(c) = &self.cors {
            if cors::is_preflight(ask.method, ask.headers) {
                let mut own = Own::text(204, cors::preflight(c, ask.headers), "");
                own.fields.retain(|(n, _)| n != http::header::CONTENT_TYPE);
                return Some(own);
            }
        }
        if let Some(auth) = &self.auth {
            let given = ask.headers.get(http::header::AUTHORIZATION);
            if !auth.admits(given.map(HeaderValue::as_bytes)).await {
                let challenge = HeaderValue::from_str(auth.challenge())
                    .unwrap_or(HeaderValue::from_static("Basic"));
                let fields = vec![(http::header::WWW_AUTHENTICATE, challenge)];
                return Some(Own::text(401, fields, "Unauthorized\n"));
            }
        }
        None
    }

    /// The largest request body, if limited: a body without a length is
    /// counted as it streams.
    pub(crate) fn max_body(&self) -> Option<u64> {
        self.max_body
    }

    /// Edits a replica's request headers: removals, then the set fields.
    pub(crate) fn edit_request(&self, headers: &mut HeaderMap) {
        for name in &self.request_remove {
            headers.remove(name);
        }
        for (name, value) in &self.request_set {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// Whether requests are edited at all.
    pub(crate) fn edits_request(&self) -> bool {
        !self.request_set.is_empty() || !self.request_remove.is_empty()
    }

    /// The request fields removed or replaced (HTTP/1.1 rewrites its
    /// header block from these).
    pub(crate) fn request_edits(&self) -> (&[HeaderName], &[(HeaderName, HeaderValue)]) {
        (&self.request_remove, &self.request_set)
    }

    /// The deadlines for a replica's response head and for each piece of
    /// its body, `default` where the rules set none.
    pub(crate) fn timeouts(&self, default: Duration) -> (Duration, Duration) {
        (
            self.head_timeout.unwrap_or(default),
            self.idle_timeout.unwrap_or(default),
        )
    }

    /// What the response to `ask` gets on its way out; `None` when the
    /// rules leave responses alone (the response head is then relayed as
    /// on a route without rules).
    pub(crate) fn outgoing(&self, ask: &Ask<'_>) -> Option<Outgoing> {
        let untouched = self.response_set.is_empty()
            && self.response_remove.is_empty()
            && self.response_default.is_empty()
            && self.cors.is_none()
            && self.codings.is_empty();
        if untouched {
            return None;
        }
        let mut set = self.response_set.clone();
        if let Some(c) = &self.cors {
            set.extend(cors::response(c, ask.headers));
        }
        let coding = (!self.codings.is_empty())
            .then(|| {
                let accept = ask
                    .headers
                    .get_all(http::header::ACCEPT_ENCODING)
                    .iter()
                    .map(HeaderValue::as_bytes);
                compress::negotiate(accept, &self.codings)
            })
            .flatten();
        Some(Outgoing {
            remove: self.response_remove.clone(),
            set,
            defaults: self.response_default.clone(),
            compress: !self.codings.is_empty(),
            coding,
            head_request: ask.method == Method::HEAD,
        })
    }
}

fn coding(e: Encoding) -> Coding {
    match e {
        Encoding::Zstd => Coding::Zstd,
        Encoding::Br => Coding::Br,
        Encoding::Gzip => Coding::Gzip,
    }
}

/// What one response gets from its route's rules on the way out.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// Fields removed from the app's response.
    pub(crate) remove: Vec<HeaderName>,
    /// Fields set (replacing the app's).
    pub(crate) set: Vec<(HeaderName, HeaderValue)>,
    /// Fields added where the app sent none.
    pub(crate) defaults: Vec<(HeaderName, HeaderValue)>,
    /// The route compresses (`Vary: Accept-Encoding` on what could be).
    pub(crate) compress: bool,
    /// The coding the client accepts, if the route compresses.
    pub(crate) coding: Option<Coding>,
    head_request: bool,
}

impl Outgoing {
    /// Whether the app's field `name` is dropped: removed, or replaced by
    /// a set one (`Vary` is added to, never replaced).
    pub(crate) fn drops(&self, name: &str) -> bool {
        let named = |n: &HeaderName| n.as_str().eq_ignore_ascii_case(name);
        self.remove.iter().any(named)
            || self
                .set
                .iter()
                .any(|(n, _)| n != http::header::VARY && named(n))
    }

    /// Adds the set fields (replacing the edge's own of the same name;
    /// `Vary` is added to) and the missing defaults to an answer the edge
    /// gives itself.
    pub(crate) fn decorate(&self, fields: &mut Vec<(HeaderName, HeaderValue)>) {
        for (name, value) in &self.set {
            if name == http::header::VARY {
                if !fields.iter().any(|(n, v)| n == name && v == value) {
                    fields.push((name.clone(), value.clone()));
                }
            } else {
                fields.retain(|(n, _)| n != name);
                fields.push((name.clone(), value.clone()));
            }
        }
        for (name, value) in &self.defaults {
            if !fields.iter().any(|(n, _)| n == name) {
                fields.push((name.clone(), value.clone()));
            }
        }
    }

    /// The coding this response is compressed with, from its head's
    /// fields, if any; and whether it varies by `Accept-Encoding`.
    pub(crate) fn compression(&self, status: u16, fields: &HeaderMap) -> (Option<Coding>, bool) {
        if !self.compress {
            return (None, false);
        }
        let field = |n: http::header::HeaderName| fields.get(n).map(HeaderValue::as_bytes);
        let facts = compress::ResponseFacts {
            status,
            head_request: self.head_request,
            content_type: field(http::header::CONTENT_TYPE),
            content_encoding: field(http::header::CONTENT_ENCODING)
                .is_some_and(|v| !v.eq_ignore_ascii_case(b"identity")),
            content_length: field(http::header::CONTENT_LENGTH)
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok()),
            content_range: fields.contains_key(http::header::CONTENT_RANGE),
            cache_control_no_transform: fields
                .get_all(http::header::CACHE_CONTROL)
                .iter()
                .flat_map(|v| v.as_bytes().split(|b| *b == b','))
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform")),
        };
        if !compress::compressible(&facts) {
            return (None, false);
        }
        (self.coding, true)
    }

    /// Applies the edits to a response header map, compressed with
    /// `coding` (its length dropped, its coding and `Vary` set, a strong
    /// `ETag` made weak).
    pub(crate) fn apply(&self, headers: &mut HeaderMap, coding: Option<Coding>, varies: bool) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            if name == http::header::VARY {
                headers.append(name.clone(), value.clone());
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.defaults {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if varies {
            headers.append(
                http::header::VARY,
                HeaderValue::from_static("Accept-Encoding"),
            );
        }
        if let Some(coding) = coding {
            headers.remove(http::header::CONTENT_LENGTH);
            headers.insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static(coding.token()),
            );
            if let Some(etag) = headers.get(http::header::ETAG) {
                let weak = etag.as_bytes().starts_with(b"W/");
                if !weak {
                    let mut v = b"W/".to_vec();
                    v.extend_from_slice(etag.as_bytes());
                    if let Ok(v) = HeaderValue::from_bytes(&v) {
                        headers.insert(http::header::ETAG, v);
                    }
                }
            }
        }
    }
}

/// The maintenance page of an app, `message` escaped.
pub fn maintenance_page(message: Option<&str>) -> Bytes {
    let message = message.unwrap_or("This site is down for maintenance. Please try again soon.");
    let mut escaped = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    Bytes::from(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>503 Maintenance</title><h1>Down for maintenance</h1><p>{escaped}</p>\n"
    ))
}

#[cfg(test)]
mod tests;
