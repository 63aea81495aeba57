//! `/api/v1/apps`: create, list, read, change, delete, stop and start apps
//! (their containers' logs are in [`super::logs`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_config::{
    git_origin, AppInput, AppPatch, AppSecrets, AppSpec, CertificateSource, FieldError, Mount,
    MountInput,
};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::guard::forbidden;
use super::json::ApiJson;
use super::views::{AppView, DeploymentView};
use super::ApiState;
use berth::access::{Denied, Principal, Target};
use berth::orchestrator::StartOutcome;
use berth::store::{AppRecord, Scope, StoreError};
use berth::vault::Vault;

/// Creates an app. Its domains route at once (503 until a deployment serves).
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = AppInput,
    responses((status = 201, body = AppView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "unknown project"),
              (status = 409, body = ErrorBody, description = "name or route taken")))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(input): ApiJson<AppInput>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    let now = OffsetDateTime::now_utc();
    let secrets = input.secrets();
    let input = hashed(input, AppInput::hash_passwords).await?;
    let spec = input.validate()?;
    may_write_in(&principal, spec.project.as_deref())?;
    let bind = spec
        .mounts
        .iter()
        .position(|m| matches!(m, Mount::Bind { .. }));
    check_binds(&state, &principal, bind)?;
    let vault = Vault::new(secrets)
        .and_then(|v| v.seal(state.orchestrator.secrets()))
        .map_err(|e| ApiError::internal(&e))?;
    let record = AppRecord {
        spec,
        created_at: now,
        updated_at: now,
        active_deployment: None,
        stopped: false,
        vault: Some(vault),
    };
    check_custom_certificates(&state, &record.spec)?;
    check_trigger(&record.spec)?;
    let orchestrator = &state.orchestrator;
    orchestrator.create_app(&record)?;
    Ok((
        StatusCode::CREATED,
        Json(AppView::new(record, orchestrator)),
    ))
}

/// `input` with its basic-auth users' plain passwords replaced by their
/// argon2id hashes (`hash`: the input's `hash_passwords`). argon2 takes
/// tens of milliseconds of CPU per password: this runs on a blocking
/// thread and before any store transaction, whose validation then only
/// checks the hashes' form instead of holding the store's writer.
pub(super) async fn hashed<T: Send + 'static>(
    mut input: T,
    hash: fn(&mut T) -> Result<(), FieldError>,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || hash(&mut input).map(|()| input))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}

/// Host paths may be mounted only where the server allows it
/// (`[deploy] allow_bind_mounts`), and only by owners and admins: a host
/// path gives a container the host's files. `bind`: the index of the
/// first bind mount given, if any.
fn check_binds(
    state: &ApiState,
    principal: &Principal,
    bind: Option<usize>,
) -> Result<(), ApiError> {
    let Some(i) = bind else {
        return Ok(());
    };
    let field = format!("mounts[{i}].host_path");
    if !state.orchestrator.allows_bind_mounts() {
        return Err(FieldError::new(
            field,
            "this server does not allow host paths; its operator sets [deploy] allow_bind_mounts = true, or use a volume",
        )
        .into());
    }
    match principal.check(Scope::Admin, Target::Instance) {
        Ok(()) => Ok(()),
        Err(_) => Err(forbidden(Scope::Admin)),
    }
}

/// The source's push filters must compile (globs are checked with the
/// matcher that will run them).
fn check_trigger(spec: &AppSpec) -> Result<(), FieldError> {
    let Some(source) = &spec.source else {
        return Ok(());
    };
    let trigger = berth::hooks::Trigger {
        branch: source.branch.clone(),
        tag_pattern: source.tag_pattern.clone(),
        watch_paths: source.watch_paths.clone(),
    };
    trigger
        .validate()
        .map_err(|e| FieldError::new(format!("source.{}", e.field), e.message))
}

/// A `custom` domain needs an uploaded certificate that covers its host,
/// and no app may take berth's own panel domain.
pub(super) fn check_custom_certificates(
    state: &ApiState,
    spec: &AppSpec,
) -> Result<(), FieldError> {
    let panel = state.orchestrator.panel_domain();
    for (i, d) in spec.domains.iter().enumerate() {
        if panel.as_deref() == Some(d.host.as_str()) {
            return Err(FieldError::new(
                format!("domains[{i}].host"),
                format!(
                    "{} is berth's own panel domain ([panel] domain); give the app another host",
                    d.host
                ),
            ));
        }
        if d.certificate == CertificateSource::Custom && !state.certs.custom_covers(&d.host) {
            return Err(FieldError::new(
                format!("domains[{i}].certificate"),
                format!(
                    "no uploaded certificate covers {}; upload one with POST /api/v1/certificates first",
                    d.host
                ),
            ));
        }
    }
    Ok(())
}

/// Lists apps.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", responses((status = 200, body = [AppView])))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<AppView>>, ApiError> {
    let orchestrator = &state.orchestrator;
    let apps = orchestrator.store().apps();
    Ok(Json(
        apps.into_iter()
            .filter(|a| principal.sees(Target::Project(a.spec.project.as_deref())))
            .map(|a| AppView::new((*a).clone(), orchestrator))
            .collect(),
    ))
}

