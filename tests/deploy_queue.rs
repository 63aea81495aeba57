//! The deployment queue against the real Docker engine: cancel a running
//! deployment, supersede a queued one, and survive `kill -9` in the middle
//! of a deploy with the last good version serving and no orphans; a first
//! deployment that fails leaves the app `failed` with the reason; a
//! rollback becomes the app's spec, so the next plain deploy keeps it.

mod support;

use serde_json::json;
use support::{Berth, Image};

async fn answers_with(berth: &Berth, prefix: &str) {
    for body in berth.answers("web.test", 4).await {
        assert!(body.starts_with(prefix), "{body}");
    }
}

/// Waits until deployment `id`'s log has a line containing `needle`
/// (lines after the switch come a moment after `succeeded`).
async fn wait_log_line(berth: &Berth, id: &str, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, log) = berth
            .api("GET", &format!("/deployments/{id}/logs"), None)
            .await;
        if log["lines"].to_string().contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} not in the log: {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
    berth.deploy_web(&v1, 1).await;

    // d1 never gets healthy: it stays running in its gate.
    set_image(&berth, &silent).await;
    let d1 = berth.queue_deploy("web").await;
    berth.wait_status(&d1, "running").await;
    berth.wait_containers(2).await;
    answers_with(&berth, "v1 ").await;

    // Follow d1's log live (Server-Sent Events) while it is stuck.
    let follow = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/deployments/{d1}/logs?follow=true",
            berth.admin
        ))
        .bearer_auth(&berth.token)
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status(), 200);
    assert!(follow.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let follower = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut text = String::new();
        let mut body = follow.bytes_stream();
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        text
    });

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
    let d1_id = d1.clone();
    let d1 = berth.wait_status(&d1, "cancelled").await;
    assert_eq!(d1["error"], "cancelled by the user");
    // The live stream saw the phases and ended with the deployment.
    let streamed = tokio::time::timeout(std::time::Duration::from_secs(20), follower)
        .await
        .expect("the stream ends when the deployment does")
        .unwrap();
    for needle in [
        "data: ",
        "queued: deploy",
        "starting replica 0",
        "waiting up to",
        "cancelled: cancelled by the user",
    ] {
        assert!(
            streamed.contains(needle),
            "{needle} missing in:\n{streamed}"
        );
    }
    // Ended logs are kept.
    let (status, kept) = berth
        .api("GET", &format!("/deployments/{d1_id}/logs"), None)
        .await;
    assert_eq!(status, 200);
    assert!(kept["lines"].as_array().unwrap().len() >= 4, "{kept}");
    assert_eq!(berth.wait_deployment(&d3).await["status"], "succeeded");
    berth.wait_containers(1).await;
    let (_, kept) = berth
        .api("GET", &format!("/deployments/{d3}/logs"), None)
        .await;
    let text = kept["lines"].to_string();
    assert!(
        text.contains("routes switched") && text.contains("deployment succeeded"),
        "{text}"
    );
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
    berth.deploy_web(&v1, 2).await;

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

/// A rollback makes the rolled-back version the app's spec: image and
/// settings come back, domains stay, and the next plain deploy runs it.
#[tokio::test]
async fn a_rollback_is_the_app_s_spec_and_the_next_deploy_keeps_it() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    berth.deploy_web(&v1, 1).await;
    let (_, list) = berth.api("GET", "/apps/web/deployments", None).await;
    let first = list[0]["id"].as_str().unwrap().to_string();

    // v2 with other settings: the image's VERSION overridden, 2 replicas.
    let (status, body) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"image": v2, "env": {"VERSION": "v2-env"}, "replicas": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    answers_with(&berth, "v2-env ").await;
    // A domain added after v1 is not part of any version: it stays.
    let (status, body) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"domains": [{"host": "web.test"}, {"host": "new.test"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, d) = berth
        .api(
            "POST",
            "/apps/web/rollback",
            Some(json!({"deployment_id": first})),
        )
        .await;
    assert_eq!(status, 202, "{d}");
    assert_eq!(d["rollback_of"], first.as_str(), "{d}");
    let rollback_id = d["id"].as_str().unwrap().to_string();
    let d = berth.wait_deployment(&rollback_id).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(d["rollback_of"], first.as_str(), "{d}");
    answers_with(&berth, "v1 ").await;
    wait_log_line(
        &berth,
        &rollback_id,
        &format!("rolled back to deployment {first}"),
    )
    .await;

    // The app's spec is v1's: image, env and replicas; the domains stay.
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["image"], v1.as_str(), "{app}");
    assert_eq!(app["env"], json!({}), "{app}");
    assert_eq!(app["replicas"], 1, "{app}");
    assert_eq!(app["domains"].as_array().unwrap().len(), 2, "{app}");

    // A plain deploy runs v1, not v2.
    let next = berth.deploy("web").await;
    assert_eq!(next["status"], "succeeded", "{next}");
    assert_eq!(next["trigger"], "api");
    assert_eq!(next["image"], v1.as_str(), "{next}");
    answers_with(&berth, "v1 ").await;
    for body in berth.answers("new.test", 2).await {
        assert!(body.starts_with("v1 "), "{body}");
    }
    berth.wait_containers(1).await;
}

