//! The output of an app's replicas: the last lines of each container once
//! ([`Orchestrator::logs`]), or followed live ([`Orchestrator::follow_logs`]).
//!
//! A follower reads every running container of the app through Docker's
//! log stream, and looks at the app's containers again every second: a
//! redeploy's new replicas and a restarted replica join the stream (a
//! restarted one from where it left off), a replica that stops or goes
//! away ends its part. The stream ends with a reason when the app is
//! deleted or berth shuts down. Memory is bounded: events wait in a queue
//! of at most [`QUEUE`] events and [`QUEUE_BYTES`] bytes per follower;
//! what a reader too slow to keep up would need beyond that is dropped
//! and counted (a [`FollowEvent::Skipped`] says how many lines), and at
//! most [`MAX_FOLLOWERS`] follow at once.

mod feed;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use feed::{queue, Feed, ReplicaReader, Target};
pub use feed::{FollowEvent, LogFollow, ReplicaChange, ReplicaLine, Skipped};

use super::logline::{split_timestamp, Framer, LogRange};
use super::{EngineError, LogLine, OpError, Orchestrator, LABEL_APP, LABEL_DEPLOYMENT};
use crate::engine::{ContainerEngine, ContainerState, LABEL_REPLICA};
use crate::store::StoreError;

/// Most log followers one berth serves at once.
pub const MAX_FOLLOWERS: usize = 64;
/// Most events waiting for one follower's reader.
pub const QUEUE: usize = 1024;
/// Most bytes of lines waiting for one follower's reader.
pub const QUEUE_BYTES: usize = 1024 * 1024;
/// How often a follower looks for replicas that came or went.
const RESCAN: Duration = Duration::from_secs(1);
/// How long after its stream ended a container is read again (from
/// where it stopped: a restarted replica loses nothing by the wait).
const REFOLLOW_AFTER: Duration = Duration::from_secs(3);
/// Ended containers a follower remembers (to resume them if they restart).
const REMEMBERED: usize = 256;
/// Deadline of one look at the app's containers.
const LIST_DEADLINE: Duration = Duration::from_secs(10);

/// Logs of one container of an app.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ContainerLogs {
    /// Container name.
    pub container: String,
    /// Deployment that created it.
    pub deployment: String,
    /// Last lines, oldest first.
    pub lines: Vec<LogLine>,
}

/// The live followers: their cap, and one switch that ends them all.
pub(super) struct Followers {
    permits: Arc<Semaphore>,
    stop: CancellationToken,
}

impl Followers {
    /// Followers that all end when `shutdown` is cancelled.
    pub(super) fn new(shutdown: &CancellationToken) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(MAX_FOLLOWERS)),
            stop: shutdown.child_token(),
        }
    }
}

/// Where following starts.
#[derive(Debug, Clone, Default)]
pub struct FollowFrom {
    /// Only lines written at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only the last this many lines of each replica running at the start
    /// (`None`: all); replicas that join later are read from their start.
    pub tail: Option<usize>,
}

/// Why following could not start.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The app is unknown, or Docker failed.
    #[error(transparent)]
    Op(#[from] OpError),
    /// All follower places are taken.
    #[error("{MAX_FOLLOWERS} log streams are open, the most berth serves at once; close one or try again shortly")]
    TooMany,
    /// berth is shutting down.
    #[error("berth is shutting down")]
    ShuttingDown,
}

impl Orchestrator {
    /// The last `tail` lines of each of the app's containers, only those
    /// written at or after `since` if given.
    pub async fn logs(
        &self,
        app: &str,
        tail: usize,
        since: Option<OffsetDateTime>,
    ) -> Result<Vec<ContainerLogs>, OpError> {
        self.inner.store.app(app)?;
        let mut out = Vec::new();
        for c in self.inner.engine.instance_containers().await? {
            if c.label(LABEL_APP) != Some(app) {
                continue;
            }
            let id = c.id.as_str();
            let lines = match since {
                None => self.inner.engine.logs(id, tail).await?,
                Some(since) => lines_since(self.inner.engine.as_ref(), id, tail, since).await?,
            };
            out.push(ContainerLogs {
                container: c.name.clone(),
                deployment: c.label(LABEL_DEPLOYMENT).unwrap_or_default().to_string(),
                lines,
            });
        }
        out.sort_by(|a, b| a.container.cmp(&b.container));
        Ok(out)
    }

