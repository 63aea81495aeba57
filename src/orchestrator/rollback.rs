//! The rollback window: manual rollbacks to one of an app's last
//! successful deployments, the automatic rollback of a version that fails
//! soon after its switch, and pruning of images that fell out of the
//! window.

use berth_config::FieldError;

use super::{lock, OpError, Orchestrator};
use crate::store::{DeploymentRecord, DeploymentStatus, StoreError, Trigger};

impl Orchestrator {
    /// Queues a return to one of the app's last `rollback_window`
    /// successful deployments: its spec, with its image pinned by id (no
    /// registry needed).
    pub fn rollback(&self, app: &str, target: &str) -> Result<DeploymentRecord, OpError> {
        self.inner.store.app(app)?;
        let record = self.inner.store.deployment(target)?;
        let field = "deployment_id";
        if record.app != app {
            return Err(StoreError::Invalid(FieldError::new(
                field,
                format!(
                    "deployment {target} belongs to app {:?}; give one of {app:?}'s deployments",
                    record.app
                ),
            ))
            .into());
        }
        let window = self.inner.settings.rollback_window;
        let in_window = self
            .inner
            .store
            .app_deployments(app)?
            .into_iter()
            .filter(|d| d.status == DeploymentStatus::Succeeded)
            .take(window)
            .any(|d| d.id == target);
        if !in_window || (record.image_id.is_none() && record.site.is_none()) {
            return Err(StoreError::Conflict(FieldError::new(
                field,
                format!(
                    "deployment {target} is not among the app's last {window} successful deployments; roll back to one of those"
                ),
            ))
            .into());
        }
        self.queue_rollback(record)
    }

    /// Queues a deployment of `target`'s spec with its image pinned by id.
    pub(super) fn queue_rollback(
        &self,
        target: DeploymentRecord,
    ) -> Result<DeploymentRecord, OpError> {
        let mut deployment = DeploymentRecord::queued(&target.spec, Trigger::Rollback);
        deployment.image = target.image.clone();
        deployment.image_id = target.image_id.clone();
        deployment.commit = target.commit.clone();
        deployment.commit_message = target.commit_message.clone();
        deployment.site = target.site.clone();
        deployment.rollback_of = Some(target.id);
        self.enqueue_record(deployment)
    }

    /// Starts the watch window of a deployment that just switched.
    pub(super) fn watch(&self, app: &str, deployment: &str) {
        let window = self.inner.settings.rollback_watch;
        if window.is_zero() {
            return;
        }
        let until = tokio::time::Instant::now() + window;
        lock(&self.inner.watches).insert(app.to_string(), (deployment.to_string(), until));
    }

    /// A replica of `deployment` failed: if that deployment is still in
    /// its watch window, mark it rolled back and queue a rollback to the
    /// app's previous successful deployment.
    pub(super) fn replica_failed(&self, app: &str, deployment: &str, why: &str) {
        let watched = {
            let mut watches = lock(&self.inner.watches);
            match watches.get(app) {
                Some((id, until)) if id == deployment && tokio::time::Instant::now() < *until => {
                    watches.remove(app);
                    true
                }
                _ => false,
            }
        };
        if !watched {
            return;
        }
        let previous = self.previous_success(app, deployment);
        let reason =
            format!("a new replica failed ({why}) within the watch window after the switch");
        let Some(previous) = previous else {
            tracing::warn!(app, deployment, %reason, "no earlier version to roll back to");
            return;
        };
        let to = previous.id.clone();
        tracing::warn!(app, deployment, %reason, %to, "rolling back automatically");
        // Queue first, so whoever sees `rolled_back` also sees the rollback.
        if let Err(err) = self.queue_rollback(previous) {
            tracing::error!(app, %err, "automatic rollback could not be queued");
        }
        let _ = self.inner.store.update_deployment(deployment, |d| {
            d.status = DeploymentStatus::RolledBack;
            d.error = Some(format!("{reason}; rolling back to deployment {to}"));
        });
        self.inner
            .metrics
            .deployment_finished(DeploymentStatus::RolledBack);
    }

    /// The app's newest successful deployment other than `except`.
    pub(super) fn previous_success(&self, app: &str, except: &str) -> Option<DeploymentRecord> {
        self.inner
            .store
            .app_deployments(app)
            .ok()?
            .into_iter()
            .find(|d| d.status == DeploymentStatus::Succeeded && d.id != except)
    }

    /// Removes the app's images that fell out of the rollback window and
    /// that no app serves from.
    pub(super) async fn prune_images(&self, app: &str) -> Result<(), OpError> {
        let window = self.inner.settings.rollback_window;
        let succeeded: Vec<DeploymentRecord> = self
            .inner
            .store
            .app_deployments(app)?
            .into_iter()
            .filter(|d| d.status == DeploymentStatus::Succeeded)
            .collect();
        let mut keep: Vec<String> = succeeded
            .iter()
            .take(window)
            .filter_map(|d| d.image_id.clone())
            .collect();
        for other in self.inner.store.apps() {
            if let Some(active) = &other.active_deployment {
                if let Some(id) = self.inner.store.deployment(active)?.image_id {
                    keep.push(id);
                }
            }
        }
        let (built, pulled): (Vec<&DeploymentRecord>, Vec<&DeploymentRecord>) = succeeded
            .iter()
            .skip(window)
            .partition(|d| self.built_here(d));
        let mut old: Vec<String> = pulled
            .iter()
            .filter_map(|d| d.image_id.clone())
            .filter(|id| !keep.contains(id))
            .collect();
        old.dedup();
        for id in old {
            self.inner.engine.remove_image(&id, false).await?;
        }
        // A built image goes by its deployment's tag: an identical rebuild
        // shares the image under a newer tag, which keeps it.
        for d in built {
            self.inner.engine.remove_image(&d.image, false).await?;
        }
        Ok(())
    }

    /// Whether berth built the deployment's image (tagged for it).
    pub(super) fn built_here(&self, d: &DeploymentRecord) -> bool {
        d.spec.source.is_some()
            && d.image
                .starts_with(&format!("berth-{}/{}:", self.instance(), d.app))
    }
}
