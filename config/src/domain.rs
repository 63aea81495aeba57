//! An app's domains: what a user sends for one (`DomainInput`), the
//! validated form (`Domain`), and the edits of the domains endpoints (add
//! one, change one, remove one) that leave the others as they are. A
//! domain's route rules (`rules.rs`) are flat fields of both.

use serde::{Deserialize, Deserializer, Serialize};

use crate::names::{validate_host, validate_path_prefix};
use crate::rules::{
    BasicAuthInput, CompressionInput, CorsInput, HeaderRules, RateLimit, RedirectInput,
    RedirectWww, RouteRules, RulesInput, Timeouts,
};
use crate::FieldError;

/// One domain of an app as the user sends it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// Host name, e.g. `app.example.com` or `*.example.com`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 253))]
    pub host: String,
    /// Path prefix the app owns on this host; default `/`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
    pub path_prefix: Option<String>,
    /// Remove the prefix before forwarding; default false.
    #[serde(default)]
    pub strip_prefix: Option<bool>,
    /// Where the host's certificate comes from; default `none` (HTTP only).
    #[serde(default)]
    pub certificate: Option<CertificateSource>,
    /// Answer plain HTTP with a 308 to HTTPS (ACME challenges excepted);
    /// default true when the domain has a certificate.
    #[serde(default)]
    pub redirect_https: Option<bool>,
    /// Send `Strict-Transport-Security` on HTTPS responses; default false.
    #[serde(default)]
    pub hsts: Option<bool>,
    /// Ask for a user name and password (HTTP basic auth); default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthInput>,
    /// Redirect `www.` to the apex (`to_apex`) or the apex to `www.`
    /// (`to_www`) with a 308; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_www: Option<RedirectWww>,
    /// Regex redirects on path and query, first match wins (at most 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub redirects: Option<Vec<RedirectInput>>,
    /// Header fields set or removed on requests and responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderRules>,
    /// Add X-Content-Type-Options, X-Frame-Options, Referrer-Policy and
    /// Permissions-Policy to responses; default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_headers: Option<bool>,
    /// Answer CORS preflights at the edge and add CORS headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsInput>,
    /// Only clients in these networks (CIDR, IPv4 or IPv6) may pass; at
    /// most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub ip_allow: Option<Vec<String>>,
    /// Clients in these networks get 403; at most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub ip_deny: Option<Vec<String>>,
    /// Requests per client address (429 beyond it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Compress responses: `true` (zstd, br, gzip), `false`, or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionInput>,
    /// Largest request body in bytes (413 beyond it); default no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_body_bytes: Option<u64>,
    /// Deadlines toward the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

/// Where a domain's certificate comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// No HTTPS for this domain.
    #[default]
    None,
    /// Issued and renewed by ACME (Let's Encrypt by default).
    Letsencrypt,
    /// A certificate uploaded through `POST /api/v1/certificates` that
    /// covers the host.
    Custom,
}

/// A validated domain: requests for `host` whose path starts with
/// `path_prefix` (on a segment boundary) go to the app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Domain {
    /// Lowercase host, without trailing dot; may start with `*.`.
    pub host: String,
    /// Starts with `/`, no trailing `/` except for the root.
    pub path_prefix: String,
    /// Whether the prefix is removed before the request is forwarded.
    pub strip_prefix: bool,
    /// Where the host's certificate comes from.
    #[serde(default)]
    pub certificate: CertificateSource,
    /// Whether plain HTTP is redirected to HTTPS.
    #[serde(default)]
    pub redirect_https: bool,
    /// Whether HTTPS responses carry HSTS.
    #[serde(default)]
    pub hsts: bool,
    /// The route rules, as flat fields beside the others (a basic-auth
    /// user's hash is never shown).
    #[serde(flatten)]
    pub rules: RouteRules,
}

