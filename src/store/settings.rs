//! Instance settings set at run time (the ACME contact email, the public
//! URL), kept in `meta` under [`SETTINGS`]. The record is the store's own
//! type, so a change of the API's fields does not change the saved format.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::schema::{decode, encode, META, SETTINGS};
use super::{Result, Store};

/// The instance settings set from the panel or the API; `None` where the
/// config file's (or flag's) value applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRecord {
    /// The ACME account's contact email.
    #[serde(default)]
    pub acme_email: Option<String>,
    /// Where users reach berth, `scheme://host[:port]`.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Store {
    /// The instance settings (all `None` before any was set).
    pub fn settings(&self) -> Result<SettingsRecord> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let value = meta.get(SETTINGS)?;
        Ok(value
            .map(|v| decode(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Replaces the instance settings.
    pub fn set_settings(&self, settings: &SettingsRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            meta.insert(SETTINGS, encode(settings)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }
}
