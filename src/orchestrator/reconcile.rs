//! Reconcile at start-up: compare the store's desired state with the
//! containers the engine reports (by label) and repair both ways; remove
//! empty duplicates of the instance network.

use std::collections::HashMap;

use super::engine::ReplicaState;
use super::{lock, OpError, Orchestrator, Replica, LABEL_APP, LABEL_DEPLOYMENT};
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
            .apps()?
            .into_iter()
            .map(|a| (a.spec.name.clone(), a))
            .collect();
        let mut adopted: HashMap<String, Vec<String>> = HashMap::new();
        for c in engine.instance_containers().await? {
            let Some(id) = c.id else { continue };
            let labels = c.labels.unwrap_or_default();
            let app = labels.get(LABEL_APP);
            let deployment = labels.get(LABEL_DEPLOYMENT);
            let active = app
                .and_then(|a| apps.get(a))
                .and_then(|a| a.active_deployment.as_ref());
            match (app, active) {
                (Some(app), Some(active)) if Some(active) == deployment => {
                    adopted.entry(app.clone()).or_default().push(id);
                }
                _ => {
                    tracing::info!(container = %id, app = ?app, "removing a container no app owns");
                    if let Err(err) = engine.remove(&id, grace).await {
                        tracing::warn!(container = %id, %err, "could not remove a stray container");
                    }
                }
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
                if let Ok(ReplicaState::Exited(_)) = engine.replica_state(&id).await {
                    if let Err(err) = engine.start(&id).await {
                        tracing::warn!(container = %id, %err, "could not restart a replica");
                        continue;
                    }
                }
                if let Ok(ReplicaState::Running { addr: Some(ip), .. }) =
                    engine.replica_state(&id).await
                {
                    replicas.push(Replica::new(
                        id,
                        std::net::SocketAddr::new(ip, deployment.spec.port),
                    ));
                }
            }
            if replicas.len() < deployment.spec.replicas as usize {
                // The version that served before, not edits made since; a
                // built image is reused rather than built again.
                let mut again = DeploymentRecord::queued(&deployment.spec, Trigger::Restart);
                if deployment.spec.source.is_some() {
                    again.image = deployment.image.clone();
                    again.image_id = deployment.image_id.clone();
                    again.commit = deployment.commit.clone();
                }
                redeploy.push(again);
            }
            tracing::info!(app = %app.spec.name, replicas = replicas.len(), "adopted running replicas");
            lock(&self.inner.live).insert(app.spec.name.clone(), replicas);
        }
        self.rebuild_routes()?;
        for again in redeploy {
            if queued.iter().any(|d| d.app == again.app) {
                continue; // a queued deployment will replace them anyway
            }
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
