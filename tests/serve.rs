//! `berth serve` end to end against the real Docker engine: deploy,
//! route, balance, redeploy, fail a health gate, restart, delete, stop and
//! start, authentication, bad input and metrics.

mod support;

use std::collections::HashSet;

use serde_json::json;
use support::{docker, Berth, Image};

async fn answers(berth: &Berth, host: &str, n: usize) -> Vec<String> {
    berth.answers(host, n).await
}

#[tokio::test]
async fn deploys_routes_and_balances_across_replicas() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth
        .create_app(json!({
            "name": "web", "image": v1, "port": 8080, "replicas": 3,
            "domains": [{"host": "web.test"}]
        }))
        .await;
    // Routed but not deployed yet: 503, not 404.
    assert_eq!(berth.get("web.test", "/").await.0, 503);
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert!(d["image_id"].as_str().unwrap().starts_with("sha256:"));
    // Every phase is timestamped, in order, once the old replicas are gone.
    let id = d["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let d = loop {
        let (_, d) = berth.api("GET", &format!("/deployments/{id}"), None).await;
        if d["phases"].to_string().contains("finished") || std::time::Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let phases: Vec<&str> = d["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "queued",
            "running",
            "image_ready",
            "healthy",
            "switched",
            "drained",
            "finished"
        ],
        "{d}"
    );

    let bodies = answers(&berth, "WEB.test:80", 30).await;
    assert!(bodies.iter().all(|b| b.starts_with("v1 ")), "{bodies:?}");
    let replicas: HashSet<_> = bodies
        .iter()
        .map(|b| b.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(replicas.len(), 3, "all three replicas answer: {bodies:?}");

    // Containers carry labels, sit on the instance network, publish nothing.
    let names = berth.containers();
    assert_eq!(names.len(), 3);
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"berth.app\"}} {{.HostConfig.NetworkMode}} {{len .NetworkSettings.Ports}}",
        &names[0],
    ]);
    assert_eq!(inspect, format!("web berth-{} 0", berth.instance));

    let (status, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(status, 200);
    assert_eq!(app["status"], "running");
    assert_eq!(app["serving_replicas"], 3);
    let (status, logs) = berth.api("GET", "/apps/web/logs?tail=5", None).await;
    assert_eq!(status, 200);
    assert_eq!(logs["containers"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn redeploys_switch_versions_and_failed_gates_keep_the_old_one() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    let sick = berth.image(Image::Unhealthy);
    berth.deploy_web(&v1, 2).await;
    assert!(answers(&berth, "web.test", 4)
        .await
        .iter()
        .all(|b| b.starts_with("v1 ")));

    let (status, _) = berth
        .api("PATCH", "/apps/web", Some(json!({"image": v2})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    assert!(answers(&berth, "web.test", 4)
        .await
        .iter()
        .all(|b| b.starts_with("v2 ")));
    // The old replicas go once the new ones serve.
    berth.wait_containers(2).await;

    // An image whose healthcheck fails: the deployment fails, v2 serves on.
    berth
        .api("PATCH", "/apps/web", Some(json!({"image": sick})))
        .await;
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("healthcheck"), "{d}");
    assert!(answers(&berth, "web.test", 4)
        .await
        .iter()
        .all(|b| b.starts_with("v2 ")));
    berth.wait_containers(2).await;

    // An image that cannot be pulled: failed with the engine's message.
    berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"image": "berth-test-missing.invalid/none:1"})),
        )
        .await;
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(!d["error"].as_str().unwrap().is_empty());
    assert!(answers(&berth, "web.test", 2)
        .await
        .iter()
        .all(|b| b.starts_with("v2 ")));

    let (_, list) = berth.api("GET", "/apps/web/deployments", None).await;
    let statuses: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded", "succeeded"]);
}

