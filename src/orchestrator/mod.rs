//! The orchestrator: turns the desired state in the store into containers
//! on the Docker engine and into the route table the edge reads.
//!
//! Deployments run as tracked, cancellable tasks: one at a time per app,
//! at most `concurrency` at once. A deployment starts new replicas, gates
//! them on health with a deadline, commits itself in the store, swaps the
//! route table, then removes the previous replicas. A failed gate leaves
//! the previous version serving.

mod crashes;
mod deploy;
use deploy::Job;
mod follow;
mod heal;
mod health;
mod logbook;
mod logline;
mod metrics;
mod mounts;
mod reconcile;
mod rollback;
mod rollout;
mod routes;
pub use routes::Replica;
mod sites;
mod source;
mod supervise;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_acme::CertStore;
use berth_config::AppSpec;
use berth_proxy::Router;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::engine::{
    ContainerEngine, DockerEngine, EngineError, LogLine, LABEL_APP, LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
};
pub use crashes::CrashState;
use crashes::Crashes;
pub use follow::{
    ContainerLogs, FollowError, FollowEvent, FollowFrom, ReplicaChange, ReplicaLine, Skipped,
};
use logbook::DeployLog;
use logbook::Logbook;
use metrics::OrchestratorMetrics;

use crate::builds::Builder;
use crate::engine::clock;
use crate::secrets::SecretBox;
use crate::store::{AppRecord, DeploymentRecord, DeploymentStatus, Store, StoreError, Trigger};

/// Deadlines and bounds of deployments.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    /// Time new replicas have to become healthy.
    pub health_timeout: Duration,
    /// Grace period of `docker stop`.
    pub stop_grace: Duration,
    /// Time an image pull may take.
    pub pull_timeout: Duration,
    /// Time requests in flight on a leaving replica get before it stops.
    pub drain_timeout: Duration,
    /// Deployments running at once.
    pub concurrency: usize,
    /// Successful deployments per app one can roll back to (their images stay).
    pub rollback_window: usize,
    /// Window after a switch in which a failing new version rolls back; zero: off.
    pub rollback_watch: Duration,
    /// Whether apps may mount host paths.
    pub allow_bind_mounts: bool,
}

/// Why an orchestrator operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed.
    #[error("docker: {0}")]
    Engine(#[from] EngineError),
    /// The deployment has already ended.
    #[error("the deployment has already ended ({}); only queued or running ones can be cancelled", .0.as_str())]
    Ended(DeploymentStatus),
    /// Waiting for the app's running deployment took too long.
    #[error("the app is busy with a deployment; try again when it has finished")]
    Busy,
    /// A sealed secret could not be opened or sealed.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

/// Where a deployment's log comes from.
pub enum DeploymentLog {
    /// Still being written: lines so far plus a live feed.
    Live(Arc<DeployLog>),
    /// Ended: the kept lines.
    Ended(Vec<String>),
}

/// What `start` did.
pub enum StartOutcome {
    /// The app's stopped containers run again and serve.
    Started(Box<AppRecord>),
    /// The containers were gone; a deployment was queued.
    Deploying(Box<DeploymentRecord>),
}

/// How often a draining replica's in-flight count is read.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Handle to the orchestrator; cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<dyn ContainerEngine>,
    store: Store,
    /// What serves each app, and the route table made from it.
    routing: routes::Routing,
    settings: DeploySettings,
    app_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    permits: Arc<Semaphore>,
    /// Cancellation of queued and running deployments, by id.
    jobs: Mutex<HashMap<String, Job>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Followers of the apps' container logs.
    followers: follow::Followers,
    metrics: OrchestratorMetrics,
    /// Logs of queued and running deployments.
    logs: Logbook,
    /// Deployments in their watch window after the switch: app → (id, until).
    watches: Mutex<HashMap<String, (String, tokio::time::Instant)>>,
    /// Unrequested exits of serving replicas, for the app status.
    crashes: Crashes,
    /// Builds apps from source.
    builder: Builder,
    /// Opens the apps' vaults (git credentials, build secrets).
    secrets: SecretBox,
    /// What berth does about replicas that went missing.
    heal: heal::Healer,
    /// Called after each change of an app's record ([`Orchestrator::on_app_change`]).
    app_hook: Mutex<Option<AppHook>>,
}

type AppHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Locks a std mutex; a poisoned lock still holds consistent data here
/// because no critical section can panic halfway through an update.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Orchestrator {
    /// An orchestrator over `engine` and `store`, publishing to `router`
    /// routes that take HTTPS from the certificates in `certs`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Arc<dyn ContainerEngine>,
        store: Store,
        router: Arc<Router>,
        certs: Arc<CertStore>,
        settings: DeploySettings,
        builder: Builder,
        secrets: SecretBox,
        registry: &mut Registry,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        let shutdown = CancellationToken::new();
        let metrics = OrchestratorMetrics::register(registry);
        Self {
            inner: Arc::new(Inner {
                engine,
                routing: routes::Routing::new(store.clone(), router, certs, metrics.clone()),
                store,
                settings,
                app_locks: Mutex::new(HashMap::new()),
                permits,
                jobs: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                followers: follow::Followers::new(&shutdown),
                shutdown,
                metrics,
                logs: Logbook::default(),
                watches: Mutex::new(HashMap::new()),
                crashes: Crashes::default(),
                builder,
                secrets,
                heal: heal::Healer::default(),
                app_hook: Mutex::new(None),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Creates an app: stored, then routed, then its certificates ordered.
    pub fn create_app(&self, record: &AppRecord) -> Result<(), StoreError> {
        self.inner.store.create_app(record)?;
        self.app_changed(&record.spec.name);
        Ok(())
    }

    /// Changes an app's record in one transaction ([`Store::update_app`]);
    /// its routes and certificates follow.
    pub fn update_app<F>(&self, name: &str, change: F) -> Result<AppRecord, StoreError>
    where
        F: FnOnce(&mut AppRecord) -> Result<(), StoreError>,
    {
        let record = self.inner.store.update_app(name, change)?;
        self.app_changed(name);
        Ok(record)
    }

    /// Calls `hook` with an app's name after each change of its record
    /// (made, changed, deleted) once its routes follow: the certificate
    /// manager orders what the app's domains need.
    pub fn on_app_change(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        *lock(&self.inner.app_hook) = Some(Arc::new(hook));
    }

    /// The one way out of every change of an app's record: its routes,
    /// then whoever follows the apps.
    fn app_changed(&self, app: &str) {
        self.inner.routing.refresh(app);
        let hook = lock(&self.inner.app_hook).clone();
        if let Some(hook) = hook {
            hook(app);
        }
    }

    /// The builder of apps from source.
    pub fn builder(&self) -> &Builder {
        &self.inner.builder
    }

    /// The instance's secret box (seals app vaults).
    pub fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    /// Queues a deployment of the app's current spec.
    pub fn deploy(&self, app: &str, trigger: Trigger) -> Result<DeploymentRecord, OpError> {
        let record = self.inner.store.app(app)?;
        self.enqueue(&record.spec, trigger)
    }

    /// Queues a deployment of the app's current spec for a webhook event
    /// announcing `commit`.
    pub fn deploy_announced(
        &self,
        app: &str,
        commit: Option<String>,
    ) -> Result<DeploymentRecord, OpError> {
        let record = self.inner.store.app(app)?;
        let mut deployment = DeploymentRecord::queued(&record.spec, Trigger::Webhook);
        deployment.commit = commit;
        self.enqueue_record(deployment)
    }

    /// Records and queues a deployment of `spec`.
    fn enqueue(&self, spec: &AppSpec, trigger: Trigger) -> Result<DeploymentRecord, OpError> {
        self.enqueue_record(DeploymentRecord::queued(spec, trigger))
    }

    /// Records and queues a prepared deployment.
    fn enqueue_record(&self, deployment: DeploymentRecord) -> Result<DeploymentRecord, OpError> {
        let spec = &deployment.spec;
        self.inner.store.insert_deployment(&deployment)?;
        // A newer deployment of the same app makes queued ones pointless.
        for job in lock(&self.inner.jobs).values() {
            if job.app == spec.name && !job.running.load(Ordering::SeqCst) {
                job.cancel(format!("superseded by deployment {}", deployment.id));
            }
        }
        self.spawn_job(deployment.clone());
        Ok(deployment)
    }

    /// Stops (with the grace period) and removes containers, all at once.
    /// Every removal is attempted; the first error is returned.
    async fn remove_containers<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), EngineError> {
        let grace = self.inner.settings.stop_grace;
        let ids: Vec<&str> = ids.into_iter().collect();
        self.inner.crashes.expect_exit(ids.iter().copied());
        let removals = ids.iter().map(|id| self.inner.engine.remove(id, grace));
        let result = futures_util::future::join_all(removals)
            .await
            .into_iter()
            .collect();
        self.inner.crashes.forget_containers(ids);
        result
    }

    /// What berth is doing about the app's missing replicas, if anything.
    pub fn healing(&self, app: &str) -> Option<String> {
        self.inner.heal.note(app)
    }

    /// Whether apps may mount host paths (`[deploy] allow_bind_mounts`).
    pub fn allows_bind_mounts(&self) -> bool {
        self.inner.settings.allow_bind_mounts
    }

    /// Crashes of the replicas of `deployment`, the one serving `app`.
    pub fn crash_state(&self, app: &str, deployment: Option<&str>) -> CrashState {
        self.inner.crashes.state(app, deployment)
    }

    /// Number of replicas serving the app now; a static site that serves
    /// counts as one.
    pub fn serving_replicas(&self, app: &str) -> usize {
        self.inner.routing.serving(app)
    }

    /// Stops the app: its routes answer 503 and its containers stop.
    pub async fn stop(&self, app: &str) -> Result<AppRecord, OpError> {
        self.cancel_jobs_of(app);
        let _guard = self.lock_app(app).await?;
        let record = self.update_app(app, |r| {
            r.stopped = true;
            Ok(())
        })?;
        let replicas = self.inner.routing.take(app);
        self.drain(&replicas).await;
        let grace = self.inner.settings.stop_grace;
        self.inner
            .crashes
            .expect_exit(replicas.iter().map(|r| r.container.as_str()));
        let stops = replicas
            .iter()
            .map(|r| self.inner.engine.stop(&r.container, grace));
        for result in futures_util::future::join_all(stops).await {
            result?;
        }
        Ok(record)
    }

    /// Starts a stopped app again, or queues a deployment when its
    /// containers are gone or do not come back healthy.
    pub async fn start(&self, app: &str) -> Result<StartOutcome, OpError> {
        let guard = self.lock_app(app).await?;
        let record = self.inner.store.app(app)?;
        let Some(active) = record.active_deployment.clone() else {
            drop(guard);
            return Ok(StartOutcome::Deploying(Box::new(
                self.deploy(app, Trigger::Api)?,
            )));
        };
        let deployment = self.inner.store.deployment(&active)?;
        if self.inner.routing.is_site(app) {
            // A static site has no containers: it serves again at once.
            let record = self.update_app(app, |r| {
                r.stopped = false;
                Ok(())
            })?;
            return Ok(StartOutcome::Started(Box::new(record)));
        }
        let containers = self.containers_of(app, Some(&active)).await?;
        if containers.len() < deployment.spec.replicas as usize {
            drop(guard);
            return Ok(StartOutcome::Deploying(Box::new(
                self.deploy(app, Trigger::Api)?,
            )));
        }
        self.inner
            .crashes
            .forget_containers(containers.iter().map(String::as_str));
        for id in &containers {
            self.inner.engine.start(id).await?;
        }
        let cancel = self.inner.shutdown.child_token();
        let gate = self
            .wait_all_healthy(
                &containers,
                deployment.spec.port,
                &deployment.spec.health_check,
                &cancel,
            )
            .await;
        match gate {
            Ok(replicas) => {
                // Live first, so the routes serve them from the same swap
                // that ends the stop.
                self.inner.routing.adopt(app, replicas);
                let record = self.update_app(app, |r| {
                    r.stopped = false;
                    Ok(())
                })?;
                Ok(StartOutcome::Started(Box::new(record)))
            }
            Err(err) => {
                tracing::warn!(app, %err, "stopped replicas did not come back; redeploying");
                let grace = self.inner.settings.stop_grace;
                self.inner
                    .crashes
                    .expect_exit(containers.iter().map(String::as_str));
                for id in &containers {
                    let _ = self.inner.engine.stop(id, grace).await;
                }
                drop(guard);
                Ok(StartOutcome::Deploying(Box::new(
                    self.deploy(app, Trigger::Api)?,
                )))
            }
        }
    }

    /// Deletes the app: cancels its deployments, removes its containers,
    /// its routes and its records; its volumes too when `volumes` (else
    /// they stay, and an app made again with the name finds its data).
    pub async fn delete(&self, app: &str, volumes: bool) -> Result<(), OpError> {
        self.inner.store.app(app)?;
        self.cancel_jobs_of(app);
        let _guard = self.lock_app(app).await?;
        let replicas = self.inner.routing.take(app);
        self.drain(&replicas).await;
        // Containers first: if removing one fails, the app still exists and
        // the delete can be retried; reconcile removes leftovers anyway.
        let ids = self.containers_of(app, None).await?;
        self.remove_containers(ids.iter().map(String::as_str))
            .await?;
        if volumes {
            let removed = mounts::Volumes::new(self.inner.engine.as_ref())
                .remove_of_app(app)
                .await?;
            tracing::info!(app, volumes = ?removed, "removed the app's volumes");
        }
        self.inner.store.delete_app(app)?;
        // Images built for the app go too (pulled images may serve others).
        match self.inner.engine.built_images(app).await {
            Ok(ids) => {
                for id in ids {
                    if let Err(err) = self.inner.engine.remove_image(&id, true).await {
                        tracing::warn!(app, %err, "could not remove a built image");
                    }
                }
            }
            Err(err) => tracing::warn!(app, %err, "could not list the app's built images"),
        }
        self.inner.routing.forget_site(app);
        self.app_changed(app);
        self.inner.builder.forget_app(app);
        lock(&self.inner.app_locks).remove(app);
        self.inner.crashes.forget_app(app);
        self.inner.heal.forget(app);
        Ok(())
    }

    /// Cancels running deployments and waits for them to clean up, at most
    /// `deadline`. Containers that serve keep running for the next start.
    pub async fn shutdown(&self, deadline: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(deadline, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("deployments did not finish cleaning up before the shutdown deadline");
        }
    }

    /// Takes replicas out of service without cutting requests: they are
    /// marked draining (new requests go elsewhere), then awaited until
    /// their in-flight count is zero or the drain deadline passes, when
    /// the edge closes their tunnels (WebSockets).
    async fn drain(&self, replicas: &[Replica]) {
        for r in replicas {
            r.state.drain();
        }
        let deadline = tokio::time::Instant::now() + self.inner.settings.drain_timeout;
        clock::waiting(async {
            loop {
                let busy: usize = replicas.iter().map(|r| r.state.in_flight()).sum();
                if busy == 0 {
                    return;
                }
                if tokio::time::Instant::now() >= deadline {
                    // Tunnels (WebSockets) would never end by themselves:
                    // the edge closes them now; requests still running end
                    // with the replica's stop.
                    let tunnels: usize = replicas.iter().map(|r| r.state.close_tunnels()).sum();
                    tracing::warn!(
                        requests = busy,
                        tunnels,
                        "drain deadline reached; tunnels closed, stopping replicas with requests in flight"
                    );
                    return;
                }
                tokio::time::sleep(DRAIN_POLL).await;
            }
        })
        .await;
    }

    fn cancel_jobs_of(&self, app: &str) {
        for job in lock(&self.inner.jobs).values() {
            if job.app == app {
                job.cancel("the app was stopped or deleted");
            }
        }
    }

    /// Cancels a queued or running deployment: the work in progress is
    /// aborted, its new replicas removed; the previous version keeps serving.
    pub fn cancel(&self, id: &str) -> Result<DeploymentRecord, OpError> {
        let record = self.inner.store.deployment(id)?;
        let job = lock(&self.inner.jobs).get(id).cloned();
        match job {
            Some(job) if !record.status.is_final() => {
                job.cancel("cancelled by the user");
                Ok(record)
            }
            _ => Err(OpError::Ended(record.status)),
        }
    }

    /// Takes the app's lock, waiting at most as long as a deployment can
    /// hold it: its health gate, the drain and the stop of old replicas.
    async fn lock_app(&self, app: &str) -> Result<tokio::sync::OwnedMutexGuard<()>, OpError> {
        let mutex = lock(&self.inner.app_locks)
            .entry(app.to_string())
            .or_default()
            .clone();
        let s = &self.inner.settings;
        let wait = s.health_timeout + s.drain_timeout + s.stop_grace + Duration::from_secs(30);
        tokio::time::timeout(wait, mutex.lock_owned())
            .await
            .map_err(|_| OpError::Busy)
    }

    /// Ids of the app's containers, optionally of one deployment only.
    async fn containers_of(
        &self,
        app: &str,
        deployment: Option<&str>,
    ) -> Result<Vec<String>, OpError> {
        let mut ids = Vec::new();
        for c in self.inner.engine.instance_containers().await? {
            let same_app = c.label(LABEL_APP) == Some(app);
            let same_dep = deployment.is_none_or(|d| c.label(LABEL_DEPLOYMENT) == Some(d));
            if same_app && same_dep {
                ids.push(c.id);
            }
        }
        Ok(ids)
    }

    fn finish_deployment(&self, id: &str, status: DeploymentStatus, error: Option<String>) {
        self.inner.metrics.deployment_finished(status);
        self.inner.logs.open(id).push(&format!(
            "{}: {}",
            status.as_str(),
            error.as_deref().unwrap_or("done")
        ));
        if let Err(err) = self
            .inner
            .store
            .update_deployment(id, |d| d.finish(status, error))
        {
            // The app (and with it the record) may have been deleted.
            tracing::warn!(deployment = id, %err, "could not record the deployment's end");
        }
        self.close_log(id);
    }

    /// Ends a deployment's log: followers' streams end, the lines are kept.
    fn close_log(&self, id: &str) {
        let lines = self.inner.logs.close(id);
        if let Err(err) = self.inner.store.save_deployment_log(id, &lines) {
            tracing::debug!(deployment = id, %err, "deployment log not kept");
        }
    }

    /// A deployment's log: live while it is queued or running, else kept.
    pub fn deployment_log(&self, id: &str) -> Result<DeploymentLog, OpError> {
        self.inner.store.deployment(id)?;
        Ok(match self.inner.logs.get(id) {
            Some(log) => DeploymentLog::Live(log),
            None => DeploymentLog::Ended(self.inner.store.deployment_log(id)?),
        })
    }
}
