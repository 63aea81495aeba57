//! Deployments: queue one for an app, list an app's, read one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiError, ErrorBody};
use super::views::DeploymentView;
use super::ApiState;
use crate::store::Trigger;

/// Queues a deployment of the app's current spec.
#[utoipa::path(post, path = "/api/v1/apps/{name}/deployments", tag = "deployments",
    params(("name" = String, Path, description = "App name")),
    responses((status = 202, body = DeploymentView), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let deployment = state.orchestrator.deploy(&name, Trigger::Api)?;
    Ok((StatusCode::ACCEPTED, Json(deployment.into())))
}

/// The app's deployments, newest first.
#[utoipa::path(get, path = "/api/v1/apps/{name}/deployments", tag = "deployments",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = [DeploymentView]), (status = 404, body = ErrorBody)))]
pub async fn list_for_app(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    let store = state.orchestrator.store();
    store.app(&name)?;
    let list = store.app_deployments(&name)?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// One deployment.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "Deployment id")),
    responses((status = 200, body = DeploymentView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    Ok(Json(state.orchestrator.store().deployment(&id)?.into()))
}
