//! Apps from source end to end: a git server on loopback (git's own
//! smart-HTTP backend behind a token check) holds sample apps; berth
//! clones, builds with the real Docker engine (`FROM scratch` + static
//! busybox), deploys and routes them; push webhooks in GitHub, GitLab and
//! Gitea format (signed) redeploy; bad signatures, other branches and
//! untouched watch paths do not; a broken Dockerfile fails without
//! touching the serving version; secrets stay out of logs, API answers and
//! image history; a static site is served by the edge with SPA fallback.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::git::{GitServer, Repo};
use support::{docker, Berth};

const TOKEN: &str = "ghp_T0kenThatMustNeverLeak1234567890";

const DOCKERFILE: &str = "FROM scratch\n\
COPY busybox /bin/busybox\n\
COPY www /www\n\
ARG GREETING=hello\n\
ENV GREETING=$GREETING\n\
CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

fn busybox() -> Vec<u8> {
    std::fs::read("/bin/busybox").expect("busybox-static is installed")
}

/// Commits the sample web app serving `text` at `/`.
fn commit_app(repo: &Repo, text: &str) -> String {
    let bb = busybox();
    repo.commit(
        "main",
        &[
            ("Dockerfile", Some(DOCKERFILE.as_bytes())),
            ("busybox", Some(&bb)),
            ("www/index.html", Some(format!("{text}\n").as_bytes())),
        ],
        &format!("serve {text}"),
    )
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

/// A push payload in the GitHub format (Gitea/Forgejo send the same shape).
fn push_payload(branch: &str, after: &str, message: &str, modified: &[&str]) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0000000000000000000000000000000000000001",
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": {"full_name": "team/shop", "clone_url": "http://git.test/team/shop.git", "default_branch": "main"},
        "pusher": {"name": "test", "email": "test@example.com"},
        "commits": [{"id": after, "message": message, "added": [], "removed": [], "modified": modified}],
        "head_commit": {"id": after, "message": message, "added": [], "removed": [], "modified": modified}
    })
    .to_string()
    .into_bytes()
}

