//! The Docker engine over bollard: [`DockerEngine`] implements
//! [`ContainerEngine`] for the containers, images, volumes and logs of one
//! berth instance. Errors carry the engine's own message.

mod build;
mod delegate;
mod network;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, EndpointSettings, HealthStatusEnum, HostConfig, HostConfigLogConfig,
    Mount, MountType, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListVolumesOptions,
    LogsOptions, RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::clock;
use super::{
    volume_name, with_default_tag, Container, ContainerEvent, ContainerState, EngineError,
    EngineMount, HealthVerdict, LogFrame, LogLine, LogRange, MountKind, ReplicaConfig,
    ReplicaState, LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE, LABEL_VOLUME,
};

impl From<BollardError> for EngineError {
    fn from(e: BollardError) -> Self {
        match e {
            BollardError::DockerResponseServerError { message, .. } => EngineError::Docker(message),
            other => EngineError::Docker(other.to_string()),
        }
    }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Handle to the Docker engine for one berth instance.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    instance: String,
    network: String,
    /// Held while the instance network is looked up or created, so racing
    /// deployments create it once (see `network.rs`).
    network_flight: Arc<tokio::sync::Mutex<()>>,
}

/// A listed container as berth sees it; `None` without an id.
fn container(c: ContainerSummary) -> Option<Container> {
    let id = c.id?;
    let name = c
        .names
        .and_then(|n| n.into_iter().next())
        .map_or_else(|| id.clone(), |n| n.trim_start_matches('/').to_string());
    let state = match c.state {
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::EXITED) => ContainerState::Exited,
        Some(ContainerSummaryStateEnum::DEAD) => ContainerState::Dead,
        _ => ContainerState::Other,
    };
    Some(Container {
        id,
        name,
        labels: c.labels.unwrap_or_default(),
        state,
    })
}

/// A replica's mount as the engine takes it.
fn mount(m: &EngineMount) -> Mount {
    Mount {
        target: Some(m.target.clone()),
        source: Some(m.source.clone()),
        typ: Some(match m.kind {
            MountKind::Volume => MountType::VOLUME,
            MountKind::Bind => MountType::BIND,
        }),
        read_only: Some(m.read_only),
        ..Default::default()
    }
}

