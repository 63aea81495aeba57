//! The container engine as berth uses it, behind one trait
//! ([`ContainerEngine`]) that deployments and builds share: the instance's
//! network and volumes, images (pulled, built, tagged, pushed, removed),
//! replica containers (labelled `berth.*`, no published ports), their
//! state, logs and lifecycle events. [`docker::DockerEngine`] implements it
//! over bollard; unit tests use an in-memory fake (`fake`).
//!
//! Methods return boxed futures and streams so an `Arc<dyn
//! ContainerEngine>` can be shared by the orchestrator and the builder.

pub mod clock;
pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod labels;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;

pub use docker::DockerEngine;
pub use labels::{
    volume_name, LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE, LABEL_REPLICA, LABEL_VOLUME,
};

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
    /// The deployment or build was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// An image build failed (a step exited non-zero, bad Dockerfile).
    #[error("build failed: {0}")]
    BuildFailed(String),
    /// Pushing an image to a registry failed.
    #[error("push failed: {0}")]
    Push(String),
    /// A local operation around an engine call failed.
    #[error("{0}")]
    Io(String),
    /// A path could not be read out of an image.
    #[error("{0}")]
    Unreadable(String),
    /// What was read out of an image is larger than allowed.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

/// What a replica container should look like.
pub struct ReplicaConfig<'a> {
    /// Container name.
    pub name: String,
    /// Image reference or id.
    pub image: &'a str,
    /// Id of the instance network (from [`ContainerEngine::ensure_network`]):
    /// the replica attaches by id, which stays unambiguous even when another
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
    pub mounts: Vec<EngineMount>,
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
        /// Where the replica's port (the one asked about) is reached.
        addr: Option<SocketAddr>,
        /// `None`: no healthcheck; otherwise its verdict.
        health: Option<HealthVerdict>,
    },
}

/// A healthcheck's current verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthVerdict {
    /// Still in the start period or not yet checked.
    Starting,
    /// Passed.
    Healthy,
    /// Failed; the last probe output.
    Unhealthy(String),
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

/// One log line of a container.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The line, starting with its RFC 3339 timestamp.
    pub text: String,
}

/// One frame of a container's log: a chunk of its stdout or stderr.
#[derive(Debug, Clone)]
pub struct LogFrame {
    /// From stderr (else stdout, or the terminal of a TTY container).
    pub stderr: bool,
    /// The bytes, starting with the entry's RFC 3339 timestamp.
    pub bytes: Bytes,
}

/// Which part of a container's log to read.
#[derive(Debug, Clone, Default)]
pub struct LogRange {
    /// Keep reading as the container writes, until it stops.
    pub follow: bool,
    /// Only entries from this UNIX second on.
    pub since: Option<i64>,
    /// Only the last this many entries; `None`: all.
    pub tail: Option<usize>,
}

/// One image build.
pub struct ImageBuild<'a> {
    /// Dockerfile path relative to the context.
    pub dockerfile: &'a str,
    /// Tag of the result.
    pub tag: &'a str,
    /// Stage to build.
    pub target: Option<&'a str>,
    /// Build arguments.
    pub args: &'a std::collections::BTreeMap<String, String>,
    /// Build secrets by id, as files only berth can read; with any, the
    /// build runs on BuildKit (which mounts them without storing them).
    pub secrets: Vec<(String, std::path::PathBuf)>,
    /// CPU cores the build may use.
    pub cpus: f64,
    /// Memory per build step, in MiB.
    pub memory_mb: u64,
}

/// Where and how to push.
pub struct Push<'a> {
    /// Repository prefix, e.g. `registry.example.com/team`.
    pub prefix: &'a str,
    /// Credentials, if the registry needs them.
    pub credentials: Option<(&'a str, &'a str)>,
}

/// A sink for a build's output lines.
pub type BuildLog<'a> = &'a (dyn Fn(&str) + Sync);

/// A volume or host path mounted into a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineMount {
    /// A named volume or a host path.
    pub kind: MountKind,
    /// The volume's engine name, or the host path.
    pub source: String,
    /// The path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What an [`EngineMount`] mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// A named volume.
    Volume,
    /// A host path.
    Bind,
}

/// A container of the instance as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Its id.
    pub id: String,
    /// Its name without a leading `/`; its id when it has none.
    pub name: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Whether it runs.
    pub state: ContainerState,
}

impl Container {
    /// The value of label `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The state of a listed container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Running.
    Running,
    /// Exited (stopped, or crashed and not restarted).
    Exited,
    /// Dead: the engine could not stop or remove it cleanly.
    Dead,
    /// Created, restarting, paused or being removed.
    Other,
}

