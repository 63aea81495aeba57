//! Who is asking and what they may do: the one permission check of the
//! API, the panel and webhooks. A [`Principal`] is the admin token, a
//! signed-in user, an API key or a webhook delivery; [`Principal::check`] says whether it may
//! act with a [`Scope`] on a [`Target`]; [`route_need`] says what every
//! route of the API needs (a route missing from it is refused, and a test
//! walks the OpenAPI document so none can be forgotten).
//!
//! Rules: owners and admins (and the admin token) have the `admin` scope
//! everywhere. A member has, in each project granted to them, the grant's
//! scope (at most `write`), and nothing in other projects or on apps in no
//! project. An API key has the widest of its scopes, never more than its
//! maker has, and only in its projects when it lists some. Across the
//! whole instance (lists, creating projects) a principal has the widest
//! scope it has anywhere; lists show only what it may read.

use std::sync::Arc;

use http::Method;

use crate::store::{ApiKeyRecord, Role, Scope, SessionRecord, UserRecord};

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The admin token of `<data-dir>/admin-token`: everything.
    Operator,
    /// A signed-in user, by their session.
    User(Arc<(UserRecord, SessionRecord)>),
    /// An API key, and the user who made it (`None`: the admin token did).
    Key(Arc<(ApiKeyRecord, Option<UserRecord>)>),
    /// A webhook delivery whose URL token matched its app's.
    Hook(Arc<HookCaller>),
}

/// The app a webhook URL names: a delivery may deploy it and nothing else
/// (the receiver acts only on this app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCaller {
    /// The app.
    pub app: String,
    /// Its project.
    pub project: Option<String>,
}

/// What an action touches, for the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The instance as a whole: lists, projects to be, users, keys,
    /// certificates.
    Instance,
    /// Something in a project (`None`: an app in no project).
    Project(Option<&'a str>),
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The principal may not even see the target: answer as if it did not
    /// exist (404).
    Hidden,
    /// It may see it but needs this scope (403).
    Scope(Scope),
}

impl Principal {
    /// Who, for the audit log: `admin-token`, `user:<name>`, `key:<id>`,
    /// `webhook:<app>`.
    pub fn actor(&self) -> String {
        match self {
            Self::Operator => "admin-token".into(),
            Self::User(u) => format!("user:{}", u.0.username),
            Self::Key(k) => format!("key:{}", k.0.id),
            Self::Hook(h) => format!("webhook:{}", h.app),
        }
    }

    /// The user behind the principal (a session's, or a key's maker).
    pub fn user(&self) -> Option<&UserRecord> {
        match self {
            Self::Operator | Self::Hook(_) => None,
            Self::User(u) => Some(&u.0),
            Self::Key(k) => k.1.as_ref(),
        }
    }

    /// The widest scope on `target`, `None` when it may not see it.
    pub fn scope_on(&self, target: Target<'_>) -> Option<Scope> {
        match self {
            Self::Operator => Some(Scope::Admin),
            Self::User(u) => user_scope(&u.0, target),
            Self::Hook(h) => match target {
                Target::Project(p) if p == h.project.as_deref() => Some(Scope::Deploy),
                _ => None,
            },
            Self::Key(k) => {
                let (key, maker) = (&k.0, &k.1);
                let within = match (&key.projects, target) {
                    (None, _) | (Some(_), Target::Instance) => true,
                    (Some(list), Target::Project(Some(p))) => list.iter().any(|x| x == p),
                    (Some(_), Target::Project(None)) => false,
                };
                if !within {
                    return None;
                }
                let maker = match maker {
                    Some(user) => user_scope(user, target)?,
                    None => Scope::Admin,
                };
                Some(key.scope().min(maker))
            }
        }
    }

    /// Whether it may see `target` at all.
    pub fn sees(&self, target: Target<'_>) -> bool {
        self.scope_on(target).is_some()
    }

    /// May it act with `need` on `target`?
    pub fn check(&self, need: Scope, target: Target<'_>) -> Result<(), Denied> {
        match self.scope_on(target) {
            None => Err(Denied::Hidden),
            Some(have) if have >= need => Ok(()),
            Some(_) => Err(Denied::Scope(need)),
        }
    }
}

fn user_scope(user: &UserRecord, target: Target<'_>) -> Option<Scope> {
    match user.role {
        Role::Owner | Role::Admin => Some(Scope::Admin),
        Role::Member => {
            let widest = |grants: &mut dyn Iterator<Item = Scope>| grants.max();
            match target {
                Target::Instance => {
                    widest(&mut user.grants.iter().map(|g| g.scope)).or(Some(Scope::Read))
                }
                Target::Project(None) => None,
                Target::Project(Some(p)) => widest(
                    &mut user
                        .grants
                        .iter()
                        .filter(|g| g.project == p)
                        .map(|g| g.scope),
                ),
            }
            .map(|s| s.min(Scope::Write))
        }
    }
}

