//! A per-client rate limit by GCRA (the generic cell rate algorithm):
//! each client address has one timestamp, its theoretical arrival time;
//! a request is let through while that time stays within `burst`
//! intervals of now. Memory is bounded whatever the number of clients:
//! [`SHARDS`] maps of at most [`PER_SHARD`] addresses each (65,536 in
//! all, a few MiB); a full shard first forgets the clients whose time
//! has passed (they are as good as new), then half of the rest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards of the client map (one lock each).
const SHARDS: usize = 16;
/// Clients kept per shard.
pub(crate) const PER_SHARD: usize = 4096;

/// One route's limiter.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Nanoseconds between two requests on average.
    interval: u64,
    /// How far ahead of now a client's time may run: `burst` intervals.
    tolerance: u64,
    start: Instant,
    shards: Box<[Mutex<HashMap<u128, u64>>]>,
}

impl Limiter {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let interval = 1_000_000_000 / u64::from(per_second.max(1));
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1))),
            start: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Whether `client` may send a request now; `Err` holds how long it
    /// is to wait.
    pub(crate) fn admit(&self, client: IpAddr) -> Result<(), Duration> {
        self.admit_at(client, self.now())
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn admit_at(&self, client: IpAddr, now: u64) -> Result<(), Duration> {
        let key = client_key(client);
        let shard = &self.shards[(key as usize ^ (key >> 64) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let tat = map.get(&key).copied().unwrap_or(now).max(now);
        let next = tat.saturating_add(self.interval);
        if next - now > self.tolerance {
            return Err(Duration::from_nanos(next - now - self.tolerance));
        }
        if map.len() >= PER_SHARD && !map.contains_key(&key) {
            map.retain(|_, t| *t > now);
            if map.len() >= PER_SHARD {
                let mut n = 0;
                map.retain(|_, _| {
                    n += 1;
                    n % 2 == 0
                });
            }
        }
        map.insert(key, next);
        Ok(())
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// The key a client is limited by: its IPv4 address, or the /64 network
/// of its IPv6 address (one host usually holds a whole /64).
fn client_key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) & !u128::from(u64::MAX)) | 1 << 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_recovers() {
        let l = Limiter::new(2, 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.admit_at(ip, 0).is_ok());
        }
        let wait = l.admit_at(ip, 0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another client is not affected.
        assert!(l.admit_at("10.0.0.2".parse().unwrap(), 0).is_ok());
        // Half a second frees one request, not two.
        assert!(l.admit_at(ip, SEC / 2).is_ok());
        assert!(l.admit_at(ip, SEC / 2).is_err());
        // After the window the whole burst is back.
        for _ in 0..3 {
            assert!(l.admit_at(ip, 5 * SEC).is_ok());
        }
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64_network() {
        let l = Limiter::new(1, 1);
        assert!(l.admit_at("2001:db8::1".parse().unwrap(), 0).is_ok());
        assert!(l.admit_at("2001:db8::2".parse().unwrap(), 0).is_err());
        assert!(l.admit_at("2001:db8:0:1::1".parse().unwrap(), 0).is_ok());
    }

    #[test]
    fn memory_stays_bounded_whatever_the_number_of_clients() {
        let l = Limiter::new(1, 10);
        for i in 0..200_000u32 {
            let ip = IpAddr::V4(i.into());
            let _ = l.admit_at(ip, 0);
        }
        assert!(l.tracked() <= SHARDS * PER_SHARD, "{}", l.tracked());
    }
}
