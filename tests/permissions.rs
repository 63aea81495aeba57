//! API keys and the one permission check, against the real binary: every
//! operation of the OpenAPI document is tried with a key of each scope,
//! and each scope may do exactly what the document says it needs (so a
//! new route without a permission fails here); keys limited to projects
//! see nothing else; users are managed by admins; every change is audited.

mod support;

use serde_json::{json, Value};
use support::Berth;

const SCOPES: [&str; 4] = ["read", "deploy", "write", "admin"];

async fn call(berth: &Berth, key: &str, method: &str, path: &str) -> u16 {
    let body =
        matches!(method, "POST" | "PATCH" | "PUT").then(|| json!({"__probe": 1}).to_string());
    berth.api_raw(method, path, body, Some(key)).await.0
}

async fn new_key(berth: &Berth, body: Value) -> (String, String) {
    let (status, made) = berth.api("POST", "/api-keys", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("berth_key_"), "{made}");
    (made["id"].as_str().unwrap().to_string(), key)
}

/// The scope an operation documents it needs (from its 403 answer).
fn needed_scope(op: &Value) -> Option<usize> {
    let text = op["responses"]["403"]["description"].as_str()?;
    let scope = text.split('\'').nth(1)?;
    SCOPES.iter().position(|s| *s == scope)
}

#[tokio::test]
async fn each_key_scope_allows_exactly_its_actions_on_every_route() {
    let berth = Berth::start().await;
    for p in ["p", "q"] {
        let (status, body) = berth
            .api("POST", "/projects", Some(json!({"name": p})))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    berth
        .create_app(
            json!({"name": "a", "project": "p", "image": "berth-test/none:1", "port": 80,
            "domains": [{"host": "a.test"}]}),
        )
        .await;
    berth
        .create_app(json!({"name": "b", "project": "q", "image": "berth-test/none:1", "port": 80}))
        .await;
    let (_, deployment) = berth.api("POST", "/apps/a/deployments", None).await;
    let deployment = deployment["id"].as_str().unwrap().to_string();
    let (status, member) = berth
        .api(
            "POST",
            "/users",
            Some(json!({"username": "mia", "password": "a long passphrase",
                "grants": [{"project": "p", "scope": "deploy"}]})),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    assert!(member.get("password_hash").is_none() && member.get("password").is_none());
    let member = member["id"].as_str().unwrap().to_string();
    let mut keys = Vec::new();
    for scope in SCOPES {
        keys.push(new_key(&berth, json!({"name": scope, "scopes": [scope]})).await);
    }
    let (status, doc) = berth.api("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);

    let mut tried = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let Some(need) = needed_scope(op) else {
                continue;
            };
            // Real targets for the refusals, missing ones for the rest (so
            // an allowed DELETE removes nothing the next check needs).
            let path = |real: bool| {
                let id = if !real {
                    "zz-missing".to_string()
                } else if template.starts_with("/api/v1/deployments") {
                    deployment.clone()
                } else if template.starts_with("/api/v1/users") {
                    member.clone()
                } else if template.starts_with("/api/v1/api-keys") {
                    keys[0].0.clone()
                } else {
                    "zz-missing".to_string()
                };
                let name = match (real, template.starts_with("/api/v1/projects")) {
                    (false, _) => "zz-missing",
                    (true, true) => "p",
                    (true, false) => "a",
                };
                template
                    .trim_start_matches("/api/v1")
                    .replace("{name}", name)
                    .replace("{id}", &id)
                    .replace("{host}", "a.test")
            };
            for (rank, (_, key)) in keys.iter().enumerate() {
                tried += 1;
                if rank < need {
                    let status = call(&berth, key, &method, &path(true)).await;
                    assert_eq!(
                        status, 403,
                        "{method} {template} with a {} key",
                        SCOPES[rank]
                    );
                } else {
                    let status = call(&berth, key, &method, &path(false)).await;
                    assert!(
                        status != 401 && status != 403,
                        "{method} {template} with a {} key got {status}",
                        SCOPES[rank]
                    );
                }
            }
        }
    }
    assert!(tried >= 140, "only {tried} calls");
    // The refused calls changed nothing.
    let (status, app) = berth.api("GET", "/apps/a", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["domains"][0]["host"], "a.test");

    // A key's 403 names the scope it needs.
    let (status, body) = berth
        .api_raw("POST", "/apps/a/stop", None, Some(&keys[0].1))
        .await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'deploy'"),
        "{body}"
    );
}

