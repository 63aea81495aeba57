//! `/api/v1/projects`: create, list, read, change and delete projects.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use berth_config::{ProjectInput, ProjectSpec};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::views::ProjectView;
use super::ApiState;
use berth::access::{Principal, Target};
use berth::store::ProjectRecord;

/// Changes to a project.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// New description.
    description: Option<String>,
}

/// Creates a project.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = ProjectInput,
    responses((status = 201, body = ProjectView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(input): ApiJson<ProjectInput>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let record = ProjectRecord {
        spec: input.validate()?,
        created_at: OffsetDateTime::now_utc(),
    };
    state.orchestrator.store().create_project(&record)?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Lists projects.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = [ProjectView])))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    let projects = state.orchestrator.store().projects()?;
    Ok(Json(
        projects
            .into_iter()
            .filter(|p| principal.sees(Target::Project(Some(&p.spec.name))))
            .map(Into::into)
            .collect(),
    ))
}

/// Reads a project.
#[utoipa::path(get, path = "/api/v1/projects/{name}", tag = "projects",
    params(("name" = String, Path, description = "Project name")),
    responses((status = 200, body = ProjectView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(state.orchestrator.store().project(&name)?.into()))
}

/// Changes a project's description.
#[utoipa::path(patch, path = "/api/v1/projects/{name}", tag = "projects", request_body = ProjectPatch,
    params(("name" = String, Path, description = "Project name")),
    responses((status = 200, body = ProjectView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn patch(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<ProjectPatch>,
) -> Result<Json<ProjectView>, ApiError> {
    let store = state.orchestrator.store();
    let current = store.project(&name)?;
    let spec: ProjectSpec = ProjectInput {
        name: current.spec.name,
        description: patch.description.or(Some(current.spec.description)),
    }
    .validate()?;
    Ok(Json(store.update_project(spec)?.into()))
}

/// Deletes a project that has no apps.
#[utoipa::path(delete, path = "/api/v1/projects/{name}", tag = "projects",
    params(("name" = String, Path, description = "Project name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.orchestrator.store().delete_project(&name)?;
    Ok(StatusCode::NO_CONTENT)
}
