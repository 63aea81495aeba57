//! Unit tests of the HTTP/1.1 front end.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::io::{Deadline, TIMED_OUT};

#[tokio::test(start_paused = true)]
async fn a_deadline_times_each_wait_from_its_own_start() {
    let (mut near, mut far) = tokio::io::duplex(64);
    let mut wait = Deadline::new();
    let mut buf = BytesMut::new();
    let minute = Duration::from_secs(60);
    far.write_all(b"x").await.unwrap();
    assert_eq!(wait.read(&mut near, &mut buf, 16, minute).await.unwrap(), 1);
    // A wait that starts 50 s later ends 60 s after its own start, not
    // at the first wait's deadline.
    tokio::time::advance(Duration::from_secs(50)).await;
    let start = tokio::time::Instant::now();
    let err = wait
        .read(&mut near, &mut buf, 16, minute)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TIMED_OUT);
    let waited = start.elapsed();
    assert!(
        waited >= minute && waited < minute + Duration::from_secs(1),
        "{waited:?}"
    );
    // A shorter wait after a longer one is not held to the longer one.
    let start = tokio::time::Instant::now();
    let short = Duration::from_secs(5);
    assert!(wait.read(&mut near, &mut buf, 16, short).await.is_err());
    let waited = start.elapsed();
    assert!(
        waited >= short && waited < short + Duration::from_secs(1),
        "{waited:?}"
    );
    // Data arriving in time is read.
    far.write_all(b"yz").await.unwrap();
    assert_eq!(wait.read(&mut near, &mut buf, 16, short).await.unwrap(), 2);
    assert_eq!(&buf[..], b"xyz");
}
