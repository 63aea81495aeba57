//! Who is looking at a page: the API's own authentication of the request
//! (session cookie, or a bearer credential), or a redirect to sign in (or
//! to first-run setup while nobody can).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::PanelState;
use crate::api::{authenticate, Proof};
use berth::access::Principal;

/// The signed-in principal of a page.
pub struct Viewer {
    /// Who, for the permission checks.
    pub principal: Principal,
    /// The session's CSRF token (empty for a bearer credential).
    pub csrf: String,
    /// The name the layout shows.
    pub name: String,
}

impl FromRequestParts<PanelState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PanelState,
    ) -> Result<Self, Self::Rejection> {
        let store = state.api.orchestrator.store();
        match authenticate(&state.admin, store, &parts.headers) {
            Ok(Some((principal, proof))) => {
                if matches!(&principal, Principal::User(u) if u.1.pending_second_factor) {
                    return Err(Redirect::to("/login").into_response());
                }
                let csrf = match proof {
                    Proof::Cookie { csrf } => csrf,
                    Proof::Bearer => String::new(),
                };
                let name = match (&principal, principal.user()) {
                    (Principal::Operator, _) => "admin token".to_string(),
                    (_, Some(user)) => user.username.clone(),
                    (Principal::Key(k), None) => format!("key {}", k.0.name),
                    (Principal::Hook(h), None) => format!("webhook {}", h.app),
                    (Principal::User(_), None) => String::new(),
                };
                Ok(Viewer {
                    principal,
                    csrf,
                    name,
                })
            }
            Ok(None) => Err(sign_in_first(state)),
            Err(err) => Err(err.into_response()),
        }
    }
}

/// Where someone with no session goes: setup while there is no user yet,
/// else the sign-in page.
pub fn sign_in_first(state: &PanelState) -> Response {
    match state.api.orchestrator.store().has_users() {
        Ok(false) => Redirect::to("/setup").into_response(),
        _ => Redirect::to("/login").into_response(),
    }
}
