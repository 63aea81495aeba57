//! What one change costs as the store grows, through the real `berth`
//! binary: the time of `POST /api/v1/apps` (a new app with a domain) and of
//! `PATCH /api/v1/apps/{name}` (an env change), and from the create's
//! answer to the edge routing the new host, measured with a small store
//! and again with a big one in the same run. Issue 18's target: under
//! 5 ms per change at 10,000 apps; the ratio between the two sizes shows
//! whether a change costs in proportion to itself or to the whole store.
//!
//! Run: `cargo bench --bench changes` (apps: `BERTH_BENCH_APPS`, default
//! 2000; the first size is a quarter of it). Needs Docker, like the tests.

#[macro_use]
#[path = "results/mod.rs"]
mod results;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use support::Berth;

/// Changes timed at each size.
const ROUNDS: usize = 30;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Apps `from..to`, 16 at a time, each with its own host.
async fn fill(berth: &Berth, from: usize, to: usize) {
    futures_util::stream::iter(from..to)
        .for_each_concurrent(16, |i| async move {
            let (status, body) = berth
                .api(
                    "POST",
                    "/apps",
                    Some(
                        json!({"name": format!("app-{i:05}"), "image": "berth-bench/absent:1",
                        "port": 8080, "env": {"N": i.to_string()},
                        "domains": [{"host": format!("app-{i}.bench.test")}]}),
                    ),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        })
        .await;
}

/// Medians (ms) of creating an app, routing its host, and patching one.
async fn changes(berth: &Berth, tag: &str) -> (f64, f64, f64) {
    let (mut create, mut visible, mut patch) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let name = format!("new-{tag}-{r}");
        let host = format!("{name}.bench.test");
        let started = Instant::now();
        let (status, body) = berth
            .api(
                "POST",
                "/apps",
                Some(
                    json!({"name": name, "image": "berth-bench/absent:1", "port": 8080,
                    "domains": [{"host": host}]}),
                ),
            )
            .await;
        create.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 201, "{body}");
        // Routed (503: no replica yet) rather than unknown (404).
        let answered = Instant::now();
        let deadline = answered + Duration::from_secs(10);
        while berth.get(&host, "/").await.0 == 404 {
            assert!(Instant::now() < deadline, "{host} was never routed");
        }
        visible.push(answered.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let (status, body) = berth
            .api(
                "PATCH",
                &format!("/apps/{name}"),
                Some(json!({"env": {"ROUND": r.to_string()}})),
            )
            .await;
        patch.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{body}");
    }
    (median(create), median(visible), median(patch))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let big = env_or("BERTH_BENCH_APPS", 2000).max(8);
    let small = big / 4;
    let mut berth = Berth::start().await;
    let filled = Instant::now();
    fill(&berth, 0, small).await;
    let at_small = changes(&berth, "s").await;
    fill(&berth, small, big).await;
    let fill_time = filled.elapsed();
    let at_big = changes(&berth, "b").await;

    let mut out = String::new();
    say!(
        out,
        "one change, medians of {ROUNDS}, through the API (the store filled to {big} apps in {:.0} s):",
        fill_time.as_secs_f64()
    );
    for (apps, (create, visible, patch)) in [(small, at_small), (big, at_big)] {
        say!(
            out,
            "  {apps:>6} apps: create {create:>7.2} ms, routed at the edge {visible:>6.2} ms after, patch {patch:>7.2} ms"
        );
    }
    say!(
        out,
        "  {small} -> {big} apps: create x{:.2}, patch x{:.2} (x1.00: a change costs what it changes; target < 5 ms at 10,000 apps)",
        at_big.0 / at_small.0,
        at_big.2 / at_small.2
    );
    results::record("changes", &format!("```\n{out}```\n"));
    berth.terminate().await;
}
