use super::*;

fn rules(json: &str) -> RulesInput {
    // The rule fields as the API takes them, through the domain's input.
    fn de<T: serde::de::DeserializeOwned>(v: &serde_json::Value, k: &str) -> Option<T> {
        v.get(k)
            .cloned()
            .map(|x| serde_json::from_value(x).unwrap())
    }
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    RulesInput {
        basic_auth: de(&v, "basic_auth"),
        redirect_www: de(&v, "redirect_www"),
        redirects: de(&v, "redirects"),
        headers: de(&v, "headers"),
        security_headers: de(&v, "security_headers"),
        cors: de(&v, "cors"),
        ip_allow: de(&v, "ip_allow"),
        ip_deny: de(&v, "ip_deny"),
        rate_limit: de(&v, "rate_limit"),
        compression: de(&v, "compression"),
        max_body_bytes: de(&v, "max_body_bytes"),
        timeouts: de(&v, "timeouts"),
    }
}

fn refused(host: &str, json: &str) -> FieldError {
    rules(json).validate(host, None).unwrap_err()
}

#[test]
fn no_rules_validate_to_the_empty_set() {
    let r = rules("{}").validate("a.com", None).unwrap();
    assert!(r.is_empty());
    assert_eq!(serde_json::to_string(&r).unwrap(), "{}");
}

#[test]
fn invalid_rules_are_refused_naming_the_field() {
    let cases = [
        (
            "a.com",
            r#"{"redirects":[{"from":"(","to":"/x"}]}"#,
            "redirects[0].from",
        ),
        (
            "a.com",
            r#"{"redirects":[{"from":"^/a(.*)$","to":"/b/$2"}]}"#,
            "redirects[0].to",
        ),
        (
            "a.com",
            r#"{"redirects":[{"from":"^/a","to":"/b","status":303}]}"#,
            "redirects[0].status",
        ),
        (
            "a.com",
            r#"{"redirects":[{"from":"^/old","to":"/old/new"}]}"#,
            "redirects[0].to",
        ),
        (
            "a.com",
            r#"{"redirects":[{"from":"/","to":"https://a.com/x"}]}"#,
            "redirects[0].to",
        ),
        (
            "a.com",
            r#"{"redirects":[{"from":"^/a","to":"ftp://x"}]}"#,
            "redirects[0].to",
        ),
        ("a.com", r#"{"ip_allow":["10.0.0.0/33"]}"#, "ip_allow[0]"),
        ("a.com", r#"{"ip_deny":["127.0.0.1","nope"]}"#, "ip_deny[1]"),
        (
            "a.com",
            r#"{"cors":{"origins":["*"],"credentials":true}}"#,
            "cors.credentials",
        ),
        (
            "a.com",
            r#"{"cors":{"origins":["app.example.com"]}}"#,
            "cors.origins[0]",
        ),
        (
            "a.com",
            r#"{"compression":["gzip","lz4"]}"#,
            "compression[1]",
        ),
        ("a.com", r#"{"compression":[]}"#, "compression"),
        (
            "a.com",
            r#"{"rate_limit":{"per_second":0,"burst":5}}"#,
            "rate_limit.per_second",
        ),
        ("a.com", r#"{"max_body_bytes":0}"#, "max_body_bytes"),
        (
            "a.com",
            r#"{"timeouts":{"idle_secs":0}}"#,
            "timeouts.idle_secs",
        ),
        (
            "a.com",
            r#"{"headers":{"request":{"set":{"X-Forwarded-For":"1.2.3.4"}}}}"#,
            "headers.request.set.X-Forwarded-For",
        ),
        (
            "a.com",
            r#"{"headers":{"response":{"remove":["Connection"]}}}"#,
            "headers.response.remove[0]",
        ),
        (
            "a.com",
            r#"{"headers":{"response":{"set":{"x-a":"b\nc"}}}}"#,
            "headers.response.set.x-a",
        ),
        ("a.com", r#"{"redirect_www":"to_apex"}"#, "redirect_www"),
        ("www.a.com", r#"{"redirect_www":"to_www"}"#, "redirect_www"),
        (
            "a.com",
            r#"{"basic_auth":{"users":[]}}"#,
            "basic_auth.users",
        ),
        (
            "a.com",
            r#"{"basic_auth":{"users":[{"username":"u"}]}}"#,
            "basic_auth.users[0].password",
        ),
        (
            "a.com",
            r#"{"basic_auth":{"users":[{"username":"a:b","password":"p"}]}}"#,
            "basic_auth.users[0].username",
        ),
        (
            "a.com",
            r#"{"basic_auth":{"users":[{"username":"u","password_hash":"plain"}]}}"#,
            "basic_auth.users[0].password_hash",
        ),
    ];
    for (host, json, field) in cases {
        let e = refused(host, json);
        assert_eq!(e.field, field, "{json}: {e}");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn a_plain_password_is_hashed_and_a_user_named_alone_keeps_it() {
    let first = rules(r#"{"basic_auth":{"users":[{"username":"ann","password":"pw1"}]}}"#)
        .validate("a.com", None)
        .unwrap();
    let auth = first.basic_auth.clone().unwrap();
    assert_eq!(auth.realm, "berth");
    assert!(auth.users[0].password_hash.starts_with("$argon2id$"));
    assert!(
        !serde_json::to_string(&first).unwrap().contains("argon2"),
        "hash never shown"
    );
    let again = rules(r#"{"basic_auth":{"realm":"staff","users":[{"username":"ann"}]}}"#)
        .validate("a.com", Some(&first))
        .unwrap();
    assert_eq!(again.basic_auth.unwrap().users, auth.users);
    // The input made back from the rules validates to them again.
    let back = RulesInput::from(&first).validate("a.com", None).unwrap();
    assert_eq!(back, first);
}

#[test]
fn every_rule_round_trips_through_its_input() {
    let all = rules(
        r#"{"redirect_www":"to_apex","redirects":[{"from":"^/old/(.*)$","to":"/new/$1","status":301}],
            "headers":{"request":{"set":{"X-Env":"staging"},"remove":["Cookie"]},"response":{"remove":["Server"]}},
            "security_headers":true,"cors":{"origins":["https://App.example.com/"],"credentials":true},
            "ip_allow":["10.0.0.0/8","::1"],"ip_deny":["10.9.0.0/16"],"rate_limit":{"per_second":5,"burst":10},
            "compression":true,"max_body_bytes":1048576,"timeouts":{"response_header_secs":30}}"#,
    )
    .validate("www.a.com", None)
    .unwrap();
    assert_eq!(
        all.compression,
        [Encoding::Zstd, Encoding::Br, Encoding::Gzip]
    );
    assert_eq!(
        all.cors.as_ref().unwrap().origins,
        ["https://app.example.com"]
    );
    assert_eq!(all.headers.request.set["x-env"], "staging");
    assert_eq!(all.ip_allow[1].to_string(), "::1/128");
    let back = RulesInput::from(&all).validate("www.a.com", None).unwrap();
    assert_eq!(back, all);
}

#[test]
fn capture_references_are_read_from_the_target() {
    assert_eq!(capture_refs("/a/$1/$2?x=$$3").collect::<Vec<_>>(), [1, 2]);
    assert_eq!(capture_refs("$").count(), 0);
}
