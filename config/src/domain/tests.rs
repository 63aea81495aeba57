use super::*;

fn domain(host: &str, prefix: &str, certificate: CertificateSource) -> Domain {
    let tls = certificate != CertificateSource::None;
    Domain {
        host: host.into(),
        path_prefix: prefix.into(),
        strip_prefix: false,
        certificate,
        redirect_https: tls,
        hsts: false,
        rules: RouteRules::default(),
    }
}

fn input(host: &str) -> DomainInput {
    DomainInput {
        host: host.into(),
        ..DomainInput::default()
    }
}

fn validated(list: Vec<DomainInput>) -> Vec<Domain> {
    list.into_iter().map(|d| d.validate(&[]).unwrap()).collect()
}

#[test]
fn an_added_domain_keeps_the_others() {
    let domains = [domain("a.test", "/", CertificateSource::None)];
    let list = DomainEdit::Add(input("b.test")).apply(&domains).unwrap();
    let hosts: Vec<_> = validated(list).into_iter().map(|d| d.host).collect();
    assert_eq!(hosts, ["a.test", "b.test"]);
    let again = DomainEdit::Add(input("A.test")).apply(&domains);
    assert!(
        matches!(again, Err(DomainEditError::Exists(_))),
        "{again:?}"
    );
    let bad = DomainEdit::Add(input("a b")).apply(&domains);
    assert!(
        matches!(&bad, Err(DomainEditError::Invalid(e)) if e.field == "host"),
        "{bad:?}"
    );
}

#[test]
fn a_changed_domain_keeps_its_place_and_unchanged_fields() {
    let mut api = domain("a.test", "/api", CertificateSource::None);
    api.strip_prefix = true;
    let domains = [domain("a.test", "/", CertificateSource::None), api];
    let key = DomainKey::parse("A.TEST", Some("/api/")).unwrap();
    let patch = DomainPatch {
        certificate: Some(CertificateSource::Letsencrypt),
        ..Default::default()
    };
    let list = validated(DomainEdit::Change(key, patch).apply(&domains).unwrap());
    assert_eq!(list[0], domains[0]);
    assert_eq!(list[1].path_prefix, "/api");
    assert!(list[1].strip_prefix, "kept");
    assert!(
        list[1].redirect_https,
        "a new certificate redirects by default"
    );
    // Dropping the certificate drops its redirect and HSTS defaults.
    let mut tls = domain("s.test", "/", CertificateSource::Letsencrypt);
    tls.hsts = true;
    let key = DomainKey::parse("s.test", None).unwrap();
    let patch = DomainPatch {
        certificate: Some(CertificateSource::None),
        ..Default::default()
    };
    let list = validated(DomainEdit::Change(key, patch).apply(&[tls]).unwrap());
    assert!(!list[0].redirect_https && !list[0].hsts);
    // Moving onto another domain's key is refused.
    let key = DomainKey::parse("a.test", Some("/api")).unwrap();
    let patch = DomainPatch {
        path_prefix: Some("/".into()),
        ..Default::default()
    };
    assert!(matches!(
        DomainEdit::Change(key, patch).apply(&domains),
        Err(DomainEditError::Exists(_))
    ));
}

#[test]
fn removing_or_changing_an_unknown_domain_says_so() {
    let domains = [
        domain("a.test", "/", CertificateSource::None),
        domain("b.test", "/", CertificateSource::None),
    ];
    let key = DomainKey::parse("a.test", None).unwrap();
    let list = validated(DomainEdit::Remove(key).apply(&domains).unwrap());
    assert_eq!(list, [domains[1].clone()]);
    let missing = DomainKey::parse("c.test", Some("/x")).unwrap();
    let err = DomainEdit::Remove(missing.clone())
        .apply(&domains)
        .unwrap_err();
    assert_eq!(err, DomainEditError::NotFound(missing.clone()));
    assert!(err.to_string().contains("c.test/x"), "{err}");
    let err = DomainEdit::Change(missing, DomainPatch::default())
        .apply(&domains)
        .unwrap_err();
    assert!(matches!(err, DomainEditError::NotFound(_)));
    assert!(DomainKey::parse("a.test", Some("api")).is_err());
}

#[test]
fn every_domain_round_trips_through_its_input() {
    for certificate in [
        CertificateSource::None,
        CertificateSource::Letsencrypt,
        CertificateSource::Custom,
    ] {
        let d = domain("x.test", "/p", certificate);
        assert_eq!(DomainInput::from(&d).validate(&[]).unwrap(), d);
    }
}

