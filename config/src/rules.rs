//! A domain's route rules, as a user sends them (`…Input`) and validated
//! (`RouteRules`): basic auth, `www` and regex redirects, header edits,
//! security headers, CORS, IP allow and deny lists, a rate limit,
//! compression, a body limit and timeouts. The edge (`berth-proxy`)
//! compiles a validated [`RouteRules`] once per route; nothing here runs
//! per request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::cidr::Cidr;
use crate::FieldError;

/// Most users of one domain's basic auth.
pub const MAX_AUTH_USERS: usize = 100;
/// Most regex redirects of one domain.
pub const MAX_REDIRECTS: usize = 50;
/// Most header edits of one direction.
pub const MAX_HEADER_EDITS: usize = 50;
/// Most CIDR entries of one list.
pub const MAX_CIDRS: usize = 1000;
/// Largest compiled regex of a redirect (bytes of the automaton).
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Header fields no rule may set or remove: connection-specific fields,
/// framing, and the ones berth sets itself (forwarding, request id,
/// HSTS and `Alt-Svc`, which have their own settings).
pub const RESERVED_HEADERS: [&str; 20] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
    "strict-transport-security",
    "alt-svc",
    "content-encoding",
];

/// Basic auth as sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BasicAuthInput {
    /// The realm browsers show; default `berth`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub realm: Option<String>,
    /// Who may pass (1 to 100).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub users: Vec<BasicAuthUserInput>,
}

/// One basic-auth user as sent: a plain `password` (hashed by berth,
/// never returned) or a `password_hash` as `htpasswd -B` or argon2
/// write it. On a change of the domain, a user given by name alone keeps
/// the password it had.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BasicAuthUserInput {
    /// 1-64 characters, no `:`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub username: String,
    /// A password, hashed with argon2id on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub password: Option<String>,
    /// A bcrypt (`$2y$`, `$2b$`, `$2a$`) or argon2 (`$argon2id$…`) hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// Validated basic auth.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BasicAuth {
    /// The realm of the `WWW-Authenticate` challenge.
    pub realm: String,
    /// Who may pass.
    pub users: Vec<BasicAuthUser>,
}

/// A user of basic auth; its hash is kept, never shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BasicAuthUser {
    /// The user name.
    pub username: String,
    /// A PHC argon2 hash or a bcrypt hash; not shown by the API.
    #[serde(skip_serializing, default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub password_hash: String,
}

/// Where `redirect_www` sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RedirectWww {
    /// `www.example.com` → `example.com` (on a `www.` or wildcard host).
    ToApex,
    /// `example.com` → `www.example.com` (on a host without `www.`).
    ToWww,
}

/// A regex redirect as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RedirectInput {
    /// A regular expression matched against the path and query.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub from: String,
    /// The target: a path (`/new/$1`) or an absolute `http(s)://` URL;
    /// `$1`..`$9` are the captures of `from`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2048))]
    pub to: String,
    /// 301, 302, 307 or 308 (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// A validated regex redirect (`from` compiles; `to`'s captures exist).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redirect {
    /// The regular expression on path and query.
    pub from: String,
    /// The target, with `$n` captures.
    pub to: String,
    /// 301, 302, 307 or 308.
    pub status: u16,
}

/// Header edits of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    /// Fields set (replacing any of the same name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Fields removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderEdits {
    /// Whether nothing is edited.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// Header edits of requests (to the replica) and responses (to the client).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Edits of the request a replica gets.
    #[serde(default, skip_serializing_if = "HeaderEdits::is_empty")]
    pub request: HeaderEdits,
    /// Edits of the response a client gets.
    #[serde(default, skip_serializing_if = "HeaderEdits::is_empty")]
    pub response: HeaderEdits,
}

impl HeaderRules {
    /// Whether nothing is edited.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// CORS as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CorsInput {
    /// Allowed origins (`https://app.example.com`), or `*`.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub origins: Vec<String>,
    /// Allowed methods; default GET, HEAD, POST, PUT, PATCH, DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Allowed request headers; default: the ones a preflight asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    /// Response headers scripts may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    /// Allow credentials (cookies); not with `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<bool>,
    /// How long a preflight may be cached; default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 86400))]
    pub max_age_secs: Option<u32>,
}

