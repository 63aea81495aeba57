//! First-run setup and signing in (with the second-factor step). The
//! forms post to the API's `/api/v1/setup`, `/api/v1/session` and
//! `/api/v1/session/second-factor`; these pages only decide which form
//! to show.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use super::{page, Chrome, PanelState};
use crate::api::{authenticate, Proof};
use berth::access::Principal;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    page: Chrome,
}

/// `GET /setup`: the form that makes the owner, while there is none.
pub async fn setup(State(state): State<PanelState>) -> Response {
    match state.api.orchestrator.store().has_users() {
        Ok(false) => page(&SetupPage {
            page: Chrome::bare("Set up berth", String::new()),
        }),
        _ => Redirect::to("/login").into_response(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Chrome,
    /// The session waits for its second factor: show only that step.
    second_factor: bool,
}

/// `GET /login`: sign in, or give the code a signed-in session still
/// waits for.
pub async fn login(State(state): State<PanelState>, headers: HeaderMap) -> Response {
    let store = state.api.orchestrator.store();
    if let Ok(false) = store.has_users() {
        return Redirect::to("/setup").into_response();
    }
    let (second_factor, csrf) = match authenticate(&state.admin, store, &headers) {
        Ok(Some((Principal::User(u), Proof::Cookie { csrf }))) if u.1.pending_second_factor => {
            (true, csrf)
        }
        Ok(Some(_)) => return Redirect::to("/").into_response(),
        _ => (false, String::new()),
    };
    page(&LoginPage {
        page: Chrome::bare("Sign in", csrf),
        second_factor,
    })
}
