//! An app's own pages at the edge: maintenance mode (every route of the
//! app answers 503 with a page, the containers keep running) and custom
//! pages for the edge's 502, 503 and 504.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Largest custom error page.
pub const MAX_ERROR_PAGE_BYTES: usize = 64 * 1024;
/// Longest maintenance message.
pub const MAX_MAINTENANCE_MESSAGE: usize = 2000;
/// The statuses a custom page may replace.
pub const ERROR_PAGE_STATUSES: [u16; 3] = [502, 503, 504];

/// Maintenance mode of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// Answer every route of the app with a 503 maintenance page.
    pub enabled: bool,
    /// Text shown on the page (plain text, escaped; at most 2000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    pub message: Option<String>,
}

impl Maintenance {
    /// Checks the message (field names relative to `maintenance`).
    pub fn validate(self) -> Result<Maintenance, FieldError> {
        if let Some(m) = &self.message {
            if m.chars().count() > MAX_MAINTENANCE_MESSAGE {
                return Err(FieldError::new(
                    "message",
                    format!("give at most {MAX_MAINTENANCE_MESSAGE} characters"),
                ));
            }
        }
        Ok(self)
    }

    /// Whether the default (off, no message).
    pub fn is_off(&self) -> bool {
        *self == Maintenance::default()
    }
}

/// Validates custom error pages: keys `"502"`, `"503"` or `"504"`, each
/// page non-empty HTML of at most [`MAX_ERROR_PAGE_BYTES`].
pub fn validate_error_pages(
    pages: BTreeMap<String, String>,
) -> Result<BTreeMap<u16, String>, FieldError> {
    let mut out = BTreeMap::new();
    for (key, page) in pages {
        let status = key
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|s| ERROR_PAGE_STATUSES.contains(s))
            .ok_or_else(|| {
                FieldError::new(
                    format!("error_pages.{key}"),
                    "is not a status berth answers itself; give \"502\", \"503\" or \"504\"",
                )
            })?;
        if page.is_empty() || page.len() > MAX_ERROR_PAGE_BYTES {
            return Err(FieldError::new(
                format!("error_pages.{key}"),
                format!(
                    "is {} bytes; give a page of 1 to {MAX_ERROR_PAGE_BYTES} bytes",
                    page.len()
                ),
            ));
        }
        out.insert(status, page);
    }
    Ok(out)
}

/// Validates an app's maintenance mode and error pages as given (absent:
/// off, none); errors name `maintenance.…` or `error_pages.…`.
pub(crate) fn validate_app_pages(
    maintenance: Option<Maintenance>,
    pages: Option<BTreeMap<String, String>>,
) -> Result<(Maintenance, BTreeMap<u16, String>), FieldError> {
    let maintenance = maintenance
        .unwrap_or_default()
        .validate()
        .map_err(|e| e.within("maintenance"))?;
    let pages = validate_error_pages(pages.unwrap_or_default())?;
    Ok((maintenance, pages))
}

/// An app's maintenance mode and error pages as an input gives them.
pub(crate) type PagesInput = (Option<Maintenance>, Option<BTreeMap<String, String>>);

/// An app's maintenance mode and error pages after a patch, as input to
/// validate again: what the patch gives replaces what the app has.
pub(crate) fn pages_after(
    patch: PagesInput,
    now: (&Maintenance, &BTreeMap<u16, String>),
) -> PagesInput {
    let maintenance = patch.0.unwrap_or_else(|| now.0.clone());
    let pages = patch.1.unwrap_or_else(|| {
        now.1
            .iter()
            .map(|(status, page)| (status.to_string(), page.clone()))
            .collect()
    });
    (Some(maintenance), Some(pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_take_only_the_edges_own_statuses_and_a_bounded_size() {
        let ok = BTreeMap::from([("503".to_string(), "<h1>soon</h1>".to_string())]);
        assert_eq!(validate_error_pages(ok).unwrap()[&503], "<h1>soon</h1>");
        let bad = BTreeMap::from([("404".to_string(), "x".to_string())]);
        assert_eq!(
            validate_error_pages(bad).unwrap_err().field,
            "error_pages.404"
        );
        let big = BTreeMap::from([("502".to_string(), "x".repeat(MAX_ERROR_PAGE_BYTES + 1))]);
        assert_eq!(
            validate_error_pages(big).unwrap_err().field,
            "error_pages.502"
        );
        let long = Maintenance {
            enabled: true,
            message: Some("x".repeat(MAX_MAINTENANCE_MESSAGE + 1)),
        };
        assert_eq!(long.validate().unwrap_err().field, "message");
    }
}