/// Validated CORS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cors {
    /// Allowed origins, lowercase, or `["*"]`.
    pub origins: Vec<String>,
    /// Allowed methods, uppercase.
    pub methods: Vec<String>,
    /// Allowed request headers, lowercase; empty: what a preflight asks.
    pub headers: Vec<String>,
    /// Exposed response headers, lowercase.
    pub expose_headers: Vec<String>,
    /// Whether credentials are allowed.
    pub credentials: bool,
    /// Preflight cache lifetime.
    pub max_age_secs: u32,
}

impl Cors {
    /// Whether any origin is allowed.
    pub fn any_origin(&self) -> bool {
        self.origins.iter().any(|o| o == "*")
    }
}

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

/// A response coding the edge may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Zstandard.
    Zstd,
    /// Brotli.
    Br,
    /// gzip.
    Gzip,
}

/// `compression` as sent: `true` (zstd, br, gzip), `false`, or a list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum CompressionInput {
    /// On with every coding, or off.
    Toggle(bool),
    /// On with these codings, in order of preference: `zstd`, `br`, `gzip`.
    List(Vec<String>),
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

/// The token of a coding (`zstd`, `br`, `gzip`).
pub fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Zstd => "zstd",
        Encoding::Br => "br",
        Encoding::Gzip => "gzip",
    }
}

fn encodings(list: &[String]) -> Result<Vec<Encoding>, FieldError> {
    let mut out: Vec<Encoding> = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let e = match name.trim().to_ascii_lowercase().as_str() {
            "zstd" => Encoding::Zstd,
            "br" => Encoding::Br,
            "gzip" => Encoding::Gzip,
            other => {
                return Err(FieldError::new(
                    format!("compression[{i}]"),
                    format!("{other:?} is not a coding berth makes; use zstd, br or gzip"),
                ))
            }
        };
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.is_empty() {
        return Err(FieldError::new(
            "compression",
            "is an empty list; give zstd, br and/or gzip, or false",
        ));
    }
    Ok(out)
}

impl BasicAuthInput {
    fn validate(self, previous: Option<&BasicAuth>) -> Result<BasicAuth, FieldError> {
        let realm = self.realm.unwrap_or_else(|| "berth".to_string());
        if realm.is_empty() || realm.len() > 100 || realm.chars().any(|c| c == '"' || c < ' ') {
            return Err(FieldError::new(
                "realm",
                "give 1-100 characters without quotes or control characters",
            ));
        }
        if self.users.is_empty() || self.users.len() > MAX_AUTH_USERS {
            return Err(FieldError::new(
                "users",
                format!("has {} users; give 1 to {MAX_AUTH_USERS}", self.users.len()),
            ));
        }
        let mut users: Vec<BasicAuthUser> = Vec::with_capacity(self.users.len());
        for (i, user) in self.users.into_iter().enumerate() {
            let at = |f: &str| format!("users[{i}].{f}");
            let name = &user.username;
            if name.is_empty()
                || name.len() > 64
                || name.contains(':')
                || name.chars().any(char::is_control)
            {
                return Err(FieldError::new(
                    at("username"),
                    "give 1-64 characters without ':' or control characters",
                ));
            }
            if users.iter().any(|u| u.username == *name) {
                return Err(FieldError::new(
                    at("username"),
                    format!("{name:?} is listed twice"),
                ));
            }
            let password_hash = match (user.password, user.password_hash) {
                (Some(_), Some(_)) => {
                    return Err(FieldError::new(
                        at("password_hash"),
                        "is given together with password; give one of them",
                    ))
                }
                (Some(password), None) => {
                    if password.is_empty() || password.len() > 256 {
                        return Err(FieldError::new(at("password"), "give 1-256 characters"));
                    }
                    crate::hash::hash_password(&password)
                        .map_err(|e| FieldError::new(at("password"), e))?
                }
                (None, Some(hash)) => {
                    crate::hash::check_hash(&hash)
                        .map_err(|e| FieldError::new(at("password_hash"), e))?;
                    hash
                }
                (None, None) => previous
                    .and_then(|p| p.users.iter().find(|u| u.username == *name))
                    .map(|u| u.password_hash.clone())
                    .ok_or_else(|| {
                        FieldError::new(
                            at("password"),
                            "is missing for a new user; give password or password_hash",
                        )
                    })?,
            };
            users.push(BasicAuthUser {
                username: user.username,
                password_hash,
            });
        }
        Ok(BasicAuth { realm, users })
    }
}

