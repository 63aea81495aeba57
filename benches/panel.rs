//! The panel under a big store, through the real `berth` binary: time to
//! first byte of the overview and an app's page with 1,000 apps and
//! 10,000 deployments in the store (target: under 20 ms), the bytes each
//! page sends with its stylesheet and scripts (target: under 100 KB), and
//! berth's RSS with 20 signed-in people following a live deployment log,
//! against its RSS before they came.
//!
//! Run: `cargo bench --bench panel` (apps: `BERTH_BENCH_APPS`, default
//! 1000; deployments per app: `BERTH_BENCH_DEPLOYS`, default 10). Needs
//! Docker and Debian's `busybox-static`, like the tests.

#[macro_use]
#[path = "results/mod.rs"]
mod results;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::{Berth, Image};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The owner's session cookie, from setup with the code berth wrote.
async fn sign_in(berth: &Berth, client: &reqwest::Client) -> String {
    let code = std::fs::read_to_string(berth.data_dir().join("setup-code")).expect("a setup code");
    let resp = client
        .post(format!("http://{}/api/v1/setup", berth.admin))
        .json(&json!({"setup_code": code.trim(), "username": "owner", "password": "a long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "setup");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    cookie
}

/// Time to first byte (ms) of `path` over `rounds` requests, and the bytes
/// of the page and of the assets it links.
async fn page(
    berth: &Berth,
    client: &reqwest::Client,
    cookie: &str,
    path: &str,
    rounds: usize,
) -> (Vec<f64>, usize) {
    let url = format!("http://{}{path}", berth.admin);
    let mut ttfb = Vec::with_capacity(rounds);
    let mut body = String::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let resp = client
            .get(&url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        ttfb.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(resp.status(), 200, "{path}");
        body = resp.text().await.unwrap();
    }
    let mut bytes = body.len();
    for asset in body
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect::<std::collections::BTreeSet<_>>()
    {
        let a = client
            .get(format!("http://{}{asset}", berth.admin))
            .send()
            .await
            .unwrap();
        bytes += a.bytes().await.unwrap().len();
    }
    (ttfb, bytes)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let apps = env_or("BERTH_BENCH_APPS", 1000);
    let per_app = env_or("BERTH_BENCH_DEPLOYS", 10);
    let mut berth = Berth::start_with("concurrency = 16\nrollback_window = 10").await;
    let client = reqwest::Client::new();
    let cookie = sign_in(&berth, &client).await;

    // 1,000 apps in 10 projects, 10 deployments each: their image is not
    // there and cannot be pulled, so each deployment ends `failed` fast.
    let filled = Instant::now();
    for p in 0..10 {
        berth
            .api(
                "POST",
                "/projects",
                Some(json!({"name": format!("team-{p}")})),
            )
            .await;
    }
    futures_util::stream::iter(0..apps)
        .for_each_concurrent(16, |i| {
            let berth = &berth;
            async move {
                let (status, body) = berth
                    .api(
                        "POST",
                        "/apps",
                        Some(json!({"name": format!("app-{i:04}"), "project": format!("team-{}", i % 10),
                            "image": "berth-bench/absent:1", "port": 8080,
                            "domains": [{"host": format!("app-{i}.bench.test")}]})),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        })
        .await;
    // Each app's deployments are queued one after the other: a newer one
    // supersedes the one waiting, so they end at once; the last is
    // cancelled. Every one stays in the store.
    futures_util::stream::iter(0..apps)
        .for_each_concurrent(16, |i| {
            let berth = &berth;
            async move {
                let mut last = String::new();
                for _ in 0..per_app {
                    let (status, body) = berth
                        .api("POST", &format!("/apps/app-{i:04}/deployments"), None)
                        .await;
                    assert_eq!(status, 202, "{body}");
                    last = body["id"].as_str().unwrap_or_default().to_string();
                }
                berth
                    .api("POST", &format!("/deployments/{last}/cancel"), None)
                    .await;
            }
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, queued) = berth.api("GET", "/deployments?status=queued", None).await;
        let (_, running) = berth.api("GET", "/deployments?status=running", None).await;
        let busy: Vec<Value> = [queued, running]
            .iter()
            .filter_map(Value::as_array)
            .flatten()
            .cloned()
            .collect();
        if busy.is_empty() {
            break;
        }
        for d in busy {
            let id = d["id"].as_str().unwrap_or_default();
            berth
                .api("POST", &format!("/deployments/{id}/cancel"), None)
                .await;
        }
        assert!(Instant::now() < deadline, "deployments did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fill = filled.elapsed();

    let rounds = 50;
    let (overview, overview_bytes) = page(&berth, &client, &cookie, "/", rounds).await;
    let middle = format!("/apps/app-{:04}", apps / 2);
    let (app, app_bytes) = page(&berth, &client, &cookie, &middle, rounds).await;

    // 20 people following a live deployment log: an app whose replica
    // never listens stays in its health gate (20 s).
    let silent = berth.image(Image::Silent);
    berth
        .create_app(json!({"name": "slow", "image": silent, "port": 8080}))
        .await;
    let pid = berth.child.as_ref().map(|c| c.id()).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mib(pid);
    let (_, d) = berth.api("POST", "/apps/slow/deployments", None).await;
    let id = d["id"].as_str().unwrap_or_default().to_string();
    let mut followers = Vec::new();
    for _ in 0..20 {
        let resp = client
            .get(format!(
                "http://{}/api/v1/deployments/{id}/logs?follow=true",
                berth.admin
            ))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut stream = resp.bytes_stream();
        followers.push(tokio::spawn(async move {
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let following = rss_mib(pid);
    let (_, _) = berth
        .api("POST", &format!("/deployments/{id}/cancel"), None)
        .await;
    let mut streamed = 0;
    for f in followers {
        streamed += tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
    }

    let mut out = String::new();
    say!(out, "panel with {apps} apps and {} deployments in the store (filled in {:.0} s through the API):", apps * per_app, fill.as_secs_f64());
    say!(
        out,
        "  overview: time to first byte p50 {:.1} ms, p95 {:.1} ms (target < 20 ms); {} KB with its assets (target < 100 KB)",
        percentile(overview.clone(), 0.5),
        percentile(overview, 0.95),
        overview_bytes / 1024
    );
    say!(
        out,
        "  app page: time to first byte p50 {:.1} ms, p95 {:.1} ms (target < 20 ms); {} KB with its assets (target < 100 KB)",
        percentile(app.clone(), 0.5),
        percentile(app, 0.95),
        app_bytes / 1024
    );
    say!(
        out,
        "  RSS {:.1} MiB before, {:.1} MiB with 20 people following a live deployment log ({} bytes streamed to them)",
        idle,
        following,
        streamed
    );
    results::record("panel", &format!("```\n{out}```\n"));
    berth.terminate().await;
}
