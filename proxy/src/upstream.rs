//! One replica as the edge sees it: its address and a shared state that
//! counts requests in flight and says whether it is draining. The state
//! outlives route tables: the orchestrator hands the same state to every
//! table it builds, marks it draining when the replica leaves, and waits for
//! its in-flight count to reach zero before stopping the container.
//!
//! Acquire and drain form a handshake on two sequentially consistent
//! atomics: a request increments `in_flight` and then checks `draining`;
//! the orchestrator sets `draining` and then reads `in_flight`. At least one
//! side sees the other, so a request is either refused (and picks another
//! replica) or counted (and waited for): none is cut off.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared state of one replica.
#[derive(Debug, Default)]
pub struct UpstreamState {
    in_flight: AtomicUsize,
    draining: AtomicBool,
}

impl UpstreamState {
    /// A fresh, serving state.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Stops new requests from choosing this replica.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the replica is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Requests now being served by the replica.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// A replica: where to connect, and its shared state.
#[derive(Debug, Clone)]
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<UpstreamState>,
}

impl Upstream {
    /// A replica at `addr` with a fresh state.
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_state(addr, UpstreamState::new())
    }

    /// A replica at `addr` sharing `state` with earlier tables.
    pub fn with_state(addr: SocketAddr, state: Arc<UpstreamState>) -> Self {
        Self { addr, state }
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counts a request on this replica, unless it is draining.
    pub fn acquire(&self) -> Option<UpstreamGuard> {
        self.state.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = UpstreamGuard(self.state.clone());
        if self.state.draining.load(Ordering::SeqCst) {
            // Dropping the guard undoes the increment.
            return None;
        }
        Some(guard)
    }
}

/// A request counted on a replica until dropped.
#[derive(Debug)]
pub struct UpstreamGuard(Arc<UpstreamState>);

impl Drop for UpstreamGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_refuses_new_requests_and_counts_old_ones() {
        let up = Upstream::new(SocketAddr::from(([127, 0, 0, 1], 80)));
        let first = up.acquire().expect("serving");
        assert_eq!(up.state.in_flight(), 1);
        up.state.drain();
        assert!(up.acquire().is_none());
        assert_eq!(up.state.in_flight(), 1, "a refused request leaves no count");
        drop(first);
        assert_eq!(up.state.in_flight(), 0);
    }

    #[test]
    fn acquire_and_drain_never_both_miss() {
        // Many threads acquire while another drains: every acquire that
        // succeeded after the drain must be visible in the count the
        // drainer reads, i.e. a zero count means no one holds a guard.
        for _ in 0..50 {
            let up = Upstream::new(SocketAddr::from(([127, 0, 0, 1], 80)));
            let state = up.state.clone();
            let holders: Vec<_> = (0..4)
                .map(|_| {
                    let up = up.clone();
                    std::thread::spawn(move || {
                        let mut held = 0;
                        for _ in 0..200 {
                            if let Some(g) = up.acquire() {
                                held += 1;
                                drop(g);
                            }
                        }
                        held
                    })
                })
                .collect();
            state.drain();
            while state.in_flight() != 0 {
                std::hint::spin_loop();
            }
            // After the drain was observed empty, nobody may acquire.
            assert!(up.acquire().is_none());
            for h in holders {
                h.join().unwrap();
            }
            assert_eq!(state.in_flight(), 0);
        }
    }
}
