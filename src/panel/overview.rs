//! The overview (apps with their state, recent deployments, the host's
//! CPU, memory and disk) and the certificates page. Both show only what
//! the principal may see, with the same filter as the API's lists.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::host::{self, Bar};
use super::{failed, label, page, when, Chrome, PanelState, Viewer};
use crate::api::AppView;
use berth::access::Target;
use berth::store::{DeploymentRecord, Scope};

/// Deployments the overview lists.
const RECENT: usize = 10;
/// Apps on one page of the overview.
const APPS_PER_PAGE: usize = 100;

/// An app in a list.
pub struct AppRow {
    pub name: String,
    pub project: String,
    pub status: String,
    pub serving: usize,
    pub replicas: u32,
    pub image: String,
    pub reason: String,
}

impl From<AppView> for AppRow {
    fn from(v: AppView) -> Self {
        Self {
            status: label(&v.status),
            name: v.name,
            project: v.project.unwrap_or_default(),
            serving: v.serving_replicas,
            replicas: v.replicas,
            image: v.image,
            reason: v.reason.unwrap_or_default(),
        }
    }
}

/// A deployment in a list.
pub struct DeploymentRow {
    pub id: String,
    pub app: String,
    pub status: String,
    pub trigger: String,
    pub created: String,
    pub error: String,
    pub image: String,
}

impl From<&DeploymentRecord> for DeploymentRow {
    fn from(d: &DeploymentRecord) -> Self {
        Self {
            id: d.id.clone(),
            app: d.app.clone(),
            status: d.status.as_str().to_string(),
            trigger: label(&d.trigger),
            created: when(d.created_at),
            error: d.error.clone().unwrap_or_default(),
            image: d.image.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    page: Chrome,
    /// Which apps of how many, when there is more than one page.
    shown: String,
    /// The previous and next page of apps (0: none).
    prev: usize,
    next: usize,
    apps: Vec<AppRow>,
    deployments: Vec<DeploymentRow>,
    bars: Vec<Bar>,
    projects: Vec<ProjectRow>,
    can_create: bool,
}

/// A project with how many of its apps the principal sees.
struct ProjectRow {
    name: String,
    description: String,
    apps: usize,
}

/// `GET /`: the overview.
pub async fn overview(
    State(state): State<PanelState>,
    viewer: Viewer,
    query: Result<Query<OverviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A page number that does not parse shows the first page.
    let query = query
        .map(|Query(q)| q)
        .unwrap_or(OverviewQuery { page: None });
    let orchestrator = &state.api.orchestrator;
    let store = orchestrator.store();
    let apps = store.apps();
    let visible: HashMap<String, ()> = apps
        .iter()
        .filter(|a| {
            viewer
                .principal
                .sees(Target::Project(a.spec.project.as_deref()))
        })
        .map(|a| (a.spec.name.clone(), ()))
        .collect();
    let deployments = match store.newest_deployments(RECENT, |app| visible.contains_key(app)) {
        Ok(list) => list.iter().map(DeploymentRow::from).collect(),
        Err(err) => return failed(&viewer, &err),
    };
    let projects = match store.projects() {
        Ok(list) => list
            .into_iter()
            .filter(|p| viewer.principal.sees(Target::Project(Some(&p.spec.name))))
            .map(|p| ProjectRow {
                apps: apps
                    .iter()
                    .filter(|a| a.spec.project.as_deref() == Some(p.spec.name.as_str()))
                    .count(),
                name: p.spec.name,
                description: p.spec.description,
            })
            .collect(),
        Err(err) => return failed(&viewer, &err),
    };
    // One page of apps (by name): their live state is worked out only for
    // the ones shown.
    let total = visible.len();
    let pages = total.div_ceil(APPS_PER_PAGE).max(1);
    let page_no = query.page.unwrap_or(1).clamp(1, pages);
    let first = (page_no - 1) * APPS_PER_PAGE;
    let apps: Vec<AppRow> = apps
        .into_iter()
        .filter(|a| visible.contains_key(&a.spec.name))
        .skip(first)
        .take(APPS_PER_PAGE)
        .map(|a| AppRow::from(AppView::new((*a).clone(), orchestrator)))
        .collect();
    let shown = if pages > 1 {
        format!("{}–{} of {total}", first + 1, first + apps.len())
    } else {
        String::new()
    };
    let can_create = viewer
        .principal
        .scope_on(Target::Instance)
        .is_some_and(|s| s >= Scope::Write);
    page(&OverviewPage {
        page: Chrome::new(&viewer, "Overview", "overview"),
        apps,
        deployments,
        bars: host::bars(&state.cpu, &state.data_dir),
        projects,
        can_create,
        shown,
        prev: page_no.saturating_sub(1),
        next: if page_no < pages { page_no + 1 } else { 0 },
    })
}

/// Query of the overview.
#[derive(serde::Deserialize)]
pub struct OverviewQuery {
    /// Which page of apps, from 1.
    page: Option<usize>,
}

/// A certificate in the list.
struct CertRow {
    id: String,
    origin: String,
    names: String,
    not_after: String,
    days_left: i64,
}

/// A domain's certificate status.
#[derive(Clone)]
pub struct DomainCertRow {
    pub host: String,
    pub app: String,
    pub source: String,
    pub status: String,
    pub certificate: String,
    pub expires: String,
    pub renew: String,
    pub error: String,
    pub retry: String,
}

impl From<&berth::certs::DomainCertView> for DomainCertRow {
    fn from(d: &berth::certs::DomainCertView) -> Self {
        Self {
            host: d.host.clone(),
            app: d.app.clone(),
            source: label(&d.source),
            status: label(&d.status),
            certificate: d.certificate.clone().unwrap_or_default(),
            expires: d.expires_at.map(when).unwrap_or_default(),
            renew: d.renew_at.map(when).unwrap_or_default(),
            error: d.last_error.clone().unwrap_or_default(),
            retry: d.next_retry_at.map(when).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "certificates.html")]
struct CertificatesPage {
    page: Chrome,
    admin: bool,
    certificates: Vec<CertRow>,
    domains: Vec<DomainCertRow>,
}

/// `GET /certificates`: stored certificates (owners and admins) and the
/// HTTPS status of each domain of the apps the principal may see.
pub async fn certificates(State(state): State<PanelState>, viewer: Viewer) -> Response {
    let view = match state.api.certs.view() {
        Ok(v) => v,
        Err(err) => return failed(&viewer, &err),
    };
    let store = state.api.orchestrator.store();
    let projects: HashMap<String, Option<String>> = store
        .apps()
        .iter()
        .map(|a| (a.spec.name.clone(), a.spec.project.clone()))
        .collect();
    let sees_app = |app: &str| {
        projects
            .get(app)
            .is_some_and(|p| viewer.principal.sees(Target::Project(p.as_deref())))
    };
    let admin = viewer
        .principal
        .check(Scope::Admin, Target::Instance)
        .is_ok();
    let certificates = if admin {
        view.certificates
            .iter()
            .map(|c| CertRow {
                id: c.id.clone(),
                origin: label(&c.origin),
                names: c.names.join(", "),
                not_after: when(c.not_after),
                days_left: c.expires_in_secs / 86_400,
            })
            .collect()
    } else {
        Vec::new()
    };
    let domains = view
        .domains
        .iter()
        .filter(|d| sees_app(&d.app))
        .map(DomainCertRow::from)
        .collect();
    page(&CertificatesPage {
        page: Chrome::new(&viewer, "Certificates", "certificates"),
        admin,
        certificates,
        domains,
    })
}