/// POSTs to the webhook URL (path taken from `url`) with `headers`.
async fn deliver(
    berth: &Berth,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    let path = url.split_once("/api/v1").unwrap().1;
    let mut req = reqwest::Client::new().post(format!("http://{}/api/v1{path}", berth.admin));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn webhook(berth: &Berth, app: &str) -> (String, String) {
    let (status, hook) = berth
        .api("GET", &format!("/apps/{app}/webhook"), None)
        .await;
    assert_eq!(status, 200, "{hook}");
    (
        hook["url"].as_str().unwrap().to_string(),
        hook["secret"].as_str().unwrap().to_string(),
    )
}

async fn deployment_count(berth: &Berth, app: &str) -> usize {
    let (_, list) = berth
        .api("GET", &format!("/apps/{app}/deployments"), None)
        .await;
    list.as_array().unwrap().len()
}

/// Waits until the edge answers `want` for `host`.
async fn wait_serving(berth: &Berth, host: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = berth.get(host, "/").await;
        if status == 200 && body.trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host} answers {status} {body:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn github_push_builds_deploys_and_filters() {
    let server = GitServer::start(Some(TOKEN)).await;
    let repo = server.create_repo("shop");
    let first = commit_app(&repo, "one");
    let berth = Berth::start().await;
    berth
        .create_app(json!({
            "name": "shop",
            "source": {"type": "git", "url": server.url("shop"), "branch": "main", "token": TOKEN,
                       "watch_paths": ["www/**", "Dockerfile"]},
            "build": {"type": "dockerfile", "args": {"GREETING": "hi"}},
            "port": 8080,
            "domains": [{"host": "shop.test"}]
        }))
        .await;
    let d = berth.deploy("shop").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert_eq!(d["commit"], first.as_str(), "{d}");
    assert!(d["image"].as_str().unwrap().contains("/shop:"), "{d}");
    wait_serving(&berth, "shop.test", "one").await;
    let first_log = berth.deployment_log(d["id"].as_str().unwrap()).await;
    assert!(
        first_log.contains("Step 1/"),
        "build output streams into the log: {first_log}"
    );

    // A signed GitHub push to the branch redeploys the new commit.
    let (url, secret) = webhook(&berth, "shop").await;
    let second = commit_app(&repo, "two");
    let body = push_payload("main", &second, "serve two", &["www/index.html"]);
    let sig = format!("sha256={}", hmac_hex(&secret, &body));
    let headers = [
        ("x-github-event", "push".to_string()),
        ("x-github-delivery", "d-1".to_string()),
        ("x-hub-signature-256", sig),
        ("content-type", "application/json".to_string()),
    ];
    let pushed_at = Instant::now();
    let (status, answer) = deliver(&berth, &url, &headers, body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "deployed");
    let id = answer["deployment"].as_str().unwrap().to_string();
    let d = berth.wait_deployment(&id).await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert_eq!(d["trigger"], "webhook");
    assert_eq!(d["commit"], second.as_str());
    wait_serving(&berth, "shop.test", "two").await;
    // Informational (not asserted): webhook to the new commit serving.
    eprintln!(
        "webhook -> new commit serving: {} ms",
        pushed_at.elapsed().as_millis()
    );
    // The layers the commit did not change come from the build cache.
    let second_log = berth.deployment_log(&id).await;
    assert!(second_log.contains("Using cache"), "{second_log}");

    // A bad signature: 401, nothing queued.
    let before = deployment_count(&berth, "shop").await;
    let mut bad = headers.clone();
    bad[2].1 = format!("sha256={}", hmac_hex("wrong secret", &body));
    let (status, answer) = deliver(&berth, &url, &bad, body.clone()).await;
    assert_eq!(status, 401, "{answer}");
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(deliver(&berth, &url, &headers, tampered).await.0, 401);
    // A wrong URL token: 404, nothing queued.
    let wrong = format!("{}x", &url[..url.len() - 1]);
    assert_eq!(deliver(&berth, &wrong, &headers, body.clone()).await.0, 404);
    // Malformed JSON, correctly signed: 400.
    let junk = b"{not json".to_vec();
    let mut signed_junk = headers.clone();
    signed_junk[2].1 = format!("sha256={}", hmac_hex(&secret, &junk));
    assert_eq!(deliver(&berth, &url, &signed_junk, junk).await.0, 400);

    // Another branch, an untouched watch path, a skip marker: ignored, with reasons.
    let other = repo.commit("dev", &[("www/index.html", Some(b"dev\n"))], "dev work");
    let mut ignored = Vec::new();
    for body in [
        push_payload("dev", &other, "dev work", &["www/index.html"]),
        push_payload("main", &second, "docs only", &["docs/readme.md"]),
        push_payload("main", &second, "tweak [skip ci]", &["www/index.html"]),
    ] {
        let mut h = headers.clone();
        h[2].1 = format!("sha256={}", hmac_hex(&secret, &body));
        let (status, answer) = deliver(&berth, &url, &h, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["outcome"], "ignored", "{answer}");
        ignored.push(answer["reason"].as_str().unwrap().to_string());
    }
    assert!(
        ignored[0].contains("dev") && ignored[0].contains("main"),
        "{ignored:?}"
    );
    assert!(ignored[1].contains("docs/readme.md"), "{ignored:?}");
    assert!(ignored[2].contains("[skip ci]"), "{ignored:?}");
    assert_eq!(deployment_count(&berth, "shop").await, before);
    // Every decision is recorded and visible.
    let (_, hook) = berth.api("GET", "/apps/shop/webhook", None).await;
    let outcomes: Vec<&str> = hook["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "rejected").count(),
        3,
        "{hook}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ignored").count(),
        3,
        "{hook}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "deployed").count(),
        1,
        "{hook}"
    );

    // Deliveries pass the API's gate as their app's webhook: each is in
    // the audit log, under the app, without the URL's token.
    let (status, audit) = berth.api("GET", "/audit?limit=100", None).await;
    assert_eq!(status, 200, "{audit}");
    let url_token = url.rsplit('/').next().unwrap();
    let hooks: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "webhook:shop")
        .collect();
    assert_eq!(hooks.len(), 7, "{audit}");
    assert!(
        hooks.iter().all(|e| e["target"] == "/api/v1/hooks/shop/…"),
        "{audit}"
    );
    assert_eq!(
        hooks.iter().filter(|e| e["status"] == 202).count(),
        1,
        "{audit}"
    );
    assert!(!audit.to_string().contains(url_token), "{audit}");

    // Rotating the webhook retires the old URL.
    let (status, rotated) = berth.api("POST", "/apps/shop/webhook/rotate", None).await;
    assert_eq!(status, 200);
    assert_ne!(rotated["url"].as_str().unwrap(), url);
    assert_eq!(deliver(&berth, &url, &headers, body).await.0, 404);

    // The token never shows: not in API answers, logs, URLs git requested,
    // nor the built image's history.
    let (_, app) = berth.api("GET", "/apps/shop", None).await;
    assert_eq!(app["source"]["auth"], "token", "{app}");
    let (_, deployments) = berth.api("GET", "/apps/shop/deployments", None).await;
    let log = berth.deployment_log(&id).await;
    for text in [
        app.to_string(),
        deployments.to_string(),
        log,
        first_log,
        berth.log(),
    ] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
    let seen = server.seen();
    assert!(
        seen.contains("authorization: Basic"),
        "git sent the token as a header"
    );
    for line in seen.lines().filter(|l| !l.starts_with(' ')) {
        assert!(
            !line.contains(TOKEN) && !line.contains("x-access-token"),
            "{line}"
        );
    }
    let image = d["image"].as_str().unwrap();
    let history = docker(&["history", "--no-trunc", image]);
    assert!(!history.contains(TOKEN), "{history}");
}