#[tokio::test]
async fn http_health_checks_gate_deploys() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth
        .create_app(json!({"name": "web", "image": v1, "port": 8080,
            "health_check": {"type": "http", "path": "/", "expected_status": 200, "interval_ms": 100},
            "domains": [{"host": "web.test"}]}))
        .await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    // A path the app does not serve fails the gate after 3 tries, fast.
    let (status, app) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"health_check": {"type": "http", "path": "/ready", "retries": 3}})),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("GET /ready answered 404, expected 200") && error.contains("3 times"),
        "{error}"
    );
    assert!(answers(&berth, "web.test", 2)
        .await
        .iter()
        .all(|b| b.starts_with("v1 ")));
    let (status, body) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"health_check": {"expected_status": 700}})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("health_check.expected_status"))
    );
}

#[tokio::test]
async fn restart_keeps_routing_and_delete_removes_everything() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth.deploy_web(&v1, 2).await;
    let before: HashSet<_> = answers(&berth, "web.test", 6).await.into_iter().collect();

    assert!(berth.terminate().await, "graceful exit:\n{}", berth.log());
    // A container of this instance that no app owns, made while berth was down.
    docker(&[
        "create",
        "--name",
        &format!("{}-orphan", berth.instance),
        "--label",
        &format!("berth.instance={}", berth.instance),
        "--label",
        "berth.app=ghost",
        &v1,
    ]);
    berth.launch().await;

    let after: HashSet<_> = answers(&berth, "web.test", 6).await.into_iter().collect();
    assert_eq!(before, after, "the same replicas answer after a restart");
    let (_, list) = berth.api("GET", "/apps/web/deployments", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "no redeploy: {list}");
    assert!(
        !berth.containers().iter().any(|n| n.ends_with("-orphan")),
        "orphans are removed: {:?}",
        berth.containers()
    );

    let (status, _) = berth.api("DELETE", "/apps/web", None).await;
    assert_eq!(status, 204);
    assert!(berth.containers().is_empty(), "{:?}", berth.containers());
    assert_eq!(berth.get("web.test", "/").await.0, 404);
    assert_eq!(berth.api("GET", "/apps/web", None).await.0, 404);
}

#[tokio::test]
async fn vanished_replicas_are_redeployed_at_start() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth.deploy_web(&v1, 1).await;
    assert!(berth.terminate().await);
    for name in berth.containers() {
        docker(&["rm", "-f", &name]);
    }
    berth.launch().await;
    let (_, list) = berth.api("GET", "/apps/web/deployments", None).await;
    let newest = list[0].clone();
    assert_eq!(newest["trigger"], "restart", "{list}");
    let d = berth.wait_deployment(newest["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert!(answers(&berth, "web.test", 2)
        .await
        .iter()
        .all(|b| b.starts_with("v1 ")));
}

#[tokio::test]
async fn a_crashed_replica_leaves_the_routes_and_comes_back() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth.deploy_web(&v1, 2).await;
    let victim = berth.containers()[0].clone();
    // The server process dies; Docker's restart policy brings it back.
    // Kill every process but PID 1 (the shell) and the killer itself: the
    // server dies, the shell exits, the container stops with an error.
    // The exec itself may be cut off by that stop (its status then says
    // so), which is the point: what counts is what berth does next.
    let _ = std::process::Command::new("docker")
        .args([
            "exec", &victim, "/bin/busybox", "sh", "-c",
            "for p in $(/bin/busybox pidof busybox); do [ $p != 1 ] && [ $p != $$ ] && /bin/busybox kill $p; done; true",
        ])
        .output();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let log = berth.log();
        if log.contains("a replica left service")
            && log.contains("a restarted replica is back in service")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no eviction and return:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["serving_replicas"], 2, "{app}");
    let replicas: HashSet<_> = answers(&berth, "web.test", 10).await.into_iter().collect();
    assert_eq!(replicas.len(), 2, "both replicas serve again: {replicas:?}");
}

