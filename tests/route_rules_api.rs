//! A domain's route rules and an app's maintenance mode and error pages
//! through the admin API of the real binary: every rule set when the app
//! is made and by a domain's PATCH, read back (no password and no hash is
//! ever shown), replaced one at a time, turned off with `null`; invalid
//! rules refused with 400 naming the field; maintenance and error pages
//! set by the app's PATCH.

mod support;

use serde_json::{json, Value};
use support::Berth;

/// `htpasswd -nbB -C 5 bob s3cret`.
const BOB_BCRYPT: &str = "$2y$05$deU0K7Z/FbeMEAKP8CZLnODnJZxTVoRNkfF3YJRizhkFNpxPZ6E8y";

/// Every rule of a domain, as a user sends them.
fn every_rule() -> Value {
    json!({
        "basic_auth": {"realm": "staging", "users": [
            {"username": "ann", "password": "correct horse"},
            {"username": "bob", "password_hash": BOB_BCRYPT}
        ]},
        "redirect_www": "to_apex",
        "redirects": [{"from": "^/old/(.*)$", "to": "/new/$1", "status": 301}],
        "headers": {"request": {"set": {"X-Env": "staging"}, "remove": ["Cookie"]},
                    "response": {"set": {"X-Frame": "a"}, "remove": ["Server"]}},
        "security_headers": true,
        "cors": {"origins": ["https://App.example.com"], "methods": ["GET", "post"],
                 "expose_headers": ["X-Total"], "credentials": true, "max_age_secs": 60},
        "ip_allow": ["127.0.0.0/8", "::1"],
        "ip_deny": ["10.9.0.0/16"],
        "rate_limit": {"per_second": 50, "burst": 100},
        "compression": ["gzip", "zstd"],
        "max_body_bytes": 1048576,
        "timeouts": {"response_header_secs": 30, "idle_secs": 60}
    })
}

/// `base` with the fields of `more` added.
fn with(mut base: Value, more: Value) -> Value {
    let map = base.as_object_mut().unwrap();
    for (k, v) in more.as_object().unwrap() {
        map.insert(k.clone(), v.clone());
    }
    base
}

/// The rules of `every_rule` as the API shows them back.
fn assert_every_rule(d: &Value) {
    assert_eq!(d["basic_auth"]["realm"], "staging", "{d}");
    assert_eq!(
        d["basic_auth"]["users"],
        json!([{"username": "ann"}, {"username": "bob"}]),
        "{d}"
    );
    assert_eq!(d["redirect_www"], "to_apex");
    assert_eq!(
        d["redirects"],
        json!([{"from": "^/old/(.*)$", "to": "/new/$1", "status": 301}])
    );
    assert_eq!(
        d["headers"],
        json!({"request": {"set": {"x-env": "staging"}, "remove": ["cookie"]},
               "response": {"set": {"x-frame": "a"}, "remove": ["server"]}})
    );
    assert_eq!(d["security_headers"], true);
    assert_eq!(
        d["cors"],
        json!({"origins": ["https://app.example.com"], "methods": ["GET", "POST"],
               "headers": [], "expose_headers": ["x-total"], "credentials": true,
               "max_age_secs": 60})
    );
    assert_eq!(d["ip_allow"], json!(["127.0.0.0/8", "::1/128"]));
    assert_eq!(d["ip_deny"], json!(["10.9.0.0/16"]));
    assert_eq!(d["rate_limit"], json!({"per_second": 50, "burst": 100}));
    assert_eq!(d["compression"], json!(["gzip", "zstd"]));
    assert_eq!(d["max_body_bytes"], 1048576);
    assert_eq!(
        d["timeouts"],
        json!({"response_header_secs": 30, "idle_secs": 60})
    );
}