#[tokio::test]
async fn gitlab_and_gitea_pushes_deploy_and_a_broken_dockerfile_keeps_the_old_version() {
    let server = GitServer::start(None).await;
    let repo = server.create_repo("blog");
    commit_app(&repo, "one");
    let berth = Berth::start().await;
    berth
        .create_app(json!({
            "name": "blog",
            "source": {"type": "git", "url": server.url("blog")},
            "port": 8080,
            "domains": [{"host": "blog.test"}]
        }))
        .await;
    let d = berth.deploy("blog").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    wait_serving(&berth, "blog.test", "one").await;
    let (url, secret) = webhook(&berth, "blog").await;

    // GitLab: the secret travels as X-Gitlab-Token.
    let two = commit_app(&repo, "two");
    let gitlab = json!({
        "object_kind": "push", "event_name": "push",
        "before": "0000000000000000000000000000000000000001", "after": two,
        "ref": "refs/heads/main", "checkout_sha": two,
        "project": {"path_with_namespace": "team/blog", "default_branch": "main",
                    "git_http_url": "http://git.test/team/blog.git"},
        "commits": [{"id": two, "message": "serve two", "added": [], "modified": ["www/index.html"], "removed": []}],
        "total_commits_count": 1
    })
    .to_string()
    .into_bytes();
    let bad = [
        ("x-gitlab-event", "Push Hook".to_string()),
        ("x-gitlab-token", "not the secret".to_string()),
    ];
    assert_eq!(deliver(&berth, &url, &bad, gitlab.clone()).await.0, 401);
    let headers = [
        ("x-gitlab-event", "Push Hook".to_string()),
        ("x-gitlab-token", secret.clone()),
    ];
    let (status, answer) = deliver(&berth, &url, &headers, gitlab).await;
    assert_eq!(status, 202, "{answer}");
    let d = berth
        .wait_deployment(answer["deployment"].as_str().unwrap())
        .await;
    assert_eq!(d["status"], "succeeded", "{d}");
    wait_serving(&berth, "blog.test", "two").await;

    // Gitea: hex HMAC in X-Gitea-Signature, GitHub-like payload.
    let three = commit_app(&repo, "three");
    let body = push_payload("main", &three, "serve three", &["www/index.html"]);
    let headers = [
        ("x-gitea-event", "push".to_string()),
        ("x-github-event", "push".to_string()),
        ("x-gitea-signature", hmac_hex(&secret, &body)),
    ];
    let (status, answer) = deliver(&berth, &url, &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    let d = berth
        .wait_deployment(answer["deployment"].as_str().unwrap())
        .await;
    assert_eq!(d["status"], "succeeded", "{d}");
    wait_serving(&berth, "blog.test", "three").await;

    // A Dockerfile whose step fails: the deployment fails with the build
    // output in its log, and "three" keeps serving. A plain POST (no
    // provider headers) deploys, as a CI script would.
    let broken = DOCKERFILE.replace(
        "ARG GREETING",
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo compiling; exit 7\"]\nARG GREETING",
    );
    repo.commit(
        "main",
        &[("Dockerfile", Some(broken.as_bytes()))],
        "break the build",
    );
    let (status, answer) = deliver(&berth, &url, &[], Vec::new()).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployment"].as_str().unwrap().to_string();
    let d = berth.wait_deployment(&id).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("build failed"), "{d}");
    let log = berth.deployment_log(&id).await;
    assert!(log.contains("compiling"), "{log}");
    assert!(log.contains("non-zero code: 7"), "{log}");
    for _ in 0..5 {
        let (status, body) = berth.get("blog.test", "/").await;
        assert_eq!((status, body.trim()), (200, "three"));
    }
    // Deleting the app removes the images built for it.
    let built = |berth: &Berth| {
        docker(&[
            "images",
            "-q",
            "--filter",
            &format!("reference=berth-{}/blog", berth.instance),
        ])
    };
    assert!(!built(&berth).is_empty());
    let (status, _) = berth.api("DELETE", "/apps/blog", None).await;
    assert_eq!(status, 204);
    assert_eq!(
        built(&berth),
        "",
        "built images remain after the app was deleted"
    );
}

