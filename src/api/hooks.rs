//! Apps from source in the API: the webhook of each app (its URL and
//! secret, rotation, the record of deliveries), the webhook receiver at
//! `POST /api/v1/hooks/{app}/{token}` (its URL token names the caller,
//! which the gate checks like any principal; the receiver checks the
//! provider's signature), the "test connection"
//! of a git source, and the build plan of an `auto` build.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Extension;
use axum::Json;
use berth_config::{BuildKind, GitAuth, SourceInput};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::{self, ApiJson};
use super::ApiState;
use berth::access::{HookCaller, Principal};
use berth::builds::detect::BuildPlan;
use berth::builds::{Credentials, RemoteRefs};
use berth::hooks::{self, Decision, Event, Trigger};
use berth::store::{AppRecord, DeliveryRecord, HookOutcome, StoreError};
use berth::vault::Vault;

/// Webhook bodies read at once; more deliveries wait for a turn, so
/// memory stays bounded (at most this many times the largest limit).
pub const HOOK_BODIES_AT_ONCE: usize = 4;

/// How long a delivery waits for its turn to be read.
const TURN_DEADLINE: Duration = Duration::from_secs(10);

/// An app's webhook.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    /// Where providers send events: under `[server] public_url` (or the
    /// panel domain) when set, else on the host this request was sent to.
    pub url: String,
    /// Secret for the providers' signatures (GitHub/Gitea/Bitbucket) or
    /// GitLab's secret token.
    pub secret: String,
    /// Recent deliveries, newest first.
    pub deliveries: Vec<DeliveryRecord>,
}

/// What the receiver did with a delivery.
#[derive(Serialize, ToSchema)]
pub struct HookAnswer {
    /// deployed or ignored.
    pub outcome: HookOutcome,
    /// Why.
    pub reason: String,
    /// The deployment queued, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
}

/// The plan of an `auto` build.
#[derive(Serialize, ToSchema)]
pub struct PlanView {
    /// What berth detected, with the app's overrides applied.
    pub plan: BuildPlan,
    /// The Dockerfile berth builds from it.
    pub dockerfile: String,
}

fn vault_of(state: &ApiState, record: &AppRecord) -> Result<Vault, ApiError> {
    Vault::open(state.orchestrator.secrets(), record.vault.as_deref())
        .map_err(|e| ApiError::internal(&e))
}

fn view(state: &ApiState, headers: &HeaderMap, app: &str) -> Result<WebhookView, ApiError> {
    let store = state.orchestrator.store();
    let record = store.app(app)?;
    let vault = vault_of(state, &record)?;
    let base = match state.instance.public_url()? {
        Some(url) => url,
        None => {
            let host = headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                })
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    Ok(WebhookView {
        url: format!("{base}/api/v1/hooks/{app}/{}", vault.hook_token),
        secret: vault.hook_secret,
        deliveries: store.deliveries(app)?,
    })
}

/// The app's webhook URL and secret, and its recent deliveries.
#[utoipa::path(get, path = "/api/v1/apps/{name}/webhook", tag = "webhooks",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(view(&state, &headers, &name)?))
}

/// New webhook URL token and secret; the old ones stop working at once.
#[utoipa::path(post, path = "/api/v1/apps/{name}/webhook/rotate", tag = "webhooks",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn rotate_webhook(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<WebhookView>, ApiError> {
    let secrets = state.orchestrator.secrets();
    state.orchestrator.update_app(&name, |r| {
        let sealed = |e: berth::secrets::SecretError| StoreError::Corrupt(e.to_string());
        let mut vault = Vault::open(secrets, r.vault.as_deref()).map_err(sealed)?;
        vault.rotate_hook().map_err(sealed)?;
        r.vault = Some(vault.seal(secrets).map_err(sealed)?);
        Ok(())
    })?;
    Ok(Json(view(&state, &headers, &name)?))
}

/// Receives a push or image event. Authenticated by the URL token and,
/// for GitHub, GitLab, Gitea/Forgejo and Bitbucket, by the signature made
/// with the webhook secret (a plain POST with no provider headers deploys,
/// for CI scripts). 202 when a deployment was queued, 200 when the event
/// was valid but ignored (the reason says why), 401 for a bad signature,
/// 400 for a malformed payload, 404 for an unknown app or token. Every
/// decision is recorded in the app's deliveries.
#[utoipa::path(post, path = "/api/v1/hooks/{app}/{token}", tag = "webhooks",
    params(("app" = String, Path, description = "App name"),
           ("token" = String, Path, description = "The webhook's URL token")),
    request_body(content = String, description = "The provider's event payload"),
    responses((status = 202, body = HookAnswer), (status = 200, body = HookAnswer),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(()))]
