//! Self-healing: the replicas of each app's active deployment converge to
//! its replica count, whatever took them away. Docker's restart policy
//! brings back a replica that crashed; berth starts again one that stopped
//! and that Docker will not restart (`docker kill`, `docker stop`) and
//! makes anew one that is gone (`docker rm -f`). Each app is looked at
//! every few seconds and soon after one of its replicas dies or is
//! removed; what to do is decided by [`plan`], a pure function. Repeated
//! attempts back off (2 s doubling to 5 min), and the app's status says
//! what berth is doing about it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::deploy::replica_config;
use super::mounts::Volumes;
use super::{lock, Orchestrator, LABEL_APP, LABEL_DEPLOYMENT};
use crate::engine::{ContainerState, LABEL_REPLICA};
use crate::store::AppRecord;

/// How often every app is looked at.
const TICK: Duration = Duration::from_secs(5);
/// Pause after a replica dies before looking, so a restart Docker is
/// about to make is seen as one.
const SETTLE: Duration = Duration::from_secs(2);
/// First and longest pause between attempts on one app.
const BACKOFF_MIN: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A container of the active deployment as the engine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Container id.
    pub id: String,
    /// Its `berth.replica` index.
    pub index: Option<u32>,
    /// Its state.
    pub state: State,
}

/// What the engine says of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running (healthy or not: the health gate and events decide).
    Running,
    /// Created, restarting, paused, being removed: the engine is on it.
    Busy,
    /// Stopped, and Docker will not start it again.
    Stopped,
    /// Dead: it cannot be started; it is replaced.
    Dead,
}

/// One step towards the wanted count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a stopped container again.
    Start(String),
    /// Remove a dead container and make replica `index` anew.
    Replace(String, u32),
    /// Make replica `index`, which is gone.
    Create(u32),
}

/// The steps that bring the containers of a deployment wanting `replicas`
/// back to that many: stopped ones start, dead ones and missing indexes
/// are made anew. Containers past the count are left to the next
/// deployment.
pub fn plan(replicas: u32, seen: &[Seen]) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut present = BTreeSet::new();
    for c in seen {
        let Some(index) = c.index.filter(|i| *i < replicas) else {
            continue;
        };
        if !present.insert(index) {
            continue; // a second container for one index: not ours to fix
        }
        match c.state {
            State::Running | State::Busy => {}
            State::Stopped => actions.push(Action::Start(c.id.clone())),
            State::Dead => actions.push(Action::Replace(c.id.clone(), index)),
        }
    }
    // Containers without an index count against the missing ones.
    let unindexed = seen.iter().filter(|c| c.index.is_none()).count();
    let missing: Vec<u32> = (0..replicas).filter(|i| !present.contains(i)).collect();
    actions.extend(missing.into_iter().skip(unindexed).map(Action::Create));
    actions
}

/// The next pause after `failures` attempts that did not bring an app
/// back to its count.
pub fn backoff(failures: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1 << failures.min(16))
        .min(BACKOFF_MAX)
}

/// What berth is doing about one app's missing replicas.
#[derive(Debug, Clone, Default)]
struct AppHealth {
    /// Attempts since the app last had all its replicas.
    failures: u32,
    /// No attempt before this.
    not_before: Option<Instant>,
    /// What the last attempt did, for the app's status.
    note: Option<String>,
}

/// The healer's state: per app, and the wake-up of its loop.
#[derive(Default)]
pub(super) struct Healer {
    apps: Mutex<HashMap<String, AppHealth>>,
    wake: Notify,
}

impl Healer {
    /// Looks soon (after [`SETTLE`]): a replica died or was removed.
    pub(super) fn nudge(&self) {
        self.wake.notify_one();
    }

    /// What berth is doing about the app's missing replicas, if anything.
    pub(super) fn note(&self, app: &str) -> Option<String> {
        lock(&self.apps).get(app).and_then(|h| h.note.clone())
    }

    pub(super) fn forget(&self, app: &str) {
        lock(&self.apps).remove(app);
    }
}

