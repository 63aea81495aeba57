//! What the API returns: views of the stored records. Secrets (environment
//! values) are redacted; timestamps are RFC 3339.

use std::collections::BTreeMap;

use berth_config::{BuildSpec, Domain, GitSource, HealthCheck, Maintenance, Mount, Strategy};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use berth::orchestrator::{ContainerLogs, Orchestrator};
use berth::store::{
    AppRecord, DeploymentRecord, DeploymentStatus, PhaseTime, ProjectRecord, Timing, Trigger,
};

/// Shown instead of an environment value.
pub const REDACTED: &str = "<redacted>";

/// A project.
#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<ProjectRecord> for ProjectView {
    fn from(r: ProjectRecord) -> Self {
        Self {
            name: r.spec.name,
            description: r.spec.description,
            created_at: r.created_at,
        }
    }
}

/// Whether an app serves.
#[derive(Serialize, ToSchema, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    /// Never deployed successfully, and no deployment of it has failed
    /// since it was created (or the last one was cancelled).
    NotDeployed,
    /// Never deployed successfully and its last deployment failed, so
    /// nothing serves it; `reason` says why (e.g. the engine's pull error).
    Failed,
    /// Every replica serves.
    Running,
    /// Some replicas serve.
    Degraded,
    /// No replica serves although it should.
    Down,
    /// Replicas keep dying (3 exits within 5 minutes, the last one less
    /// than 2 minutes ago); Docker restarts them with exponential backoff.
    CrashLoop,
    /// Stopped by the user.
    Stopped,
}

