//! The HTTP server of the admin and metrics listeners, hardened for the
//! open internet: a cap on connections (excess ones wait in the kernel's
//! backlog, costing berth no file), a deadline for every request head
//! (which also closes connections idle between requests), and the open-file
//! budget that keeps a reserve for the edge whatever these listeners hold.
//! Request bodies have their own deadline where they are read (`api::json`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to send a request head, counted from when
/// berth starts waiting for it: on a new connection, or on a kept one after
/// the previous answer (so an idle connection is closed after as long).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(15);

/// How long open connections may finish their requests after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// See [`HEAD_TIMEOUT`].
    pub head_timeout: Duration,
}

/// How the process's open files are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBudget {
    /// The soft `RLIMIT_NOFILE` berth runs with.
    pub open_files: u64,
}

impl FileBudget {
    /// Raises the soft open-file limit to the hard one (the default soft
    /// limit of 1,024 is far too low for a proxy) and logs what it got.
    pub fn raise() -> Self {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let open_files = match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => {
                match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                    Ok(()) => hard,
                    Err(err) => {
                        tracing::warn!(%err, soft, hard, "could not raise the open-file limit");
                        soft
                    }
                }
            }
            Ok((soft, _)) => soft,
            Err(err) => {
                tracing::warn!(%err, "could not read the open-file limit; assuming 1024");
                1024
            }
        };
        let budget = Self { open_files };
        tracing::info!(
            open_files,
            admin_connections = budget.admin().max_connections,
            metrics_connections = budget.metrics().max_connections,
            "open-file limit; the rest is the edge's"
        );
        budget
    }

    /// The admin listener's share: an eighth of the files, 16 to 1,024.
    pub fn admin(&self) -> Limits {
        Limits {
            max_connections: share(self.open_files, 8, 16, 1024),
            head_timeout: HEAD_TIMEOUT,
        }
    }

    /// The metrics listener's share: a 64th of the files, 4 to 64.
    pub fn metrics(&self) -> Limits {
        Limits {
            max_connections: share(self.open_files, 64, 4, 64),
            head_timeout: HEAD_TIMEOUT,
        }
    }
}

fn share(files: u64, divisor: u64, min: usize, max: usize) -> usize {
    usize::try_from(files / divisor)
        .unwrap_or(max)
        .clamp(min, max)
}

/// Serves `router` on `listener` within `limits` until `shutdown`, then
/// lets open connections finish their requests for a few seconds. With
/// `behind_edge`, a request from loopback that carries `X-Forwarded-For`
/// came through berth's own edge (which always sets that header itself),
/// and the address it names is the client's.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: Limits,
    behind_edge: bool,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut refused_since: Option<tokio::time::Instant> = None;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of files or memory: say so once a minute, and let the
                // edge's connections drain before trying again.
                let now = tokio::time::Instant::now();
                if refused_since.is_none_or(|t| now - t > Duration::from_secs(60)) {
                    tracing::warn!(listener = name, %err, "accept failed");
                    refused_since = Some(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Handlers and the audit log see the client's address.
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                let client = if behind_edge {
                    forwarded_client(peer, req.headers())
                } else {
                    peer
                };
                req.extensions_mut().insert(ConnectInfo(client));
                req
            },
        ));
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.head_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(listener = name, %err, "connection ended");
            }
        });
    }
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::debug!(
            listener = name,
            "connections still open at shutdown were closed"
        );
    }
}

/// The client behind berth's edge: the last `X-Forwarded-For` entry of a
/// request from loopback (the one the edge wrote), else the peer.
fn forwarded_client(peer: SocketAddr, headers: &http::HeaderMap) -> SocketAddr {
    if !peer.ip().to_canonical().is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        .map_or(peer, |ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listeners_keep_most_files_for_the_edge() {
        let low = FileBudget { open_files: 1024 };
        assert_eq!(low.admin().max_connections, 128);
        assert_eq!(low.metrics().max_connections, 16);
        let reserve = 1024 - low.admin().max_connections - low.metrics().max_connections;
        assert!(reserve >= 800, "{reserve}");
        let tiny = FileBudget { open_files: 64 };
        assert_eq!(tiny.admin().max_connections, 16);
        assert_eq!(tiny.metrics().max_connections, 4);
        let high = FileBudget {
            open_files: 1 << 20,
        };
        assert_eq!(high.admin().max_connections, 1024);
        assert_eq!(high.metrics().max_connections, 64);
    }

    #[test]
    fn only_loopback_peers_name_a_forwarded_client() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(
            forwarded_client(local, &headers).ip().to_string(),
            "203.0.113.9"
        );
        assert_eq!(forwarded_client(remote, &headers), remote);
        assert_eq!(forwarded_client(local, &http::HeaderMap::new()), local);
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(forwarded_client(local, &headers), local);
    }

    /// A listener answering `ok` at `/` within the given limits.
    async fn start(
        max_connections: usize,
        head_timeout: Duration,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let limits = Limits {
            max_connections,
            head_timeout,
        };
        let server = tokio::spawn(serve(
            "test",
            listener,
            Router::new().route("/", axum::routing::get(|| async { "ok" })),
            limits,
            false,
            shutdown.clone(),
        ));
        (addr, shutdown, server)
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_head_timeout() {
        use tokio::io::AsyncReadExt;
        let (addr, shutdown, server) = start(1, Duration::from_millis(300)).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
            .await
            .expect("closed by the head timeout");
        // hyper may answer 408 first; either way the connection ends.
        if let Ok(n) = read {
            if n > 0 {
                assert!(String::from_utf8_lossy(&buf[..n]).contains("408"));
            }
        }
        // The slot is free again: a real request is served.
        let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        next.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), next.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_free_slot() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (addr, shutdown, server) = start(2, Duration::from_secs(30)).await;
        let held: Vec<_> =
            futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(addr)))
                .await;
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let waited = tokio::time::timeout(
            Duration::from_millis(500),
            third.read_to_string(&mut answer),
        )
        .await;
        assert!(waited.is_err(), "served past the cap: {answer}");
        drop(held);
        tokio::time::timeout(Duration::from_secs(10), third.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.cancel();
        server.await.unwrap();
    }
}