pub async fn receive(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((app, _token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<HookAnswer>), ApiError> {
    // The gate found the app and checked the URL token (`caller`):
    // nothing of the body is read for a stranger.
    if !matches!(&principal, Principal::Hook(h) if h.app == app) {
        return Err(unknown());
    }
    let store = state.orchestrator.store();
    let record = store.app(&app).map_err(|_| unknown())?;
    let vault = vault_of(&state, &record)?;
    let body = read_body(&state, &headers, body).await?;
    let delivery = match hooks::parse(&headers, &body, vault.hook_secret.as_bytes()) {
        Ok(d) => d,
        Err(err) => {
            let provider = provider_hint(&headers);
            tracing::warn!(app, provider, %err, "webhook delivery refused");
            let rejected =
                DeliveryRecord::now(provider, "unknown", HookOutcome::Rejected, err.to_string());
            store.record_delivery(&app, &rejected)?;
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return Err(ApiError::new(status, err.code(), err.to_string()));
        }
    };
    let spec = &record.spec;
    let event = describe(&delivery.event);
    let decision = match &delivery.event {
        _ if record.stopped && !matches!(delivery.event, Event::Ping) => Decision::Ignore(
            "the app is stopped; start it (POST /api/v1/apps/{name}/start) to deploy again".into(),
        ),
        Event::Ping => Decision::Ignore("ping: the webhook reaches berth".into()),
        Event::Manual => Decision::Deploy {
            commit: None,
            reason: "deploy requested without provider headers".into(),
        },
        Event::Other(name) => Decision::Ignore(format!("{name} events do not deploy")),
        Event::ImagePush { image, tag } => match &spec.source {
            Some(_) => Decision::Ignore(format!(
                "image push of {image} ignored: the app is built from source"
            )),
            None => hooks::decide_image(&spec.image, image, tag.as_deref()),
        },
        Event::Push(_) | Event::Pushes(_) => match &spec.source {
            None => Decision::Ignore(
                "git push ignored: the app runs an image; use an image-push webhook".into(),
            ),
            Some(source) if source.commit.is_some() => Decision::Ignore(format!(
                "git push ignored: the app is pinned to commit {}",
                source.commit.as_deref().unwrap_or_default()
            )),
            Some(source) => {
                let trigger = Trigger {
                    branch: source.branch.clone(),
                    tag_pattern: source.tag_pattern.clone(),
                    watch_paths: source.watch_paths.clone(),
                };
                hooks::decide_any(&trigger, delivery.event.pushes())
            }
        },
    };
    let mut entry = DeliveryRecord::now(
        delivery.provider.as_str(),
        &event,
        HookOutcome::Ignored,
        decision.reason().to_string(),
    );
    let answer = match decision {
        Decision::Ignore(reason) => {
            tracing::info!(app, provider = %delivery.provider, %reason, "webhook delivery ignored");
            store.record_delivery(&app, &entry)?;
            (
                StatusCode::OK,
                HookAnswer {
                    outcome: HookOutcome::Ignored,
                    reason,
                    deployment: None,
                },
            )
        }
        Decision::Deploy { commit, reason } => {
            let full = delivery
                .event
                .pushes()
                .iter()
                .filter_map(|p| p.after.clone())
                .find(|after| commit.as_deref().is_some_and(|c| after.starts_with(c)));
            let deployment = state.orchestrator.deploy_announced(&app, full.clone())?;
            tracing::info!(app, provider = %delivery.provider, %reason, deployment = %deployment.id, "webhook queued a deployment");
            entry.outcome = HookOutcome::Deployed;
            entry.commit = full;
            entry.deployment = Some(deployment.id.clone());
            store.record_delivery(&app, &entry)?;
            (
                StatusCode::ACCEPTED,
                HookAnswer {
                    outcome: HookOutcome::Deployed,
                    reason,
                    deployment: Some(deployment.id),
                },
            )
        }
    };
    Ok((answer.0, Json(answer.1)))
}

fn unknown() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no webhook at this URL; copy the URL from GET /api/v1/apps/{name}/webhook",
    )
}

