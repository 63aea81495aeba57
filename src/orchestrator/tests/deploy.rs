//! Deployments on the fake engine: the first one, rolling batches, a
//! replica that will not start or not pass the gate, a failure after old
//! replicas were retired, cancellation in each phase, and a rollback.

use std::time::Duration;

use super::{app_json, eventually, Harness};
use crate::engine::fake::{Behaviour, Call};
use crate::store::DeploymentStatus;

#[tokio::test]
async fn a_first_deploy_routes_to_the_new_replicas() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let d = h.deploy_and_wait("web").await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(h.active("web").as_deref(), Some(d.id.as_str()));
    let running = h.engine.running_of(&d.id);
    assert_eq!(running.len(), 2);
    assert_eq!(h.serving("web"), running);
    assert_eq!(h.routed("web.test"), h.addrs_of(&running));
    assert_eq!(d.image_id.as_deref(), Some("sha256:app:v1"));
    assert!(h.log_of(&d.id).iter().any(|l| l.contains("succeeded")));
}

#[tokio::test]
async fn a_rolling_deploy_retires_the_old_replicas_batch_by_batch() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 3, r#", "batch_size": 1"#));
    let first = h.deploy_and_wait("web").await;
    assert_eq!(
        first.status,
        DeploymentStatus::Succeeded,
        "{:?}",
        first.error
    );
    h.set_image("web", "app:v2");
    let second = h.deploy_and_wait("web").await;
    assert_eq!(
        second.status,
        DeploymentStatus::Succeeded,
        "{:?}",
        second.error
    );
    assert!(
        h.engine.containers_of(&first.id).is_empty(),
        "old replicas left"
    );
    let running = h.engine.running_of(&second.id);
    assert_eq!(running.len(), 3);
    assert_eq!(h.serving("web"), running);
    assert_eq!(h.routed("web.test"), h.addrs_of(&running));
    // Two batches before the last each retired one old replica.
    let steps: Vec<String> = h
        .log_of(&second.id)
        .into_iter()
        .filter(|l| l.contains("retiring"))
        .collect();
    assert_eq!(
        steps,
        [
            "1 new replica(s) serve; retiring 1 old one(s)",
            "2 new replica(s) serve; retiring 1 old one(s)"
        ],
    );
}

#[tokio::test]
async fn a_replica_that_cannot_start_leaves_the_previous_version_serving() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    let serving = h.serving("web");
    h.set_image("web", "app:v2");
    // The first deployment made calls 1 and 2: the new one's second fails.
    h.engine.fail_nth(Call::StartReplica, 4);
    let second = h.deploy_and_wait("web").await;
    assert_eq!(second.status, DeploymentStatus::Failed);
    assert!(
        second
            .error
            .as_deref()
            .unwrap_or("")
            .contains("StartReplica #4"),
        "{:?}",
        second.error
    );
    assert!(h.engine.containers_of(&second.id).is_empty());
    assert_eq!(h.active("web").as_deref(), Some(first.id.as_str()));
    assert_eq!(h.serving("web"), serving);
    assert_eq!(h.routed("web.test"), h.addrs_of(&serving));
    assert!(h
        .log_of(&second.id)
        .iter()
        .any(|l| l == "the previous version keeps serving"));
}

#[tokio::test]
async fn a_replica_that_fails_its_health_check_is_removed_with_its_batch() {
    let h = Harness::with(|s| s.health_timeout = Duration::from_millis(300));
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    let serving = h.serving("web");
    h.set_image("web", "app:v2");
    h.engine.image_behaves("app:v2", Behaviour::Refusing);
    let second = h.deploy_and_wait("web").await;
    assert_eq!(second.status, DeploymentStatus::Failed);
    assert!(
        second
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not healthy within"),
        "{:?}",
        second.error
    );
    assert!(h.engine.containers_of(&second.id).is_empty());
    assert_eq!(h.active("web").as_deref(), Some(first.id.as_str()));
    assert_eq!(h.serving("web"), serving);
}

#[tokio::test]
async fn a_replica_that_exits_fails_the_gate_with_its_code_and_output() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 1, ""));
    h.engine.image_behaves("app:v1", Behaviour::Exits(3));
    let d = h.deploy_and_wait("web").await;
    assert_eq!(d.status, DeploymentStatus::Failed);
    let error = d.error.unwrap_or_default();
    assert!(error.contains("exited with code 3"), "{error}");
    assert!(error.contains("started from sha256:app:v1"), "{error}");
    assert!(h.engine.container_ids().is_empty());
    assert_eq!(h.active("web"), None);
    assert!(h
        .log_of(&d.id)
        .iter()
        .any(|l| l == "nothing serves this app yet"));
}

