//! An app's domains one at a time, against the real binary: adding one
//! keeps the others, changing or removing one touches only it, and the
//! edge routes each change at once.

mod support;

use serde_json::{json, Value};
use support::Berth;

/// Hosts of the app's domains, with their prefixes.
async fn routes(berth: &Berth) -> Vec<String> {
    let (status, list) = berth.api("GET", "/apps/shop/domains", None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}{}",
                d["host"].as_str().unwrap(),
                d["path_prefix"].as_str().unwrap()
            )
        })
        .collect()
}

/// The edge's status for `host` and `path`: 503 while the app owns it (it
/// has no replica in this test), 404 once no app does.
async fn edge_status(berth: &Berth, host: &str, path: &str) -> u16 {
    berth.get(host, path).await.0
}

#[tokio::test]
async fn domains_are_added_changed_and_removed_one_at_a_time() {
    let berth = Berth::start().await;
    berth
        .create_app(json!({
            "name": "shop", "image": "berth-test/none:1", "port": 80,
            "domains": [{"host": "shop.test"}, {"host": "api.test", "path_prefix": "/v1", "strip_prefix": true}]
        }))
        .await;
    assert_eq!(edge_status(&berth, "www.shop.test", "/").await, 404);

    // Add: the earlier domains stay, the new one routes at once.
    let (status, added) = berth
        .api(
            "POST",
            "/apps/shop/domains",
            Some(json!({"host": "WWW.shop.test"})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["host"], "www.shop.test");
    assert_eq!(added["path_prefix"], "/");
    assert_eq!(
        routes(&berth).await,
        ["shop.test/", "api.test/v1", "www.shop.test/"]
    );
    assert_eq!(edge_status(&berth, "www.shop.test", "/").await, 503);
    assert_eq!(edge_status(&berth, "shop.test", "/").await, 503);

    // The same host and prefix again: 409 naming the domain.
    let (status, again) = berth
        .api(
            "POST",
            "/apps/shop/domains",
            Some(json!({"host": "www.shop.test"})),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert!(again["error"]["message"]
        .as_str()
        .unwrap()
        .contains("www.shop.test"));
    // Another app cannot take it either.
    berth
        .create_app(json!({"name": "other", "image": "berth-test/none:1", "port": 80}))
        .await;
    let (status, taken) = berth
        .api(
            "POST",
            "/apps/other/domains",
            Some(json!({"host": "www.shop.test"})),
        )
        .await;
    assert_eq!(status, 409, "{taken}");

    // Change one (named by host and prefix): only it changes, in place.
    let (status, changed) = berth
        .api(
            "PATCH",
            "/apps/shop/domains/api.test?path_prefix=/v1/",
            Some(json!({"path_prefix": "/v2"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["path_prefix"], "/v2");
    assert_eq!(changed["strip_prefix"], true, "unchanged fields stay");
    assert_eq!(
        routes(&berth).await,
        ["shop.test/", "api.test/v2", "www.shop.test/"]
    );
    assert_eq!(edge_status(&berth, "api.test", "/v2/x").await, 503);
    assert_eq!(edge_status(&berth, "api.test", "/v1/x").await, 404);

    // Bad input names the body's field, and nothing changes.
    let cases: &[(&str, &str, Value, u16, &str)] = &[
        (
            "PATCH",
            "/apps/shop/domains/shop.test",
            json!({"hsts": true}),
            400,
            "hsts",
        ),
        (
            "PATCH",
            "/apps/shop/domains/shop.test",
            json!({"path_prefix": "v1"}),
            400,
            "path_prefix",
        ),
        (
            "PATCH",
            "/apps/shop/domains/shop.test",
            json!({"colour": 1}),
            400,
            "colour",
        ),
        (
            "POST",
            "/apps/shop/domains",
            json!({"host": "a b"}),
            400,
            "host",
        ),
        (
            "POST",
            "/apps/shop/domains",
            json!({"host": "c.test", "certificate": "custom"}),
            400,
            "certificate",
        ),
    ];
    for (method, path, body, want, field) in cases {
        let (status, err) = berth.api(method, path, Some(body.clone())).await;
        assert_eq!(status, *want, "{method} {path} {body}: {err}");
        assert_eq!(
            err["error"]["field"], *field,
            "{method} {path} {body}: {err}"
        );
    }
    let (status, missing) = berth
        .api(
            "PATCH",
            "/apps/shop/domains/api.test",
            Some(json!({"hsts": false})),
        )
        .await;
    assert_eq!(status, 404, "api.test has no domain at /: {missing}");
    assert_eq!(
        routes(&berth).await,
        ["shop.test/", "api.test/v2", "www.shop.test/"]
    );

    // Remove one: the rest stay, and its host stops routing at once.
    let (status, _) = berth
        .api("DELETE", "/apps/shop/domains/www.shop.test", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(routes(&berth).await, ["shop.test/", "api.test/v2"]);
    assert_eq!(edge_status(&berth, "www.shop.test", "/").await, 404);
    assert_eq!(edge_status(&berth, "shop.test", "/").await, 503);
    let (status, _) = berth
        .api("DELETE", "/apps/shop/domains/www.shop.test", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = berth.api("GET", "/apps/nope/domains", None).await;
    assert_eq!(status, 404);

    // PATCH of the app's `domains` still replaces the whole list.
    let (status, app) = berth
        .api(
            "PATCH",
            "/apps/shop",
            Some(json!({"domains": [{"host": "only.test"}]})),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(routes(&berth).await, ["only.test/"]);
}