impl DomainInput {
    /// Checks one domain (field names relative to the domain). `previous`
    /// are the app's domains before the change: the one with the same
    /// host and prefix lends its rules (a basic-auth user named alone
    /// keeps its password).
    pub(crate) fn validate(mut self, previous: &[Domain]) -> Result<Domain, FieldError> {
        let rules = self.take_rules();
        let host = validate_host("host", &self.host)?;
        let path_prefix =
            validate_path_prefix("path_prefix", self.path_prefix.as_deref().unwrap_or("/"))?;
        let certificate = self.certificate.unwrap_or_default();
        let tls = certificate != CertificateSource::None;
        if certificate == CertificateSource::Letsencrypt && host.starts_with("*.") {
            return Err(FieldError::new(
                "certificate",
                "wildcard hosts need a DNS-01 challenge, which berth does not do; \
                 upload a wildcard certificate and use \"custom\"",
            ));
        }
        let redirect_https = self.redirect_https.unwrap_or(tls);
        if redirect_https && !tls {
            return Err(FieldError::new(
                "redirect_https",
                "needs a certificate; set certificate to \"letsencrypt\" or \"custom\"",
            ));
        }
        let hsts = self.hsts.unwrap_or(false);
        if hsts && !tls {
            return Err(FieldError::new(
                "hsts",
                "needs a certificate; set certificate to \"letsencrypt\" or \"custom\"",
            ));
        }
        let before = previous
            .iter()
            .find(|d| d.host == host && d.path_prefix == path_prefix)
            .map(|d| &d.rules);
        let rules = rules.validate(&host, before)?;
        Ok(Domain {
            host,
            path_prefix,
            strip_prefix: self.strip_prefix.unwrap_or(false),
            certificate,
            redirect_https,
            hsts,
            rules,
        })
    }

    /// Takes the rule fields out of the input.
    fn take_rules(&mut self) -> RulesInput {
        RulesInput {
            basic_auth: self.basic_auth.take(),
            redirect_www: self.redirect_www.take(),
            redirects: self.redirects.take(),
            headers: self.headers.take(),
            security_headers: self.security_headers.take(),
            cors: self.cors.take(),
            ip_allow: self.ip_allow.take(),
            ip_deny: self.ip_deny.take(),
            rate_limit: self.rate_limit.take(),
            compression: self.compression.take(),
            max_body_bytes: self.max_body_bytes.take(),
            timeouts: self.timeouts.take(),
        }
    }

    /// Puts rule fields into the input.
    fn set_rules(&mut self, rules: RulesInput) {
        let RulesInput {
            basic_auth,
            redirect_www,
            redirects,
            headers,
            security_headers,
            cors,
            ip_allow,
            ip_deny,
            rate_limit,
            compression,
            max_body_bytes,
            timeouts,
        } = rules;
        self.basic_auth = basic_auth;
        self.redirect_www = redirect_www;
        self.redirects = redirects;
        self.headers = headers;
        self.security_headers = security_headers;
        self.cors = cors;
        self.ip_allow = ip_allow;
        self.ip_deny = ip_deny;
        self.rate_limit = rate_limit;
        self.compression = compression;
        self.max_body_bytes = max_body_bytes;
        self.timeouts = timeouts;
    }
}

impl From<&Domain> for DomainInput {
    /// The input that validates to `domain` again, every default explicit
    /// (basic-auth users by their hashes).
    fn from(domain: &Domain) -> Self {
        let mut input = Self {
            host: domain.host.clone(),
            path_prefix: Some(domain.path_prefix.clone()),
            strip_prefix: Some(domain.strip_prefix),
            certificate: Some(domain.certificate),
            redirect_https: Some(domain.redirect_https),
            hsts: Some(domain.hsts),
            ..Self::default()
        };
        input.set_rules(RulesInput::from(&domain.rules));
        input
    }
}

