//! Message bodies on the HTTP/1.1 path: a request body relayed to the
//! replica (re-chunked when chunked), a response body relayed to the
//! client, each with its framing checked.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::chunked::Chunked;
use crate::compress::{Coding, Encoder};
use crate::head::{self, Framing};

use super::io::{read_more, write_all, Deadline, BODY_READ, BODY_TIMEOUT};

/// Why sending a request body failed.
pub(super) enum SendError {
    Client {
        malformed: bool,
    },
    /// The body ran past the route's limit.
    TooLarge,
    Replica(std::io::Error),
}

/// Relays the rest of a request body (framed by `framing`) from the client
/// to the replica; `done` turns true when all of it went.
pub(super) async fn send_body<C, W>(
    io: &mut C,
    rbuf: &mut BytesMut,
    to: &mut W,
    framing: Framing,
    limit: Option<u64>,
    done: &AtomicBool,
) -> Result<(), SendError>
where
    C: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let client_gone = |e: std::io::Error| {
        tracing::debug!(err = %e, "client body failed");
        SendError::Client { malformed: false }
    };
    match framing {
        Framing::Length(mut left) => {
            while left > 0 {
                if rbuf.is_empty()
                    && read_more(io, rbuf, BODY_READ, BODY_TIMEOUT)
                        .await
                        .map_err(client_gone)?
                        == 0
                {
                    return Err(SendError::Client { malformed: false });
                }
                let n = usize::try_from(left).map_or(rbuf.len(), |l| l.min(rbuf.len()));
                write_all(to, &rbuf[..n])
                    .await
                    .map_err(SendError::Replica)?;
                rbuf.advance(n);
                left -= n as u64;
            }
        }
        Framing::Chunked => {
            // Re-chunked with berth's own size lines, extensions and
            // trailers dropped (as nginx does): however the client framed
            // it, the replica parses only framing the edge wrote.
            let mut chunked = Chunked::default();
            let mut out = Vec::with_capacity(BODY_READ + 64);
            let mut total = 0u64;
            loop {
                if !rbuf.is_empty() {
                    out.clear();
                    let n = chunked
                        .feed(rbuf, |data| {
                            total += data.len() as u64;
                            let _ = write!(out, "{:x}\r\n", data.len());
                            out.extend_from_slice(data);
                            out.extend_from_slice(b"\r\n");
                        })
                        .map_err(|_| SendError::Client { malformed: true })?;
                    rbuf.advance(n);
                    if limit.is_some_and(|max| total > max) {
                        return Err(SendError::TooLarge);
                    }
                    if chunked.is_done() {
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    if !out.is_empty() {
                        write_all(to, &out).await.map_err(SendError::Replica)?;
                    }
                    if chunked.is_done() {
                        break;
                    }
                }
                if read_more(io, rbuf, BODY_READ, BODY_TIMEOUT)
                    .await
                    .map_err(client_gone)?
                    == 0
                {
                    return Err(SendError::Client { malformed: false });
                }
            }
        }
        Framing::Empty | Framing::Close => {}
    }
    done.store(true, Ordering::Relaxed);
    Ok(())
}