/// What a route acts on, named by its path parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The instance.
    Instance,
    /// The app `{name}` (its project).
    App,
    /// The project `{name}`.
    Project,
    /// The deployment `{id}` (its app's project).
    Deployment,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No principal: health, signing in.
    Public,
    /// The webhook receiver: its URL token names a [`HookCaller`], which
    /// needs `deploy` on its app's project; the receiver checks the
    /// provider's signature over the body.
    Hook,
    /// Any principal, even one whose second factor is still due.
    SignedIn,
    /// `scope` on what the route acts on. Handlers that act on something
    /// named in the body (an app's project) check that too.
    Scope(Scope, On),
}

/// What the route `template` (as the router writes it, e.g.
/// `/api/v1/apps/{name}`) needs for `method`; `None` for a route this
/// table does not know, which is refused.
pub fn route_need(method: &Method, template: &str) -> Option<Need> {
    use On::{App, Deployment, Instance, Project};
    use Scope::{Admin, Deploy, Read, Write};
    let path = template.strip_prefix("/api/v1")?;
    let m = method.as_str();
    let need = |scope, on| Some(Need::Scope(scope, on));
    match (m, path) {
        ("GET", "/health" | "/setup") | ("POST", "/session" | "/setup") => Some(Need::Public),
        ("POST", "/hooks/{app}/{token}") => Some(Need::Hook),
        ("GET", "/session") | ("DELETE", "/session") | ("POST", "/session/second-factor") => {
            Some(Need::SignedIn)
        }
        ("GET", "/openapi.json" | "/projects" | "/apps" | "/deployments" | "/sessions") => {
            need(Read, Instance)
        }
        ("DELETE", "/sessions/{id}")
        | ("POST", "/session/totp" | "/session/totp/confirm")
        | ("DELETE", "/session/totp") => need(Read, Instance),
        ("POST", "/projects" | "/apps" | "/sources/refs") => need(Write, Instance),
        ("GET", "/projects/{name}") => need(Read, Project),
        ("PATCH" | "DELETE", "/projects/{name}") => need(Write, Project),
        (
            "GET",
            "/apps/{name}"
            | "/apps/{name}/logs"
            | "/apps/{name}/domains"
            | "/apps/{name}/deployments"
            | "/apps/{name}/build-plan",
        ) => need(Read, App),
        ("GET", "/apps/{name}/webhook") | ("POST", "/apps/{name}/webhook/rotate") => {
            need(Write, App)
        }
        ("PATCH" | "DELETE", "/apps/{name}")
        | ("POST", "/apps/{name}/domains")
        | ("PATCH" | "DELETE", "/apps/{name}/domains/{host}") => need(Write, App),
        (
            "POST",
            "/apps/{name}/stop"
            | "/apps/{name}/start"
            | "/apps/{name}/rollback"
            | "/apps/{name}/deployments",
        ) => need(Deploy, App),
        ("GET", "/deployments/{id}" | "/deployments/{id}/logs") => need(Read, Deployment),
        ("POST", "/deployments/{id}/cancel") => need(Deploy, Deployment),
        ("GET" | "POST", "/certificates" | "/users" | "/audit" | "/api-keys")
        | ("GET" | "PATCH", "/settings")
        | ("DELETE", "/certificates/{id}" | "/api-keys/{id}")
        | ("PATCH" | "DELETE", "/users/{id}") => need(Admin, Instance),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Grant;
    use time::OffsetDateTime;

    fn user(role: Role, grants: &[(&str, Scope)]) -> UserRecord {
        UserRecord {
            id: "u1".into(),
            username: "ann".into(),
            role,
            password_hash: String::new(),
            grants: grants
                .iter()
                .map(|(p, s)| Grant {
                    project: p.to_string(),
                    scope: *s,
                })
                .collect(),
            totp_sealed: None,
            totp_enabled: false,
            backup_codes: vec![],
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn session_of(user: UserRecord) -> Principal {
        let session = SessionRecord {
            id: "s".into(),
            user_id: user.id.clone(),
            pending_second_factor: false,
            csrf_token: "t".into(),
            address: String::new(),
            user_agent: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_seen: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        Principal::User(Arc::new((user, session)))
    }

    fn key(scopes: &[Scope], projects: Option<&[&str]>, maker: Option<UserRecord>) -> Principal {
        let key = ApiKeyRecord {
            id: "k1".into(),
            name: "ci".into(),
            prefix: "berth_key_ab".into(),
            user_id: maker.as_ref().map(|u| u.id.clone()),
            scopes: scopes.to_vec(),
            projects: projects.map(|ps| ps.iter().map(|p| p.to_string()).collect()),
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
        };
        Principal::Key(Arc::new((key, maker)))
    }

    const SHOP: Target = Target::Project(Some("shop"));
    const BLOG: Target = Target::Project(Some("blog"));
    const NONE: Target = Target::Project(None);

    #[test]
    fn owners_admins_and_the_token_may_do_everything() {
        for p in [
            Principal::Operator,
            session_of(user(Role::Owner, &[])),
            session_of(user(Role::Admin, &[])),
        ] {
            for t in [Target::Instance, SHOP, NONE] {
                assert_eq!(p.check(Scope::Admin, t), Ok(()), "{p:?} {t:?}");
            }
        }
    }

    #[test]
    fn members_act_only_within_their_grants() {
        let m = session_of(user(Role::Member, &[("shop", Scope::Deploy)]));
        assert_eq!(m.check(Scope::Deploy, SHOP), Ok(()));
        assert_eq!(
            m.check(Scope::Write, SHOP),
            Err(Denied::Scope(Scope::Write))
        );
        assert_eq!(m.check(Scope::Read, BLOG), Err(Denied::Hidden));
        assert_eq!(m.check(Scope::Read, NONE), Err(Denied::Hidden));
        assert_eq!(m.check(Scope::Read, Target::Instance), Ok(()));
        assert_eq!(
            m.check(Scope::Admin, Target::Instance),
            Err(Denied::Scope(Scope::Admin))
        );
        // A member's grant never reaches admin.
        let wide = session_of(user(Role::Member, &[("shop", Scope::Admin)]));
        assert_eq!(wide.scope_on(SHOP), Some(Scope::Write));
        let none = session_of(user(Role::Member, &[]));
        assert_eq!(none.scope_on(Target::Instance), Some(Scope::Read));
    }

    #[test]
    fn a_webhook_may_deploy_in_its_apps_project_and_nothing_more() {
        let hook = |project: Option<&str>| {
            Principal::Hook(Arc::new(HookCaller {
                app: "web".into(),
                project: project.map(str::to_string),
            }))
        };
        let shop = hook(Some("shop"));
        assert_eq!(shop.check(Scope::Deploy, SHOP), Ok(()));
        assert_eq!(
            shop.check(Scope::Write, SHOP),
            Err(Denied::Scope(Scope::Write))
        );
        assert_eq!(shop.check(Scope::Read, BLOG), Err(Denied::Hidden));
        assert_eq!(shop.check(Scope::Read, NONE), Err(Denied::Hidden));
        assert_eq!(
            shop.check(Scope::Read, Target::Instance),
            Err(Denied::Hidden)
        );
        assert_eq!(hook(None).check(Scope::Deploy, NONE), Ok(()));
        assert_eq!(hook(None).check(Scope::Read, SHOP), Err(Denied::Hidden));
        assert_eq!(shop.actor(), "webhook:web");
        assert!(shop.user().is_none());
        assert_eq!(
            route_need(&Method::POST, "/api/v1/hooks/{app}/{token}"),
            Some(Need::Hook)
        );
    }

    #[test]
    fn keys_are_bounded_by_scope_projects_and_maker() {
        let read = key(&[Scope::Read], None, None);
        assert_eq!(read.check(Scope::Read, SHOP), Ok(()));
        assert_eq!(
            read.check(Scope::Deploy, SHOP),
            Err(Denied::Scope(Scope::Deploy))
        );
        let widest = key(&[Scope::Read, Scope::Write], None, None);
        assert_eq!(widest.scope_on(NONE), Some(Scope::Write));
        let limited = key(&[Scope::Deploy], Some(&["shop"]), None);
        assert_eq!(limited.check(Scope::Deploy, SHOP), Ok(()));
        assert_eq!(limited.check(Scope::Read, BLOG), Err(Denied::Hidden));
        assert_eq!(limited.check(Scope::Read, NONE), Err(Denied::Hidden));
        let member = user(Role::Member, &[("shop", Scope::Read)]);
        let capped = key(&[Scope::Admin], None, Some(member));
        assert_eq!(capped.scope_on(SHOP), Some(Scope::Read));
        assert_eq!(capped.check(Scope::Read, BLOG), Err(Denied::Hidden));
        assert_eq!(
            capped.check(Scope::Admin, Target::Instance),
            Err(Denied::Scope(Scope::Admin))
        );
    }

    #[test]
    fn unknown_routes_and_methods_need_something_unknown() {
        assert_eq!(route_need(&Method::GET, "/api/v1/nope"), None);
        assert_eq!(route_need(&Method::PUT, "/api/v1/apps/{name}"), None);
        assert_eq!(route_need(&Method::GET, "/apps"), None);
        assert_eq!(
            route_need(&Method::POST, "/api/v1/apps/{name}/deployments"),
            Some(Need::Scope(Scope::Deploy, On::App))
        );
    }
}