/// Changes to one domain (`PATCH /api/v1/apps/{name}/domains/{host}`);
/// absent fields stay. Changing the certificate without saying whether to
/// redirect or send HSTS lets those take the new certificate's defaults.
/// A rule given replaces that rule whole; `null` (or `false`, `[]`)
/// turns it off. In `basic_auth`, a user given by name alone keeps its
/// password.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    /// New host name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 253))]
    pub host: Option<String>,
    /// New path prefix.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
    pub path_prefix: Option<String>,
    /// Remove the prefix before forwarding.
    #[serde(default)]
    pub strip_prefix: Option<bool>,
    /// Where the host's certificate comes from.
    #[serde(default)]
    pub certificate: Option<CertificateSource>,
    /// Answer plain HTTP with a 308 to HTTPS.
    #[serde(default)]
    pub redirect_https: Option<bool>,
    /// Send `Strict-Transport-Security` on HTTPS responses.
    #[serde(default)]
    pub hsts: Option<bool>,
    /// Basic auth; `null` removes it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BasicAuthInput>, nullable = true))]
    pub basic_auth: Option<Option<BasicAuthInput>>,
    /// The `www` preset; `null` removes it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<RedirectWww>, nullable = true))]
    pub redirect_www: Option<Option<RedirectWww>>,
    /// Regex redirects (replacing all); `[]` or `null` removes them.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<RedirectInput>>, nullable = true, max_items = 50))]
    pub redirects: Option<Option<Vec<RedirectInput>>>,
    /// Header edits (replacing all); `null` removes them.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<HeaderRules>, nullable = true))]
    pub headers: Option<Option<HeaderRules>>,
    /// Security headers on responses.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>, nullable = true))]
    pub security_headers: Option<Option<bool>>,
    /// CORS; `null` removes it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<CorsInput>, nullable = true))]
    pub cors: Option<Option<CorsInput>>,
    /// Allowed networks (replacing all); `[]` or `null`: all.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>, nullable = true, max_items = 1000))]
    pub ip_allow: Option<Option<Vec<String>>>,
    /// Denied networks (replacing all); `[]` or `null`: none.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>, nullable = true, max_items = 1000))]
    pub ip_deny: Option<Option<Vec<String>>>,
    /// Rate limit per client address; `null` removes it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<RateLimit>, nullable = true))]
    pub rate_limit: Option<Option<RateLimit>>,
    /// Compression; `false` or `null` turns it off.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<CompressionInput>, nullable = true))]
    pub compression: Option<Option<CompressionInput>>,
    /// Largest request body; `null` removes the limit.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, nullable = true, minimum = 1))]
    pub max_body_bytes: Option<Option<u64>>,
    /// Deadlines toward the app; `null` returns to the defaults.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Timeouts>, nullable = true))]
    pub timeouts: Option<Option<Timeouts>>,
}

/// `deserialize_with` of a patch's rule: absent is `None` (by `default`),
/// `null` is `Some(None)` (turn the rule off), a value `Some(Some(v))`.
fn nullable<'de, D, T>(input: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(input).map(Some)
}

/// Names one domain of an app: its host and path prefix (default `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainKey {
    /// Lowercase host.
    pub host: String,
    /// Normalized prefix.
    pub path_prefix: String,
}

impl DomainKey {
    /// The key of `host` and `path_prefix` as a user writes them (any case,
    /// a trailing slash); errors name `host` or `path_prefix`.
    pub fn parse(host: &str, path_prefix: Option<&str>) -> Result<Self, FieldError> {
        Ok(Self {
            host: validate_host("host", host)?,
            path_prefix: validate_path_prefix("path_prefix", path_prefix.unwrap_or("/"))?,
        })
    }

    fn names(&self, domain: &Domain) -> bool {
        domain.host == self.host && domain.path_prefix == self.path_prefix
    }
}

impl std::fmt::Display for DomainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path_prefix == "/" {
            f.write_str(&self.host)
        } else {
            write!(f, "{}{}", self.host, self.path_prefix)
        }
    }
}

/// One edit of an app's domains.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEdit {
    /// Add a domain; the app must not have its host and prefix yet.
    Add(DomainInput),
    /// Change the domain with this key.
    Change(DomainKey, DomainPatch),
    /// Remove the domain with this key.
    Remove(DomainKey),
}

