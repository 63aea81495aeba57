//! `/api/v1/api-keys`: keys for scripts and CI, managed with the `admin`
//! scope. A key has scopes (`read`, `deploy`, `write`, `admin`; the widest
//! applies), may be limited to projects and may expire; it never has more
//! than the person who made it has (now, not when it was made). The key is
//! shown once, at creation, and stored as a SHA-256.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::guard::forbidden;
use super::json::ApiJson;
use super::ApiState;
use berth::access::{Principal, Target};
use berth::people::{new_secret, secret_hash, KEY_PREFIX};
use berth::store::{new_id, ApiKeyRecord, Scope, StoreError};
use berth_config::FieldError;

/// Characters of a key shown in lists.
const SHOWN: usize = KEY_PREFIX.len() + 6;

/// A new key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    /// What it is for, 1-100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// One or more of `read`, `deploy`, `write`, `admin`.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// Limit it to these projects.
    #[serde(default)]
    pub projects: Option<Vec<String>>,
    /// When it stops working (RFC 3339, in the future).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

/// A key as lists show it (never the key itself).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Id, for deleting it.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The key's first characters.
    pub prefix: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The projects it is limited to.
    pub projects: Option<Vec<String>>,
    /// Who made it (`null`: the admin token).
    pub user_id: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scopes.clone(),
            projects: k.projects.clone(),
            user_id: k.user_id.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
        }
    }
}

/// A key just made: the only time the key is shown.
#[derive(Serialize, ToSchema)]
pub struct NewApiKey {
    /// The key: send it as `Authorization: Bearer <key>`.
    pub key: String,
    /// The rest.
    #[serde(flatten)]
    pub view: ApiKeyView,
}

/// Makes a key. Its scopes may not exceed the maker's own.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "people", request_body = ApiKeyInput,
    responses((status = 201, body = NewApiKey), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(input): ApiJson<ApiKeyInput>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(FieldError::new("name", "give 1-100 characters").into());
    }
    let Some(scope) = input.scopes.iter().copied().max() else {
        return Err(
            FieldError::new("scopes", "give at least one of read, deploy, write, admin").into(),
        );
    };
    if principal
        .scope_on(Target::Instance)
        .is_none_or(|have| have < scope)
    {
        return Err(forbidden(scope));
    }
    let store = state.orchestrator.store();
    if let Some(projects) = &input.projects {
        if projects.is_empty() {
            return Err(FieldError::new(
                "projects",
                "give at least one project, or leave it out for all",
            )
            .into());
        }
        for (i, p) in projects.iter().enumerate() {
            let exists = match store.project(p) {
                Ok(_) => true,
                Err(StoreError::NotFound { .. }) => false,
                Err(err) => return Err(err.into()),
            };
            if !exists || !principal.sees(Target::Project(Some(p))) {
                return Err(FieldError::new(
                    format!("projects[{i}]"),
                    format!("project {p:?} does not exist"),
                )
                .into());
            }
        }
    }
    let now = OffsetDateTime::now_utc();
    if input.expires_at.is_some_and(|at| at <= now) {
        return Err(FieldError::new("expires_at", "is in the past; give a time to come").into());
    }
    let key = new_secret(KEY_PREFIX);
    let record = ApiKeyRecord {
        id: new_id(),
        name,
        prefix: key.chars().take(SHOWN).collect(),
        user_id: principal.user().map(|u| u.id.clone()),
        scopes: input.scopes,
        projects: input.projects,
        created_at: now,
        expires_at: input.expires_at,
    };
    store.create_api_key(&secret_hash(&key), &record)?;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKey {
            key,
            view: ApiKeyView::from(&record),
        }),
    ))
}

/// Every key, newest first (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "people",
    responses((status = 200, body = [ApiKeyView])))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let keys = state.orchestrator.store().api_keys()?;
    Ok(Json(keys.iter().map(ApiKeyView::from).collect()))
}

/// Deletes a key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "people",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.orchestrator.store().delete_api_key(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
