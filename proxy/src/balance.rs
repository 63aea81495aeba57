//! The spread of one listener's connections over its edge workers.
//!
//! Workers share one listening socket, and the kernel hands a new
//! connection to whichever worker's `accept` runs first. Under a steady
//! load that is not even: measured with wrk's 50 kept connections on two
//! workers, one worker took 60 % of them, and its connections waited
//! longer (berth's p99 was 1.6x nginx's at equal throughput). HAProxy
//! gives each connection to its least loaded thread instead. Here a worker
//! that holds more connections than another one by more than [`SLACK`]
//! waits (up to [`MAX_WAIT`]) before its next accept, so while connections
//! keep coming the others take them; when they come further apart than
//! that, whichever worker accepts first takes the next one. The deadline
//! keeps a stuck worker from stopping the rest, and a worker that ended
//! retires its slot so the others do not wait for it.
//!
//! A waiting worker is woken when a count changes, and only a waiting one:
//! with a new connection per request, the counts change on every request,
//! and announcing each change cost a lock shared by the cores. Looking
//! again on a timer instead (every 0.5 ms, no wakeups) was tried: tokio's
//! timers are 1 ms coarse, and short connections came 3.7x slower.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// How many more connections than the least loaded worker a worker may
/// hold and still accept.
const SLACK: usize = 1;

/// The longest a worker waits for another to take a connection.
const MAX_WAIT: Duration = Duration::from_millis(5);

/// Open connections per worker of one listener.
///
/// The counts and `waiting` are read and written sequentially consistent:
/// a worker registers as waiting before it checks the counts again, and a
/// change of a count is announced only if, after the change, someone
/// waits. So either the waiter sees the new count or the changer sees the
/// waiter; and in the usual case (nobody ahead) nobody takes the lock
/// inside [`Notify`] or wakes another core.
#[derive(Debug)]
pub(crate) struct Balance {
    open: Box<[AtomicUsize]>,
    /// Workers waiting in [`Balance::turn`].
    waiting: AtomicUsize,
    changed: Notify,
}

impl Balance {
    /// A balance over `workers` workers, none holding a connection.
    pub(crate) fn new(workers: usize) -> Arc<Balance> {
        Arc::new(Balance {
            open: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            waiting: AtomicUsize::new(0),
            changed: Notify::new(),
        })
    }

    /// Whether `worker` holds more connections than the least loaded
    /// worker by more than [`SLACK`].
    fn ahead(&self, worker: usize) -> bool {
        let mine = self.open[worker].load(Ordering::SeqCst);
        self.open
            .iter()
            .any(|other| other.load(Ordering::SeqCst) + SLACK < mine)
    }

    /// Wakes the workers waiting in [`Balance::turn`], if any.
    fn announce(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify_waiters();
        }
    }

    /// Resolves when `worker` may accept: once it is no longer ahead of
    /// the others, or after [`MAX_WAIT`].
    pub(crate) async fn turn(&self, worker: usize) {
        if !self.ahead(worker) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so no change is missed.
            changed.as_mut().enable();
            if !self.ahead(worker) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Takes `worker` out of the balance once the guard drops (its accept
    /// loop ended): the others no longer wait for it to catch up.
    pub(crate) fn retire_on_drop(self: &Arc<Self>, worker: usize) -> Retire {
        Retire {
            balance: self.clone(),
            worker,
        }
    }

    /// Counts a connection `worker` accepted until the returned guard drops.
    pub(crate) fn opened(self: &Arc<Self>, worker: usize) -> Held {
        self.open[worker].fetch_add(1, Ordering::SeqCst);
        self.announce();
        Held {
            balance: self.clone(),
            worker,
        }
    }
}

/// A worker counted in [`Balance::waiting`] until dropped (also when
/// its wait is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One open connection of a worker; dropping it counts the connection
/// closed.
#[derive(Debug)]
pub(crate) struct Held {
    balance: Arc<Balance>,
    worker: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.balance.open[self.worker].fetch_sub(1, Ordering::SeqCst);
        self.balance.announce();
    }
}

/// Retires a worker from its balance when dropped.
#[derive(Debug)]
pub(crate) struct Retire {
    balance: Arc<Balance>,
    worker: usize,
}

impl Drop for Retire {
    fn drop(&mut self) {
        // Never the least loaded again; its open connections may still
        // count down from here.
        self.balance.open[self.worker].store(RETIRED, Ordering::SeqCst);
        self.balance.announce();
    }
}

/// The count of a retired worker.
const RETIRED: usize = usize::MAX / 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_worker_ahead_waits_for_the_others_and_no_longer_than_the_deadline() {
        let balance = Balance::new(2);
        let a = balance.opened(0);
        // One ahead is within the slack.
        assert!(!balance.ahead(0));
        let b = balance.opened(0);
        assert!(balance.ahead(0));
        assert!(!balance.ahead(1));

        // Worker 0 waits until worker 1 takes a connection.
        let waiting = tokio::spawn({
            let balance = balance.clone();
            async move { balance.turn(0).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let c = balance.opened(1);
        tokio::time::timeout(Duration::from_micros(1), waiting)
            .await
            .expect("taken at once when the other worker caught up")
            .unwrap();
        assert_eq!(balance.waiting.load(Ordering::SeqCst), 0);

        // Closing connections counts too.
        drop(c);
        assert!(balance.ahead(0));
        drop(a);
        assert!(!balance.ahead(0));

        // A worker that stays ahead accepts after the deadline anyway.
        let _d = balance.opened(0);
        let _e = balance.opened(0);
        let started = tokio::time::Instant::now();
        balance.turn(0).await;
        assert!(started.elapsed() >= MAX_WAIT);
        drop(b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_is_no_longer_counted() {
        let balance = Balance::new(2);
        let _a = balance.opened(0);
        let _b = balance.opened(0);
        let _c = balance.opened(0);
        let waiting = tokio::spawn({
            let balance = balance.clone();
            async move { balance.turn(0).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(balance.waiting.load(Ordering::SeqCst), 1);
        // Shutdown drops the accept future mid-wait.
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert_eq!(balance.waiting.load(Ordering::SeqCst), 0);
        // Not ahead: no wait, nothing counted.
        balance.turn(1).await;
        assert_eq!(balance.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retired_worker_is_not_waited_for() {
        let balance = Balance::new(3);
        let _a = balance.opened(0);
        let _b = balance.opened(0);
        let c = balance.opened(2);
        assert!(balance.ahead(0), "worker 1 holds none");
        drop(balance.retire_on_drop(1));
        assert!(!balance.ahead(0));
        let started = tokio::time::Instant::now();
        balance.turn(0).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        // A retired worker's last connections closing keep it out.
        drop(balance.retire_on_drop(2));
        drop(c);
        assert!(!balance.ahead(0));
    }
}
