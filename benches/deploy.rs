//! The deploy path against the real Docker engine, through the real
//! `berth` binary: time from the API call to the first request the new
//! version answers, route-switch latency (from the new replicas passing
//! their health gate to the first request they serve), and berth's own
//! share of a deploy of a local image (its total time less Docker calls and
//! waiting on the app), and the time from an API call that adds a domain
//! to the first request the edge routes for it.
//!
//! Run: `cargo bench --bench deploy` (rounds: `BERTH_BENCH_ROUNDS`, default 20).
//! Needs Docker and Debian's `busybox-static`, like the tests.

#[macro_use]
#[path = "results/mod.rs"]
mod results;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use support::{Berth, Image};
use time::OffsetDateTime;

/// Moments the answer of the edge changed version, as seen by a client.
type Changes = Arc<Mutex<Vec<(SystemTime, String)>>>;

/// Requests the watching client made, and how many of them failed.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
}

/// A client on one keep-alive connection asking the edge as fast as it
/// answers, noting each change of version.
fn watch_versions(berth: &Berth, tally: Arc<Tally>) -> (Changes, tokio::task::JoinHandle<()>) {
    let changes: Changes = Arc::default();
    let url = format!("http://{}/", berth.http);
    let seen = changes.clone();
    let task = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut last = String::new();
        loop {
            tally.sent.fetch_add(1, Ordering::Relaxed);
            let Ok(resp) = client.get(&url).header("host", "web.test").send().await else {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let at = SystemTime::now();
            let ok = resp.status() == 200;
            if !ok {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
            let body = resp.text().await.unwrap_or_default();
            let version = if ok {
                body.split(' ').next().unwrap_or("").to_string()
            } else {
                String::new()
            };
            if version != last {
                seen.lock().unwrap().push((at, version.clone()));
                last = version;
            }
        }
    });
    (changes, task)
}

fn first_change_to(changes: &Changes, version: &str, after: SystemTime) -> SystemTime {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((at, _)) = changes
            .lock()
            .unwrap()
            .iter()
            .find(|(at, v)| v == version && *at >= after)
        {
            return *at;
        }
        assert!(Instant::now() < deadline, "{version} never answered");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn phase_at(d: &Value, phase: &str) -> SystemTime {
    let at = d["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == phase)
        .unwrap_or_else(|| panic!("no {phase} phase: {d}"))["at"]
        .as_str()
        .unwrap();
    let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
    SystemTime::from(at)
}

/// Waits for the deployment's timing, written when its run ends.
async fn timing(berth: &Berth, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, d) = berth.api("GET", &format!("/deployments/{id}"), None).await;
        if !d["timing"].is_null() {
            return d;
        }
        assert!(Instant::now() < deadline, "no timing: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default)]
struct Samples {
    api_to_first: Vec<f64>,
    switch: Vec<f64>,
    total: Vec<f64>,
    docker: Vec<f64>,
    waiting: Vec<f64>,
    berth: Vec<f64>,
    domain_visible: Vec<f64>,
}

/// Adds a domain to the running app through the API and times the call
/// to the first request the edge routes for it, polling throughout.
async fn domain_visible(berth: &Berth, round: usize) -> f64 {
    let host = format!("added{round}.test");
    let client = reqwest::Client::new();
    let url = format!("http://{}/", berth.http);
    let patch = json!({"domains": [{"host": "web.test"}, {"host": host}]});
    let called = Instant::now();
    let poll = async {
        let deadline = called + Duration::from_secs(10);
        loop {
            let answer = client.get(&url).header("host", &host).send().await;
            if answer.is_ok_and(|r| r.status() == 200) {
                return called.elapsed();
            }
            assert!(Instant::now() < deadline, "{host} never routed");
        }
    };
    let ((status, body), seen) = tokio::join!(berth.api("PATCH", "/apps/web", Some(patch)), poll);
    assert_eq!(status, 200, "{body}");
    ms(seen)
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` passes flags like `--bench`; run only for real.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rounds: usize = std::env::var("BERTH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut berth = Berth::start_with("drain_timeout_secs = 5").await;
    let versions = [berth.image(Image::Web("v1")), berth.image(Image::Web("v2"))];
    let created = Instant::now();
    berth.deploy_web(&versions[0], 1).await;
    let first_deploy = created.elapsed();
    let tally = Arc::new(Tally::default());
    let (changes, watcher) = watch_versions(&berth, tally.clone());

    let mut s = Samples::default();
    for round in 0..rounds {
        let (image, version) = if round % 2 == 0 {
            (&versions[1], "v2")
        } else {
            (&versions[0], "v1")
        };
        berth
            .api("PATCH", "/apps/web", Some(json!({"image": image})))
            .await;
        let called = SystemTime::now();
        let (status, d) = berth.api("POST", "/apps/web/deployments", None).await;
        assert_eq!(status, 202, "{d}");
        let id = d["id"].as_str().unwrap().to_string();
        let served = first_change_to(&changes, version, called);
        let d = timing(&berth, &id).await;
        assert_eq!(d["status"], "succeeded", "{d}");
        let healthy = phase_at(&d, "healthy");
        let t = &d["timing"];
        let field = |k: &str| t[k].as_f64().unwrap();
        s.api_to_first
            .push(ms(served.duration_since(called).unwrap_or_default()));
        s.switch
            .push(ms(served.duration_since(healthy).unwrap_or_default()));
        s.total.push(field("total_ms"));
        s.docker.push(field("docker_ms"));
        s.waiting.push(field("waiting_ms"));
        s.berth.push(field("berth_ms"));
    }
    watcher.abort();
    for round in 0..rounds {
        s.domain_visible.push(domain_visible(&berth, round).await);
    }

    let mut out = String::new();
    let (sent, failed) = (
        tally.sent.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    say!(
        out,
        "deploy path, {rounds} redeploys of a local image (1 replica), medians:"
    );
    say!(
        out,
        "  first deploy, create app to deployment succeeded: {:>8.1} ms",
        ms(first_deploy)
    );
    say!(
        out,
        "  API call to first request served by the new version: {:>8.1} ms",
        median(s.api_to_first)
    );
    say!(
        out,
        "  route switch, health gate passed to first request served: {:>6.2} ms (target < 50 ms)",
        median(s.switch)
    );
    say!(
        out,
        "  route visible after an API change, domain added to first request served: {:>5.2} ms (target < 50 ms)",
        median(s.domain_visible)
    );
    say!(
        out,
        "  deployment run {:>8.1} ms = Docker calls {:.1} ms + waiting on the app {:.1} ms + berth {:.1} ms",
        median(s.total),
        median(s.docker),
        median(s.waiting),
        median(s.berth)
    );
    say!(
        out,
        "  a client polling throughout: {sent} requests, {failed} failed (target 0)"
    );
    results::record("deploy", &format!("```\n{out}```\n"));
    berth.terminate().await;
}
