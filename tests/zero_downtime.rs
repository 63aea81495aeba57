//! Zero-downtime deploys against the real Docker engine: a bounded load on
//! loopback runs through the edge while the app is redeployed and scaled;
//! not one request may fail, and long requests started before a switch
//! finish on the replica they started on.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::{Berth, Image};

/// Counts of a load run.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    slow_ok: AtomicUsize,
    /// WebSocket frames received.
    ws_frames: AtomicUsize,
    /// WebSockets that ended because the server side closed them.
    ws_closed: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// One loop of WebSockets through the edge: each stays open, counting its
/// frames, until the server side closes it (a drain deadline does), then the
/// next one opens. A refused upgrade or a socket that closes before its
/// first frame is a failure.
fn start_websockets(
    berth: &Berth,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let url = format!("ws://{}/cgi-bin/ws", berth.http);
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let mut request = url.as_str().into_client_request().unwrap();
            request
                .headers_mut()
                .insert("host", "web.test".parse().unwrap());
            let connect = tokio_tungstenite::connect_async(request);
            let mut ws = match tokio::time::timeout(Duration::from_secs(10), connect).await {
                Ok(Ok((ws, _))) => ws,
                Ok(Err(e)) => return tally.fail(format!("websocket upgrade: {e}")),
                Err(_) => return tally.fail("websocket upgrade timed out".into()),
            };
            let mut frames = 0;
            loop {
                let next = tokio::select! {
                    next = ws.next() => next,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        if stop.load(Ordering::Relaxed) { break } else { continue }
                    }
                };
                match next {
                    Some(Ok(Message::Text(t))) if t.starts_with('v') => frames += 1,
                    Some(Ok(Message::Text(t))) => tally.fail(format!("websocket frame {t:?}")),
                    Some(Ok(_)) => {}
                    // The server went away: a clean close or a reset.
                    Some(Err(_)) | None => {
                        tally.ws_closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            if frames == 0 && !stop.load(Ordering::Relaxed) {
                tally.fail("a websocket closed before its first frame".into());
            }
            tally.ws_frames.fetch_add(frames, Ordering::Relaxed);
        }
    })
}

/// Starts `workers` loops of short GETs and one loop of 2-second GETs
/// through the edge until `stop` is set.
fn start_load(
    berth: &Berth,
    workers: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for w in 0..=workers {
        let slow = w == workers;
        let url = if slow {
            format!("http://{}/cgi-bin/slow", berth.http)
        } else {
            format!("http://{}/", berth.http)
        };
        let (stop, tally) = (stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let result = client.get(&url).header("host", "web.test").send().await;
                match result {
                    Ok(resp) if resp.status() == 200 => {
                        let body = resp.text().await.unwrap_or_default();
                        if slow && body.trim() == "slow done" {
                            tally.slow_ok.fetch_add(1, Ordering::Relaxed);
                        } else if !slow && body.starts_with('v') {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tally.fail(format!("bad body {body:?}"));
                        }
                    }
                    Ok(resp) => tally.fail(format!("status {}", resp.status())),
                    Err(e) => tally.fail(format!("error {e}")),
                }
            }
        }));
    }
    tasks
}