impl Orchestrator {
    /// Starts the healing loop until shutdown.
    pub(super) fn heal_forever(&self) {
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            let shutdown = this.inner.shutdown.clone();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(TICK) => {}
                    _ = this.inner.heal.wake.notified() => {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(SETTLE) => {}
                        }
                    }
                }
                this.heal_all().await;
            }
        });
    }

    pub(super) async fn heal_all(&self) {
        let apps = self.inner.store.apps();
        let containers = match self.inner.engine.instance_containers().await {
            Ok(list) => list,
            Err(err) => {
                tracing::warn!(%err, "healing: could not list the containers");
                return;
            }
        };
        for app in apps {
            let Some(active) = app.active_deployment.clone() else {
                continue;
            };
            let seen: Vec<Seen> = containers
                .iter()
                .filter(|c| {
                    c.label(LABEL_APP) == Some(app.spec.name.as_str())
                        && c.label(LABEL_DEPLOYMENT) == Some(active.as_str())
                })
                .map(|c| Seen {
                    id: c.id.clone(),
                    index: c.label(LABEL_REPLICA).and_then(|i| i.parse().ok()),
                    state: match c.state {
                        ContainerState::Running => State::Running,
                        ContainerState::Exited => State::Stopped,
                        ContainerState::Dead => State::Dead,
                        ContainerState::Other => State::Busy,
                    },
                })
                .collect();
            self.heal_app(&app, &active, &seen).await;
        }
    }

    /// One look at one app: acts when replicas are missing, unless it is
    /// stopped, a static site, busy with a deployment, or backing off.
    async fn heal_app(&self, app: &AppRecord, active: &str, seen: &[Seen]) {
        let name = app.spec.name.as_str();
        if app.stopped || self.inner.routing.is_site(name) {
            self.inner.heal.forget(name);
            return;
        }
        if lock(&self.inner.jobs).values().any(|j| j.app == name) {
            return; // a deployment replaces the replicas anyway
        }
        let Ok(deployment) = self.inner.store.deployment(active) else {
            return;
        };
        let actions = plan(deployment.spec.replicas, seen);
        let now = Instant::now();
        if actions.is_empty() {
            // Back to its count once all replicas serve again.
            if self.serving_replicas(name) >= deployment.spec.replicas as usize {
                self.inner.heal.forget(name);
            }
            return;
        }
        if lock(&self.inner.heal.apps)
            .get(name)
            .and_then(|h| h.not_before)
            .is_some_and(|t| now < t)
        {
            return;
        }
        // A deployment, stop, start or delete holds the app's lock.
        let mutex = lock(&self.inner.app_locks)
            .entry(name.to_string())
            .or_default()
            .clone();
        let Ok(_turn) = mutex.try_lock_owned() else {
            return;
        };
        // What was read before the turn may be stale: the app deleted,
        // stopped or deployed again meanwhile.
        match self.inner.store.app(name) {
            Ok(now) if !now.stopped && now.active_deployment.as_deref() == Some(active) => {}
            _ => return,
        }
        let mut done = Vec::new();
        let mut failed = None;
        for action in &actions {
            match self.act(&deployment, action).await {
                Ok(what) => done.push(what),
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        let mut apps = lock(&self.inner.heal.apps);
        let health = apps.entry(name.to_string()).or_default();
        let pause = backoff(health.failures);
        health.failures += 1;
        health.not_before = Some(now + pause);
        let next = format!("next look in {} s at the latest", pause.as_secs().max(1));
        health.note = Some(match &failed {
            None => format!("healing: {}; {next}", done.join(", ")),
            Some(err) => format!("healing failed: {err}; {next}"),
        });
        match failed {
            None => tracing::warn!(app = name, actions = ?done, "healing: replicas were missing"),
            Some(err) => {
                tracing::warn!(app = name, %err, "healing: could not bring a replica back")
            }
        }
    }

    /// Carries out one action; says what it did. A started or made
    /// container rejoins the routes through its `start` event once it
    /// passes the health gate (see `supervise`).
    async fn act(
        &self,
        deployment: &crate::store::DeploymentRecord,
        action: &Action,
    ) -> Result<String, String> {
        let engine = &self.inner.engine;
        match action {
            Action::Start(id) => {
                self.inner.crashes.forget_containers([id.as_str()]);
                engine
                    .start(id)
                    .await
                    .map_err(|e| format!("starting {}: {e}", short(id)))?;
                Ok(format!(
                    "started replica {} again (it stopped and Docker would not restart it)",
                    short(id)
                ))
            }
            Action::Replace(id, index) => {
                engine
                    .remove(id, self.inner.settings.stop_grace)
                    .await
                    .map_err(|e| format!("removing dead {}: {e}", short(id)))?;
                self.create_replica(deployment, *index).await?;
                Ok(format!("replaced dead replica {index}"))
            }
            Action::Create(index) => {
                self.create_replica(deployment, *index).await?;
                Ok(format!("made replica {index} anew (it was removed)"))
            }
        }
    }

    async fn create_replica(
        &self,
        deployment: &crate::store::DeploymentRecord,
        index: u32,
    ) -> Result<(), String> {
        let engine = &self.inner.engine;
        let image = deployment
            .image_id
            .as_deref()
            .ok_or("the deployment recorded no image; deploy the app again")?;
        let image = engine
            .local_image(image)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("its image {image} is no longer on this machine; deploy the app again")
            })?;
        let network = engine.ensure_network().await.map_err(|e| e.to_string())?;
        let mounts = Volumes::new(engine.as_ref())
            .prepare(&deployment.spec, self.inner.settings.allow_bind_mounts)
            .await
            .map_err(|e| e.to_string())?;
        let config = replica_config(
            self.instance(),
            deployment,
            index,
            &image,
            &network,
            &mounts,
        );
        engine
            .start_replica(config)
            .await
            .map_err(|e| format!("making replica {index}: {e}"))?;
        Ok(())
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, index: Option<u32>, state: State) -> Seen {
        Seen {
            id: id.into(),
            index,
            state,
        }
    }

    #[test]
    fn a_full_set_needs_nothing() {
        let all = [
            seen("a", Some(0), State::Running),
            seen("b", Some(1), State::Busy),
        ];
        assert!(plan(2, &all).is_empty());
        // More than wanted is the next deployment's business.
        assert!(plan(1, &all).is_empty());
    }

    #[test]
    fn stopped_ones_start_dead_ones_are_replaced_missing_ones_made() {
        let some = [
            seen("a", Some(0), State::Stopped),
            seen("c", Some(2), State::Dead),
        ];
        assert_eq!(
            plan(4, &some),
            vec![
                Action::Start("a".into()),
                Action::Replace("c".into(), 2),
                Action::Create(1),
                Action::Create(3),
            ]
        );
        assert_eq!(plan(2, &[]), vec![Action::Create(0), Action::Create(1)]);
    }

    #[test]
    fn unlabelled_or_doubled_containers_are_counted_not_touched() {
        let odd = [
            seen("x", None, State::Running),
            seen("a", Some(0), State::Running),
            seen("b", Some(0), State::Stopped),
        ];
        assert_eq!(plan(3, &odd), vec![Action::Create(2)]);
    }

    #[test]
    fn attempts_back_off_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(1), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(64));
        assert_eq!(backoff(9), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}
