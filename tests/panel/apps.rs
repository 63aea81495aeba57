//! An app made from a local image in the new-app form (a field error
//! first), deployed with its live log, its container logs shown, changed
//! to a second image, deployed again and rolled back; served through the
//! edge at every step.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::browser::{
    click, click_confirmed, fill, select, shoot, text, wait_nonempty, wait_path, wait_text,
    wait_until,
};
use crate::support::Berth;

/// Waits until the deployment on the page succeeded and the page was
/// reloaded to show the app's new state (a log followed live reloads it).
pub async fn wait_deployed(c: &Client) {
    wait_text(c, "#log", "succeeded", 90).await;
    wait_until(10, || async {
        c.find(Locator::Css("pre#log:not([data-live])"))
            .await
            .is_ok()
            && text(c, "pre#log").await.contains("succeeded")
    })
    .await;
    wait_text(c, "h1 + .status", "running", 10).await;
}

/// Waits until the app answers through the edge with `version`.
pub async fn wait_served(berth: &Berth, host: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = berth.get(host, "/").await;
        if status == 200 && body.starts_with(version) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host} answers {status} {body:?}, not {version}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The app `web` in project `shop`, from image `v1` then `v2`, then back.
pub async fn new_app_deploy_and_roll_back(c: &Client, berth: &Berth, v1: &str, v2: &str) {
    let admin = &berth.admin;
    // A new app: a field error first, shown beside its field.
    click(c, "a[href='/apps/new']").await;
    wait_path(c, "/apps/new").await;
    fill(c, "#name", "Bad Name").await;
    fill(c, "#image", v1).await;
    fill(c, "#port", "8080").await;
    select(c, "#project", "shop").await;
    fill(c, "#domain", "web.test").await;
    click(c, "button[type=submit]").await;
    let error = wait_nonempty(c, "#name + .field-error", 10).await;
    assert!(!error.is_empty());
    shoot(c, "new-app-error").await;
    fill(c, "#name", "web").await;
    click(c, "button[type=submit]").await;
    wait_path(c, "/apps/web").await;
    // The health check as the API gives it (the default: auto, 250 ms).
    let health = wait_text(c, "#health-check", "auto", 10).await;
    assert!(
        health.contains("250 ms") && health.contains("1000 ms"),
        "{health}"
    );
    shoot(c, "app-new").await;

    // Deploy, watch the live log to its end, see it through the edge.
    click(c, "button[data-api$='/deployments']").await;
    wait_path(c, "/apps/web?log=").await;
    wait_deployed(c).await;
    wait_served(berth, "web.test", "v1").await;
    click(c, "#container-logs-button").await;
    wait_text(c, "#container-logs", "== berth-", 10).await;
    // Followed live (the replica headers come from the event stream), and
    // the same button stops following.
    wait_text(c, "#container-logs-state", "following live", 10).await;
    wait_text(c, "#container-logs", ") following", 10).await;
    shoot(c, "app-deployed").await;
    click(c, "#container-logs-button").await;
    wait_text(c, "#container-logs-state", "stopped following", 10).await;

    // A second version, then back to the first.
    fill(c, "#new-image", v2).await;
    click(
        c,
        "form[data-method=PATCH]:not([data-shape]) button[type=submit]",
    )
    .await;
    wait_until(10, || async {
        let value = match c.find(Locator::Css("#new-image")).await {
            Ok(el) => el.prop("value").await.ok().flatten(),
            Err(_) => None,
        };
        value.as_deref() == Some(v2) && text(c, ".field-error").await.is_empty()
    })
    .await;
    // The page reloads after the change; the stored image is the new one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["image"], v2, "{app}");
    click(c, "button[data-api$='/deployments']").await;
    wait_path(c, "/apps/web?log=").await;
    wait_deployed(c).await;
    wait_served(berth, "web.test", "v2").await;
    c.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    click_confirmed(c, "button[data-api$='/rollback']").await;
    wait_path(c, "/apps/web?log=").await;
    wait_deployed(c).await;
    wait_served(berth, "web.test", "v1").await;
    shoot(c, "app-rolled-back").await;
    c.goto(&format!("http://{admin}/certificates"))
        .await
        .unwrap();
    shoot(c, "certificates").await;
}
