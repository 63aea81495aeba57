//! The Docker engine as berth uses it: the instance's network, images,
//! replica containers (labelled `berth.*`, no published ports) and their
//! logs. Errors carry the engine's own message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    EndpointSettings, HealthStatusEnum, HostConfig, HostConfigLogConfig, NetworkingConfig,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::clock;

/// Label naming the berth instance that owns a container or network.
pub const LABEL_INSTANCE: &str = "berth.instance";
/// Label naming the app of a container.
pub const LABEL_APP: &str = "berth.app";
/// Label naming the deployment that created a container.
pub const LABEL_DEPLOYMENT: &str = "berth.deployment";
/// Label with the replica's index within its deployment.
pub const LABEL_REPLICA: &str = "berth.replica";

/// An engine operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine answered with an error; the message is the engine's.
    #[error("{0}")]
    Docker(String),
    /// The operation ran past its deadline.
    #[error("{what} did not finish within {secs}s")]
    Timeout {
        /// The operation.
        what: String,
        /// The deadline in seconds.
        secs: u64,
    },
    /// The deployment was cancelled.
    #[error("cancelled")]
    Cancelled,
}

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

/// What a replica container should look like.
pub struct ReplicaConfig<'a> {
    /// Container name.
    pub name: String,
    /// Image reference or id.
    pub image: &'a str,
    /// Id of the instance network (from [`Engine::ensure_network`]): the
    /// replica attaches by id, which stays unambiguous even when another
    /// network shares the name.
    pub network: &'a str,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Command override.
    pub command: Option<Vec<String>>,
    /// CPU limit in cores.
    pub cpus: Option<f64>,
    /// Memory limit in MiB.
    pub memory_mb: Option<u64>,
    /// `berth.*` labels.
    pub labels: HashMap<String, String>,
    /// Volumes and host paths.
    pub mounts: Vec<bollard::models::Mount>,
    /// A tar archive extracted at `/` before the replica starts (file
    /// mounts).
    pub files: Option<Vec<u8>>,
}

/// Health of a replica as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaState {
    /// Not running; the exit code if known.
    Exited(Option<i64>),
    /// Running; whether the image has a healthcheck and its verdict.
    Running {
        /// Address on the instance network.
        addr: Option<IpAddr>,
        /// `None`: no healthcheck; otherwise healthy (true) / unhealthy (false) / starting (None inside).
        health: Option<HealthVerdict>,
    },
}

/// A Docker healthcheck's current verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthVerdict {
    /// Still in the start period or not yet checked.
    Starting,
    /// Passed.
    Healthy,
    /// Failed; the last probe output.
    Unhealthy(String),
}

/// Handle to the Docker engine for one berth instance.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    instance: String,
    network: String,
    /// Held while the instance network is looked up or created, so racing
    /// deployments create it once (see `network.rs`).
    pub(super) network_flight: Arc<tokio::sync::Mutex<()>>,
}

impl Engine {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket)
    /// and agrees on an API version the engine speaks.
    pub async fn connect(instance: &str) -> Result<Engine, EngineError> {
        let docker = Docker::connect_with_local_defaults()?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| EngineError::Timeout {
                what: "connecting to the Docker engine".into(),
                secs: 10,
            })??;
        Ok(Engine {
            docker,
            instance: instance.to_string(),
            network: format!("berth-{instance}"),
            network_flight: Arc::default(),
        })
    }

    /// The engine's API client (for builds).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The name of the instance's bridge network.
    pub fn network(&self) -> &str {
        &self.network
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
            mounts: (!config.mounts.is_empty()).then_some(config.mounts),
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

    /// The state of a replica: running or not, its address, its health.
    pub async fn replica_state(&self, id: &str) -> Result<ReplicaState, EngineError> {
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
            .and_then(|ip| ip.parse().ok());
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
    pub async fn instance_containers(&self) -> Result<Vec<ContainerSummary>, EngineError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_INSTANCE}={}", self.instance)],
            )])),
            ..Default::default()
        };
        Ok(clock::docker(self.docker.list_containers(Some(options))).await?)
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

/// A lifecycle event of one of the instance's containers.
#[derive(Debug, Clone)]
pub struct ContainerEvent {
    /// `die`, `oom`, `start`, `health_status: healthy`, ...
    pub action: String,
    /// Container id.
    pub container: String,
    /// Its `berth.app` label.
    pub app: String,
    /// Its `berth.deployment` label.
    pub deployment: String,
    /// Exit code, on `die`.
    pub exit_code: Option<String>,
}

impl Engine {
    /// The engine's stream of lifecycle events of this instance's
    /// containers; ends when the connection to the engine does.
    pub fn container_events(
        &self,
    ) -> impl futures_util::Stream<Item = Result<ContainerEvent, EngineError>> + '_ {
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

    /// Removes an image by id unless a container or another tag still uses
    /// it (by tag: removes the tag, and the image with its last one); gone
    /// already is fine.
    pub async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        self.remove_image_with(id, false).await
    }

    /// Removes an image with all its tags (no container may use it).
    pub async fn remove_image_forced(&self, id: &str) -> Result<(), EngineError> {
        self.remove_image_with(id, true).await
    }

    async fn remove_image_with(&self, id: &str, force: bool) -> Result<(), EngineError> {
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

/// The reference with `:latest` added when it names neither a tag nor a
/// digest (a `:` after the last `/` is a tag; before it, a registry port).
pub fn with_default_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || last.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// One log line of a container.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The line, starting with its RFC 3339 timestamp.
    pub text: String,
}

impl Engine {
    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

#[cfg(test)]
mod tests {
    use super::with_default_tag;

    #[test]
    fn untagged_references_pull_latest_only() {
        assert_eq!(with_default_tag("nginx"), "nginx:latest");
        assert_eq!(with_default_tag("nginx:1.27"), "nginx:1.27");
        assert_eq!(
            with_default_tag("reg.example.com:5000/team/app"),
            "reg.example.com:5000/team/app:latest"
        );
        assert_eq!(with_default_tag("app@sha256:abc"), "app@sha256:abc");
    }
}
