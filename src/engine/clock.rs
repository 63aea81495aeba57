//! Where a deployment's time goes: inside Docker calls, waiting on the app
//! (its health gate, the drain of the replicas it replaces) and berth's own
//! work, which is the rest. A task-local clock, so the engine's calls are
//! counted without threading a handle through every one of them.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::Timing;

tokio::task_local! {
    static CLOCK: DeployClock;
}

#[derive(Default)]
struct DeployClock {
    /// Wall time with at least one Docker call in flight.
    docker: Cell<Duration>,
    /// Docker calls in flight, and since when the count is non-zero.
    busy: Cell<usize>,
    since: Cell<Option<Instant>>,
    /// Wall time waiting on the app, less the Docker calls inside it.
    waiting: Cell<Duration>,
}

impl DeployClock {
    /// Docker time so far, the call in flight included.
    fn docker_now(&self) -> Duration {
        let open = self.since.get().map_or(Duration::ZERO, |s| s.elapsed());
        self.docker.get() + open
    }
}

/// Runs `work` with a fresh clock; returns its output and where its time went.
pub async fn measure<F: Future>(work: F) -> (F::Output, Timing) {
    let started = Instant::now();
    CLOCK
        .scope(DeployClock::default(), async move {
            let out = work.await;
            let total = started.elapsed();
            let (docker, waiting) = CLOCK.with(|c| (c.docker_now(), c.waiting.get()));
            let berth = total.saturating_sub(docker).saturating_sub(waiting);
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            let timing = Timing {
                total_ms: ms(total),
                docker_ms: ms(docker),
                waiting_ms: ms(waiting),
                berth_ms: ms(berth),
            };
            (out, timing)
        })
        .await
}

/// Counts `call` as time inside Docker; overlapping calls count once.
pub async fn docker<F: Future>(call: F) -> F::Output {
    let _ = CLOCK.try_with(|c| {
        if c.busy.get() == 0 {
            c.since.set(Some(Instant::now()));
        }
        c.busy.set(c.busy.get() + 1);
    });
    // Closes the interval even if the call is dropped (cancelled).
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let _ = CLOCK.try_with(|c| {
                let busy = c.busy.get().saturating_sub(1);
                c.busy.set(busy);
                if busy == 0 {
                    if let Some(since) = c.since.take() {
                        c.docker.set(c.docker.get() + since.elapsed());
                    }
                }
            });
        }
    }
    let _done = Done;
    call.await
}

/// Counts `wait` as time waiting on the app, less the Docker calls in it.
pub async fn waiting<F: Future>(wait: F) -> F::Output {
    let started = Instant::now();
    let docker_before = CLOCK.try_with(DeployClock::docker_now).ok();
    let out = wait.await;
    let _ = CLOCK.try_with(|c| {
        let inside = docker_before.map_or(Duration::ZERO, |b| c.docker_now().saturating_sub(b));
        let wall = started.elapsed().saturating_sub(inside);
        c.waiting.set(c.waiting.get() + wall);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn overlapping_docker_calls_count_once_and_waits_exclude_them() {
        let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));
        let ((), timing) = measure(async {
            // Two calls side by side: 100 ms of Docker time, not 150.
            futures_util::future::join(docker(sleep(100)), docker(sleep(50))).await;
            // A 300 ms wait with a 100 ms Docker call inside.
            waiting(async {
                sleep(200).await;
                docker(sleep(100)).await;
            })
            .await;
            // 40 ms of berth's own work.
            sleep(40).await;
        })
        .await;
        assert_eq!(timing.total_ms, 440);
        assert_eq!(timing.docker_ms, 200);
        assert_eq!(timing.waiting_ms, 200);
        assert_eq!(timing.berth_ms, 40);
    }

    #[tokio::test]
    async fn calls_outside_a_measured_deployment_are_fine() {
        assert_eq!(docker(async { 7 }).await, 7);
        assert_eq!(waiting(async { 8 }).await, 8);
    }
}
