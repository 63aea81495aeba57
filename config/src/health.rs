//! Health checks of apps: how a new replica proves it is ready before it
//! gets traffic. `auto` uses the image's Docker `HEALTHCHECK` when it has
//! one and a TCP connect otherwise.

use serde::{Deserialize, Serialize};

use crate::names::validate_path_prefix;
use crate::FieldError;

/// Kind of check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    /// Docker healthcheck if the image has one, else TCP.
    #[default]
    Auto,
    /// `GET path` must answer `expected_status`.
    Http,
    /// A TCP connect to the container port.
    Tcp,
    /// The image's Docker healthcheck (the image must define one).
    Docker,
}

/// A health check as the user sends it; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthCheckInput {
    /// `auto` (default), `http`, `tcp` or `docker`.
    #[serde(default, rename = "type")]
    pub kind: Option<HealthKind>,
    /// Path of an `http` check; default `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// Status an `http` check expects; default 200.
    #[serde(default)]
    pub expected_status: Option<i64>,
    /// Milliseconds between probes; default 250.
    #[serde(default)]
    pub interval_ms: Option<i64>,
    /// Milliseconds one probe may take; default 1000.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// Consecutive failures after the start period that fail the gate; default 0 (keep probing until the deadline).
    #[serde(default)]
    pub retries: Option<i64>,
    /// Seconds after start during which failures do not count; default 0.
    #[serde(default)]
    pub start_period_secs: Option<i64>,
}

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthCheck {
    /// Kind of check.
    #[serde(rename = "type")]
    pub kind: HealthKind,
    /// Path of an `http` check.
    pub path: String,
    /// Status an `http` check expects.
    pub expected_status: u16,
    /// Milliseconds between probes.
    pub interval_ms: u64,
    /// Milliseconds one probe may take.
    pub timeout_ms: u64,
    /// Consecutive failures after the start period that fail the gate; 0: none.
    pub retries: u32,
    /// Seconds after start during which failures do not count.
    pub start_period_secs: u64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            kind: HealthKind::Auto,
            path: "/".into(),
            expected_status: 200,
            interval_ms: 250,
            timeout_ms: 1000,
            retries: 0,
            start_period_secs: 0,
        }
    }
}

fn ranged(
    field: &str,
    value: Option<i64>,
    default: u64,
    min: i64,
    max: i64,
) -> Result<u64, FieldError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v as u64),
        Some(v) => Err(FieldError::new(
            field,
            format!("{v} is out of range; give {min}-{max}"),
        )),
    }
}

impl HealthCheckInput {
    /// Validates into a check; fields are named relative to the check.
    pub fn validate(&self) -> Result<HealthCheck, FieldError> {
        let d = HealthCheck::default();
        let path = match &self.path {
            Some(p) => {
                validate_path_prefix("path", p.split('?').next().unwrap_or(p)).map(|_| p.clone())?
            }
            None => d.path,
        };
        Ok(HealthCheck {
            kind: self.kind.unwrap_or_default(),
            path,
            expected_status: ranged("expected_status", self.expected_status, 200, 100, 599)? as u16,
            interval_ms: ranged("interval_ms", self.interval_ms, d.interval_ms, 50, 60_000)?,
            timeout_ms: ranged("timeout_ms", self.timeout_ms, d.timeout_ms, 50, 60_000)?,
            retries: ranged("retries", self.retries, 0, 0, 100)? as u32,
            start_period_secs: ranged("start_period_secs", self.start_period_secs, 0, 0, 3600)?,
        })
    }
}

impl From<&HealthCheck> for HealthCheckInput {
    fn from(h: &HealthCheck) -> Self {
        Self {
            kind: Some(h.kind),
            path: Some(h.path.clone()),
            expected_status: Some(i64::from(h.expected_status)),
            interval_ms: Some(h.interval_ms as i64),
            timeout_ms: Some(h.timeout_ms as i64),
            retries: Some(i64::from(h.retries)),
            start_period_secs: Some(h.start_period_secs as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let h = HealthCheckInput::default().validate().unwrap();
        assert_eq!(h, HealthCheck::default());
        let bad = HealthCheckInput {
            expected_status: Some(700),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "expected_status");
        let bad = HealthCheckInput {
            path: Some("health".into()),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "path");
        let ok = HealthCheckInput {
            kind: Some(HealthKind::Http),
            path: Some("/healthz?full=1".into()),
            ..Default::default()
        };
        assert_eq!(ok.validate().unwrap().path, "/healthz?full=1");
    }
}
