//! Deployments: queue one for an app, list an app's or all by status,
//! read one, cancel one.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use std::convert::Infallible;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::views::DeploymentView;
use super::ApiState;
use berth::access::{Principal, Target};
use berth::orchestrator::DeploymentLog;
use berth::store::{DeploymentStatus, Trigger};

/// Most deployments one listing returns.
const LIST_LIMIT: usize = 200;

/// Query of the deployments listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only deployments with this status: queued, running, succeeded, failed, cancelled or rolled_back.
    status: Option<DeploymentStatus>,
}

/// Deployments of all apps, newest first (at most 200), optionally by status.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", params(ListQuery),
    responses((status = 200, body = [DeploymentView]), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!(
                "{}; status is one of queued, running, succeeded, failed, cancelled, rolled_back",
                e.body_text()
            ),
        )
        .with_field("status")
    })?;
    let all = [
        DeploymentStatus::Queued,
        DeploymentStatus::Running,
        DeploymentStatus::Succeeded,
        DeploymentStatus::Failed,
        DeploymentStatus::Cancelled,
        DeploymentStatus::RolledBack,
    ];
    let statuses = query.status.map_or(all.to_vec(), |s| vec![s]);
    let store = state.orchestrator.store();
    let mut list = store.deployments_with_status(&statuses)?;
    if !matches!(principal, Principal::Operator) {
        let projects: std::collections::HashMap<String, Option<String>> = store
            .apps()
            .iter()
            .map(|a| (a.spec.name.clone(), a.spec.project.clone()))
            .collect();
        list.retain(|d| {
            projects
                .get(&d.app)
                .is_some_and(|p| principal.sees(Target::Project(p.as_deref())))
        });
    }
    list.reverse();
    list.truncate(LIST_LIMIT);
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Query of the deployment log endpoint.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Stream as Server-Sent Events, live until the deployment ends; default false.
    follow: Option<bool>,
}

/// The lines of a deployment's log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeploymentLogView {
    /// Timestamped lines, oldest first (at most 2000; older ones dropped).
    lines: Vec<String>,
}

/// A deployment's log: JSON, or with `follow=true` a Server-Sent Events
/// stream (one `data:` line per log line) that ends with the deployment.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/logs", tag = "deployments",
    params(("id" = String, Path, description = "Deployment id"), LogQuery),
    responses((status = 200, body = DeploymentLogView, description = "JSON, or text/event-stream with follow=true"),
              (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", e.body_text()).with_field("follow")
    })?;
    let log = state.orchestrator.deployment_log(&id)?;
    if !query.follow.unwrap_or(false) {
        let lines = match log {
            DeploymentLog::Live(log) => log.lines(),
            DeploymentLog::Ended(lines) => lines,
        };
        return Ok(Json(DeploymentLogView { lines }).into_response());
    }
    let (past, live) = match log {
        DeploymentLog::Live(log) => {
            let (past, rx) = log.follow();
            (past, Some(rx))
        }
        DeploymentLog::Ended(lines) => (lines, None),
    };
    let past = futures_util::stream::iter(past.into_iter().map(|l| Ok(Event::default().data(l))));
    let live = futures_util::stream::unfold(live, |rx| async move {
        let mut rx = rx?;
        let line = match rx.recv().await {
            Ok(line) => line,
            Err(RecvError::Lagged(n)) => format!("[{n} lines skipped: the reader was too slow]"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().data(line)), Some(rx)))
    });
    let stream = past.chain(live);
    Ok(Sse::new(stream.map(|e: Result<Event, Infallible>| e))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Which deployment to return to.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// One of the app's last successful deployments (the rollback window, default 5).
    deployment_id: String,
}

/// Queues a rollback: a new deployment (trigger `rollback`, `rollback_of`
/// the target) of an earlier successful deployment's spec with its image
/// pinned by id. Once it serves, the target's image and settings are the
/// app's spec again: a later plain deployment runs the rolled-back version,
/// not the one it replaced.
#[utoipa::path(post, path = "/api/v1/apps/{name}/rollback", tag = "deployments", request_body = RollbackInput,
    params(("name" = String, Path, description = "App name")),
    responses((status = 202, body = DeploymentView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "outside the rollback window")))]
pub async fn rollback(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<RollbackInput>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let deployment = state.orchestrator.rollback(&name, &input.deployment_id)?;
    Ok((StatusCode::ACCEPTED, Json(deployment.into())))
}

/// Cancels a queued or running deployment; its new replicas are removed and
/// the previous version keeps serving. 409 if it has already ended.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/cancel", tag = "deployments",
    params(("id" = String, Path, description = "Deployment id")),
    responses((status = 202, body = DeploymentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let record = state.orchestrator.cancel(&id)?;
    Ok((StatusCode::ACCEPTED, Json(record.into())))
}

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