impl DockerEngine {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket)
    /// and agrees on an API version the engine speaks.
    pub async fn connect(instance: &str) -> Result<DockerEngine, EngineError> {
        let docker = Docker::connect_with_local_defaults()?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| EngineError::Timeout {
                what: "connecting to the Docker engine".into(),
                secs: 10,
            })??;
        Ok(DockerEngine {
            docker,
            instance: instance.to_string(),
            network: format!("berth-{instance}"),
            network_flight: Arc::default(),
        })
    }

    /// The engine's API client.
    fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Returns the image's id, pulling it first if it is not local.
    pub async fn ensure_image(
        &self,
        reference: &str,
        deadline: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        match clock::docker(self.docker.inspect_image(reference)).await {
            Ok(image) => {
                return image
                    .id
                    .ok_or_else(|| EngineError::Docker("image has no id".into()))
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        // Without a tag Docker would pull every tag of the repository.
        let options = CreateImageOptions {
            from_image: Some(with_default_tag(reference)),
            ..Default::default()
        };
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(progress) = stream.next().await {
                let progress = progress?;
                if let Some(detail) = progress.error_detail.and_then(|d| d.message) {
                    return Err(EngineError::Docker(detail));
                }
            }
            Ok(())
        };
        tokio::select! {
            _ = cancel.cancelled() => return Err(EngineError::Cancelled),
            r = clock::docker(tokio::time::timeout(deadline, pull)) => r.map_err(|_| EngineError::Timeout {
                what: format!("pulling {reference}"),
                secs: deadline.as_secs(),
            })??,
        }
        let image = clock::docker(self.docker.inspect_image(reference)).await?;
        image
            .id
            .ok_or_else(|| EngineError::Docker("image has no id".into()))
    }

    /// Creates and starts one replica on the instance network (attached by
    /// the network's id); returns its id.
    pub async fn start_replica(&self, config: ReplicaConfig<'_>) -> Result<String, EngineError> {
        let host_config = HostConfig {
            network_mode: Some(self.network.clone()),
            mounts: (!config.mounts.is_empty()).then(|| config.mounts.iter().map(mount).collect()),
            nano_cpus: config.cpus.map(|c| (c * 1e9) as i64),
            memory: config.memory_mb.map(|m| (m * 1024 * 1024) as i64),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "10m".to_string()),
                    ("max-file".to_string(), "3".to_string()),
                ])),
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(config.image.to_string()),
            env: Some(config.env),
            cmd: config.command,
            labels: Some(config.labels),
            host_config: Some(host_config),
            // Docker resolves the network by this id, not by its name,
            // when it creates and whenever it (re)starts the container.
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.network.clone(),
                    EndpointSettings {
                        network_id: Some(config.network.to_string()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(config.name),
            ..Default::default()
        };
        let created = clock::docker(self.docker.create_container(Some(options), body)).await?;
        if let Some(files) = config.files {
            let options = bollard::query_parameters::UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            };
            let upload = self.docker.upload_to_container(
                &created.id,
                Some(options),
                bollard::body_full(files.into()),
            );
            if let Err(e) = clock::docker(upload).await {
                let _ = self.remove(&created.id, Duration::ZERO).await;
                return Err(EngineError::Docker(format!(
                    "writing the file mounts: {}",
                    EngineError::from(e)
                )));
            }
        }
        if let Err(e) = clock::docker(self.docker.start_container(&created.id, None)).await {
            // Not started means not tracked by the caller: remove it here.
            let _ = self.remove(&created.id, Duration::ZERO).await;
            return Err(e.into());
        }
        Ok(created.id)
    }

    /// Starts a stopped container.
    pub async fn start(&self, id: &str) -> Result<(), EngineError> {
        match clock::docker(self.docker.start_container(id, None)).await {
            Ok(()) => Ok(()),
            // 304: already running.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops a container, giving it `grace` before it is killed.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let options = StopContainerOptions {
            t: Some(grace.as_secs() as i32),
            ..Default::default()
        };
        match clock::docker(self.docker.stop_container(id, Some(options))).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops (with `grace`) and removes a container; gone already is fine.
    pub async fn remove(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.stop(id, grace).await?;
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match clock::docker(self.docker.remove_container(id, Some(options))).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The state of a replica: running or not, where its `port` is
    /// reached on the instance network, its health.
    pub async fn replica_state(&self, id: &str, port: u16) -> Result<ReplicaState, EngineError> {
        let info: ContainerInspectResponse =
            clock::docker(self.docker.inspect_container(id, None)).await?;
        let state = info.state.unwrap_or_default();
        let running = matches!(state.status, Some(ContainerStateStatusEnum::RUNNING));
        if !running {
            // Restarting after a crash counts as not running.
            return Ok(ReplicaState::Exited(state.exit_code));
        }
        let addr = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut nets| nets.remove(&self.network))
            .and_then(|ep| ep.ip_address)
            .and_then(|ip| ip.parse().ok())
            .map(|ip| std::net::SocketAddr::new(ip, port));
        let has_check = info
            .config
            .and_then(|c| c.healthcheck)
            .and_then(|h| h.test)
            .is_some_and(|t| !t.is_empty() && t[0] != "NONE");
        let health = if has_check {
            let h = state.health.unwrap_or_default();
            Some(match h.status {
                Some(HealthStatusEnum::HEALTHY) => HealthVerdict::Healthy,
                Some(HealthStatusEnum::UNHEALTHY) => {
                    let output = h
                        .log
                        .and_then(|log| log.into_iter().last())
                        .and_then(|r| r.output)
                        .unwrap_or_default();
                    HealthVerdict::Unhealthy(output.trim().chars().take(500).collect())
                }
                _ => HealthVerdict::Starting,
            })
        } else {
            None
        };
        Ok(ReplicaState::Running { addr, health })
    }

    /// All containers of this instance, running or not.
    pub async fn instance_containers(&self) -> Result<Vec<Container>, EngineError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_INSTANCE}={}", self.instance)],
            )])),
            ..Default::default()
        };
        let listed = clock::docker(self.docker.list_containers(Some(options))).await?;
        Ok(listed.into_iter().filter_map(container).collect())
    }

    /// The last `tail` log lines of a container (stdout and stderr).
    pub async fn logs(&self, id: &str, tail: usize) -> Result<Vec<LogLine>, EngineError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            timestamps: true,
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(options));
        let mut lines = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let stream_name = match &chunk {
                bollard::container::LogOutput::StdErr { .. } => "stderr",
                _ => "stdout",
            };
            let text = String::from_utf8_lossy(chunk.as_ref());
            for line in text.lines() {
                lines.push(LogLine {
                    stream: stream_name,
                    text: line.to_string(),
                });
            }
        }
        Ok(lines)
    }
}