/// The container engine for one berth instance: everything deployments,
/// reconcile, healing, log following and builds ask of it.
pub trait ContainerEngine: Send + Sync {
    /// The instance name.
    fn instance(&self) -> &str;

    /// The name of the instance's bridge network.
    fn network(&self) -> &str;

    /// Returns the id of the instance's network, creating it when there is
    /// none and repairing duplicates when there are several.
    fn ensure_network(&self) -> BoxFuture<'_, Result<String, EngineError>>;

    /// At start-up: when several networks carry the instance's name, keeps
    /// one and removes the empty others.
    fn repair_networks(&self) -> BoxFuture<'_, Result<(), EngineError>>;

    /// Returns the image's id, pulling it first (within `deadline`) if it
    /// is not local.
    fn ensure_image<'a>(
        &'a self,
        reference: &'a str,
        deadline: Duration,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>>;

    /// Creates and starts one replica on the instance network; returns its
    /// id. One that could not start is removed before the error returns.
    fn start_replica<'a>(
        &'a self,
        config: ReplicaConfig<'a>,
    ) -> BoxFuture<'a, Result<String, EngineError>>;

    /// Starts a stopped container; running already is fine.
    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Stops a container, giving it `grace` before it is killed; stopped or
    /// gone already is fine.
    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Stops (with `grace`) and removes a container; gone already is fine.
    fn remove<'a>(&'a self, id: &'a str, grace: Duration)
        -> BoxFuture<'a, Result<(), EngineError>>;

    /// The state of a replica: running or not, where its `port` is reached,
    /// its health.
    fn replica_state<'a>(
        &'a self,
        id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<ReplicaState, EngineError>>;

    /// All containers of this instance, running or not.
    fn instance_containers(&self) -> BoxFuture<'_, Result<Vec<Container>, EngineError>>;

    /// The last `tail` log lines of a container (stdout and stderr).
    fn logs<'a>(
        &'a self,
        id: &'a str,
        tail: usize,
    ) -> BoxFuture<'a, Result<Vec<LogLine>, EngineError>>;

    /// A container's log as demultiplexed, timestamped frames; with
    /// `follow`, live until the container stops or the stream is dropped.
    fn log_frames(
        &self,
        id: &str,
        range: &LogRange,
    ) -> BoxStream<'static, Result<LogFrame, EngineError>>;

    /// The stream of lifecycle events of this instance's containers; ends
    /// when the connection to the engine does.
    fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent, EngineError>>;

    /// The id of a local image, if present.
    fn local_image<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, EngineError>>;

    /// Points the tag `reference` (`repo[:tag]`, `latest` when none) at the
    /// image `id`; a digest reference is left alone.
    fn tag<'a>(&'a self, id: &'a str, reference: &'a str)
        -> BoxFuture<'a, Result<(), EngineError>>;

    /// Ids of the images berth built for `app` on this instance.
    fn built_images<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>, EngineError>>;

    /// Removes an image (by id, or a tag: the tag, and the image with its
    /// last one) unless a container or another tag still uses it; with
    /// `force`, with all its tags. Gone or in use already is fine.
    fn remove_image<'a>(
        &'a self,
        id: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Creates volume `name` of `app` (labelled) unless it exists; returns
    /// its engine name.
    fn ensure_volume<'a>(
        &'a self,
        app: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, EngineError>>;

    /// The engine names of the app's volumes.
    fn app_volumes<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>, EngineError>>;

    /// Removes a volume (its data is gone).
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Builds an image from a tar `context`, streaming output to `log`;
    /// returns the image id.
    fn build_image<'a>(
        &'a self,
        build: &'a ImageBuild<'a>,
        context: Bytes,
        log: BuildLog<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>>;

    /// Tags `local` as `<prefix>/<app>:<tag>` and pushes it; the registry
    /// tag is removed locally afterwards. Returns the pushed reference.
    #[allow(clippy::too_many_arguments)]
    fn push_image<'a>(
        &'a self,
        to: &'a Push<'a>,
        local: &'a str,
        app: &'a str,
        tag: &'a str,
        log: BuildLog<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>>;

    /// Directory `path` of `image` as a tar archive (of at most `cap`
    /// bytes), read through a container that is created, never started,
    /// and removed.
    fn export_dir<'a>(
        &'a self,
        image: &'a str,
        path: &'a str,
        cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, EngineError>>;
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
