//! The browser admin panel on the admin address, outside `/api/v1`:
//! server-rendered pages (askama templates, checked at compile time), a
//! small stylesheet and script of its own, all embedded in the
//! binary. Pages read what the signed-in principal may see, with the
//! API's own authentication ([`crate::api::authenticate`]) and filter
//! ([`Principal::sees`]); every change goes from the browser through the
//! JSON API, so there is one permission check.

mod apps;
mod assets;
mod host;
mod overview;
mod projects;
mod rules;
mod settings;
mod sign_in;
mod storage;
mod viewer;

use std::path::PathBuf;
use std::sync::Arc;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use time::OffsetDateTime;

use crate::api::ApiState;
use berth::access::{Principal, Target};
use berth::auth::AdminAuth;

pub use viewer::Viewer;

/// What the pages read from.
#[derive(Clone)]
pub struct PanelState {
    /// The API's state: the orchestrator (and store) and the certificates.
    pub api: ApiState,
    /// The admin token's check, for the shared authentication.
    pub admin: AdminAuth,
    /// The data directory, whose file system the overview reports.
    pub data_dir: PathBuf,
    /// The last CPU sample, for the overview's CPU use.
    cpu: Arc<host::CpuSampler>,
}

impl PanelState {
    /// The panel over the API's state.
    pub fn new(api: ApiState, admin: AdminAuth, data_dir: PathBuf) -> Self {
        Self {
            api,
            admin,
            data_dir,
            cpu: Arc::new(host::CpuSampler::default()),
        }
    }
}

/// The panel's routes (pages and assets), to merge beside `/api/v1`.
pub fn router(state: PanelState) -> Router {
    let pages = Router::new()
        .route("/", get(overview::overview))
        .route("/setup", get(sign_in::setup))
        .route("/login", get(sign_in::login))
        .route("/apps/new", get(apps::new_app))
        .route("/apps/{name}", get(apps::detail))
        .route("/projects/{name}", get(projects::detail))
        .route("/certificates", get(overview::certificates))
        .route("/settings", get(settings::settings))
        .layer(axum::middleware::map_response(page_headers));
    Router::new()
        .merge(pages)
        .route("/assets/{file}", get(assets::serve))
        .with_state(state)
}

/// The content security policy of every page: nothing inline, nothing
/// from elsewhere; QR codes are `data:` images.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What the layout shows around every page.
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// The session's CSRF token, for the script's changes.
    pub csrf: String,
    /// Who is signed in (empty on the sign-in pages).
    pub user: String,
    /// Which navigation entry is the current page.
    pub active: &'static str,
    /// Whether to show the navigation.
    pub nav: bool,
    /// Asset URLs (with their content hash).
    pub css: &'static str,
    /// The panel's script.
    pub js: &'static str,
}

impl Chrome {
    /// The layout of a signed-in page.
    pub fn new(viewer: &Viewer, title: impl Into<String>, active: &'static str) -> Self {
        Self {
            title: title.into(),
            csrf: viewer.csrf.clone(),
            user: viewer.name.clone(),
            active,
            nav: true,
            css: assets::url(assets::CSS),
            js: assets::url(assets::JS),
        }
    }

    /// The layout of a page with nobody signed in.
    pub fn bare(title: impl Into<String>, csrf: String) -> Self {
        Self {
            title: title.into(),
            csrf,
            user: String::new(),
            active: "",
            nav: false,
            css: assets::url(assets::CSS),
            js: assets::url(assets::JS),
        }
    }
}

/// Renders a page, or a plain 500 when the template fails.
pub fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(%err, "could not render a panel page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be made",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    page: Chrome,
    heading: String,
    text: String,
}

/// A page that says something went wrong (or is not there), with `status`.
pub fn message(viewer: &Viewer, status: StatusCode, heading: &str, text: &str) -> Response {
    let mut response = page(&MessagePage {
        page: Chrome::new(viewer, heading, ""),
        heading: heading.into(),
        text: text.into(),
    });
    *response.status_mut() = status;
    response
}

/// 404 for what does not exist or may not be seen: the same page.
pub fn not_found(viewer: &Viewer, what: &str) -> Response {
    message(
        viewer,
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("{what} does not exist, or you may not see it."),
    )
}

/// 500 for a store error; the details go to the log, not the page.
pub fn failed(viewer: &Viewer, err: &dyn std::fmt::Display) -> Response {
    tracing::error!(%err, "a panel page failed");
    message(
        viewer,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "berth could not read what this page shows; its log says why.",
    )
}

/// The serialized name of a unit enum (`crash_loop`), for labels and CSS
/// classes.
pub fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// `2026-12-05 17:51 UTC`.
pub fn when(at: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// Whether the principal may act with `scope` in `project`.
pub fn may(principal: &Principal, scope: berth::store::Scope, project: Option<&str>) -> bool {
    principal.check(scope, Target::Project(project)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth::access::Principal;

    fn operator() -> Viewer {
        Viewer {
            principal: Principal::Operator,
            csrf: "tok\"en".into(),
            name: "<b>me</b>".into(),
        }
    }

    #[test]
    fn pages_escape_what_they_show() {
        let response = not_found(&operator(), "The app \"<script>alert(1)</script>\"");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let html = MessagePage {
            page: Chrome::new(&operator(), "<t>", ""),
            heading: "h".into(),
            text: "<script>alert(1)</script>".into(),
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(!html.contains("<b>me</b>"));
        assert!(!html.contains("tok\"en"), "the CSRF meta is escaped");
        // No inline script: every <script> has a src.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=\"/assets/").count()
        );
    }

    #[test]
    fn labels_and_times_read_well() {
        assert_eq!(label(&berth::store::Trigger::Rollback), "rollback");
        assert_eq!(label(&berth::store::Role::Owner), "owner");
        assert_eq!(label(&3), "unknown");
        assert_eq!(
            when(time::macros::datetime!(2026-12-05 17:51:09 UTC)),
            "2026-12-05 17:51 UTC"
        );
    }
}