/// Why an edit cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainEditError {
    /// No domain has the key.
    #[error("the app has no domain {0}; list its domains with GET /api/v1/apps/{{name}}")]
    NotFound(DomainKey),
    /// The app already has a domain with the key.
    #[error("the app already has the domain {0}; change it with PATCH /api/v1/apps/{{name}}/domains/{{host}}")]
    Exists(DomainKey),
    /// The input is invalid.
    #[error("{0}")]
    Invalid(FieldError),
}

impl DomainEdit {
    /// The whole new list of domains, as input for the app's validation
    /// (which checks the list as a whole, as for any change of the app).
    /// The domain edited keeps its place; an added one goes last.
    pub fn apply(self, domains: &[Domain]) -> Result<Vec<DomainInput>, DomainEditError> {
        let mut list: Vec<DomainInput> = domains.iter().map(DomainInput::from).collect();
        match self {
            Self::Add(input) => {
                let key = DomainKey::parse(&input.host, input.path_prefix.as_deref())
                    .map_err(DomainEditError::Invalid)?;
                if domains.iter().any(|d| key.names(d)) {
                    return Err(DomainEditError::Exists(key));
                }
                list.push(input);
            }
            Self::Change(key, mut patch) => {
                let i = position(domains, &key)?;
                let old = &domains[i];
                let certificate = patch.certificate.unwrap_or(old.certificate);
                let keeps_certificate = certificate == old.certificate;
                let rules = patch.rules(&old.rules);
                list[i] = DomainInput {
                    host: patch.host.unwrap_or_else(|| old.host.clone()),
                    path_prefix: Some(patch.path_prefix.unwrap_or_else(|| old.path_prefix.clone())),
                    strip_prefix: Some(patch.strip_prefix.unwrap_or(old.strip_prefix)),
                    certificate: Some(certificate),
                    redirect_https: patch
                        .redirect_https
                        .or(keeps_certificate.then_some(old.redirect_https)),
                    hsts: patch.hsts.or(keeps_certificate.then_some(old.hsts)),
                    ..DomainInput::default()
                };
                list[i].set_rules(rules);
                let moved = DomainKey::parse(&list[i].host, list[i].path_prefix.as_deref())
                    .map_err(DomainEditError::Invalid)?;
                if moved != key && domains.iter().any(|d| moved.names(d)) {
                    return Err(DomainEditError::Exists(moved));
                }
            }
            Self::Remove(key) => {
                let i = position(domains, &key)?;
                list.remove(i);
            }
        }
        Ok(list)
    }
}

impl DomainPatch {
    /// The rules after the patch: each rule given replaces the old one
    /// (`null` removes it), the others stay. Basic-auth users named
    /// alone get their old hashes here, so they keep them even when the
    /// host or prefix changes too.
    fn rules(&mut self, old: &RouteRules) -> RulesInput {
        let mut rules = RulesInput::from(old);
        macro_rules! replace {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field.take() {
                    rules.$field = value;
                })*
            };
        }
        replace!(
            basic_auth,
            redirect_www,
            redirects,
            headers,
            security_headers,
            cors,
            ip_allow,
            ip_deny,
            rate_limit,
            compression,
            max_body_bytes,
            timeouts
        );
        let old_users = old.basic_auth.iter().flat_map(|a| &a.users);
        for user in rules.basic_auth.iter_mut().flat_map(|a| &mut a.users) {
            if user.password.is_none() && user.password_hash.is_none() {
                user.password_hash = old_users
                    .clone()
                    .find(|u| u.username == user.username)
                    .map(|u| u.password_hash.clone());
            }
        }
        rules
    }
}

fn position(domains: &[Domain], key: &DomainKey) -> Result<usize, DomainEditError> {
    domains
        .iter()
        .position(|d| key.names(d))
        .ok_or_else(|| DomainEditError::NotFound(key.clone()))
}

#[cfg(test)]
mod tests;