    /// Follows the output of the app's replicas live, until the app is
    /// deleted, berth shuts down or the stream is dropped.
    pub async fn follow_logs(&self, app: &str, from: FollowFrom) -> Result<LogFollow, FollowError> {
        self.inner.store.app(app).map_err(OpError::from)?;
        let followers = &self.inner.followers;
        if followers.stop.is_cancelled() {
            return Err(FollowError::ShuttingDown);
        }
        let permit = followers
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| FollowError::TooMany)?;
        let started = OffsetDateTime::now_utc();
        let first = tokio::time::timeout(LIST_DEADLINE, self.running_replicas(app))
            .await
            .map_err(|_| {
                OpError::Engine(EngineError::Timeout {
                    what: "listing the app's containers".into(),
                    secs: LIST_DEADLINE.as_secs(),
                })
            })??;
        let stop = followers.stop.child_token();
        let (feed, follow, reason) = queue(permit, stop.clone(), QUEUE, QUEUE_BYTES);
        let this = self.clone();
        let app = app.to_string();
        tokio::spawn(async move {
            let why = this
                .follow_app(&app, from, started, first, &feed, &stop)
                .await;
            if let Some(why) = why {
                let _ = reason.set(why);
            }
            // The readers' feeds go with them; the stream ends once the
            // last one and this one are dropped.
            stop.cancel();
        });
        Ok(follow)
    }

    /// Ends every log follower (at shutdown, before the listeners wait
    /// for their connections).
    pub fn end_log_follows(&self) {
        self.inner.followers.stop.cancel();
    }

    /// Reads the app's replicas into `feed` until the app is deleted
    /// (returns why), berth shuts down (why) or `stop` (nothing to say).
    async fn follow_app(
        &self,
        app: &str,
        from: FollowFrom,
        started: OffsetDateTime,
        first: Vec<Target>,
        feed: &Feed,
        stop: &CancellationToken,
    ) -> Option<String> {
        let mut readers = JoinSet::new();
        let mut tasks = HashMap::new();
        let mut active = HashSet::new();
        // Where each container's stream was when it ended.
        let mut resume: HashMap<String, OffsetDateTime> = HashMap::new();
        // When each container's stream last ended: one that ends at once
        // (a container on its way out) is not read again every second.
        let mut ended: HashMap<String, tokio::time::Instant> = HashMap::new();
        let later = from.since.map_or(started, |s| s.max(started));
        for target in first {
            let range = LogRange {
                follow: true,
                since: from.since.map(OffsetDateTime::unix_timestamp),
                tail: from.tail,
            };
            active.insert(target.id.clone());
            let id = target.id.clone();
            let task = readers.spawn(self.read_replica(target, range, from.since, feed, stop));
            tasks.insert(task.id(), id);
        }
        let mut tick = tokio::time::interval(RESCAN);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let shutdown = &self.inner.followers.stop;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Some("berth is shutting down".into()),
                () = stop.cancelled() => return None,
                Some(done) = readers.join_next_with_id(), if !readers.is_empty() => {
                    let (task, last) = match done {
                        Ok((task, last)) => (task, last),
                        Err(err) => (err.id(), None),
                    };
                    if let Some(id) = tasks.remove(&task) {
                        active.remove(&id);
                        ended.insert(id.clone(), tokio::time::Instant::now());
                        if let Some(last) = last {
                            resume.insert(id, last);
                        }
                        forget_oldest(&mut ended, &mut resume);
                    }
                }
                _ = tick.tick() => {
                    match self.inner.store.app(app) {
                        Err(StoreError::NotFound { .. }) => {
                            return Some("the app was deleted".into())
                        }
                        Err(err) => {
                            tracing::warn!(app, %err, "log follower could not read the app");
                            continue;
                        }
                        Ok(_) => {}
                    }
                    let list = tokio::time::timeout(LIST_DEADLINE, self.running_replicas(app));
                    let listed = tokio::select! {
                        () = shutdown.cancelled() => return Some("berth is shutting down".into()),
                        () = stop.cancelled() => return None,
                        listed = list => listed,
                    };
                    let now = match listed {
                        Ok(Ok(now)) => now,
                        Ok(Err(err)) => {
                            tracing::debug!(app, %err, "log follower could not list the containers");
                            continue;
                        }
                        Err(_) => continue,
                    };
                    for target in now {
                        let resting = ended
                            .get(&target.id)
                            .is_some_and(|t| t.elapsed() < REFOLLOW_AFTER);
                        if active.contains(&target.id) || resting {
                            continue;
                        }
                        // A restarted replica goes on after its last line;
                        // a new one is read from its start.
                        let not_before = match resume.get(&target.id) {
                            Some(last) => *last + Duration::from_nanos(1),
                            None => later,
                        };
                        let range = LogRange {
                            follow: true,
                            since: Some(not_before.unix_timestamp()),
                            tail: None,
                        };
                        active.insert(target.id.clone());
                        let id = target.id.clone();
                        let task = readers.spawn(self.read_replica(target, range, Some(not_before), feed, stop));
                        tasks.insert(task.id(), id);
                    }
                }
            }
        }
    }

    /// Reads one replica's log into `feed` until it ends or `stop`;
    /// returns the time of the last line read.
    fn read_replica(
        &self,
        target: Target,
        range: LogRange,
        not_before: Option<OffsetDateTime>,
        feed: &Feed,
        stop: &CancellationToken,
    ) -> impl std::future::Future<Output = Option<OffsetDateTime>> + Send + 'static {
        let engine = self.inner.engine.clone();
        let feed = feed.clone();
        let stop = stop.clone();
        async move {
            let mut reader = ReplicaReader::new(target, not_before, feed);
            reader.feed.offer(reader.target.change("following"));
            let frames = engine.log_frames(&reader.target.id, &range);
            let mut frames = std::pin::pin!(frames);
            let mut framers = [Framer::default(), Framer::default()];
            loop {
                let frame = tokio::select! {
                    () = stop.cancelled() => return reader.last,
                    frame = frames.next() => frame,
                };
                match frame {
                    Some(Ok(frame)) => {
                        for line in framers[usize::from(frame.stderr)].push(&frame.bytes) {
                            reader.line(frame.stderr, &line);
                        }
                    }
                    Some(Err(err)) => {
                        tracing::debug!(container = %reader.short, %err, "container log stream failed");
                        break;
                    }
                    None => break,
                }
            }
            for (i, framer) in framers.iter_mut().enumerate() {
                if let Some(line) = framer.finish() {
                    reader.line(i == 1, &line);
                }
            }
            reader.flush_skipped();
            reader.feed.offer(reader.target.change("ended"));
            reader.last
        }
    }

    /// The app's running containers.
    async fn running_replicas(&self, app: &str) -> Result<Vec<Target>, OpError> {
        let mut out = Vec::new();
        for c in self.inner.engine.instance_containers().await? {
            let running = c.state == ContainerState::Running;
            if c.label(LABEL_APP) != Some(app) || !running {
                continue;
            }
            out.push(Target {
                replica: c.label(LABEL_REPLICA).and_then(|r| r.parse().ok()),
                deployment: c.label(LABEL_DEPLOYMENT).unwrap_or_default().to_string(),
                name: c.name,
                id: c.id,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Keeps what a follower remembers of ended streams bounded over a long
/// life of redeploys: the longest-ended containers are forgotten first.
fn forget_oldest(
    ended: &mut HashMap<String, tokio::time::Instant>,
    resume: &mut HashMap<String, OffsetDateTime>,
) {
    while ended.len() > REMEMBERED {
        let Some(oldest) = ended
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        ended.remove(&oldest);
        resume.remove(&oldest);
    }
}

/// The last `tail` lines of a container written at or after `since`.
async fn lines_since(
    engine: &dyn ContainerEngine,
    id: &str,
    tail: usize,
    since: OffsetDateTime,
) -> Result<Vec<LogLine>, OpError> {
    let range = LogRange {
        follow: false,
        since: Some(since.unix_timestamp()),
        tail: None,
    };
    let mut frames = std::pin::pin!(engine.log_frames(id, &range));
    let mut framers = [Framer::default(), Framer::default()];
    let mut lines = std::collections::VecDeque::new();
    let mut keep = |stderr: bool, text: String| {
        let recent = split_timestamp(&text).is_none_or(|(at, _)| at >= since);
        if recent {
            lines.push_back(LogLine {
                stream: if stderr { "stderr" } else { "stdout" },
                text,
            });
            if lines.len() > tail {
                lines.pop_front();
            }
        }
    };
    while let Some(frame) = frames.next().await {
        let frame = frame?;
        for text in framers[usize::from(frame.stderr)].push(&frame.bytes) {
            keep(frame.stderr, text);
        }
    }
    for (i, framer) in framers.iter_mut().enumerate() {
        if let Some(text) = framer.finish() {
            keep(i == 1, text);
        }
    }
    Ok(lines.into())
}

#[cfg(test)]
mod tests;
