//! The edge's idle HTTP/1.1 connections to replicas, kept for the next
//! request to the same replica: the TCP front end keeps its own sockets,
//! the HTTP/3 front end keeps hyper client connections.
//!
//! No task watches an idle connection (pingora's pool spawns one per
//! connection put back, with channels to call it off on reuse): a
//! connection is checked when it is taken instead, with one non-blocking
//! `MSG_PEEK` on its socket. A replica that closed it (or sent bytes no
//! request asked for) shows there, and the connection is dropped. For a
//! request that can safely go again (idempotent, no body), a connection
//! used within the last [`PEEK_AFTER`] is taken without that syscall: the
//! rare one found closed costs a retry on a new connection, not an error. Idle
//! connections older than [`IDLE_TIMEOUT`] are dropped when taken, and
//! swept when others are put back, so a replica that went away leaves
//! nothing open for long.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;

/// How long an idle connection is kept (nginx's upstream keep-alive
/// default is 60 s). One the replica closes earlier is found closed when
/// taken; only a close racing the reuse itself reaches a request, which is
/// then retried on a new connection when that is safe.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle time after which a connection is peeked at before reuse.
pub(crate) const PEEK_AFTER: Duration = Duration::from_secs(1);

/// How often putting a connection back also sweeps out expired ones.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// A connection the pool can keep: it tells whether it is still usable.
pub(crate) trait Kept {
    /// Still open, with nothing unasked-for waiting on it.
    fn is_quiet(&self) -> bool;
}

impl Kept for Stream {
    /// One non-blocking peek at the socket.
    fn is_quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        matches!(recv(self.id(), &mut byte, flags), Err(Errno::EAGAIN))
    }
}

impl<B> Kept for hyper::client::conn::http1::SendRequest<B> {
    /// hyper's connection task reads the socket and notices a close (or
    /// stray bytes, which it treats as an error) itself.
    fn is_quiet(&self) -> bool {
        !self.is_closed()
    }
}

/// One idle connection.
struct Entry<T> {
    stream: T,
    since: Instant,
    /// Peeked at before reuse even by retryable requests.
    checked: bool,
}

/// Idle connections by replica address.
pub(crate) struct ReplicaPool<T = Stream> {
    idle: Mutex<Idle<T>>,
    capacity: usize,
    peek_after: Duration,
}

struct Idle<T> {
    /// Per replica, oldest first: the newest is reused first.
    by_addr: HashMap<SocketAddr, Vec<Entry<T>>>,
    count: usize,
    swept: Instant,
}

impl<T: Kept> ReplicaPool<T> {
    /// A pool keeping at most `capacity` idle connections in all.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            idle: Mutex::new(Idle {
                by_addr: HashMap::new(),
                count: 0,
                swept: Instant::now(),
            }),
            capacity,
            peek_after: PEEK_AFTER,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle<T>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live idle connection to `addr`, if one is kept. `retryable`: the
    /// request can go again on a new connection should this one turn out
    /// closed, so a recently used one is taken without the peek.
    pub(crate) fn take(&self, addr: SocketAddr, retryable: bool) -> Option<T> {
        loop {
            let entry = {
                let mut idle = self.lock();
                let entry = idle.by_addr.get_mut(&addr)?.pop()?;
                idle.count -= 1;
                entry
            };
            let idle = entry.since.elapsed();
            let trusted = retryable && !entry.checked && idle < self.peek_after;
            if idle < IDLE_TIMEOUT && (trusted || entry.stream.is_quiet()) {
                return Some(entry.stream);
            }
            // Closed or expired: dropped (closed) outside the lock.
        }
    }

    /// Keeps `stream`, a connection to `addr` that finished a request
    /// cleanly, for reuse; drops it when the pool is full. `checked`: it is
    /// peeked at before any reuse (after a response without a body, whose
    /// end a replica may have misjudged).
    pub(crate) fn put(&self, addr: SocketAddr, stream: T, checked: bool) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut idle = self.lock();
        if now.duration_since(idle.swept) >= SWEEP_EVERY {
            idle.swept = now;
            let mut dropped = 0;
            idle.by_addr.retain(|_, conns| {
                let fresh = conns.partition_point(|e| now.duration_since(e.since) >= IDLE_TIMEOUT);
                dropped += fresh;
                expired.extend(conns.drain(..fresh));
                !conns.is_empty()
            });
            idle.count -= dropped;
        }
        if idle.count < self.capacity {
            idle.count += 1;
            idle.by_addr.entry(addr).or_default().push(Entry {
                stream,
                since: now,
                checked,
            });
        }
        drop(idle);
        drop(expired);
    }

    /// Idle connections kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().count
    }
}

