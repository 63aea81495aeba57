//! The records kept in the store: projects, apps with their state, and
//! deployments. The enums and small structs here are the API's too; the
//! records save them through the store's own forms (`saved/`), so their
//! serde names below are the API's, not the file format's.

use berth_config::{AppSpec, ProjectSpec};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A stored project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// The validated spec; saved as `SavedProject` (`saved.rs`).
    #[serde(with = "super::saved::project")]
    pub spec: ProjectSpec,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A stored app: its spec and what berth has made of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRecord {
    /// The validated spec; image and resources apply at the next deployment.
    /// Saved as `SavedSpec` (`saved.rs`), not as the API's type.
    #[serde(with = "super::saved::spec")]
    pub spec: AppSpec,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The deployment whose containers serve the app, if any.
    pub active_deployment: Option<String>,
    /// Stopped by the user: containers stay stopped and routes answer 503.
    pub stopped: bool,
    /// The app's secrets (git credentials, build secrets, webhook token and
    /// secret), sealed as one value by [`crate::vault`]; never plain.
    #[serde(default)]
    pub vault: Option<String>,
}

impl AppRecord {
    /// Makes `deployed` (the spec an earlier deployment ran with) the
    /// app's spec again, as a rollback that serves does: what runs
    /// (image or source and build, port, replicas, env, command, limits,
    /// health check, batch size) comes back; where it is reached from,
    /// how the edge answers for it and where it belongs (name, project,
    /// domains with their route rules, maintenance mode, error pages,
    /// which apply at once and were never part of a version) stay as they
    /// are now.
    pub fn roll_back_to(&mut self, deployed: &AppSpec) {
        let now = &mut self.spec;
        now.image = deployed.image.clone();
        now.source = deployed.source.clone();
        now.build = deployed.build.clone();
        now.port = deployed.port;
        now.replicas = deployed.replicas;
        now.env = deployed.env.clone();
        now.command = deployed.command.clone();
        now.cpus = deployed.cpus;
        now.memory_mb = deployed.memory_mb;
        now.health_check = deployed.health_check.clone();
        now.batch_size = deployed.batch_size;
        self.updated_at = OffsetDateTime::now_utc();
    }
}

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Waiting for its turn.
    Queued,
    /// Pulling, starting or health-checking.
    Running,
    /// Serving traffic.
    Succeeded,
    /// Did not become healthy or could not start; see `error`.
    Failed,
    /// Stopped before it finished.
    Cancelled,
    /// Served, then failed within the watch window after the switch; a
    /// rollback to the previous version was queued.
    RolledBack,
}

impl DeploymentStatus {
    /// The status as written in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Whether the deployment has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::RolledBack
        )
    }
}

/// What started a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `POST /api/v1/apps/{name}/deployments`.
    Api,
    /// Reconcile found the app's containers gone.
    Restart,
    /// `POST /api/v1/apps/{name}/rollback`.
    Rollback,
    /// A push or image webhook (`POST /api/v1/hooks/{app}/{token}`).
    Webhook,
}

/// A stored deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// Sortable id: 12 hex digits of milliseconds, then 8 random.
    pub id: String,
    /// The app.
    pub app: String,
    /// Current status; saved as `SavedStatus` (`saved/deployment.rs`).
    #[serde(with = "super::saved::value")]
    pub status: DeploymentStatus,
    /// What started it; saved as `SavedTrigger`.
    #[serde(with = "super::saved::value")]
    pub trigger: Trigger,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// The image reference deployed.
    pub image: String,
    /// The image id it resolved to, once known; set from the start (pinned)
    /// for a rollback.
    pub image_id: Option<String>,
    /// For a rollback (manual or automatic): the deployment it returns to.
    /// Once the rollback serves, that deployment's image and settings are
    /// the app's spec again ([`AppRecord::roll_back_to`]).
    #[serde(default)]
    pub rollback_of: Option<String>,
    /// Apps from source: the commit built, once checked out (or the
    /// commit a webhook announced, until then).
    #[serde(default)]
    pub commit: Option<String>,
    /// The subject line of `commit`.
    #[serde(default)]
    pub commit_message: Option<String>,
    /// Static sites: the deployment whose files serve (itself, or the
    /// target of a rollback).
    #[serde(default)]
    pub site: Option<String>,
    /// Where the built image was pushed (`[build] registry`), if anywhere.
    #[serde(default)]
    pub pushed_image: Option<String>,
    /// When each phase was reached, in order; saved as `SavedPhaseTime`s.
    #[serde(default, with = "super::saved::list")]
    pub phases: Vec<PhaseTime>,
    /// Where its time went, once it ended; saved as `SavedTiming`.
    #[serde(default, with = "super::saved::option")]
    pub timing: Option<Timing>,
    /// The app's spec at the time of the deployment; saved as
    /// `SavedSpec` (`saved.rs`).
    #[serde(with = "super::saved::spec")]
    pub spec: AppSpec,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it started running.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// Where the time of one deployment went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timing {
    /// From the start of its run to its end (queue wait excluded).
    pub total_ms: u64,
    /// Inside Docker API calls (pull, create, start, inspect, stop, remove).
    pub docker_ms: u64,
    /// Waiting on the app: health gates and drains, less Docker calls.
    pub waiting_ms: u64,
    /// The rest: berth's own work.
    pub berth_ms: u64,
}

/// A step of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Recorded and waiting for its turn.
    Queued,
    /// Holds its app's turn and a permit.
    Running,
    /// The source was checked out and built (apps from source).
    Built,
    /// The image is local (pulled if needed).
    ImageReady,
    /// Every new replica passed its health gate.
    Healthy,
    /// The route table sends traffic to the new replicas.
    Switched,
    /// The previous replicas have no requests in flight (or hit the deadline).
    Drained,
    /// The deployment ended (any status).
    Finished,
}

/// When a deployment reached a phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhaseTime {
    /// The phase.
    pub phase: Phase,
    /// When it was reached.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl DeploymentRecord {
    /// A new queued deployment of `spec`.
    pub fn queued(spec: &AppSpec, trigger: Trigger) -> Self {
        let now = OffsetDateTime::now_utc();
        let millis = (now.unix_timestamp_nanos() / 1_000_000) as u64;
        Self {
            id: format!("{millis:012x}{:08x}", rand::random::<u32>()),
            app: spec.name.clone(),
            status: DeploymentStatus::Queued,
            trigger,
            error: None,
            image: spec.image.clone(),
            image_id: None,
            rollback_of: None,
            commit: None,
            commit_message: None,
            site: None,
            pushed_image: None,
            phases: vec![PhaseTime {
                phase: Phase::Queued,
                at: now,
            }],
            timing: None,
            spec: spec.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    /// Ends the deployment with `status` and an optional reason.
    pub fn finish(&mut self, status: DeploymentStatus, error: Option<String>) {
        let now = OffsetDateTime::now_utc();
        self.status = status;
        self.error = error;
        self.finished_at = Some(now);
        self.phases.push(PhaseTime {
            phase: Phase::Finished,
            at: now,
        });
    }

    /// Records that the deployment reached `phase` now.
    pub fn reached(&mut self, phase: Phase) {
        self.phases.push(PhaseTime {
            phase,
            at: OffsetDateTime::now_utc(),
        });
    }
}
