//! One deployment, from queue to serving: wait for the app's turn, start
//! the new replicas, gate them on health, commit, swap routes, remove the
//! previous replicas. On failure or cancel the new replicas are removed and
//! the previous version keeps serving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use super::mounts::Prepared;
use super::rollout::Step;
use super::{
    lock, EngineError, Orchestrator, Replica, LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE,
};
use crate::engine::clock;
use crate::engine::{ReplicaConfig, LABEL_REPLICA};
use crate::store::{DeploymentRecord, DeploymentStatus, Phase};

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
    /// Checking out or building the source failed.
    #[error(transparent)]
    Build(#[from] crate::builds::BuildError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The app's secrets could not be opened.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The app's volumes or mounts could not be prepared.
    #[error(transparent)]
    Mount(#[from] super::mounts::MountError),
}

/// The handle of a queued or running deployment.
#[derive(Clone)]
pub(super) struct Job {
    pub(super) app: String,
    pub(super) cancel: CancellationToken,
    /// Why it was cancelled, recorded in the deployment's `error`.
    pub(super) reason: Arc<OnceLock<String>>,
    /// Set once it holds its app's turn and a permit.
    pub(super) running: Arc<AtomicBool>,
}

impl Job {
    pub(super) fn cancel(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.cancel.cancel();
    }
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
            d.reached(Phase::Running);
        });
        if let Err(err) = started {
            tracing::debug!(deployment = id, %err, "deployment vanished before it ran");
            return;
        }
        tracing::info!(app = %record.app, deployment = id, image = %record.image, "deploying");
        self.inner.logs.open(id).push("running");
        let ((), timing) = clock::measure(self.run(&record, cancel, why)).await;
        tracing::info!(deployment = id, ?timing, "deployment ended");
        if let Err(err) = self
            .inner
            .store
            .update_deployment(id, |d| d.timing = Some(timing))
        {
            tracing::debug!(deployment = id, %err, "could not record the timing");
        }
    }

    /// The running part of a deployment, to its end.
    async fn run(
        &self,
        record: &DeploymentRecord,
        cancel: &CancellationToken,
        why: impl Fn() -> String,
    ) {
        let id = record.id.as_str();
        if record.spec.is_static() {
            return self.run_site(record, cancel, why).await;
        }
        let mut progress = Progress::default();
        match self.execute(record, &mut progress, cancel).await {
            Ok(replicas) => self.commit(record, replicas).await,
            Err(err) => {
                // New replicas that already serve (earlier batches) leave
                // the routes and drain before they go.
                let serving_new = self.inner.routing.edit(&record.app, |current| {
                    let (new, old): (Vec<Replica>, Vec<Replica>) = current
                        .drain(..)
                        .partition(|r| progress.created.contains(&r.container));
                    *current = old;
                    new
                });
                if !serving_new.is_empty() {
                    self.drain(&serving_new).await;
                }
                let created = progress.created.iter().map(String::as_str);
                if let Err(e) = self.remove_containers(created).await {
                    tracing::warn!(%e, "could not remove a replica of a failed deployment");
                }
                // An image built for this deployment goes with it.
                if record.image_id.is_none() {
                    if let Ok(now) = self.inner.store.deployment(id) {
                        if self.built_here(&now) {
                            if let Err(e) = self.inner.engine.remove_image(&now.image, false).await
                            {
                                tracing::warn!(%e, "could not remove the image of a failed deployment");
                            }
                        }
                    }
                }
                let message = match err {
                    DeployError::Cancelled => why(),
                    err => err.to_string(),
                };
                if progress.retired > 0 {
                    // Old replicas were already retired: bring the previous
                    // version back to its full count.
                    self.abort_rollout(record, &message);
                    return;
                }
                let status = if cancel.is_cancelled() {
                    DeploymentStatus::Cancelled
                } else {
                    DeploymentStatus::Failed
                };
                self.end_unsuccessful(record, status, message, "deployment");
            }
        }
    }

    /// Ends a deployment (`what`: "deployment", "site deployment") that
    /// failed or was cancelled before it retired anything, saying in
    /// berth's log and the deployment's whether the previous version keeps
    /// serving or nothing serves the app yet (a first deployment).
    pub(super) fn end_unsuccessful(
        &self,
        record: &DeploymentRecord,
        status: DeploymentStatus,
        message: String,
        what: &str,
    ) {
        let id = record.id.as_str();
        let serves = match self.inner.store.app(&record.app) {
            Ok(app) => app.active_deployment.is_some(),
            Err(_) => false,
        };
        let after = if serves {
            "the previous version keeps serving"
        } else {
            "nothing serves this app yet"
        };
        tracing::warn!(app = %record.app, deployment = id, %message, "{what} did not succeed; {after}");
        self.inner.logs.open(id).push(after);
        self.finish_deployment(id, status, Some(message));
    }

    /// Ends a rollout that failed after some old replicas were retired:
    /// `rolled_back`, and the previous successful deployment is queued.
    fn abort_rollout(&self, record: &DeploymentRecord, message: &str) {
        let id = record.id.as_str();
        let Some(previous) = self.previous_success(&record.app, id) else {
            return self.finish_deployment(id, DeploymentStatus::Failed, Some(message.to_string()));
        };
        let reason = format!("{message}; rolling back to deployment {}", previous.id);
        tracing::warn!(app = %record.app, deployment = id, %reason, "rollout failed midway");
        // Queue first, so whoever sees `rolled_back` also sees the rollback.
        if let Err(err) = self.queue_rollback(previous) {
            tracing::error!(app = %record.app, %err, "rollback could not be queued");
        }
        self.finish_deployment(id, DeploymentStatus::RolledBack, Some(reason));
    }

    /// Pulls, starts and gates the new replicas, batch by batch; after each
    /// batch but the last, the batch joins the routes and as many old
    /// replicas are retired. `progress` tells the caller what to undo.
    async fn execute(
        &self,
        record: &DeploymentRecord,
        progress: &mut Progress,
        cancel: &CancellationToken,
    ) -> Result<Vec<Replica>, DeployError> {
        let engine = &self.inner.engine;
        let settings = &self.inner.settings;
        let log = self.inner.logs.open(&record.id);
        let network = engine.ensure_network().await?;
        match &record.image_id {
            Some(pinned) => log.push(&format!("using pinned image {pinned} ({})", record.image)),
            None if record.spec.source.is_some() => log.push("building from source"),
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
            None if record.spec.source.is_some() => {
                match self.build_source(record, cancel).await?.artifact {
                    crate::builds::Artifact::Image { id, .. } => id,
                    crate::builds::Artifact::Site => {
                        return Err(DeployError::Unhealthy(
                            "a static site cannot run as containers".into(),
                        ))
                    }
                }
            }
            None => engine
                .ensure_image(&record.image, settings.pull_timeout, cancel)
                .await
                .map_err(|e| match e {
                    EngineError::Cancelled => DeployError::Cancelled,
                    e => DeployError::Engine(e),
                })?,
        };
        log.push(&format!("image {image_id}"));
        let _ = self.inner.store.update_deployment(&record.id, |d| {
            d.image_id = Some(image_id.clone());
            d.reached(Phase::ImageReady);
        });
        let spec = &record.spec;
        let volumes = super::mounts::Volumes::new(engine.as_ref());
        let mounts = volumes.prepare(spec, settings.allow_bind_mounts).await?;
        if !spec.mounts.is_empty() {
            log.push(&format!("{} mount(s) ready", spec.mounts.len()));
        }
        let mut ready: Vec<Replica> = Vec::new();
        for step in super::rollout::plan(spec.replicas, spec.batch_size, spec.strategy) {
            match step {
                Step::RetireAll => {
                    // The image is ready: only now do the old replicas go,
                    // so a failed pull or build costs no downtime.
                    log.push(
                        "strategy recreate: the previous replicas stop before the new ones start",
                    );
                    progress.retired += self.step(record, &[], usize::MAX).await;
                }
                Step::Retire(count) => {
                    progress.retired += self.step(record, &ready, count).await;
                }
                Step::Start(indexes) => {
                    let mut batch_ids = Vec::new();
                    for i in indexes {
                        if cancel.is_cancelled() {
                            return Err(DeployError::Cancelled);
                        }
                        let config = replica_config(
                            self.instance(),
                            record,
                            i,
                            &image_id,
                            &network,
                            &mounts,
                        );
                        log.push(&format!("starting replica {i} as {}", config.name));
                        let id = engine.start_replica(config).await?;
                        progress.created.push(id.clone());
                        batch_ids.push(id);
                    }
                    log.push(&format!(
                        "waiting up to {}s for {} replica(s) to pass the {:?} health check",
                        settings.health_timeout.as_secs(),
                        batch_ids.len(),
                        spec.health_check.kind
                    ));
                    let mut healthy = self
                        .wait_all_healthy(&batch_ids, spec.port, &spec.health_check, cancel)
                        .await?;
                    for r in &healthy {
                        log.push(&format!(
                            "replica {} is healthy at {}",
                            short(&r.container),
                            r.addr
                        ));
                    }
                    ready.append(&mut healthy);
                }
            }
        }
        self.reached(&record.id, Phase::Healthy);
        Ok(ready)
    }

    /// A rollback that serves, of an app that runs an image: when the
    /// image's tag has moved since (a newer image under the same tag), it
    /// points at the rolled-back image (`id`) again, so the app's spec
    /// (which the rollback restored) names what serves and a plain deploy
    /// brings no other version back. A tag another app also runs is left
    /// alone. A failure only warns: the rollback serves anyway.
    async fn repoint_tag(&self, record: &DeploymentRecord, id: &str) {
        if record.rollback_of.is_none() || record.spec.source.is_some() {
            return;
        }
        let engine = &self.inner.engine;
        let log = self.inner.logs.open(&record.id);
        // A tag other apps run too is theirs as well: it stays.
        let shared = self
            .inner
            .store
            .apps()
            .iter()
            .any(|a| a.spec.name != record.app && a.spec.image == record.image);
        if shared {
            log.push(&format!(
                "{} is also the image of another app, so its tag is left as it is; pin this version by digest to keep it on a plain deploy",
                record.image
            ));
            return;
        }
        match engine.local_image(&record.image).await {
            Ok(Some(now)) if now == id => {}
            Ok(_) => match engine.tag(id, &record.image).await {
                Ok(()) => log.push(&format!(
                    "{} named another image; it names the rolled-back one again",
                    record.image
                )),
                Err(err) => log.push(&format!("could not point {} back: {err}", record.image)),
            },
            Err(err) => log.push(&format!("could not inspect {}: {err}", record.image)),
        }
    }

    /// Records a phase of a deployment in the store.
    pub(super) fn reached(&self, id: &str, phase: Phase) {
        if let Err(err) = self.inner.store.update_deployment(id, |d| d.reached(phase)) {
            tracing::debug!(deployment = id, %err, "could not record a phase");
        }
    }

    /// One step of a rolling deployment: the new replicas ready so far
    /// serve beside the old ones, and up to `retire` old ones drain and go.
    /// Returns how many old replicas were retired.
    async fn step(&self, record: &DeploymentRecord, ready: &[Replica], retire: usize) -> usize {
        let retired: Vec<Replica> = self.inner.routing.edit(&record.app, |current| {
            let is_new = |r: &Replica| ready.iter().any(|n| n.container == r.container);
            let mut old: Vec<Replica> = current.iter().filter(|r| !is_new(r)).cloned().collect();
            let retired: Vec<Replica> = old.drain(..retire.min(old.len())).collect();
            *current = ready.iter().cloned().chain(old).collect();
            retired
        });
        let log = self.inner.logs.open(&record.id);
        log.push(&format!(
            "{} new replica(s) serve; retiring {} old one(s)",
            ready.len(),
            retired.len()
        ));
        self.drain(&retired).await;
        let ids = retired.iter().map(|r| r.container.as_str());
        if let Err(err) = self.remove_containers(ids).await {
            tracing::warn!(%err, "could not remove a retired replica");
        }
        retired.len()
    }

    /// Makes a gated deployment the app's active one: store first, then
    /// the route table, then the previous replicas go.
    async fn commit(&self, record: &DeploymentRecord, replicas: Vec<Replica>) {
        let id = record.id.as_str();
        if let Err(err) = self.inner.store.activate_deployment(id) {
            // The app was deleted meanwhile: its new replicas go too.
            tracing::warn!(deployment = id, %err, "could not activate the deployment");
            let ids = replicas.iter().map(|r| r.container.as_str());
            if let Err(e) = self.remove_containers(ids).await {
                tracing::warn!(%e, "could not remove a replica of a deleted app");
            }
            self.finish_deployment(id, DeploymentStatus::Failed, Some(err.to_string()));
            return;
        }
        self.inner
            .metrics
            .deployment_finished(DeploymentStatus::Succeeded);
        let current: Vec<String> = replicas.iter().map(|r| r.container.clone()).collect();
        // An app that was a static site serves from containers now.
        let was_site = self.inner.routing.is_site(&record.app);
        let switch = std::time::Instant::now();
        let mut previous = self.inner.routing.serve(&record.app, replicas);
        // New replicas of earlier batches already serve: they stay.
        previous.retain(|r| !current.contains(&r.container));
        self.watch(&record.app, id);
        self.reached(id, Phase::Switched);
        let log = self.inner.logs.open(id);
        if let Some(target) = &record.rollback_of {
            log.push(&format!(
                "rolled back to deployment {target}: the app's spec names {} and its settings again",
                record.image
            ));
            if let Some(id) = &record.image_id {
                self.repoint_tag(record, id).await;
            }
        }
        log.push(&format!(
            "routes switched to the new replicas in {} µs; draining {} previous replica(s)",
            switch.elapsed().as_micros(),
            previous.len()
        ));
        tracing::info!(app = %record.app, deployment = id, "deployment serves; draining the previous replicas");
        let drain = std::time::Instant::now();
        self.drain(&previous).await;
        self.reached(id, Phase::Drained);
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
        let leaving = old
            .iter()
            .filter(|c| !current.contains(c))
            .map(String::as_str);
        if let Err(err) = self.remove_containers(leaving).await {
            tracing::warn!(%err, "could not remove a previous replica");
        }
        log.push("previous replicas removed; deployment succeeded");
        self.reached(id, Phase::Finished);
        if was_site {
            self.prune_sites(&record.app);
        }
        if let Err(err) = self.prune_images(&record.app).await {
            tracing::warn!(%err, "could not prune old images");
        }
        self.close_log(id);
    }

    pub(super) fn instance(&self) -> &str {
        self.inner.engine.instance()
    }
}

