//! Compatibility of the saved format: today's [`Store::open`] opens a
//! store file written by every earlier schema version, reads every table
//! that version had, finds what a user put there, and upgrades the
//! version; records decoded from a file and encoded again keep every
//! value they were saved with.
//!
//! The fixtures, `tests/fixtures/store/v<N>.redb`, were each written by a
//! real berth built from the last commit at schema version N, and
//! `v1-first.redb` by the last one before apps from source (whose fields
//! and tables came while the version was still 1):
//!
//! | file | commit | size |
//! | --- | --- | --- |
//! | `v1-first.redb` | `55bf613` (parent of `c2ea8f2`, apps from source) | 72 KiB |
//! | `v1.redb` | `5094478` (parent of `5fdf727`, which brought schema 2) | 72 KiB |
//! | `v2.redb` | `8d75c19` (parent of `eeb7f23`, which brought schema 3) | 72 KiB |
//! | `v3.redb` | `ad319e1` (parent of `7636189`, which brought schema 4) | 88 KiB |
//! | `v4.redb` | `945c6ac` (main when the fixtures were made, schema 4) | 92 KiB |
//! | `v5.redb` | `40427aa` (main when it was made, schema 5) | 108 KiB |
//!
//! Each was made the same way: `git worktree add --detach <dir> <commit>`,
//! `cargo build --bin berth`, then `berth serve --data-dir <tmp> --instance
//! fixture-v<N>-<pid> --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0
//! --https-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0`, filled through its
//! API with the admin token from `<tmp>/admin-token`, stopped with SIGTERM,
//! and `<tmp>/berth.redb` copied here. The local image `berth-fixture:1`
//! was `FROM scratch` with Debian's `busybox-static` as `/bin/busybox`,
//! serving `busybox httpd -f -p 8080`. The API calls, in order:
//!
//! 1. `POST /projects` `shop` ("the fixture shop").
//! 2. `POST /apps` `web`: project `shop`, image `berth-fixture:1`, port
//!    8080, 2 replicas, env `GREETING=hello`, `LOG_LEVEL=debug`, 0.5 CPU,
//!    64 MiB, batch size 1, domains `web.fixture.test` and
//!    `api.fixture.test/api` (prefix stripped), a `tcp` health check every
//!    200 ms with a 500 ms timeout; from v4 on also a volume `data` at
//!    `/data` and a file `/etc/fixture.conf` (`a = 1`).
//! 3. `POST /apps/web/deployments`, waited for until it succeeded.
//! 4. `PATCH /apps/web`: env `GREETING=hello again`, `LOG_LEVEL=info`.
//! 5. Except in v1-first: `POST /apps` `site`: project `shop`, git source
//!    `https://git.fixture.test/shop/site.git` branch `main` with a token,
//!    a `static` build publishing `public`, domain `site.fixture.test`.
//! 6. Except in v1-first: a GitHub push of branch `other` to the site's
//!    webhook (`GET /apps/site/webhook`), signed with its secret (recorded
//!    as ignored).
//! 7. `POST /certificates` `fixture`: a self-signed certificate for
//!    `web.fixture.test`.
//! 8. From v3 on: `POST /users` `alice` (member, deploy on `shop`),
//!    `POST /api-keys` `ci` (deploy, project `shop`), alice signs in
//!    (`POST /session`); the audit log records the changes.
//! 9. From v4 on: `PATCH /settings` ACME email `ops@fixture.test`, public
//!    URL `https://berth.fixture.test`.
//! 10. From v5 on: `POST /apps/web/domains` `www.fixture.test` with every
//!     route rule: basic auth, realm `fixture`, `ann` with the plain
//!     password `ann-fixture-pw` (saved as berth's argon2id hash) and `bob`
//!     with the bcrypt hash [`BOB_BCRYPT`]; `redirect_www` `to_apex`; a
//!     redirect `^/old/(.*)$` → `/new/$1` (301); request headers `X-Env:
//!     fixture` set and `Cookie` removed, response headers `X-Served-By:
//!     berth` set and `Server` removed; security headers; CORS from
//!     `https://app.fixture.test`, methods GET and POST, header `X-Token`,
//!     exposing `X-Total`, with credentials, 120 s; `ip_allow` `10.0.0.0/8`
//!     and `::1`, `ip_deny` `10.9.0.0/16`; a rate limit of 5 per second,
//!     burst 10; compression gzip then zstd; a 1 MiB body limit; timeouts
//!     of 30 s (response head) and 60 s (idle).
//! 11. From v5 on: `PATCH /apps/web`: maintenance on with the message
//!     `back soon`, and the error page [`PAGE_503`] for 503.
//!
//! Steps 10 and 11 came after the deployment (step 3), and rules,
//! maintenance and error pages apply at once without being part of a
//! version: the deployed spec has none of them.
//!
//! Records of the versions from [`SAME_BYTES_SINCE`] on are written back
//! byte for byte: version 5 added only fields left out when off (a
//! domain's `rules`, an app's `maintenance` and `error_pages`), so a v4
//! record is a v5 record without them; and a v5 record with every rule,
//! hashes included, comes back as it was saved.
//!
//! A new schema version adds its fixture the same way, from the commit
//! that is main when it is made, with the calls above plus whatever the
//! version brought, and its row in the table.

