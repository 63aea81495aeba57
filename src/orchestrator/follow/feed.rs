//! What a log follower receives and the bounded queue it comes through:
//! writers never wait (an event that does not fit is dropped), a byte
//! budget bounds the lines waiting, and the reading end says why the
//! stream ended once every writer is gone. [`ReplicaReader`] turns one
//! replica's lines into events on their way in.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::super::logline::split_timestamp;

/// One line a replica wrote.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReplicaLine {
    /// The replica's index within its deployment.
    pub replica: Option<u32>,
    /// The container's short id (12 hex digits).
    pub container: String,
    /// The deployment that started the replica.
    pub deployment: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The line, without its timestamp and newline.
    pub line: String,
    /// When the replica wrote it (RFC 3339, from Docker).
    pub at: Option<String>,
}

/// A replica joining the stream or leaving it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReplicaChange {
    /// The replica's index within its deployment.
    pub replica: Option<u32>,
    /// The container's short id.
    pub container: String,
    /// The container's name.
    pub name: String,
    /// The deployment that started the replica.
    pub deployment: String,
    /// `following` (its lines come) or `ended` (it stopped or went away).
    pub state: &'static str,
}

/// Lines of a replica dropped because the reader did not keep up.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Skipped {
    /// The replica's short container id.
    pub container: String,
    /// How many lines were dropped.
    pub lines: u64,
}

/// What a follower receives.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    /// A line.
    Line(ReplicaLine),
    /// A replica joined or left.
    Replica(ReplicaChange),
    /// Lines were dropped.
    Skipped(Skipped),
    /// The stream ends, for this reason; nothing comes after.
    End(String),
}

impl FollowEvent {
    /// What the event counts against a follower's byte budget.
    fn cost(&self) -> usize {
        128 + match self {
            FollowEvent::Line(l) => l.line.len(),
            _ => 0,
        }
    }
}

/// A byte budget shared by a follower's writers and its reader.
#[derive(Debug)]
pub(super) struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::SeqCst);
    }
}

/// The writing end of a follower's queue; never waits.
#[derive(Clone)]
pub(super) struct Feed {
    tx: mpsc::Sender<FollowEvent>,
    budget: Arc<Budget>,
}

impl Feed {
    /// Queues `event` if the queue has room; false when it was dropped.
    pub(super) fn offer(&self, event: FollowEvent) -> bool {
        let cost = event.cost();
        if !self.budget.take(cost) {
            return false;
        }
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                self.budget.give(cost);
                false
            }
        }
    }
}

/// A live stream of an app's replicas' output; dropping it stops the
/// follower. Its last item is always [`FollowEvent::End`].
pub struct LogFollow {
    rx: mpsc::Receiver<FollowEvent>,
    budget: Arc<Budget>,
    reason: Arc<OnceLock<String>>,
    ended: bool,
    _permit: OwnedSemaphorePermit,
    _stop: DropGuard,
}

impl futures_util::Stream for LogFollow {
    type Item = FollowEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FollowEvent>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                self.budget.give(event.cost());
                Poll::Ready(Some(event))
            }
            Poll::Ready(None) => {
                self.ended = true;
                let reason = self.reason.get().cloned();
                Poll::Ready(Some(FollowEvent::End(
                    reason.unwrap_or_else(|| "the log stream ended".into()),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A queue, the stream reading it and the switch that ends its writers.
pub(super) fn queue(
    permit: OwnedSemaphorePermit,
    stop: CancellationToken,
    events: usize,
    bytes: usize,
) -> (Feed, LogFollow, Arc<OnceLock<String>>) {
    let (tx, rx) = mpsc::channel(events);
    let budget = Arc::new(Budget {
        used: AtomicUsize::new(0),
        max: bytes,
    });
    let reason = Arc::new(OnceLock::new());
    let follow = LogFollow {
        rx,
        budget: budget.clone(),
        reason: reason.clone(),
        ended: false,
        _permit: permit,
        _stop: stop.drop_guard(),
    };
    (Feed { tx, budget }, follow, reason)
}

/// A running container of the app.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) replica: Option<u32>,
    pub(super) deployment: String,
}

impl Target {
    pub(super) fn short(&self) -> String {
        self.id.chars().take(12).collect()
    }

    pub(super) fn change(&self, state: &'static str) -> FollowEvent {
        FollowEvent::Replica(ReplicaChange {
            replica: self.replica,
            container: self.short(),
            name: self.name.clone(),
            deployment: self.deployment.clone(),
            state,
        })
    }
}

/// One replica's lines on their way into a follower's queue.
pub(super) struct ReplicaReader {
    pub(super) target: Target,
    pub(super) short: String,
    /// Lines written before this are left out.
    not_before: Option<OffsetDateTime>,
    /// When the last line was written.
    pub(super) last: Option<OffsetDateTime>,
    /// Lines dropped since the last one queued.
    pub(super) skipped: u64,
    pub(super) feed: Feed,
}

impl ReplicaReader {
    /// A reader of `target`'s lines written at or after `not_before`.
    pub(super) fn new(target: Target, not_before: Option<OffsetDateTime>, feed: Feed) -> Self {
        Self {
            short: target.short(),
            target,
            not_before,
            last: None,
            skipped: 0,
            feed,
        }
    }

    /// Queues one line (its timestamp first), or counts it as dropped.
    pub(super) fn line(&mut self, stderr: bool, raw: &str) {
        let (at, text) = match split_timestamp(raw) {
            Some((at, text)) => (Some(at), text),
            None => (self.last, raw),
        };
        if let (Some(at), Some(floor)) = (at, self.not_before) {
            if at < floor {
                return;
            }
        }
        if at.is_some() {
            self.last = at;
        }
        self.flush_skipped();
        let event = FollowEvent::Line(ReplicaLine {
            replica: self.target.replica,
            container: self.short.clone(),
            deployment: self.target.deployment.clone(),
            stream: if stderr { "stderr" } else { "stdout" },
            line: text.to_string(),
            at: at.and_then(|a| a.format(&Rfc3339).ok()),
        });
        if self.skipped > 0 || !self.feed.offer(event) {
            self.skipped += 1;
        }
    }

    /// Says how many lines were dropped, once there is room to say it.
    pub(super) fn flush_skipped(&mut self) {
        if self.skipped > 0 {
            let notice = FollowEvent::Skipped(Skipped {
                container: self.short.clone(),
                lines: self.skipped,
            });
            if self.feed.offer(notice) {
                self.skipped = 0;
            }
        }
    }
}
