//! A domain's route rules, as a user sends them (`…Input`) and validated
//! (`RouteRules`): basic auth, `www` and regex redirects, header edits,
//! security headers, CORS, IP allow and deny lists, a rate limit,
//! compression, a body limit and timeouts. The edge (`berth-proxy`)
//! compiles a validated [`RouteRules`] once per route; nothing here runs
//! per request.
//!
//! A rule with checks of its own has its module: basic auth (`auth`),
//! redirects (`redirects`), header edits (`headers`), CORS (`cors`) and
//! compression (`compression`). This module holds the rules as a whole,
//! and the small ones checked in place: the rate limit, the IP lists,
//! the body limit and the timeouts.

mod auth;
mod compression;
mod cors;
mod headers;
mod redirects;

use serde::{Deserialize, Serialize};

pub use self::auth::{BasicAuth, BasicAuthInput, BasicAuthUser, BasicAuthUserInput};
pub use self::compression::{encoding_name, CompressionInput, Encoding};
pub use self::cors::{Cors, CorsInput};
pub use self::headers::{HeaderEdits, HeaderRules, RESERVED_HEADERS};
pub use self::redirects::{capture_refs, compile_redirect, Redirect, RedirectInput, RedirectWww};
pub use crate::cidr::Cidr;
use crate::FieldError;

use self::compression::encodings;
use self::headers::{check_edits, lowercase_edits};
use self::redirects::{check_www, MAX_REDIRECTS};

/// Most CIDR entries of one list.
pub const MAX_CIDRS: usize = 1000;

/// A per-client rate limit (GCRA): `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second, on average (1 to 100000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub per_second: u32,
    /// Requests a client may send at once (1 to 100000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub burst: u32,
}

/// Deadlines toward the app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Longest wait for the app's response head (1 to 3600 s; default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub response_header_secs: Option<u32>,
    /// Longest silence within a response body (1 to 3600 s; default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub idle_secs: Option<u32>,
}

impl Timeouts {
    fn is_empty(&self) -> bool {
        self.response_header_secs.is_none() && self.idle_secs.is_none()
    }
}

/// A domain's rules as sent, every one optional (the rule fields of a
/// domain entry).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesInput {
    /// Basic auth.
    pub basic_auth: Option<BasicAuthInput>,
    /// The `www` preset.
    pub redirect_www: Option<RedirectWww>,
    /// Regex redirects.
    pub redirects: Option<Vec<RedirectInput>>,
    /// Header edits.
    pub headers: Option<HeaderRules>,
    /// Security headers.
    pub security_headers: Option<bool>,
    /// CORS.
    pub cors: Option<CorsInput>,
    /// Allowed client networks.
    pub ip_allow: Option<Vec<String>>,
    /// Denied client networks.
    pub ip_deny: Option<Vec<String>>,
    /// Rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Compression.
    pub compression: Option<CompressionInput>,
    /// Largest request body.
    pub max_body_bytes: Option<u64>,
    /// Deadlines.
    pub timeouts: Option<Timeouts>,
}

/// A domain's validated rules; the default applies none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RouteRules {
    /// Basic auth, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// The `www` preset, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_www: Option<RedirectWww>,
    /// Regex redirects, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<Redirect>,
    /// Header edits.
    #[serde(default, skip_serializing_if = "HeaderRules::is_empty")]
    pub headers: HeaderRules,
    /// X-Content-Type-Options, X-Frame-Options, Referrer-Policy and
    /// Permissions-Policy on every response.
    #[serde(default, skip_serializing_if = "is_false")]
    pub security_headers: bool,
    /// CORS, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Only these client networks may pass (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub ip_allow: Vec<Cidr>,
    /// These client networks get 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub ip_deny: Vec<Cidr>,
    /// Rate limit per client address, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Codings to compress responses with, preferred first (empty: off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compression: Vec<Encoding>,
    /// Largest request body, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Deadlines toward the app.
    #[serde(default, skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl RouteRules {
    /// Whether no rule applies (the edge's fast path).
    pub fn is_empty(&self) -> bool {
        *self == RouteRules::default()
    }
}

