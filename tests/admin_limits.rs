//! The admin listener under abuse, against the real binary: webhook bodies
//! are read only for a known app and token, within a limit and a few at a
//! time; idle connections cannot take the edge's open files; bodies that
//! are too large or not JSON get 413 and 415.

mod support;

use std::time::Duration;

use serde_json::json;
use support::Berth;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a request head (no body) and returns the status line berth
/// answers with before any body byte was sent.
async fn status_before_body(addr: &str, head: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("berth answered without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().unwrap_or_default().to_string()
}

fn hook_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n{extra}\r\n"
    )
}

/// `text` without terminal colour codes.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_bodies_are_read_only_for_a_known_app_and_token_within_limits() {
    let berth = Berth::start().await;
    berth
        .create_app(json!({"name": "hooked", "image": "berth-test/none:1", "port": 80}))
        .await;
    let (status, hook) = berth.api("GET", "/apps/hooked/webhook", None).await;
    assert_eq!(status, 200, "{hook}");
    let url = hook["url"].as_str().unwrap();
    let path = format!("/api/v1{}", url.split_once("/api/v1").unwrap().1);
    let wrong = format!("{}x", path);

    // Unknown app or token: answered at the head, the 20 MB never read.
    for p in ["/api/v1/hooks/nope/abc", wrong.as_str()] {
        let line = status_before_body(&berth.admin, &hook_head(p, 20 << 20, "")).await;
        assert!(line.contains(" 404 "), "{p}: {line}");
    }
    // The right URL, but more than its sender ever sends: 413 at once.
    let plain = status_before_body(&berth.admin, &hook_head(&path, 1 << 20, "")).await;
    assert!(plain.contains(" 413 "), "{plain}");
    let github = status_before_body(
        &berth.admin,
        &hook_head(&path, 30 << 20, "X-GitHub-Event: push\r\n"),
    )
    .await;
    assert!(github.contains(" 413 "), "{github}");

    // 40 uploads of 20 MB at once to the right URL, each badly signed:
    // read a few at a time, so berth's memory stays far from 40 x 20 MB.
    let pid = berth.child.as_ref().unwrap().id();
    let before = rss_mib(pid);
    let body = vec![b'{'; 20 << 20];
    let uploads = (0..40).map(|_| {
        let client = reqwest::Client::new();
        let url = format!("http://{}{path}", berth.admin);
        let body = body.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-github-event", "push")
                .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..300 {
            peak = peak.max(rss_mib(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    let mut answers = Vec::new();
    for upload in futures_util::future::join_all(uploads).await {
        answers.push(upload.unwrap().unwrap_or(0));
    }
    let peak = sampler.await.unwrap();
    assert!(
        answers.iter().all(|s| *s == 401 || *s == 503),
        "every delivery is refused for its signature or told to come back: {answers:?}"
    );
    assert!(answers.contains(&401), "{answers:?}");
    assert!(
        peak.saturating_sub(before) < 300,
        "RSS went from {before} MiB to {peak} MiB"
    );
    let (status, hook) = berth.api("GET", "/apps/hooked/webhook", None).await;
    assert_eq!(status, 200);
    assert!(hook["deliveries"].as_array().unwrap().len() >= 10, "{hook}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_connections_cannot_take_the_edges_files() {
    // The hard limit of 1,024 is what a default systemd unit gives.
    let mut berth = Berth::start_wrapped(&["prlimit", "--nofile=1024:1024", "--"]).await;
    let log = plain(&berth.log());
    assert!(
        log.contains("open-file limit") && log.contains("open_files=1024"),
        "{log}"
    );

    // 1,100 connections that never send a byte, all at once. Those past
    // the admin listener's cap wait in the kernel's backlog or are never
    // accepted; none may cost berth a file the edge needs.
    let connects = (0..1100).map(|_| {
        let addr = berth.admin.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
        })
    });
    let mut idle = Vec::new();
    for c in futures_util::future::join_all(connects).await {
        if let Ok(Ok(conn)) = c.unwrap() {
            idle.push(conn);
        }
    }
    assert!(idle.len() >= 128, "only {} connections opened", idle.len());

    // The edge still accepts and answers (404: no app has this host).
    let edge = reqwest::Client::new();
    let answer = edge
        .get(format!("http://{}/", berth.http))
        .header("host", "nobody.test")
        .send()
        .await
        .expect("the edge accepts while the admin listener is flooded");
    assert_eq!(answer.status(), 404);
    let metrics = edge
        .get(format!("http://{}/metrics", berth.metrics))
        .send()
        .await
        .expect("metrics answer while the admin listener is flooded");
    assert_eq!(metrics.status(), 200);

    // Idle connections are closed after the head deadline (15 s), and the
    // admin API answers again.
    let first = idle.first_mut().unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(40), first.read(&mut buf)).await;
    assert!(closed.is_ok(), "an idle admin connection was never closed");
    drop(idle);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (status, _) = berth.api_raw("GET", "/health", None, None).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "admin never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !berth.log().contains("Too many open files"),
        "{}",
        berth.log()
    );
    assert!(berth.terminate().await, "{}", berth.log());
}

#[tokio::test]
async fn admin_bodies_too_large_or_not_json_are_refused_by_status() {
    let berth = Berth::start().await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/apps", berth.admin);
    let app = r#"{"name":"plain","image":"berth-test/none:1","port":80}"#;
    let sent = |content_type: &'static str, body: String| {
        client
            .post(&url)
            .bearer_auth(&berth.token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let text = sent("text/plain", app.to_string()).await.unwrap();
    assert_eq!(text.status(), 415);
    let body: serde_json::Value = text.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    let form = sent("application/x-www-form-urlencoded", app.to_string())
        .await
        .unwrap();
    assert_eq!(form.status(), 415);

    let huge = format!(
        r#"{{"name":"big","image":"x","port":80,"env":{{"A":"{}"}}}}"#,
        "a".repeat(3 << 20)
    );
    let big = sent("application/json", huge).await.unwrap();
    assert_eq!(big.status(), 413);
    let body: serde_json::Value = big.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");

    // An unknown method gets 405 with the JSON error body; a bad enum in a
    // query gets 400 naming the parameter.
    let (status, body) = berth
        .api_raw("PUT", "/apps", Some("{}".into()), Some(&berth.token))
        .await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    let (status, body) = berth.api("GET", "/deployments?status=bogus", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "status", "{body}");

    // Nothing was created by the refused requests; JSON still works.
    let (status, apps) = berth.api("GET", "/apps", None).await;
    assert_eq!(status, 200);
    assert_eq!(apps.as_array().unwrap().len(), 0, "{apps}");
    assert_eq!(
        sent("application/json", app.to_string())
            .await
            .unwrap()
            .status(),
        201
    );
}
