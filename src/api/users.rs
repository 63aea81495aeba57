//! `/api/v1/users`: the people of the instance (owners, admins, members
//! with their project grants), managed by owners and admins; and
//! `/api/v1/audit`, the log of every change. Passwords are hashed with
//! argon2id on input and never returned.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::ApiState;
use berth::access::Principal;
use berth::people::{hash_password, validate_password, validate_username};
use berth::store::{new_id, AuditRecord, Grant, Role, Scope, StoreError, UserRecord};
use berth_config::FieldError;

/// A user as the API shows them.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: String,
    /// Sign-in name.
    pub username: String,
    /// `owner`, `admin` or `member`.
    pub role: Role,
    /// A member's projects and what they may do in each.
    pub grants: Vec<Grant>,
    /// Whether a second factor is enforced at sign-in.
    pub two_factor: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            role: u.role,
            grants: u.grants.clone(),
            two_factor: u.totp_enabled,
            created_at: u.created_at,
        }
    }
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// 1-64 of a-z, 0-9, `.`, `_`, `-`, `@`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub username: String,
    /// At least 10 characters.
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
    /// Default `member`.
    #[serde(default)]
    pub role: Option<Role>,
    /// A member's projects (`read`, `deploy` or `write` in each).
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// Changes to a user; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new password; signs the user out everywhere.
    #[serde(default)]
    #[schema(min_length = 10, max_length = 1024)]
    pub password: Option<String>,
    /// A new role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Replaces the grants.
    #[serde(default)]
    pub grants: Option<Vec<Grant>>,
    /// `false` turns the user's second factor off (an owner resetting a
    /// lost authenticator); they enrol again at their next sign-in.
    #[serde(default)]
    pub two_factor: Option<bool>,
}

/// Lists users.
#[utoipa::path(get, path = "/api/v1/users", tag = "people",
    responses((status = 200, body = [UserView])))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = state.orchestrator.store().users()?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// Adds a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "people", request_body = UserInput,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "username taken")))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let username = validate_username(&input.username)?;
    validate_password("password", &input.password)?;
    let role = input.role.unwrap_or(Role::Member);
    may_give(&principal, role)?;
    let grants = checked_grants(&state, role, input.grants)?;
    let now = OffsetDateTime::now_utc();
    let user = UserRecord {
        id: new_id(),
        username,
        role,
        password_hash: hash(input.password).await?,
        grants,
        totp_sealed: None,
        totp_enabled: false,
        backup_codes: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    state.orchestrator.store().create_user(&user)?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Changes a user: password, role, grants, or resets their second factor.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "people", request_body = UserPatch,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the last owner")))]
pub async fn patch(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let store = state.orchestrator.store();
    let current = store.user(&id)?;
    may_give(&principal, current.role)?;
    if let Some(role) = patch.role {
        may_give(&principal, role)?;
        if current.role == Role::Owner && role != Role::Owner {
            last_owner_check(&state, &id)?;
        }
    }
    if let Some(p) = &patch.password {
        validate_password("password", p)?;
    }
    let role = patch.role.unwrap_or(current.role);
    let grants = match patch.grants {
        Some(g) => Some(checked_grants(&state, role, g)?),
        None => None,
    };
    let password_hash = match patch.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    if patch.two_factor == Some(true) && !current.totp_enabled {
        return Err(FieldError::new(
            "two_factor",
            "a user turns their second factor on themselves, by enrolling; only false is accepted here",
        )
        .into());
    }
    let signed_out = password_hash.is_some() || patch.two_factor == Some(false);
    let user = store.update_user(&id, |u| {
        u.role = role;
        if let Some(g) = grants {
            u.grants = g;
        }
        if let Some(h) = password_hash {
            u.password_hash = h;
        }
        if patch.two_factor == Some(false) {
            u.totp_enabled = false;
            u.totp_sealed = None;
            u.backup_codes.clear();
        }
        Ok(())
    })?;
    if signed_out {
        store.revoke_sessions_of(&id)?;
    }
    Ok(Json(UserView::from(&user)))
}

/// Removes a user with their sessions and API keys.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "people",
    params(("id" = String, Path, description = "User id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the last owner")))]
pub async fn delete(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = state.orchestrator.store();
    let user = store.user(&id)?;
    may_give(&principal, user.role)?;
    if user.role == Role::Owner {
        last_owner_check(&state, &id)?;
    }
    store.delete_user(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries, newest first: 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Every change, newest first: who or which key, what, when, from which
/// address, and the answer's status. The oldest go beyond 10,000.
#[utoipa::path(get, path = "/api/v1/audit", tag = "people", params(AuditQuery),
    responses((status = 200, body = [AuditRecord]), (status = 400, body = ErrorBody)))]
pub async fn audit(
    State(state): State<ApiState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()).with_field("limit")
    })?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            FieldError::new("limit", format!("{limit} is out of range; give 1-1000")).into(),
        );
    }
    Ok(Json(state.orchestrator.store().audit(limit)?))
}

/// argon2id off the async threads: it takes tens of milliseconds of CPU.
async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))
}

/// Only an owner (or the admin token) hands out or touches the owner role.
fn may_give(principal: &Principal, role: Role) -> Result<(), ApiError> {
    let owner = match principal {
        Principal::Operator => true,
        other => other.user().is_some_and(|u| u.role == Role::Owner),
    };
    if role == Role::Owner && !owner {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an owner may make, change or remove an owner",
        ));
    }
    Ok(())
}

/// An instance keeps at least one owner.
fn last_owner_check(state: &ApiState, id: &str) -> Result<(), ApiError> {
    let owners = state.orchestrator.store().users()?;
    let others = owners
        .iter()
        .filter(|u| u.role == Role::Owner && u.id != id)
        .count();
    if others == 0 {
        return Err(StoreError::Conflict(FieldError::new(
            "role",
            "this is the last owner; make another user owner first",
        ))
        .into());
    }
    Ok(())
}

/// Grants name existing projects, at most `write`, and only members have
/// them.
fn checked_grants(
    state: &ApiState,
    role: Role,
    grants: Vec<Grant>,
) -> Result<Vec<Grant>, ApiError> {
    if role != Role::Member && !grants.is_empty() {
        return Err(FieldError::new(
            "grants",
            "owners and admins see every project; grants are for members",
        )
        .into());
    }
    let store = state.orchestrator.store();
    for (i, g) in grants.iter().enumerate() {
        if g.scope == Scope::Admin {
            return Err(FieldError::new(
                format!("grants[{i}].scope"),
                "a project grant goes up to 'write'; make the user an admin instead",
            )
            .into());
        }
        match store.project(&g.project) {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(FieldError::new(
                    format!("grants[{i}].project"),
                    format!("project {:?} does not exist; create it first", g.project),
                )
                .into())
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(grants)
}