impl DockerEngine {
    /// The engine's stream of lifecycle events of this instance's
    /// containers; ends when the connection to the engine does.
    pub fn container_events(
        &self,
    ) -> impl futures_util::Stream<Item = Result<ContainerEvent, EngineError>> + Send + 'static
    {
        let options = bollard::query_parameters::EventsOptions {
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                (
                    "label".to_string(),
                    vec![format!("{LABEL_INSTANCE}={}", self.instance)],
                ),
                (
                    "event".to_string(),
                    ["die", "destroy", "oom", "start", "health_status"]
                        .map(String::from)
                        .to_vec(),
                ),
            ])),
            ..Default::default()
        };
        self.docker
            .events(Some(options))
            .filter_map(|event| async move {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => return Some(Err(e.into())),
                };
                let actor = event.actor?;
                let attributes = actor.attributes.unwrap_or_default();
                Some(Ok(ContainerEvent {
                    action: event.action?,
                    container: actor.id?,
                    app: attributes.get(LABEL_APP)?.clone(),
                    deployment: attributes.get(LABEL_DEPLOYMENT)?.clone(),
                    exit_code: attributes.get("exitCode").cloned(),
                }))
            })
    }

    /// The id of a local image, if present.
    pub async fn local_image(&self, reference: &str) -> Result<Option<String>, EngineError> {
        match clock::docker(self.docker.inspect_image(reference)).await {
            Ok(image) => Ok(image.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Points the tag `reference` (`repo[:tag]`, `latest` when none) at the
    /// image `id`. A digest reference (`repo@sha256:…`) cannot move and is
    /// left alone.
    pub async fn tag(&self, id: &str, reference: &str) -> Result<(), EngineError> {
        let reference = with_default_tag(reference);
        if reference.contains('@') {
            return Ok(());
        }
        let Some((repo, tag)) = reference.rsplit_once(':') else {
            return Ok(());
        };
        let options = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repo)
            .tag(tag)
            .build();
        clock::docker(self.docker.tag_image(id, Some(options))).await?;
        Ok(())
    }

    /// Ids of the images berth built for `app` on this instance.
    pub async fn built_images(&self, app: &str) -> Result<Vec<String>, EngineError> {
        // Built images are known by their repository, not by labels: each
        // label costs the classic builder a step of its own (about 1 s).
        let filters = HashMap::from([(
            "reference".to_string(),
            vec![format!("berth-{}/{app}", self.instance)],
        )]);
        let options = bollard::query_parameters::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let images = clock::docker(self.docker.list_images(Some(options))).await?;
        Ok(images.into_iter().map(|i| i.id).collect())
    }

    /// Removes an image (by id, or a tag: the tag, and the image with its
    /// last one) unless a container or another tag still uses it; with
    /// `force`, with all its tags. Gone or in use already is fine.
    pub async fn remove_image(&self, id: &str, force: bool) -> Result<(), EngineError> {
        let options = bollard::query_parameters::RemoveImageOptions {
            force,
            noprune: false,
            ..Default::default()
        };
        match clock::docker(self.docker.remove_image(id, Some(options), None)).await {
            Ok(_) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl DockerEngine {
    /// A container's log as demultiplexed frames, timestamped; with
    /// `follow`, live until the container stops or the stream is dropped.
    pub fn log_frames(
        &self,
        id: &str,
        range: &LogRange,
    ) -> impl futures_util::Stream<Item = Result<LogFrame, EngineError>> + Send + 'static {
        let options = LogsOptions {
            follow: range.follow,
            stdout: true,
            stderr: true,
            since: range
                .since
                .map_or(0, |s| i32::try_from(s.max(0)).unwrap_or(i32::MAX)),
            timestamps: true,
            tail: range
                .tail
                .map_or_else(|| "all".to_string(), |t| t.to_string()),
            ..Default::default()
        };
        self.docker.logs(id, Some(options)).map(|chunk| {
            let chunk = chunk?;
            let stderr = matches!(chunk, bollard::container::LogOutput::StdErr { .. });
            let bytes = match chunk {
                bollard::container::LogOutput::StdErr { message }
                | bollard::container::LogOutput::StdOut { message }
                | bollard::container::LogOutput::StdIn { message }
                | bollard::container::LogOutput::Console { message } => message,
            };
            Ok(LogFrame { stderr, bytes })
        })
    }

    /// Creates volume `name` of `app` unless it exists; its engine name.
    pub async fn ensure_volume(&self, app: &str, name: &str) -> Result<String, EngineError> {
        let full = volume_name(&self.instance, app, name);
        // Creating a volume that exists returns it unchanged.
        let request = VolumeCreateRequest {
            name: Some(full.clone()),
            labels: Some(HashMap::from([
                (LABEL_INSTANCE.to_string(), self.instance.clone()),
                (LABEL_APP.to_string(), app.to_string()),
                (LABEL_VOLUME.to_string(), name.to_string()),
            ])),
            ..Default::default()
        };
        clock::docker(self.docker.create_volume(request)).await?;
        Ok(full)
    }

    /// The engine names of the app's volumes.
    pub async fn app_volumes(&self, app: &str) -> Result<Vec<String>, EngineError> {
        let options = ListVolumesOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![
                    format!("{LABEL_INSTANCE}={}", self.instance),
                    format!("{LABEL_APP}={app}"),
                ],
            )])),
        };
        let list = clock::docker(self.docker.list_volumes(Some(options))).await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Removes a volume.
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveVolumeOptions::default();
        clock::docker(self.docker.remove_volume(name, Some(options))).await?;
        Ok(())
    }
}
