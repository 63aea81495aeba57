//! Failed sign-ins, counted per key (an account, a client address) in a
//! sliding window: after `limit` failures within `window` the key is
//! refused until the oldest of them leaves the window. In memory and
//! bounded: at most `capacity` keys, the one with the oldest failure goes
//! first. Time is passed in, so tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Failures of one account allowed per window.
pub const ACCOUNT_LIMIT: usize = 5;
/// Failures of one client address allowed per window.
pub const ADDRESS_LIMIT: usize = 20;
/// How long a failure counts: 15 minutes.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most.
pub const CAPACITY: usize = 10_000;

/// Counts failures per key.
#[derive(Debug)]
pub struct Limiter {
    limit: usize,
    window: Duration,
    capacity: usize,
    /// Each key's failures within the window, oldest first (at most `limit`).
    failures: HashMap<String, VecDeque<Instant>>,
}

impl Limiter {
    /// A limiter of `limit` failures per `window`, remembering at most
    /// `capacity` keys.
    pub fn new(limit: usize, window: Duration, capacity: usize) -> Self {
        Self {
            limit: limit.max(1),
            window,
            capacity: capacity.max(1),
            failures: HashMap::new(),
        }
    }

    /// `Some(wait)` when `key` has used up its failures: how long until it
    /// may try again.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let list = self.failures.get(key)?;
        if list.len() < self.limit {
            return None;
        }
        let oldest = *list.front()?;
        let until = oldest + self.window;
        (until > now).then(|| until - now)
    }

    /// Counts one failure of `key`.
    pub fn fail(&mut self, key: &str, now: Instant) {
        if !self.failures.contains_key(key) && self.failures.len() >= self.capacity {
            self.evict(now);
        }
        let window = self.window;
        let list = self.failures.entry(key.to_string()).or_default();
        while list
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            list.pop_front();
        }
        list.push_back(now);
        while list.len() > self.limit {
            list.pop_front();
        }
    }

    /// Forgets `key`'s failures (it signed in).
    pub fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// Keys remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures.len()
    }

    /// Makes room for one key: drops the keys whose failures all left the
    /// window, or else the key whose newest failure is oldest.
    fn evict(&mut self, now: Instant) {
        let window = self.window;
        self.failures.retain(|_, list| {
            list.back()
                .is_some_and(|at| now.saturating_duration_since(*at) < window)
        });
        if self.failures.len() < self.capacity {
            return;
        }
        let stalest = self
            .failures
            .iter()
            .min_by_key(|(_, list)| list.back().copied())
            .map(|(key, _)| key.clone());
        if let Some(key) = stalest {
            self.failures.remove(&key);
        }
    }
}

/// "N minutes" (rounded up; at least one) for a message.
pub fn minutes(wait: Duration) -> String {
    let n = wait.as_secs().div_ceil(60).max(1);
    if n == 1 {
        "1 minute".into()
    } else {
        format!("{n} minutes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_sixth_failure_within_the_window_is_refused_until_the_oldest_leaves() {
        let t0 = Instant::now();
        let mut l = Limiter::new(5, 15 * MIN, 100);
        for i in 0..5 {
            assert_eq!(l.blocked("user:ann", t0 + i * MIN), None, "attempt {i}");
            l.fail("user:ann", t0 + i * MIN);
        }
        // Five failures at minutes 0-4: blocked until minute 15.
        assert_eq!(l.blocked("user:ann", t0 + 5 * MIN), Some(10 * MIN));
        assert_eq!(minutes(10 * MIN), "10 minutes");
        assert_eq!(l.blocked("user:bob", t0 + 5 * MIN), None, "others are free");
        // At minute 15 the first failure leaves: one more try.
        assert_eq!(l.blocked("user:ann", t0 + 15 * MIN), None);
        l.fail("user:ann", t0 + 15 * MIN);
        assert_eq!(l.blocked("user:ann", t0 + 15 * MIN), Some(MIN));
        assert_eq!(minutes(Duration::from_secs(5)), "1 minute");
    }

    #[test]
    fn success_clears_the_account() {
        let t0 = Instant::now();
        let mut l = Limiter::new(2, 15 * MIN, 100);
        l.fail("user:ann", t0);
        l.fail("user:ann", t0);
        assert!(l.blocked("user:ann", t0).is_some());
        l.clear("user:ann");
        assert_eq!(l.blocked("user:ann", t0), None);
    }

    #[test]
    fn old_failures_do_not_add_up() {
        let t0 = Instant::now();
        let mut l = Limiter::new(3, 15 * MIN, 100);
        for i in 0..10 {
            l.fail("addr:1.2.3.4", t0 + i * 10 * MIN);
            assert_eq!(l.blocked("addr:1.2.3.4", t0 + i * 10 * MIN), None);
        }
    }

    #[test]
    fn the_map_is_bounded_and_drops_the_stalest_key() {
        let t0 = Instant::now();
        let mut l = Limiter::new(2, 15 * MIN, 3);
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            l.fail(key, t0 + i as u32 * MIN);
            l.fail(key, t0 + i as u32 * MIN);
        }
        l.fail("d", t0 + 3 * MIN);
        assert_eq!(l.len(), 3);
        assert_eq!(l.blocked("a", t0 + 3 * MIN), None, "a went first");
        assert!(l.blocked("b", t0 + 3 * MIN).is_some());
        // Keys whose failures all expired go before any live one.
        l.fail("e", t0 + 17 * MIN + Duration::from_secs(30));
        assert_eq!(l.len(), 2, "b and c expired; d and e stay");
        l.fail("d", t0 + 17 * MIN + Duration::from_secs(30));
        assert!(l
            .blocked("d", t0 + 17 * MIN + Duration::from_secs(30))
            .is_some());
    }
}
