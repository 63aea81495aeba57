//! Route rules end to end: the real binary, a real container, requests
//! through the edge. An app's maintenance mode turns on and off while its
//! container keeps running; a domain's rules set by its PATCH (basic auth,
//! security and custom response headers, a regex redirect, gzip) apply to
//! the next request; an app's own 503 page replaces the edge's.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{docker, Berth, Image};

/// How long a change made through the API may take to reach the edge.
const APPLY_DEADLINE: Duration = Duration::from_secs(10);

/// A client for the edge: no redirect following, no automatic decoding
/// (reqwest is built without its compression features), a deadline.
fn edge_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// One answer of the edge, read whole.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {:?}", self.status, self.headers, self.text())
    }
}

/// A GET of `path` through the edge for `host`, with extra `headers` and
/// optional basic-auth credentials.
async fn get(
    berth: &Berth,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    credentials: Option<(&str, &str)>,
) -> Answer {
    let mut req = edge_client()
        .get(format!("http://{}{path}", berth.http))
        .header("host", host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some((user, password)) = credentials {
        req = req.basic_auth(user, Some(password));
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// GETs `path` (as [`get`]) until the edge answers `status`, and returns
/// that answer; panics with the last answer after [`APPLY_DEADLINE`].
async fn until_status(
    berth: &Berth,
    path: &str,
    credentials: Option<(&str, &str)>,
    status: u16,
) -> Answer {
    let deadline = Instant::now() + APPLY_DEADLINE;
    loop {
        let answer = get(berth, "web.test", path, &[], credentials).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never answered {status}; last: {answer:?}\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The app `web`'s one container: its full id, when it last started and
/// how often Docker restarted it.
fn the_container(berth: &Berth) -> (String, String, String) {
    let ids = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=berth.instance={}", berth.instance),
        "--filter",
        "label=berth.app=web",
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "one running container of web: {ids:?}");
    let state = docker(&[
        "inspect",
        "-f",
        "{{.State.StartedAt}} {{.RestartCount}}",
        ids[0],
    ]);
    let (started, restarts) = state.split_once(' ').unwrap();
    (
        ids[0].to_string(),
        started.to_string(),
        restarts.to_string(),
    )
}

/// Creates app `web` (one replica of the `Web("v1")` image on 8080, host
/// `web.test`, with `more` fields) and deploys it.
async fn deploy_web(berth: &mut Berth, more: Value) {
    let image = berth.image(Image::Web("v1"));
    let mut spec = json!({
        "name": "web", "image": image, "port": 8080, "replicas": 1,
        "domains": [{"host": "web.test"}]
    });
    for (k, v) in more.as_object().unwrap() {
        spec[k] = v.clone();
    }
    berth.create_app(spec).await;
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", berth.log());
}

/// What the app answers at `/` from the container `id`: the image writes
/// `<version> <hostname>`, and the hostname is the short container id.
fn app_body(id: &str) -> String {
    format!("v1 {}\n", &id[..12])
}

#[tokio::test]
async fn maintenance_turns_on_and_off_without_restarting_the_container() {
    let mut berth = Berth::start().await;
    deploy_web(&mut berth, json!({})).await;
    let before = the_container(&berth);
    let served = get(&berth, "web.test", "/", &[], None).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.text(), app_body(&before.0), "{served:?}");

    let (status, app) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"maintenance": {"enabled": true, "message": "Back at 5"}})),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    let page = until_status(&berth, "/", None, 503).await;
    let retry = page.header("retry-after").expect("Retry-After on the 503");
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s > 0),
        "Retry-After {retry:?}"
    );
    assert!(page.text().contains("Back at 5"), "{page:?}");
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{page:?}"
    );
    // Every path of the app is in maintenance, not only `/`.
    let other = get(&berth, "web.test", "/cgi-bin/slow", &[], None).await;
    assert_eq!(other.status, 503, "{other:?}");
    assert!(other.text().contains("Back at 5"), "{other:?}");
    // The container keeps running meanwhile: same id, same start, no restart.
    assert_eq!(the_container(&berth), before, "during maintenance");
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["serving_replicas"], 1, "{app}");

    let (status, app) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"maintenance": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    let served = until_status(&berth, "/", None, 200).await;
    assert_eq!(served.text(), app_body(&before.0), "{served:?}");
    assert!(served.header("retry-after").is_none(), "{served:?}");
    assert_eq!(the_container(&berth), before, "after maintenance");
    let (_, deployments) = berth.api("GET", "/apps/web/deployments", None).await;
    assert_eq!(
        deployments.as_array().unwrap().len(),
        1,
        "no deployment was made: {deployments}"
    );
}

