//! An in-memory [`ContainerEngine`](crate::engine::ContainerEngine) for
//! unit tests: containers and images in maps, every call counted and able
//! to fail on cue ("the 2nd `start_replica` fails"), calls that wait until
//! released, an event stream tests push into, and replicas that are
//! reachable: a started replica that is scripted healthy answers HTTP 200
//! on a real listener on 127.0.0.1, so the orchestrator's real health gate
//! runs against it.

mod engine;
mod replica;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{ContainerEvent, EngineError, LABEL_DEPLOYMENT};
use replica::{event_of, halt, run};

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
