//! The gate of every API route: who is asking (the admin token, an API
//! key, a session cookie with its CSRF token), whether [`access`] lets
//! them do what the route does to what it names, and the audit entry of
//! every change. Handlers find the [`Principal`] in the request's
//! extensions, to filter lists and to check what a body names.
//!
//! [`access`]: berth::access

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{
    ConnectInfo, FromRequestParts, MatchedPath, OriginalUri, RawPathParams, Request, State,
};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::error::ApiError;
use super::ApiState;
use berth::access::{route_need, Denied, Need, On, Principal, Target};
use berth::auth::AdminAuth;
use berth::people::{secret_hash, KEY_PREFIX};
use berth::store::{new_id, AuditRecord, Scope, Store, StoreError};

/// The cookie that carries a session's secret.
pub const SESSION_COOKIE: &str = "berth_session";
/// The header a cookie-authenticated change carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// State of the gate.
#[derive(Clone)]
pub struct Guard {
    pub(super) api: ApiState,
    pub(super) admin: AdminAuth,
}

/// How the principal proved who it is.
pub(crate) enum Proof {
    /// The admin token, an API key or a webhook URL's token: no CSRF.
    Bearer,
    /// A session cookie, whose changes must carry this CSRF token.
    Cookie {
        /// The session's CSRF token.
        csrf: String,
    },
}

/// The gate itself (an axum middleware).
pub async fn guard(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let need = template.as_deref().and_then(|t| route_need(&method, t));
    if need == Some(Need::Public) {
        return next.run(req).await;
    }
    let store = guard.api.orchestrator.store().clone();
    let found = if need == Some(Need::Hook) {
        hook_caller(&guard.api, &mut req).await.map(Some)
    } else {
        authenticate(&guard.admin, &store, req.headers())
    };
    let (principal, proof) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(err) => return err.into_response(),
    };
    if let Proof::Cookie { csrf } = &proof {
        if !is_safe(&method) {
            if let Err(err) = check_csrf(req.headers(), csrf) {
                return err.into_response();
            }
        }
    }
    let pending = matches!(&principal, Principal::User(u) if u.1.pending_second_factor);
    match need {
        // A matched path with another method (405), or no route (404):
        // answered by the router to a principal only.
        None => {}
        Some(Need::Public) | Some(Need::SignedIn) => {}
        Some(Need::Hook) => {
            let project = match &principal {
                Principal::Hook(h) => h.project.as_deref(),
                _ => None,
            };
            let checked = principal.check(Scope::Deploy, Target::Project(project));
            if let Err(err) = verdict(checked, "app", &principal.actor()) {
                return err.into_response();
            }
        }
        Some(Need::Scope(..)) if pending => return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "second_factor_required",
            "give the code of your authenticator app first (POST /api/v1/session/second-factor)",
        )
        .into_response(),
        Some(Need::Scope(scope, on)) => {
            let (mut parts, body) = req.into_parts();
            let params = RawPathParams::from_request_parts(&mut parts, &())
                .await
                .ok()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<Vec<_>>()
                });
            req = Request::from_parts(parts, body);
            let param = |name: &str| {
                params
                    .iter()
                    .flatten()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            if let Err(err) = authorize(&store, &principal, scope, on, &param) {
                return err.into_response();
            }
        }
    }
    let audit = (!is_safe(&method)).then(|| {
        let address = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical().to_string())
            .unwrap_or_default();
        let path = req
            .extensions()
            .get::<OriginalUri>()
            .map_or(req.uri().path(), |u| u.0.path());
        // A webhook URL's last segment is its secret token.
        let target = match (&principal, path.rsplit_once('/')) {
            (Principal::Hook(_), Some((head, _))) => format!("{head}/…"),
            _ => path.to_string(),
        };
        (
            format!("{method} {}", template.as_deref().unwrap_or("-")),
            target,
            address,
        )
    });
    let actor = principal.actor();
    req.extensions_mut().insert(principal);
    let response = next.run(req).await;
    if let Some((action, target, address)) = audit {
        let entry = AuditRecord {
            id: new_id(),
            at: OffsetDateTime::now_utc(),
            actor,
            action,
            target,
            address,
            status: response.status().as_u16(),
        };
        if let Err(err) = store.record_audit(&entry) {
            tracing::error!(%err, "could not write the audit log");
        }
    }
    response
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The principal of a webhook delivery, from the app and URL token of
/// its path (404 for an unknown app or a wrong token), before a byte of
/// the body is read.
async fn hook_caller(api: &ApiState, req: &mut Request) -> Result<(Principal, Proof), ApiError> {
    let (mut parts, body) = std::mem::take(req).into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &()).await;
    *req = Request::from_parts(parts, body);
    let param = |name: &str| {
        params
            .as_ref()
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap_or_default()
    };
    let caller = super::hooks::caller(api, &param("app"), &param("token"))?;
    Ok((Principal::Hook(Arc::new(caller)), Proof::Bearer))
}