fn check_www(www: RedirectWww, host: &str) -> Result<(), FieldError> {
    let wildcard = host.starts_with("*.");
    let has_www = host.starts_with("www.");
    let problem = match www {
        RedirectWww::ToApex if !has_www && !wildcard => {
            "to_apex redirects a www. host; this host has no www. to remove (put it on the www. domain, or use to_www)"
        }
        RedirectWww::ToWww if has_www => {
            "to_www on a www. host would redirect to itself; put it on the apex domain, or use to_apex"
        }
        RedirectWww::ToWww if wildcard => {
            "to_www on a wildcard host is ambiguous; put it on the apex domain"
        }
        _ => return Ok(()),
    };
    Err(FieldError::new("redirect_www", problem))
}

/// Compiles a redirect's pattern as the edge will (size-limited).
pub fn compile_redirect(from: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(from)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

impl RedirectInput {
    fn validate(self, host: &str) -> Result<Redirect, FieldError> {
        if self.from.is_empty() || self.from.len() > 1024 {
            return Err(FieldError::new(
                "from",
                "give a regular expression of 1-1024 characters",
            ));
        }
        let re = compile_redirect(&self.from).map_err(|e| {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            FieldError::new(
                "from",
                format!("is not a valid regular expression: {first}"),
            )
        })?;
        let to = self.to.trim().to_string();
        let absolute = to.starts_with("https://") || to.starts_with("http://");
        if to.is_empty()
            || to.len() > 2048
            || !(absolute || to.starts_with('/'))
            || to.starts_with("//")
        {
            return Err(FieldError::new(
                "to",
                "give a path starting with / (\"/new/$1\") or an absolute http(s):// URL",
            ));
        }
        if to.chars().any(|c| c.is_control() || c == ' ') {
            return Err(FieldError::new(
                "to",
                "has spaces or control characters; percent-encode them",
            ));
        }
        let groups = re.captures_len() - 1;
        for n in capture_refs(&to) {
            if n > groups {
                return Err(FieldError::new(
                    "to",
                    format!("uses ${n}, but from has {groups} capture group(s)"),
                ));
            }
        }
        let status = self.status.unwrap_or(308);
        if ![301, 302, 307, 308].contains(&status) {
            return Err(FieldError::new(
                "status",
                format!("is {status}; give 301, 302, 307 or 308"),
            ));
        }
        // A target on this host that the rule matches again is a loop.
        let on_host = if absolute {
            let rest = to.split_once("://").map_or("", |(_, r)| r);
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let path = if path.is_empty() { "/" } else { path };
            authority.eq_ignore_ascii_case(host).then_some(path)
        } else {
            Some(to.as_str())
        };
        if let Some(path) = on_host {
            let sample: String = expand_sample(path);
            if re.is_match(&sample) {
                return Err(FieldError::new(
                    "to",
                    format!("{to:?} matches from again: the redirect would loop; narrow from (anchor it with ^ and $)"),
                ));
            }
        }
        Ok(Redirect {
            from: self.from,
            to,
            status,
        })
    }
}

/// The capture numbers `$1`..`$9` a target uses (`$$` is a dollar).
pub fn capture_refs(to: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = to.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 1 < bytes.len() {
            let (c, n) = (bytes[i], bytes[i + 1]);
            i += 1;
            if c == b'$' && n == b'$' {
                i += 1;
            } else if c == b'$' && n.is_ascii_digit() {
                i += 1;
                return Some(usize::from(n - b'0'));
            }
        }
        None
    })
}

