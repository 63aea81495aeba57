//! The edge's HTTP/1.1 front end: one client connection served request
//! after request (pipelined ones too), each forwarded to a replica over a
//! pooled HTTP/1.1 connection, with the policy and replica choice shared
//! with the other front ends (`edge.rs`, `attempt.rs`, `pages.rs`).
//!
//! This is the hot path, so it is written for few syscalls and no
//! per-request allocation: heads are parsed in place from a buffer the
//! connection keeps ([`head`]), the replica's head is written straight
//! from the client's, and a small response (head and body) reaches the
//! client in one write. Bodies stream through in both directions with
//! their framing checked ([`Chunked`]); the request body is relayed while
//! the response is awaited, so a replica answering early (a 413) is heard.
//! h2 clients are served by pingora-core's codec in `h2.rs`.
//!
//! The module's parts, top to bottom (none imports one above it):
//! [`serve`] here → `exchange` (the request loop and its own answers)
//! → `relay` (a request forwarded to a replica) → `answer` (berth's own
//! responses) and `body` (bodies streamed both ways) → `conn` (the
//! connection's state and buffers) → `io` (timed reads and writes, and
//! the codec's limits).

use std::net::SocketAddr;

use bytes::BytesMut;
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::edge::EdgeProxy;
use crate::head;

use conn::Conn;
use io::{Deadline, HEAD_READ};

mod answer;
mod body;
mod conn;
mod exchange;
mod io;
mod relay;

/// Serves one HTTP/1.1 client connection until it closes, fails, idles
/// out, or the edge shuts down; `sni` is the name its TLS handshake asked
/// for, if any. `cut` cancels the connection: a tunnel registers it with
/// its replica, whose drain deadline may then end the connection.
pub(crate) async fn serve<C>(
    edge: &EdgeProxy,
    io: C,
    peer: SocketAddr,
    sni: Option<String>,
    shutdown: &ShutdownWatch,
    cut: CancellationToken,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    // One wait for shutdown for the connection's whole life: registered
    // once, not again for every request.
    let mut stop = shutdown.clone();
    let stopping = async move {
        // A dropped sender never asks to stop.
        if stop.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stopping);
    let mut conn = Conn {
        edge,
        io,
        stopping: stopping.as_mut(),
        fwd: head::Forwarding::new(Some(peer.ip()), edge.options().tls),
        client: Some(peer.ip()),
        outgoing: None,
        sni,
        rbuf: BytesMut::with_capacity(HEAD_READ),
        wbuf: Vec::with_capacity(HEAD_READ),
        ubuf: BytesMut::with_capacity(HEAD_READ),
        block: Vec::with_capacity(1024),
        sbuf: Vec::with_capacity(1024),
        req: head::Request::default(),
        shutdown: shutdown.clone(),
        cut,
        idle: Deadline::new(),
        replica_wait: Deadline::new(),
    };
    conn.run().await;
}

#[cfg(test)]
mod tests;
