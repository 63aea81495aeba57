//! The apps table and its index in memory. Every app is decoded once, when
//! the store opens, and the index follows every committed write of the
//! table, so reading apps and checking a new route cost what they touch,
//! not a decode of every app: with 10,000 apps a change stays a few
//! milliseconds. Writers of the table hold [`AppIndex::writer`] from the
//! transaction's start until the index has the commit, so the index is
//! always exactly what the file holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use berth_config::FieldError;
use redb::{ReadableDatabase, ReadableTable};

use super::schema::{decode, encode, APPS, APP_DEPLOYMENTS, DEPLOYMENTS, DEPLOYMENT_LOGS};
use super::{not_found, AppRecord, Result, Store, StoreError};

/// The decoded apps, and who routes each host.
#[derive(Default)]
pub(super) struct AppIndex {
    state: RwLock<Apps>,
    /// Held by a writer of the apps table from its transaction's start
    /// until the index has its commit.
    writer: Mutex<()>,
}

#[derive(Default)]
struct Apps {
    by_name: BTreeMap<String, Arc<AppRecord>>,
    /// Host → the (path prefix, app) pairs routed under it.
    by_host: HashMap<String, Vec<(String, String)>>,
}

impl Apps {
    fn insert(&mut self, record: AppRecord) {
        self.remove(&record.spec.name.clone());
        for d in &record.spec.domains {
            self.by_host
                .entry(d.host.clone())
                .or_default()
                .push((d.path_prefix.clone(), record.spec.name.clone()));
        }
        self.by_name
            .insert(record.spec.name.clone(), Arc::new(record));
    }

    fn remove(&mut self, name: &str) {
        let Some(old) = self.by_name.remove(name) else {
            return;
        };
        for d in &old.spec.domains {
            if let Some(routes) = self.by_host.get_mut(&d.host) {
                routes.retain(|(_, app)| app != name);
                if routes.is_empty() {
                    self.by_host.remove(&d.host);
                }
            }
        }
    }

    /// 409 if another app already routes one of the record's host +
    /// prefix pairs.
    fn check_routes(&self, record: &AppRecord) -> Result<()> {
        for (i, d) in record.spec.domains.iter().enumerate() {
            let taken = self.by_host.get(&d.host).and_then(|routes| {
                routes
                    .iter()
                    .find(|(prefix, app)| *prefix == d.path_prefix && *app != record.spec.name)
            });
            if let Some((_, other)) = taken {
                return Err(StoreError::Conflict(FieldError::new(
                    format!("domains[{i}]"),
                    format!(
                        "{}{} is already routed to app {other:?}; choose another host or path prefix",
                        d.host, d.path_prefix
                    ),
                )));
            }
        }
        Ok(())
    }
}

impl AppIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Apps> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Apps> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The turn of one writer of the apps table.
    pub(super) fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fills the index from the file (at open).
    pub(super) fn load(&self, db: &redb::Database) -> Result<()> {
        let tx = db.begin_read()?;
        let table = tx.open_table(APPS)?;
        let mut apps = Apps::default();
        for row in table.iter()? {
            apps.insert(decode(row?.1.value())?);
        }
        *self.write() = apps;
        Ok(())
    }

    /// Takes a committed write of `record`; the caller holds the writer turn.
    pub(super) fn committed(&self, record: AppRecord) {
        self.write().insert(record);
    }
}

impl Store {
    /// Creates an app; 409 if the name or one of its routes is taken, 404
    /// if its project does not exist.
    pub fn create_app(&self, record: &AppRecord) -> Result<()> {
        let _turn = self.apps.writer();
        let tx = self.db.begin_write()?;
        {
            let mut apps = tx.open_table(APPS)?;
            if apps.get(record.spec.name.as_str())?.is_some() {
                return Err(StoreError::Conflict(FieldError::new(
                    "name",
                    format!(
                        "an app named {:?} already exists; pick another name or PATCH it",
                        record.spec.name
                    ),
                )));
            }
            super::check_project(&tx, record)?;
            self.apps.read().check_routes(record)?;
            apps.insert(record.spec.name.as_str(), encode(record)?.as_slice())?;
        }
        tx.commit()?;
        self.apps.committed(record.clone());
        Ok(())
    }

    /// One app.
    pub fn app(&self, name: &str) -> Result<AppRecord> {
        self.shared_app(name).map(|a| (*a).clone())
    }

