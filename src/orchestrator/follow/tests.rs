//! Unit tests of the follower's queue: bounds, drops, the end.

use std::sync::OnceLock;

use super::feed::*;
use super::*;

fn line(n: usize, text: &str) -> FollowEvent {
    FollowEvent::Line(ReplicaLine {
        replica: Some(0),
        container: format!("c{n}"),
        deployment: "d".into(),
        stream: "stdout",
        line: text.into(),
        at: None,
    })
}

fn setup(events: usize, bytes: usize) -> (Feed, LogFollow, Arc<OnceLock<String>>) {
    let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
    queue(permit, CancellationToken::new(), events, bytes)
}

#[tokio::test]
async fn a_slow_reader_loses_lines_not_memory_and_is_told() {
    let (feed, mut follow, reason) = setup(4, 10_000);
    let target = Target {
        id: "0123456789abcdef".into(),
        name: "berth-x-web-0".into(),
        replica: Some(1),
        deployment: "d1".into(),
    };
    let mut reader = ReplicaReader::new(target, None, feed.clone());
    for i in 0..10 {
        reader.line(false, &format!("2026-12-05T10:00:0{i}Z line {i}"));
    }
    // Four fit; six were dropped and counted.
    assert_eq!(reader.skipped, 6);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(follow.next().await.unwrap());
    }
    // Room again: the notice goes first, then the next line.
    reader.line(true, "2026-12-05T10:00:10Z after");
    let _ = reason.set("the app was deleted".into());
    drop(reader);
    drop(feed);
    let rest: Vec<_> = follow.by_ref().collect().await;
    match &got[0] {
        FollowEvent::Line(l) => {
            assert_eq!(l.line, "line 0");
            assert_eq!(l.container, "0123456789ab");
            assert_eq!(l.replica, Some(1));
            assert_eq!(l.at.as_deref(), Some("2026-12-05T10:00:00Z"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&rest[0], FollowEvent::Skipped(s) if s.lines == 6),
        "{rest:?}"
    );
    assert!(
        matches!(&rest[1], FollowEvent::Line(l) if l.line == "after" && l.stream == "stderr"),
        "{rest:?}"
    );
    assert!(
        matches!(&rest[2], FollowEvent::End(r) if r == "the app was deleted"),
        "{rest:?}"
    );
    assert_eq!(rest.len(), 3);
    assert!(follow.next().await.is_none());
}

#[tokio::test]
async fn the_byte_budget_bounds_the_queue() {
    let (feed, mut follow, _) = setup(1000, 2 * (128 + 100));
    let big = "x".repeat(100);
    assert!(feed.offer(line(0, &big)));
    assert!(feed.offer(line(1, &big)));
    assert!(!feed.offer(line(2, &big)), "over the byte budget");
    follow.next().await.unwrap();
    assert!(feed.offer(line(3, &big)), "room again once read");
    drop(feed);
    let rest: Vec<_> = follow.collect().await;
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert!(matches!(&rest[1], FollowEvent::Line(l) if l.container == "c3"));
    assert!(matches!(&rest[2], FollowEvent::End(r) if r == "the log stream ended"));
}

#[tokio::test]
async fn lines_before_the_floor_are_left_out() {
    let (feed, mut follow, _) = setup(10, 10_000);
    let target = Target {
        id: "abc".into(),
        name: "n".into(),
        replica: None,
        deployment: "d".into(),
    };
    let mut reader = ReplicaReader::new(
        target,
        split_timestamp("2026-12-05T10:00:05Z x").map(|(at, _)| at),
        feed,
    );
    reader.line(false, "2026-12-05T10:00:04.999Z old");
    reader.line(false, "2026-12-05T10:00:05Z new");
    reader.line(false, "no timestamp: kept, at the last time");
    drop(reader);
    let got: Vec<_> = follow.by_ref().collect().await;
    let lines: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            FollowEvent::Line(l) => Some((l.line.as_str(), l.at.clone())),
            _ => None,
        })
        .collect();
    let at = Some("2026-12-05T10:00:05Z".to_string());
    assert_eq!(
        lines,
        [
            ("new", at.clone()),
            ("no timestamp: kept, at the last time", at)
        ]
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_the_follower() {
    let stop = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(1));
    let permit = permits.clone().try_acquire_owned().unwrap();
    let (feed, follow, _) = queue(permit, stop.clone(), 4, 1000);
    assert_eq!(permits.available_permits(), 0);
    drop(follow);
    assert!(stop.is_cancelled());
    assert_eq!(permits.available_permits(), 1, "the place is free again");
    assert!(!feed.offer(line(0, "x")));
}

#[test]
fn ended_streams_are_remembered_within_a_bound() {
    let start = tokio::time::Instant::now();
    let mut ended = HashMap::new();
    let mut resume = HashMap::new();
    for i in 0..REMEMBERED + 5 {
        let id = format!("c{i}");
        ended.insert(id.clone(), start + Duration::from_secs(i as u64));
        resume.insert(id, OffsetDateTime::UNIX_EPOCH);
    }
    forget_oldest(&mut ended, &mut resume);
    assert_eq!(ended.len(), REMEMBERED);
    assert_eq!(resume.len(), REMEMBERED);
    assert!(!ended.contains_key("c4") && !resume.contains_key("c4"));
    assert!(ended.contains_key("c5") && resume.contains_key("c5"));
}
