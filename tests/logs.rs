//! Live container logs end to end against the real Docker engine:
//! `GET /apps/{name}/logs?follow=true` streams every replica's lines as
//! Server-Sent Events tagged with the replica, picks up a redeploy's new
//! replicas, and ends with an `end` event when the app is deleted or berth
//! shuts down; bad parameters answer 400 naming the parameter.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::{Berth, Image};

/// One Server-Sent Event: its name (`message` when unnamed) and data.
#[derive(Debug)]
struct SseEvent {
    name: String,
    data: Value,
}

/// A Server-Sent Events stream being read.
struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Sse {
    async fn open(berth: &Berth, path: &str) -> Sse {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/api/v1{path}", berth.admin))
            .bearer_auth(&berth.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream closed.
    /// Panics after `secs`.
    async fn next(&mut self, secs: u64) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = n.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap();
                return Some(SseEvent { name, data });
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("no event in time");
            match chunk {
                Some(chunk) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => return None,
            }
        }
    }

    /// Reads events until `done` says enough; returns them all.
    async fn until(
        &mut self,
        secs: u64,
        mut done: impl FnMut(&[SseEvent]) -> bool,
    ) -> Vec<SseEvent> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs() + 1;
            assert!(Instant::now() < deadline, "gave up; saw {seen:#?}");
            match self.next(left).await {
                Some(e) => seen.push(e),
                None => panic!("the stream closed early; saw {seen:#?}"),
            }
        }
        seen
    }
}

/// Containers (short id → replica index) whose `tick <version>` lines
/// came, checking each line names its own container.
fn tickers(events: &[SseEvent], version: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for e in events.iter().filter(|e| e.name == "message") {
        let line = e.data["line"].as_str().unwrap();
        let container = e.data["container"].as_str().unwrap();
        if let Some(rest) = line.strip_prefix(&format!("tick {version} ")) {
            // The hostname in the line is the container's short id.
            assert!(rest.starts_with(container), "{e:?}");
            assert_eq!(e.data["stream"], "stdout", "{e:?}");
            assert!(e.data["at"].as_str().unwrap().starts_with("20"), "{e:?}");
            out.insert(container.to_string(), e.data["replica"].as_u64().unwrap());
        }
    }
    out
}

