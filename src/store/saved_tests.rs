//! Tests of the saved types: a fully populated spec survives the trip
//! through its saved form, and the saved JSON is the fixed contract below.

use super::*;
use serde_json::json;

/// A spec with every field set (and every optional part present).
fn full_spec() -> AppSpec {
    AppSpec {
        name: "web".into(),
        project: Some("shop".into()),
        image: "berth/web".into(),
        source: Some(GitSource {
            url: "https://git.example/shop/web.git".into(),
            branch: Some("main".into()),
            tag: Some("v1".into()),
            commit: Some("abc123".into()),
            path: Some("app".into()),
            submodules: true,
            auth: GitAuth::Token,
            watch_paths: vec!["src/**".into(), "!docs/**".into()],
            tag_pattern: Some("v*".into()),
        }),
        build: Some(BuildSpec {
            kind: BuildKind::Auto,
            dockerfile: Some("Dockerfile.web".into()),
            target: Some("run".into()),
            args: BTreeMap::from([("NODE_ENV".into(), "production".into())]),
            secrets: vec!["NPM_TOKEN".into()],
            publish_dir: Some("dist".into()),
            spa: true,
            plan: PlanOverrides {
                base_image: Some("node:22".into()),
                install: Some("npm ci".into()),
                build: Some("npm run build".into()),
                start: Some("node server.js".into()),
            },
        }),
        port: 8080,
        replicas: 3,
        env: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())]),
        command: Some(vec!["node".into(), "server.js".into()]),
        cpus: Some(0.5),
        memory_mb: Some(256),
        domains: vec![
            Domain {
                host: "shop.example".into(),
                path_prefix: "/".into(),
                strip_prefix: false,
                certificate: CertificateSource::Letsencrypt,
                redirect_https: true,
                hsts: true,
                rules: full_rules(),
            },
            Domain {
                host: "*.shop.example".into(),
                path_prefix: "/api".into(),
                strip_prefix: true,
                certificate: CertificateSource::Custom,
                redirect_https: false,
                hsts: false,
                rules: Default::default(),
            },
        ],
        health_check: HealthCheck {
            kind: HealthKind::Http,
            path: "/healthz".into(),
            expected_status: 204,
            interval_ms: 500,
            timeout_ms: 2000,
            retries: 3,
            start_period_secs: 5,
        },
        batch_size: Some(1),
        mounts: vec![
            Mount::Volume {
                name: "data".into(),
                path: "/data".into(),
                read_only: false,
            },
            Mount::Bind {
                host_path: "/srv/shared".into(),
                path: "/shared".into(),
                read_only: true,
            },
            Mount::File {
                path: "/etc/web.conf".into(),
                content: "x = 1\n".into(),
                mode: 0o444,
            },
        ],
        strategy: Strategy::Recreate,
        maintenance: berth_config::Maintenance {
            enabled: true,
            message: Some("back at 3".into()),
        },
        error_pages: BTreeMap::from([(503, "<h1>soon</h1>".into())]),
    }
}

/// Route rules with every rule on (their saved form is pinned in
/// `saved/names.rs`).
pub(super) fn full_rules() -> berth_config::RouteRules {
    use berth_config::*;
    RouteRules {
        basic_auth: Some(BasicAuth {
            realm: "staff".into(),
            users: vec![BasicAuthUser {
                username: "ann".into(),
                password_hash: "$2y$05$abcdefghijklmnopqrstuu0123456789abcdefghijklmnopqrstu"
                    .into(),
            }],
        }),
        redirect_www: Some(RedirectWww::ToWww),
        redirects: vec![Redirect {
            from: "^/old/(.*)$".into(),
            to: "/new/$1".into(),
            status: 301,
        }],
        headers: HeaderRules {
            request: HeaderEdits {
                set: BTreeMap::from([("x-env".into(), "staging".into())]),
                remove: vec!["cookie".into()],
            },
            response: HeaderEdits {
                set: BTreeMap::new(),
                remove: vec!["server".into()],
            },
        },
        security_headers: true,
        cors: Some(Cors {
            origins: vec!["https://app.example".into()],
            methods: vec!["GET".into()],
            headers: vec![],
            expose_headers: vec!["x-total".into()],
            credentials: true,
            max_age_secs: 600,
        }),
        ip_allow: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
        ip_deny: vec!["10.9.0.0/16".parse().unwrap()],
        rate_limit: Some(RateLimit {
            per_second: 5,
            burst: 10,
        }),
        compression: vec![Encoding::Zstd, Encoding::Gzip],
        max_body_bytes: Some(1_048_576),
        timeouts: Timeouts {
            response_header_secs: Some(30),
            idle_secs: None,
        },
    }
}

