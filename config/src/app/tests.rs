use super::*;

fn input(json: &str) -> AppInput {
    serde_json::from_str(json).unwrap()
}

#[test]
fn minimal_app_gets_defaults() {
    let spec = input(r#"{"name":"web","image":"nginx","port":80}"#)
        .validate()
        .unwrap();
    assert_eq!(spec.replicas, 1);
    assert!(spec.domains.is_empty());
    assert_eq!(spec.port, 80);
}

#[test]
fn each_bad_field_is_named() {
    let cases = [
        (r#"{"name":"Web","image":"nginx","port":80}"#, "name"),
        (r#"{"name":"web","image":"ng inx","port":80}"#, "image"),
        (r#"{"name":"web","image":"nginx","port":70000}"#, "port"),
        (r#"{"name":"web","image":"nginx","port":0}"#, "port"),
        (
            r#"{"name":"web","image":"nginx","port":80,"replicas":0}"#,
            "replicas",
        ),
        (
            r#"{"name":"web","image":"nginx","port":80,"cpus":-1}"#,
            "cpus",
        ),
        (
            r#"{"name":"web","image":"nginx","port":80,"memory_mb":1}"#,
            "memory_mb",
        ),
        (
            r#"{"name":"web","image":"nginx","port":80,"env":{"1A":"x"}}"#,
            "env.1A",
        ),
        (
            r#"{"name":"web","image":"nginx","port":80,"command":[]}"#,
            "command",
        ),
        (
            r#"{"name":"web","image":"nginx","port":80,"domains":[{"host":"a..b"}]}"#,
            "domains[0].host",
        ),
        (
            r#"{"name":"web","image":"nginx","port":80,"domains":[{"host":"a.b","path_prefix":"x"}]}"#,
            "domains[0].path_prefix",
        ),
        (
            r#"{"name":"web","image":"nginx","port":80,"domains":[{"host":"a.b"},{"host":"A.b"}]}"#,
            "domains[1]",
        ),
    ];
    for (json, field) in cases {
        let err = input(json).validate().unwrap_err();
        assert_eq!(err.field, field, "{json}: {err}");
    }
}

#[test]
fn unknown_fields_are_refused() {
    let err =
        serde_json::from_str::<AppInput>(r#"{"name":"web","image":"nginx","port":80,"replica":2}"#)
            .unwrap_err();
    assert!(err.to_string().contains("replica"), "{err}");
}

#[test]
fn patch_merges_env_and_revalidates() {
    let spec = input(r#"{"name":"web","image":"nginx","port":80,"env":{"A":"1","B":"2"}}"#)
        .validate()
        .unwrap();
    let patch: AppPatch =
        serde_json::from_str(r#"{"env":{"A":null,"C":"3"},"replicas":3}"#).unwrap();
    let next = spec.patched(patch).unwrap();
    assert_eq!(next.env.keys().collect::<Vec<_>>(), ["B", "C"]);
    assert_eq!(next.replicas, 3);
    let bad: AppPatch = serde_json::from_str(r#"{"port":-1}"#).unwrap();
    assert_eq!(spec.patched(bad).unwrap_err().field, "port");
}

#[test]
fn maintenance_and_error_pages_are_set_kept_and_checked() {
    let spec = input(r#"{"name":"web","image":"nginx","port":80}"#)
        .validate()
        .unwrap();
    assert!(spec.maintenance.is_off() && spec.error_pages.is_empty());
    let patch: AppPatch = serde_json::from_str(
        r#"{"maintenance":{"enabled":true,"message":"back at 3"},"error_pages":{"503":"<h1>soon</h1>"}}"#,
    )
    .unwrap();
    let on = spec.patched(patch).unwrap();
    assert!(on.maintenance.enabled);
    assert_eq!(on.error_pages[&503], "<h1>soon</h1>");
    // Another change keeps them; an empty map removes the pages.
    let kept = on.patched(AppPatch::default()).unwrap();
    assert_eq!(
        (&kept.maintenance, &kept.error_pages),
        (&on.maintenance, &on.error_pages)
    );
    let cleared: AppPatch = serde_json::from_str(r#"{"error_pages":{}}"#).unwrap();
    assert!(on.patched(cleared).unwrap().error_pages.is_empty());
    let cases = [
        (r#"{"error_pages":{"404":"x"}}"#, "error_pages.404"),
        (r#"{"error_pages":{"502":""}}"#, "error_pages.502"),
    ];
    for (json, field) in cases {
        let bad: AppPatch = serde_json::from_str(json).unwrap();
        assert_eq!(spec.patched(bad).unwrap_err().field, field, "{json}");
    }
    let long = format!(
        r#"{{"maintenance":{{"enabled":true,"message":"{}"}}}}"#,
        "x".repeat(2001)
    );
    let bad: AppPatch = serde_json::from_str(&long).unwrap();
    assert_eq!(spec.patched(bad).unwrap_err().field, "maintenance.message");
}

#[test]
fn a_domain_listed_again_keeps_its_basic_auth_users() {
    let spec = input(
        r#"{"name":"web","image":"nginx","port":80,"domains":[{"host":"a.test",
            "basic_auth":{"users":[{"username":"ann","password":"pw"}]}}]}"#,
    )
    .validate()
    .unwrap();
    let hash = &spec.domains[0].rules.basic_auth.as_ref().unwrap().users[0].password_hash;
    let patch: AppPatch = serde_json::from_str(
        r#"{"domains":[{"host":"A.test","basic_auth":{"users":[{"username":"ann"}]}},{"host":"b.test"}]}"#,
    )
    .unwrap();
    let next = spec.patched(patch).unwrap();
    let users = &next.domains[0].rules.basic_auth.as_ref().unwrap().users;
    assert_eq!(&users[0].password_hash, hash);
    // A rule error names the domain and the rule's field.
    let bad: AppPatch = serde_json::from_str(
        r#"{"domains":[{"host":"a.test","cors":{"origins":["*"],"credentials":true}}]}"#,
    )
    .unwrap();
    assert_eq!(
        spec.patched(bad).unwrap_err().field,
        "domains[0].cors.credentials"
    );
}