#[tokio::test]
async fn an_image_push_webhook_redeploys_an_image_app() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(support::Image::Web("v1"));
    berth
        .create_app(
            json!({"name": "img", "image": v1, "port": 8080, "domains": [{"host": "img.test"}]}),
        )
        .await;
    let d = berth.deploy("img").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let (url, _) = webhook(&berth, "img").await;
    let (repo, tag) = v1.split_once(':').unwrap();
    // Docker Hub's payload (it cannot sign; the URL token authenticates).
    let hub = |tag: &str| {
        json!({
            "callback_url": "https://registry.hub.docker.com/u/team/app/hook/1/",
            "push_data": {"pushed_at": 1700000000, "pusher": "team", "tag": tag},
            "repository": {"repo_name": repo, "name": "app", "namespace": "team", "status": "Active"}
        })
        .to_string()
        .into_bytes()
    };
    let (status, answer) = deliver(&berth, &url, &[], hub("other")).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains(tag), "{answer}");
    let (status, answer) = deliver(&berth, &url, &[], hub(tag)).await;
    assert_eq!(status, 202, "{answer}");
    let d = berth
        .wait_deployment(answer["deployment"].as_str().unwrap())
        .await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(d["trigger"], "webhook");
    // A git push means nothing to an image app.
    let body = push_payload(
        "main",
        "1111111111111111111111111111111111111111",
        "x",
        &["a"],
    );
    let (_, secret) = webhook(&berth, "img").await;
    let headers = [
        ("x-github-event", "push".to_string()),
        (
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(&secret, &body)),
        ),
    ];
    let (status, answer) = deliver(&berth, &url, &headers, body).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
}

