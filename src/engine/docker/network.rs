//! The instance's bridge network, `berth-<instance>`: found by its label
//! and name (never inspected by bare name, which turns ambiguous once two
//! networks share it), created once even when deployments race (single
//! flight within the process), and repaired when an engine that does not
//! refuse duplicate names (Docker 20.10) holds several: the one in use (or
//! the oldest) stays, empty extras are removed, nothing is moved.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::{Network, NetworkCreateRequest};
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions};
use time::OffsetDateTime;

use super::DockerEngine;
use crate::engine::{clock, EngineError, LABEL_INSTANCE};

/// One network named `berth-<instance>` as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedNetwork {
    /// The network's id.
    pub id: String,
    /// When the engine created it, if it says.
    pub created: Option<OffsetDateTime>,
    /// Containers attached to it, running or not.
    pub containers: usize,
}

/// What to do about the instance's networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The network replicas attach to (by id).
    pub keep: String,
    /// Empty duplicates to remove.
    pub remove: Vec<String>,
    /// Duplicates that still have containers: left alone (nothing is
    /// moved); they empty as deployments replace their replicas.
    pub in_use: Vec<String>,
}

/// Chooses among the networks that carry the instance's name and label:
/// keep the oldest of those with containers attached, else the oldest;
/// remove the empty others. `None` when there is none.
pub fn plan(observed: &[ObservedNetwork]) -> Option<NetworkPlan> {
    let keep = observed.iter().min_by(|a, b| {
        // In use first, then oldest (unknown age last), then by id so the
        // choice is the same on every run.
        (a.containers == 0)
            .cmp(&(b.containers == 0))
            .then_with(|| match (a.created, b.created) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.id.cmp(&b.id))
    })?;
    let others = observed.iter().filter(|n| n.id != keep.id);
    let (in_use, empty): (Vec<_>, Vec<_>) = others.partition(|n| n.containers > 0);
    Some(NetworkPlan {
        keep: keep.id.clone(),
        remove: empty.into_iter().map(|n| n.id.clone()).collect(),
        in_use: in_use.into_iter().map(|n| n.id.clone()).collect(),
    })
}

