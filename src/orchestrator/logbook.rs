//! Deployment logs: every deployment writes what it does (phases, probes,
//! errors) to a bounded log that is streamed live to followers while it
//! runs and kept in the store when it ends (oldest lines dropped first).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::lock;

/// Most lines one deployment log keeps.
pub const MAX_LINES: usize = 2000;
/// Most bytes one deployment log keeps.
pub const MAX_BYTES: usize = 256 * 1024;
/// Lines a slow follower may lag behind before it skips ahead.
const FOLLOW_BUFFER: usize = 1024;

/// The log of one running deployment.
pub struct DeployLog {
    lines: Mutex<(VecDeque<String>, usize)>,
    tx: broadcast::Sender<String>,
}

impl DeployLog {
    fn new() -> Self {
        Self {
            lines: Mutex::new((VecDeque::new(), 0)),
            tx: broadcast::channel(FOLLOW_BUFFER).0,
        }
    }

    /// Appends a timestamped line.
    pub fn push(&self, text: &str) {
        let at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let line = format!("{at} {text}");
        let mut guard = lock(&self.lines);
        let (lines, bytes) = &mut *guard;
        *bytes += line.len();
        lines.push_back(line.clone());
        while lines.len() > MAX_LINES || *bytes > MAX_BYTES {
            match lines.pop_front() {
                Some(old) => *bytes -= old.len(),
                None => break,
            }
        }
        // Sent under the lock, so a follower's snapshot + subscription
        // (also under the lock) neither misses nor repeats a line.
        let _ = self.tx.send(line);
    }

    /// The lines so far and a receiver of the lines to come.
    pub fn follow(&self) -> (Vec<String>, broadcast::Receiver<String>) {
        let guard = lock(&self.lines);
        (guard.0.iter().cloned().collect(), self.tx.subscribe())
    }

    /// All lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).0.iter().cloned().collect()
    }
}

/// The logs of the deployments that are queued or running.
#[derive(Default)]
pub struct Logbook {
    open: Mutex<HashMap<String, Arc<DeployLog>>>,
}

impl Logbook {
    /// Opens the log of a deployment.
    pub fn open(&self, id: &str) -> Arc<DeployLog> {
        lock(&self.open)
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(DeployLog::new()))
            .clone()
    }

    /// The open log of a deployment, if it is still queued or running.
    pub fn get(&self, id: &str) -> Option<Arc<DeployLog>> {
        lock(&self.open).get(id).cloned()
    }

    /// Closes a log: followers' streams end; returns its lines.
    pub fn close(&self, id: &str) -> Vec<String> {
        lock(&self.open)
            .remove(id)
            .map(|log| log.lines())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_bounded_oldest_first() {
        let log = DeployLog::new();
        for i in 0..MAX_LINES + 10 {
            log.push(&format!("line {i}"));
        }
        let lines = log.lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert!(lines[0].ends_with("line 10"));
        let big = "x".repeat(100 * 1024);
        for _ in 0..5 {
            log.push(&big);
        }
        let total: usize = log.lines().iter().map(String::len).sum();
        assert!(total <= MAX_BYTES);
    }

    #[tokio::test]
    async fn followers_get_the_past_then_the_future_then_the_end() {
        let book = Logbook::default();
        let log = book.open("d1");
        log.push("one");
        let (past, mut rx) = log.follow();
        log.push("two");
        assert_eq!(past.len(), 1);
        assert!(rx.recv().await.unwrap().ends_with("two"));
        drop(log);
        assert_eq!(book.close("d1").len(), 2);
        assert!(
            rx.recv().await.is_err(),
            "the stream ends when the log closes"
        );
    }
}
