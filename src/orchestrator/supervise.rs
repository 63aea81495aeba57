//! Runtime supervision: follow the engine's events for this instance's
//! containers, and heal what they report (see `heal`). A serving replica that dies, is killed for memory or turns
//! unhealthy leaves the route table the moment the event arrives; when
//! Docker's restart policy brings it back (with its own exponential
//! backoff for crash loops), it passes the health gate and rejoins. Exits
//! berth did not ask for are counted, so the app status shows crash loops.

use std::time::Duration;

use futures_util::StreamExt;

use super::{Orchestrator, Replica};
use crate::engine::ContainerEvent;

/// Pause before reconnecting to a broken event stream.
const RECONNECT: Duration = Duration::from_secs(1);

impl Orchestrator {
    /// Starts following container events, and healing, until shutdown.
    pub fn supervise(&self) {
        self.heal_forever();
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            let shutdown = this.inner.shutdown.clone();
            loop {
                let engine = this.inner.engine.clone();
                let mut events = Box::pin(engine.container_events());
                loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = events.next() => next,
                    };
                    match next {
                        Some(Ok(event)) => this.on_event(event),
                        Some(Err(err)) => {
                            tracing::warn!(%err, "docker event stream failed; reconnecting");
                            break;
                        }
                        None => break,
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RECONNECT) => {}
                }
            }
        });
    }

    fn on_event(&self, event: ContainerEvent) {
        let action = event.action.as_str();
        let leaves = action == "die" || action == "oom" || action == "health_status: unhealthy";
        let returns = action == "start" || action == "health_status: healthy";
        if action == "oom" {
            self.inner.crashes.oom(&event.container);
        }
        if action == "die" {
            self.count_crash(&event);
        }
        if action == "die" || action == "destroy" {
            self.inner.heal.nudge();
        }
        if leaves {
            if self.evict(&event, action) {
                self.replica_failed(&event.app, &event.deployment, action);
            }
        } else if returns {
            self.readmit(event);
        }
    }

    /// Counts the exit of a replica of the serving version that berth did
    /// not ask for.
    fn count_crash(&self, event: &ContainerEvent) {
        let serving = self.inner.store.app(&event.app).is_ok_and(|app| {
            !app.stopped && app.active_deployment.as_deref() == Some(&event.deployment)
        });
        if serving
            && self.inner.crashes.died(
                &event.app,
                &event.deployment,
                &event.container,
                event.exit_code.as_deref(),
            )
        {
            let state = self
                .inner
                .crashes
                .state(&event.app, Some(&event.deployment));
            tracing::warn!(
                app = %event.app,
                container = %event.container,
                exit = state.last_exit.as_deref().unwrap_or("exited"),
                restarts = state.restarts,
                crash_loop = state.crash_loop,
                "a replica crashed; docker restarts it with backoff"
            );
        }
    }

    /// Takes a replica out of the route table at once; whether it served.
    fn evict(&self, event: &ContainerEvent, why: &str) -> bool {
        let serving = |r: &Replica| r.container == event.container;
        if !self.inner.routing.replicas(&event.app).iter().any(serving) {
            return false;
        }
        let removed = self.inner.routing.edit(&event.app, |replicas| {
            let before = replicas.len();
            replicas.retain(|r| !serving(r));
            before != replicas.len()
        });
        if removed {
            tracing::warn!(app = %event.app, container = %event.container, event = why, "a replica left service");
        }
        removed
    }

    /// Brings a restarted replica of the active deployment back once it
    /// passes the health gate.
    fn readmit(&self, event: ContainerEvent) {
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            let is_current = |this: &Orchestrator| {
                this.inner.store.app(&event.app).is_ok_and(|app| {
                    !app.stopped && app.active_deployment.as_deref() == Some(&event.deployment)
                })
            };
            let serving = |this: &Orchestrator| {
                this.inner
                    .routing
                    .replicas(&event.app)
                    .iter()
                    .any(|r| r.container == event.container)
            };
            if !is_current(&this) || serving(&this) {
                return;
            }
            let Ok(deployment) = this.inner.store.deployment(&event.deployment) else {
                return;
            };
            let cancel = this.inner.shutdown.child_token();
            let gate = this
                .wait_all_healthy(
                    std::slice::from_ref(&event.container),
                    deployment.spec.port,
                    &deployment.spec.health_check,
                    &cancel,
                )
                .await;
            let Ok(mut replicas) = gate else { return };
            if !is_current(&this) {
                return;
            }
            let back = this.inner.routing.edit(&event.app, |serving| {
                if serving.iter().any(|r| r.container == event.container) {
                    return false;
                }
                serving.append(&mut replicas);
                true
            });
            if back {
                tracing::info!(app = %event.app, container = %event.container, "a restarted replica is back in service");
            }
        });
    }
}
