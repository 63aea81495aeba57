//! An app's page (state, settings, environment names, domains with their
//! certificates and route rules, maintenance mode and error pages,
//! deployments with their live log, stop / start / delete, the webhook)
//! and the page that creates an app from an image or from git. Buttons and forms call the API; an app the principal may not see
//! is a 404, as in the API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_config::CertificateSource;
use serde::Deserialize;

use super::overview::{DeploymentRow, DomainCertRow};
use super::{failed, label, may, not_found, page, when, Chrome, PanelState, Viewer};
use crate::api::AppView;
use berth::access::Target;
use berth::store::{DeploymentStatus, Scope, StoreError};

/// Deployments an app's page lists.
const SHOWN: usize = 20;
/// Webhook deliveries it lists.
const DELIVERIES: usize = 5;

/// A deployment row with what may be done to it.
struct DeployItem {
    row: DeploymentRow,
    active: bool,
    cancellable: bool,
    rollback: bool,
}

/// A domain with its certificate and its route rules.
struct DomainItem {
    host: String,
    path_prefix: String,
    https: bool,
    cert: Option<DomainCertRow>,
    rules: super::rules::RulesForm,
}

/// A webhook delivery.
struct DeliveryRow {
    at: String,
    provider: String,
    event: String,
    outcome: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    page: Chrome,
    app: AppView,
    status: String,
    source: String,
    build: String,
    /// The health check's type (`auto`, `http`, `tcp`, `docker`).
    health: String,
    created: String,
    env: Vec<String>,
    domains: Vec<DomainItem>,
    deployments: Vec<DeployItem>,
    /// The deployment whose log is shown.
    log: Option<DeploymentRow>,
    log_live: bool,
    /// The image the serving deployment runs.
    serving_image: String,
    /// The webhook's last deliveries (shown to those who may see the webhook).
    deliveries: Vec<DeliveryRow>,
    can_deploy: bool,
    can_write: bool,
    /// Mounts and the deployment strategy.
    storage: super::storage::Storage,
    /// Each status the edge answers itself with the app's page for it
    /// (empty: berth's own).
    error_pages: Vec<(u16, String)>,
}

/// `?log=<deployment id>`: which deployment's log to show.
#[derive(Deserialize)]
pub struct DetailQuery {
    log: Option<String>,
}

/// `GET /apps/{name}`.
pub async fn detail(
    State(state): State<PanelState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Response {
    let orchestrator = &state.api.orchestrator;
    let store = orchestrator.store();
    let record = match store.app(&name) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => {
            return not_found(&viewer, &format!("The app {name:?}"))
        }
        Err(err) => return failed(&viewer, &err),
    };
    let project = record.spec.project.clone();
    if !viewer.principal.sees(Target::Project(project.as_deref())) {
        return not_found(&viewer, &format!("The app {name:?}"));
    }
    let history = match store.app_deployments(&name) {
        Ok(list) => list,
        Err(err) => return failed(&viewer, &err),
    };
    let certs: HashMap<String, DomainCertRow> = match state.api.certs.view() {
        Ok(view) => view
            .domains
            .iter()
            .filter(|d| d.app == name)
            .map(|d| (d.host.clone(), DomainCertRow::from(d)))
            .collect(),
        Err(err) => return failed(&viewer, &err),
    };
    let app = AppView::new(record, orchestrator);
    let active = app.active_deployment.clone();
    let shown = query
        .log
        .as_deref()
        .and_then(|id| history.iter().find(|d| d.id == id))
        .or(history.first());
    let serving_image = history
        .iter()
        .find(|d| active.as_deref() == Some(d.id.as_str()))
        .map(|d| d.image.clone())
        .unwrap_or_default();
    let log_live = shown.is_some_and(|d| !d.status.is_final());
    let log = shown.map(DeploymentRow::from);
    let deployments = history
        .iter()
        .take(SHOWN)
        .map(|d| DeployItem {
            active: active.as_deref() == Some(d.id.as_str()),
            cancellable: !d.status.is_final(),
            rollback: d.status == DeploymentStatus::Succeeded
                && active.as_deref() != Some(d.id.as_str()),
            row: DeploymentRow::from(d),
        })
        .collect();
    let domains = app
        .domains
        .iter()
        .map(|d| DomainItem {
            host: d.host.clone(),
            path_prefix: d.path_prefix.clone(),
            https: d.certificate != CertificateSource::None,
            cert: certs.get(&d.host).cloned(),
            rules: super::rules::RulesForm::of(&app.name, d),
        })
        .collect();
    let source = app.source.as_ref().map_or_else(String::new, |s| {
        let at = s
            .branch
            .as_deref()
            .or(s.tag.as_deref())
            .or(s.commit.as_deref())
            .unwrap_or("default branch");
        format!("{} ({at})", s.url)
    });
    let can_write = may(&viewer.principal, Scope::Write, project.as_deref());
    let deliveries = match can_write.then(|| store.deliveries(&name)).transpose() {
        Ok(list) => list
            .unwrap_or_default()
            .iter()
            .take(DELIVERIES)
            .map(|d| DeliveryRow {
                at: when(d.at),
                provider: d.provider.clone(),
                event: d.event.clone(),
                outcome: label(&d.outcome),
                reason: d.reason.clone(),
            })
            .collect(),
        Err(err) => return failed(&viewer, &err),
    };
    let build = app
        .build
        .as_ref()
        .map_or_else(String::new, |b| label(&b.kind));
    page(&AppPage {
        page: Chrome::new(&viewer, app.name.clone(), ""),
        status: label(&app.status),
        source,
        build,
        health: label(&app.health_check.kind),
        created: when(app.created_at),
        env: app.env.keys().cloned().collect(),
        domains,
        deployments,
        log,
        log_live,
        serving_image,
        deliveries,
        can_deploy: may(&viewer.principal, Scope::Deploy, project.as_deref()),
        can_write,
        storage: super::storage::Storage::of(&app),
        error_pages: super::rules::error_pages(&app.error_pages),
        app,
    })
}

