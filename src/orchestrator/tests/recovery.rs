//! Restart recovery (`reconcile`) with containers in every state, and
//! self-healing of replicas that were killed or removed behind berth's
//! back, with the crash-loop backoff.

use std::time::Duration;

use super::{app_json, eventually, Harness};
use crate::engine::fake::Call;
use crate::engine::{ContainerEngine, ContainerEvent};
use crate::engine::{LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE, LABEL_REPLICA};
use crate::store::{DeploymentRecord, DeploymentStatus, Trigger};

#[tokio::test]
async fn a_restart_adopts_restarts_removes_and_redeploys_what_it_finds() {
    let mut h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    h.create_app(&app_json("api", "api:v1", 2, ""));
    let new = h.create_app(&app_json("new", "new:v1", 1, ""));
    let web = h.deploy_and_wait("web").await;
    let api = h.deploy_and_wait("api").await;
    let web_ids = h.engine.running_of(&web.id);
    let api_ids = h.engine.running_of(&api.id);

    h.restart().await;
    // While berth was down: a replica stopped, one was removed, leftovers
    // of an old deployment, of a deleted app and of a build helper stayed,
    // a deployment was cut off while running and one was still queued.
    h.engine.kill(&web_ids[0]);
    h.engine.remove_behind_back(&api_ids[1]);
    let instance = (LABEL_INSTANCE, "t");
    let stale = h.engine.add_container(
        &[instance, (LABEL_APP, "web"), (LABEL_DEPLOYMENT, "old")],
        true,
    );
    let orphan = h.engine.add_container(
        &[instance, (LABEL_APP, "gone"), (LABEL_DEPLOYMENT, "x")],
        false,
    );
    let helper = h.engine.add_container(&[instance], false);
    let mut cut = DeploymentRecord::queued(&h.store.app("web").expect("web").spec, Trigger::Api);
    cut.status = DeploymentStatus::Running;
    h.store.insert_deployment(&cut).expect("insert");
    let queued = DeploymentRecord::queued(&new.spec, Trigger::Api);
    h.store.insert_deployment(&queued).expect("insert");

    h.orch.reconcile().await.expect("reconcile");

    let cut = h.store.deployment(&cut.id).expect("cut");
    assert_eq!(cut.status, DeploymentStatus::Failed);
    assert!(cut.error.unwrap_or_default().contains("interrupted"));
    assert!(
        h.engine.is_running(&web_ids[0]),
        "the stopped replica runs again"
    );
    assert_eq!(h.serving("web"), web_ids);
    assert_eq!(h.routed("web.test"), h.addrs_of(&web_ids));
    for id in [&stale, &orphan, &helper] {
        assert!(!h.engine.container_ids().contains(id), "{id} stayed");
    }
    // The app short of a replica serves with what is left, and is deployed again.
    assert_eq!(h.serving("api"), [api_ids[0].clone()]);
    let again = h
        .store
        .app_deployments("api")
        .expect("deployments")
        .into_iter()
        .find(|d| d.trigger == Trigger::Restart)
        .expect("api is redeployed");
    let again = h.ended(&again.id).await;
    assert_eq!(
        again.status,
        DeploymentStatus::Succeeded,
        "{:?}",
        again.error
    );
    assert_eq!(h.serving("api"), h.engine.running_of(&again.id));
    assert_eq!(h.serving("api").len(), 2);
    // The queued deployment ran.
    let queued = h.ended(&queued.id).await;
    assert_eq!(
        queued.status,
        DeploymentStatus::Succeeded,
        "{:?}",
        queued.error
    );
    assert_eq!(h.active("new").as_deref(), Some(queued.id.as_str()));
}

