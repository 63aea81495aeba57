//! Deployments of static sites: build (or, for a rollback, reuse) the
//! site's files, load them into memory, commit, and swap the route table
//! to serve them from the edge itself. No container runs.

use std::sync::Arc;
use std::time::Duration;

use berth_proxy::{Site, SiteOptions};
use tokio_util::sync::CancellationToken;

use super::deploy::DeployError;
use super::Orchestrator;
use crate::builds::Artifact;
use crate::store::{DeploymentRecord, DeploymentStatus, Phase};

/// Time reading and compressing a site's files may take.
const SITE_LOAD_DEADLINE: Duration = Duration::from_secs(120);

impl Orchestrator {
    /// The running part of a static site's deployment, to its end.
    pub(super) async fn run_site(
        &self,
        record: &DeploymentRecord,
        cancel: &CancellationToken,
        why: impl Fn() -> String,
    ) {
        let id = record.id.as_str();
        match self.publish_site(record, cancel).await {
            Ok((site, files_of)) => self.commit_site(record, site, files_of).await,
            Err(err) => {
                let message = match err {
                    DeployError::Cancelled => why(),
                    err => err.to_string(),
                };
                let status = if cancel.is_cancelled() {
                    DeploymentStatus::Cancelled
                } else {
                    DeploymentStatus::Failed
                };
                if record.site.is_none() {
                    let dir = self.inner.builder.site_dir(&record.app, id);
                    let _ = tokio::fs::remove_dir_all(dir).await;
                }
                self.end_unsuccessful(record, status, message, "site deployment");
            }
        }
    }

    /// Builds the site (or takes a rollback's files) and loads it.
    /// Returns the site and the deployment whose files it is.
    async fn publish_site(
        &self,
        record: &DeploymentRecord,
        cancel: &CancellationToken,
    ) -> Result<(Arc<Site>, String), DeployError> {
        let log = self.inner.logs.open(&record.id);
        let files_of = match &record.site {
            Some(target) => {
                log.push(&format!("serving the files of deployment {target} again"));
                target.clone()
            }
            None => match self.build_source(record, cancel).await?.artifact {
                Artifact::Site => record.id.clone(),
                Artifact::Image { .. } => {
                    return Err(DeployError::Unhealthy(
                        "the build made an image, not a site".into(),
                    ))
                }
            },
        };
        let site = self.load_site(record, &files_of).await?;
        log.push(&format!(
            "site loaded: {} file(s), {} KiB",
            site.files(),
            site.bytes() / 1024
        ));
        self.reached(&record.id, Phase::Healthy);
        Ok((site, files_of))
    }

    /// Loads the files of deployment `files_of` of the record's app.
    async fn load_site(
        &self,
        record: &DeploymentRecord,
        files_of: &str,
    ) -> Result<Arc<Site>, DeployError> {
        let dir = self.inner.builder.site_dir(&record.app, files_of);
        let options = SiteOptions {
            spa: record.spec.build.as_ref().is_some_and(|b| b.spa),
            max_bytes: self.inner.builder.max_site_bytes(),
        };
        let load = tokio::task::spawn_blocking(move || Site::load(&dir, options));
        let loaded = tokio::time::timeout(SITE_LOAD_DEADLINE, load)
            .await
            .map_err(|_| {
                DeployError::Unhealthy(format!(
                    "loading the site took longer than {}s; publish fewer files",
                    SITE_LOAD_DEADLINE.as_secs()
                ))
            })?
            .map_err(|e| DeployError::Unhealthy(format!("loading the site failed: {e}")))?;
        loaded
            .map(Arc::new)
            .map_err(|e| DeployError::Unhealthy(format!("the site cannot be served: {e}")))
    }

    /// Makes a loaded site the app's active deployment and serves it.
    async fn commit_site(&self, record: &DeploymentRecord, site: Arc<Site>, files_of: String) {
        let id = record.id.as_str();
        if let Err(err) = self.inner.store.activate_deployment(id) {
            tracing::warn!(deployment = id, %err, "could not activate the deployment");
            self.finish_deployment(id, DeploymentStatus::Failed, Some(err.to_string()));
            return;
        }
        let _ = self
            .inner
            .store
            .update_deployment(id, |d| d.site = Some(files_of));
        self.inner
            .metrics
            .deployment_finished(DeploymentStatus::Succeeded);
        let switch = std::time::Instant::now();
        self.inner.routing.serve_site(&record.app, site);
        self.reached(id, Phase::Switched);
        let log = self.inner.logs.open(id);
        log.push(&format!(
            "routes switched to the new site in {} µs; deployment succeeded",
            switch.elapsed().as_micros()
        ));
        // Containers of an earlier, container-based version go.
        if let Ok(old) = self.containers_of(&record.app, None).await {
            if !old.is_empty() {
                let previous = self.inner.routing.take(&record.app);
                self.drain(&previous).await;
                if let Err(err) = self.remove_containers(old.iter().map(String::as_str)).await {
                    tracing::warn!(%err, "could not remove a previous replica");
                }
            }
        }
        self.reached(id, Phase::Finished);
        self.prune_sites(&record.app);
        self.close_log(id);
    }

    /// Removes site files that fell out of the rollback window.
    pub(super) fn prune_sites(&self, app: &str) {
        let window = self.inner.settings.rollback_window;
        let Ok(deployments) = self.inner.store.app_deployments(app) else {
            return;
        };
        let keep: Vec<String> = deployments
            .into_iter()
            .filter(|d| d.status == DeploymentStatus::Succeeded)
            .take(window)
            .filter_map(|d| d.site)
            .collect();
        self.inner.builder.prune_sites(app, &keep);
    }

    /// At start-up: loads the site of a static app's active deployment.
    /// Returns false when its files are gone (the app must be redeployed).
    pub(super) async fn restore_site(&self, deployment: &DeploymentRecord) -> bool {
        let files_of = deployment
            .site
            .clone()
            .unwrap_or_else(|| deployment.id.clone());
        match self.load_site(deployment, &files_of).await {
            Ok(site) => {
                self.inner.routing.adopt_site(&deployment.app, site);
                true
            }
            Err(err) => {
                tracing::warn!(app = %deployment.app, %err, "site files unusable; redeploying");
                false
            }
        }
    }
}
