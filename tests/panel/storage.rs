//! The app page's storage card (a volume added, a bad path refused beside
//! its field, the strategy changed, the volume removed) and Settings →
//! This berth (the ACME email and the public URL set, refused, cleared).

use fantoccini::Client;

use crate::browser::{
    click, click_confirmed, fill, select, shoot, shoot_long, wait_nonempty, wait_text, wait_until,
};
use crate::support::Berth;

/// Mounts and strategy of app `web` from its page.
pub async fn volume_and_strategy(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    c.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    let add = "section[aria-labelledby=storage-h] form[data-body] button[type=submit]";
    fill(c, "#volume-name", "data").await;
    fill(c, "#volume-path", "data").await;
    click(c, add).await;
    let error = wait_nonempty(c, "#volume-path + .field-error", 10).await;
    assert!(error.contains("absolute"), "{error}");
    fill(c, "#volume-path", "/data").await;
    click(c, add).await;
    wait_text(c, "#mounts", "/data", 10).await;
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["mounts"][0]["type"], "volume", "{app}");
    assert_eq!(app["mounts"][0]["name"], "data", "{app}");
    assert_eq!(app["mounts"][0]["path"], "/data", "{app}");
    select(c, "#strategy-select", "recreate").await;
    click(c, "#strategy-save").await;
    wait_text(c, "#strategy", "recreate", 10).await;
    shoot_long(c, "app-storage").await;
    click_confirmed(c, "#mounts button[data-method=PATCH]").await;
    wait_until(10, || async {
        let (_, app) = berth.api("GET", "/apps/web", None).await;
        app["mounts"].as_array().is_some_and(|m| m.is_empty())
    })
    .await;
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["strategy"], "recreate", "{app}");
}

/// The instance settings from Settings → This berth.
pub async fn instance_settings(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    c.goto(&format!("http://{admin}/settings")).await.unwrap();
    let save = "form[data-api='/api/v1/settings'] button[type=submit]";
    fill(c, "#acme-email", "not an email").await;
    click(c, save).await;
    let error = wait_nonempty(c, "#acme-email + .field-error", 10).await;
    assert!(error.contains("ops@example.com"), "{error}");
    fill(c, "#acme-email", "certs@example.org").await;
    fill(c, "#public-url", "https://berth.example.com/").await;
    click(c, save).await;
    wait_text(c, "#in-effect", "certs@example.org", 10).await;
    let (_, settings) = berth.api("GET", "/settings", None).await;
    assert_eq!(settings["acme_email"], "certs@example.org", "{settings}");
    assert_eq!(
        settings["public_url"], "https://berth.example.com",
        "{settings}"
    );
    shoot(c, "settings-instance").await;
    // An emptied field clears the setting.
    fill(c, "#public-url", "").await;
    click(c, save).await;
    wait_text(c, "#in-effect", "public URL none", 10).await;
    let (_, settings) = berth.api("GET", "/settings", None).await;
    assert_eq!(
        settings["public_url"],
        serde_json::Value::Null,
        "{settings}"
    );
    assert_eq!(settings["acme_email"], "certs@example.org", "{settings}");
}
