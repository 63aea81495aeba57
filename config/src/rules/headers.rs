//! Header edits of a domain (`headers`: fields set and removed on
//! requests and responses) and the fields no rule may touch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Most header edits of one direction.
pub const MAX_HEADER_EDITS: usize = 50;

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

pub(super) fn check_edits(edits: &HeaderEdits) -> Result<(), FieldError> {
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

pub(super) fn lowercase_edits(edits: HeaderEdits) -> HeaderEdits {
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
