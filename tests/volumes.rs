//! Apps that keep data, against the real Docker engine: a named volume
//! keeps what one version wrote for the next (rolling and recreate), a
//! file mount's content and mode reach each replica, host paths need the
//! server's consent and an admin, and a deleted app's volumes stay unless
//! the delete asks for them.

mod support;

use serde_json::{json, Value};
use support::{docker, Berth, Image};

/// Appends the version to `/data/log` at each start, then serves the log
/// and the file mount.
fn keeper_command() -> Value {
    json!([
        "/bin/busybox",
        "sh",
        "-c",
        "echo $VERSION >> /data/log && cp /data/log /www/log && \
         cp /etc/app/greeting.txt /www/greeting && /bin/busybox httpd -f -p 8080 -h /www"
    ])
}

fn volumes_of(berth: &Berth, app: &str) -> Vec<String> {
    docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.instance={}", berth.instance),
        "--filter",
        &format!("label=berth.app={app}"),
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

#[tokio::test]
async fn a_volume_keeps_data_across_deployments_and_files_are_written_into_replicas() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    let app = json!({"name": "keep", "image": v1, "port": 8080,
    "domains": [{"host": "keep.test"}],
    "command": keeper_command(),
    "mounts": [
        {"type": "volume", "name": "data", "path": "/data"},
        {"type": "file", "path": "/etc/app/greeting.txt", "content": "hello from berth\n", "mode": "0440"}
    ]});
    berth.create_app(app.clone()).await;
    let (_, view) = berth.api("GET", "/apps/keep", None).await;
    assert_eq!(view["strategy"], "rolling", "{view}");
    assert_eq!(view["mounts"][1]["mode"], "0440", "{view}");
    assert_eq!(view["mounts"][1]["bytes"], 17, "{view}");
    assert!(
        !view.to_string().contains("hello from berth"),
        "a file's content is not shown: {view}"
    );
    let d = berth.deploy("keep").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert_eq!(berth.get("keep.test", "/log").await, (200, "v1\n".into()));
    assert_eq!(
        berth.get("keep.test", "/greeting").await,
        (200, "hello from berth\n".into())
    );
    let volume = format!("berth-{}.keep.data", berth.instance);
    assert_eq!(volumes_of(&berth, "keep"), std::slice::from_ref(&volume));
    let container = berth.containers()[0].clone();
    let mode = docker(&[
        "exec",
        &container,
        "/bin/busybox",
        "stat",
        "-c",
        "%a %u",
        "/etc/app/greeting.txt",
    ]);
    assert_eq!(mode.trim(), "440 0");

    // The next version finds what the first wrote; with `recreate` the old
    // replica is gone before the new one starts.
    let (status, body) = berth
        .api(
            "PATCH",
            "/apps/keep",
            Some(json!({"image": v2, "strategy": "recreate"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = berth.deploy("keep").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    let log = berth.deployment_log(d["id"].as_str().unwrap()).await;
    assert!(log.contains("strategy recreate"), "{log}");
    assert_eq!(
        berth.get("keep.test", "/log").await,
        (200, "v1\nv2\n".into())
    );
    assert_eq!(berth.containers().len(), 1);

    // A recreated version that fails its health check: the previous one is
    // deployed again, over the same data.
    let sick = berth.image(Image::Unhealthy);
    let (status, body) = berth
        .api("PATCH", "/apps/keep", Some(json!({"image": sick})))
        .await;
    assert_eq!(status, 200, "{body}");
    let d = berth.deploy("keep").await;
    assert_eq!(d["status"], "rolled_back", "{d}\n{}", berth.log());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, log) = berth.get("keep.test", "/log").await;
        if (status, log.as_str()) == (200, "v1\nv2\nsick\nv2\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{status} {log}\n{}",
            berth.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Bad mounts are refused naming the field; nothing changes.
    for (mounts, field) in [
        (
            json!([{"type": "volume", "name": "data", "path": "data"}]),
            "mounts[0].path",
        ),
        (
            json!([{"type": "volume", "name": "Data!", "path": "/d"}]),
            "mounts[0].name",
        ),
        (
            json!([{"type": "bind", "host_path": "/srv", "path": "/srv"}]),
            "mounts[0].host_path",
        ),
        (
            json!([{"type": "file", "path": "/a", "content": "", "mode": "rwx"}]),
            "mounts[0].mode",
        ),
    ] {
        let (status, body) = berth
            .api("PATCH", "/apps/keep", Some(json!({"mounts": mounts})))
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = berth
        .api(
            "PATCH",
            "/apps/keep",
            Some(json!({"mounts": [{"type": "bind", "host_path": "/srv", "path": "/srv"}]})),
        )
        .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_bind_mounts"),
        "{status} {body}"
    );

    // A restart of berth keeps the app serving its data, adopting the
    // running replica.
    assert!(berth.terminate().await);
    berth.launch().await;
    assert_eq!(
        berth.get("keep.test", "/log").await,
        (200, "v1\nv2\nsick\nv2\n".into())
    );

    // Deleted without `volumes`, the data stays for an app of that name.
    let (status, body) = berth.api("DELETE", "/apps/keep?volumes=maybe", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "volumes", "{body}");
    let (status, _) = berth.api("DELETE", "/apps/keep", None).await;
    assert_eq!(status, 204);
    assert_eq!(volumes_of(&berth, "keep"), std::slice::from_ref(&volume));
    berth.create_app(app).await;
    let d = berth.deploy("keep").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(
        berth.get("keep.test", "/log").await,
        (200, "v1\nv2\nsick\nv2\nv1\n".into())
    );
    let (status, _) = berth.api("DELETE", "/apps/keep?volumes=true", None).await;
    assert_eq!(status, 204);
    assert!(volumes_of(&berth, "keep").is_empty());
}

#[tokio::test]
async fn host_paths_need_the_servers_consent_and_an_admin() {
    let mut berth = Berth::start_with("allow_bind_mounts = true").await;
    let v1 = berth.image(Image::Web("v1"));
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("index.html"), "from the host\n").unwrap();
    let bind =
        json!([{"type": "bind", "host_path": host.path(), "path": "/www", "read_only": true}]);
    berth
        .create_app(json!({"name": "site", "image": v1, "port": 8080,
            "domains": [{"host": "site.test"}],
            "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
            "mounts": bind}))
        .await;
    let d = berth.deploy("site").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert_eq!(
        berth.get("site.test", "/").await,
        (200, "from the host\n".into())
    );
    let container = berth.containers()[0].clone();
    let write = std::process::Command::new("docker")
        .args(["exec", &container, "/bin/busybox", "touch", "/www/x"])
        .output()
        .unwrap();
    assert!(!write.status.success(), "read-only bind was writable");

    // A key with `write` may change apps but not mount the host.
    let (status, key) = berth
        .api(
            "POST",
            "/api-keys",
            Some(json!({"name": "ci", "scopes": ["write"]})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap();
    let (status, body) = berth
        .api_raw(
            "PATCH",
            "/apps/site",
            Some(json!({"mounts": bind}).to_string()),
            Some(key),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("'admin'"), "{body}");
    let (status, body) = berth
        .api_raw(
            "PATCH",
            "/apps/site",
            Some(json!({"replicas": 2}).to_string()),
            Some(key),
        )
        .await;
    assert_eq!(status, 200, "other changes stay open to the key: {body}");
    let (status, body) = berth
        .api(
            "PATCH",
            "/apps/site",
            Some(json!({"mounts": [{"type": "bind", "host_path": "/var/run/docker.sock", "path": "/s"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "mounts[0].host_path", "{body}");
}