#[tokio::test]
async fn build_secrets_reach_the_build_but_no_layer_log_or_answer() {
    let server = GitServer::start(None).await;
    let repo = server.create_repo("vault");
    let secret_value = "s3cr3t-build-value-42";
    let dockerfile = DOCKERFILE.replace(
        "ARG GREETING",
        "RUN --mount=type=secret,id=api_key [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox sha256sum /run/secrets/api_key | /bin/busybox cut -c1-64 > /www/check.txt\"]\nARG GREETING",
    );
    let bb = busybox();
    repo.commit(
        "main",
        &[
            ("Dockerfile", Some(dockerfile.as_bytes())),
            ("busybox", Some(&bb)),
            ("www/index.html", Some(b"vault\n")),
        ],
        "use a build secret",
    );
    let berth = Berth::start().await;
    berth
        .create_app(json!({
            "name": "vault",
            "source": {"type": "git", "url": server.url("vault")},
            "build": {"type": "dockerfile", "secrets": {"api_key": secret_value}},
            "port": 8080,
            "domains": [{"host": "vault.test"}]
        }))
        .await;
    let d = berth.deploy("vault").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    // The step saw the secret (its digest was written to the site)...
    let digest = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret_value.as_bytes(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = berth.get("vault.test", "/check.txt").await;
        if status == 200 {
            assert_eq!(body.trim(), digest);
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and nothing kept it.
    let (_, app) = berth.api("GET", "/apps/vault", None).await;
    assert_eq!(app["build"]["secrets"], json!(["api_key"]), "{app}");
    let log = berth.deployment_log(d["id"].as_str().unwrap()).await;
    let history = docker(&["history", "--no-trunc", d["image"].as_str().unwrap()]);
    let inspect = docker(&["image", "inspect", d["image"].as_str().unwrap()]);
    let store = std::fs::read(berth.data_dir().join("berth.redb")).unwrap_or_default();
    for text in [app.to_string(), log, history, inspect, berth.log()] {
        assert!(!text.contains(secret_value), "secret leaked: {text}");
    }
    assert!(
        !store
            .windows(secret_value.len())
            .any(|w| w == secret_value.as_bytes()),
        "the store holds the secret in plain text"
    );
}

#[tokio::test]
async fn static_site_is_served_by_the_edge_with_spa_fallback() {
    let server = GitServer::start(None).await;
    let repo = server.create_repo("site");
    repo.commit(
        "main",
        &[
            ("README.md", Some(b"not published\n")),
            (
                "public/index.html",
                Some(b"<!doctype html><title>app</title><div id=app></div>\n"),
            ),
            (
                "public/app.css",
                Some(b"body { color: #333; margin: 0 auto; max-width: 40em; }\n"),
            ),
            ("public/assets/app.js", Some(b"console.log('spa');\n")),
        ],
        "site",
    );
    let mut berth = Berth::start().await;
    let (status, body) = berth
        .api(
            "POST",
            "/apps",
            Some(json!({
                "name": "site", "port": 80,
                "source": {"type": "git", "url": server.url("site")},
                "build": {"type": "static", "publish_dir": "public", "spa": true},
                "domains": [{"host": "site.test"}]
            })),
        )
        .await;
    assert_eq!(status, 400, "a static site has no port: {body}");
    assert_eq!(body["error"]["field"], "port");
    berth
        .create_app(json!({
            "name": "site",
            "source": {"type": "git", "url": server.url("site")},
            "build": {"type": "static", "publish_dir": "public", "spa": true},
            "domains": [{"host": "site.test"}]
        }))
        .await;
    let d = berth.deploy("site").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert!(
        berth.containers().is_empty(),
        "a static site runs no container"
    );
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("http://{}{path}", berth.http))
            .header("host", "site.test")
    };
    let index = get("/").send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let etag = index.headers()["etag"].to_str().unwrap().to_string();
    assert!(index.text().await.unwrap().contains("<div id=app>"));
    let css = get("/app.css").send().await.unwrap();
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    // SPA fallback for a client-side route; the README is not published.
    let route = get("/dashboard/settings").send().await.unwrap();
    assert_eq!(route.status(), 200);
    assert!(route.text().await.unwrap().contains("<div id=app>"));
    assert_eq!(get("/README.md").send().await.unwrap().status(), 404);
    let cached = get("/")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let (_, app) = berth.api("GET", "/apps/site", None).await;
    assert_eq!(app["status"], "running", "{app}");
    // A repository cannot publish the host's files through a symlink.
    let evil = server.create_repo("evil");
    std::os::unix::fs::symlink("/etc", evil.work.path().join("public")).unwrap();
    evil.commit("main", &[("index.html", Some(b"x\n"))], "link out");
    berth
        .create_app(json!({
            "name": "evil",
            "source": {"type": "git", "url": server.url("evil")},
            "build": {"type": "static", "publish_dir": "public"},
            "domains": [{"host": "evil.test"}]
        }))
        .await;
    let d = berth.deploy("evil").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["error"].as_str().unwrap().contains("build.publish_dir"),
        "{d}"
    );
    assert_eq!(berth.get("evil.test", "/passwd").await.0, 503);
    // A symlink inside the site is served; one out of it fails the
    // deployment naming the link and its target, rather than vanishing.
    let links = server.create_repo("links");
    let public = links.work.path().join("public");
    std::fs::create_dir_all(&public).unwrap();
    std::os::unix::fs::symlink("index.html", public.join("home.html")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", public.join("passwd.txt")).unwrap();
    links.commit("main", &[("public/index.html", Some(b"links\n"))], "links");
    berth
        .create_app(json!({
            "name": "links",
            "source": {"type": "git", "url": server.url("links")},
            "build": {"type": "static", "publish_dir": "public"},
            "domains": [{"host": "links.test"}]
        }))
        .await;
    let d = berth.deploy("links").await;
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("passwd.txt") && error.contains("/etc/passwd"),
        "{d}"
    );
    assert!(error.contains("remove the link"), "{d}");
    links.commit("main", &[("public/passwd.txt", None)], "unlink");
    let d = berth.deploy("links").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert_eq!(
        berth.get("links.test", "/home.html").await,
        (200, "links\n".to_string())
    );
    // Served again after a restart, from the files kept on disk.
    assert!(berth.terminate().await);
    berth.launch().await;
    let (status, body) = berth.get("site.test", "/app.css").await;
    assert_eq!(status, 200, "{}", berth.log());
    assert!(body.contains("max-width"));
}