/// The saved JSON of [`full_rules`].
pub(super) fn full_rules_saved() -> serde_json::Value {
    json!({
        "basic_auth": {"realm": "staff", "users": [{"username": "ann",
            "password_hash": "$2y$05$abcdefghijklmnopqrstuu0123456789abcdefghijklmnopqrstu"}]},
        "redirect_www": "to_www",
        "redirects": [{"from": "^/old/(.*)$", "to": "/new/$1", "status": 301}],
        "headers": {"request": {"set": {"x-env": "staging"}, "remove": ["cookie"]},
                    "response": {"remove": ["server"]}},
        "security_headers": true,
        "cors": {"origins": ["https://app.example"], "methods": ["GET"], "headers": [],
                 "expose_headers": ["x-total"], "credentials": true, "max_age_secs": 600},
        "ip_allow": ["10.0.0.0/8", "::1/128"],
        "ip_deny": ["10.9.0.0/16"],
        "rate_limit": {"per_second": 5, "burst": 10},
        "compression": ["zstd", "gzip"],
        "max_body_bytes": 1048576,
        "timeouts": {"response_header_secs": 30}
    })
}

/// The saved JSON of [`full_spec`]: the store's format. Change it only
/// with a new schema version and a migration.
fn full_spec_saved() -> serde_json::Value {
    json!({
        "name": "web",
        "project": "shop",
        "image": "berth/web",
        "source": {
            "url": "https://git.example/shop/web.git",
            "branch": "main",
            "tag": "v1",
            "commit": "abc123",
            "path": "app",
            "submodules": true,
            "auth": "token",
            "watch_paths": ["src/**", "!docs/**"],
            "tag_pattern": "v*"
        },
        "build": {
            "kind": "auto",
            "dockerfile": "Dockerfile.web",
            "target": "run",
            "args": {"NODE_ENV": "production"},
            "secrets": ["NPM_TOKEN"],
            "publish_dir": "dist",
            "spa": true,
            "plan": {
                "base_image": "node:22",
                "install": "npm ci",
                "build": "npm run build",
                "start": "node server.js"
            }
        },
        "port": 8080,
        "replicas": 3,
        "env": {"A": "1", "B": "2"},
        "command": ["node", "server.js"],
        "cpus": 0.5,
        "memory_mb": 256,
        "domains": [
            {"host": "shop.example", "path_prefix": "/", "strip_prefix": false,
             "certificate": "letsencrypt", "redirect_https": true, "hsts": true,
             "rules": full_rules_saved()},
            {"host": "*.shop.example", "path_prefix": "/api", "strip_prefix": true,
             "certificate": "custom", "redirect_https": false, "hsts": false}
        ],
        "health_check": {
            "type": "http", "path": "/healthz", "expected_status": 204,
            "interval_ms": 500, "timeout_ms": 2000, "retries": 3, "start_period_secs": 5
        },
        "batch_size": 1,
        "mounts": [
            {"type": "volume", "name": "data", "path": "/data", "read_only": false},
            {"type": "bind", "host_path": "/srv/shared", "path": "/shared", "read_only": true},
            {"type": "file", "path": "/etc/web.conf", "content": "x = 1\n", "mode": 292}
        ],
        "strategy": "recreate",
        "maintenance": {"enabled": true, "message": "back at 3"},
        "error_pages": {"503": "<h1>soon</h1>"}
    })
}

#[test]
fn a_full_spec_survives_its_saved_form() {
    let spec = full_spec();
    let saved = SavedSpec::from(&spec);
    assert_eq!(AppSpec::from(saved.clone()), spec);
    let json = serde_json::to_value(&saved).unwrap();
    let back: SavedSpec = serde_json::from_value(json).unwrap();
    assert_eq!(AppSpec::from(back), spec);
}