/// An app and its state.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    /// Name.
    pub name: String,
    /// Project, if any.
    pub project: Option<String>,
    /// Image of the next deployment; for apps from source, the
    /// repository builds are tagged in.
    pub image: String,
    /// Git source (credentials are never shown; `auth` says which is set).
    pub source: Option<GitSource>,
    /// How the source is built (build secret names only).
    pub build: Option<BuildSpec>,
    /// Container port (0 for static sites).
    pub port: u16,
    /// Replicas wanted.
    pub replicas: u32,
    /// Environment variable names; values are redacted.
    pub env: BTreeMap<String, String>,
    /// Command override.
    pub command: Option<Vec<String>>,
    /// CPU limit in cores.
    pub cpus: Option<f64>,
    /// Memory limit in MiB.
    pub memory_mb: Option<u64>,
    /// Routes, each with its route rules (a basic-auth user's password
    /// is never shown).
    pub domains: Vec<Domain>,
    /// How a new replica proves it is ready (read-only here; set it with
    /// `health_check` of the app's input).
    pub health_check: HealthCheck,
    /// Volumes, host paths and files mounted into each replica (a file's
    /// content is not shown).
    pub mounts: Vec<MountView>,
    /// How a deployment replaces running replicas.
    pub strategy: Strategy,
    /// Maintenance mode: while enabled, every route answers 503 with a
    /// page (the replicas keep running).
    pub maintenance: Maintenance,
    /// Custom pages of the edge's 502, 503 and 504, by status.
    #[schema(value_type = BTreeMap<String, String>)]
    pub error_pages: BTreeMap<u16, String>,
    /// Whether it serves.
    pub status: AppStatus,
    /// Why the app is `failed` (the error of its last deployment), or what
    /// berth is doing about missing replicas while it is `degraded` or
    /// `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Replicas serving now.
    pub serving_replicas: usize,
    /// Exits of the serving version's replicas that berth did not ask for.
    pub restarts: u32,
    /// How the last of those ended, e.g. `exited with code 3`.
    pub last_exit: Option<String>,
    /// Deployment whose replicas serve.
    pub active_deployment: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl AppView {
    /// The view of `record` with its live state.
    pub fn new(record: AppRecord, orchestrator: &Orchestrator) -> Self {
        let serving = if record.stopped {
            0
        } else {
            orchestrator.serving_replicas(&record.spec.name)
        };
        let crashes =
            orchestrator.crash_state(&record.spec.name, record.active_deployment.as_deref());
        let mut reason = None;
        let status = if record.stopped {
            AppStatus::Stopped
        } else if record.active_deployment.is_none() {
            reason = last_failure(orchestrator, &record.spec.name);
            if reason.is_some() {
                AppStatus::Failed
            } else {
                AppStatus::NotDeployed
            }
        } else if crashes.crash_loop {
            AppStatus::CrashLoop
        } else if serving == 0 {
            reason = orchestrator.healing(&record.spec.name);
            AppStatus::Down
        } else if serving < record.spec.replicas as usize {
            reason = orchestrator.healing(&record.spec.name);
            AppStatus::Degraded
        } else {
            AppStatus::Running
        };
        let spec = record.spec;
        Self {
            name: spec.name,
            project: spec.project,
            image: spec.image,
            source: spec.source,
            build: spec.build,
            port: spec.port,
            replicas: spec.replicas,
            env: spec
                .env
                .into_keys()
                .map(|k| (k, REDACTED.to_string()))
                .collect(),
            command: spec.command,
            cpus: spec.cpus,
            memory_mb: spec.memory_mb,
            domains: spec.domains,
            health_check: spec.health_check,
            mounts: spec.mounts.iter().map(MountView::from).collect(),
            strategy: spec.strategy,
            maintenance: spec.maintenance,
            error_pages: spec.error_pages,
            status,
            reason,
            serving_replicas: serving,
            restarts: crashes.restarts,
            last_exit: crashes.last_exit,
            active_deployment: record.active_deployment,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// A mount of an app as the API shows it: a file's content stays out
/// (it may hold secrets); send a file without `content` to keep it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountView {
    /// A named volume of the app (`berth-<instance>.<app>.<name>`).
    Volume {
        /// Its name within the app.
        name: String,
        /// Path in the container.
        path: String,
        /// Read-only.
        read_only: bool,
    },
    /// A host path.
    Bind {
        /// Path on the host.
        host_path: String,
        /// Path in the container.
        path: String,
        /// Read-only.
        read_only: bool,
    },
    /// A file written into each replica.
    File {
        /// Path in the container.
        path: String,
        /// Octal permissions, e.g. `0440`.
        mode: String,
        /// Size of its content.
        bytes: usize,
    },
}

impl From<&Mount> for MountView {
    fn from(m: &Mount) -> Self {
        match m.clone() {
            Mount::Volume {
                name,
                path,
                read_only,
            } => Self::Volume {
                name,
                path,
                read_only,
            },
            Mount::Bind {
                host_path,
                path,
                read_only,
            } => Self::Bind {
                host_path,
                path,
                read_only,
            },
            Mount::File {
                path,
                content,
                mode,
            } => Self::File {
                path,
                mode: format!("0{mode:o}"),
                bytes: content.len(),
            },
        }
    }
}

/// The error of the app's last ended deployment, when it failed.
fn last_failure(orchestrator: &Orchestrator, app: &str) -> Option<String> {
    // One still queued or running has not ended yet.
    let last = match orchestrator
        .store()
        .newest_deployment_where(app, |d| d.status.is_final())
    {
        Ok(last) => last?,
        Err(err) => {
            tracing::warn!(app, %err, "could not read the app's deployments");
            return None;
        }
    };
    match last.status {
        DeploymentStatus::Failed | DeploymentStatus::RolledBack => Some(
            last.error
                .unwrap_or_else(|| format!("deployment {} failed", last.id)),
        ),
        _ => None,
    }
}

/// A deployment.
#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    /// Id (sortable by time).
    pub id: String,
    /// App.
    pub app: String,
    /// queued, running, succeeded, failed, cancelled or rolled_back.
    pub status: DeploymentStatus,
    /// What started it.
    pub trigger: Trigger,
    /// Why it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Image reference.
    pub image: String,
    /// Image id, once resolved.
    pub image_id: Option<String>,
    /// Replicas it starts.
    pub replicas: u32,
    /// For a rollback (trigger `rollback`, manual or automatic): the id of
    /// the deployment it rolls back to. Once the rollback serves, that
    /// deployment's image and settings (image or source, port, replicas,
    /// env, command, limits, health check, batch size) are the app's spec
    /// again, so the next plain deployment runs that version too; domains
    /// stay as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// Apps from source: the commit built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Its subject line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    /// Where the built image was pushed (`[build] registry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_image: Option<String>,
    /// When each phase was reached, in order.
    pub phases: Vec<PhaseTime>,
    /// Where its time went (Docker calls, waiting on the app, berth), once
    /// it ran to its end.
    pub timing: Option<Timing>,
    /// Queued at.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Started running at.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<OffsetDateTime>,
    /// Ended at.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<DeploymentRecord> for DeploymentView {
    fn from(d: DeploymentRecord) -> Self {
        Self {
            id: d.id,
            app: d.app,
            status: d.status,
            trigger: d.trigger,
            error: d.error,
            image: d.image,
            image_id: d.image_id,
            replicas: d.spec.replicas,
            rollback_of: d.rollback_of,
            commit: d.commit,
            commit_message: d.commit_message,
            pushed_image: d.pushed_image,
            phases: d.phases,
            timing: d.timing,
            created_at: d.created_at,
            started_at: d.started_at,
            finished_at: d.finished_at,
        }
    }
}

/// Logs of an app's containers.
#[derive(Serialize, ToSchema)]
pub struct LogsView {
    /// One entry per container.
    pub containers: Vec<ContainerLogs>,
}
