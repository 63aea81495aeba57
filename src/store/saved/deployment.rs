//! The saved forms of a deployment's status, trigger, phases and timing
//! (the types the API shows under the same names, in [`crate::store`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Kept;
use crate::store::{DeploymentStatus, Phase, PhaseTime, Timing, Trigger};

saved_enum! {
    /// A saved deployment status.
    SavedStatus for DeploymentStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
        RolledBack = "rolled_back",
    }
}

saved_enum! {
    /// What started a saved deployment.
    SavedTrigger for Trigger {
        Api = "api",
        Restart = "restart",
        Rollback = "rollback",
        Webhook = "webhook",
    }
}

saved_enum! {
    /// A saved step of a deployment.
    SavedPhase for Phase {
        Queued = "queued",
        Running = "running",
        Built = "built",
        ImageReady = "image_ready",
        Healthy = "healthy",
        Switched = "switched",
        Drained = "drained",
        Finished = "finished",
    }
}

/// When a saved deployment reached a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(in crate::store) struct SavedPhaseTime {
    phase: SavedPhase,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

same_fields!(SavedPhaseTime, PhaseTime, { phase, at });

impl Kept for PhaseTime {
    type Saved = SavedPhaseTime;
}

/// Where a saved deployment's time went, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::store) struct SavedTiming {
    total_ms: u64,
    docker_ms: u64,
    waiting_ms: u64,
    berth_ms: u64,
}

same_fields!(SavedTiming, Timing, {
    total_ms, docker_ms, waiting_ms, berth_ms,
});

impl Kept for Timing {
    type Saved = SavedTiming;
}
