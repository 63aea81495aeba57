//! Webhook deliveries in the store: every event that reached an app's
//! webhook URL and what berth decided (deployed, ignored and why,
//! rejected), newest kept, at most [`MAX_DELIVERIES`] per app.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::saved::{decode_kept, encode_kept};
use super::schema::HOOK_DELIVERIES;
use super::{Result, Store};

/// Deliveries kept per app.
pub const MAX_DELIVERIES: usize = 100;

/// What berth made of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    /// A deployment was queued.
    Deployed,
    /// Valid, but nothing to do (other branch, paths, skip marker, ping).
    Ignored,
    /// Refused: bad signature or malformed payload.
    Rejected,
}

/// One recorded delivery. The API shows it as it is; the store keeps it
/// as `SavedDelivery` (`saved/delivery.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    /// Sortable id.
    pub id: String,
    /// When it arrived.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// `github`, `gitlab`, `gitea`, `bitbucket`, `dockerhub`, `generic`, or
    /// `unknown` when it was refused before the sender was known.
    pub provider: String,
    /// The event, e.g. `push to main`, `ping`, `image push`.
    pub event: String,
    /// The decision.
    pub outcome: HookOutcome,
    /// Why, in words.
    pub reason: String,
    /// The commit the event announced, if any.
    pub commit: Option<String>,
    /// The deployment queued, if any.
    pub deployment: Option<String>,
}

impl DeliveryRecord {
    /// A new record stamped now.
    pub fn now(provider: &str, event: &str, outcome: HookOutcome, reason: String) -> Self {
        let at = OffsetDateTime::now_utc();
        let millis = (at.unix_timestamp_nanos() / 1_000_000) as u64;
        Self {
            id: format!("{millis:012x}{:08x}", rand::random::<u32>()),
            at,
            provider: provider.to_string(),
            event: event.to_string(),
            outcome,
            reason,
            commit: None,
            deployment: None,
        }
    }
}

/// Keys are `<app>/<id>`: app names have no '/', so one app's keys form
/// the range `<app>/` .. `<app>0`.
fn key(app: &str, id: &str) -> String {
    format!("{app}/{id}")
}

impl Store {
    /// Records a delivery of `app`'s webhook, dropping the oldest beyond
    /// [`MAX_DELIVERIES`].
    pub fn record_delivery(&self, app: &str, record: &DeliveryRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(HOOK_DELIVERIES)?;
            let value = encode_kept(record)?;
            table.insert(key(app, &record.id).as_str(), value.as_slice())?;
            let (from, to) = (format!("{app}/"), format!("{app}0"));
            let keys: Vec<String> = table
                .range(from.as_str()..to.as_str())?
                .map(|e| e.map(|(k, _)| k.value().to_string()))
                .collect::<std::result::Result<_, _>>()?;
            let excess = keys.len().saturating_sub(MAX_DELIVERIES);
            for k in &keys[..excess] {
                table.remove(k.as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The app's recorded deliveries, newest first.
    pub fn deliveries(&self, app: &str) -> Result<Vec<DeliveryRecord>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(HOOK_DELIVERIES)?;
        let (from, to) = (format!("{app}/"), format!("{app}0"));
        let mut out = Vec::new();
        for entry in table.range(from.as_str()..to.as_str())? {
            let (_, v) = entry?;
            out.push(decode_kept::<DeliveryRecord>(v.value())?);
        }
        out.reverse();
        Ok(out)
    }

    /// Forgets the app's deliveries (with the app).
    pub(super) fn delete_deliveries(tx: &redb::WriteTransaction, app: &str) -> Result<()> {
        let mut table = tx.open_table(HOOK_DELIVERIES)?;
        let (from, to) = (format!("{app}/"), format!("{app}0"));
        let keys: Vec<String> = table
            .range(from.as_str()..to.as_str())?
            .map(|e| e.map(|(k, _)| k.value().to_string()))
            .collect::<std::result::Result<_, _>>()?;
        for k in keys {
            table.remove(k.as_str())?;
        }
        Ok(())
    }
}
