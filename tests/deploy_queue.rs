//! The deployment queue against the real Docker engine: cancel a running
//! deployment, supersede a queued one, and survive `kill -9` in the middle
//! of a deploy with the last good version serving and no orphans.

mod support;

use serde_json::json;
use support::{Berth, Image};

async fn answers_with(berth: &Berth, prefix: &str) {
    for _ in 0..4 {
        let (status, body) = berth.get("web.test", "/").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with(prefix), "{body}");
    }
}

async fn set_image(berth: &Berth, image: &str) {
    let (status, body) = berth
        .api("PATCH", "/apps/web", Some(json!({"image": image})))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn cancel_running_supersede_queued() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    let silent = berth.image(Image::Silent);
    berth
        .create_app(
            json!({"name": "web", "image": v1, "port": 8080, "domains": [{"host": "web.test"}]}),
        )
        .await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");

    // d1 never gets healthy: it stays running in its gate.
    set_image(&berth, &silent).await;
    let d1 = berth.queue_deploy("web").await;
    berth.wait_status(&d1, "running").await;
    berth.wait_containers(2).await;
    answers_with(&berth, "v1 ").await;

    // d2 waits behind d1; d3 supersedes it.
    set_image(&berth, &v2).await;
    let d2 = berth.queue_deploy("web").await;
    let (_, queued) = berth.api("GET", "/deployments?status=queued", None).await;
    assert!(
        queued
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == d2.as_str()),
        "{queued}"
    );
    let d3 = berth.queue_deploy("web").await;
    let d2 = berth.wait_status(&d2, "cancelled").await;
    assert_eq!(d2["error"], format!("superseded by deployment {d3}"));

    // Cancel the running one: its container goes, d3 runs and serves v2.
    let (status, body) = berth
        .api("POST", &format!("/deployments/{d1}/cancel"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let d1 = berth.wait_status(&d1, "cancelled").await;
    assert_eq!(d1["error"], "cancelled by the user");
    assert_eq!(berth.wait_deployment(&d3).await["status"], "succeeded");
    answers_with(&berth, "v2 ").await;
    berth.wait_containers(1).await;

    // Ended deployments cannot be cancelled; unknown ones are 404.
    let (status, body) = berth
        .api("POST", &format!("/deployments/{d3}/cancel"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("ended")),
        "{body}"
    );
    assert_eq!(
        berth.api("POST", "/deployments/nope/cancel", None).await.0,
        404
    );
    let (status, _) = berth.api("GET", "/deployments?status=bogus", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn kill_9_mid_deploy_keeps_the_last_good_version() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    let silent = berth.image(Image::Silent);
    berth
        .create_app(
            json!({"name": "web", "image": v1, "port": 8080, "replicas": 2,
            "domains": [{"host": "web.test"}]}),
        )
        .await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");

    set_image(&berth, &silent).await;
    let stuck = berth.queue_deploy("web").await;
    berth.wait_status(&stuck, "running").await;
    berth.wait_containers(4).await;
    set_image(&berth, &v2).await;
    let queued = berth.queue_deploy("web").await;

    berth.kill9();
    berth.launch().await;

    // The interrupted deployment failed and its replicas are gone; the
    // queued deployment ran after the restart and serves.
    let stuck = berth.wait_deployment(&stuck).await;
    assert_eq!(stuck["status"], "failed", "{stuck}");
    assert!(
        stuck["error"].as_str().unwrap().contains("interrupted"),
        "{stuck}"
    );
    let resumed = berth.wait_deployment(&queued).await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}\n{}", berth.log());
    answers_with(&berth, "v2 ").await;
    berth.wait_containers(2).await;
}