async fn finish_load(tasks: Vec<tokio::task::JoinHandle<()>>, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn ten_redeploys_under_load_fail_no_request() {
    // Long requests take 2 s: the drain deadline gives them that, and closes
    // the WebSockets that would otherwise hold an old replica forever.
    let mut berth = Berth::start_with("drain_timeout_secs = 4").await;
    let images = [berth.image(Image::Web("v1")), berth.image(Image::Web("v2"))];
    let sick = berth.image(Image::Unhealthy);
    berth.deploy_web(&images[0], 2).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut load = start_load(&berth, 4, stop.clone(), tally.clone());
    load.push(start_websockets(&berth, stop.clone(), tally.clone()));
    let mut v2_deployment = String::new();
    for i in 0..10 {
        if i == 9 {
            // The last one is a manual rollback from v1 (deploy 8) to the v2
            // of deploy 7.
            let to = v2_deployment.as_str();
            let (status, d) = berth
                .api(
                    "POST",
                    "/apps/web/rollback",
                    Some(json!({"deployment_id": to})),
                )
                .await;
            assert_eq!(status, 202, "{d}");
            let d = berth.wait_deployment(d["id"].as_str().unwrap()).await;
            assert_eq!(d["status"], "succeeded", "rollback: {d}");
            continue;
        }
        let (image, expect) = if i == 5 {
            (sick.as_str(), "failed")
        } else {
            (images[i % 2].as_str(), "succeeded")
        };
        let (status, _) = berth
            .api("PATCH", "/apps/web", Some(json!({"image": image})))
            .await;
        assert_eq!(status, 200);
        let d = berth.deploy("web").await;
        assert_eq!(d["status"], expect, "deploy {i}: {d}");
        if i == 7 {
            v2_deployment = d["id"].as_str().unwrap().to_string();
        }
    }
    // Let the last switch drain, then stop the load.
    berth.wait_containers(2).await;
    finish_load(load, &stop).await;
    // What the deployment logs measured: route switch and drain times.
    let (_, list) = berth.api("GET", "/apps/web/deployments", None).await;
    for d in list
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "succeeded")
        .take(3)
    {
        let (_, log) = berth
            .api(
                "GET",
                &format!("/deployments/{}/logs", d["id"].as_str().unwrap()),
                None,
            )
            .await;
        for line in log["lines"].as_array().unwrap() {
            let line = line.as_str().unwrap();
            if line.contains("routes switched") || line.contains("drained in") {
                println!("{line}");
            }
        }
    }

    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {failures:?}\n{}",
        failures.len(),
        berth.log()
    );
    let ok = tally.ok.load(Ordering::Relaxed);
    let slow = tally.slow_ok.load(Ordering::Relaxed);
    let frames = tally.ws_frames.load(Ordering::Relaxed);
    let closed = tally.ws_closed.load(Ordering::Relaxed);
    println!(
        "served during 10 redeploys: {ok} short, {slow} long, \
         {frames} websocket frames over {closed} closed websockets"
    );
    assert!(
        ok > 100 && slow > 3 && frames > 20,
        "the load ran: {ok} short, {slow} long, {frames} frames"
    );
    // Each switch retired the replica a websocket was on: at the drain
    // deadline the edge closed it instead of waiting for it.
    assert!(
        closed >= 5,
        "websockets closed at drain deadlines: {closed}"
    );
    assert!(
        berth.log().contains("tunnels closed"),
        "the edge closed the tunnels itself"
    );
    // And the v2 replicas the rollback brought back serve.
    let bodies = berth.answers("web.test", 4).await;
    assert!(bodies.iter().all(|b| b.starts_with("v2 ")), "{bodies:?}");
}

#[tokio::test]
async fn scaling_under_load_fails_no_request() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    berth.deploy_web(&v1, 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let load = start_load(&berth, 4, stop.clone(), tally.clone());
    for replicas in [4, 2] {
        berth
            .api("PATCH", "/apps/web", Some(json!({"replicas": replicas})))
            .await;
        assert_eq!(berth.deploy("web").await["status"], "succeeded");
        berth.wait_containers(replicas).await;
        let (_, app) = berth.api("GET", "/apps/web", None).await;
        assert_eq!(app["serving_replicas"], replicas);
    }
    finish_load(load, &stop).await;
    let failures = tally.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:?}\n{}", berth.log());
    assert!(tally.ok.load(Ordering::Relaxed) > 50);
}

#[tokio::test]
async fn rolling_batches_under_load_and_a_failed_middle_batch_rolls_back() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    let first_only = berth.image(Image::ReadyOnFirst);
    berth
        .create_app(
            json!({"name": "web", "image": v1, "port": 8080, "replicas": 3,
            "batch_size": 1, "domains": [{"host": "web.test"}]}),
        )
        .await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let load = start_load(&berth, 4, stop.clone(), tally.clone());

    // Three steps of one replica each.
    berth
        .api("PATCH", "/apps/web", Some(json!({"image": v2})))
        .await;
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let (_, log) = berth
        .api(
            "GET",
            &format!("/deployments/{}/logs", d["id"].as_str().unwrap()),
            None,
        )
        .await;
    let steps = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l.as_str().unwrap().contains("retiring 1 old one(s)"))
        .count();
    assert_eq!(
        steps, 2,
        "two intermediate steps, then the final switch: {log}"
    );
    berth.wait_containers(3).await;

    // The second batch fails its gate after the first already serves and one
    // v2 replica was retired: rolled back, and v2 returns at full count.
    let (status, body) = berth
        .api(
            "PATCH",
            "/apps/web",
            Some(json!({"image": first_only,
            "health_check": {"type": "http", "path": "/ready", "retries": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = berth.deploy("web").await;
    assert_eq!(d["status"], "rolled_back", "{d}");
    let (_, list) = berth.api("GET", "/apps/web/deployments", None).await;
    let rollback = berth.wait_deployment(list[0]["id"].as_str().unwrap()).await;
    assert_eq!(rollback["trigger"], "rollback");
    assert_eq!(rollback["status"], "succeeded", "{rollback}");
    berth.wait_containers(3).await;
    finish_load(load, &stop).await;

    let failures = tally.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:?}\n{}", berth.log());
    let bodies = berth.answers("web.test", 6).await;
    assert!(bodies.iter().all(|b| b.starts_with("v2 ")), "{bodies:?}");
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["serving_replicas"], 3, "{app}");
}
