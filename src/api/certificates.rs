//! `/api/v1/certificates`: the state of every HTTPS domain and stored
//! certificate; upload and removal of custom certificates. Private keys go
//! in and are never returned.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::ApiState;
use berth::certs::{CertificateView, CertificatesView};

/// A custom certificate to upload.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomCertificateInput {
    /// Its name: 1-63 of a-z, 0-9, '-'. Uploading under an existing name
    /// replaces that certificate.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z]([a-z0-9-]*[a-z0-9])?$"
    )]
    pub name: String,
    /// The chain, PEM, leaf first.
    #[schema(min_length = 1)]
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1). Stored encrypted,
    /// never returned.
    #[schema(min_length = 1)]
    pub key_pem: String,
}

/// Stored certificates, and each HTTPS domain's status, expiry and last error.
#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates",
    responses((status = 200, body = CertificatesView)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<CertificatesView>, ApiError> {
    Ok(Json(state.certs.view()?))
}

/// Uploads a custom certificate: it must parse, its key must belong to it,
/// and it must be valid now. Domains with `certificate: "custom"` whose host
/// it covers are served with it from the next handshake.
#[utoipa::path(post, path = "/api/v1/certificates", tag = "certificates",
    request_body = CustomCertificateInput,
    responses((status = 201, body = CertificateView), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(input): ApiJson<CustomCertificateInput>,
) -> Result<(StatusCode, Json<CertificateView>), ApiError> {
    let view = state
        .certs
        .add_custom(&input.name, &input.cert_pem, &input.key_pem)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Removes a custom certificate; 409 while a `custom` domain depends on it.
#[utoipa::path(delete, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Certificate name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.certs.delete_custom(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