/// A text file larger than the compression threshold (1 KiB).
fn big_text() -> String {
    (0..100)
        .map(|i| format!("line {i:03} of a text the edge compresses with gzip\n"))
        .collect()
}

#[tokio::test]
async fn domain_rules_set_through_the_api_apply_at_the_edge() {
    let mut berth = Berth::start().await;
    let big = big_text();
    assert!(big.len() >= 4096, "{}", big.len());
    // busybox httpd serves `.txt` as text/plain.
    deploy_web(
        &mut berth,
        json!({"mounts": [{"type": "file", "path": "/www/big.txt", "content": big}]}),
    )
    .await;
    let (id, _, _) = the_container(&berth);
    let gzip = [("accept-encoding", "gzip")];

    // No rules yet: open, nothing compressed, no headers added.
    let plain = get(&berth, "web.test", "/big.txt", &gzip, None).await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(plain.body, big.as_bytes());
    assert!(plain.header("content-encoding").is_none(), "{plain:?}");
    assert!(plain.header("x-frame-options").is_none(), "{plain:?}");
    assert_eq!(
        get(&berth, "web.test", "/old/a", &[], None).await.status,
        404
    );

    let rules = json!({
        "basic_auth": {"realm": "staging", "users": [
            {"username": "ann", "password": "correct horse battery"}
        ]},
        "security_headers": true,
        "headers": {"response": {"set": {"X-Served-By": "berth-edge"}}},
        "compression": ["gzip"],
        "redirects": [{"from": "^/old/(.*)$", "to": "/new/$1", "status": 301}]
    });
    let (status, domain) = berth
        .api("PATCH", "/apps/web/domains/web.test", Some(rules))
        .await;
    assert_eq!(status, 200, "{domain}");
    let ann = Some(("ann", "correct horse battery"));

    // No credentials, then wrong ones: 401 with the challenge.
    let refused = until_status(&berth, "/", None, 401).await;
    let challenge = refused.header("www-authenticate").expect("a challenge");
    assert!(challenge.starts_with("Basic "), "{challenge}");
    assert!(challenge.contains("realm=\"staging\""), "{challenge}");
    assert!(!refused.text().contains("v1 "), "{refused:?}");
    let wrong = get(&berth, "web.test", "/", &[], Some(("ann", "wrong"))).await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.header("www-authenticate").is_some(), "{wrong:?}");
    let stranger = get(
        &berth,
        "web.test",
        "/",
        &[],
        Some(("bob", "correct horse battery")),
    )
    .await;
    assert_eq!(stranger.status, 401, "{stranger:?}");

    // The right ones: the app's answer, with the security headers and ours.
    let served = get(&berth, "web.test", "/", &[], ann).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.text(), app_body(&id), "{served:?}");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("x-served-by", "berth-edge"),
    ] {
        assert_eq!(served.header(name), Some(value), "{name}: {served:?}");
    }
    let permissions = served.header("permissions-policy").unwrap_or_default();
    for feature in ["camera=()", "microphone=()", "geolocation=()"] {
        assert!(permissions.contains(feature), "{permissions:?}");
    }
    // A small answer is not compressed even when gzip is accepted.
    let small = get(&berth, "web.test", "/", &gzip, ann).await;
    assert_eq!(small.status, 200, "{small:?}");
    assert!(small.header("content-encoding").is_none(), "{small:?}");
    assert_eq!(small.text(), app_body(&id));

    // The redirect, with its capture and the query; before basic auth.
    let moved = get(&berth, "web.test", "/old/a/b?c=1", &[], None).await;
    assert_eq!(moved.status, 301, "{moved:?}");
    assert_eq!(moved.header("location"), Some("/new/a/b?c=1"), "{moved:?}");

    // The text file, gzipped, decodes to the original.
    let packed = get(&berth, "web.test", "/big.txt", &gzip, ann).await;
    assert_eq!(packed.status, 200, "{packed:?}");
    assert_eq!(
        packed.header("content-encoding"),
        Some("gzip"),
        "{packed:?}"
    );
    assert!(
        packed
            .header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
        "{packed:?}"
    );
    assert!(packed.body.len() < big.len(), "{}", packed.body.len());
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(packed.body.as_slice())
        .read_to_string(&mut unpacked)
        .expect("a gzip stream");
    assert_eq!(unpacked, big);
    assert_eq!(packed.header("x-served-by"), Some("berth-edge"));
    // Without Accept-Encoding, the same file as it is.
    let identity = get(&berth, "web.test", "/big.txt", &[], ann).await;
    assert_eq!(identity.status, 200, "{identity:?}");
    assert!(
        identity.header("content-encoding").is_none(),
        "{identity:?}"
    );
    assert_eq!(identity.body, big.as_bytes());

    // Basic auth off; the other rules stay.
    let (status, domain) = berth
        .api(
            "PATCH",
            "/apps/web/domains/web.test",
            Some(json!({"basic_auth": null})),
        )
        .await;
    assert_eq!(status, 200, "{domain}");
    assert!(domain.get("basic_auth").is_none(), "{domain}");
    let open = until_status(&berth, "/", None, 200).await;
    assert_eq!(open.text(), app_body(&id), "{open:?}");
    assert!(open.header("www-authenticate").is_none(), "{open:?}");
    assert_eq!(open.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(open.header("x-served-by"), Some("berth-edge"));
    assert_eq!(
        get(&berth, "web.test", "/big.txt", &gzip, None)
            .await
            .header("content-encoding"),
        Some("gzip")
    );
}

