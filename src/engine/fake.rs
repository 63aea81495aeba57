//! An in-memory [`ContainerEngine`] for unit tests: containers and images
//! in maps, every call counted and able to fail on cue ("the 2nd
//! `start_replica` fails"), calls that wait until released, an event
//! stream tests push into, and replicas that are reachable: a started
//! replica that is scripted healthy answers HTTP 200 on a real listener
//! on 127.0.0.1, so the orchestrator's real health gate runs against it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    volume_name, BuildLog, Container, ContainerEngine, ContainerEvent, ContainerState, EngineError,
    ImageBuild, LogFrame, LogLine, LogRange, Push, ReplicaConfig, ReplicaState, LABEL_APP,
    LABEL_DEPLOYMENT,
};

/// Every call the engine takes, for counting, failing and holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    /// [`ContainerEngine::ensure_network`]
    EnsureNetwork,
    /// [`ContainerEngine::repair_networks`]
    RepairNetworks,
    /// [`ContainerEngine::ensure_image`]
    EnsureImage,
    /// [`ContainerEngine::start_replica`]
    StartReplica,
    /// [`ContainerEngine::start`]
    Start,
    /// [`ContainerEngine::stop`]
    Stop,
    /// [`ContainerEngine::remove`]
    Remove,
    /// [`ContainerEngine::replica_state`]
    ReplicaState,
    /// [`ContainerEngine::instance_containers`]
    InstanceContainers,
    /// [`ContainerEngine::logs`]
    Logs,
    /// [`ContainerEngine::local_image`]
    LocalImage,
    /// [`ContainerEngine::tag`]
    Tag,
    /// [`ContainerEngine::built_images`]
    BuiltImages,
    /// [`ContainerEngine::remove_image`]
    RemoveImage,
    /// [`ContainerEngine::ensure_volume`]
    EnsureVolume,
    /// [`ContainerEngine::app_volumes`]
    AppVolumes,
    /// [`ContainerEngine::remove_volume`]
    RemoveVolume,
    /// [`ContainerEngine::build_image`]
    BuildImage,
    /// [`ContainerEngine::push_image`]
    PushImage,
    /// [`ContainerEngine::export_dir`]
    ExportDir,
}

/// How a replica started from an image behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs and answers every request with 200.
    Healthy,
    /// Runs, but its port refuses connections.
    Refusing,
    /// Exits at once with this code.
    Exits(i64),
}

/// One container of the fake.
#[derive(Debug)]
pub struct FakeContainer {
    /// Its name.
    pub name: String,
    /// The image it runs (an id).
    pub image: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Running (else exited with `exit_code`).
    pub running: bool,
    /// The exit code once it stopped.
    pub exit_code: Option<i64>,
    /// How it behaves whenever it (re)starts.
    pub behaviour: Behaviour,
    /// Where its port is reached while it runs.
    pub addr: Option<SocketAddr>,
    /// Its log lines.
    pub logs: Vec<String>,
    /// Stops its listener.
    server: Option<CancellationToken>,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    /// Image references (and ids) to ids.
    images: HashMap<String, String>,
    volumes: HashSet<String>,
    calls: HashMap<Call, usize>,
    /// Calls that fail: by call, the 1-based numbers that fail, or all.
    failures: HashMap<Call, Failure>,
    /// Calls that wait until released.
    held: HashSet<Call>,
    /// How replicas of an image id behave; default healthy.
    behaviours: HashMap<String, Behaviour>,
    /// Behaviours of the next replicas started, whatever their image.
    next_behaviours: std::collections::VecDeque<Behaviour>,
    subscribers: Vec<mpsc::UnboundedSender<Result<ContainerEvent, EngineError>>>,
    next_id: u64,
}

#[derive(Debug, Clone)]
enum Failure {
    Nth(HashSet<usize>),
    Always,
}

/// The in-memory engine; share it as `Arc<FakeEngine>`.
pub struct FakeEngine {
    instance: String,
    network: String,
    state: Mutex<State>,
    /// Bumped on every call and change, for waiters.
    changes: watch::Sender<u64>,
}

