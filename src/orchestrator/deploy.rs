//! One deployment, from queue to serving: wait for the app's turn, start
//! the new replicas, gate them on health, commit, swap routes, remove the
//! previous replicas. On failure or cancel the new replicas are removed and
//! the previous version keeps serving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use super::engine::{ReplicaConfig, LABEL_REPLICA};
use super::{
    lock, EngineError, Job, Orchestrator, Replica, LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE,
};
use crate::store::{DeploymentRecord, DeploymentStatus};

/// Why a deployment did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The engine refused (pull, create, start).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A replica did not become healthy.
    #[error("{0}")]
    Unhealthy(String),
    /// Cancelled by the user, a newer operation or shutdown.
    #[error("cancelled")]
    Cancelled,
}

impl Orchestrator {
    /// Queues the job of a recorded deployment.
    pub(super) fn spawn_job(&self, record: DeploymentRecord) {
        let job = Job {
            app: record.app.clone(),
            cancel: self.inner.shutdown.child_token(),
            reason: Arc::new(OnceLock::new()),
            running: Arc::new(AtomicBool::new(false)),
        };
        lock(&self.inner.jobs).insert(record.id.clone(), job.clone());
        self.inner.logs.open(&record.id).push(&format!(
            "queued: deploy {} ({:?}, {} replica(s))",
            record.image, record.trigger, record.spec.replicas
        ));
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            let id = record.id.clone();
            this.run_job(record, &job).await;
            lock(&this.inner.jobs).remove(&id);
        });
    }

    async fn run_job(&self, record: DeploymentRecord, job: &Job) {
        let id = record.id.as_str();
        let cancel = &job.cancel;
        let why = || {
            job.reason
                .get()
                .cloned()
                .unwrap_or_else(|| "cancelled: berth is shutting down".to_string())
        };
        let mutex = lock(&self.inner.app_locks)
            .entry(record.app.clone())
            .or_default()
            .clone();
        let _turn = tokio::select! {
            _ = cancel.cancelled() => {
                return self.finish_deployment(id, DeploymentStatus::Cancelled, Some(why()));
            }
            guard = mutex.lock_owned() => guard,
        };
        let _permit = tokio::select! {
            _ = cancel.cancelled() => {
                return self.finish_deployment(id, DeploymentStatus::Cancelled, Some(why()));
            }
            permit = self.inner.permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        job.running.store(true, Ordering::SeqCst);
        if cancel.is_cancelled() {
            return self.finish_deployment(id, DeploymentStatus::Cancelled, Some(why()));
        }
        let started = self.inner.store.update_deployment(id, |d| {
            d.status = DeploymentStatus::Running;
            d.started_at = Some(time::OffsetDateTime::now_utc());
        });
        if let Err(err) = started {
            tracing::debug!(deployment = id, %err, "deployment vanished before it ran");
            return;
        }
        tracing::info!(app = %record.app, deployment = id, image = %record.image, "deploying");
        self.inner.logs.open(id).push("running");
        let mut created = Vec::new();
        match self.execute(&record, &mut created, cancel).await {
            Ok(replicas) => self.commit(&record, replicas).await,
            Err(err) => {
                let grace = self.inner.settings.stop_grace;
                let removals = created.iter().map(|c| self.inner.engine.remove(c, grace));
                for result in futures_util::future::join_all(removals).await {
                    if let Err(e) = result {
                        tracing::warn!(%e, "could not remove a replica of a failed deployment");
                    }
                }
                let (status, message) = match err {
                    DeployError::Cancelled => (DeploymentStatus::Cancelled, why()),
                    err => (DeploymentStatus::Failed, err.to_string()),
                };
                tracing::warn!(app = %record.app, deployment = id, %message, "deployment did not succeed; the previous version keeps serving");
                self.finish_deployment(id, status, Some(message));
            }
        }
    }

    /// Pulls, starts and gates the new replicas; `created` collects the ids
    /// of containers to clean up if this fails.
    async fn execute(
        &self,
        record: &DeploymentRecord,
        created: &mut Vec<String>,
        cancel: &CancellationToken,
    ) -> Result<Vec<Replica>, DeployError> {
        let engine = &self.inner.engine;
        let settings = &self.inner.settings;
        let log = self.inner.logs.open(&record.id);
        engine.ensure_network().await?;
        match &record.image_id {
            Some(pinned) => log.push(&format!("using pinned image {pinned} ({})", record.image)),
            None => log.push(&format!(
                "resolving image {} (pulled if not local)",
                record.image
            )),
        }
        let image_id = match &record.image_id {
            // A rollback runs the exact image it served before.
            Some(pinned) => engine.local_image(pinned).await?.ok_or_else(|| {
                DeployError::Unhealthy(format!(
                    "image {pinned} of {} is no longer on this machine",
                    record.image
                ))
            })?,
            None => engine
                .ensure_image(&record.image, settings.pull_timeout, cancel)
                .await
                .map_err(|e| match e {
                    EngineError::Cancelled => DeployError::Cancelled,
                    e => DeployError::Engine(e),
                })?,
        };
        log.push(&format!("image {image_id}"));
        let _ = self
            .inner
            .store
            .update_deployment(&record.id, |d| d.image_id = Some(image_id.clone()));
        let spec = &record.spec;
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let suffix = &record.id[record.id.len().saturating_sub(8)..];
        for i in 0..spec.replicas {
            if cancel.is_cancelled() {
                return Err(DeployError::Cancelled);
            }
            let labels = HashMap::from([
                (LABEL_INSTANCE.to_string(), self.instance().to_string()),
                (LABEL_APP.to_string(), spec.name.clone()),
                (LABEL_DEPLOYMENT.to_string(), record.id.clone()),
                (LABEL_REPLICA.to_string(), i.to_string()),
            ]);
            let name = format!("berth-{}-{}-{suffix}-{i}", self.instance(), spec.name);
            log.push(&format!("starting replica {i} as {name}"));
            let config = ReplicaConfig {
                name,
                image: &image_id,
                env: env.clone(),
                command: spec.command.clone(),
                cpus: spec.cpus,
                memory_mb: spec.memory_mb,
                labels,
            };
            match engine.start_replica(config).await {
                Ok(id) => created.push(id),
                Err(e) => return Err(e.into()),
            }
        }
        log.push(&format!(
            "waiting up to {}s for {} replica(s) to pass the {:?} health check",
            settings.health_timeout.as_secs(),
            created.len(),
            spec.health_check.kind
        ));
        let replicas = self
            .wait_all_healthy(created, spec.port, &spec.health_check, cancel)
            .await?;
        for r in &replicas {
            log.push(&format!(
                "replica {} is healthy at {}",
                short(&r.container),
                r.addr
            ));
        }
        Ok(replicas)
    }

    /// Makes a gated deployment the app's active one: store first, then
    /// the route table, then the previous replicas go.
    async fn commit(&self, record: &DeploymentRecord, replicas: Vec<Replica>) {
        let id = record.id.as_str();
        if let Err(err) = self.inner.store.activate_deployment(id) {
            // The app was deleted meanwhile: its new replicas go too.
            tracing::warn!(deployment = id, %err, "could not activate the deployment");
            for r in &replicas {
                let _ = self
                    .inner
                    .engine
                    .remove(&r.container, self.inner.settings.stop_grace)
                    .await;
            }
            self.finish_deployment(id, DeploymentStatus::Failed, Some(err.to_string()));
            return;
        }
        self.inner
            .metrics
            .deployment_finished(DeploymentStatus::Succeeded);
        let current: Vec<String> = replicas.iter().map(|r| r.container.clone()).collect();
        let previous = lock(&self.inner.live)
            .insert(record.app.clone(), replicas)
            .unwrap_or_default();
        let switch = std::time::Instant::now();
        if let Err(err) = self.rebuild_routes() {
            tracing::error!(%err, "could not rebuild routes");
        }
        self.watch(&record.app, id);
        let log = self.inner.logs.open(id);
        log.push(&format!(
            "routes switched to the new replicas in {} µs; draining {} previous replica(s)",
            switch.elapsed().as_micros(),
            previous.len()
        ));
        tracing::info!(app = %record.app, deployment = id, "deployment serves; draining the previous replicas");
        let drain = std::time::Instant::now();
        self.drain(&previous).await;
        log.push(&format!("drained in {} ms", drain.elapsed().as_millis()));
        // Every other container of the app goes, tracked or not.
        let old = match self.containers_of(&record.app, None).await {
            Ok(ids) => ids,
            Err(err) => {
                tracing::warn!(%err, "could not list the previous replicas; reconcile will remove them");
                self.close_log(id);
                return;
            }
        };
        let grace = self.inner.settings.stop_grace;
        let removals = old
            .iter()
            .filter(|c| !current.contains(c))
            .map(|c| self.inner.engine.remove(c, grace));
        for result in futures_util::future::join_all(removals).await {
            if let Err(err) = result {
                tracing::warn!(%err, "could not remove a previous replica");
            }
        }
        log.push("previous replicas removed; deployment succeeded");
        if let Err(err) = self.prune_images(&record.app).await {
            tracing::warn!(%err, "could not prune old images");
        }
        self.close_log(id);
    }

    fn instance(&self) -> &str {
        self.inner.engine.instance()
    }
}

/// The first 12 characters of a container id, as `docker ps` shows it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
