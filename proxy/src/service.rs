//! The edge's listeners: [`serve`] runs an [`EdgeProxy`] on a TCP listener
//! the caller bound (TLS terminated with rustls when configured), on the
//! caller's tokio runtime; [`serve_on_threads`] runs one per thread.
//! HTTP/1.1 connections go to the edge's own codec (`h1.rs`), h2 ones
//! (ALPN) to pingora-core's.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::tls::ALPN;
use pingora_core::protocols::{GetSocketDigest, SocketDigest, Ssl, Stream};
use pingora_core::server::ShutdownWatch;
use rustls::server::ResolvesServerCert;
use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::balance::Balance;
use crate::edge::EdgeProxy;
use crate::h1;
use crate::h2::H2Connection;

/// Deadline of a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls configuration of the HTTPS listener: TLS 1.2 and 1.3, ALPN
/// h2 then http/1.1 (and `acme-tls/1` for TLS-ALPN-01 validation, which
/// the resolver answers with the challenge certificate), certificates by
/// SNI from `resolver`.
pub fn tls_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<ServerConfig> {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut config = ServerConfig::builder_with_protocol_versions(&versions)
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
        berth_acme::ACME_TLS_ALPN.to_vec(),
    ];
    Arc::new(config)
}

/// Serves `proxy` on `threads` threads of its own, each a single-threaded
/// runtime accepting on the same socket, with its own upstream connection
/// pool (nothing is handed between runtimes); a thread ahead of the others
/// in open connections lets them take the next ones (`balance.rs`). Each
/// thread ends once `shutdown` turned true and its connections have ended.
pub fn serve_on_threads(
    listener: TcpListener,
    threads: usize,
    make_proxy: impl Fn() -> EdgeProxy,
    tls: Option<Arc<ServerConfig>>,
    shutdown: ShutdownWatch,
) -> std::io::Result<EdgeThreads> {
    let addr = listener.local_addr()?;
    let mut done = Vec::with_capacity(threads);
    let balance = (threads > 1).then(|| Balance::new(threads));
    for i in 0..threads {
        let listener = listener.try_clone()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (proxy, tls, shutdown) = (make_proxy(), tls.clone(), shutdown.clone());
        let worker = balance.clone().map(|balance| (balance, i));
        let (finished, wait) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("berth-edge-{i}"))
            .spawn(move || {
                let serve = serve_worker(listener, proxy, tls, shutdown, worker);
                if let Err(err) = runtime.block_on(serve) {
                    tracing::error!(%addr, %err, "an edge worker stopped");
                }
                let _ = finished.send(());
            })?;
        done.push(wait);
    }
    Ok(EdgeThreads(done))
}

/// The threads of [`serve_on_threads`]. They are not joined, so a
/// connection that never ends cannot hold up the process's exit.
pub struct EdgeThreads(Vec<tokio::sync::oneshot::Receiver<()>>);

impl EdgeThreads {
    /// Resolves when every thread has ended.
    pub async fn finished(self) {
        for wait in self.0 {
            let _ = wait.await;
        }
    }
}

/// Serves `proxy` on an already bound listener until `shutdown` turns true,
/// terminating TLS with `tls` when given. The caller binds, so bind errors
/// surface before anything starts and `:0` ports work. After `shutdown`
/// no connection is accepted; returns when the open ones have ended (idle
/// keep-alive connections close at once; the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    proxy: EdgeProxy,
    tls: Option<Arc<ServerConfig>>,
    shutdown: ShutdownWatch,
) -> std::io::Result<()> {
    serve_worker(listener, proxy, tls, shutdown, None).await
}

/// [`serve`] as worker `i` of the listener's workers, taking its share of
/// the connections by `balance`, when given as `(balance, i)`.
async fn serve_worker(
    listener: TcpListener,
    proxy: EdgeProxy,
    tls: Option<Arc<ServerConfig>>,
    mut shutdown: ShutdownWatch,
    worker: Option<(Arc<Balance>, usize)>,
) -> std::io::Result<()> {
    let _retire = worker
        .as_ref()
        .map(|(balance, i)| balance.retire_on_drop(*i));
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let connections = tokio_util::task::TaskTracker::new();
    let app = Arc::new(proxy);
    let acceptor = tls.map(|config| Arc::new(Acceptor::from_server_config(config)));
    loop {
        let accept = async {
            if let Some((balance, i)) = &worker {
                balance.turn(*i).await;
            }
            listener.accept().await
        };
        let accepted = tokio::select! {
            accepted = accept => accepted,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of descriptors or a connection reset before accept:
                // pause briefly rather than spin.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (app, acceptor, shutdown) = (app.clone(), acceptor.clone(), shutdown.clone());
        let held = worker.as_ref().map(|(balance, i)| balance.opened(*i));
        connections.spawn(async move {
            let _held = held;
            // A tunnel on this connection registers `cut` with its replica,
            // whose drain deadline may then end the whole connection.
            let cut = CancellationToken::new();
            let serve = async {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(%err, "TCP_NODELAY");
                }
                let Some(acceptor) = acceptor else {
                    // Plain HTTP/1.1: the edge's own codec on the bare socket.
                    return h1::serve(&app, tcp, peer, None, &shutdown, cut.clone()).await;
                };
                let mut stream = L4Stream::from(tcp);
                let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
                let _ = digest.peer_addr.set(Some(peer.into()));
                stream.set_socket_digest(digest);
                let handshake = acceptor.tls_handshake(stream);
                let (stream, sni): (Stream, _) =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(tls)) => {
                            // The name the client connected for, which every
                            // request's host is checked against (`fronting.rs`).
                            let sni = tls.get_ssl().and_then(|ssl| ssl.server_name());
                            let sni = sni.map(str::to_owned);
                            (Box::new(tls), sni)
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                if stream.selected_alpn_proto() != Some(ALPN::H2) {
                    return h1::serve(&app, stream, peer, sni, &shutdown, cut.clone()).await;
                }
                // h2: pingora-core's codec, one `EdgeProxy` exchange per stream.
                let h2 = Arc::new(H2Connection {
                    edge: app.clone(),
                    sni,
                    cut: cut.clone(),
                });
                let mut next = h2.process_new(stream, &shutdown).await;
                while let Some(stream) = next {
                    next = h2.process_new(stream, &shutdown).await;
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = cut.cancelled() => {
                    tracing::debug!(%peer, "tunnel closed at its replica's drain deadline");
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}