#[tokio::test]
async fn source_input_is_checked_and_refs_and_plans_are_shown() {
    let server = GitServer::start(Some(TOKEN)).await;
    let repo = server.create_repo("api");
    repo.commit(
        "main",
        &[
            (
                "package.json",
                Some(
                    br#"{"name":"api","scripts":{"build":"tsc","start":"node dist/index.js"}}"#
                        .as_slice(),
                ),
            ),
            ("package-lock.json", Some(b"{}".as_slice())),
        ],
        "node app",
    );
    repo.commit("release", &[], "release branch");
    let berth = Berth::start().await;
    // Test connection: branches listed with the token, refused without.
    let (status, refs) = berth
        .api(
            "POST",
            "/sources/refs",
            Some(json!({"type": "git", "url": server.url("api"), "token": TOKEN})),
        )
        .await;
    assert_eq!(status, 200, "{refs}");
    let branches = refs["branches"].as_array().unwrap();
    assert!(
        branches.contains(&json!("main")) && branches.contains(&json!("release")),
        "{refs}"
    );
    let (status, err) = berth
        .api(
            "POST",
            "/sources/refs",
            Some(json!({"type": "git", "url": server.url("api")})),
        )
        .await;
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["error"]["field"], "source.url");
    // Bad input names the field.
    for (spec, field) in [
        (
            json!({"name": "x", "image": "nginx", "source": {"type": "git", "url": "https://h/r"}, "port": 80}),
            "source",
        ),
        (
            json!({"name": "x", "source": {"type": "git", "url": "https://u:p@h/r"}, "port": 80}),
            "source.url",
        ),
        (
            json!({"name": "x", "source": {"type": "git", "url": "https://h/r"}, "build": {"type": "auto", "dockerfile": "D"}, "port": 80}),
            "build.dockerfile",
        ),
        (json!({"name": "x", "port": 80}), "image"),
    ] {
        let (status, body) = berth.api("POST", "/apps", Some(spec.clone())).await;
        assert_eq!(status, 400, "{spec} -> {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    // The plan of an auto build, readable before building, with overrides.
    berth
        .create_app(json!({
            "name": "api",
            "source": {"type": "git", "url": server.url("api"), "token": TOKEN},
            "build": {"type": "auto", "plan": {"start": "node server.js"}},
            "port": 3000
        }))
        .await;
    let (status, plan) = berth.api("GET", "/apps/api/build-plan", None).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["plan"]["stack"], "node", "{plan}");
    assert_eq!(plan["plan"]["start"], "node server.js", "{plan}");
    assert!(
        plan["dockerfile"].as_str().unwrap().contains("npm ci"),
        "{plan}"
    );
    assert!(!plan.to_string().contains(TOKEN));
}

