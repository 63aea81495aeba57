//! An upgraded connection (a WebSocket) carried both ways between client
//! and replica, until both ends closed or no byte moved either way for the
//! idle deadline: a peer that vanished without a FIN would otherwise hold
//! the connection, its buffers and its replica's drain forever.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How a tunnel ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Both sides closed (or one failed): the error, if any.
    Closed(Option<io::Error>),
    /// Nothing moved for the idle deadline.
    Idle,
}

/// Copies `a` ⇄ `b` until both closed, one failed, or nothing moved for
/// `idle`.
pub(crate) async fn carry<A, B>(a: &mut A, b: &mut B, idle: Duration) -> End
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let epoch = Instant::now();
    // Milliseconds after `epoch` of the last byte either way.
    let last = AtomicU64::new(0);
    let mut a = Watched {
        inner: a,
        last: &last,
        epoch,
    };
    let mut b = Watched {
        inner: b,
        last: &last,
        epoch,
    };
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    let sleep = tokio::time::sleep(idle);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            copied = &mut copy => return End::Closed(copied.err()),
            () = &mut sleep => {
                let moved = epoch + Duration::from_millis(last.load(Ordering::Relaxed));
                if Instant::now().saturating_duration_since(moved) >= idle {
                    return End::Idle;
                }
                sleep.as_mut().reset(moved + idle);
            }
        }
    }
}

/// A stream that notes when bytes last moved through it.
struct Watched<'a, S: ?Sized> {
    inner: &'a mut S,
    last: &'a AtomicU64,
    epoch: Instant,
}

impl<S: ?Sized> Watched<'_, S> {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis();
        self.last
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin + ?Sized> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin + ?Sized> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut *self.inner).poll_write(cx, bytes);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_a_tunnel_and_silence_ends_it() {
        let (mut client, mut a) = tokio::io::duplex(64);
        let (mut b, mut replica) = tokio::io::duplex(64);
        let idle = Duration::from_secs(60);
        let carried = tokio::spawn(async move { carry(&mut a, &mut b, idle).await });
        // A byte every 40 s keeps it open past the deadline.
        let mut byte = [0u8; 1];
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            client.write_all(b"x").await.unwrap();
            replica.read_exact(&mut byte).await.unwrap();
        }
        assert!(!carried.is_finished(), "traffic keeps the tunnel");
        let started = Instant::now();
        let end = carried.await.unwrap();
        assert!(matches!(end, End::Idle), "{end:?}");
        let waited = started.elapsed();
        assert!(waited <= idle + Duration::from_secs(1), "{waited:?}");
    }

    #[tokio::test]
    async fn both_ends_closing_ends_it() {
        let (client, mut a) = tokio::io::duplex(64);
        let (mut b, replica) = tokio::io::duplex(64);
        drop((client, replica));
        let end = carry(&mut a, &mut b, Duration::from_secs(60)).await;
        assert!(matches!(end, End::Closed(_)), "{end:?}");
    }
}