    /// One app, shared with the index (no copy).
    pub fn shared_app(&self, name: &str) -> Result<Arc<AppRecord>> {
        self.apps
            .read()
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| not_found("app", name))
    }

    /// All apps, by name.
    pub fn apps(&self) -> Vec<Arc<AppRecord>> {
        self.apps.read().by_name.values().cloned().collect()
    }

    /// How many apps there are.
    pub fn app_count(&self) -> usize {
        self.apps.read().by_name.len()
    }

    /// The apps with a route under `host`, by name.
    pub fn apps_on_host(&self, host: &str) -> Vec<Arc<AppRecord>> {
        let apps = self.apps.read();
        let mut names: Vec<&String> = apps
            .by_host
            .get(host)
            .map(|routes| routes.iter().map(|(_, app)| app).collect())
            .unwrap_or_default();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| apps.by_name.get(n).cloned())
            .collect()
    }

    /// Changes an app in one transaction: `change` edits a copy, which is
    /// checked (project, routes) and written back.
    pub fn update_app<F>(&self, name: &str, change: F) -> Result<AppRecord>
    where
        F: FnOnce(&mut AppRecord) -> Result<()>,
    {
        let _turn = self.apps.writer();
        let tx = self.db.begin_write()?;
        let record = {
            let mut apps = tx.open_table(APPS)?;
            let mut record: AppRecord = decode(
                apps.get(name)?
                    .ok_or_else(|| not_found("app", name))?
                    .value(),
            )?;
            change(&mut record)?;
            super::check_project(&tx, &record)?;
            self.apps.read().check_routes(&record)?;
            apps.insert(name, encode(&record)?.as_slice())?;
            record
        };
        tx.commit()?;
        self.apps.committed(record.clone());
        Ok(record)
    }

    /// Deletes an app and its deployment records.
    pub fn delete_app(&self, name: &str) -> Result<()> {
        let _turn = self.apps.writer();
        let tx = self.db.begin_write()?;
        {
            let mut apps = tx.open_table(APPS)?;
            if apps.remove(name)?.is_none() {
                return Err(not_found("app", name));
            }
            let mut index = tx.open_multimap_table(APP_DEPLOYMENTS)?;
            let mut deployments = tx.open_table(DEPLOYMENTS)?;
            let mut logs = tx.open_table(DEPLOYMENT_LOGS)?;
            for id in index.remove_all(name)? {
                let id = id?;
                deployments.remove(id.value())?;
                logs.remove(id.value())?;
            }
            Store::delete_deliveries(&tx, name)?;
        }
        tx.commit()?;
        self.apps.write().remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{app, open};

    fn app_with_domains(name: &str, routes: &[(&str, &str)]) -> AppRecord {
        let domains: Vec<serde_json::Value> = routes
            .iter()
            .map(|(h, p)| serde_json::json!({"host": h, "path_prefix": p}))
            .collect();
        app(
            &serde_json::json!({"name": name, "image": "x", "port": 80, "domains": domains})
                .to_string(),
        )
    }

    #[test]
    fn the_index_follows_every_write_and_survives_a_reopen() {
        let (dir, store) = open();
        store
            .create_app(&app_with_domains("a", &[("a.com", "/"), ("s.com", "/a")]))
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .create_app(&app_with_domains("b", &[("s.com", "/b")]))
            .unwrap_or_else(|e| panic!("{e}"));
        let names = |apps: Vec<Arc<AppRecord>>| -> Vec<String> {
            apps.iter().map(|a| a.spec.name.clone()).collect()
        };
        assert_eq!(names(store.apps_on_host("s.com")), ["a", "b"]);
        // A route moved: the old host is free, the new one is taken.
        store
            .update_app("a", |r| {
                r.spec.domains.retain(|d| d.host != "a.com");
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(store.apps_on_host("a.com").is_empty());
        store
            .create_app(&app_with_domains("c", &[("a.com", "/")]))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = store
            .create_app(&app_with_domains("d", &[("x.com", "/"), ("s.com", "/b")]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("domains[1]: s.com/b is already routed to app \"b\"; choose another host or path prefix")
        );
        // A refused write leaves the index as it was.
        assert!(store.apps_on_host("x.com").is_empty());
        store.delete_app("b").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(store.apps_on_host("s.com")), ["a"]);
        assert_eq!(names(store.apps()), ["a", "c"]);
        drop(store);
        let again = Store::open(&dir.path().join("berth.redb")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(again.apps()), ["a", "c"]);
        assert_eq!(names(again.apps_on_host("a.com")), ["c"]);
        assert_eq!(again.app_count(), 2);
    }
}
