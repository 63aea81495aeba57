//! Timed reads and writes of the HTTP/1.1 front end, and the limits it
//! keeps: how long each wait may take and how much is read at once.

use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// How long an idle keep-alive connection is kept open.
pub(super) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for a whole request head once its first byte came.
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next bytes of a request body.
pub(super) const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a write to a client may stall.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read size for heads, and what a connection's buffers start with (and
/// shrink back to after a large message): memory per idle connection.
pub(super) const HEAD_READ: usize = 4 * 1024;
/// How long, and how much, a closing connection still reads and drops.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(2);
pub(super) const LINGER_BYTES: usize = 1 << 20;
/// Read size for bodies.
pub(super) const BODY_READ: usize = 16 * 1024;
/// Pipelined bytes read ahead while a response is awaited.
pub(super) const PIPELINED_MAX: usize = 64 * 1024;

pub(super) const TIMED_OUT: std::io::ErrorKind = std::io::ErrorKind::TimedOut;

/// Reads up to `size` more bytes of `r` into `buf` within `limit`: `Ok(0)`
/// at end of stream.
pub(super) async fn read_more<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    size: usize,
    limit: Duration,
) -> std::io::Result<usize> {
    buf.reserve(size);
    match timeout(limit, r.read_buf(buf)).await {
        Ok(read) => read,
        Err(_) => Err(TIMED_OUT.into()),
    }
}

/// A connection's timer for one kind of wait (the client's next request,
/// the replica's answer), armed lazily. A wait only computes its deadline;
/// the timer in tokio's wheel stays as it is until it fires, and is then
/// set to the deadline of the wait in progress. `timeout()` around every
/// read registered a timer per wait instead, and perf showed that
/// registering can wake the runtime's driver through its eventfd: a write
/// and an extra poll for about every other request.
pub(super) struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    pub(super) fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Reads up to `size` more bytes of `r` into `buf` within `limit`:
    /// `Ok(0)` at end of stream.
    pub(super) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        buf: &mut BytesMut,
        size: usize,
        limit: Duration,
    ) -> std::io::Result<usize> {
        buf.reserve(size);
        let deadline = tokio::time::Instant::now() + limit;
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let read = r.read_buf(buf);
        tokio::pin!(read);
        loop {
            tokio::select! {
                biased;
                read = &mut read => return read,
                () = self.sleep.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(TIMED_OUT.into());
                    }
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// Writes all of `bytes` to `w` within [`WRITE_TIMEOUT`], and flushes.
pub(super) async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    let write = async {
        w.write_all(bytes).await?;
        w.flush().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(written) => written,
        Err(_) => Err(TIMED_OUT.into()),
    }
}
