//! The API's one error type: a status, a stable code, a message that names
//! the problem and the fix, and the field when one is at fault. Messages
//! never carry secrets; internal details go to the log only.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_config::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

use berth::certs::CertsError;
use berth::orchestrator::OpError;
use berth::store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

/// Body of every error answer: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_field`, `not_found`, `conflict`.
    code: &'static str,
    /// What is wrong and how to fix it.
    message: String,
    /// The offending field, e.g. `domains[0].host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The answer's status.
    #[cfg(test)]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The same error, naming `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 401 for a missing or wrong token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the admin token as 'Authorization: Bearer <token>'; it is in <data-dir>/admin-token",
        )
    }

    /// 404 for a path that is not part of the API.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; see /api/v1/openapi.json",
        )
    }

    /// 405 for a method the path does not have.
    pub fn no_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method; see /api/v1/openapi.json for the ones it takes",
        )
    }

    /// A 500 whose details go to the log only.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(%err, "internal error in the admin API");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the berth log has the details",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_field", e.message).with_field(e.field)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, name } => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{kind} {name:?} does not exist"),
            ),
            StoreError::Invalid(f) => f.into(),
            StoreError::Conflict(f) => {
                Self::new(StatusCode::CONFLICT, "conflict", f.message).with_field(f.field)
            }
            other => Self::internal(&other),
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Store(s) => s.into(),
            OpError::Engine(err) => Self::new(
                StatusCode::BAD_GATEWAY,
                "docker",
                format!("the Docker engine refused: {err}"),
            ),
            OpError::Busy => Self::new(StatusCode::CONFLICT, "busy", OpError::Busy.to_string()),
            e @ OpError::Ended(_) => Self::new(StatusCode::CONFLICT, "ended", e.to_string()),
            e @ OpError::Secret(_) => Self::internal(&e),
        }
    }
}

impl From<CertsError> for ApiError {
    fn from(e: CertsError) -> Self {
        match e {
            CertsError::Invalid(err) => {
                let message = err.to_string();
                let field = if message.starts_with("key_pem") {
                    "key_pem"
                } else {
                    "cert_pem"
                };
                Self::new(StatusCode::BAD_REQUEST, "invalid_certificate", message).with_field(field)
            }
            CertsError::Field(f) => f.into(),
            CertsError::InUse(f) => {
                Self::new(StatusCode::CONFLICT, "in_use", f.message).with_field(f.field)
            }
            CertsError::Store(s) => s.into(),
            other @ CertsError::Secret(_) => Self::internal(&other),
        }
    }
}

impl From<berth::builds::BuildError> for ApiError {
    fn from(e: berth::builds::BuildError) -> Self {
        use berth::builds::BuildError;
        match e {
            BuildError::Invalid { field, message } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_field(field)
            }
            e @ (BuildError::Git(_) | BuildError::Timeout(_)) => {
                Self::new(StatusCode::BAD_GATEWAY, "git", e.to_string()).with_field("source.url")
            }
            e @ (BuildError::Failed(_) | BuildError::Docker(_) | BuildError::Push(_)) => {
                Self::new(StatusCode::BAD_GATEWAY, "build", e.to_string())
            }
            e @ (BuildError::Io(_) | BuildError::Cancelled) => Self::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