#[derive(Template)]
#[template(path = "new_app.html")]
struct NewAppPage {
    page: Chrome,
    /// Projects the principal may create apps in.
    projects: Vec<String>,
    /// Whether it may create apps in no project.
    no_project: bool,
    /// The project chosen first (`?project=`), if it is one of `projects`.
    selected: String,
}

/// `?project=<name>`: the project the form starts with.
#[derive(Deserialize)]
pub struct NewAppQuery {
    project: Option<String>,
}

/// `GET /apps/new`: the form that creates an app.
pub async fn new_app(
    State(state): State<PanelState>,
    viewer: Viewer,
    query: Result<Query<NewAppQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let projects = match state.api.orchestrator.store().projects() {
        Ok(list) => list
            .into_iter()
            .map(|p| p.spec.name)
            .filter(|p| may(&viewer.principal, Scope::Write, Some(p)))
            .collect::<Vec<_>>(),
        Err(err) => return failed(&viewer, &err),
    };
    let no_project = may(&viewer.principal, Scope::Write, None);
    if projects.is_empty() && !no_project {
        return super::message(
            &viewer,
            StatusCode::FORBIDDEN,
            "No project to create apps in",
            "You may not create apps in any project; ask an owner or admin for the 'write' scope in one.",
        );
    }
    // A project it may not create apps in is not chosen (nor named).
    let selected = query
        .ok()
        .and_then(|Query(q)| q.project)
        .filter(|p| projects.contains(p))
        .unwrap_or_default();
    page(&NewAppPage {
        page: Chrome::new(&viewer, "New app", "new"),
        projects,
        no_project,
        selected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_app_form_starts_in_the_chosen_project() {
        let viewer = Viewer {
            principal: berth::access::Principal::Operator,
            csrf: "t".into(),
            name: "me".into(),
        };
        let html = NewAppPage {
            page: Chrome::new(&viewer, "New app", "new"),
            projects: vec!["blog".into(), "shop".into()],
            no_project: true,
            selected: "shop".into(),
        }
        .render()
        .unwrap();
        assert!(html.contains("<option value=\"shop\" selected>"), "{html}");
        assert!(html.contains("<option value=\"blog\">"), "{html}");
        // Build options name the API's fields.
        for name in [
            "source.token",
            "source.path",
            "build.dockerfile",
            "build.args",
        ] {
            assert!(html.contains(&format!("name=\"{name}\"")), "{name}");
        }
    }
}