#[tokio::test]
async fn stop_answers_503_and_start_serves_again() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth.deploy_web(&v1, 1).await;
    let (status, app) = berth.api("POST", "/apps/web/stop", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["status"], "stopped");
    let (status, body) = berth.get("web.test", "/").await;
    assert_eq!(status, 503);
    assert!(body.contains("stopped by its owner"), "{body}");
    assert!(!body.contains("Try again shortly"), "{body}");
    let (status, app) = berth.api("POST", "/apps/web/start", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["status"], "running");
    assert!(answers(&berth, "web.test", 2)
        .await
        .iter()
        .all(|b| b.starts_with("v1 ")));
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth.deploy_web(&v1, 1).await;
    let client = reqwest::Client::new();
    let slow = tokio::spawn(
        client
            .get(format!("http://{}/cgi-bin/slow", berth.http))
            .header("host", "web.test")
            .send(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    berth.signal_term();
    let resp = slow
        .await
        .unwrap()
        .expect("the request in flight completes");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap().trim(), "slow done");
    assert!(berth.wait_exit().await, "exit 0:\n{}", berth.log());
    assert_eq!(
        berth.containers().len(),
        1,
        "serving containers stay for the next start"
    );
}

#[tokio::test]
async fn admin_api_needs_the_token_and_names_bad_fields() {
    let berth = Berth::start().await;
    let (status, health) = berth.api_raw("GET", "/health", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    for token in [None, Some("berth_wrong"), Some("")] {
        let (status, body) = berth.api_raw("GET", "/apps", None, token).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(
        berth.api_raw("GET", "/openapi.json", None, None).await.0,
        401
    );
    let (status, doc) = berth.api("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(
        doc["paths"]["/api/v1/apps/{name}/deployments"].is_object(),
        "{doc}"
    );

    // (method, path, body, status, error code, field)
    type Case<'a> = (&'a str, &'a str, &'a str, u16, &'a str, Option<&'a str>);
    let cases: &[Case] = &[
        ("POST", "/apps", "{\"name\":", 400, "invalid_json", None),
        (
            "POST",
            "/apps",
            r#"{"name":"a","image":"x","port":80,"colour":"red"}"#,
            400,
            "unknown_field",
            Some("colour"),
        ),
        (
            "POST",
            "/apps",
            r#"{"name":"A_b","image":"x","port":80}"#,
            400,
            "invalid_field",
            Some("name"),
        ),
        (
            "POST",
            "/apps",
            r#"{"name":"a","image":"x","port":0}"#,
            400,
            "invalid_field",
            Some("port"),
        ),
        (
            "POST",
            "/apps",
            r#"{"name":"a","image":"x","port":65536}"#,
            400,
            "invalid_field",
            Some("port"),
        ),
        (
            "POST",
            "/apps",
            r#"{"name":"a","image":"x","port":80,"domains":[{"host":"bad..host"}]}"#,
            400,
            "invalid_field",
            Some("domains[0].host"),
        ),
        (
            "POST",
            "/apps",
            r#"{"name":"a","image":"x","port":80,"project":"nope"}"#,
            404,
            "not_found",
            None,
        ),
        ("GET", "/apps/nope", "", 404, "not_found", None),
        ("POST", "/apps/nope/deployments", "", 404, "not_found", None),
        ("GET", "/deployments/nope", "", 404, "not_found", None),
        (
            "POST",
            "/projects",
            r#"{"name":"-x"}"#,
            400,
            "invalid_field",
            Some("name"),
        ),
        (
            "GET",
            "/apps/nope/logs?tail=0",
            "",
            400,
            "invalid_field",
            Some("tail"),
        ),
    ];
    for (method, path, body, code, error, field) in cases {
        let body = (!body.is_empty()).then(|| body.to_string());
        let (status, resp) = berth.api_raw(method, path, body, Some(&berth.token)).await;
        assert_eq!(status, *code, "{method} {path}: {resp}");
        assert_eq!(resp["error"]["code"], *error, "{method} {path}: {resp}");
        assert_eq!(
            resp["error"]["field"].as_str(),
            *field,
            "{method} {path}: {resp}"
        );
        assert!(!resp["error"]["message"].as_str().unwrap().is_empty());
    }

    // Conflicts: a taken name and a taken host + path.
    berth
        .create_app(json!({"name": "a", "image": "x", "port": 80, "domains": [{"host": "a.test"}]}))
        .await;
    let (status, resp) = berth
        .api(
            "POST",
            "/apps",
            Some(json!({"name": "a", "image": "x", "port": 80})),
        )
        .await;
    assert_eq!(
        (status, resp["error"]["field"].as_str()),
        (409, Some("name"))
    );
    let (status, resp) = berth
        .api(
            "POST",
            "/apps",
            Some(json!({"name": "b", "image": "x", "port": 80,
            "domains": [{"host": "A.TEST.", "path_prefix": "/"}]})),
        )
        .await;
    assert_eq!(
        (status, resp["error"]["field"].as_str()),
        (409, Some("domains[0]")),
        "{resp}"
    );
    // Another path on the same host is fine; env values are never echoed.
    let (status, resp) = berth
        .api(
            "POST",
            "/apps",
            Some(json!({"name": "b", "image": "x", "port": 80,
            "env": {"SECRET": "hunter2"}, "domains": [{"host": "a.test", "path_prefix": "/api"}]})),
        )
        .await;
    assert_eq!(status, 201, "{resp}");
    assert!(!resp.to_string().contains("hunter2"), "{resp}");

    // Projects: create, read, patch, refuse deleting one with apps.
    let (status, _) = berth
        .api("POST", "/projects", Some(json!({"name": "shop"})))
        .await;
    assert_eq!(status, 201);
    let (status, p) = berth
        .api(
            "PATCH",
            "/projects/shop",
            Some(json!({"description": "the shop"})),
        )
        .await;
    assert_eq!((status, p["description"].as_str()), (200, Some("the shop")));
    berth
        .api("PATCH", "/apps/a", Some(json!({"project": "shop"})))
        .await;
    assert_eq!(berth.api("DELETE", "/projects/shop", None).await.0, 409);
    assert_eq!(berth.api("DELETE", "/apps/a", None).await.0, 204);
    assert_eq!(berth.api("DELETE", "/projects/shop", None).await.0, 204);
}

#[tokio::test]
async fn metrics_pass_promtool() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth.deploy_web(&v1, 1).await;
    answers(&berth, "web.test", 3).await;
    assert_eq!(berth.get("unknown.test", "/").await.0, 404);
    let text = reqwest::get(format!("http://{}/metrics", berth.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"berth_proxy_requests_total{app="web",class="2xx"} 3"#,
        r#"berth_proxy_requests_total{app="-",class="4xx"} 1"#,
        r#"berth_deployments_total{outcome="succeeded"} 1"#,
        "berth_apps 1",
        "berth_containers_running 1",
        "berth_build_info{version=",
        "berth_proxy_upstream_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(
        !text.contains("unknown.test"),
        "client hosts never become labels"
    );
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(text.as_bytes());
    let out = promtool.take().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> Option<std::process::Output>;
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> Option<std::process::Output> {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (Debian package prometheus) is installed");
        child.stdin.take().unwrap().write_all(input).unwrap();
        Some(child.wait_with_output().unwrap())
    }
}

#[tokio::test]
async fn invalid_config_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[deploy]\nhealth_timeout = 5\n", "health_timeout"),
        (
            "[proxy]\nconnect_timeout_ms = 0\n",
            "proxy.connect_timeout_ms",
        ),
        ("instance = \"Bad Name\"\n", "instance"),
    ];
    for (text, key) in cases {
        let config = support::write_file(dir.path(), "berth.toml", text);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("berth kept running with an invalid config: {text}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
        assert!(!dir.path().join("berth.redb").exists(), "nothing started");
    }
}