/// Relays a response body from the replica to the client after its head
/// (already in `wbuf`): a small response goes out in one write. Each read
/// of the replica waits at most `limit`.
pub(super) async fn relay_body<C: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
    io: &mut C,
    replica: &mut R,
    wait: &mut Deadline,
    limit: Duration,
    ubuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
    response: &head::Response,
) -> std::io::Result<()> {
    if let Some(coding) = response.coding {
        return relay_compressed(io, replica, wait, limit, ubuf, wbuf, response, coding).await;
    }
    let truncated = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body cut short");
    match response.body {
        Framing::Empty => write_all(io, wbuf).await,
        Framing::Length(mut left) => loop {
            let n = usize::try_from(left).map_or(ubuf.len(), |l| l.min(ubuf.len()));
            wbuf.extend_from_slice(&ubuf[..n]);
            ubuf.advance(n);
            left -= n as u64;
            write_all(io, wbuf).await?;
            wbuf.clear();
            if left == 0 {
                return Ok(());
            }
            if wait.read(replica, ubuf, BODY_READ, limit).await? == 0 {
                return Err(truncated());
            }
        },
        Framing::Chunked => {
            let mut chunked = Chunked::default();
            loop {
                if !ubuf.is_empty() {
                    let bad = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                    let n = if response.dechunk {
                        chunked
                            .feed(ubuf, |d| wbuf.extend_from_slice(d))
                            .map_err(bad)?
                    } else {
                        let n = chunked.feed(ubuf, |_| {}).map_err(bad)?;
                        wbuf.extend_from_slice(&ubuf[..n]);
                        n
                    };
                    ubuf.advance(n);
                    if chunked.is_done() {
                        return write_all(io, wbuf).await;
                    }
                }
                // What is here goes out before waiting for more (a stream
                // of events must flow).
                if !wbuf.is_empty() {
                    write_all(io, wbuf).await?;
                    wbuf.clear();
                }
                if wait.read(replica, ubuf, BODY_READ, limit).await? == 0 {
                    return Err(truncated());
                }
            }
        }
        Framing::Close => loop {
            wbuf.extend_from_slice(ubuf);
            ubuf.clear();
            write_all(io, wbuf).await?;
            wbuf.clear();
            if wait.read(replica, ubuf, BODY_READ, limit).await? == 0 {
                return Ok(());
            }
        },
    }
}

/// [`relay_body`] for a response the route compresses: the replica's
/// body unframed, compressed as it comes (never held whole), and sent
/// chunked (or up to the close to an HTTP/1.0 client). What the encoder
/// holds is flushed whenever the replica pauses, so a stream of events
/// still flows.
#[allow(clippy::too_many_arguments)]
async fn relay_compressed<C: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
    io: &mut C,
    replica: &mut R,
    wait: &mut Deadline,
    limit: Duration,
    ubuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
    response: &head::Response,
    coding: Coding,
) -> std::io::Result<()> {
    let bad = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut encoder = Some(Encoder::new(coding)?);
    let mut plain: Vec<u8> = Vec::with_capacity(BODY_READ);
    let mut packed: Vec<u8> = Vec::with_capacity(BODY_READ);
    let mut chunked = Chunked::default();
    let mut left = match response.body {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut ended = false;
    let mut paused = false;
    loop {
        let done = match response.body {
            Framing::Length(_) => {
                let n = usize::try_from(left).map_or(ubuf.len(), |l| l.min(ubuf.len()));
                plain.extend_from_slice(&ubuf[..n]);
                ubuf.advance(n);
                left -= n as u64;
                left == 0
            }
            Framing::Chunked => {
                let n = chunked
                    .feed(ubuf, |d| plain.extend_from_slice(d))
                    .map_err(bad)?;
                ubuf.advance(n);
                chunked.is_done()
            }
            Framing::Close => {
                plain.extend_from_slice(ubuf);
                ubuf.clear();
                ended
            }
            Framing::Empty => true,
        };
        if let Some(encoder) = encoder.as_mut() {
            encoder.push(&plain, &mut packed)?;
            if paused && !done {
                encoder.flush(&mut packed)?;
            }
        }
        plain.clear();
        if done {
            if let Some(encoder) = encoder.take() {
                encoder.finish(&mut packed)?;
            }
        }
        if !packed.is_empty() {
            if response.chunk_coded {
                let _ = write!(wbuf, "{:x}\r\n", packed.len());
                wbuf.extend_from_slice(&packed);
                wbuf.extend_from_slice(b"\r\n");
            } else {
                wbuf.extend_from_slice(&packed);
            }
            packed.clear();
        }
        if done && response.chunk_coded {
            wbuf.extend_from_slice(b"0\r\n\r\n");
        }
        if !wbuf.is_empty() {
            write_all(io, wbuf).await?;
            wbuf.clear();
        }
        if done {
            return Ok(());
        }
        let n = wait.read(replica, ubuf, BODY_READ, limit).await?;
        if n == 0 {
            if response.body != Framing::Close {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "body cut short",
                ));
            }
            ended = true;
        }
        // A short read: the replica may be pausing between events.
        paused = n < BODY_READ;
    }
}
