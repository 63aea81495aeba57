//! Metrics of the orchestrator: deployments by outcome, apps, running
//! replicas.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::DeploymentStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Metric handles of the orchestrator.
#[derive(Clone)]
pub struct OrchestratorMetrics {
    deployments: Family<OutcomeLabels, Counter>,
    apps: Gauge<i64, AtomicI64>,
    containers: Gauge<i64, AtomicI64>,
}

impl OrchestratorMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let deployments = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deployments",
            "Deployments that ended, by outcome",
            deployments.clone(),
        );
        let apps = Gauge::<i64, AtomicI64>::default();
        registry.register("apps", "Apps in the store", apps.clone());
        let containers = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "containers_running",
            "Replica containers serving traffic",
            containers.clone(),
        );
        // Make every outcome visible from the start.
        for status in [
            DeploymentStatus::Succeeded,
            DeploymentStatus::Failed,
            DeploymentStatus::Cancelled,
            DeploymentStatus::RolledBack,
        ] {
            let _ = deployments.get_or_create(&OutcomeLabels {
                outcome: status.as_str(),
            });
        }
        Self {
            deployments,
            apps,
            containers,
        }
    }

    /// Counts a deployment that ended with `status`.
    pub fn deployment_finished(&self, status: DeploymentStatus) {
        self.deployments
            .get_or_create(&OutcomeLabels {
                outcome: status.as_str(),
            })
            .inc();
    }

    /// Sets the number of apps and of serving replicas.
    pub fn set_state(&self, apps: usize, containers: usize) {
        self.apps.set(apps as i64);
        self.containers.set(containers as i64);
    }
}