use std::path::PathBuf;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use berth_config::{
    AppSpec, BuildKind, CertificateSource, Cidr, Domain, Encoding, GitAuth, HeaderEdits,
    HealthKind, Maintenance, Mount, RateLimit, Redirect, RedirectWww, Timeouts,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde_json::Value;

use super::saved::{SavedAudit, SavedDelivery};
use super::schema::{
    encode, API_KEYS, APPS, AUDIT, CERTIFICATES, DEPLOYMENTS, HOOK_DELIVERIES, META, PROJECTS,
    SCHEMA_KEY, SCHEMA_VERSION, SESSIONS, USERS,
};
use super::*;

/// One store file of `tests/fixtures/store`.
struct Fixture {
    /// Its name, without `.redb`.
    file: &'static str,
    /// The schema version it was written at.
    version: u32,
    /// Whether its berth had apps from source (the `site` app, its
    /// vault and webhook delivery).
    from_source: bool,
}

/// Every fixture, oldest first.
const FIXTURES: [Fixture; 6] = [
    Fixture {
        file: "v1-first",
        version: 1,
        from_source: false,
    },
    Fixture {
        file: "v1",
        version: 1,
        from_source: true,
    },
    Fixture {
        file: "v2",
        version: 2,
        from_source: true,
    },
    Fixture {
        file: "v3",
        version: 3,
        from_source: true,
    },
    Fixture {
        file: "v4",
        version: 4,
        from_source: true,
    },
    Fixture {
        file: "v5",
        version: 5,
        from_source: true,
    },
];

/// `bob`'s hash in the v5 fixture (`htpasswd -nbB -C 5 bob s3cret`).
const BOB_BCRYPT: &str = "$2y$05$s1TfAsM61/9KPL1LSVCdnukmBU0XqVzL4NkEUoXIuxyh2rG2/OZlq";
/// The app's page for 503 in the v5 fixture.
const PAGE_503: &str = "<html><body>fixture 503</body></html>";

/// The oldest version whose records today's berth writes back byte for
/// byte (older ones gain the fields added since, with their defaults).
const SAME_BYTES_SINCE: u32 = 4;

/// A copy of a fixture in a temporary directory.
fn fixture(file: &str) -> (tempfile::TempDir, PathBuf) {
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/store")
        .join(format!("{file}.redb"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.redb");
    std::fs::copy(&from, &path).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    (dir, path)
}

/// The schema version written in the file, read without [`Store::open`].
fn schema_version_in(path: &std::path::Path) -> u32 {
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_read().unwrap();
    let meta = tx.open_table(META).unwrap();
    let bytes = meta.get(SCHEMA_KEY).unwrap().unwrap();
    u32::from_le_bytes(<[u8; 4]>::try_from(bytes.value()).unwrap())
}

/// Every value of a table as raw JSON, by key; empty when the file has
/// no such table.
fn raw_rows(store: &Store, table: TableDefinition<&str, &[u8]>) -> Vec<(String, Value)> {
    let tx = store.db.begin_read().unwrap();
    let Ok(table) = tx.open_table(table) else {
        return Vec::new();
    };
    let rows = table.iter().unwrap();
    rows.map(|row| {
        let (key, value) = row.unwrap();
        let (format, json) = value.value().split_first().unwrap();
        assert_eq!(*format, 1, "value format of {}", key.value());
        (
            key.value().to_string(),
            serde_json::from_slice(json).unwrap(),
        )
    })
    .collect()
}

/// The bytes saved under `key` in `table`.
fn raw_bytes(store: &Store, table: TableDefinition<&str, &[u8]>, key: &str) -> Vec<u8> {
    let tx = store.db.begin_read().unwrap();
    let table = tx.open_table(table).unwrap();
    let value = table.get(key).unwrap().unwrap();
    value.value().to_vec()
}

/// Whether `new` holds every value of `old` (objects may have more keys).
fn keeps(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => o
            .iter()
            .all(|(k, v)| n.get(k).is_some_and(|nv| keeps(v, nv))),
        (Value::Array(o), Value::Array(n)) => {
            o.len() == n.len() && o.iter().zip(n).all(|(a, b)| keeps(a, b))
        }
        _ => old == new,
    }
}

/// Decodes each row of `table` as `T`, encodes it again and checks the
/// JSON: equal (byte for byte) from [`SAME_BYTES_SINCE`] on, a superset
/// (only fields added since, with their defaults) for older ones.
/// Returns the rows.
fn reencodes<T: serde::de::DeserializeOwned + serde::Serialize>(
    store: &Store,
    table: TableDefinition<&str, &[u8]>,
    version: u32,
) -> usize {
    let rows = raw_rows(store, table);
    for (key, raw) in &rows {
        let record: T = serde_json::from_value(raw.clone())
            .unwrap_or_else(|e| panic!("v{version} {} {key}: {e}", table.name()));
        let again = serde_json::to_value(&record).unwrap();
        if version >= SAME_BYTES_SINCE {
            assert_eq!(&again, raw, "v{version} {} {key}", table.name());
            // Byte for byte, field order included.
            let bytes = raw_bytes(store, table, key);
            assert_eq!(
                encode(&record).unwrap(),
                bytes,
                "v{version} {} {key}",
                table.name()
            );
        } else {
            assert!(
                keeps(raw, &again),
                "v{version} {} {key}: {raw} became {again}",
                table.name()
            );
        }
    }
    rows.len()
}

#[test]
fn every_fixture_has_its_schema_version_and_is_upgraded() {
    for f in FIXTURES {
        let (version, (_dir, path)) = (f.version, fixture(f.file));
        assert_eq!(schema_version_in(&path), version, "fixture {}", f.file);
        drop(Store::open(&path).unwrap());
        assert_eq!(schema_version_in(&path), SCHEMA_VERSION, "v{version}");
        // And opens again at the new version.
        Store::open(&path).unwrap();
    }
}

#[test]
fn records_of_every_version_encode_back_to_what_was_saved() {
    for f in FIXTURES {
        let (version, (_dir, path)) = (f.version, fixture(f.file));
        let store = Store::open(&path).unwrap();
        assert_eq!(reencodes::<ProjectRecord>(&store, PROJECTS, version), 1);
        let apps = if f.from_source { 2 } else { 1 };
        assert_eq!(reencodes::<AppRecord>(&store, APPS, version), apps);
        assert_eq!(
            reencodes::<DeploymentRecord>(&store, DEPLOYMENTS, version),
            1
        );
        assert_eq!(
            reencodes::<CertificateRecord>(&store, CERTIFICATES, version),
            1
        );
        assert_eq!(
            reencodes::<SavedDelivery>(&store, HOOK_DELIVERIES, version) == 1,
            f.from_source
        );
        let people = version >= 3;
        assert_eq!(reencodes::<UserRecord>(&store, USERS, version) == 1, people);
        assert_eq!(
            reencodes::<ApiKeyRecord>(&store, API_KEYS, version) == 1,
            people
        );
        assert_eq!(
            reencodes::<SessionRecord>(&store, SESSIONS, version) == 1,
            people
        );
        assert_eq!(reencodes::<SavedAudit>(&store, AUDIT, version) > 0, people);
    }
}

#[test]
fn what_a_user_saved_is_there_in_every_version() {
    for f in FIXTURES {
        let (version, (_dir, path)) = (f.version, fixture(f.file));
        let store = Store::open(&path).unwrap();
        let at = |what: &str| format!("{}: {what}", f.file);
        assert!(
            store.admin_token_hash().unwrap().is_some(),
            "{}",
            at("token")
        );

        let projects = store.projects().unwrap();
        assert_eq!(projects.len(), 1, "{}", at("projects"));
        assert_eq!(projects[0].spec.name, "shop");
        assert_eq!(projects[0].spec.description, "the fixture shop");

        let names: Vec<_> = store.apps().iter().map(|a| a.spec.name.clone()).collect();
        let expected: &[&str] = if f.from_source {
            &["site", "web"]
        } else {
            &["web"]
        };
        assert_eq!(names, expected, "{}", at("apps"));
        let web = store.app("web").unwrap();
        let spec = &web.spec;
        assert_eq!(spec.project.as_deref(), Some("shop"));
        assert_eq!(spec.image, "berth-fixture:1", "{}", at("image"));
        assert_eq!((spec.port, spec.replicas), (8080, 2));
        assert_eq!(
            (spec.cpus, spec.memory_mb, spec.batch_size),
            (Some(0.5), Some(64), Some(1))
        );
        let env: Vec<_> = spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [("GREETING", "hello again"), ("LOG_LEVEL", "info")],
            "{}",
            at("env")
        );
        let routes: Vec<_> = spec
            .domains
            .iter()
            .map(|d| (d.host.as_str(), d.path_prefix.as_str(), d.strip_prefix))
            .collect();
        let mut expected = vec![
            ("web.fixture.test", "/", false),
            ("api.fixture.test", "/api", true),
        ];
        if version >= 5 {
            expected.push(("www.fixture.test", "/", false));
        }
        assert_eq!(routes, expected, "{}", at("domains"));
        assert_eq!(spec.health_check.kind, HealthKind::Tcp, "{}", at("health"));
        assert_eq!(
            (spec.health_check.interval_ms, spec.health_check.timeout_ms),
            (200, 500)
        );
        if version >= 4 {
            assert!(
                matches!(&spec.mounts[..], [Mount::Volume { name, path, .. }, Mount::File { content, .. }]
                if name == "data" && path == "/data" && content == "a = 1\n"),
                "{}",
                at("mounts")
            );
        } else {
            assert!(spec.mounts.is_empty());
        }
        assert!(!web.stopped);

        let deployments = store.app_deployments("web").unwrap();
        assert_eq!(deployments.len(), 1, "{}", at("deployments"));
        let deployment = &deployments[0];
        assert_eq!(
            web.active_deployment.as_deref(),
            Some(deployment.id.as_str())
        );
        assert_eq!(
            deployment.status,
            DeploymentStatus::Succeeded,
            "{}",
            at("status")
        );
        assert_eq!(deployment.trigger, Trigger::Api);
        assert_eq!(deployment.image, "berth-fixture:1");
        assert!(deployment
            .image_id
            .as_deref()
            .is_some_and(|id| id.starts_with("sha256:")));
        assert_eq!(
            deployment.spec.env["GREETING"],
            "hello",
            "{}",
            at("deployed env")
        );
        assert!(deployment.finished_at.is_some());
        assert!(
            !store.deployment_log(&deployment.id).unwrap().is_empty(),
            "{}",
            at("log")
        );
        assert_eq!(store.deployment(&deployment.id).unwrap().id, deployment.id);
        check_edge(&web, &deployment.spec, version);

        if f.from_source {
            check_site(&store, f.file);
        } else {
            assert!(store.app("site").is_err() && store.deliveries("site").unwrap().is_empty());
        }

        let certificates = store.certificates().unwrap();
        assert_eq!(certificates.len(), 1, "{}", at("certificates"));
        assert_eq!(certificates[0].origin, CertificateOrigin::Custom);
        assert_eq!(certificates[0].names, ["web.fixture.test"]);

        check_people(&store, version);
        let settings = store.settings().unwrap();
        if version >= 4 {
            assert_eq!(settings.acme_email.as_deref(), Some("ops@fixture.test"));
            assert_eq!(
                settings.public_url.as_deref(),
                Some("https://berth.fixture.test")
            );
        } else {
            assert_eq!(settings, SettingsRecord::default(), "{}", at("settings"));
        }
    }
}

/// What the edge applies, from version 5 on: every rule of the `www`
/// domain, maintenance and the 503 page; none of them before, on the
/// other domains, or in the deployed spec (step 3 came first).
fn check_edge(web: &AppRecord, deployed: &AppSpec, version: u32) {
    let spec = &web.spec;
    let plain = |d: &&Domain| d.rules.is_empty();
    assert_eq!(
        spec.domains.iter().filter(plain).count(),
        2,
        "v{version}: rules of web and api"
    );
    assert!(deployed.domains.iter().all(|d| d.rules.is_empty()));
    assert!(deployed.maintenance.is_off() && deployed.error_pages.is_empty());
    if version < 5 {
        assert!(spec.maintenance.is_off(), "v{version}: maintenance");
        assert!(spec.error_pages.is_empty(), "v{version}: error pages");
        return;
    }
    assert_eq!(
        spec.maintenance,
        Maintenance {
            enabled: true,
            message: Some("back soon".into())
        }
    );
    assert_eq!(
        spec.error_pages.iter().collect::<Vec<_>>(),
        [(&503, &PAGE_503.to_string())]
    );
    let www = &spec.domains[2];
    assert_eq!(
        (www.certificate, www.redirect_https, www.hsts),
        (CertificateSource::None, false, false)
    );
    let rules = &www.rules;
    let auth = rules.basic_auth.as_ref().expect("basic auth");
    assert_eq!(auth.realm, "fixture");
    let names: Vec<_> = auth.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["ann", "bob"]);
    let ann = PasswordHash::new(&auth.users[0].password_hash).unwrap();
    assert_eq!(ann.algorithm.as_str(), "argon2id");
    let argon2 = argon2::Argon2::default();
    assert!(argon2.verify_password(b"ann-fixture-pw", &ann).is_ok());
    assert!(argon2.verify_password(b"ann-fixture-px", &ann).is_err());
    assert_eq!(auth.users[1].password_hash, BOB_BCRYPT);
    assert_eq!(rules.redirect_www, Some(RedirectWww::ToApex));
    assert_eq!(
        rules.redirects,
        [Redirect {
            from: "^/old/(.*)$".into(),
            to: "/new/$1".into(),
            status: 301
        }]
    );
    let set =
        |edits: &HeaderEdits| -> Vec<(String, String)> { edits.set.clone().into_iter().collect() };
    let (request, response) = (&rules.headers.request, &rules.headers.response);
    assert_eq!(set(request), [("x-env".into(), "fixture".into())]);
    assert_eq!(request.remove, ["cookie"]);
    assert_eq!(set(response), [("x-served-by".into(), "berth".into())]);
    assert_eq!(response.remove, ["server"]);
    assert!(rules.security_headers);
    let cors = rules.cors.as_ref().expect("cors");
    assert_eq!(cors.origins, ["https://app.fixture.test"]);
    assert_eq!(cors.methods, ["GET", "POST"]);
    assert_eq!(cors.headers, ["x-token"]);
    assert_eq!(cors.expose_headers, ["x-total"]);
    assert_eq!((cors.credentials, cors.max_age_secs), (true, 120));
    let cidrs = |list: &[Cidr]| list.iter().map(Cidr::to_string).collect::<Vec<_>>();
    assert_eq!(cidrs(&rules.ip_allow), ["10.0.0.0/8", "::1/128"]);
    assert_eq!(cidrs(&rules.ip_deny), ["10.9.0.0/16"]);
    assert_eq!(
        rules.rate_limit,
        Some(RateLimit {
            per_second: 5,
            burst: 10
        })
    );
    assert_eq!(rules.compression, [Encoding::Gzip, Encoding::Zstd]);
    assert_eq!(rules.max_body_bytes, Some(1 << 20));
    assert_eq!(
        rules.timeouts,
        Timeouts {
            response_header_secs: Some(30),
            idle_secs: Some(60)
        }
    );
}