#[tokio::test]
async fn a_failure_after_old_replicas_retired_rolls_back_to_the_previous_deployment() {
    let h = Harness::with(|s| s.health_timeout = Duration::from_millis(300));
    h.create_app(&app_json("web", "app:v1", 3, r#", "batch_size": 1"#));
    let first = h.deploy_and_wait("web").await;
    h.set_image("web", "app:v2");
    // The new version's first replica passes, its second does not.
    h.engine.next_replica_behaves(Behaviour::Healthy);
    h.engine.next_replica_behaves(Behaviour::Refusing);
    let second = h.deploy_and_wait("web").await;
    assert_eq!(second.status, DeploymentStatus::RolledBack);
    let error = second.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("rolling back to deployment {}", first.id)),
        "{error}"
    );
    let rollback = h
        .store
        .app_deployments("web")
        .expect("deployments")
        .into_iter()
        .find(|d| d.rollback_of.as_deref() == Some(first.id.as_str()))
        .expect("a rollback was queued");
    let rollback = h.ended(&rollback.id).await;
    assert_eq!(
        rollback.status,
        DeploymentStatus::Succeeded,
        "{:?}",
        rollback.error
    );
    assert_eq!(h.active("web").as_deref(), Some(rollback.id.as_str()));
    assert!(h.engine.containers_of(&second.id).is_empty());
    assert!(h.engine.containers_of(&first.id).is_empty());
    let running = h.engine.running_of(&rollback.id);
    assert_eq!(running.len(), 3);
    assert_eq!(h.serving("web"), running);
    assert_eq!(h.store.app("web").expect("app").spec.image, "app:v1");
}

#[tokio::test]
async fn a_queued_deployment_cancelled_never_runs() {
    let h = Harness::with(|s| s.concurrency = 1);
    h.create_app(&app_json("web", "app:v1", 1, ""));
    h.create_app(&app_json("api", "api:v1", 1, ""));
    h.engine.hold(Call::EnsureImage);
    let web = h.deploy("web");
    h.engine.wait_calls(Call::EnsureImage, 1).await;
    // The one permit is taken: api waits in the queue.
    let api = h.deploy("api");
    let cancelled = h.orch.cancel(&api.id).expect("cancel");
    assert_eq!(cancelled.status, DeploymentStatus::Queued);
    let api = h.ended(&api.id).await;
    assert_eq!(api.status, DeploymentStatus::Cancelled);
    assert_eq!(api.error.as_deref(), Some("cancelled by the user"));
    h.engine.release(Call::EnsureImage);
    let web = h.ended(&web.id).await;
    assert_eq!(web.status, DeploymentStatus::Succeeded, "{:?}", web.error);
    assert_eq!(h.engine.calls(Call::EnsureImage), 1, "api never pulled");
    assert!(h.engine.containers_of(&api.id).is_empty());
    // Ended deployments cannot be cancelled.
    assert!(h.orch.cancel(&api.id).is_err());
}

#[tokio::test]
async fn a_newer_deployment_supersedes_a_queued_one() {
    let h = Harness::with(|s| s.concurrency = 1);
    h.create_app(&app_json("web", "app:v1", 1, ""));
    h.engine.hold(Call::EnsureImage);
    let running = h.deploy("web");
    h.engine.wait_calls(Call::EnsureImage, 1).await;
    let queued = h.deploy("web");
    let newest = h.deploy("web");
    let queued = h.ended(&queued.id).await;
    assert_eq!(queued.status, DeploymentStatus::Cancelled);
    assert_eq!(
        queued.error,
        Some(format!("superseded by deployment {}", newest.id))
    );
    h.engine.release(Call::EnsureImage);
    assert_eq!(
        h.ended(&running.id).await.status,
        DeploymentStatus::Succeeded
    );
    assert_eq!(
        h.ended(&newest.id).await.status,
        DeploymentStatus::Succeeded
    );
}

#[tokio::test]
async fn a_deployment_cancelled_while_pulling_starts_nothing() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    h.engine.hold(Call::EnsureImage);
    let d = h.deploy("web");
    h.engine.wait_calls(Call::EnsureImage, 1).await;
    h.orch.cancel(&d.id).expect("cancel");
    let d = h.ended(&d.id).await;
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    assert_eq!(h.engine.calls(Call::StartReplica), 0);
    assert!(h.engine.container_ids().is_empty());
    assert_eq!(h.active("web"), None);
}