#[tokio::test]
async fn a_restart_keeps_a_stopped_app_stopped() {
    let mut h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 1, ""));
    let d = h.deploy_and_wait("web").await;
    h.orch.stop("web").await.expect("stop");
    assert!(h.engine.running_of(&d.id).is_empty());
    h.restart().await;
    h.orch.reconcile().await.expect("reconcile");
    assert_eq!(h.engine.containers_of(&d.id).len(), 1, "kept for a start");
    assert!(h.engine.running_of(&d.id).is_empty());
    assert!(h.serving("web").is_empty());
    assert_eq!(h.engine.calls(Call::Start), 0);
}

#[tokio::test]
async fn a_killed_replica_leaves_the_routes_and_comes_back_healed() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let d = h.deploy_and_wait("web").await;
    let ids = h.engine.running_of(&d.id);
    h.orch.supervise();
    h.engine.wait_until(|e| e.subscribers() > 0).await;

    h.engine.kill(&ids[0]);
    eventually("the killed replica leaves the routes", || {
        h.serving("web") == [ids[1].clone()]
    })
    .await;
    assert_eq!(h.routed("web.test"), h.addrs_of(&ids[1..]));

    h.orch.heal_all().await;
    assert!(h.engine.is_running(&ids[0]));
    eventually("the healed replica rejoins", || h.serving("web") == ids).await;
    assert_eq!(h.routed("web.test"), h.addrs_of(&ids));
    let note = h.orch.healing("web").unwrap_or_default();
    assert!(note.contains("started replica"), "{note}");
    let crashes = h.orch.crash_state("web", Some(&d.id));
    assert_eq!(crashes.restarts, 1, "{crashes:?}");
}

#[tokio::test]
async fn a_removed_replica_is_made_anew_with_its_index() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let d = h.deploy_and_wait("web").await;
    let ids = h.engine.running_of(&d.id);
    let index = h.engine.label_of(&ids[1], LABEL_REPLICA);
    h.engine.remove_behind_back(&ids[1]);
    h.orch.heal_all().await;
    let now = h.engine.running_of(&d.id);
    assert_eq!(now.len(), 2);
    let made: Vec<&String> = now.iter().filter(|id| !ids.contains(id)).collect();
    assert_eq!(made.len(), 1);
    assert_eq!(h.engine.label_of(made[0], LABEL_REPLICA), index);
    let note = h.orch.healing("web").unwrap_or_default();
    assert!(note.contains("made replica 1 anew"), "{note}");
}

#[tokio::test]
async fn a_crash_loop_backs_off_and_says_so() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 1, ""));
    let d = h.deploy_and_wait("web").await;
    let id = h.engine.running_of(&d.id).remove(0);
    h.orch.supervise();
    h.engine.wait_until(|e| e.subscribers() > 0).await;
    h.engine.kill(&id);
    h.orch.heal_all().await;
    assert!(
        h.engine.is_running(&id),
        "the first death is healed at once"
    );
    h.engine.kill(&id);
    h.orch.heal_all().await;
    assert!(
        !h.engine.is_running(&id),
        "the second waits for the backoff"
    );
    assert_eq!(h.engine.calls(Call::Start), 1);
    let note = h.orch.healing("web").unwrap_or_default();
    assert!(note.contains("next look in 2 s"), "{note}");
    // A third death within the window is a crash loop.
    ContainerEngine::start(h.engine.as_ref(), &id)
        .await
        .expect("start");
    h.engine.kill(&id);
    eventually("the app counts as crash-looping", || {
        h.orch.crash_state("web", Some(&d.id)).crash_loop
    })
    .await;
    let crashes = h.orch.crash_state("web", Some(&d.id));
    assert_eq!(crashes.restarts, 3);
    assert_eq!(crashes.last_exit.as_deref(), Some("exited with code 137"));
}