/// Users, sessions, API keys and audit: there from version 3 on.
fn check_people(store: &Store, version: u32) {
    let users = store.users().unwrap();
    let keys = store.api_keys().unwrap();
    let audit = store.audit(100).unwrap();
    if version < 3 {
        assert!(
            users.is_empty() && keys.is_empty() && audit.is_empty(),
            "v{version}"
        );
        return;
    }
    assert_eq!(users.len(), 1, "v{version} users");
    let alice = &users[0];
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.role, Role::Member);
    assert_eq!(
        alice.grants,
        [Grant {
            project: "shop".into(),
            scope: Scope::Deploy
        }]
    );
    assert!(alice.password_hash.starts_with("$argon2"));
    assert_eq!(store.user_named("alice").unwrap().unwrap().id, alice.id);
    assert_eq!(
        store.sessions_of(&alice.id).unwrap().len(),
        1,
        "v{version} sessions"
    );
    assert_eq!(keys.len(), 1, "v{version} keys");
    assert_eq!(keys[0].name, "ci");
    assert_eq!(keys[0].scopes, [Scope::Deploy]);
    assert_eq!(keys[0].projects.as_deref(), Some(&["shop".to_string()][..]));
    assert!(
        audit
            .iter()
            .any(|a| a.action.contains("POST") && a.target.contains("users")),
        "v{version} audit: {audit:?}"
    );
}

/// The app from source of every fixture whose berth had them.
fn check_site(store: &Store, file: &str) {
    let site = store.app("site").unwrap();
    let source = site.spec.source.as_ref().unwrap();
    let url = "https://git.fixture.test/shop/site.git";
    assert_eq!(source.url, url, "{file}: source");
    assert_eq!(source.branch.as_deref(), Some("main"));
    assert_eq!(source.auth, GitAuth::Token);
    let build = site.spec.build.as_ref().unwrap();
    assert_eq!(build.kind, BuildKind::Static);
    assert_eq!(build.publish_dir.as_deref(), Some("public"));
    assert!(site.vault.is_some(), "{file}: vault");
    let deliveries = store.deliveries("site").unwrap();
    assert_eq!(deliveries.len(), 1, "{file}: deliveries");
    assert_eq!(deliveries[0].outcome, HookOutcome::Ignored);
    assert_eq!(deliveries[0].provider, "github");
}
