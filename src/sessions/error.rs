//! Why a sign-in step failed: each reason has its HTTP status, a stable
//! code and a message that names the fix (never a secret), so the API and
//! the panel answer alike.

use std::time::Duration;

use berth_config::FieldError;
use http::StatusCode;

use super::limiter::minutes;
use crate::secrets::SecretError;
use crate::store::StoreError;

/// Why an attempt failed. Messages name the fix and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown user or wrong password (the same answer for both).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Too many failures; try again after the wait.
    #[error("too many failed sign-ins; try again in {}", minutes(*.0))]
    TooMany(Duration),
    /// Setup was done already.
    #[error("setup is done; sign in")]
    SetupDone,
    /// The setup code is not the one berth made.
    #[error("wrong setup code; it is in <data-dir>/setup-code and in berth's log")]
    WrongSetupCode,
    /// A wrong (or reused) TOTP or backup code.
    #[error("wrong code; give the current code of your authenticator app (each code works once) or an unused backup code")]
    WrongCode,
    /// No second factor is due in this session.
    #[error("this session needs no second factor")]
    NotPending,
    /// Confirming before starting enrolment.
    #[error("no enrolment to confirm; start one with POST /api/v1/session/totp")]
    NotEnrolling,
    /// Enrolling while two-factor sign-in is on.
    #[error("two-factor sign-in is on already; turn it off first (DELETE /api/v1/session/totp)")]
    AlreadyOn,
    /// Turning off what is off.
    #[error("two-factor sign-in is off already")]
    NotOn,
    /// A request field is invalid.
    #[error("{}: {}", .0.field, .0.message)]
    Field(FieldError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed secret did not open.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Something that should not fail did.
    #[error("{0}")]
    Internal(String),
}

impl From<FieldError> for SessionError {
    fn from(e: FieldError) -> Self {
        Self::Field(e)
    }
}

impl SessionError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidCredentials | Self::WrongSetupCode | Self::WrongCode => {
                StatusCode::UNAUTHORIZED
            }
            Self::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::SetupDone
            | Self::NotPending
            | Self::NotEnrolling
            | Self::AlreadyOn
            | Self::NotOn => StatusCode::CONFLICT,
            Self::Field(_) => StatusCode::BAD_REQUEST,
            Self::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Self::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            Self::Store(StoreError::Invalid(_)) => StatusCode::BAD_REQUEST,
            Self::Store(_) | Self::Secret(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// A stable code for the answer's body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::TooMany(_) => "too_many_attempts",
            Self::SetupDone => "setup_done",
            Self::WrongSetupCode => "invalid_setup_code",
            Self::WrongCode => "invalid_code",
            Self::NotPending => "no_second_factor_due",
            Self::NotEnrolling => "not_enrolling",
            Self::AlreadyOn => "two_factor_on",
            Self::NotOn => "two_factor_off",
            Self::Field(_) | Self::Store(StoreError::Invalid(_)) => "invalid_field",
            Self::Store(StoreError::NotFound { .. }) => "not_found",
            Self::Store(StoreError::Conflict(_)) => "conflict",
            Self::Store(_) | Self::Secret(_) | Self::Internal(_) => "internal",
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field(f) | Self::Store(StoreError::Invalid(f) | StoreError::Conflict(f)) => {
                Some(&f.field)
            }
            Self::InvalidCredentials => Some("password"),
            Self::WrongSetupCode => Some("setup_code"),
            Self::WrongCode => Some("code"),
            _ => None,
        }
    }
}