/// Opens a connection to a replica within `timeout`.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Stream> {
    Ok(Box::new(L4Stream::from(dial(addr, timeout).await?)))
}

/// Opens a TCP connection to a replica within `timeout` (an error of kind
/// `TimedOut` when it passed, whichever front end dials), Nagle off.
pub(crate) async fn dial(
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair(listener: &tokio::net::TcpListener) -> (Stream, tokio::net::TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(connect(addr, Duration::from_secs(1)), async {
            listener.accept().await.unwrap().0
        });
        (client.unwrap(), server)
    }

    #[tokio::test]
    async fn live_connections_are_reused_and_closed_ones_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = ReplicaPool {
            peek_after: Duration::ZERO,
            ..ReplicaPool::new(8)
        };
        let (a, _a_server) = pair(&listener).await;
        let (b, b_server) = pair(&listener).await;
        let (a_id, b_id) = (a.id(), b.id());
        pool.put(addr, a, false);
        pool.put(addr, b, false);
        assert_eq!(pool.len(), 2);
        // The replica closes b (the newest): taking skips it for a.
        drop(b_server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let taken = pool.take(addr, false).expect("a is still open");
        assert_eq!(taken.id(), a_id);
        assert_ne!(a_id, b_id);
        assert_eq!(pool.len(), 0);
        assert!(pool.take(addr, false).is_none());
    }

    #[tokio::test]
    async fn unexpected_bytes_make_a_connection_unusable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = ReplicaPool {
            peek_after: Duration::ZERO,
            ..ReplicaPool::new(8)
        };
        let (a, mut a_server) = pair(&listener).await;
        pool.put(addr, a, false);
        a_server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(addr, false).is_none());
    }

    #[tokio::test]
    async fn recently_used_connections_skip_the_peek_for_retryable_requests() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = ReplicaPool::new(8);
        let (a, a_server) = pair(&listener).await;
        let (b, b_server) = pair(&listener).await;
        pool.put(addr, a, false);
        pool.put(addr, b, false);
        drop((a_server, b_server));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A request that must not be sent twice gets no closed connection.
        assert!(pool.take(addr, false).is_none());
        let (c, _c_server) = pair(&listener).await;
        let (d, d_server) = pair(&listener).await;
        pool.put(addr, c, false);
        pool.put(addr, d, false);
        drop(d_server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A retryable one may: the hop retries it on a new connection.
        assert!(pool.take(addr, true).is_some());
    }

    #[tokio::test]
    async fn connections_put_back_checked_are_always_peeked() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = ReplicaPool::new(8);
        let (a, mut a_server) = pair(&listener).await;
        pool.put(addr, a, true);
        // Stray bytes after a bodiless response: even a retryable request
        // within the peek window does not get them as its answer.
        a_server.write_all(b"stray body").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(addr, true).is_none());
    }

    #[tokio::test]
    async fn the_pool_is_bounded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = ReplicaPool::new(1);
        let (a, _sa) = pair(&listener).await;
        let (b, _sb) = pair(&listener).await;
        pool.put(addr, a, false);
        pool.put(addr, b, false);
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_to_a_dead_address_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(connect(addr, Duration::from_secs(1)).await.is_err());
    }
}