#[tokio::test]
async fn healing_leaves_a_stopped_app_and_a_busy_one_alone() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 1, ""));
    let d = h.deploy_and_wait("web").await;
    h.orch.stop("web").await.expect("stop");
    h.orch.heal_all().await;
    assert!(h.engine.running_of(&d.id).is_empty());
    assert_eq!(h.orch.healing("web"), None);
    // A deployment in flight replaces the replicas anyway.
    h.store
        .update_app("web", |r| {
            r.stopped = false;
            Ok(())
        })
        .expect("update");
    h.engine.hold(Call::EnsureImage);
    let next = h.deploy("web");
    h.engine.wait_calls(Call::EnsureImage, 2).await;
    h.orch.heal_all().await;
    assert_eq!(h.engine.calls(Call::Start), 0);
    h.engine.release(Call::EnsureImage);
    assert_eq!(h.ended(&next.id).await.status, DeploymentStatus::Succeeded);
}

#[tokio::test]
async fn a_new_version_dying_in_its_watch_window_is_rolled_back() {
    let h = Harness::with(|s| s.rollback_watch = Duration::from_secs(30));
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    h.set_image("web", "app:v2");
    let second = h.deploy_and_wait("web").await;
    assert_eq!(second.status, DeploymentStatus::Succeeded);
    h.orch.supervise();
    h.engine.wait_until(|e| e.subscribers() > 0).await;
    let new = h.engine.running_of(&second.id);
    h.engine.kill(&new[0]);
    eventually("the new version is marked rolled back", || {
        h.store
            .deployment(&second.id)
            .is_ok_and(|d| d.status == DeploymentStatus::RolledBack)
    })
    .await;
    let back = h
        .store
        .app_deployments("web")
        .expect("deployments")
        .into_iter()
        .find(|d| d.rollback_of.as_deref() == Some(first.id.as_str()))
        .expect("a rollback was queued");
    let back = h.ended(&back.id).await;
    assert_eq!(back.status, DeploymentStatus::Succeeded, "{:?}", back.error);
    assert_eq!(h.active("web").as_deref(), Some(back.id.as_str()));
    assert_eq!(h.store.app("web").expect("app").spec.image, "app:v1");
    assert!(h.engine.containers_of(&second.id).is_empty());
    assert_eq!(h.serving("web"), h.engine.running_of(&back.id));
}

#[tokio::test]
async fn events_in_any_order_leave_the_routes_right() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    let d = h.deploy_and_wait("web").await;
    let ids = h.engine.running_of(&d.id);
    h.orch.supervise();
    h.engine.wait_until(|e| e.subscribers() > 0).await;
    let event = |action: &str, container: &str, deployment: &str| ContainerEvent {
        action: action.to_string(),
        container: container.to_string(),
        app: "web".to_string(),
        deployment: deployment.to_string(),
        exit_code: None,
    };
    // Late or repeated news changes nothing: a start of a replica that
    // serves, a start of the previous version's, a death of an unknown one.
    h.engine.push_event(event("start", &ids[0], &d.id));
    h.engine.push_event(event("start", "gone", &first.id));
    h.engine.push_event(event("die", "unknown", &d.id));
    h.engine.push_event(event("destroy", "unknown", &d.id));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.serving("web"), ids);
    // Unhealthy leaves at once; healthy again rejoins after the gate.
    h.engine
        .push_event(event("health_status: unhealthy", &ids[1], &d.id));
    eventually("the unhealthy replica leaves", || {
        h.serving("web") == [ids[0].clone()]
    })
    .await;
    h.engine
        .push_event(event("health_status: healthy", &ids[1], &d.id));
    h.engine
        .push_event(event("health_status: healthy", &ids[1], &d.id));
    eventually("it rejoins", || h.serving("web") == ids).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.serving("web"), ids, "once, not twice");
    assert_eq!(h.routed("web.test"), h.addrs_of(&ids));
    // The stream ending (the engine restarted) is followed again.
    h.engine.end_events();
    h.engine.wait_until(|e| e.subscribers() > 0).await;
    h.engine.kill(&ids[0]);
    eventually("a death after the reconnect is seen", || {
        h.serving("web") == [ids[1].clone()]
    })
    .await;
}