#[tokio::test]
async fn builds_are_cancelled_and_bounded_by_their_timeout() {
    let server = GitServer::start(None).await;
    let repo = server.create_repo("slow");
    let slow = DOCKERFILE.replace(
        "ARG GREETING",
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo started-sleeping; /bin/busybox sleep 60\"]\nARG GREETING",
    );
    let bb = busybox();
    repo.commit(
        "main",
        &[
            ("Dockerfile", Some(slow.as_bytes())),
            ("busybox", Some(&bb)),
            ("www/index.html", Some(b"slow\n")),
        ],
        "a slow build",
    );
    let berth = Berth::start_configured("", "[build]\ntimeout_secs = 6\n", Vec::new()).await;
    berth
        .create_app(json!({
            "name": "slow",
            "source": {"type": "git", "url": server.url("slow")},
            "port": 8080
        }))
        .await;
    // Cancel while the step runs: the deployment ends at once, and the
    // engine's build container goes with it.
    let id = berth.queue_deploy("slow").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !berth.deployment_log(&id).await.contains("started-sleeping") {
        assert!(
            Instant::now() < deadline,
            "{}",
            berth.deployment_log(&id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled_at = Instant::now();
    let (status, body) = berth
        .api("POST", &format!("/deployments/{id}/cancel"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let d = berth.wait_deployment(&id).await;
    assert_eq!(d["status"], "cancelled", "{d}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        cancelled_at.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let commands = docker(&["ps", "--no-trunc", "--format", "{{.Command}}"]);
        if !commands.contains("started-sleeping") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build step still runs: {commands}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A build that outlives [build] timeout_secs fails, naming the setting.
    let id = berth.queue_deploy("slow").await;
    let d = berth.wait_deployment(&id).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("timeout_secs"), "{d}");
}

// Multi-threaded: the test's own git commands (submodule add) talk to the
// git server running on the test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_pinned_commits_sub_directories_submodules_and_rollback() {
    let server = GitServer::start(None).await;
    // A library repository, used as a submodule.
    let lib = server.create_repo("lib");
    lib.commit(
        "main",
        &[("lib.js", Some(b"export const lib = 1;\n"))],
        "lib",
    );
    let repo = server.create_repo("docs");
    let first = repo.commit(
        "main",
        &[
            ("site/index.html", Some(b"first\n")),
            ("README.md", Some(b"root\n")),
        ],
        "first",
    );
    support::git::git(repo.work.path(), &["tag", "v1"]);
    support::git::git(repo.work.path(), &["push", "-q", "origin", "v1"]);
    support::git::git(
        repo.work.path(),
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &server.url("lib"),
            "site/vendor",
        ],
    );
    repo.commit("main", &[("site/index.html", Some(b"second\n"))], "second");
    let mut berth = Berth::start().await;
    // A tag, a sub-directory as the context, submodules checked out.
    berth
        .create_app(json!({
            "name": "docs",
            "source": {"type": "git", "url": server.url("docs"), "tag": "v1", "path": "site"},
            "build": {"type": "static"},
            "domains": [{"host": "docs.test"}]
        }))
        .await;
    let tagged = berth.deploy("docs").await;
    assert_eq!(tagged["status"], "succeeded", "{tagged}\n{}", berth.log());
    assert_eq!(tagged["commit"], first.as_str());
    assert_eq!(
        berth.get("docs.test", "/").await,
        (200, "first\n".to_string())
    );
    assert_eq!(
        berth.get("docs.test", "/README.md").await.0,
        404,
        "only the sub-directory is published"
    );
    let (status, _) = berth
        .api(
            "PATCH",
            "/apps/docs",
            Some(
                json!({"source": {"type": "git", "url": server.url("docs"), "branch": "main",
                                   "path": "site", "submodules": true}}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    let head = berth.deploy("docs").await;
    assert_eq!(head["status"], "succeeded", "{head}\n{}", berth.log());
    assert_eq!(berth.get("docs.test", "/").await.1, "second\n");
    assert_eq!(
        berth.get("docs.test", "/vendor/lib.js").await.1,
        "export const lib = 1;\n"
    );
    // A pinned commit (abbreviated).
    let (status, _) = berth
        .api(
            "PATCH",
            "/apps/docs",
            Some(json!({"source": {"type": "git", "url": server.url("docs"), "commit": &first[..10], "path": "site"}})),
        )
        .await;
    assert_eq!(status, 200);
    let pinned = berth.deploy("docs").await;
    assert_eq!(pinned["status"], "succeeded", "{pinned}\n{}", berth.log());
    assert_eq!(pinned["commit"], first.as_str());
    assert_eq!(berth.get("docs.test", "/").await.1, "first\n");
    // A rollback serves the kept files of an earlier deployment, no build.
    let (status, rollback) = berth
        .api(
            "POST",
            "/apps/docs/rollback",
            Some(json!({"deployment_id": head["id"]})),
        )
        .await;
    assert_eq!(status, 202, "{rollback}");
    let back = berth
        .wait_deployment(rollback["id"].as_str().unwrap())
        .await;
    assert_eq!(back["status"], "succeeded", "{back}");
    assert!(!berth
        .deployment_log(back["id"].as_str().unwrap())
        .await
        .contains("cloning"));
    assert_eq!(berth.get("docs.test", "/").await.1, "second\n");
    // And after a restart.
    assert!(berth.terminate().await);
    berth.launch().await;
    assert_eq!(berth.get("docs.test", "/").await.1, "second\n");
}

#[tokio::test]
async fn a_deploy_key_clones_over_ssh_and_is_never_shown() {
    let server = GitServer::start(None).await;
    let repo = server.create_repo("private");
    repo.commit("main", &[("index.html", Some(b"over ssh\n"))], "site");
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = support::ssh::keypair(keys.path(), "deploy");
    let (other, _) = support::ssh::keypair(keys.path(), "other");
    let sshd = support::ssh::SshServer::start(&public);
    let url = sshd.url(&repo.bare);
    let berth = Berth::start().await;
    // Test connection with the key; a key the server does not know fails.
    let (status, refs) = berth
        .api(
            "POST",
            "/sources/refs",
            Some(json!({"type": "git", "url": url, "ssh_key": private})),
        )
        .await;
    assert_eq!(status, 200, "{refs}\n{}", sshd.log());
    assert_eq!(refs["default_branch"], "main", "{refs}");
    let (status, err) = berth
        .api(
            "POST",
            "/sources/refs",
            Some(json!({"type": "git", "url": url, "ssh_key": other})),
        )
        .await;
    assert_eq!(status, 502, "{err}");
    // A static site cloned with the deploy key.
    berth
        .create_app(json!({
            "name": "private",
            "source": {"type": "git", "url": url, "ssh_key": private},
            "build": {"type": "static"},
            "domains": [{"host": "private.test"}]
        }))
        .await;
    let d = berth.deploy("private").await;
    assert_eq!(
        d["status"],
        "succeeded",
        "{d}\n{}\n{}",
        berth.log(),
        sshd.log()
    );
    assert_eq!(
        berth.get("private.test", "/").await,
        (200, "over ssh\n".to_string())
    );
    let (_, app) = berth.api("GET", "/apps/private", None).await;
    assert_eq!(app["source"]["auth"], "ssh_key", "{app}");
    let log = berth.deployment_log(d["id"].as_str().unwrap()).await;
    let key_body = private.lines().nth(1).unwrap();
    let store = std::fs::read(berth.data_dir().join("berth.redb")).unwrap();
    for text in [app.to_string(), log, berth.log()] {
        assert!(!text.contains(key_body), "the key leaked: {text}");
    }
    assert!(!store
        .windows(key_body.len())
        .any(|w| w == key_body.as_bytes()));
    // No key file is left behind once the build is over.
    let builds = berth.data_dir().join("builds");
    let leftovers: Vec<_> = std::fs::read_dir(&builds).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn built_images_are_pushed_to_a_configured_registry() {
    let password = "registry-pass-Zq81";
    let registry = support::registry::Registry::start("ci", password);
    let server = GitServer::start(None).await;
    let repo = server.create_repo("pushed");
    commit_app(&repo, "pushed");
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("registry-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let tables = format!(
        "[build]\nregistry = \"{}/berth\"\nregistry_username = \"ci\"\nregistry_password_file = \"{}\"\n",
        registry.host(),
        password_file.display()
    );
    let berth = Berth::start_configured("", &tables, Vec::new()).await;
    berth
        .create_app(json!({
            "name": "pushed",
            "source": {"type": "git", "url": server.url("pushed")},
            "port": 8080,
            "domains": [{"host": "pushed.test"}]
        }))
        .await;
    let d = berth.deploy("pushed").await;
    assert_eq!(
        d["status"],
        "succeeded",
        "{d}\n{}\n{}",
        berth.log(),
        registry.log()
    );
    let id = d["id"].as_str().unwrap();
    let want = format!("{}/berth/pushed:{id}", registry.host());
    assert_eq!(d["pushed_image"], want.as_str(), "{d}");
    wait_serving(&berth, "pushed.test", "pushed").await;
    // The registry has the tag (asked with the same credentials).
    let tags: Value = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/berth/pushed/tags/list",
            registry.host()
        ))
        .basic_auth("ci", Some(password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!([id]), "{tags}");
    // The registry's tag is not left on this machine, and the password is nowhere.
    let local = docker(&["images", "-q", &want]);
    assert_eq!(local, "", "the pushed tag stays local");
    let log = berth.deployment_log(id).await;
    assert!(log.contains("pushed "), "{log}");
    for text in [log, berth.log(), d.to_string()] {
        assert!(
            !text.contains(password),
            "the registry password leaked: {text}"
        );
    }
}

#[tokio::test]
async fn a_git_protocol_url_is_cloned() {
    let server = GitServer::start(None).await;
    let repo = server.create_repo("plain");
    repo.commit("main", &[("index.html", Some(b"over git://\n"))], "site");
    // `git daemon` serving the same bare repositories on a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    use std::os::unix::process::CommandExt as _;
    // git-daemon itself, not `git daemon` (which runs it as a child that
    // a kill of `git` would leave behind, holding the test's output open).
    let exec_path = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git --exec-path");
    let exec_path = String::from_utf8_lossy(&exec_path.stdout)
        .trim()
        .to_string();
    let daemon = std::process::Command::new(format!("{exec_path}/git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", server.root.path().display()))
        .arg(server.root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("git daemon");
    // Stopped however the test ends, with the children it forked for
    // connections (its own process group).
    struct Daemon(std::process::Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let group = format!("-{}", self.0.id());
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status();
            let _ = self.0.wait();
        }
    }
    let daemon = Daemon(daemon);
    support::wait_listening(port, 10, || "git daemon did not start".into());
    let berth = Berth::start().await;
    berth
        .create_app(json!({
            "name": "plain",
            "source": {"type": "git", "url": format!("git://127.0.0.1:{port}/plain.git")},
            "build": {"type": "static"},
            "domains": [{"host": "plain.test"}]
        }))
        .await;
    let d = berth.deploy("plain").await;
    drop(daemon);
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
    assert_eq!(
        berth.get("plain.test", "/").await,
        (200, "over git://\n".to_string())
    );
}