/// No answer of the API shows a password or a hash.
fn assert_no_secret(v: &Value) {
    let text = v.to_string();
    for secret in ["$argon2", "$2y$", "password", "correct horse"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
}

/// The domain `host` of app `app` as the API lists it.
async fn domain(berth: &Berth, app: &str, host: &str) -> Value {
    let (status, list) = berth
        .api("GET", &format!("/apps/{app}/domains"), None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_no_secret(&list);
    let found = list.as_array().unwrap().iter().find(|d| d["host"] == host);
    found
        .cloned()
        .unwrap_or_else(|| panic!("{host} missing: {list}"))
}

#[tokio::test]
async fn every_rule_is_set_read_back_changed_and_turned_off() {
    let berth = Berth::start().await;
    // Every rule, when the app is made.
    let domain_in = with(json!({"host": "www.shop.test"}), every_rule());
    let (status, app) = berth
        .api(
            "POST",
            "/apps",
            Some(
                json!({"name": "shop", "image": "berth-test/none:1", "port": 80,
                "domains": [domain_in, {"host": "plain.test"}]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    assert_no_secret(&app);
    assert_every_rule(&app["domains"][0]);
    let (_, read) = berth.api("GET", "/apps/shop", None).await;
    assert_no_secret(&read);
    assert_every_rule(&read["domains"][0]);
    // A domain without rules shows none of their fields.
    let plain = domain(&berth, "shop", "plain.test").await;
    assert_eq!(plain.as_object().unwrap().len(), 6, "{plain}");

    // Every rule through a domain's PATCH, on the domain that had none.
    let (status, patched) = berth
        .api(
            "PATCH",
            "/apps/shop/domains/plain.test",
            Some(with(every_rule(), json!({"redirect_www": "to_www"}))),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_no_secret(&patched);
    assert_eq!(patched["redirect_www"], "to_www");
    assert_every_rule(&with(patched, json!({"redirect_www": "to_apex"})));

    // One rule replaced, two turned off by null, one by false; ann named
    // alone keeps her password, bob goes. The others stay.
    let change = json!({
        "basic_auth": {"realm": "staff", "users": [{"username": "ann"}]},
        "cors": null, "redirect_www": null, "security_headers": false,
        "rate_limit": {"per_second": 5, "burst": 10}
    });
    let (status, changed) = berth
        .api("PATCH", "/apps/shop/domains/www.shop.test", Some(change))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_no_secret(&changed);
    assert_eq!(
        changed["basic_auth"],
        json!({"realm": "staff", "users": [{"username": "ann"}]})
    );
    for off in ["cors", "redirect_www", "security_headers"] {
        assert!(changed.get(off).is_none(), "{off}: {changed}");
    }
    assert_eq!(changed["rate_limit"], json!({"per_second": 5, "burst": 10}));
    assert_eq!(changed["redirects"][0]["to"], "/new/$1", "kept: {changed}");
    assert_eq!(changed["max_body_bytes"], 1048576, "kept: {changed}");
    assert_eq!(domain(&berth, "shop", "www.shop.test").await, changed);
    // A new user without a password is refused, naming the field.
    let (status, err) = berth
        .api(
            "PATCH",
            "/apps/shop/domains/www.shop.test",
            Some(json!({"basic_auth": {"users": [{"username": "eve"}]}})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "basic_auth.users[0].password");

    // null turns every rule off.
    let off: serde_json::Map<String, Value> = every_rule()
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), Value::Null))
        .collect();
    let (status, bare) = berth
        .api(
            "PATCH",
            "/apps/shop/domains/www.shop.test",
            Some(Value::Object(off)),
        )
        .await;
    assert_eq!(status, 200, "{bare}");
    assert_eq!(bare.as_object().unwrap().len(), 6, "{bare}");
}

#[tokio::test]
async fn invalid_rules_are_refused_naming_the_field() {
    let berth = Berth::start().await;
    berth
        .create_app(
            json!({"name": "shop", "image": "berth-test/none:1", "port": 80,
            "domains": [{"host": "shop.test"}]}),
        )
        .await;
    let cases = [
        (
            json!({"redirects": [{"from": "(", "to": "/x"}]}),
            "redirects[0].from",
        ),
        (
            json!({"redirects": [{"from": "^/old", "to": "/old/new"}]}),
            "redirects[0].to",
        ),
        (json!({"ip_allow": ["10.0.0.0/33"]}), "ip_allow[0]"),
        (json!({"ip_deny": ["127.0.0.1", "nope"]}), "ip_deny[1]"),
        (
            json!({"cors": {"origins": ["*"], "credentials": true}}),
            "cors.credentials",
        ),
        (json!({"compression": ["gzip", "lz4"]}), "compression[1]"),
        (
            json!({"headers": {"request": {"set": {"X-Forwarded-For": "1.2.3.4"}}}}),
            "headers.request.set.X-Forwarded-For",
        ),
        (json!({"redirect_www": "to_apex"}), "redirect_www"),
    ];
    for (rule, field) in &cases {
        // Through a domain's PATCH, named relative to the domain.
        let (status, err) = berth
            .api("PATCH", "/apps/shop/domains/shop.test", Some(rule.clone()))
            .await;
        assert_eq!(status, 400, "{rule}: {err}");
        assert_eq!(err["error"]["field"], *field, "{rule}: {err}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
        // Through a new app, named within its domains.
        let (status, err) = berth
            .api(
                "POST",
                "/apps",
                Some(json!({"name": "other", "image": "berth-test/none:1", "port": 80,
                    "domains": [{"host": "ok.test"}, with(json!({"host": "other.test"}), rule.clone())]})),
            )
            .await;
        assert_eq!(status, 400, "{rule}: {err}");
        assert_eq!(
            err["error"]["field"],
            format!("domains[1].{field}"),
            "{rule}: {err}"
        );
    }
    // Nothing was changed by the refusals.
    let d = domain(&berth, "shop", "shop.test").await;
    assert_eq!(d.as_object().unwrap().len(), 6, "{d}");
    // An unknown rule is refused by name too.
    let (status, err) = berth
        .api(
            "PATCH",
            "/apps/shop/domains/shop.test",
            Some(json!({"gzip": true})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("gzip"), "{err}");
}

#[tokio::test]
async fn maintenance_and_error_pages_are_set_through_the_apps_patch() {
    let berth = Berth::start().await;
    berth
        .create_app(
            json!({"name": "shop", "image": "berth-test/none:1", "port": 80,
            "domains": [{"host": "shop.test"}]}),
        )
        .await;
    let (_, app) = berth.api("GET", "/apps/shop", None).await;
    assert_eq!(app["maintenance"], json!({"enabled": false}), "{app}");
    assert_eq!(app["error_pages"], json!({}), "{app}");

    let (status, app) = berth
        .api(
            "PATCH",
            "/apps/shop",
            Some(
                json!({"maintenance": {"enabled": true, "message": "back at 3"},
                "error_pages": {"503": "<h1>soon</h1>", "502": "<h1>oops</h1>"}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(
        app["maintenance"],
        json!({"enabled": true, "message": "back at 3"})
    );
    assert_eq!(
        app["error_pages"],
        json!({"502": "<h1>oops</h1>", "503": "<h1>soon</h1>"})
    );
    // Another change keeps them.
    let (_, app) = berth
        .api("PATCH", "/apps/shop", Some(json!({"replicas": 2})))
        .await;
    assert_eq!(app["maintenance"]["enabled"], true, "{app}");
    assert_eq!(app["error_pages"]["503"], "<h1>soon</h1>", "{app}");

    let refused = [
        (json!({"error_pages": {"404": "x"}}), "error_pages.404"),
        (
            json!({"error_pages": {"503": "x".repeat(64 * 1024 + 1)}}),
            "error_pages.503",
        ),
        (
            json!({"maintenance": {"enabled": true, "message": "x".repeat(2001)}}),
            "maintenance.message",
        ),
    ];
    for (body, field) in refused {
        let (status, err) = berth.api("PATCH", "/apps/shop", Some(body)).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    // Off again; an empty map removes the pages.
    let (status, app) = berth
        .api(
            "PATCH",
            "/apps/shop",
            Some(json!({"maintenance": {"enabled": false}, "error_pages": {}})),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["maintenance"], json!({"enabled": false}));
    assert_eq!(app["error_pages"], json!({}));
}
