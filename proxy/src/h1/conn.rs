//! One HTTP/1.1 client connection's state: the buffers it reuses from
//! request to request, the request head being served, its timers.

use std::future::Future;
use std::pin::Pin;

use bytes::{Buf, BytesMut};
use pingora_core::server::ShutdownWatch;
use tokio_util::sync::CancellationToken;

use crate::edge::EdgeProxy;
use crate::head;

use super::io::Deadline;

/// One client connection and the buffers it reuses.
pub(super) struct Conn<'e, C> {
    pub(super) edge: &'e EdgeProxy,
    pub(super) io: C,
    /// Resolves once the edge shuts down; not polled after that.
    pub(super) stopping: Pin<&'e mut (dyn Future<Output = ()> + Send)>,
    pub(super) fwd: head::Forwarding,
    /// The client's address (for route rules).
    pub(super) client: Option<std::net::IpAddr>,
    /// What the response to the current request gets from its route's
    /// rules (`None` on a route without rules).
    pub(super) outgoing: Option<crate::rules::Outgoing>,
    /// The name the connection's TLS handshake asked for.
    pub(super) sni: Option<String>,
    /// Bytes from the client not consumed yet (pipelined requests too).
    pub(super) rbuf: BytesMut,
    /// Bytes for the client.
    pub(super) wbuf: Vec<u8>,
    /// Bytes from the replica.
    pub(super) ubuf: BytesMut,
    /// The header section of the request for the replica.
    pub(super) block: Vec<u8>,
    /// The head sent to the replica.
    pub(super) sbuf: Vec<u8>,
    pub(super) req: head::Request,
    pub(super) shutdown: ShutdownWatch,
    /// Cancels the connection (see [`super::serve`]).
    pub(super) cut: CancellationToken,
    /// Times the wait for the client's next request.
    pub(super) idle: Deadline,
    /// Times the waits for the replica.
    pub(super) replica_wait: Deadline,
}

/// How one exchange ended.
pub(super) struct Outcome {
    /// Status sent to the client (0: none).
    pub(super) status: u16,
    /// The client connection may carry another request.
    pub(super) keep: bool,
}

impl<C> Conn<'_, C> {
    /// Drops the request head from the read buffer.
    pub(super) fn consume_head(&mut self) {
        self.rbuf.advance(self.req.head_len);
    }
}
