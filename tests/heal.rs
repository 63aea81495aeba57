//! Self-healing against the real engine: replicas taken away outside
//! berth (`docker kill`, `docker rm -f`) come back to the app's count and
//! serve again, with no deployment.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{docker, Berth, Image};

fn running(berth: &Berth) -> Vec<String> {
    docker(&[
        "ps",
        "--filter",
        &format!("label=berth.instance={}", berth.instance),
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

#[tokio::test]
async fn replicas_killed_or_removed_outside_berth_come_back() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth
        .create_app(
            json!({"name": "web", "image": v1, "port": 8080, "replicas": 3,
            "domains": [{"host": "web.test"}]}),
        )
        .await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    let before = running(&berth);
    assert_eq!(before.len(), 3, "{before:?}");
    let (_, deployments) = berth.api("GET", "/apps/web/deployments", None).await;
    let count = deployments.as_array().unwrap().len();

    docker(&["kill", &before[0]]);
    docker(&["rm", "-f", &before[1]]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_degraded = false;
    loop {
        let (_, app) = berth.api("GET", "/apps/web", None).await;
        saw_degraded |= app["status"] == "degraded";
        if app["status"] == "running" && app["serving_replicas"] == 3 && running(&berth).len() == 3
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healed: {app}\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_degraded, "the app showed the missing replicas");
    let after = running(&berth);
    // The killed replica was started again; the removed one made anew
    // under its name.
    assert!(after.contains(&before[0]), "{before:?} {after:?}");
    assert!(after.contains(&before[1]), "{before:?} {after:?}");
    let log = berth.log();
    assert!(log.contains("healing: replicas were missing"), "{log}");
    assert!(log.contains("started replica"), "{log}");
    assert!(log.contains("made replica 1 anew"), "{log}");
    // Three replicas answer at the edge, and no deployment was needed.
    let answers: BTreeSet<String> = berth.answers("web.test", 30).await.into_iter().collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    let (_, deployments) = berth.api("GET", "/apps/web/deployments", None).await;
    assert_eq!(deployments.as_array().unwrap().len(), count);

    // A stopped app is left alone.
    let (status, _) = berth.api("POST", "/apps/web/stop", None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(running(&berth).is_empty(), "{:?}", running(&berth));
}
