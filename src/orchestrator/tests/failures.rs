//! The engine failing each call it is asked: a deployment that fails
//! before its switch leaves the previous version serving and nothing of
//! its own behind; one that fails after the switch serves anyway and
//! leaves the leftovers to the next reconcile. Stop, start, delete and
//! reconcile report what the engine refused.

use super::{app_json, Harness};
use crate::engine::fake::Call;
use crate::engine::ContainerEngine;
use crate::store::DeploymentStatus;

/// Where in a deployment a call is made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// Before the switch: the deployment fails.
    Before,
    /// After the switch (removing old replicas, pruning images): it
    /// succeeds and something old is left behind.
    After,
}

#[tokio::test]
async fn a_deploy_survives_the_engine_failing_any_call() {
    let table = [
        (Call::EnsureNetwork, When::Before),
        (Call::EnsureImage, When::Before),
        (Call::EnsureVolume, When::Before),
        (Call::StartReplica, When::Before),
        (Call::ReplicaState, When::Before),
        (Call::InstanceContainers, When::After),
        (Call::Remove, When::After),
        (Call::RemoveImage, When::After),
    ];
    for (call, when) in table {
        let h = Harness::with(|s| s.rollback_window = 1);
        let volume = r#", "mounts": [{"type": "volume", "name": "data", "path": "/data"}]"#;
        h.create_app(&app_json("web", "app:v1", 2, volume));
        let first = h.deploy_and_wait("web").await;
        assert_eq!(first.status, DeploymentStatus::Succeeded, "{call:?}");
        let old = h.serving("web");
        h.set_image("web", "app:v2");
        h.engine.fail_always(call);
        let second = h.deploy_and_wait("web").await;
        let new = h.engine.running_of(&second.id);
        match when {
            When::Before => {
                assert_eq!(second.status, DeploymentStatus::Failed, "{call:?}");
                let error = second.error.unwrap_or_default();
                assert!(error.contains(&format!("{call:?}")), "{call:?}: {error}");
                assert_eq!(h.active("web").as_deref(), Some(first.id.as_str()));
                assert_eq!(h.serving("web"), old, "{call:?}");
                assert_eq!(h.routed("web.test"), h.addrs_of(&old), "{call:?}");
                assert!(h.engine.containers_of(&second.id).is_empty(), "{call:?}");
            }
            When::After => {
                assert_eq!(second.status, DeploymentStatus::Succeeded, "{call:?}");
                assert_eq!(h.active("web").as_deref(), Some(second.id.as_str()));
                assert_eq!(new.len(), 2, "{call:?}");
                assert_eq!(h.serving("web"), new, "{call:?}");
                assert_eq!(h.routed("web.test"), h.addrs_of(&new), "{call:?}");
                let left = h.engine.containers_of(&first.id).len();
                let image_left = h.engine.calls(Call::RemoveImage) > 0;
                match call {
                    Call::RemoveImage => assert!(image_left && left == 0),
                    _ => assert_eq!(left, 2, "{call:?}: the old replicas wait for reconcile"),
                }
                // The next start-up removes what was left.
                h.engine.heal(call);
                h.orch.reconcile().await.expect("reconcile");
                assert!(h.engine.containers_of(&first.id).is_empty(), "{call:?}");
                assert_eq!(h.serving("web"), new, "{call:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_failed_cleanup_still_fails_the_deployment_and_keeps_the_old_version() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 2, ""));
    let first = h.deploy_and_wait("web").await;
    let old = h.serving("web");
    h.set_image("web", "app:v2");
    // The second replica cannot start, and its sibling cannot be removed.
    h.engine.fail_nth(Call::StartReplica, 4);
    h.engine.fail_always(Call::Remove);
    let second = h.deploy_and_wait("web").await;
    assert_eq!(second.status, DeploymentStatus::Failed);
    assert_eq!(h.active("web").as_deref(), Some(first.id.as_str()));
    assert_eq!(h.serving("web"), old);
    assert_eq!(
        h.engine.containers_of(&second.id).len(),
        1,
        "left for reconcile"
    );
    h.engine.heal(Call::Remove);
    h.orch.reconcile().await.expect("reconcile");
    assert!(h.engine.containers_of(&second.id).is_empty());
    assert_eq!(h.serving("web"), old);
}

#[tokio::test]
async fn stop_start_delete_and_reconcile_report_the_engine_refusing() {
    let h = Harness::new();
    h.create_app(&app_json("web", "app:v1", 1, ""));
    let d = h.deploy_and_wait("web").await;

    h.engine.fail_always(Call::Stop);
    let Err(err) = h.orch.stop("web").await else {
        panic!("stop succeeded although the engine refused");
    };
    assert!(err.to_string().contains("Stop"), "{err}");
    h.engine.heal(Call::Stop);
    h.orch.stop("web").await.expect("stop");

    h.engine.fail_always(Call::Start);
    // A replica that does not start again is replaced by a deployment.
    let Err(err) = h.orch.start("web").await else {
        panic!("start succeeded although the engine refused");
    };
    assert!(err.to_string().contains("Start"), "{err}");
    h.engine.heal(Call::Start);
    assert!(matches!(
        h.orch.start("web").await.expect("start"),
        crate::orchestrator::StartOutcome::Started(_)
    ));
    assert_eq!(h.serving("web"), h.engine.running_of(&d.id));

    h.engine.fail_always(Call::InstanceContainers);
    assert!(h.orch.reconcile().await.is_err());
    assert!(h.orch.delete("web", false).await.is_err());
    assert!(
        h.store.app("web").is_ok(),
        "the app stays when its containers do"
    );
    h.engine.heal(Call::InstanceContainers);

    h.engine.fail_always(Call::BuiltImages);
    h.orch
        .delete("web", true)
        .await
        .expect("a failed image listing only warns");
    assert!(h.store.app("web").is_err());
    assert!(h.engine.container_ids().is_empty());
    assert!(h
        .engine
        .app_volumes("web")
        .await
        .expect("volumes")
        .is_empty());
}
