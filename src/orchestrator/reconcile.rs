//! Reconcile at start-up: compare the store's desired state with the
//! containers the engine reports (by label) and repair both ways; remove
//! empty duplicates of the instance network. Which containers stay and
//! what is deployed again are pure functions ([`sort`], [`again_of`],
//! [`superseded_by`]), tested without an engine.

use std::collections::HashMap;

use super::{OpError, Orchestrator, Replica, LABEL_APP, LABEL_DEPLOYMENT};
use crate::engine::ReplicaState;
use crate::store::{DeploymentRecord, DeploymentStatus, Trigger};

impl Orchestrator {
    /// Adopts the running replicas of active deployments, removes
    /// containers of this instance that belong to no app or to an old
    /// deployment, ends deployments a previous process left unfinished,
    /// and redeploys apps whose replicas vanished.
    pub async fn reconcile(&self) -> Result<(), OpError> {
        let store = &self.inner.store;
        let engine = &self.inner.engine;
        let grace = self.inner.settings.stop_grace;
        // Duplicates of the instance network (an engine that allows them
        // and two first deployments at once) make its name ambiguous.
        if let Err(err) = engine.repair_networks().await {
            tracing::warn!(%err, "could not check the instance network for duplicates");
        }
        for d in store.deployments_with_status(&[DeploymentStatus::Running])? {
            // Its new replicas are not active, so they are removed below
            // and the last good version serves.
            store.update_deployment(&d.id, |d| {
                d.finish(
                    DeploymentStatus::Failed,
                    Some("interrupted: berth stopped before the deployment finished".into()),
                )
            })?;
        }
        // Queued deployments survive a restart: they run now.
        let queued = store.deployments_with_status(&[DeploymentStatus::Queued])?;
        let apps: HashMap<String, _> = store
            .apps()
            .into_iter()
            .map(|a| (a.spec.name.clone(), a))
            .collect();
        let found: Vec<Found> = engine
            .instance_containers()
            .await?
            .into_iter()
            .map(|c| Found {
                app: c.label(LABEL_APP).map(str::to_string),
                deployment: c.label(LABEL_DEPLOYMENT).map(str::to_string),
                id: c.id,
            })
            .collect();
        let active: HashMap<&str, Option<&str>> = apps
            .iter()
            .map(|(name, a)| (name.as_str(), a.active_deployment.as_deref()))
            .collect();
        let Sorted { mut adopted, stray } = sort(&active, &found);
        for id in stray {
            tracing::info!(container = %id, "removing a container no app owns");
            if let Err(err) = engine.remove(&id, grace).await {
                tracing::warn!(container = %id, %err, "could not remove a stray container");
            }
        }
        let mut redeploy = Vec::new();
        for app in apps.values() {
            let Some(active) = &app.active_deployment else {
                continue;
            };
            if app.stopped {
                continue;
            }
            let deployment = match store.deployment(active) {
                Ok(d) => d,
                Err(err) => {
                    tracing::warn!(app = %app.spec.name, %err, "active deployment unreadable; redeploying");
                    redeploy.push(DeploymentRecord::queued(&app.spec, Trigger::Restart));
                    continue;
                }
            };
            if deployment.spec.is_static() {
                if !self.restore_site(&deployment).await {
                    // Built again from the commit that served.
                    let mut again = DeploymentRecord::queued(&deployment.spec, Trigger::Restart);
                    again.commit = deployment.commit.clone();
                    redeploy.push(again);
                }
                continue;
            }
            let mut replicas = Vec::new();
            for id in adopted.remove(&app.spec.name).unwrap_or_default() {
                if let Ok(ReplicaState::Exited(_)) =
                    engine.replica_state(&id, deployment.spec.port).await
                {
                    if let Err(err) = engine.start(&id).await {
                        tracing::warn!(container = %id, %err, "could not restart a replica");
                        continue;
                    }
                }
                if let Ok(ReplicaState::Running {
                    addr: Some(addr), ..
                }) = engine.replica_state(&id, deployment.spec.port).await
                {
                    replicas.push(Replica::new(id, addr));
                }
            }
            if replicas.len() < deployment.spec.replicas as usize {
                redeploy.push(again_of(&deployment));
            }
            tracing::info!(app = %app.spec.name, replicas = replicas.len(), "adopted running replicas");
            self.inner.routing.adopt(&app.spec.name, replicas);
        }
        self.rebuild_routes();
        for again in superseded_by(redeploy, &queued) {
            tracing::info!(app = %again.app, "replicas are missing; redeploying");
            self.enqueue_record(again)?;
        }
        for d in queued {
            tracing::info!(app = %d.app, deployment = %d.id, "resuming a queued deployment");
            self.spawn_job(d);
        }
        Ok(())
    }
}

/// A container of the instance as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Container id.
    pub id: String,
    /// Its `berth.app` label.
    pub app: Option<String>,
    /// Its `berth.deployment` label.
    pub deployment: Option<String>,
}