impl RulesInput {
    /// Validates the rules of a domain on `host`; `previous` are the
    /// rules it had (a user named alone keeps its password). Field names
    /// are relative to the domain.
    pub fn validate(
        self,
        host: &str,
        previous: Option<&RouteRules>,
    ) -> Result<RouteRules, FieldError> {
        let previous_auth = previous.and_then(|p| p.basic_auth.as_ref());
        let basic_auth = self
            .basic_auth
            .map(|a| {
                a.validate(previous_auth)
                    .map_err(|e| e.within("basic_auth"))
            })
            .transpose()?;
        if let Some(www) = self.redirect_www {
            check_www(www, host)?;
        }
        let redirects = self.redirects.unwrap_or_default();
        if redirects.len() > MAX_REDIRECTS {
            return Err(FieldError::new(
                "redirects",
                format!("has {} rules; at most {MAX_REDIRECTS}", redirects.len()),
            ));
        }
        let redirects = redirects
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.validate(host)
                    .map_err(|e| e.within(&format!("redirects[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = self.headers.unwrap_or_default();
        check_edits(&headers.request).map_err(|e| e.within("headers.request"))?;
        check_edits(&headers.response).map_err(|e| e.within("headers.response"))?;
        let headers = HeaderRules {
            request: lowercase_edits(headers.request),
            response: lowercase_edits(headers.response),
        };
        let cors = self
            .cors
            .map(|c| c.validate().map_err(|e| e.within("cors")))
            .transpose()?;
        let ip_allow = cidrs("ip_allow", self.ip_allow.unwrap_or_default())?;
        let ip_deny = cidrs("ip_deny", self.ip_deny.unwrap_or_default())?;
        if let Some(limit) = self.rate_limit {
            for (field, value) in [("per_second", limit.per_second), ("burst", limit.burst)] {
                if !(1..=100_000).contains(&value) {
                    return Err(FieldError::new(
                        format!("rate_limit.{field}"),
                        format!("is {value}; give 1 to 100000"),
                    ));
                }
            }
        }
        let compression = match self.compression {
            None | Some(CompressionInput::Toggle(false)) => Vec::new(),
            Some(CompressionInput::Toggle(true)) => {
                vec![Encoding::Zstd, Encoding::Br, Encoding::Gzip]
            }
            Some(CompressionInput::List(list)) => encodings(&list)?,
        };
        if self.max_body_bytes == Some(0) {
            return Err(FieldError::new(
                "max_body_bytes",
                "is 0; give a size in bytes of at least 1, or leave it out for no limit",
            ));
        }
        let timeouts = self.timeouts.unwrap_or_default();
        for (field, value) in [
            ("response_header_secs", timeouts.response_header_secs),
            ("idle_secs", timeouts.idle_secs),
        ] {
            if let Some(v) = value.filter(|v| !(1..=3600).contains(v)) {
                return Err(FieldError::new(
                    format!("timeouts.{field}"),
                    format!("is {v}; give 1 to 3600 seconds"),
                ));
            }
        }
        Ok(RouteRules {
            basic_auth,
            redirect_www: self.redirect_www,
            redirects,
            headers,
            security_headers: self.security_headers.unwrap_or(false),
            cors,
            ip_allow,
            ip_deny,
            rate_limit: self.rate_limit,
            compression,
            max_body_bytes: self.max_body_bytes,
            timeouts,
        })
    }
}

impl From<&RouteRules> for RulesInput {
    /// The input that validates to `rules` again (hashes kept).
    fn from(rules: &RouteRules) -> Self {
        let some = |b: bool| b.then_some(());
        Self {
            basic_auth: rules.basic_auth.as_ref().map(|a| BasicAuthInput {
                realm: Some(a.realm.clone()),
                users: a
                    .users
                    .iter()
                    .map(|u| BasicAuthUserInput {
                        username: u.username.clone(),
                        password: None,
                        password_hash: Some(u.password_hash.clone()),
                    })
                    .collect(),
            }),
            redirect_www: rules.redirect_www,
            redirects: some(!rules.redirects.is_empty()).map(|()| {
                rules
                    .redirects
                    .iter()
                    .map(|r| RedirectInput {
                        from: r.from.clone(),
                        to: r.to.clone(),
                        status: Some(r.status),
                    })
                    .collect()
            }),
            headers: some(!rules.headers.is_empty()).map(|()| rules.headers.clone()),
            security_headers: some(rules.security_headers).map(|()| true),
            cors: rules.cors.as_ref().map(|c| CorsInput {
                origins: c.origins.clone(),
                methods: Some(c.methods.clone()),
                headers: Some(c.headers.clone()),
                expose_headers: Some(c.expose_headers.clone()),
                credentials: Some(c.credentials),
                max_age_secs: Some(c.max_age_secs),
            }),
            ip_allow: some(!rules.ip_allow.is_empty())
                .map(|()| rules.ip_allow.iter().map(Cidr::to_string).collect()),
            ip_deny: some(!rules.ip_deny.is_empty())
                .map(|()| rules.ip_deny.iter().map(Cidr::to_string).collect()),
            rate_limit: rules.rate_limit,
            compression: some(!rules.compression.is_empty()).map(|()| {
                CompressionInput::List(
                    rules
                        .compression
                        .iter()
                        .map(|e| encoding_name(*e).to_string())
                        .collect(),
                )
            }),
            max_body_bytes: rules.max_body_bytes,
            timeouts: some(!rules.timeouts.is_empty()).map(|()| rules.timeouts),
        }
    }
}

fn cidrs(field: &str, list: Vec<String>) -> Result<Vec<Cidr>, FieldError> {
    if list.len() > MAX_CIDRS {
        return Err(FieldError::new(
            field,
            format!("has {} entries; at most {MAX_CIDRS}", list.len()),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<Cidr>()
                .map_err(|e| FieldError::new(format!("{field}[{i}]"), e))
        })
        .collect()
}

#[cfg(test)]
mod tests;