#[tokio::test]
async fn keys_limited_to_projects_see_nothing_else_and_stop_at_once() {
    let berth = Berth::start().await;
    for p in ["p", "q"] {
        berth
            .api("POST", "/projects", Some(json!({"name": p})))
            .await;
    }
    for (app, project) in [("a", Some("p")), ("b", Some("q")), ("c", None)] {
        berth
            .create_app(
                json!({"name": app, "project": project, "image": "berth-test/none:1", "port": 80}),
            )
            .await;
    }
    let (id, key) = new_key(
        &berth,
        json!({"name": "ci", "scopes": ["write"], "projects": ["q"]}),
    )
    .await;
    let as_key = |method: &'static str, path: &'static str, body: Option<Value>| {
        let key = key.clone();
        let berth = &berth;
        async move {
            berth
                .api_raw(method, path, body.map(|b| b.to_string()), Some(&key))
                .await
        }
    };
    let (status, apps) = as_key("GET", "/apps", None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("b")], "{apps}");
    let (_, projects) = as_key("GET", "/projects", None).await;
    assert_eq!(projects.as_array().unwrap().len(), 1, "{projects}");
    assert_eq!(as_key("GET", "/apps/a", None).await.0, 404);
    assert_eq!(as_key("GET", "/apps/c", None).await.0, 404);
    assert_eq!(as_key("POST", "/apps/a/stop", None).await.0, 404);
    assert_eq!(as_key("DELETE", "/apps/a", None).await.0, 404);
    assert_eq!(as_key("GET", "/projects/p", None).await.0, 404);
    assert_eq!(
        as_key("PATCH", "/apps/b", Some(json!({"project": "p"})))
            .await
            .0,
        400,
        "an app cannot be moved out of the key's projects"
    );
    assert_eq!(
        as_key(
            "POST",
            "/apps",
            Some(json!({"name": "d", "image": "x:1", "port": 80}))
        )
        .await
        .0,
        400,
        "nor made outside them"
    );
    let (status, made) = as_key(
        "POST",
        "/apps",
        Some(json!({"name": "d", "project": "q", "image": "x:1", "port": 80})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(as_key("POST", "/apps/b/stop", None).await.0, 200);
    // Keys are managed with the admin scope only; a write key cannot.
    assert_eq!(as_key("GET", "/api-keys", None).await.0, 403);
    assert_eq!(
        as_key(
            "POST",
            "/api-keys",
            Some(json!({"name": "x", "scopes": ["read"]}))
        )
        .await
        .0,
        403
    );

    // Listed without the key itself; deleted, it stops at once.
    let (_, list) = berth.api("GET", "/api-keys", None).await;
    let listed = list.to_string();
    assert!(listed.contains(&id) && !listed.contains(&key), "{list}");
    let (status, _) = berth.api("DELETE", &format!("/api-keys/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(as_key("GET", "/apps", None).await.0, 401);

    // The audit log names who did what.
    let (status, audit) = berth.api("GET", "/audit?limit=50", None).await;
    assert_eq!(status, 200);
    let entries = audit.as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["actor"] == format!("key:{id}")
            && e["action"] == "POST /api/v1/apps/{name}/stop"
            && e["target"] == "/api/v1/apps/b/stop"
            && e["status"] == 200
            && e["address"] == "127.0.0.1"),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["actor"] == "admin-token"),
        "{audit}"
    );
}

#[tokio::test]
async fn key_and_user_input_is_checked_naming_the_field() {
    let berth = Berth::start().await;
    berth
        .api("POST", "/projects", Some(json!({"name": "p"})))
        .await;
    let cases: &[(&str, Value, u16, &str)] = &[
        (
            "/api-keys",
            json!({"name": "", "scopes": ["read"]}),
            400,
            "name",
        ),
        (
            "/api-keys",
            json!({"name": "k", "scopes": []}),
            400,
            "scopes",
        ),
        (
            "/api-keys",
            json!({"name": "k", "scopes": ["root"]}),
            400,
            "scopes[0]",
        ),
        (
            "/api-keys",
            json!({"name": "k", "scopes": ["read"], "projects": ["nope"]}),
            400,
            "projects[0]",
        ),
        (
            "/api-keys",
            json!({"name": "k", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
            400,
            "expires_at",
        ),
        (
            "/users",
            json!({"username": "a b", "password": "a long passphrase"}),
            400,
            "username",
        ),
        (
            "/users",
            json!({"username": "ann", "password": "short"}),
            400,
            "password",
        ),
        (
            "/users",
            json!({"username": "ann", "password": "a long passphrase", "role": "admin",
            "grants": [{"project": "p", "scope": "read"}]}),
            400,
            "grants",
        ),
        (
            "/users",
            json!({"username": "ann", "password": "a long passphrase",
            "grants": [{"project": "p", "scope": "admin"}]}),
            400,
            "grants[0].scope",
        ),
        (
            "/users",
            json!({"username": "ann", "password": "a long passphrase",
            "grants": [{"project": "nope", "scope": "read"}]}),
            400,
            "grants[0].project",
        ),
    ];
    for (path, body, want, field) in cases {
        let (status, err) = berth.api("POST", path, Some(body.clone())).await;
        assert_eq!(status, *want, "{path} {body}: {err}");
        assert_eq!(err["error"]["field"], *field, "{path} {body}: {err}");
    }
    let (status, ann) = berth
        .api(
            "POST",
            "/users",
            Some(json!({"username": "Ann", "password": "a long passphrase", "role": "owner"})),
        )
        .await;
    assert_eq!(status, 201, "{ann}");
    assert_eq!(ann["username"], "ann");
    let (status, _) = berth
        .api(
            "POST",
            "/users",
            Some(json!({"username": "ann", "password": "a long passphrase"})),
        )
        .await;
    assert_eq!(status, 409);
    let id = ann["id"].as_str().unwrap();
    let (status, body) = berth.api("DELETE", &format!("/users/{id}"), None).await;
    assert_eq!(status, 409, "the last owner stays: {body}");
    let (status, body) = berth
        .api(
            "PATCH",
            &format!("/users/{id}"),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
}