impl FakeEngine {
    /// An empty engine for instance `instance`.
    pub fn new(instance: &str) -> Arc<Self> {
        Arc::new(Self {
            instance: instance.to_string(),
            network: format!("berth-{instance}"),
            state: Mutex::default(),
            changes: watch::channel(0).0,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// The `nth` (1-based, counted from the engine's creation) call of
    /// `call` fails.
    pub fn fail_nth(&self, call: Call, nth: usize) {
        let mut state = self.state();
        match state
            .failures
            .entry(call)
            .or_insert_with(|| Failure::Nth(HashSet::new()))
        {
            Failure::Nth(set) => {
                set.insert(nth);
            }
            Failure::Always => {}
        }
    }

    /// Every call of `call` fails from now on.
    pub fn fail_always(&self, call: Call) {
        self.state().failures.insert(call, Failure::Always);
    }

    /// Calls of `call` succeed again.
    pub fn heal(&self, call: Call) {
        self.state().failures.remove(&call);
    }

    /// Calls of `call` wait until [`FakeEngine::release`].
    pub fn hold(&self, call: Call) {
        self.state().held.insert(call);
    }

    /// Held calls of `call` go on.
    pub fn release(&self, call: Call) {
        self.state().held.remove(&call);
        self.changed();
    }

    /// How many times `call` was made.
    pub fn calls(&self, call: Call) -> usize {
        self.state().calls.get(&call).copied().unwrap_or(0)
    }

    /// Waits until `call` was made at least `n` times (panics after 5 s).
    pub async fn wait_calls(&self, call: Call, n: usize) {
        self.wait_until(|_| self.calls(call) >= n).await;
    }

    /// Waits until `done` holds (checked on every change; panics after 5 s).
    pub async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        let mut rx = self.changes.subscribe();
        let wait = async {
            loop {
                if done(self) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            panic!("the fake engine never reached the awaited state");
        }
    }

    /// Replicas of image `reference` (once resolved) behave so.
    pub fn image_behaves(&self, reference: &str, behaviour: Behaviour) {
        self.state()
            .behaviours
            .insert(Self::image_id(reference), behaviour);
    }

    /// The next replica started behaves so (before any image's behaviour).
    pub fn next_replica_behaves(&self, behaviour: Behaviour) {
        self.state().next_behaviours.push_back(behaviour);
    }

    /// The id the fake gives the image `reference`.
    pub fn image_id(reference: &str) -> String {
        if reference.starts_with("sha256:") {
            reference.to_string()
        } else {
            format!("sha256:{reference}")
        }
    }

    /// Ids of the containers, in creation order.
    pub fn container_ids(&self) -> Vec<String> {
        self.state().containers.keys().cloned().collect()
    }

    /// Ids of the running containers of `deployment`.
    pub fn running_of(&self, deployment: &str) -> Vec<String> {
        self.state()
            .containers
            .iter()
            .filter(|(_, c)| {
                c.running && c.labels.get(LABEL_DEPLOYMENT).map(String::as_str) == Some(deployment)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Ids of all containers of `deployment`, running or not.
    pub fn containers_of(&self, deployment: &str) -> Vec<String> {
        self.state()
            .containers
            .iter()
            .filter(|(_, c)| c.labels.get(LABEL_DEPLOYMENT).map(String::as_str) == Some(deployment))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Where container `id` is reached while it runs.
    pub fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        self.state().containers.get(id).and_then(|c| c.addr)
    }

    /// The label `key` of container `id`.
    pub fn label_of(&self, id: &str, key: &str) -> Option<String> {
        self.state()
            .containers
            .get(id)
            .and_then(|c| c.labels.get(key).cloned())
    }

    /// Whether container `id` exists and runs.
    pub fn is_running(&self, id: &str) -> bool {
        self.state().containers.get(id).is_some_and(|c| c.running)
    }

    /// Makes an image local, as if pulled earlier; returns its id.
    pub fn add_image(&self, reference: &str) -> String {
        let id = Self::image_id(reference);
        let mut state = self.state();
        state.images.insert(reference.to_string(), id.clone());
        state.images.insert(id.clone(), id.clone());
        id
    }

    /// Adds a container as a previous process left it (labels given;
    /// `running` or exited with code 0); returns its id.
    pub fn add_container(&self, labels: &[(&str, &str)], running: bool) -> String {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("c{:04}", state.next_id);
        let mut c = FakeContainer {
            name: format!("left-{id}"),
            image: "sha256:left".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            running: false,
            exit_code: Some(0),
            behaviour: Behaviour::Healthy,
            addr: None,
            logs: Vec::new(),
            server: None,
        };
        if running {
            run(&mut c);
        }
        state.containers.insert(id.clone(), c);
        drop(state);
        self.changed();
        id
    }

    /// What `docker kill` does: the container exits with 137, and a `die`
    /// event goes out.
    pub fn kill(&self, id: &str) {
        let event = {
            let mut state = self.state();
            let Some(c) = state.containers.get_mut(id) else {
                return;
            };
            halt(c, 137);
            event_of(id, c, "die", Some(137))
        };
        self.push_event(event);
    }

    /// What `docker rm -f` does: the container is gone, with `die` and
    /// `destroy` events.
    pub fn remove_behind_back(&self, id: &str) {
        let events = {
            let mut state = self.state();
            let Some(mut c) = state.containers.remove(id) else {
                return;
            };
            halt(&mut c, 137);
            [
                event_of(id, &c, "die", Some(137)),
                event_of(id, &c, "destroy", None),
            ]
        };
        for event in events {
            self.push_event(event);
        }
    }

    /// Sends `event` to every open event stream.
    pub fn push_event(&self, event: ContainerEvent) {
        self.state()
            .subscribers
            .retain(|tx| tx.send(Ok(event.clone())).is_ok());
        self.changed();
    }

    /// How many event streams are open.
    pub fn subscribers(&self) -> usize {
        self.state().subscribers.len()
    }

    /// Ends every open event stream (as a lost connection to the engine).
    pub fn end_events(&self) {
        self.state().subscribers.clear();
        self.changed();
    }

    /// Counts `call`, waits while it is held, and fails it when scripted.
    async fn enter(&self, call: Call) -> Result<(), EngineError> {
        let n = {
            let mut state = self.state();
            let n = state.calls.entry(call).or_default();
            *n += 1;
            *n
        };
        self.changed();
        let mut rx = self.changes.subscribe();
        while self.state().held.contains(&call) {
            if rx.changed().await.is_err() {
                break;
            }
        }
        let fails = match self.state().failures.get(&call) {
            Some(Failure::Always) => true,
            Some(Failure::Nth(set)) => set.contains(&n),
            None => false,
        };
        if fails {
            return Err(EngineError::Docker(format!(
                "scripted failure of {call:?} #{n}"
            )));
        }
        Ok(())
    }

    fn behaviour_for(state: &mut State, image: &str) -> Behaviour {
        state
            .next_behaviours
            .pop_front()
            .or_else(|| state.behaviours.get(image).copied())
            .unwrap_or(Behaviour::Healthy)
    }
}

/// Starts `c` as its behaviour says: a listener answering 200, a port
/// that refuses, or an exit.
fn run(c: &mut FakeContainer) {
    match c.behaviour {
        Behaviour::Exits(code) => {
            c.running = false;
            c.exit_code = Some(code);
            c.logs.push(format!("exited with {code}"));
        }
        Behaviour::Refusing => {
            // A port nobody listens on: bound, then let go.
            c.addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .ok();
            c.running = true;
            c.exit_code = None;
        }
        Behaviour::Healthy => {
            let stop = CancellationToken::new();
            c.addr = serve_200(stop.clone());
            c.server = Some(stop);
            c.running = true;
            c.exit_code = None;
        }
    }
}

/// Stops `c` with `code`, closing its listener.
fn halt(c: &mut FakeContainer, code: i64) {
    if let Some(stop) = c.server.take() {
        stop.cancel();
    }
    if c.running {
        c.running = false;
        c.exit_code = Some(code);
    }
    c.addr = None;
}

/// A listener on 127.0.0.1 answering every request with `200 ok` until
/// `stop`; its address.
fn serve_200(stop: CancellationToken) -> Option<SocketAddr> {
    let std = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    std.set_nonblocking(true).ok()?;
    let addr = std.local_addr().ok()?;
    let listener = tokio::net::TcpListener::from_std(std).ok()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    Some(addr)
}

fn event_of(id: &str, c: &FakeContainer, action: &str, code: Option<i64>) -> ContainerEvent {
    ContainerEvent {
        action: action.to_string(),
        container: id.to_string(),
        app: c.labels.get(LABEL_APP).cloned().unwrap_or_default(),
        deployment: c.labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
        exit_code: code.map(|c| c.to_string()),
    }
}

fn summary(id: &str, c: &FakeContainer) -> Container {
    Container {
        id: id.to_string(),
        name: c.name.clone(),
        labels: c.labels.clone(),
        state: if c.running {
            ContainerState::Running
        } else {
            ContainerState::Exited
        },
    }
}

impl ContainerEngine for FakeEngine {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn network(&self) -> &str {
        &self.network
    }

    fn ensure_network(&self) -> BoxFuture<'_, Result<String, EngineError>> {
        Box::pin(async move {
            self.enter(Call::EnsureNetwork).await?;
            Ok(format!("net-{}", self.instance))
        })
    }

    fn repair_networks(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(self.enter(Call::RepairNetworks))
    }

    fn ensure_image<'a>(
        &'a self,
        reference: &'a str,
        _deadline: Duration,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                r = self.enter(Call::EnsureImage) => r?,
            }
            Ok(self.add_image(reference))
        })
    }

    fn start_replica<'a>(
        &'a self,
        config: ReplicaConfig<'a>,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            self.enter(Call::StartReplica).await?;
            let (id, event) = {
                let mut state = self.state();
                if state.containers.values().any(|c| c.name == config.name) {
                    return Err(EngineError::Docker(format!(
                        "Conflict. The container name \"/{}\" is already in use",
                        config.name
                    )));
                }
                state.next_id += 1;
                let id = format!("c{:04}", state.next_id);
                let behaviour = Self::behaviour_for(&mut state, config.image);
                let mut c = FakeContainer {
                    name: config.name,
                    image: config.image.to_string(),
                    labels: config.labels,
                    running: false,
                    exit_code: None,
                    behaviour,
                    addr: None,
                    logs: vec![format!("started from {}", config.image)],
                    server: None,
                };
                run(&mut c);
                let event = event_of(&id, &c, "start", None);
                state.containers.insert(id.clone(), c);
                (id, event)
            };
            self.push_event(event);
            Ok(id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.enter(Call::Start).await?;
            let mut state = self.state();
            let c = state
                .containers
                .get_mut(id)
                .ok_or_else(|| EngineError::Docker(format!("No such container: {id}")))?;
            let event = if c.running {
                None
            } else {
                run(c);
                c.running.then(|| event_of(id, c, "start", None))
            };
            drop(state);
            match event {
                Some(event) => self.push_event(event),
                None => self.changed(),
            }
            Ok(())
        })
    }

    fn stop<'a>(&'a self, id: &'a str, _grace: Duration) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.enter(Call::Stop).await?;
            let event = {
                let mut state = self.state();
                match state.containers.get_mut(id) {
                    Some(c) if c.running => {
                        halt(c, 0);
                        Some(event_of(id, c, "die", Some(0)))
                    }
                    _ => None,
                }
            };
            if let Some(event) = event {
                self.push_event(event);
            }
            Ok(())
        })
    }

    fn remove<'a>(
        &'a self,
        id: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.enter(Call::Remove).await?;
            ContainerEngine::stop(self, id, grace).await?;
            let removed = self.state().containers.remove(id);
            if let Some(c) = removed {
                self.push_event(event_of(id, &c, "destroy", None));
            }
            Ok(())
        })
    }

    fn replica_state<'a>(
        &'a self,
        id: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, Result<ReplicaState, EngineError>> {
        Box::pin(async move {
            self.enter(Call::ReplicaState).await?;
            let state = self.state();
            let c = state
                .containers
                .get(id)
                .ok_or_else(|| EngineError::Docker(format!("No such container: {id}")))?;
            Ok(if c.running {
                ReplicaState::Running {
                    addr: c.addr,
                    health: None,
                }
            } else {
                ReplicaState::Exited(c.exit_code)
            })
        })
    }

    fn instance_containers(&self) -> BoxFuture<'_, Result<Vec<Container>, EngineError>> {
        Box::pin(async move {
            self.enter(Call::InstanceContainers).await?;
            let state = self.state();
            Ok(state
                .containers
                .iter()
                .map(|(id, c)| summary(id, c))
                .collect())
        })
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        tail: usize,
    ) -> BoxFuture<'a, Result<Vec<LogLine>, EngineError>> {
        Box::pin(async move {
            self.enter(Call::Logs).await?;
            let state = self.state();
            let lines = state.containers.get(id).map(|c| c.logs.clone());
            let lines = lines.unwrap_or_default();
            let skip = lines.len().saturating_sub(tail);
            Ok(lines
                .into_iter()
                .skip(skip)
                .map(|text| LogLine {
                    stream: "stdout",
                    text: format!("2026-12-01T00:00:00.000000000Z {text}"),
                })
                .collect())
        })
    }

    fn log_frames(
        &self,
        id: &str,
        _range: &LogRange,
    ) -> BoxStream<'static, Result<LogFrame, EngineError>> {
        let lines = self
            .state()
            .containers
            .get(id)
            .map(|c| c.logs.clone())
            .unwrap_or_default();
        futures_util::stream::iter(lines.into_iter().map(|l| {
            Ok(LogFrame {
                stderr: false,
                bytes: Bytes::from(format!("2026-12-01T00:00:00.000000000Z {l}\n")),
            })
        }))
        .boxed()
    }

    fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.state().subscribers.push(tx);
        self.changed();
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }

    fn local_image<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, EngineError>> {
        Box::pin(async move {
            self.enter(Call::LocalImage).await?;
            Ok(self.state().images.get(reference).cloned())
        })
    }

    fn tag<'a>(
        &'a self,
        id: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.enter(Call::Tag).await?;
            self.state()
                .images
                .insert(reference.to_string(), id.to_string());
            Ok(())
        })
    }

    fn built_images<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>, EngineError>> {
        Box::pin(async move {
            self.enter(Call::BuiltImages).await?;
            let prefix = format!("berth-{}/{app}:", self.instance);
            let state = self.state();
            let mut ids: Vec<String> = state
                .images
                .iter()
                .filter(|(r, _)| r.starts_with(&prefix))
                .map(|(_, id)| id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            Ok(ids)
        })
    }

    fn remove_image<'a>(
        &'a self,
        id: &'a str,
        _force: bool,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.enter(Call::RemoveImage).await?;
            let mut state = self.state();
            let in_use = state.containers.values().any(|c| c.image == id);
            if !in_use {
                state.images.retain(|r, i| r != id && i != id);
            }
            Ok(())
        })
    }

    fn ensure_volume<'a>(
        &'a self,
        app: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            self.enter(Call::EnsureVolume).await?;
            let full = volume_name(&self.instance, app, name);
            self.state().volumes.insert(full.clone());
            Ok(full)
        })
    }

    fn app_volumes<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>, EngineError>> {
        Box::pin(async move {
            self.enter(Call::AppVolumes).await?;
            let prefix = volume_name(&self.instance, app, "");
            let mut names: Vec<String> = self
                .state()
                .volumes
                .iter()
                .filter(|v| v.starts_with(&prefix))
                .cloned()
                .collect();
            names.sort();
            Ok(names)
        })
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.enter(Call::RemoveVolume).await?;
            self.state().volumes.remove(name);
            Ok(())
        })
    }

    fn build_image<'a>(
        &'a self,
        build: &'a ImageBuild<'a>,
        _context: Bytes,
        log: BuildLog<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                r = self.enter(Call::BuildImage) => r?,
            }
            log(&format!("fake build of {}", build.tag));
            Ok(self.add_image(build.tag))
        })
    }

    fn push_image<'a>(
        &'a self,
        to: &'a Push<'a>,
        _local: &'a str,
        app: &'a str,
        tag: &'a str,
        _log: BuildLog<'a>,
        _cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            self.enter(Call::PushImage).await?;
            Ok(format!("{}/{app}:{tag}", to.prefix))
        })
    }

    fn export_dir<'a>(
        &'a self,
        _image: &'a str,
        path: &'a str,
        _cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, EngineError>> {
        Box::pin(async move {
            self.enter(Call::ExportDir).await?;
            Err(EngineError::Unreadable(format!("the fake has no {path}")))
        })
    }
}