/// The instance's containers, sorted at start-up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    /// Replicas of each app's active deployment: they stay (a stopped
    /// app's too, stopped).
    pub adopted: HashMap<String, Vec<String>>,
    /// Containers of no app, of an app without a deployment, or of a
    /// deployment that is not the active one: they go.
    pub stray: Vec<String>,
}

/// Sorts the containers `found` by the apps' active deployments
/// (`active`: app → its active deployment).
pub fn sort(active: &HashMap<&str, Option<&str>>, found: &[Found]) -> Sorted {
    let mut sorted = Sorted::default();
    for c in found {
        let serving = match (&c.app, &c.deployment) {
            (Some(app), Some(deployment)) => active
                .get(app.as_str())
                .is_some_and(|a| *a == Some(deployment.as_str())),
            _ => false,
        };
        match (&c.app, serving) {
            (Some(app), true) => sorted
                .adopted
                .entry(app.clone())
                .or_default()
                .push(c.id.clone()),
            _ => sorted.stray.push(c.id.clone()),
        }
    }
    sorted
}

/// The deployment that brings back the version that served before (not
/// edits made since); an image built from source is reused, not built
/// again.
pub fn again_of(deployment: &DeploymentRecord) -> DeploymentRecord {
    let mut again = DeploymentRecord::queued(&deployment.spec, Trigger::Restart);
    if deployment.spec.source.is_some() {
        again.image = deployment.image.clone();
        again.image_id = deployment.image_id.clone();
        again.commit = deployment.commit.clone();
    }
    again
}

/// The redeployments still needed: a queued deployment of the same app
/// replaces its replicas anyway.
pub fn superseded_by(
    redeploy: Vec<DeploymentRecord>,
    queued: &[DeploymentRecord],
) -> Vec<DeploymentRecord> {
    redeploy
        .into_iter()
        .filter(|again| !queued.iter().any(|d| d.app == again.app))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_config::AppInput;

    fn found(id: &str, app: Option<&str>, deployment: Option<&str>) -> Found {
        Found {
            id: id.into(),
            app: app.map(str::to_string),
            deployment: deployment.map(str::to_string),
        }
    }

    #[test]
    fn only_replicas_of_active_deployments_stay() {
        let active = HashMap::from([("web", Some("d2")), ("new", None), ("off", Some("d9"))]);
        let sorted = sort(
            &active,
            &[
                found("a", Some("web"), Some("d2")),
                found("b", Some("web"), Some("d1")),
                found("c", Some("gone"), Some("d3")),
                found("d", Some("new"), Some("d4")),
                found("e", None, None),
                found("f", Some("off"), Some("d9")),
                found("g", Some("web"), Some("d2")),
            ],
        );
        assert_eq!(
            sorted.adopted,
            HashMap::from([
                ("web".to_string(), vec!["a".to_string(), "g".to_string()]),
                ("off".to_string(), vec!["f".to_string()]),
            ])
        );
        assert_eq!(sorted.stray, ["b", "c", "d", "e"]);
    }

    fn spec(json: &str) -> berth_config::AppSpec {
        serde_json::from_str::<AppInput>(json)
            .unwrap()
            .validate()
            .unwrap()
    }

    #[test]
    fn a_redeploy_brings_back_what_served_and_reuses_a_built_image() {
        let image = DeploymentRecord::queued(
            &spec(r#"{"name": "web", "image": "nginx:1", "port": 80}"#),
            Trigger::Api,
        );
        let again = again_of(&image);
        assert_eq!(again.image, "nginx:1");
        assert_eq!(again.trigger, Trigger::Restart);
        assert!(again.image_id.is_none(), "pulled images are resolved again");

        let mut built = DeploymentRecord::queued(
            &spec(
                r#"{"name": "site", "source": {"type": "git", "url": "https://git.example.com/a.git"}, "port": 8080}"#,
            ),
            Trigger::Webhook,
        );
        built.image = "berth-x/site:abc".into();
        built.image_id = Some("sha256:1".into());
        built.commit = Some("c0ffee".into());
        let again = again_of(&built);
        assert_eq!(again.image, "berth-x/site:abc");
        assert_eq!(again.image_id.as_deref(), Some("sha256:1"));
        assert_eq!(again.commit.as_deref(), Some("c0ffee"));
    }

    #[test]
    fn a_queued_deployment_supersedes_a_redeploy() {
        let web = spec(r#"{"name": "web", "image": "nginx:1", "port": 80}"#);
        let api = spec(r#"{"name": "api", "image": "nginx:1", "port": 80}"#);
        let redeploy = vec![
            DeploymentRecord::queued(&web, Trigger::Restart),
            DeploymentRecord::queued(&api, Trigger::Restart),
        ];
        let queued = [DeploymentRecord::queued(&web, Trigger::Api)];
        let left = superseded_by(redeploy, &queued);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].app, "api");
    }
}
