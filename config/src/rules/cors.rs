//! CORS of a domain: the origins, methods and headers as sent, and the
//! validated form the edge answers preflights with (`*` with credentials
//! refused).

use serde::{Deserialize, Serialize};

use crate::FieldError;

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

impl CorsInput {
    pub(super) fn validate(self) -> Result<Cors, FieldError> {
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
