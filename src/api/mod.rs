//! The admin API (JSON under `/api/v1`) on the admin address. Every route
//! passes one gate ([`guard`]): the public ones (health, setup, signing in,
//! webhooks) go through, the rest need the admin token, an API key or a
//! session cookie allowed by [`berth::access`]. The OpenAPI document is
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
mod logs;
mod projects;
mod session;
mod settings;
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

use berth::access::{route_need, Need};
use berth::auth::AdminAuth;
use berth::certs::Certificates;
use berth::instance::Instance;
use berth::orchestrator::Orchestrator;
use berth::sessions::Sessions;
use http::Method;

pub use error::ApiError;
pub(crate) use guard::{authenticate, Proof};
pub use views::{AppView, MountView};

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
    /// The instance settings (where webhook URLs point, the ACME email).
    pub instance: Instance,
}

impl ApiState {
    /// The handlers' state over the orchestrator, the certificates,
    /// sign-in and the instance settings.
    pub fn new(
        orchestrator: Orchestrator,
        certs: Certificates,
        sessions: Sessions,
        instance: Instance,
    ) -> Self {
        Self {
            orchestrator,
            certs,
            sessions,
            hook_bodies: Arc::new(Semaphore::new(hooks::HOOK_BODIES_AT_ONCE)),
            instance,
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
    /// The bearer scheme, and for every operation the answers the gate
    /// gives, taken from the route table itself: 401 without a principal,
    /// 403 without the scope (public routes need neither).
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error = |description: &str| {
            RefOr::T(
                utoipa::openapi::ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let has_body = op.request_body.is_some();
                let answers = &mut op.responses.responses;
                // Every body is read by `ApiJson` (or its limits): these
                // answers can come from any operation that takes one.
                if has_body {
                    for (status, what) in [
                        ("400", "the body is malformed or a field is invalid"),
                        ("413", "the body is too large"),
                        ("415", "the body is not JSON"),
                    ] {
                        answers.entry(status.into()).or_insert_with(|| error(what));
                    }
                }
                match route_need(&method, path) {
                    // The receiver documents its own 401 (a bad signature)
                    // and 404 (an unknown app or token).
                    Some(Need::Public) | Some(Need::Hook) | None => {}
                    Some(Need::SignedIn) => {
                        answers
                            .entry("401".into())
                            .or_insert_with(|| error("no valid admin token, API key or session"));
                    }
                    Some(Need::Scope(scope, _)) => {
                        answers
                            .entry("401".into())
                            .or_insert_with(|| error("no valid admin token, API key or session"));
                        answers.entry("403".into()).or_insert_with(|| {
                            error(&format!(
                                "needs the '{}' scope (or a CSRF token with a session cookie)",
                                scope.as_str()
                            ))
                        });
                    }
                }
            }
        }
    }
}

/// Every operation of a path item, with its method.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (Method, &mut utoipa::openapi::path::Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
        (Method::TRACE, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "berth admin API", description = "Deploy and route apps on one server."),
    paths(
        health,
        openapi_json,
        projects::create, projects::list, projects::get_one, projects::patch, projects::delete,
        apps::create, apps::list, apps::get_one, apps::patch, apps::delete,
        apps::stop, apps::start, logs::logs,
        domains::list, domains::add, domains::change, domains::remove,
        deployments::create, deployments::list_for_app, deployments::get_one,
        deployments::list, deployments::cancel, deployments::rollback, deployments::logs,
        certificates::list, certificates::create, certificates::delete,
        hooks::get_webhook, hooks::rotate_webhook, hooks::receive, hooks::source_refs,
        hooks::build_plan,
        users::list, users::create, users::patch, users::delete, users::audit,
        settings::get, settings::patch,
        keys::create, keys::list, keys::delete,
        session::setup_state, session::setup, session::sign_in, session::current,
        session::sign_out, session::second_factor, session::totp_start, session::totp_confirm,
        session::totp_off, session::list, session::revoke,
    ),
    components(schemas(
        berth::orchestrator::ReplicaLine, berth::orchestrator::ReplicaChange,
        berth::orchestrator::Skipped,
        // A domain's route rules and an app's pages, as sent and as shown.
        berth_config::BasicAuthInput, berth_config::BasicAuthUserInput,
        berth_config::BasicAuth, berth_config::BasicAuthUser, berth_config::RedirectWww,
        berth_config::RedirectInput, berth_config::Redirect, berth_config::HeaderRules,
        berth_config::HeaderEdits, berth_config::CorsInput, berth_config::Cors,
        berth_config::RateLimit, berth_config::CompressionInput, berth_config::Encoding,
        berth_config::Timeouts, berth_config::RouteRules, berth_config::Maintenance,
    )),
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

async fn no_method() -> ApiError {
    ApiError::no_method()
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
        .route("/apps/{name}/logs", get(logs::logs))
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
        .route("/settings", get(settings::get).patch(settings::patch))
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
        .method_not_allowed_fallback(no_method)
        .layer(axum::extract::DefaultBodyLimit::max(json::MAX_BODY))
        // A webhook's URL token names its caller (checked by the gate);
        // its body is read, limited and signature-checked by the receiver.
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

    /// Clients generated from the document, and schema-driven fuzzers,
    /// see the limits the server enforces.
    #[test]
    fn schemas_carry_the_servers_constraints() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let app = &doc["components"]["schemas"]["AppInput"]["properties"];
        assert_eq!(
            app["name"]["pattern"], "^[a-z]([a-z0-9-]*[a-z0-9])?$",
            "{app}"
        );
        assert_eq!(app["name"]["maxLength"], 63);
        assert_eq!(app["port"]["minimum"], 1);
        assert_eq!(app["port"]["maximum"], 65535);
        assert_eq!(app["replicas"]["maximum"], 100);
        assert_eq!(app["memory_mb"]["minimum"], 6);
        let key = &doc["components"]["schemas"]["ApiKeyInput"]["properties"];
        assert_eq!(key["name"]["maxLength"], 100, "{key}");
        // Query parameters are documented as query parameters.
        let audit = &doc["paths"]["/api/v1/audit"]["get"]["parameters"][0];
        assert_eq!(audit["in"], "query", "{audit}");
        assert_eq!(audit["required"], false, "{audit}");
        let user = &doc["components"]["schemas"]["UserInput"]["properties"];
        assert_eq!(user["password"]["minLength"], 10, "{user}");
        // An app's view shows its (read-only) health check, fully described.
        let view = &doc["components"]["schemas"]["AppView"];
        assert!(
            view["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|f| f == "health_check")),
            "{view}"
        );
        let health = &doc["components"]["schemas"]["HealthCheck"]["properties"];
        assert!(
            health["type"].is_object() && health["interval_ms"].is_object(),
            "{health}"
        );
        // Every name pattern the document gives is one the server checks.
        for name in ["app-1", "a"] {
            assert!(berth_config::validate_name("name", name).is_ok());
        }
    }

    /// Every schema the document refers to is in it, and the route rules
    /// carry their limits; a patch's rule may be `null` (turned off).
    #[test]
    fn route_rules_are_documented_whole() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(schemas[name].is_object(), "{r} is referred to but missing");
        }
        let input = &schemas["DomainInput"]["properties"];
        for rule in [
            "basic_auth",
            "redirect_www",
            "redirects",
            "headers",
            "security_headers",
            "cors",
            "ip_allow",
            "ip_deny",
            "rate_limit",
            "compression",
            "max_body_bytes",
            "timeouts",
        ] {
            assert!(input[rule].is_object(), "DomainInput.{rule}: {input}");
            let patch = schemas["DomainPatch"]["properties"][rule].to_string();
            assert!(
                patch.contains("null"),
                "DomainPatch.{rule} takes null: {patch}"
            );
        }
        assert_eq!(input["redirects"]["maxItems"], 50, "{input}");
        assert_eq!(input["ip_allow"]["maxItems"], 1000, "{input}");
        let limit = &schemas["RateLimit"]["properties"];
        assert_eq!(limit["burst"]["maximum"], 100000, "{limit}");
        let user = schemas["BasicAuthUser"].to_string();
        assert!(!user.contains("password"), "a hash is never shown: {user}");
        for app in ["AppInput", "AppPatch", "AppView"] {
            let props = &schemas[app]["properties"];
            assert!(props["maintenance"].is_object(), "{app}: {props}");
            assert!(props["error_pages"].is_object(), "{app}: {props}");
        }
    }

    /// What a rollback returns to, and why a domain has no certificate
    /// yet (with the next retry), are in the document.
    #[test]
    fn rollback_and_certificate_status_fields_are_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let rollback_of = &schemas["DeploymentView"]["properties"]["rollback_of"];
        assert!(
            rollback_of["description"]
                .as_str()
                .is_some_and(|d| d.contains("app's spec")),
            "{rollback_of}"
        );
        let domain = &schemas["DomainCertView"]["properties"];
        for field in [
            "last_error",
            "failed_at",
            "failures",
            "next_retry_at",
            "https_enforced",
        ] {
            assert!(domain[field].is_object(), "{field} missing: {domain}");
        }
        assert_eq!(domain["next_retry_at"]["format"], "date-time", "{domain}");
    }

    /// A route in the document that the permission table does not know
    /// would be refused to everyone: every operation must be in it, and
    /// every one that needs a principal documents its 401 (and 403).
    #[test]
    fn every_documented_route_has_a_permission() {
        let mut doc = ApiDoc::openapi();
        let mut count = 0;
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                count += 1;
                let need = route_need(&method, path);
                assert!(
                    need.is_some(),
                    "{method} {path} has no entry in access::route_need"
                );
                let answers = &op.responses.responses;
                match need {
                    Some(Need::Scope(..)) => {
                        assert!(
                            answers.contains_key("401") && answers.contains_key("403"),
                            "{method} {path}"
                        )
                    }
                    Some(Need::SignedIn) => assert!(answers.contains_key("401"), "{method} {path}"),
                    _ => assert!(!answers.contains_key("403"), "{method} {path}"),
                }
            }
        }
        assert!(count > 40, "only {count} operations");
    }

    #[test]
    fn sign_in_routes_are_public() {
        for (m, p) in [("GET", "/setup"), ("POST", "/setup"), ("POST", "/session")] {
            let need = route_need(&m.parse().unwrap(), &format!("/api/v1{p}"));
            assert_eq!(need, Some(Need::Public), "{m} {p}");
        }
    }
}