/// The principal the request's credentials name, if any; a bad or expired
/// credential names none (401). The panel's pages authenticate with it
/// too, so a page and the API see the same principal.
pub(crate) fn authenticate(
    admin: &AdminAuth,
    store: &Store,
    headers: &HeaderMap,
) -> Result<Option<(Principal, Proof)>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default();
        let Some((scheme, token)) = text.split_once(' ') else {
            return Ok(None);
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let token = token.trim();
        if token.starts_with(KEY_PREFIX) {
            let Some(key) = store.api_key(&secret_hash(token))? else {
                return Ok(None);
            };
            let maker = match &key.user_id {
                Some(id) => match store.user(id) {
                    Ok(user) => Some(user),
                    Err(StoreError::NotFound { .. }) => return Ok(None),
                    Err(err) => return Err(err.into()),
                },
                None => None,
            };
            return Ok(Some((
                Principal::Key(Arc::new((key, maker))),
                Proof::Bearer,
            )));
        }
        return Ok(admin
            .verify(token)
            .then_some((Principal::Operator, Proof::Bearer)));
    }
    let Some(secret) = session_cookie(headers) else {
        return Ok(None);
    };
    let hash = secret_hash(secret);
    let Some(mut session) = store.session(&hash)? else {
        return Ok(None);
    };
    let user = match store.user(&session.user_id) {
        Ok(user) => user,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    // `last_seen` is for the session list: a minute is precise enough,
    // and spares a write per request.
    let now = OffsetDateTime::now_utc();
    if now - session.last_seen > time::Duration::minutes(1) {
        session.last_seen = now;
        store.put_session(&hash, &session)?;
    }
    let csrf = session.csrf_token.clone();
    Ok(Some((
        Principal::User(Arc::new((user, session))),
        Proof::Cookie { csrf },
    )))
}

/// The session secret of the request's `Cookie` header.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// A change made with a session cookie must come from berth's own pages:
/// the browser's `Sec-Fetch-Site` (or `Origin`) says the request is not
/// cross-site, and it carries the session's CSRF token.
fn check_csrf(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let refused = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            format!("{why}; changes with a session cookie must come from berth's own pages"),
        )
    };
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return Err(refused("the request came from another site"));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err(refused("the request's Origin is another site"));
        }
    }
    let sent = headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if sent.is_empty() || !bool::from(sent.ct_eq(token.as_bytes())) {
        return Err(refused("the X-CSRF-Token header is missing or wrong"));
    }
    Ok(())
}

/// The check of a route that acts on what its path names.
fn authorize(
    store: &Store,
    principal: &Principal,
    scope: Scope,
    on: On,
    param: &dyn Fn(&str) -> String,
) -> Result<(), ApiError> {
    let (kind, name, project) = match on {
        On::Instance => return verdict(principal.check(scope, Target::Instance), "", ""),
        On::Project => {
            let name = param("name");
            ("project", name.clone(), Some(name))
        }
        On::App => {
            let name = param("name");
            match store.app(&name) {
                Ok(app) => ("app", name, app.spec.project),
                // Unknown: the handler answers 404 as for anyone.
                Err(StoreError::NotFound { .. }) => return Ok(()),
                Err(err) => return Err(err.into()),
            }
        }
        On::Deployment => {
            let id = param("id");
            let project = match store.deployment(&id) {
                Ok(d) => match store.app(&d.app) {
                    Ok(app) => app.spec.project,
                    Err(StoreError::NotFound { .. }) => None,
                    Err(err) => return Err(err.into()),
                },
                Err(StoreError::NotFound { .. }) => return Ok(()),
                Err(err) => return Err(err.into()),
            };
            ("deployment", id, project)
        }
    };
    verdict(
        principal.check(scope, Target::Project(project.as_deref())),
        kind,
        &name,
    )
}

fn verdict(result: Result<(), Denied>, kind: &str, name: &str) -> Result<(), ApiError> {
    match result {
        Ok(()) => Ok(()),
        Err(Denied::Hidden) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} {name:?} does not exist"),
        )),
        Err(Denied::Scope(need)) => Err(forbidden(need)),
    }
}

/// 403 naming the scope an action needs.
pub fn forbidden(need: Scope) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this needs the '{}' scope; ask an owner or admin for it, or use a key that has it",
            need.as_str()
        ),
    )
}
