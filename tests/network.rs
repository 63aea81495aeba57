//! The instance network against the real Docker engine: first deploys
//! racing each other make one network, and duplicates of its name (Docker
//! 20.10 creates them without complaint) are repaired, at start and at the
//! next deployment, instead of failing every deployment as "ambiguous".

mod support;

use std::collections::HashMap;

use bollard::models::NetworkCreateRequest;
use serde_json::json;
use support::{Berth, Image};

/// Creates a network named and labelled like the instance's, the way a
/// racing deployment did before the fix; `None` when the engine refuses
/// duplicate names (then it cannot get into the broken state at all).
async fn create_duplicate(instance: &str) -> Option<String> {
    let docker = bollard::Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let request = NetworkCreateRequest {
        name: format!("berth-{instance}"),
        driver: Some("bridge".into()),
        labels: Some(HashMap::from([(
            "berth.instance".to_string(),
            instance.to_string(),
        )])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(created) => Some(created.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => None,
        Err(e) => panic!("creating a network: {e}"),
    }
}

#[tokio::test]
async fn concurrent_first_deploys_make_one_network() {
    let mut berth = Berth::start_with("concurrency = 3").await;
    let image = berth.image(Image::Web("v1"));
    let apps = ["one", "two", "three"];
    for app in apps {
        berth
            .create_app(json!({
                "name": app, "image": image, "port": 8080, "replicas": 1,
                "domains": [{"host": format!("{app}.test")}]
            }))
            .await;
    }
    // All queued at once: each runs its first deployment beside the others.
    let ids = futures_util::future::join_all(apps.map(|app| berth.queue_deploy(app))).await;
    for id in &ids {
        let d = berth.wait_deployment(id).await;
        assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    }
    assert_eq!(berth.networks().len(), 1, "{:?}", berth.networks());
    for app in apps {
        let body = &berth.answers(&format!("{app}.test"), 1).await[0];
        assert!(body.starts_with("v1 "), "{body}");
    }
}

#[tokio::test]
async fn duplicates_made_by_hand_are_repaired_at_start() {
    let mut berth = Berth::start().await;
    assert!(berth.terminate().await);
    let Some(oldest) = create_duplicate(&berth.instance).await else {
        eprintln!("the engine refuses duplicate network names; nothing to repair");
        return;
    };
    let newer = create_duplicate(&berth.instance)
        .await
        .expect("a duplicate");
    assert_eq!(berth.networks(), vec![oldest.clone(), newer]);

    // Neither has containers: the oldest stays, the other goes.
    berth.launch().await;
    assert_eq!(berth.networks(), vec![oldest.clone()], "{}", berth.log());
    assert!(
        berth.log().contains("removed an empty duplicate network"),
        "{}",
        berth.log()
    );
    let image = berth.image(Image::Web("v1"));
    berth.deploy_web(&image, 1).await;
    assert_eq!(berth.networks(), vec![oldest]);
}

#[tokio::test]
async fn a_duplicate_beside_serving_replicas_is_repaired_not_fatal() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    let v3 = berth.image(Image::Web("v3"));
    berth.deploy_web(&v1, 2).await;
    let serving = berth.networks();
    assert_eq!(serving.len(), 1);

    // A duplicate appears beside the network the replicas use: the next
    // deployment keeps the one in use and removes the empty newcomer.
    if create_duplicate(&berth.instance).await.is_none() {
        eprintln!("the engine refuses duplicate network names; nothing to repair");
        return;
    }
    assert_eq!(berth.networks().len(), 2);
    let (status, body) = berth
        .api("PATCH", "/apps/web", Some(json!({"image": v2})))
        .await;
    assert_eq!(status, 200, "{body}");
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert_eq!(berth.networks(), serving);
    assert!(berth
        .answers("web.test", 4)
        .await
        .iter()
        .all(|b| b.starts_with("v2 ")));

    // Another one, then a restart: start-up removes it, the replicas are
    // adopted (no redeploy) and later deployments attach fine.
    create_duplicate(&berth.instance)
        .await
        .expect("a duplicate");
    assert!(berth.terminate().await);
    berth.launch().await;
    assert_eq!(berth.networks(), serving, "{}", berth.log());
    assert!(berth
        .answers("web.test", 4)
        .await
        .iter()
        .all(|b| b.starts_with("v2 ")));
    let (status, body) = berth
        .api("PATCH", "/apps/web", Some(json!({"image": v3})))
        .await;
    assert_eq!(status, 200, "{body}");
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert!(berth
        .answers("web.test", 4)
        .await
        .iter()
        .all(|b| b.starts_with("v3 ")));
    assert_eq!(berth.networks(), serving);
}
