//! Every redb table of berth, the schema version, and the value encoding.
//! Saved formats are contracts: change them only with a new version and a
//! migration. Specs, and the enums and small structs the API also shows,
//! are saved as the store's own types (`saved.rs`, `saved/`), not the
//! API's, and `compat.rs` opens a file written by every version so far,
//! the current one included (`tests/fixtures/store/v<N>.redb`).

use redb::{Database, MultimapTableDefinition, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// Schema version written into `meta`; bump with a migration, and add
/// the fixture of the new version (how: `compat.rs`; the latest is
/// `v5.redb`, with every route rule, maintenance and an error page).
///
/// - 1: projects, apps, deployments, logs, certificates.
/// - 2: apps from source: an app's sealed `vault`, a deployment's `commit`,
///   `commit_message`, `site`, `pushed_image`, trigger `webhook` and phase `built`, and the
///   `hook_deliveries` table. Every addition is optional, so version 1 files
///   open unchanged; a berth that knows only version 1 refuses version 2
///   files instead of misreading them.
/// - 3: people: the `users`, `sessions`, `api_keys` and `audit` tables. New
///   tables only, so version 2 files open unchanged.
/// - 4: instance settings set at run time, in `meta` under [`SETTINGS`]
///   ([`super::SettingsRecord`]). A new key only, so version 3 files open
///   unchanged.
/// - 5: what the edge applies: a domain's route `rules` (basic auth with
///   its hashes, redirects, headers, CORS, IP lists, rate limit,
///   compression, body limit, timeouts) and an app's `maintenance` and
///   `error_pages`. Optional fields left out when off, so version 4 files
///   open unchanged and records without them are written byte for byte as
///   before; but a berth that knows only version 4 would read a domain
///   behind basic auth or an IP list as an open one (its saved domain
///   ignores unknown fields) and serve it so, and drop the rules when it
///   writes the app again: it must refuse the file instead, so the
///   version moves.
pub const SCHEMA_VERSION: u32 = 5;
/// First byte of every encoded value: JSON, format 1.
const VALUE_FORMAT_JSON_V1: u8 = 1;

/// `meta`: key → raw bytes (schema version, admin token hash).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `projects`: name → [`super::ProjectRecord`].
pub const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
/// `apps`: name → [`super::AppRecord`].
pub const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
/// `deployments`: id → [`super::DeploymentRecord`]; ids sort by time.
pub const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");
/// `deployment_logs`: id → the deployment's log lines (`Vec<String>`).
pub const DEPLOYMENT_LOGS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployment_logs");
/// `app_deployments`: app name → deployment ids.
pub const APP_DEPLOYMENTS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("app_deployments");

/// `certificates`: id → [`super::CertificateRecord`].
pub const CERTIFICATES: TableDefinition<&str, &[u8]> = TableDefinition::new("certificates");

/// `hook_deliveries`: `<app>/<id>` → [`super::DeliveryRecord`].
pub const HOOK_DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("hook_deliveries");

/// `users`: id → [`super::UserRecord`].
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// `sessions`: SHA-256 (hex) of the cookie's secret → [`super::SessionRecord`].
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// `api_keys`: SHA-256 (hex) of the key → [`super::ApiKeyRecord`].
pub const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// `audit`: sortable id → [`super::AuditRecord`].
pub const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit");

/// Key of the schema version in `meta` (u32, little endian).
pub const SCHEMA_KEY: &str = "schema_version";
/// Key of the admin token's SHA-256 in `meta`.
pub const ADMIN_TOKEN_HASH: &str = "admin_token_sha256";
/// Key of the sealed ACME account credentials in `meta` (encoded string).
pub const ACME_ACCOUNT: &str = "acme_account";
/// Key of the instance settings in `meta` ([`super::SettingsRecord`]).
pub const SETTINGS: &str = "settings";

/// Creates missing tables and checks (or writes) the schema version.
pub fn init(db: &Database) -> Result<(), StoreError> {
    {
        let tx = db.begin_read()?;
        if let Ok(meta) = tx.open_table(META) {
            if let Some(v) = meta.get(SCHEMA_KEY)? {
                let bytes = <[u8; 4]>::try_from(v.value())
                    .map_err(|_| StoreError::Corrupt("schema version is not 4 bytes".into()))?;
                let version = u32::from_le_bytes(bytes);
                if version > SCHEMA_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "schema version {version}, this berth knows up to {SCHEMA_VERSION}; run a newer berth"
                    )));
                }
            }
        }
    }
    let tx = db.begin_write()?;
    {
        let mut meta = tx.open_table(META)?;
        meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_le_bytes().as_slice())?;
        tx.open_table(PROJECTS)?;
        tx.open_table(APPS)?;
        tx.open_table(DEPLOYMENTS)?;
        tx.open_table(DEPLOYMENT_LOGS)?;
        tx.open_multimap_table(APP_DEPLOYMENTS)?;
        tx.open_table(CERTIFICATES)?;
        tx.open_table(HOOK_DELIVERIES)?;
        tx.open_table(USERS)?;
        tx.open_table(SESSIONS)?;
        tx.open_table(API_KEYS)?;
        tx.open_table(AUDIT)?;
    }
    tx.commit()?;
    Ok(())
}

/// Encodes a value: format byte + JSON.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![VALUE_FORMAT_JSON_V1];
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VALUE_FORMAT_JSON_V1, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some((format, _)) => Err(StoreError::Corrupt(format!(
            "unknown value format {format}"
        ))),
        None => Err(StoreError::Corrupt("empty value".into())),
    }
}