/// Who sends a delivery to `/hooks/{app}/{token}`: the app, when the URL
/// token is its webhook's (compared in constant time); 404 otherwise.
pub(super) fn caller(state: &ApiState, app: &str, token: &str) -> Result<HookCaller, ApiError> {
    let record = state.orchestrator.store().app(app).map_err(|_| unknown())?;
    let vault = vault_of(state, &record)?;
    if !vault.hook_token_matches(token) {
        return Err(unknown());
    }
    Ok(HookCaller {
        app: app.to_string(),
        project: record.spec.project,
    })
}

/// Reads a delivery's body: at most the sender's limit, with a turn among
/// [`HOOK_BODIES_AT_ONCE`] readers and within [`json::BODY_DEADLINE`].
async fn read_body(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = hooks::body_limit(headers);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the delivery is larger than {} KiB, the most this sender's webhooks carry",
                limit / 1024
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many webhook deliveries are being read; send it again later",
        )
    };
    let _turn = tokio::time::timeout(TURN_DEADLINE, state.hook_bodies.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    match tokio::time::timeout(json::BODY_DEADLINE, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) if declared.is_none() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the delivery's body could not be read: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the delivery's body did not arrive within {} s",
                json::BODY_DEADLINE.as_secs()
            ),
        )),
    }
}

/// A short description of an event for the delivery record.
fn describe(event: &Event) -> String {
    match event {
        Event::Push(p) => format!("push to {}", p.git_ref),
        Event::Pushes(ps) => format!("{} ref updates", ps.len()),
        Event::ImagePush { image, tag } => match tag {
            Some(t) => format!("image push {image}:{t}"),
            None => format!("image push {image}"),
        },
        other => other.kind().to_string(),
    }
}

/// The sender named by the headers, for refused deliveries.
fn provider_hint(headers: &HeaderMap) -> &'static str {
    let has = |h: &str| headers.contains_key(h);
    if has("x-gitea-event") || has("x-forgejo-event") {
        "gitea"
    } else if has("x-github-event") {
        "github"
    } else if has("x-gitlab-event") {
        "gitlab"
    } else if has("x-event-key") {
        "bitbucket"
    } else {
        "unknown"
    }
}

/// Lists the branches and tags of a git source with its credentials: the
/// "test connection" before creating an app.
#[utoipa::path(post, path = "/api/v1/sources/refs", tag = "webhooks", request_body = SourceInput,
    responses((status = 200, body = RemoteRefs), (status = 400, body = ErrorBody),
              (status = 502, body = ErrorBody, description = "git could not reach or read the repository")))]
pub async fn source_refs(
    State(state): State<ApiState>,
    ApiJson(input): ApiJson<SourceInput>,
) -> Result<Json<RemoteRefs>, ApiError> {
    let source = input
        .validate(GitAuth::None)
        .map_err(|e| e.within("source"))?;
    let credentials = Credentials {
        token: input.token.filter(|t| !t.is_empty()),
        ssh_key: input.ssh_key.filter(|k| !k.is_empty()),
    };
    Ok(Json(
        state
            .orchestrator
            .builder()
            .remote_refs(&source, &credentials)
            .await?,
    ))
}

/// The plan an `auto` build of the app follows (its source checked out
/// now), with the app's overrides, and the Dockerfile made from it.
#[utoipa::path(get, path = "/api/v1/apps/{name}/build-plan", tag = "webhooks",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = PlanView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn build_plan(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let record = state.orchestrator.store().app(&name)?;
    let (Some(source), Some(build)) = (&record.spec.source, &record.spec.build) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "the app runs an image; build plans are for apps with a git source",
        )
        .with_field("source"));
    };
    if build.kind != BuildKind::Auto {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "the app builds its own Dockerfile or a static site; set build.type to \"auto\" to use a detected plan",
        )
        .with_field("build.type"));
    }
    let vault = vault_of(&state, &record)?;
    let credentials = Credentials {
        token: vault.input.git_token.clone(),
        ssh_key: vault.input.ssh_key.clone(),
    };
    let (plan, dockerfile) = state
        .orchestrator
        .builder()
        .plan(source, build, &credentials)
        .await?;
    Ok(Json(PlanView { plan, dockerfile }))
}