/// A target with each `$n` replaced by a plain segment, to test for loops.
fn expand_sample(to: &str) -> String {
    let mut out = String::with_capacity(to.len());
    let mut chars = to.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            chars.next();
            out.push('x');
        } else {
            out.push(c);
        }
    }
    out
}

fn check_edits(edits: &HeaderEdits) -> Result<(), FieldError> {
    if edits.set.len() + edits.remove.len() > MAX_HEADER_EDITS {
        return Err(FieldError::new(
            "",
            format!("has more than {MAX_HEADER_EDITS} edits"),
        ));
    }
    let names = edits.set.keys().map(|n| (format!("set.{n}"), n)).chain(
        edits
            .remove
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("remove[{i}]"), n)),
    );
    for (field, name) in names {
        check_header_name(name).map_err(|m| FieldError::new(field, m))?;
    }
    for (name, value) in &edits.set {
        if value.len() > 4096 || value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(FieldError::new(
                format!("set.{name}"),
                "give a value of at most 4096 characters without control characters",
            ));
        }
    }
    Ok(())
}

/// Whether `name` is a header field a rule may touch.
fn check_header_name(name: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("{name:?} is not a header name"));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || name.contains('_') {
        return Err(format!(
            "{name} is set by berth itself (connection, framing, forwarding, request id, HSTS, Alt-Svc); it cannot be edited"
        ));
    }
    Ok(())
}

fn lowercase_edits(edits: HeaderEdits) -> HeaderEdits {
    HeaderEdits {
        set: edits
            .set
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        remove: edits
            .remove
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    }
}

impl CorsInput {
    fn validate(self) -> Result<Cors, FieldError> {
        if self.origins.is_empty() || self.origins.len() > 100 {
            return Err(FieldError::new(
                "origins",
                "give 1 to 100 origins, or [\"*\"]",
            ));
        }
        let mut origins = Vec::with_capacity(self.origins.len());
        for (i, origin) in self.origins.iter().enumerate() {
            let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            let ok = o == "*"
                || ((o.starts_with("https://") || o.starts_with("http://"))
                    && o.split_once("://").is_some_and(|(_, rest)| {
                        !rest.is_empty()
                            && rest
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                    }));
            if !ok {
                return Err(FieldError::new(
                    format!("origins[{i}]"),
                    format!("{origin:?} is not an origin; give scheme://host[:port] (\"https://app.example.com\") or \"*\""),
                ));
            }
            origins.push(o);
        }
        let credentials = self.credentials.unwrap_or(false);
        if credentials && origins.iter().any(|o| o == "*") {
            return Err(FieldError::new(
                "credentials",
                "cannot be true with the origin \"*\" (browsers refuse it); list the origins",
            ));
        }
        let methods = match self.methods {
            None => ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            Some(list) => tokens("methods", &list)?
                .into_iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
        };
        let headers = tokens("headers", &self.headers.unwrap_or_default())?;
        let expose_headers = tokens("expose_headers", &self.expose_headers.unwrap_or_default())?;
        let max_age_secs = self.max_age_secs.unwrap_or(600);
        if max_age_secs > 86_400 {
            return Err(FieldError::new(
                "max_age_secs",
                "give at most 86400 (a day)",
            ));
        }
        Ok(Cors {
            origins,
            methods,
            headers: headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            expose_headers: expose_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            credentials,
            max_age_secs,
        })
    }
}

fn tokens(field: &str, list: &[String]) -> Result<Vec<String>, FieldError> {
    if list.len() > 50 {
        return Err(FieldError::new(field, "give at most 50 names"));
    }
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.trim();
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if ok {
                Ok(t.to_string())
            } else {
                Err(FieldError::new(
                    format!("{field}[{i}]"),
                    format!("{t:?} is not a name"),
                ))
            }
        })
        .collect()
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
