//! A project's page: its name and description, its apps with their state,
//! the recent deployments of those apps, who holds a grant on it (shown to
//! owners and admins), and what the principal may do there: create an app
//! in it, change its description, delete it. Changes go through the API;
//! a project the principal may not see is the same 404 as a missing one.

use std::collections::HashSet;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::overview::{AppRow, DeploymentRow};
use super::{failed, label, may, not_found, page, when, Chrome, PanelState, Viewer};
use crate::api::AppView;
use berth::access::Target;
use berth::store::{Role, Scope, StoreError, UserRecord};

/// Deployments the page lists.
const RECENT: usize = 15;

/// A member with a grant on the project.
struct GrantHolder {
    username: String,
    /// `read`, `deploy` or `write`.
    scope: String,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    page: Chrome,
    name: String,
    description: String,
    created: String,
    apps: Vec<AppRow>,
    deployments: Vec<DeploymentRow>,
    /// Owners and admins see who may act on the project.
    admin: bool,
    /// Members with a grant on it.
    grants: Vec<GrantHolder>,
    /// Owners and admins by name: they may do everything everywhere.
    everyone: Vec<String>,
    /// May create apps here, change and delete the project.
    can_write: bool,
}

/// `GET /projects/{name}`.
pub async fn detail(
    State(state): State<PanelState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let what = format!("The project {name:?}");
    if !viewer.principal.sees(Target::Project(Some(&name))) {
        return not_found(&viewer, &what);
    }
    let orchestrator = &state.api.orchestrator;
    let store = orchestrator.store();
    let project = match store.project(&name) {
        Ok(p) => p,
        Err(StoreError::NotFound { .. }) => return not_found(&viewer, &what),
        Err(err) => return failed(&viewer, &err),
    };
    let records: Vec<_> = store
        .apps()
        .into_iter()
        .filter(|a| a.spec.project.as_deref() == Some(name.as_str()))
        .collect();
    let names: HashSet<String> = records.iter().map(|a| a.spec.name.clone()).collect();
    let deployments = match store.newest_deployments(RECENT, |app| names.contains(app)) {
        Ok(list) => list.iter().map(DeploymentRow::from).collect(),
        Err(err) => return failed(&viewer, &err),
    };
    let apps = records
        .into_iter()
        .map(|a| AppRow::from(AppView::new((*a).clone(), orchestrator)))
        .collect();
    let admin = viewer
        .principal
        .check(Scope::Admin, Target::Instance)
        .is_ok();
    let (grants, everyone) = if admin {
        match store.users() {
            Ok(users) => people(&users, &name),
            Err(err) => return failed(&viewer, &err),
        }
    } else {
        (Vec::new(), Vec::new())
    };
    page(&ProjectPage {
        page: Chrome::new(&viewer, format!("Project {name}"), ""),
        can_write: may(&viewer.principal, Scope::Write, Some(&name)),
        description: project.spec.description,
        created: when(project.created_at),
        name,
        apps,
        deployments,
        admin,
        grants,
        everyone,
    })
}

/// The members with a grant on `project` (by name), and the owners and
/// admins, who may act on every project.
fn people(users: &[UserRecord], project: &str) -> (Vec<GrantHolder>, Vec<String>) {
    let mut grants: Vec<GrantHolder> = users
        .iter()
        .filter(|u| u.role == Role::Member)
        .filter_map(|u| {
            let scope = u
                .grants
                .iter()
                .filter(|g| g.project == project)
                .map(|g| g.scope)
                .max()?;
            Some(GrantHolder {
                username: u.username.clone(),
                scope: scope.as_str().to_string(),
            })
        })
        .collect();
    grants.sort_by(|a, b| a.username.cmp(&b.username));
    let mut everyone: Vec<String> = users
        .iter()
        .filter(|u| u.role != Role::Member)
        .map(|u| format!("{} ({})", u.username, label(&u.role)))
        .collect();
    everyone.sort();
    (grants, everyone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth::store::Grant;

    fn user(name: &str, role: Role, grants: &[(&str, Scope)]) -> UserRecord {
        UserRecord {
            id: name.into(),
            username: name.into(),
            role,
            password_hash: String::new(),
            grants: grants
                .iter()
                .map(|(p, s)| Grant {
                    project: (*p).into(),
                    scope: *s,
                })
                .collect(),
            totp_sealed: None,
            totp_enabled: false,
            backup_codes: Vec::new(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn project_page(can_write: bool) -> String {
        let viewer = Viewer {
            principal: berth::access::Principal::Operator,
            csrf: "t".into(),
            name: "me".into(),
        };
        ProjectPage {
            page: Chrome::new(&viewer, "Project shop", ""),
            name: "shop".into(),
            description: "<script>alert(1)</script>".into(),
            created: "2026-12-05 17:51 UTC".into(),
            apps: Vec::new(),
            deployments: Vec::new(),
            admin: can_write,
            grants: vec![GrantHolder {
                username: "mia".into(),
                scope: "read".into(),
            }],
            everyone: vec!["root (owner)".into()],
            can_write,
        }
        .render()
        .unwrap()
    }

    #[test]
    fn the_page_escapes_and_offers_changes_only_to_writers() {
        let html = project_page(true);
        assert!(!html.contains("<script>alert"), "{html}");
        for part in [
            "id=\"project-edit\"",
            "id=\"project-delete\"",
            "href=\"/apps/new?project=shop\"",
            "mia",
        ] {
            assert!(html.contains(part), "{part} missing:\n{html}");
        }
        let html = project_page(false);
        for part in [
            "project-edit",
            "project-delete",
            "/apps/new?project=",
            "mia",
        ] {
            assert!(!html.contains(part), "{part} shown to a reader:\n{html}");
        }
    }

    #[test]
    fn people_lists_members_with_a_grant_and_the_admins() {
        let users = [
            user("zoe", Role::Member, &[("shop", Scope::Read)]),
            user(
                "ann",
                Role::Member,
                &[("shop", Scope::Read), ("shop", Scope::Write)],
            ),
            user("bob", Role::Member, &[("blog", Scope::Write)]),
            user("root", Role::Owner, &[]),
            user("ops", Role::Admin, &[]),
        ];
        let (grants, everyone) = people(&users, "shop");
        let got: Vec<_> = grants
            .iter()
            .map(|g| (g.username.as_str(), g.scope.as_str()))
            .collect();
        assert_eq!(got, [("ann", "write"), ("zoe", "read")]);
        assert_eq!(everyone, ["ops (admin)", "root (owner)"]);
    }
}