#[tokio::test]
async fn a_deployment_cancelled_while_starting_removes_what_it_started() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    let serving = h.serving("web");
    h.set_image("web", "app:v2");
    h.engine.hold(Call::StartReplica);
    let d = h.deploy("web");
    h.engine.wait_calls(Call::StartReplica, 3).await;
    h.orch.cancel(&d.id).expect("cancel");
    h.engine.release(Call::StartReplica);
    let d = h.ended(&d.id).await;
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    assert_eq!(
        h.engine.calls(Call::StartReplica),
        3,
        "no replica after the cancel"
    );
    assert!(h.engine.containers_of(&d.id).is_empty());
    assert_eq!(h.active("web").as_deref(), Some(first.id.as_str()));
    assert_eq!(h.serving("web"), serving);
}

#[tokio::test]
async fn a_deployment_cancelled_in_its_health_gate_removes_its_replicas() {
    let h = Harness::with(|s| s.health_timeout = Duration::from_secs(30));
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    let serving = h.serving("web");
    h.set_image("web", "app:v2");
    h.engine.image_behaves("app:v2", Behaviour::Refusing);
    let probes = h.engine.calls(Call::ReplicaState);
    let d = h.deploy("web");
    h.engine.wait_calls(Call::ReplicaState, probes + 2).await;
    h.orch.cancel(&d.id).expect("cancel");
    let d = h.ended(&d.id).await;
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    assert!(h.engine.containers_of(&d.id).is_empty());
    assert_eq!(h.active("web").as_deref(), Some(first.id.as_str()));
    assert_eq!(h.serving("web"), serving);
}

#[tokio::test]
async fn a_rollback_makes_the_rolled_back_spec_current() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    h.set_image("web", "app:v2");
    let second = h.deploy_and_wait("web").await;
    assert_eq!(second.status, DeploymentStatus::Succeeded);
    let back = h.orch.rollback("web", &first.id).expect("rollback");
    assert_eq!(back.rollback_of.as_deref(), Some(first.id.as_str()));
    assert_eq!(back.image_id, first.image_id, "the image is pinned by id");
    let back = h.ended(&back.id).await;
    assert_eq!(back.status, DeploymentStatus::Succeeded, "{:?}", back.error);
    let app = h.store.app("web").expect("app");
    assert_eq!(app.active_deployment.as_deref(), Some(back.id.as_str()));
    assert_eq!(app.spec.image, "app:v1");
    assert!(h.engine.containers_of(&second.id).is_empty());
    assert_eq!(h.serving("web"), h.engine.running_of(&back.id));
    // A deployment of another app cannot be the target.
    h.create_app(&app_json("api", "api:v1", 1, ""));
    assert!(h.orch.rollback("api", &first.id).is_err());
}

/// Counts a request in flight on the replica serving `app` now.
fn request_on(h: &Harness, app: &str) -> (String, berth_proxy::UpstreamGuard) {
    let replica = h.orch.inner.routing.replicas(app)[0].clone();
    let guard = berth_proxy::Upstream::with_state(replica.addr, replica.state.clone())
        .acquire()
        .expect("a replica that is not draining takes requests");
    (replica.container, guard)
}

#[tokio::test]
async fn a_previous_replica_drains_until_its_requests_end() {
    let h = Harness::with(|s| s.drain_timeout = Duration::from_secs(5));
    h.create_app(&app_json("web", "app:v1", 1, ""));
    h.deploy_and_wait("web").await;
    let (old, request) = request_on(&h, "web");
    h.set_image("web", "app:v2");
    let d = h.deploy("web");
    h.engine
        .wait_until(|e| e.running_of(&d.id).len() == 1)
        .await;
    let new = h.engine.running_of(&d.id);
    eventually("the routes switch", || h.serving("web") == new).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        h.engine.is_running(&old),
        "the old replica waits for its request"
    );
    assert_eq!(h.routed("web.test"), h.addrs_of(&new));
    drop(request);
    let d = h.ended(&d.id).await;
    assert_eq!(d.status, DeploymentStatus::Succeeded);
    assert!(!h.engine.container_ids().contains(&old));
}

#[tokio::test]
async fn a_previous_replica_goes_at_the_drain_deadline() {
    let h = Harness::with(|s| s.drain_timeout = Duration::from_millis(200));
    h.create_app(&app_json("web", "app:v1", 1, ""));
    h.deploy_and_wait("web").await;
    let (old, _request) = request_on(&h, "web");
    h.set_image("web", "app:v2");
    let d = h.deploy_and_wait("web").await;
    assert_eq!(d.status, DeploymentStatus::Succeeded);
    assert!(!h.engine.container_ids().contains(&old));
}
