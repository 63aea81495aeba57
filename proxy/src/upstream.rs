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
//!
//! Tunnels (upgraded connections such as WebSockets) would hold a replica
//! forever: each registers its connection's cancellation here, and at the
//! drain deadline [`UpstreamState::close_tunnels`] cuts them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Shared state of one replica.
#[derive(Debug, Default)]
pub struct UpstreamState {
    in_flight: AtomicUsize,
    draining: AtomicBool,
    next_tunnel: AtomicU64,
    /// Open tunnels: id → the cancellation of their client connection.
    tunnels: Mutex<Vec<(u64, CancellationToken)>>,
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

    /// Closes every open tunnel to the replica (their client connections
    /// too); returns how many there were.
    pub fn close_tunnels(&self) -> usize {
        let tunnels = std::mem::take(&mut *self.lock_tunnels());
        for (_, token) in &tunnels {
            token.cancel();
        }
        tunnels.len()
    }

    fn lock_tunnels(&self) -> std::sync::MutexGuard<'_, Vec<(u64, CancellationToken)>> {
        self.tunnels.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Its shared state.
    pub fn state(&self) -> &Arc<UpstreamState> {
        &self.state
    }

    /// Counts a request on this replica, unless it is draining.
    pub fn acquire(&self) -> Option<UpstreamGuard> {
        self.state.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = UpstreamGuard {
            state: self.state.clone(),
            tunnel: None,
        };
        if self.state.draining.load(Ordering::SeqCst) {
            // Dropping the guard undoes the increment.
            return None;
        }
        Some(guard)
    }
}

/// A request counted on a replica until dropped.
#[derive(Debug)]
pub struct UpstreamGuard {
    state: Arc<UpstreamState>,
    /// Its tunnel's id, once the request became one.
    tunnel: Option<u64>,
}

impl UpstreamGuard {
    /// The request became a tunnel on the connection `connection` cancels:
    /// the replica's drain deadline may cut it.
    pub fn become_tunnel(&mut self, connection: CancellationToken) {
        if self.tunnel.is_some() {
            return;
        }
        let id = self.state.next_tunnel.fetch_add(1, Ordering::Relaxed);
        self.state.lock_tunnels().push((id, connection));
        self.tunnel = Some(id);
    }
}

impl Drop for UpstreamGuard {
    fn drop(&mut self) {
        if let Some(id) = self.tunnel {
            self.state.lock_tunnels().retain(|(t, _)| *t != id);
        }
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
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
    fn closing_tunnels_cancels_their_connections_once() {
        let up = Upstream::new(SocketAddr::from(([127, 0, 0, 1], 80)));
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        let mut first = up.acquire().unwrap();
        first.become_tunnel(a.clone());
        let mut second = up.acquire().unwrap();
        second.become_tunnel(b.clone());
        drop(second);
        assert_eq!(up.state.close_tunnels(), 1, "an ended tunnel is forgotten");
        assert!(a.is_cancelled());
        assert!(!b.is_cancelled());
        assert_eq!(up.state.close_tunnels(), 0);
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
