//! `/api/v1/apps/{name}/domains`: an app's domains one at a time (list,
//! add, change, remove), leaving the others as they are; `PATCH` of the
//! app's `domains` field replaces the whole list instead. Changes route at
//! once, like every change of an app's domains.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use berth_config::{
    AppPatch, Domain, DomainEdit, DomainEditError, DomainInput, DomainKey, DomainPatch, FieldError,
};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use super::apps::{check_custom_certificates, hashed};
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::ApiState;
use berth::store::{AppRecord, StoreError};

/// Which domain of the host: its path prefix.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PrefixQuery {
    /// The domain's path prefix; default `/`.
    path_prefix: Option<String>,
}

/// The app's domains, in routing order of their listing.
#[utoipa::path(get, path = "/api/v1/apps/{name}/domains", tag = "apps",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = [Domain]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Domain>>, ApiError> {
    Ok(Json(state.orchestrator.store().app(&name)?.spec.domains))
}

/// Adds a domain to the app; the others stay. Routes at once.
#[utoipa::path(post, path = "/api/v1/apps/{name}/domains", tag = "apps",
    request_body = DomainInput,
    params(("name" = String, Path, description = "App name")),
    responses((status = 201, body = Domain), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the app or another has this host and prefix")))]
pub async fn add(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<DomainInput>,
) -> Result<(StatusCode, Json<Domain>), ApiError> {
    let key = DomainKey::parse(&input.host, input.path_prefix.as_deref())?;
    // Before the transaction: its validation then only checks hashes.
    let input = hashed(input, DomainInput::hash_passwords).await?;
    let record = edit(&state, &name, DomainEdit::Add(input))?;
    Ok((StatusCode::CREATED, Json(find(&record, &key)?)))
}

/// Changes one domain (host plus `path_prefix`); fields not given stay.
#[utoipa::path(patch, path = "/api/v1/apps/{name}/domains/{host}", tag = "apps",
    request_body = DomainPatch,
    params(("name" = String, Path, description = "App name"),
           ("host" = String, Path, description = "The domain's host"), PrefixQuery),
    responses((status = 200, body = Domain), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn change(
    State(state): State<ApiState>,
    Path((name, host)): Path<(String, String)>,
    query: Result<Query<PrefixQuery>, axum::extract::rejection::QueryRejection>,
    ApiJson(patch): ApiJson<DomainPatch>,
) -> Result<Json<Domain>, ApiError> {
    let key = key_of(&host, query)?;
    let after = DomainKey::parse(
        patch.host.as_deref().unwrap_or(&key.host),
        Some(patch.path_prefix.as_deref().unwrap_or(&key.path_prefix)),
    )?;
    let patch = hashed(patch, DomainPatch::hash_passwords).await?;
    let record = edit(&state, &name, DomainEdit::Change(key, patch))?;
    Ok(Json(find(&record, &after)?))
}

/// Removes one domain (host plus `path_prefix`); the others stay.
#[utoipa::path(delete, path = "/api/v1/apps/{name}/domains/{host}", tag = "apps",
    params(("name" = String, Path, description = "App name"),
           ("host" = String, Path, description = "The domain's host"), PrefixQuery),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    Path((name, host)): Path<(String, String)>,
    query: Result<Query<PrefixQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let key = key_of(&host, query)?;
    edit(&state, &name, DomainEdit::Remove(key))?;
    Ok(StatusCode::NO_CONTENT)
}

fn key_of(
    host: &str,
    query: Result<Query<PrefixQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<DomainKey, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
            .with_field("path_prefix")
    })?;
    Ok(DomainKey::parse(host, query.path_prefix.as_deref())?)
}

/// Applies `edit` to the app's domains in one store transaction, the app
/// validated as a whole as for any change, then routes and certificates.
/// The edit's plain passwords are hashed before ([`hashed`]).
fn edit(state: &ApiState, name: &str, edit: DomainEdit) -> Result<AppRecord, ApiError> {
    let orchestrator = &state.orchestrator;
    let record = orchestrator.update_app(name, |r| {
        let edited = match &edit {
            DomainEdit::Add(_) => Some(r.spec.domains.len()),
            DomainEdit::Change(key, _) => r
                .spec
                .domains
                .iter()
                .position(|d| d.host == key.host && d.path_prefix == key.path_prefix),
            DomainEdit::Remove(_) => None,
        };
        let domains = edit.clone().apply(&r.spec.domains).map_err(|e| match e {
            DomainEditError::NotFound(key) => StoreError::NotFound {
                kind: "domain",
                name: key.to_string(),
            },
            DomainEditError::Exists(_) => {
                StoreError::Conflict(FieldError::new("host", e.to_string()))
            }
            DomainEditError::Invalid(f) => StoreError::Invalid(f),
        })?;
        let patch = AppPatch {
            domains: Some(domains),
            ..Default::default()
        };
        let spec = r
            .spec
            .patched(patch)
            .map_err(|e| StoreError::Invalid(within_domain(e, edited)))?;
        check_custom_certificates(state, &spec)
            .map_err(|e| StoreError::Invalid(within_domain(e, edited)))?;
        r.spec = spec;
        r.updated_at = OffsetDateTime::now_utc();
        Ok(())
    })?;
    Ok(record)
}

/// A field error of the edited domain named as the request body's field
/// (`certificate`, not `domains[2].certificate`).
fn within_domain(e: FieldError, edited: Option<usize>) -> FieldError {
    let Some(i) = edited else { return e };
    let prefix = format!("domains[{i}]");
    match e.field.strip_prefix(&prefix) {
        Some("") => FieldError::new("", e.message),
        Some(rest) => FieldError::new(rest.trim_start_matches('.'), e.message),
        None => e,
    }
}

fn find(record: &AppRecord, key: &DomainKey) -> Result<Domain, ApiError> {
    record
        .spec
        .domains
        .iter()
        .find(|d| d.host == key.host && d.path_prefix == key.path_prefix)
        .cloned()
        .ok_or_else(|| ApiError::internal(&format!("domain {key} missing after its edit")))
}