#[tokio::test]
async fn manual_rollback_within_the_window_without_a_registry() {
    let mut berth = Berth::start_with("rollback_window = 2").await;
    let images: Vec<String> = ["v1", "v2", "v3"]
        .into_iter()
        .map(|v| berth.image(Image::Web(v)))
        .collect();
    berth
        .create_app(json!({"name": "web", "image": images[0], "port": 8080, "domains": [{"host": "web.test"}]}))
        .await;
    let mut ids = Vec::new();
    for image in &images {
        set_image(&berth, image).await;
        let d = berth.deploy("web").await;
        assert_eq!(d["status"], "succeeded", "{d}");
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    answers_with(&berth, "v3 ").await;
    // v2's tag moves to another image: only the id pins v2's image now.
    support::docker(&["tag", &images[2], &images[1]]);

    let (status, d) = berth
        .api(
            "POST",
            "/apps/web/rollback",
            Some(json!({"deployment_id": ids[1]})),
        )
        .await;
    assert_eq!(status, 202, "{d}");
    assert_eq!(d["trigger"], "rollback");
    assert_eq!(d["rollback_of"], ids[1].as_str());
    let d = berth.wait_deployment(d["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    answers_with(&berth, "v2 ").await;
    wait_log_line(
        &berth,
        d["id"].as_str().unwrap(),
        "named another image; it names the rolled-back one again",
    )
    .await;
    // The app names v2's tag again, and the tag names v2's image again:
    // a plain deploy keeps v2 serving.
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["image"], images[1].as_str(), "{app}");
    let again = berth.deploy("web").await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["image_id"], d["image_id"], "{again}");
    answers_with(&berth, "v2 ").await;

    // v1 fell out of the window of 2: refused, and its image was pruned.
    let (status, body) = berth
        .api(
            "POST",
            "/apps/web/rollback",
            Some(json!({"deployment_id": ids[0]})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("deployment_id")),
        "{body}"
    );
    let inspect = std::process::Command::new("docker")
        .args(["image", "inspect", &images[0]])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "v1's image was pruned");
    let (status, _) = berth
        .api(
            "POST",
            "/apps/web/rollback",
            Some(json!({"deployment_id": "nope"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = berth
        .api("POST", "/apps/web/rollback", Some(json!({})))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_version_that_dies_after_the_switch_rolls_back_by_itself() {
    let mut berth = Berth::start_with("rollback_watch_secs = 60").await;
    let v1 = berth.image(Image::Web("v1"));
    let flaky = berth.image(Image::Flaky);
    berth
        .create_app(
            json!({"name": "web", "image": v1, "port": 8080, "domains": [{"host": "web.test"}]}),
        )
        .await;
    let good = berth.deploy("web").await;
    assert_eq!(good["status"], "succeeded");
    set_image(&berth, &flaky).await;
    // It passes its gate (it listens), then dies a few seconds later.
    let bad = berth.deploy("web").await;
    assert_eq!(bad["status"], "succeeded", "{bad}");
    let bad = berth
        .wait_status(bad["id"].as_str().unwrap(), "rolled_back")
        .await;
    assert!(
        bad["error"].as_str().unwrap().contains("watch window"),
        "{bad}"
    );
    let (_, list) = berth.api("GET", "/apps/web/deployments", None).await;
    let rollback = list[0].clone();
    assert_eq!(rollback["trigger"], "rollback", "{list}");
    assert_eq!(rollback["rollback_of"], good["id"]);
    let rollback = berth
        .wait_deployment(rollback["id"].as_str().unwrap())
        .await;
    assert_eq!(rollback["status"], "succeeded", "{rollback}");
    answers_with(&berth, "v1 ").await;
    // The automatic rollback made v1 the app's spec again, like a manual one.
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["image"], v1.as_str(), "{app}");
}

#[tokio::test]
async fn a_crash_loop_shows_in_the_app_status() {
    let mut berth = Berth::start().await;
    let flaky = berth.image(Image::Flaky);
    berth
        .create_app(
            json!({"name": "web", "image": flaky, "port": 8080, "domains": [{"host": "web.test"}]}),
        )
        .await;
    // It passes its gate, then exits with code 3 every few seconds; Docker
    // restarts it with growing delays.
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let app = loop {
        let (_, app) = berth.api("GET", "/apps/web", None).await;
        if app["status"] == "crash_loop" {
            break app;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no crash loop seen: {app}\n{}",
            berth.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(app["restarts"].as_u64().unwrap() >= 3, "{app}");
    assert_eq!(app["last_exit"], "exited with code 3", "{app}");
}

#[tokio::test]
async fn a_failed_first_deploy_leaves_the_app_failed_with_the_reason() {
    let mut berth = Berth::start().await;
    // Not local, and no registry is reachable: the pull fails.
    berth
        .create_app(json!({
            "name": "web", "image": "berth-test/absent:1", "port": 8080,
            "domains": [{"host": "web.test"}]
        }))
        .await;
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["status"], "not_deployed", "{app}");
    assert!(app.get("reason").is_none(), "{app}");

    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap();
    assert!(!error.is_empty(), "{d}");
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["status"], "failed", "{app}");
    assert_eq!(app["reason"], error, "{app}");
    let (_, listed) = berth.api("GET", "/apps", None).await;
    assert_eq!(listed[0]["status"], "failed", "{listed}");

    // Nobody is told that a previous version serves: there is none.
    let log = berth.log();
    assert!(log.contains("nothing serves this app yet"), "{log}");
    assert!(!log.contains("previous version keeps serving"), "{log}");
    let id = d["id"].as_str().unwrap();
    let (_, kept) = berth
        .api("GET", &format!("/deployments/{id}/logs"), None)
        .await;
    assert!(
        kept["lines"]
            .to_string()
            .contains("nothing serves this app yet"),
        "{kept}"
    );

    // A deployment that works clears it.
    let v1 = berth.image(Image::Web("v1"));
    set_image(&berth, &v1).await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["status"], "running", "{app}");
    assert!(app.get("reason").is_none(), "{app}");
}