impl DockerEngine {
    /// Returns the id of the instance's bridge network, creating it when
    /// there is none and repairing duplicates when there are several.
    /// Concurrent callers wait for one another, so one network is made.
    pub async fn ensure_network(&self) -> Result<String, EngineError> {
        let _flight = self.network_flight.lock().await;
        let found = self.instance_networks().await?;
        if !found.is_empty() {
            return self.settle(found).await;
        }
        let request = NetworkCreateRequest {
            name: self.network.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                LABEL_INSTANCE.to_string(),
                self.instance.as_str().to_string(),
            )])),
            ..Default::default()
        };
        match clock::docker(self.docker().create_network(request)).await {
            // Docker 20.10 creates a duplicate and only warns: another
            // process made one at the same time. Settle on one of them.
            Ok(created) if !created.warning.is_empty() => {
                tracing::warn!(network = self.network.as_str(), warning = %created.warning, "the engine reports a network of the same name");
                let found = self.instance_networks().await?;
                self.settle(found).await
            }
            Ok(created) => {
                tracing::info!(network = self.network.as_str(), id = %created.id, "created the instance network");
                Ok(created.id)
            }
            // A newer engine refuses the name: a network without berth's
            // label holds it. Use it rather than fail every deployment.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => self.network_by_name().await,
            Err(e) => Err(e.into()),
        }
    }

    /// At start-up: when several networks carry the instance's name and
    /// label, keeps one and removes the empty others (see [`plan`]).
    pub async fn repair_networks(&self) -> Result<(), EngineError> {
        let _flight = self.network_flight.lock().await;
        let found = self.instance_networks().await?;
        if found.len() > 1 {
            self.settle(found).await?;
        }
        Ok(())
    }

    /// Networks with the instance's label and exactly its name.
    async fn instance_networks(&self) -> Result<Vec<Network>, EngineError> {
        let options = ListNetworksOptions {
            filters: Some(HashMap::from([
                (
                    "label".to_string(),
                    vec![format!("{LABEL_INSTANCE}={}", self.instance.as_str())],
                ),
                ("name".to_string(), vec![self.network.as_str().to_string()]),
            ])),
        };
        let networks = clock::docker(self.docker().list_networks(Some(options))).await?;
        // The name filter matches parts of names too.
        Ok(networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(self.network.as_str()) && n.id.is_some())
            .collect())
    }

    /// The id of the one network named like the instance's (any labels).
    async fn network_by_name(&self) -> Result<String, EngineError> {
        let options = ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![self.network.as_str().to_string()],
            )])),
        };
        let networks = clock::docker(self.docker().list_networks(Some(options))).await?;
        networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(self.network.as_str()))
            .find_map(|n| n.id)
            .ok_or_else(|| {
                EngineError::Docker(format!(
                    "the engine says network {} exists but does not list it; remove it with `docker network rm {}`",
                    self.network.as_str(),
                    self.network.as_str()
                ))
            })
    }

    /// Picks the network to use among `found` (not empty) and removes the
    /// empty duplicates; returns the id kept.
    async fn settle(&self, found: Vec<Network>) -> Result<String, EngineError> {
        if let [only] = found.as_slice() {
            if let Some(id) = &only.id {
                return Ok(id.clone());
            }
        }
        let mut observed = Vec::with_capacity(found.len());
        for network in found {
            let Some(id) = network.id else { continue };
            let containers = self.containers_on(&id).await?;
            observed.push(ObservedNetwork {
                id,
                created: network.created,
                containers,
            });
        }
        let Some(plan) = plan(&observed) else {
            return Err(EngineError::Docker(format!(
                "network {} has no id; remove it with `docker network rm {}`",
                self.network.as_str(),
                self.network.as_str()
            )));
        };
        tracing::warn!(
            network = self.network.as_str(),
            count = observed.len(),
            keep = %plan.keep,
            "several networks carry the instance's name; keeping the one in use (or the oldest)"
        );
        for id in &plan.remove {
            match clock::docker(self.docker().remove_network(id)).await {
                Ok(()) => {
                    tracing::info!(network = self.network.as_str(), id = %id, "removed an empty duplicate network")
                }
                Err(err) => {
                    tracing::warn!(network = self.network.as_str(), id = %id, %err, "could not remove an empty duplicate network")
                }
            }
        }
        for id in &plan.in_use {
            tracing::warn!(
                network = self.network.as_str(),
                id = %id,
                "a duplicate network still has containers; left in place until its replicas are replaced, removed at a later start"
            );
        }
        Ok(plan.keep)
    }

    /// Containers attached to network `id`, running or not.
    async fn containers_on(&self, id: &str) -> Result<usize, EngineError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "network".to_string(),
                vec![id.to_string()],
            )])),
            ..Default::default()
        };
        Ok(clock::docker(self.docker().list_containers(Some(options)))
            .await?
            .len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn net(id: &str, created: Option<OffsetDateTime>, containers: usize) -> ObservedNetwork {
        ObservedNetwork {
            id: id.into(),
            created,
            containers,
        }
    }

    #[test]
    fn nothing_observed_means_nothing_to_keep() {
        assert_eq!(plan(&[]), None);
    }

    #[test]
    fn one_network_is_kept_as_it_is() {
        let p = plan(&[net("a", None, 0)]).unwrap();
        assert_eq!(
            (p.keep.as_str(), p.remove.len(), p.in_use.len()),
            ("a", 0, 0)
        );
    }

    #[test]
    fn the_network_in_use_wins_over_an_older_empty_one() {
        let old = datetime!(2026-01-01 0:00 UTC);
        let new = datetime!(2026-02-01 0:00 UTC);
        let p = plan(&[net("old", Some(old), 0), net("new", Some(new), 2)]).unwrap();
        assert_eq!(p.keep, "new");
        assert_eq!(p.remove, vec!["old".to_string()]);
        assert!(p.in_use.is_empty());
    }

    #[test]
    fn without_containers_the_oldest_stays_and_the_rest_go() {
        let t = |d| Some(datetime!(2026-01-01 0:00 UTC) + time::Duration::days(d));
        let p = plan(&[net("b", t(2), 0), net("a", t(1), 0), net("c", None, 0)]).unwrap();
        assert_eq!(p.keep, "a");
        let mut removed = p.remove.clone();
        removed.sort();
        assert_eq!(removed, vec!["b".to_string(), "c".to_string()]);
    }

    #[test]
    fn duplicates_with_containers_are_left_alone() {
        let t = |d| Some(datetime!(2026-01-01 0:00 UTC) + time::Duration::days(d));
        let p = plan(&[net("x", t(3), 1), net("y", t(1), 4), net("z", t(2), 0)]).unwrap();
        assert_eq!(p.keep, "y");
        assert_eq!(p.remove, vec!["z".to_string()]);
        assert_eq!(p.in_use, vec!["x".to_string()]);
    }

    #[test]
    fn equal_networks_are_chosen_the_same_way_every_time() {
        let a = plan(&[net("2", None, 0), net("1", None, 0)]).unwrap();
        let b = plan(&[net("1", None, 0), net("2", None, 0)]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.keep, "1");
    }
}
