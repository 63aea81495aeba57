//! The saved form of a webhook delivery: the API shows
//! [`crate::store::DeliveryRecord`] whole, so the store keeps it as
//! [`SavedDelivery`], with the same fields in the same order.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Kept;
use crate::store::{DeliveryRecord, HookOutcome};

saved_enum! {
    /// What berth made of a saved delivery.
    SavedOutcome for HookOutcome {
        Deployed = "deployed",
        Ignored = "ignored",
        Rejected = "rejected",
    }
}

/// A saved delivery (`hook_deliveries`, schema 2 on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(in crate::store) struct SavedDelivery {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    provider: String,
    event: String,
    outcome: SavedOutcome,
    reason: String,
    commit: Option<String>,
    deployment: Option<String>,
}

same_fields!(SavedDelivery, DeliveryRecord, {
    id, at, provider, event, outcome, reason, commit, deployment,
});

impl Kept for DeliveryRecord {
    type Saved = SavedDelivery;
}