#[tokio::test]
async fn a_custom_error_page_replaces_the_edges_503() {
    let mut berth = Berth::start().await;
    deploy_web(&mut berth, json!({})).await;
    assert_eq!(get(&berth, "web.test", "/", &[], None).await.status, 200);
    let (status, app) = berth.api("POST", "/apps/web/stop", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["status"], "stopped", "{app}");
    // berth's own page first.
    let own = until_status(&berth, "/", None, 503).await;
    assert!(own.text().contains("stopped by its owner"), "{own:?}");

    let (status, app) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"error_pages": {"503": "<h1>ours</h1>"}})),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(
        app["status"], "stopped",
        "the PATCH does not start it: {app}"
    );
    let deadline = Instant::now() + APPLY_DEADLINE;
    let ours = loop {
        let answer = get(&berth, "web.test", "/", &[], None).await;
        if answer.body != own.body {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the page never changed: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ours.status, 503, "{ours:?}");
    assert_eq!(ours.text(), "<h1>ours</h1>", "{ours:?}");
    assert!(
        ours.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{ours:?}"
    );
    // Another path of the app gets it too; no container was started.
    let other = get(&berth, "web.test", "/anything", &[], None).await;
    assert_eq!(
        (other.status, other.text().as_str()),
        (503, "<h1>ours</h1>")
    );
    let running = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.instance={}", berth.instance),
    ]);
    assert!(running.is_empty(), "running: {running}");

    // An empty map returns to berth's page.
    let (status, app) = berth
        .api("PATCH", "/apps/web", Some(json!({"error_pages": {}})))
        .await;
    assert_eq!(status, 200, "{app}");
    let deadline = Instant::now() + APPLY_DEADLINE;
    loop {
        let answer = get(&berth, "web.test", "/", &[], None).await;
        assert_eq!(answer.status, 503, "{answer:?}");
        if answer.body == own.body {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "berth's page never came back: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
