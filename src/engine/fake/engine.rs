//! [`ContainerEngine`] on the fake: every call is counted, may be held or
//! fail on cue (`FakeEngine::enter`), then acts on the maps.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::replica::{event_of, halt, run, summary};
use super::{Call, FakeContainer, FakeEngine};
use crate::engine::{
    volume_name, BuildLog, Container, ContainerEngine, ContainerEvent, EngineError, ImageBuild,
    LogFrame, LogLine, LogRange, Push, ReplicaConfig, ReplicaState,
};

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