#[tokio::test]
async fn follows_every_replica_through_a_redeploy_until_the_app_is_deleted() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Chatty("v1"));
    let v2 = berth.image(Image::Chatty("v2"));
    berth.deploy_web(&v1, 2).await;

    let mut sse = Sse::open(&berth, "/apps/web/logs?follow=true&tail=3").await;
    let seen = sse
        .until(20, |s| {
            tickers(s, "v1").len() == 2 && s.iter().any(|e| e.data["stream"] == "stderr")
        })
        .await;
    let first = tickers(&seen, "v1");
    let replicas: HashSet<u64> = first.values().copied().collect();
    assert_eq!(replicas, HashSet::from([0, 1]), "{seen:#?}");
    let joined: Vec<_> = seen
        .iter()
        .filter(|e| e.name == "replica" && e.data["state"] == "following")
        .collect();
    assert_eq!(joined.len(), 2, "{seen:#?}");
    assert!(joined
        .iter()
        .all(|e| e.data["name"].as_str().unwrap().starts_with("berth-")));
    let warn = seen.iter().find(|e| e.data["stream"] == "stderr").unwrap();
    assert!(
        warn.data["line"].as_str().unwrap().starts_with("warn v1 "),
        "{warn:?}"
    );

    // A redeploy: the new replicas' lines come in the same stream, the
    // old replicas' parts end.
    let (status, _) = berth
        .api("PATCH", "/apps/web", Some(json!({"image": v2})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
    let seen = sse
        .until(30, |s| {
            tickers(s, "v2").len() == 2
                && s.iter()
                    .filter(|e| e.name == "replica" && e.data["state"] == "ended")
                    .count()
                    == 2
        })
        .await;
    let second = tickers(&seen, "v2");
    assert!(
        second.keys().all(|c| !first.contains_key(c)),
        "{first:?} {second:?}"
    );
    let ended: HashSet<&str> = seen
        .iter()
        .filter(|e| e.name == "replica" && e.data["state"] == "ended")
        .map(|e| e.data["container"].as_str().unwrap())
        .collect();
    assert_eq!(
        ended,
        first.keys().map(String::as_str).collect::<HashSet<_>>()
    );

    // Deleting the app ends the stream with its reason, then it closes.
    let (status, _) = berth.api("DELETE", "/apps/web", None).await;
    assert_eq!(status, 204);
    let seen = sse.until(20, |s| s.iter().any(|e| e.name == "end")).await;
    let end = seen.last().unwrap();
    assert_eq!(end.name, "end");
    assert!(
        end.data["reason"].as_str().unwrap().contains("deleted"),
        "{end:?}"
    );
    assert!(sse.next(10).await.is_none(), "nothing after the end");
}

#[tokio::test]
async fn bad_parameters_are_named_and_shutdown_ends_the_stream() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Chatty("v1"));
    berth.deploy_web(&v1, 1).await;

    for (query, field) in [
        ("follow=yes", "follow"),
        ("follow=true&since=yesterday", "since"),
        ("since=-1", "since"),
        ("tail=ten", "tail"),
        ("tail=0", "tail"),
        ("follow=true&tail=10001", "tail"),
    ] {
        let (status, body) = berth
            .api("GET", &format!("/apps/web/logs?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, _) = berth.api("GET", "/apps/nope/logs?follow=true", None).await;
    assert_eq!(status, 404);

    // Without follow: JSON as before; since and tail apply.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, logs) = berth.api("GET", "/apps/web/logs?tail=2", None).await;
    assert_eq!(status, 200, "{logs}");
    let containers = logs["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0]["lines"].as_array().unwrap().len(),
        2,
        "{logs}"
    );
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let (status, logs) = berth
        .api("GET", &format!("/apps/web/logs?since={later}"), None)
        .await;
    assert_eq!(status, 200, "{logs}");
    assert_eq!(logs["containers"][0]["lines"], json!([]), "{logs}");
    let (status, logs) = berth
        .api(
            "GET",
            "/apps/web/logs?since=2000-01-01T00:00:00Z&tail=10000",
            None,
        )
        .await;
    assert_eq!(status, 200, "{logs}");
    assert!(
        logs["containers"][0]["lines"].as_array().unwrap().len() >= 4,
        "{logs}"
    );

    // tail=0: only lines written from now on.
    let mut sse = Sse::open(&berth, "/apps/web/logs?follow=true&tail=0").await;
    let seen = sse.until(10, |s| !tickers(s, "v1").is_empty()).await;
    let first_tick = seen.iter().find(|e| e.name == "message").unwrap();
    let n: u64 = first_tick.data["line"]
        .as_str()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 5, "an old line came: {first_tick:?}");

    // A restarted replica (same container) comes back into the stream
    // after its last line, without repeating what was already sent.
    let container = first_tick.data["container"].as_str().unwrap().to_string();
    let before = sse
        .until(5, |s| s.iter().filter(|e| e.name == "message").count() >= 4)
        .await;
    support::docker(&["restart", "-t", "0", &container]);
    let seen = sse
        .until(30, |s| {
            s.iter().any(|e| {
                // Exactly the new process's second line: the old one's
                // `… 10`, `… 11` also start with `… 1`.
                e.name == "message" && e.data["line"] == format!("tick v1 {container} 1")
            }) && s
                .iter()
                .any(|e| e.name == "replica" && e.data["state"] == "following")
        })
        .await;
    let changes: Vec<_> = seen
        .iter()
        .filter(|e| e.name == "replica")
        .map(|e| {
            (
                e.data["state"].as_str().unwrap(),
                e.data["container"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("ended", container.as_str()),
            ("following", container.as_str())
        ],
        "{seen:#?}"
    );
    let mut sent: Vec<String> = before
        .iter()
        .chain(&seen)
        .filter(|e| e.name == "message")
        .map(|e| format!("{} {} {}", e.data["at"], e.data["stream"], e.data["line"]))
        .collect();
    let count = sent.len();
    sent.sort_unstable();
    sent.dedup();
    assert_eq!(sent.len(), count, "a line came twice: {seen:#?}");
    let restarted = seen
        .iter()
        .any(|e| e.data["line"] == format!("tick v1 {container} 0"));
    assert!(restarted, "the restarted process's first line: {seen:#?}");

    // The cap: 64 streams at once, then 503 with a reason.
    let mut held = Vec::new();
    for _ in 1..64 {
        held.push(Sse::open(&berth, "/apps/web/logs?follow=true&tail=0").await);
    }
    let (status, body) = berth.api("GET", "/apps/web/logs?follow=true", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("64"),
        "{body}"
    );
    drop(held);

    // Shutdown ends the stream with its reason.
    berth.signal_term();
    let seen = sse.until(15, |s| s.iter().any(|e| e.name == "end")).await;
    assert!(
        seen.last().unwrap().data["reason"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{seen:#?}"
    );
    assert!(sse.next(10).await.is_none());
    assert!(berth.wait_exit().await, "{}", berth.log());
}
