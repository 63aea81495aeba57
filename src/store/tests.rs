//! Store tests: round trips, conflicts, and reopening a file.

use super::*;
use berth_config::{AppInput, ProjectInput};
use time::OffsetDateTime;

pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("berth.redb")).unwrap();
    (dir, store)
}

pub(super) fn app(json: &str) -> AppRecord {
    let spec = serde_json::from_str::<AppInput>(json)
        .unwrap()
        .validate()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    AppRecord {
        spec,
        created_at: now,
        updated_at: now,
        active_deployment: None,
        stopped: false,
        vault: None,
    }
}

#[test]
fn apps_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.redb");
    {
        let store = Store::open(&path).unwrap();
        store
            .create_app(&app(r#"{"name":"web","image":"x","port":80}"#))
            .unwrap();
        store.set_admin_token_hash(&[7; 32]).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.app("web").unwrap().spec.image, "x");
    assert_eq!(store.admin_token_hash().unwrap(), Some([7; 32]));
}

#[test]
fn route_and_name_conflicts_are_refused() {
    let (_dir, store) = open();
    store
        .create_app(&app(
            r#"{"name":"a","image":"x","port":80,"domains":[{"host":"a.com"}]}"#,
        ))
        .unwrap();
    let err = store
        .create_app(&app(
            r#"{"name":"b","image":"x","port":80,"domains":[{"host":"x.com"},{"host":"A.com","path_prefix":"/"}]}"#,
        ))
        .unwrap_err();
    match err {
        StoreError::Conflict(f) => assert_eq!(f.field, "domains[1]"),
        other => panic!("{other}"),
    }
    assert!(matches!(
        store.create_app(&app(r#"{"name":"a","image":"y","port":80}"#)),
        Err(StoreError::Conflict(_))
    ));
    // Another prefix on the same host is fine.
    store
        .create_app(&app(
            r#"{"name":"c","image":"x","port":80,"domains":[{"host":"a.com","path_prefix":"/api"}]}"#,
        ))
        .unwrap();
}

#[test]
fn projects_with_apps_cannot_be_deleted() {
    let (_dir, store) = open();
    let spec = ProjectInput {
        name: "p".into(),
        description: None,
    }
    .validate()
    .unwrap();
    store
        .create_project(&ProjectRecord {
            spec,
            created_at: OffsetDateTime::now_utc(),
        })
        .unwrap();
    assert!(matches!(
        store.create_app(&app(
            r#"{"name":"a","image":"x","port":80,"project":"nope"}"#
        )),
        Err(StoreError::NotFound { .. })
    ));
    store
        .create_app(&app(r#"{"name":"a","image":"x","port":80,"project":"p"}"#))
        .unwrap();
    assert!(matches!(
        store.delete_project("p"),
        Err(StoreError::Conflict(_))
    ));
    store.delete_app("a").unwrap();
    store.delete_project("p").unwrap();
}

#[test]
fn deployments_are_listed_newest_first_and_deleted_with_their_app() {
    let (_dir, store) = open();
    let a = app(r#"{"name":"a","image":"x","port":80}"#);
    store.create_app(&a).unwrap();
    let first = DeploymentRecord::queued(&a.spec, Trigger::Api);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let second = DeploymentRecord::queued(&a.spec, Trigger::Api);
    store.insert_deployment(&first).unwrap();
    store.insert_deployment(&second).unwrap();
    let ids: Vec<_> = store
        .app_deployments("a")
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, [second.id.clone(), first.id.clone()]);
    store.activate_deployment(&second.id).unwrap();
    assert_eq!(
        store.app("a").unwrap().active_deployment,
        Some(second.id.clone())
    );
    assert_eq!(
        store
            .deployments_with_status(&[DeploymentStatus::Queued])
            .unwrap()
            .len(),
        1
    );
    // The newest first, reading back only as far as needed.
    let newest = store.newest_deployments(1, |_| true).unwrap();
    assert_eq!(newest[0].id, second.id);
    assert!(store
        .newest_deployments(5, |app| app != "a")
        .unwrap()
        .is_empty());
    let picked = store
        .newest_deployment_where("a", |d| d.id == first.id)
        .unwrap();
    assert_eq!(picked.map(|d| d.id), Some(first.id.clone()));
    assert!(store
        .newest_deployment_where("a", |_| false)
        .unwrap()
        .is_none());
    store.delete_app("a").unwrap();
    assert!(matches!(
        store.deployment(&first.id),
        Err(StoreError::NotFound { .. })
    ));
}

/// A rollback that serves makes the spec it ran with the app's spec
/// again, domains, maintenance and error pages aside; a plain deployment
/// changes no spec.
#[test]
fn an_activated_rollback_restores_the_spec_it_ran_with() {
    let (_dir, store) = open();
    let v1 =
        app(r#"{"name":"a","image":"x:1","port":80,"env":{"A":"1"},"domains":[{"host":"a.com"}]}"#);
    store.create_app(&v1).unwrap();
    let first = DeploymentRecord::queued(&v1.spec, Trigger::Api);
    store.insert_deployment(&first).unwrap();
    store.activate_deployment(&first.id).unwrap();
    let v2 = app(
        r#"{"name":"a","image":"x:2","port":81,"replicas":3,"domains":[{"host":"a.com",
            "security_headers":true},{"host":"b.com"}],"maintenance":{"enabled":true},
            "error_pages":{"503":"soon"}}"#,
    );
    store
        .update_app("a", |r| {
            r.spec = v2.spec.clone();
            Ok(())
        })
        .unwrap();
    let second = DeploymentRecord::queued(&v2.spec, Trigger::Api);
    store.insert_deployment(&second).unwrap();
    store.activate_deployment(&second.id).unwrap();
    assert_eq!(store.app("a").unwrap().spec.image, "x:2");

    let mut back = DeploymentRecord::queued(&first.spec, Trigger::Rollback);
    back.rollback_of = Some(first.id.clone());
    store.insert_deployment(&back).unwrap();
    // Queued is not serving: the spec stays until the rollback serves.
    assert_eq!(store.app("a").unwrap().spec.image, "x:2");
    store.activate_deployment(&back.id).unwrap();
    let now = store.app("a").unwrap();
    assert_eq!(now.active_deployment.as_deref(), Some(back.id.as_str()));
    assert_eq!(now.spec.image, "x:1");
    assert_eq!(now.spec.port, 80);
    assert_eq!(now.spec.replicas, 1);
    assert_eq!(now.spec.env.get("A").map(String::as_str), Some("1"));
    let hosts: Vec<_> = now.spec.domains.iter().map(|d| d.host.as_str()).collect();
    assert_eq!(hosts, ["a.com", "b.com"]);
    // How the edge answers stays too: rules, maintenance, error pages.
    assert!(now.spec.domains[0].rules.security_headers);
    assert!(now.spec.maintenance.enabled);
    assert_eq!(now.spec.error_pages[&503], "soon");
}

#[test]
fn values_carry_their_format() {
    let bytes = schema::encode(&42u32).unwrap();
    assert_eq!(bytes[0], 1);
    assert_eq!(schema::decode::<u32>(&bytes).unwrap(), 42);
    assert!(schema::decode::<u32>(&[9, b'1']).is_err());
    assert!(schema::decode::<u32>(&[]).is_err());
}

/// A file written by schema version 1 (no vault, no commit fields, no
/// deliveries table) opens, reads, and is marked with the current version.
#[test]
fn a_version_1_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.redb");
    let app_v1 = r#"{"spec":{"name":"web","project":null,"image":"nginx","port":80,"replicas":1,"env":{},"command":null,"cpus":null,"memory_mb":null,"domains":[]},"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","active_deployment":"0001","stopped":false}"#;
    let deployment_v1 = r#"{"id":"0001","app":"web","status":"succeeded","trigger":"api","error":null,"image":"nginx","image_id":"sha256:1","spec":{"name":"web","project":null,"image":"nginx","port":80,"replicas":1,"env":{},"command":null,"cpus":null,"memory_mb":null,"domains":[]},"created_at":"2026-01-01T00:00:00Z","started_at":null,"finished_at":null}"#;
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(schema::META).unwrap();
            meta.insert(schema::SCHEMA_KEY, 1u32.to_le_bytes().as_slice())
                .unwrap();
            let mut value = vec![1u8];
            value.extend_from_slice(app_v1.as_bytes());
            tx.open_table(schema::APPS)
                .unwrap()
                .insert("web", value.as_slice())
                .unwrap();
            let mut value = vec![1u8];
            value.extend_from_slice(deployment_v1.as_bytes());
            tx.open_table(schema::DEPLOYMENTS)
                .unwrap()
                .insert("0001", value.as_slice())
                .unwrap();
            tx.open_multimap_table(schema::APP_DEPLOYMENTS)
                .unwrap()
                .insert("web", "0001")
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let app = store.app("web").unwrap();
    assert!(app.vault.is_none() && app.spec.source.is_none());
    let d = store.deployment("0001").unwrap();
    assert!(d.commit.is_none() && d.site.is_none());
    assert!(store.deliveries("web").unwrap().is_empty());
    let tx = store.db.begin_read().unwrap();
    let meta = tx.open_table(schema::META).unwrap();
    let version = meta.get(schema::SCHEMA_KEY).unwrap().unwrap();
    assert_eq!(
        version.value(),
        schema::SCHEMA_VERSION.to_le_bytes().as_slice()
    );
    drop(meta);
    drop(tx);
    assert!(!store.has_users().unwrap());
    assert!(store.audit(10).unwrap().is_empty());
    assert_eq!(store.settings().unwrap(), SettingsRecord::default());
}

#[test]
fn instance_settings_are_kept_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let set = SettingsRecord {
        acme_email: Some("ops@example.com".into()),
        public_url: None,
    };
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.settings().unwrap(), SettingsRecord::default());
        store.set_settings(&set).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.settings().unwrap(), set);
}