/// The container of replica `i` of deployment `record`: its image (by
/// id), network, mounts, labels and environment (with the replica's
/// identity, unless the app sets those variables itself).
pub(super) fn replica_config<'a>(
    instance: &str,
    record: &DeploymentRecord,
    i: u32,
    image_id: &'a str,
    network: &'a str,
    mounts: &Prepared,
) -> ReplicaConfig<'a> {
    let spec = &record.spec;
    let labels = HashMap::from([
        (LABEL_INSTANCE.to_string(), instance.to_string()),
        (LABEL_APP.to_string(), spec.name.clone()),
        (LABEL_DEPLOYMENT.to_string(), record.id.clone()),
        (LABEL_REPLICA.to_string(), i.to_string()),
    ]);
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (key, value) in [
        ("BERTH_APP", spec.name.clone()),
        ("BERTH_DEPLOYMENT", record.id.clone()),
        ("BERTH_REPLICA", i.to_string()),
    ] {
        if !spec.env.contains_key(key) {
            env.push(format!("{key}={value}"));
        }
    }
    let suffix = &record.id[record.id.len().saturating_sub(8)..];
    ReplicaConfig {
        name: format!("berth-{instance}-{}-{suffix}-{i}", spec.name),
        image: image_id,
        network,
        env,
        command: spec.command.clone(),
        cpus: spec.cpus,
        memory_mb: spec.memory_mb,
        labels,
        mounts: mounts.mounts.clone(),
        files: mounts.files.clone(),
    }
}

/// What a deployment has done so far, for undoing it.
#[derive(Default)]
pub(super) struct Progress {
    /// Containers it created.
    created: Vec<String>,
    /// Old replicas it already retired (rolling batches).
    retired: usize,
}

/// The first 12 characters of a container id, as `docker ps` shows it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
