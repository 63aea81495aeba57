//! The saved forms of what the edge applies to an app's traffic: a
//! domain's route rules ([`SavedRules`], nested in a saved domain as
//! `rules`) and the app's maintenance mode and error pages (fields of a
//! saved spec). Every part is left out when it is off or empty, so a
//! record without any is written as before (schema 5).
//!
//! Basic-auth users are saved with their password hashes (the edge needs
//! them); the API never shows them. A network is saved as its CIDR string
//! (`10.0.0.0/8`).

use std::collections::BTreeMap;

use berth_config::{
    BasicAuth, BasicAuthUser, Cidr, Cors, Encoding, HeaderEdits, HeaderRules, Maintenance,
    RateLimit, Redirect, RedirectWww, RouteRules, Timeouts,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Kept;

/// A domain's saved route rules; the default (every rule off) is not
/// written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::store) struct SavedRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    basic_auth: Option<SavedBasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redirect_www: Option<SavedRedirectWww>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    redirects: Vec<SavedRedirect>,
    #[serde(default, skip_serializing_if = "SavedHeaderRules::is_empty")]
    headers: SavedHeaderRules,
    #[serde(default, skip_serializing_if = "is_false")]
    security_headers: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cors: Option<SavedCors>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ip_allow: Vec<SavedCidr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ip_deny: Vec<SavedCidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit: Option<SavedRateLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    compression: Vec<SavedEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "SavedTimeouts::is_empty")]
    timeouts: SavedTimeouts,
}

impl SavedRules {
    /// Whether no rule is on (then the domain saves no `rules`).
    pub(in crate::store) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Saved basic auth: the realm and the users with their hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedBasicAuth {
    realm: String,
    users: Vec<SavedAuthUser>,
}

/// A saved basic-auth user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedAuthUser {
    username: String,
    password_hash: String,
}

saved_enum! {
    /// A saved `www` redirect preset.
    SavedRedirectWww for RedirectWww {
        ToApex = "to_apex",
        ToWww = "to_www",
    }
}

/// A saved regex redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedRedirect {
    from: String,
    to: String,
    status: u16,
}

/// Saved header edits of both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SavedHeaderRules {
    #[serde(default, skip_serializing_if = "SavedHeaderEdits::is_empty")]
    request: SavedHeaderEdits,
    #[serde(default, skip_serializing_if = "SavedHeaderEdits::is_empty")]
    response: SavedHeaderEdits,
}

impl SavedHeaderRules {
    fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// Saved header edits of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SavedHeaderEdits {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    remove: Vec<String>,
}

impl SavedHeaderEdits {
    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// Saved CORS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedCors {
    origins: Vec<String>,
    methods: Vec<String>,
    headers: Vec<String>,
    expose_headers: Vec<String>,
    credentials: bool,
    max_age_secs: u32,
}

/// A saved network: its CIDR string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SavedCidr(Cidr);

impl Serialize for SavedCidr {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        out.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SavedCidr {
    fn deserialize<D: Deserializer<'de>>(input: D) -> Result<Self, D::Error> {
        let text = String::deserialize(input)?;
        text.parse().map(Self).map_err(serde::de::Error::custom)
    }
}

/// A saved rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SavedRateLimit {
    per_second: u32,
    burst: u32,
}

saved_enum! {
    /// A saved response coding.
    SavedEncoding for Encoding {
        Zstd = "zstd",
        Br = "br",
        Gzip = "gzip",
    }
}

/// Saved deadlines toward the app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SavedTimeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_header_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idle_secs: Option<u32>,
}

impl SavedTimeouts {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An app's saved maintenance mode; off is not written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::store) struct SavedMaintenance {
    enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl SavedMaintenance {
    /// Whether off with no message (then the spec saves no `maintenance`).
    pub(in crate::store) fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

same_fields!(SavedMaintenance, Maintenance, { enabled, message });
same_fields!(SavedAuthUser, BasicAuthUser, { username, password_hash });
same_fields!(SavedRedirect, Redirect, { from, to, status });
same_fields!(SavedHeaderRules, HeaderRules, { request, response });
same_fields!(SavedHeaderEdits, HeaderEdits, { set, remove });
same_fields!(SavedCors, Cors, {
    origins, methods, headers, expose_headers, credentials, max_age_secs,
});
same_fields!(SavedRateLimit, RateLimit, { per_second, burst });
same_fields!(SavedTimeouts, Timeouts, { response_header_secs, idle_secs });

impl From<&RouteRules> for SavedRules {
    fn from(rules: &RouteRules) -> Self {
        let RouteRules {
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
        Self {
            basic_auth: basic_auth.as_ref().map(SavedBasicAuth::from),
            redirect_www: redirect_www.map(SavedRedirectWww::from),
            redirects: redirects.iter().map(SavedRedirect::from).collect(),
            headers: headers.into(),
            security_headers: *security_headers,
            cors: cors.as_ref().map(SavedCors::from),
            ip_allow: ip_allow.iter().copied().map(SavedCidr).collect(),
            ip_deny: ip_deny.iter().copied().map(SavedCidr).collect(),
            rate_limit: rate_limit.as_ref().map(SavedRateLimit::from),
            compression: compression.iter().map(SavedEncoding::from).collect(),
            max_body_bytes: *max_body_bytes,
            timeouts: timeouts.into(),
        }
    }
}

impl From<SavedRules> for RouteRules {
    fn from(saved: SavedRules) -> Self {
        let SavedRules {
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
        } = saved;
        Self {
            basic_auth: basic_auth.map(BasicAuth::from),
            redirect_www: redirect_www.map(RedirectWww::from),
            redirects: redirects.into_iter().map(Redirect::from).collect(),
            headers: headers.into(),
            security_headers,
            cors: cors.map(Cors::from),
            ip_allow: ip_allow.into_iter().map(|c| c.0).collect(),
            ip_deny: ip_deny.into_iter().map(|c| c.0).collect(),
            rate_limit: rate_limit.map(RateLimit::from),
            compression: compression.into_iter().map(Encoding::from).collect(),
            max_body_bytes,
            timeouts: timeouts.into(),
        }
    }
}

/// For `same_fields!` of a saved domain (`rules.clone().into()`).
impl From<RouteRules> for SavedRules {
    fn from(rules: RouteRules) -> Self {
        (&rules).into()
    }
}

impl Kept for RouteRules {
    type Saved = SavedRules;
}

impl From<&BasicAuth> for SavedBasicAuth {
    fn from(auth: &BasicAuth) -> Self {
        let BasicAuth { realm, users } = auth;
        Self {
            realm: realm.clone(),
            users: users.iter().map(SavedAuthUser::from).collect(),
        }
    }
}

impl From<SavedBasicAuth> for BasicAuth {
    fn from(saved: SavedBasicAuth) -> Self {
        let SavedBasicAuth { realm, users } = saved;
        Self {
            realm,
            users: users.into_iter().map(BasicAuthUser::from).collect(),
        }
    }
}

/// For `same_fields!` of saved header rules (`request.clone().into()`).
impl From<HeaderEdits> for SavedHeaderEdits {
    fn from(edits: HeaderEdits) -> Self {
        (&edits).into()
    }
}
