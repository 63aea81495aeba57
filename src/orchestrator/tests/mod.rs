//! The orchestrator's logic without Docker: an [`Orchestrator`] over the
//! in-memory [`FakeEngine`] and a redb store in a temp directory. The fake's
//! replicas answer the real health gate on 127.0.0.1, so deployments,
//! rollbacks, restart recovery and healing run as they do in production.

mod deploy;
mod failures;
mod recovery;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_acme::{CertStore, UnknownName};
use berth_config::{AppInput, BuildSettings};
use berth_proxy::Router;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use super::{lock, DeploySettings, DeploymentLog, Orchestrator};
use crate::builds::Builder;
use crate::engine::fake::FakeEngine;
use crate::engine::ContainerEngine;
use crate::secrets::SecretBox;
use crate::store::{AppRecord, DeploymentRecord, Store, Trigger};

/// An orchestrator on a fake engine and a store of its own.
pub(super) struct Harness {
    pub orch: Orchestrator,
    pub engine: Arc<FakeEngine>,
    pub store: Store,
    pub router: Arc<Router>,
    dir: tempfile::TempDir,
}

/// Deadlines short enough for unit tests.
fn settings() -> DeploySettings {
    DeploySettings {
        health_timeout: Duration::from_secs(2),
        stop_grace: Duration::ZERO,
        pull_timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_millis(100),
        concurrency: 2,
        rollback_window: 5,
        rollback_watch: Duration::ZERO,
        allow_bind_mounts: false,
    }
}

impl Harness {
    /// A fresh store and engine.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A fresh store and engine, with the deploy settings changed.
    pub fn with(change: impl FnOnce(&mut DeploySettings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("berth.redb")).expect("store");
        let engine = FakeEngine::new("t");
        let mut s = settings();
        change(&mut s);
        let (orch, router) = Self::orchestrator(&dir, &store, &engine, s);
        Self {
            orch,
            engine,
            store,
            router,
            dir,
        }
    }

    fn orchestrator(
        dir: &tempfile::TempDir,
        store: &Store,
        engine: &Arc<FakeEngine>,
        settings: DeploySettings,
    ) -> (Orchestrator, Arc<Router>) {
        let dyn_engine: Arc<dyn ContainerEngine> = engine.clone();
        let build = BuildSettings {
            concurrency: 1,
            timeout: Duration::from_secs(10),
            cpus: Some(1.0),
            memory_mb: 256,
            max_site_bytes: 1 << 20,
            registry: None,
        };
        let builder = Builder::new(dyn_engine.clone(), build, dir.path()).expect("builder");
        let secrets = SecretBox::open_or_create(dir.path()).expect("secrets");
        let router = Arc::new(Router::default());
        let certs = Arc::new(CertStore::new(UnknownName::SelfSigned).expect("certs"));
        let orch = Orchestrator::new(
            dyn_engine,
            store.clone(),
            router.clone(),
            certs,
            settings,
            builder,
            secrets,
            &mut Registry::default(),
        );
        (orch, router)
    }

    /// berth restarted: the old orchestrator is shut down and a new one
    /// runs over the same store and engine (which kept its containers).
    pub async fn restart(&mut self) {
        self.orch.shutdown(Duration::from_secs(5)).await;
        let (orch, router) = Self::orchestrator(&self.dir, &self.store, &self.engine, settings());
        self.orch = orch;
        self.router = router;
    }

    /// Creates an app from its API JSON.
    pub fn create_app(&self, json: &str) -> AppRecord {
        let spec = serde_json::from_str::<AppInput>(json)
            .expect("app json")
            .validate()
            .expect("valid app");
        let now = OffsetDateTime::now_utc();
        let record = AppRecord {
            spec,
            created_at: now,
            updated_at: now,
            active_deployment: None,
            stopped: false,
            vault: None,
        };
        self.store.create_app(&record).expect("create app");
        record
    }

    /// Gives app `app` image `image` (for its next deployment).
    pub fn set_image(&self, app: &str, image: &str) {
        self.store
            .update_app(app, |r| {
                r.spec.image = image.to_string();
                Ok(())
            })
            .expect("update app");
    }

    /// Queues a deployment of the app's spec.
    pub fn deploy(&self, app: &str) -> DeploymentRecord {
        self.orch.deploy(app, Trigger::Api).expect("deploy")
    }

    /// Waits (at most 5 s) until deployment `id` has ended; its record.
    pub async fn ended(&self, id: &str) -> DeploymentRecord {
        let wait = async {
            loop {
                let d = self.store.deployment(id).expect("deployment");
                // The record is final before the job lets go of the app.
                if d.status.is_final() && !lock(&self.orch.inner.jobs).contains_key(id) {
                    return d;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the deployment did not end within 5 s")
    }

    /// Deploys and waits for the end.
    pub async fn deploy_and_wait(&self, app: &str) -> DeploymentRecord {
        let d = self.deploy(app);
        self.ended(&d.id).await
    }

    /// Ids of the containers serving `app` (the route table's source).
    pub fn serving(&self, app: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .orch
            .inner
            .routing
            .replicas(app)
            .into_iter()
            .map(|r| r.container)
            .collect();
        ids.sort();
        ids
    }

    /// Where the route table sends requests for `host`.
    pub fn routed(&self, host: &str) -> Vec<SocketAddr> {
        let table = self.router.load();
        let mut addrs: Vec<SocketAddr> = table
            .lookup(host, "/")
            .map(|r| r.backend().upstreams().iter().map(|u| u.addr()).collect())
            .unwrap_or_default();
        addrs.sort();
        addrs
    }

    /// Where the fake's containers `ids` are reached.
    pub fn addrs_of(&self, ids: &[String]) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = ids
            .iter()
            .filter_map(|id| self.engine.addr_of(id))
            .collect();
        addrs.sort();
        addrs
    }

    /// The kept log lines of an ended deployment, without their times.
    pub fn log_of(&self, id: &str) -> Vec<String> {
        let lines = match self.orch.deployment_log(id).expect("log") {
            DeploymentLog::Ended(lines) => lines,
            DeploymentLog::Live(_) => panic!("deployment {id} is still running"),
        };
        lines
            .into_iter()
            .map(|l| l.split_once(' ').map_or(l.clone(), |(_, t)| t.to_string()))
            .collect()
    }

    /// The app's active deployment.
    pub fn active(&self, app: &str) -> Option<String> {
        self.store.app(app).expect("app").active_deployment
    }
}

/// An app `name` running `image` on port 80, `replicas` of them, reached
/// at `<name>.test`, with a quick HTTP health check.
pub(super) fn app_json(name: &str, image: &str, replicas: u32, extra: &str) -> String {
    format!(
        r#"{{"name": "{name}", "image": "{image}", "port": 80, "replicas": {replicas},
            "domains": [{{"host": "{name}.test"}}],
            "health_check": {{"type": "http", "interval_ms": 50, "timeout_ms": 200}}{extra}}}"#
    )
}

/// Waits (at most 5 s) until `done` holds.
pub(super) async fn eventually(what: &str, done: impl Fn() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .is_err()
    {
        panic!("never happened: {what}");
    }
}
