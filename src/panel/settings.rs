//! Settings: this berth's own settings (the ACME contact email and the
//! public URL; owners and admins), people (owners and admins add users
//! with a role and project grants), API keys (made through the API, shown
//! once), your second factor and your sessions. Lists are read here; every change is a call
//! to the API from the page.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{failed, label, page, when, Chrome, PanelState, Viewer};
use berth::access::{Principal, Target};
use berth::instance::SettingsView;
use berth::store::{ApiKeyRecord, Role, Scope, UserRecord};

struct UserRow {
    id: String,
    username: String,
    role: String,
    grants: String,
    /// The grants one by one, for the edit form.
    grant_list: Vec<GrantRow>,
    two_factor: bool,
    me: bool,
}

/// A project grant: project and `read`, `deploy` or `write`.
struct GrantRow {
    project: String,
    scope: String,
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    scopes: String,
    projects: String,
    created: String,
    expires: String,
}

struct SessionRow {
    id: String,
    address: String,
    user_agent: String,
    created: String,
    last_seen: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: Chrome,
    /// Owners and admins: the people section.
    admin: bool,
    /// Owners (and the admin token) may give and take the owner role.
    owner: bool,
    /// The instance settings (owners and admins).
    instance: Option<SettingsView>,
    users: Vec<UserRow>,
    projects: Vec<String>,
    keys: Vec<KeyRow>,
    /// A signed-in user (not the admin token or a key): 2FA and sessions.
    person: bool,
    two_factor: bool,
    sessions: Vec<SessionRow>,
}

impl From<&UserRecord> for UserRow {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            role: label(&u.role),
            grants: u
                .grants
                .iter()
                .map(|g| format!("{} ({})", g.project, g.scope.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            grant_list: u
                .grants
                .iter()
                .map(|g| GrantRow {
                    project: g.project.clone(),
                    scope: g.scope.as_str().to_string(),
                })
                .collect(),
            two_factor: u.totp_enabled,
            me: false,
        }
    }
}

impl From<&ApiKeyRecord> for KeyRow {
    fn from(k: &ApiKeyRecord) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            projects: k
                .projects
                .as_ref()
                .map_or_else(|| "all".to_string(), |p| p.join(", ")),
            created: when(k.created_at),
            expires: k.expires_at.map_or_else(|| "never".to_string(), when),
        }
    }
}

/// `GET /settings`.
pub async fn settings(State(state): State<PanelState>, viewer: Viewer) -> Response {
    let store = state.api.orchestrator.store();
    let admin = viewer
        .principal
        .check(Scope::Admin, Target::Instance)
        .is_ok();
    let owner = match &viewer.principal {
        Principal::Operator => true,
        other => other.user().is_some_and(|u| u.role == Role::Owner),
    };
    let me = viewer.principal.user().map(|u| u.id.clone());
    let instance = if admin {
        match state.api.instance.view() {
            Ok(view) => Some(view),
            Err(err) => return failed(&viewer, &err),
        }
    } else {
        None
    };
    let users = if admin {
        match store.users() {
            Ok(list) => list
                .iter()
                .map(|u| UserRow {
                    me: Some(&u.id) == me.as_ref(),
                    ..UserRow::from(u)
                })
                .collect(),
            Err(err) => return failed(&viewer, &err),
        }
    } else {
        Vec::new()
    };
    let projects = match store.projects() {
        Ok(list) => list
            .into_iter()
            .map(|p| p.spec.name)
            .filter(|p| viewer.principal.sees(Target::Project(Some(p))))
            .collect(),
        Err(err) => return failed(&viewer, &err),
    };
    // Owners and admins manage every key; others see their own.
    let keys = match store.api_keys() {
        Ok(list) => list
            .iter()
            .filter(|k| admin || (me.is_some() && k.user_id == me))
            .map(KeyRow::from)
            .collect(),
        Err(err) => return failed(&viewer, &err),
    };
    let (person, two_factor, sessions) = match &viewer.principal {
        Principal::User(u) => {
            let (user, current) = (&u.0, &u.1);
            let sessions = match store.sessions_of(&user.id) {
                Ok(list) => list
                    .into_iter()
                    .map(|s| SessionRow {
                        current: s.id == current.id,
                        id: s.id,
                        address: s.address,
                        user_agent: s.user_agent,
                        created: when(s.created_at),
                        last_seen: when(s.last_seen),
                    })
                    .collect(),
                Err(err) => return failed(&viewer, &err),
            };
            (true, user.totp_enabled, sessions)
        }
        _ => (false, false, Vec::new()),
    };
    page(&SettingsPage {
        page: Chrome::new(&viewer, "Settings", "settings"),
        admin,
        owner,
        instance,
        users,
        projects,
        keys,
        person,
        two_factor,
        sessions,
    })
}