fn patch(json: &str) -> DomainPatch {
    serde_json::from_str(json).unwrap()
}

/// `a.test` with basic auth for ann and security headers and CORS on.
fn guarded() -> Domain {
    let input: DomainInput = serde_json::from_str(
        r#"{"host":"a.test","basic_auth":{"users":[{"username":"ann","password":"pw"}]},
            "security_headers":true,"cors":{"origins":["https://b.test"]},"ip_deny":["10.0.0.0/8"]}"#,
    )
    .unwrap();
    input.validate(&[]).unwrap()
}

#[test]
fn a_patch_replaces_the_rules_it_gives_and_keeps_the_others() {
    let old = guarded();
    let hash = old.rules.basic_auth.as_ref().unwrap().users[0]
        .password_hash
        .clone();
    let key = DomainKey::parse("a.test", None).unwrap();
    // A new rule, one replaced, one turned off by null, one by false;
    // the host moves, and ann, named alone, keeps her password.
    let edit = DomainEdit::Change(
        key,
        patch(
            r#"{"host":"c.test","rate_limit":{"per_second":5,"burst":10},
                "ip_deny":["192.0.2.0/24"],"cors":null,"security_headers":false,
                "basic_auth":{"realm":"staff","users":[{"username":"ann"},{"username":"bob","password":"pw2"}]}}"#,
        ),
    );
    let list = validated(edit.apply(std::slice::from_ref(&old)).unwrap());
    let rules = &list[0].rules;
    assert_eq!(list[0].host, "c.test");
    assert_eq!(rules.rate_limit.unwrap().burst, 10);
    assert_eq!(rules.ip_deny[0].to_string(), "192.0.2.0/24");
    assert!(rules.cors.is_none() && !rules.security_headers);
    let auth = rules.basic_auth.as_ref().unwrap();
    assert_eq!(auth.realm, "staff");
    assert_eq!(auth.users[0].password_hash, hash, "ann keeps her hash");
    assert!(auth.users[1].password_hash.starts_with("$argon2id$"));
    // An empty patch keeps every rule.
    let key = DomainKey::parse("a.test", None).unwrap();
    let same = DomainEdit::Change(key, patch("{}"))
        .apply(std::slice::from_ref(&old))
        .unwrap();
    assert_eq!(validated(same), std::slice::from_ref(&old));
    // null removes every kind of rule.
    let key = DomainKey::parse("a.test", None).unwrap();
    let off = patch(
        r#"{"basic_auth":null,"redirect_www":null,"redirects":null,"headers":null,
            "security_headers":null,"cors":null,"ip_allow":null,"ip_deny":null,
            "rate_limit":null,"compression":null,"max_body_bytes":null,"timeouts":null}"#,
    );
    assert_eq!(off.cors, Some(None));
    let list = validated(DomainEdit::Change(key, off).apply(&[old]).unwrap());
    assert!(list[0].rules.is_empty(), "{:?}", list[0].rules);
}

#[test]
fn a_new_user_without_a_password_is_refused_naming_the_field() {
    let key = DomainKey::parse("a.test", None).unwrap();
    let edit = DomainEdit::Change(
        key,
        patch(r#"{"basic_auth":{"users":[{"username":"eve"}]}}"#),
    );
    let list = edit.apply(&[guarded()]).unwrap();
    let err = list.into_iter().next().unwrap().validate(&[]).unwrap_err();
    assert_eq!(err.field, "basic_auth.users[0].password");
}

#[test]
fn a_domain_shows_its_rules_flat_and_never_a_hash() {
    let d = guarded();
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["security_headers"], true, "{json}");
    assert_eq!(json["basic_auth"]["users"][0]["username"], "ann");
    assert_eq!(json["ip_deny"][0], "10.0.0.0/8");
    let text = json.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
    // A domain without rules shows the fields it always had, only.
    let plain = serde_json::to_value(domain("x.test", "/", CertificateSource::None)).unwrap();
    assert_eq!(plain.as_object().unwrap().len(), 6, "{plain}");
    // Given whole again (the previous domain lending ann's hash), the
    // rules come back the same.
    let again: DomainInput = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.validate(std::slice::from_ref(&d)).unwrap(), d);
}
