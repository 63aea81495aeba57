//! The store: berth's desired state in one redb file (projects, apps,
//! deployments, the admin token's hash). Every table is declared in
//! [`schema`]; values are versioned JSON. Writes are `Durability::Immediate`
//! transactions, so a commit that returned survives a crash.

mod apps;
mod certificates;
mod deliveries;
mod people;
mod records;
mod saved;
mod schema;
mod settings;

use std::path::Path;
use std::sync::Arc;

use berth_config::{FieldError, ProjectSpec};
use redb::{Database, ReadableDatabase, ReadableTable};

pub use certificates::{CertificateOrigin, CertificateRecord};
pub use deliveries::{DeliveryRecord, HookOutcome};
pub use people::{
    new_id, ApiKeyRecord, AuditRecord, Grant, Role, Scope, SessionRecord, UserRecord,
};
pub use records::{
    AppRecord, DeploymentRecord, DeploymentStatus, Phase, PhaseTime, ProjectRecord, Timing, Trigger,
};
use schema::{decode, encode, APPS, APP_DEPLOYMENTS, DEPLOYMENTS, DEPLOYMENT_LOGS, META, PROJECTS};
pub use settings::SettingsRecord;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// `app`, `project` or `deployment`.
        kind: &'static str,
        /// Its name or id.
        name: String,
    },
    /// The change makes a field invalid.
    #[error("{0}")]
    Invalid(FieldError),
    /// The write conflicts with existing state.
    #[error("{0}")]
    Conflict(FieldError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A value could not be decoded or the file has a newer schema.
    #[error("store is corrupt or from a newer berth: {0}")]
    Corrupt(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

type Result<T> = std::result::Result<T, StoreError>;

fn not_found(kind: &'static str, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_string(),
    }
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// The apps, decoded once and kept in step with every write.
    apps: Arc<apps::AppIndex>,
}

impl Store {
    /// Opens (or creates) the store file, creating tables and checking the
    /// schema version.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path)?;
        let store = Store {
            db: Arc::new(db),
            apps: Arc::default(),
        };
        schema::init(&store.db)?;
        store.apps.load(&store.db)?;
        Ok(store)
    }

    /// The SHA-256 of the admin token, if one was created.
    pub fn admin_token_hash(&self) -> Result<Option<[u8; 32]>> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let value = meta.get(schema::ADMIN_TOKEN_HASH)?;
        Ok(value.and_then(|v| <[u8; 32]>::try_from(v.value()).ok()))
    }

    /// Stores the admin token's hash.
    pub fn set_admin_token_hash(&self, hash: &[u8; 32]) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?
            .insert(schema::ADMIN_TOKEN_HASH, hash.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    // ---- projects ----

    /// Creates a project; 409 if the name is taken.
    pub fn create_project(&self, record: &ProjectRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut projects = tx.open_table(PROJECTS)?;
            if projects.get(record.spec.name.as_str())?.is_some() {
                return Err(StoreError::Conflict(FieldError::new(
                    "name",
                    format!(
                        "a project named {:?} already exists; pick another name",
                        record.spec.name
                    ),
                )));
            }
            projects.insert(record.spec.name.as_str(), encode(record)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One project.
    pub fn project(&self, name: &str) -> Result<ProjectRecord> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PROJECTS)?;
        let value = table.get(name)?.ok_or_else(|| not_found("project", name))?;
        decode(value.value())
    }

    /// All projects, by name.
    pub fn projects(&self) -> Result<Vec<ProjectRecord>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PROJECTS)?;
        table.iter()?.map(|row| decode(row?.1.value())).collect()
    }

    /// Replaces a project's spec.
    pub fn update_project(&self, spec: ProjectSpec) -> Result<ProjectRecord> {
        let tx = self.db.begin_write()?;
        let record = {
            let mut table = tx.open_table(PROJECTS)?;
            let mut record: ProjectRecord = decode(
                table
                    .get(spec.name.as_str())?
                    .ok_or_else(|| not_found("project", &spec.name))?
                    .value(),
            )?;
            record.spec = spec;
            table.insert(record.spec.name.as_str(), encode(&record)?.as_slice())?;
            record
        };
        tx.commit()?;
        Ok(record)
    }

    /// Deletes a project; 409 while apps belong to it.
    pub fn delete_project(&self, name: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let apps = tx.open_table(APPS)?;
            for row in apps.iter()? {
                let app: AppRecord = decode(row?.1.value())?;
                if app.spec.project.as_deref() == Some(name) {
                    return Err(StoreError::Conflict(FieldError::new(
                        "name",
                        format!(
                            "project {name:?} still has app {:?}; delete or move its apps first",
                            app.spec.name
                        ),
                    )));
                }
            }
            let mut projects = tx.open_table(PROJECTS)?;
            if projects.remove(name)?.is_none() {
                return Err(not_found("project", name));
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- deployments ----

    /// Records a new deployment.
    pub fn insert_deployment(&self, record: &DeploymentRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let apps = tx.open_table(APPS)?;
            if apps.get(record.app.as_str())?.is_none() {
                return Err(not_found("app", &record.app));
            }
            tx.open_table(DEPLOYMENTS)?
                .insert(record.id.as_str(), encode(record)?.as_slice())?;
            tx.open_multimap_table(APP_DEPLOYMENTS)?
                .insert(record.app.as_str(), record.id.as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One deployment.
    pub fn deployment(&self, id: &str) -> Result<DeploymentRecord> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEPLOYMENTS)?;
        let value = table.get(id)?.ok_or_else(|| not_found("deployment", id))?;
        decode(value.value())
    }

    /// Changes a deployment in one transaction.
    pub fn update_deployment<F>(&self, id: &str, change: F) -> Result<DeploymentRecord>
    where
        F: FnOnce(&mut DeploymentRecord),
    {
        let tx = self.db.begin_write()?;
        let record = {
            let mut table = tx.open_table(DEPLOYMENTS)?;
            let mut record: DeploymentRecord = decode(
                table
                    .get(id)?
                    .ok_or_else(|| not_found("deployment", id))?
                    .value(),
            )?;
            change(&mut record);
            table.insert(id, encode(&record)?.as_slice())?;
            record
        };
        tx.commit()?;
        Ok(record)
    }

    /// Marks a deployment succeeded and makes it the app's active one, in
    /// one transaction; a rollback also makes the spec it ran with the
    /// app's spec again.
    pub fn activate_deployment(&self, id: &str) -> Result<DeploymentRecord> {
        let _turn = self.apps.writer();
        let tx = self.db.begin_write()?;
        let (record, app) = {
            let mut deployments = tx.open_table(DEPLOYMENTS)?;
            let mut record: DeploymentRecord = decode(
                deployments
                    .get(id)?
                    .ok_or_else(|| not_found("deployment", id))?
                    .value(),
            )?;
            let mut apps = tx.open_table(APPS)?;
            let mut app: AppRecord = decode(
                apps.get(record.app.as_str())?
                    .ok_or_else(|| not_found("app", &record.app))?
                    .value(),
            )?;
            // Succeeded from the switch on; its Finished phase comes once
            // the previous replicas are gone.
            record.status = DeploymentStatus::Succeeded;
            record.error = None;
            record.finished_at = Some(time::OffsetDateTime::now_utc());
            app.active_deployment = Some(record.id.clone());
            app.stopped = false;
            if record.rollback_of.is_some() {
                // What serves is what the app's spec says, so the next
                // plain deploy brings no newer version back.
                app.roll_back_to(&record.spec);
            }
            deployments.insert(id, encode(&record)?.as_slice())?;
            apps.insert(record.app.as_str(), encode(&app)?.as_slice())?;
            (record, app)
        };
        tx.commit()?;
        self.apps.committed(app);
        Ok(record)
    }

    /// Keeps the log of an ended deployment (if it still exists).
    pub fn save_deployment_log(&self, id: &str, lines: &[String]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            if tx.open_table(DEPLOYMENTS)?.get(id)?.is_none() {
                return Err(not_found("deployment", id));
            }
            tx.open_table(DEPLOYMENT_LOGS)?
                .insert(id, encode(&lines)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The kept log of an ended deployment; empty if none was kept.
    pub fn deployment_log(&self, id: &str) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEPLOYMENT_LOGS)?;
        match table.get(id)? {
            Some(v) => decode(v.value()),
            None => Ok(Vec::new()),
        }
    }

    /// Deployments of one app, newest first.
    pub fn app_deployments(&self, app: &str) -> Result<Vec<DeploymentRecord>> {
        let tx = self.db.begin_read()?;
        let index = tx.open_multimap_table(APP_DEPLOYMENTS)?;
        let table = tx.open_table(DEPLOYMENTS)?;
        let mut out = Vec::new();
        for id in index.get(app)? {
            let id = id?;
            if let Some(v) = table.get(id.value())? {
                out.push(decode::<DeploymentRecord>(v.value())?);
            }
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// The newest of `app`'s deployments that `pick` accepts, reading
    /// from the newest back and stopping at the first.
    pub fn newest_deployment_where(
        &self,
        app: &str,
        pick: impl Fn(&DeploymentRecord) -> bool,
    ) -> Result<Option<DeploymentRecord>> {
        let tx = self.db.begin_read()?;
        let index = tx.open_multimap_table(APP_DEPLOYMENTS)?;
        let table = tx.open_table(DEPLOYMENTS)?;
        // Ids sort by time, and so do an app's index entries.
        for id in index.get(app)?.rev() {
            let id = id?;
            if let Some(v) = table.get(id.value())? {
                let record: DeploymentRecord = decode(v.value())?;
                if pick(&record) {
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    }

    /// The newest `limit` deployments of the apps `keep` accepts, newest
    /// first; reads only as far back as it must.
    pub fn newest_deployments(
        &self,
        limit: usize,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<DeploymentRecord>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEPLOYMENTS)?;
        let mut out = Vec::with_capacity(limit);
        for row in table.iter()?.rev() {
            if out.len() == limit {
                break;
            }
            let record: DeploymentRecord = decode(row?.1.value())?;
            if keep(&record.app) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// All deployments with one of `statuses`, oldest first.
    pub fn deployments_with_status(
        &self,
        statuses: &[DeploymentStatus],
    ) -> Result<Vec<DeploymentRecord>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEPLOYMENTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let record: DeploymentRecord = decode(row?.1.value())?;
            if statuses.contains(&record.status) {
                out.push(record);
            }
        }
        Ok(out)
    }
}

pub(super) fn check_project(tx: &redb::WriteTransaction, record: &AppRecord) -> Result<()> {
    if let Some(project) = &record.spec.project {
        if tx.open_table(PROJECTS)?.get(project.as_str())?.is_none() {
            return Err(StoreError::NotFound {
                kind: "project",
                name: project.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod compat;
#[cfg(test)]
mod tests;
