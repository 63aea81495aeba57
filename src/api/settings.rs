//! The instance settings in the API: `GET /api/v1/settings` and
//! `PATCH /api/v1/settings` (the ACME contact email and the public URL;
//! owners and admins).

use axum::extract::State;
use axum::Json;
use berth_config::InstanceInput;

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::ApiState;
use berth::instance::{InstanceError, SettingsView};

/// The instance settings set here and those in effect.
#[utoipa::path(get, path = "/api/v1/settings", tag = "system",
    responses((status = 200, body = SettingsView)))]
pub async fn get(State(state): State<ApiState>) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(state.instance.view()?))
}

/// Changes the instance settings: a field left out stays, `null` clears
/// it (the config file's value applies again). A new ACME email updates
/// the account's contact; a new public URL changes webhook URLs at once.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "system", request_body = InstanceInput,
    responses((status = 200, body = SettingsView), (status = 400, body = ErrorBody)))]
pub async fn patch(
    State(state): State<ApiState>,
    ApiJson(input): ApiJson<InstanceInput>,
) -> Result<Json<SettingsView>, ApiError> {
    match state.instance.change(input) {
        Ok(view) => Ok(Json(view)),
        Err(InstanceError::Invalid(err)) => Err(err.into()),
        Err(InstanceError::Store(err)) => Err(err.into()),
    }
}