/// An app may go into a project (or into none) only for a principal that
/// may write there.
fn may_write_in(principal: &Principal, project: Option<&str>) -> Result<(), ApiError> {
    match principal.check(Scope::Write, Target::Project(project)) {
        Ok(()) => Ok(()),
        Err(Denied::Scope(need)) => Err(forbidden(need)),
        Err(Denied::Hidden) => Err(FieldError::new(
            "project",
            match project {
                Some(p) => format!("project {p:?} does not exist"),
                None => "give a project you may write in".to_string(),
            },
        )
        .into()),
    }
}

/// Reads an app.
#[utoipa::path(get, path = "/api/v1/apps/{name}", tag = "apps",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let orchestrator = &state.orchestrator;
    Ok(Json(AppView::new(
        orchestrator.store().app(&name)?,
        orchestrator,
    )))
}

/// Changes an app. Domains apply at once; image, port, replicas, env,
/// command and limits apply at the next deployment.
#[utoipa::path(patch, path = "/api/v1/apps/{name}", tag = "apps", request_body = AppPatch,
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = AppView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn patch(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<AppPatch>,
) -> Result<Json<AppView>, ApiError> {
    if let Some(project) = &patch.project {
        may_write_in(&principal, Some(project))?;
    }
    if let Some(mounts) = &patch.mounts {
        let bind = mounts
            .iter()
            .position(|m| matches!(m, MountInput::Bind { .. }));
        check_binds(&state, &principal, bind)?;
    }
    // Before the transaction: its validation then only checks hashes.
    let patch = hashed(patch, AppPatch::hash_passwords).await?;
    let orchestrator = &state.orchestrator;
    let secrets = orchestrator.secrets();
    let changed = AppSecrets {
        git_token: patch.source.as_ref().and_then(|s| s.token.clone()),
        ssh_key: patch.source.as_ref().and_then(|s| s.ssh_key.clone()),
        build: patch
            .build
            .as_ref()
            .and_then(|b| b.secrets.clone())
            .unwrap_or_default(),
    };
    let build_secrets_given = patch.build.as_ref().is_some_and(|b| b.secrets.is_some());
    let record = orchestrator.update_app(&name, |r| {
        let spec = r.spec.patched(patch).map_err(StoreError::Invalid)?;
        check_custom_certificates(&state, &spec).map_err(StoreError::Invalid)?;
        check_trigger(&spec).map_err(StoreError::Invalid)?;
        let sealed = |e: berth::secrets::SecretError| StoreError::Corrupt(e.to_string());
        let mut vault = Vault::open(secrets, r.vault.as_deref()).map_err(sealed)?;
        if vault.hook_token.is_empty() {
            vault.rotate_hook().map_err(sealed)?;
        }
        let moved = match (&r.spec.source, &spec.source) {
            (Some(old), Some(new)) => git_origin(&old.url) != git_origin(&new.url),
            _ => true,
        };
        let mut input = vault.input.clone();
        if moved {
            // Stored credentials never follow the URL to another host.
            input.git_token = None;
            input.ssh_key = None;
        }
        vault.input = input.merged(&changed, build_secrets_given);
        if spec.source.is_none() {
            vault.input = AppSecrets::default();
        }
        r.vault = Some(vault.seal(secrets).map_err(sealed)?);
        r.spec = spec;
        r.updated_at = OffsetDateTime::now_utc();
        Ok(())
    })?;
    Ok(Json(AppView::new(record, orchestrator)))
}

/// Query of the delete endpoint.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Remove the app's named volumes too (their data is gone); default
    /// false: they stay, and an app made again with this name mounts them.
    volumes: Option<bool>,
}

/// Deletes an app with its containers, routes and deployment records (and
/// its volumes with `?volumes=true`).
#[utoipa::path(delete, path = "/api/v1/apps/{name}", tag = "apps",
    params(("name" = String, Path, description = "App name"), DeleteQuery),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()).with_field("volumes")
    })?;
    state
        .orchestrator
        .delete(&name, query.volumes.unwrap_or(false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops an app: its routes answer 503, its containers stop (and stay).
#[utoipa::path(post, path = "/api/v1/apps/{name}/stop", tag = "apps",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody)))]
pub async fn stop(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let orchestrator = &state.orchestrator;
    let record = orchestrator.stop(&name).await?;
    Ok(Json(AppView::new(record, orchestrator)))
}

/// Starts a stopped app. 200 when its containers serve again; 202 with a
/// deployment when they were gone and a new deployment was queued.
#[utoipa::path(post, path = "/api/v1/apps/{name}/start", tag = "apps",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = AppView), (status = 202, body = DeploymentView),
              (status = 404, body = ErrorBody)))]
pub async fn start(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let orchestrator = &state.orchestrator;
    Ok(match orchestrator.start(&name).await? {
        StartOutcome::Started(record) => Json(AppView::new(*record, orchestrator)).into_response(),
        StartOutcome::Deploying(d) => {
            (StatusCode::ACCEPTED, Json(DeploymentView::from(*d))).into_response()
        }
    })
}
