//! The admin API (JSON under `/api/v1`) on the admin address. Every route
//! passes one gate ([`guard`]): the public ones (health, setup, signing in,
//! webhooks) go through, the rest need the admin token, an API key or a
//! session cookie allowed by [`crate::access`]. The OpenAPI document is
//! generated from the handlers' annotations.

mod apps;
mod certificates;
mod deployments;
mod domains;
mod error;
mod guard;
mod hooks;
mod json;
mod keys;
mod projects;
mod session;
mod users;
mod views;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::AdminAuth;
use crate::certs::Certificates;
use crate::orchestrator::Orchestrator;
use crate::sessions::Sessions;

pub use error::ApiError;

/// State shared by the handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The orchestrator (and through it the store).
    pub orchestrator: Orchestrator,
    /// The edge's certificates.
    pub certs: Certificates,
    /// Setup, sign-in and the second factor.
    pub sessions: Sessions,
    /// Turns for reading webhook bodies.
    hook_bodies: Arc<Semaphore>,
}

impl ApiState {
    /// The handlers' state over the orchestrator, the certificates and
    /// sign-in.
    pub fn new(orchestrator: Orchestrator, certs: Certificates, sessions: Sessions) -> Self {
        Self {
            orchestrator,
            certs,
            sessions,
            hook_bodies: Arc::new(Semaphore::new(hooks::HOOK_BODIES_AT_ONCE)),
        }
    }
}

/// Answer of `GET /api/v1/health`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when berth answers.
    status: &'static str,
    /// berth's version.
    version: &'static str,
}

/// Liveness and version; needs no token.
#[utoipa::path(get, path = "/api/v1/health", tag = "system",
    responses((status = 200, body = Health)), security(()))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "berth admin API", description = "Deploy and route apps on one server."),
    paths(
        health,
        openapi_json,
        projects::create, projects::list, projects::get_one, projects::patch, projects::delete,
        apps::create, apps::list, apps::get_one, apps::patch, apps::delete,
        apps::stop, apps::start, apps::logs,
        domains::list, domains::add, domains::change, domains::remove,
        deployments::create, deployments::list_for_app, deployments::get_one,
        deployments::list, deployments::cancel, deployments::rollback, deployments::logs,
        certificates::list, certificates::create, certificates::delete,
        hooks::get_webhook, hooks::rotate_webhook, hooks::receive, hooks::source_refs,
        hooks::build_plan,
        users::list, users::create, users::patch, users::delete, users::audit,
        keys::create, keys::list, keys::delete,
        session::setup_state, session::setup, session::sign_in, session::current,
        session::sign_out, session::second_factor, session::totp_start, session::totp_confirm,
        session::totp_off, session::list, session::revoke,
    ),
    modifiers(&BearerAuth),
    security(("admin_token" = [])),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::no_route()
}

/// The admin API's router: every route behind the one gate ([`guard`]).
pub fn router(state: ApiState, auth: AdminAuth) -> Router {
    let gate = guard::Guard {
        api: state.clone(),
        admin: auth,
    };
    let api = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
        .route("/projects", post(projects::create).get(projects::list))
        .route(
            "/projects/{name}",
            get(projects::get_one)
                .patch(projects::patch)
                .delete(projects::delete),
        )
        .route("/apps", post(apps::create).get(apps::list))
        .route(
            "/apps/{name}",
            get(apps::get_one).patch(apps::patch).delete(apps::delete),
        )
        .route(
            "/apps/{name}/domains",
            get(domains::list).post(domains::add),
        )
        .route(
            "/apps/{name}/domains/{host}",
            axum::routing::patch(domains::change).delete(domains::remove),
        )
        .route("/apps/{name}/stop", post(apps::stop))
        .route("/apps/{name}/start", post(apps::start))
        .route("/apps/{name}/logs", get(apps::logs))
        .route("/apps/{name}/webhook", get(hooks::get_webhook))
        .route("/apps/{name}/webhook/rotate", post(hooks::rotate_webhook))
        .route("/apps/{name}/build-plan", get(hooks::build_plan))
        .route("/sources/refs", post(hooks::source_refs))
        .route("/apps/{name}/rollback", post(deployments::rollback))
        .route(
            "/apps/{name}/deployments",
            post(deployments::create).get(deployments::list_for_app),
        )
        .route("/deployments", get(deployments::list))
        .route("/deployments/{id}", get(deployments::get_one))
        .route("/deployments/{id}/cancel", post(deployments::cancel))
        .route("/deployments/{id}/logs", get(deployments::logs))
        .route(
            "/certificates",
            get(certificates::list).post(certificates::create),
        )
        .route(
            "/certificates/{id}",
            axum::routing::delete(certificates::delete),
        )
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            axum::routing::patch(users::patch).delete(users::delete),
        )
        .route("/audit", get(users::audit))
        .route("/api-keys", get(keys::list).post(keys::create))
        .route("/api-keys/{id}", axum::routing::delete(keys::delete))
        .route("/setup", get(session::setup_state).post(session::setup))
        .route(
            "/session",
            post(session::sign_in)
                .get(session::current)
                .delete(session::sign_out),
        )
        .route("/session/second-factor", post(session::second_factor))
        .route(
            "/session/totp",
            post(session::totp_start).delete(session::totp_off),
        )
        .route("/session/totp/confirm", post(session::totp_confirm))
        .route("/sessions", get(session::list))
        .route("/sessions/{id}", axum::routing::delete(session::revoke))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(json::MAX_BODY))
        // Webhooks authenticate with their URL token and signature; their
        // bodies are read, and limited, by the receiver itself.
        .route("/hooks/{app}/{token}", post(hooks::receive))
        .layer(middleware::from_fn_with_state(gate, guard::guard))
        .with_state(state);
    Router::new().nest("/api/v1", api).fallback(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_route() {
        let doc = ApiDoc::openapi();
        let paths: Vec<_> = doc.paths.paths.keys().cloned().collect();
        for p in [
            "/api/v1/health",
            "/api/v1/apps",
            "/api/v1/apps/{name}",
            "/api/v1/apps/{name}/deployments",
            "/api/v1/deployments/{id}",
            "/api/v1/projects/{name}",
            "/api/v1/apps/{name}/logs",
            "/api/v1/apps/{name}/domains",
            "/api/v1/apps/{name}/domains/{host}",
            "/api/v1/certificates",
            "/api/v1/setup",
            "/api/v1/session",
            "/api/v1/session/second-factor",
            "/api/v1/session/totp",
            "/api/v1/session/totp/confirm",
            "/api/v1/sessions",
            "/api/v1/sessions/{id}",
        ] {
            assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
        }
        assert!(serde_json::to_string(&doc).unwrap().contains("admin_token"));
    }

    #[test]
    fn every_documented_route_has_a_need() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut checked = 0;
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                let Ok(m) = method.to_uppercase().parse::<http::Method>() else {
                    continue;
                };
                assert!(
                    crate::access::route_need(&m, path).is_some(),
                    "{method} {path} is missing from access::route_need"
                );
                checked += 1;
            }
        }
        assert!(checked > 40, "{checked}");
        use crate::access::Need;
        for (m, p) in [("GET", "/setup"), ("POST", "/setup"), ("POST", "/session")] {
            let need = crate::access::route_need(&m.parse().unwrap(), &format!("/api/v1{p}"));
            assert_eq!(need, Some(Need::Public), "{m} {p}");
        }
    }
}