#[test]
fn the_saved_json_is_the_contract() {
    let saved = serde_json::to_value(SavedSpec::from(&full_spec())).unwrap();
    assert_eq!(saved, full_spec_saved());
    // Field order is kept too, so the bytes written do not move.
    let text = serde_json::to_string(&SavedSpec::from(&full_spec())).unwrap();
    let keys = [
        "\"name\"",
        "\"project\"",
        "\"image\"",
        "\"source\"",
        "\"build\"",
        "\"port\"",
        "\"replicas\"",
        "\"env\"",
        "\"command\"",
        "\"cpus\"",
        "\"memory_mb\"",
        "\"domains\"",
        "\"health_check\"",
        "\"batch_size\"",
        "\"mounts\"",
        "\"strategy\"",
        "\"maintenance\"",
        "\"error_pages\"",
    ];
    let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn a_schema_1_spec_reads_with_its_defaults() {
    let v1 = json!({"name":"web","project":null,"image":"nginx","port":80,"replicas":1,
        "env":{},"command":null,"cpus":null,"memory_mb":null,
        "domains":[{"host":"a.example","path_prefix":"/","strip_prefix":false}]});
    let spec = AppSpec::from(serde_json::from_value::<SavedSpec>(v1).unwrap());
    assert_eq!(spec.health_check, HealthCheck::default());
    assert_eq!(spec.strategy, Strategy::Rolling);
    assert!(spec.source.is_none() && spec.build.is_none() && spec.mounts.is_empty());
    assert_eq!(spec.domains[0].certificate, CertificateSource::None);
    assert!(!spec.domains[0].redirect_https && !spec.domains[0].hsts);
    assert!(spec.domains[0].rules.is_empty());
    assert!(spec.maintenance.is_off() && spec.error_pages.is_empty());
}

/// A spec without rules, maintenance or error pages saves none of their
/// fields: its bytes are those of schema 4.
#[test]
fn what_is_off_is_not_saved() {
    let mut spec = full_spec();
    spec.domains[0].rules = Default::default();
    spec.maintenance = Default::default();
    spec.error_pages.clear();
    let text = serde_json::to_string(&SavedSpec::from(&spec)).unwrap();
    for field in ["rules", "maintenance", "error_pages"] {
        assert!(!text.contains(&format!("\"{field}\"")), "{field}: {text}");
    }
}

#[test]
fn a_project_is_saved_by_name_and_description() {
    let spec = ProjectSpec {
        name: "shop".into(),
        description: "the shop".into(),
    };
    let saved = serde_json::to_value(SavedProject::from(&spec)).unwrap();
    assert_eq!(saved, json!({"name": "shop", "description": "the shop"}));
    let back: SavedProject = serde_json::from_value(saved).unwrap();
    assert_eq!(ProjectSpec::from(back), spec);
}

/// The API's names of the enums the store saves through its own forms:
/// today the same strings as their saved names (`saved/names.rs`). They
/// may part, but only on purpose: a change here is a change of the API.
#[test]
fn api_enums_keep_their_names() {
    use crate::store::{
        CertificateOrigin, DeploymentStatus, HookOutcome, Phase, Role, Scope, Trigger,
    };
    fn names<T: serde::Serialize>(values: &[T]) -> Vec<String> {
        let json = |v: &T| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        };
        values.iter().map(json).collect()
    }
    use DeploymentStatus as S;
    let statuses = [
        S::Queued,
        S::Running,
        S::Succeeded,
        S::Failed,
        S::Cancelled,
        S::RolledBack,
    ];
    assert_eq!(
        names(&statuses),
        [
            "queued",
            "running",
            "succeeded",
            "failed",
            "cancelled",
            "rolled_back"
        ]
    );
    use Trigger as T;
    let triggers = [T::Api, T::Restart, T::Rollback, T::Webhook];
    assert_eq!(names(&triggers), ["api", "restart", "rollback", "webhook"]);
    use Phase as P;
    let phases = [
        P::Queued,
        P::Running,
        P::Built,
        P::ImageReady,
        P::Healthy,
        P::Switched,
        P::Drained,
        P::Finished,
    ];
    assert_eq!(
        names(&phases),
        [
            "queued",
            "running",
            "built",
            "image_ready",
            "healthy",
            "switched",
            "drained",
            "finished"
        ]
    );
    let roles = [Role::Member, Role::Admin, Role::Owner];
    assert_eq!(names(&roles), ["member", "admin", "owner"]);
    let scopes = [Scope::Read, Scope::Deploy, Scope::Write, Scope::Admin];
    assert_eq!(names(&scopes), ["read", "deploy", "write", "admin"]);
    let outcomes = [
        HookOutcome::Deployed,
        HookOutcome::Ignored,
        HookOutcome::Rejected,
    ];
    assert_eq!(names(&outcomes), ["deployed", "ignored", "rejected"]);
    let origins = [CertificateOrigin::Acme, CertificateOrigin::Custom];
    assert_eq!(names(&origins), ["acme", "custom"]);
}
