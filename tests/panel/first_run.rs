//! First run: the pages' headers and assets, the setup page with the
//! code from the data directory (a wrong code first), the overview, and a
//! project made from it.

use fantoccini::Client;

use crate::browser::{click, fill, shoot, text, wait_path, wait_text, wait_until};
use crate::support::Berth;

/// Pages forbid framing and inline script; assets are cached for good
/// under hashed names; a page with its scripts stays under 100 KB.
pub async fn page_headers_and_assets(admin: &str) {
    let http = reqwest::Client::new();
    let page = http
        .get(format!("http://{admin}/setup"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "same-origin");
    let html = page.text().await.unwrap();
    let mut total = html.len();
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert_eq!(assets.len(), 2, "{html}");
    for a in assets {
        let r = http.get(format!("http://{admin}{a}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{a}");
        let cache = r.headers()["cache-control"].to_str().unwrap().to_string();
        assert!(cache.contains("immutable"), "{a}: {cache}");
        total += r.bytes().await.unwrap().len();
    }
    assert!(
        total < 100_000,
        "the setup page with its assets is {total} bytes"
    );
    // No session: every page sends you to setup first.
    let none = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/apps/other", "/settings", "/login"] {
        let r = none
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/setup", "{path}");
    }
}

/// Setup in the browser; the owner lands on the overview and makes the
/// project `shop`.
pub async fn setup_and_overview(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    // First run: the setup page, with the code from the data directory.
    c.goto(&format!("http://{admin}/")).await.unwrap();
    wait_path(c, "/setup").await;
    shoot(c, "setup").await;
    let code = std::fs::read_to_string(berth.data_dir().join("setup-code")).unwrap();
    fill(c, "#setup_code", "wrong-code").await;
    fill(c, "#username", "owner").await;
    fill(c, "#password", "correct horse battery").await;
    click(c, "button[type=submit]").await;
    wait_until(10, || async {
        !text(c, ".field-error").await.is_empty() || !text(c, ".form-error").await.is_empty()
    })
    .await;
    shoot(c, "setup-error").await;
    fill(c, "#setup_code", code.trim()).await;
    click(c, "button[type=submit]").await;
    wait_path(c, "/").await;
    wait_text(c, "h1", "Overview", 10).await;
    wait_text(c, "#apps", "other", 10).await;
    fill(c, "#project-name", "shop").await;
    fill(c, "#project-description", "the shop's apps").await;
    click(c, "form[data-api='/api/v1/projects'] button[type=submit]").await;
    wait_text(c, "#projects", "shop", 10).await;
    shoot(c, "overview").await;
}

/// The owner `owner` made through the setup page, signed in.
pub async fn owner_signed_in(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    c.goto(&format!("http://{admin}/")).await.unwrap();
    wait_path(c, "/setup").await;
    let code = std::fs::read_to_string(berth.data_dir().join("setup-code")).unwrap();
    fill(c, "#setup_code", code.trim()).await;
    fill(c, "#username", "owner").await;
    fill(c, "#password", "correct horse battery").await;
    click(c, "button[type=submit]").await;
    wait_path(c, "/").await;
    wait_text(c, "h1", "Overview", 10).await;
}
