//! Stalled-reader detection: a socket wrapper that records since when a write has been blocked,
//! so the connection loop can cut a client that stopped reading (`timeouts.stream_idle`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared between the socket wrapper and the connection loop.
#[derive(Debug)]
pub(crate) struct WriteClock {
    origin: Instant,
    /// Milliseconds since `origin` (plus one) at which the current blocked write began; 0: none.
    blocked_since: AtomicU64,
}

impl WriteClock {
    pub(crate) fn new(origin: Instant) -> Arc<Self> {
        Arc::new(Self { origin, blocked_since: AtomicU64::new(0) })
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// How long the pending write has been blocked, in milliseconds (0: not blocked).
    pub(crate) fn blocked_for_ms(&self) -> u64 {
        match self.blocked_since.load(Ordering::Acquire) {
            0 => 0,
            since => self.now().saturating_sub(since),
        }
    }

    fn record<T>(&self, result: &Poll<io::Result<T>>) {
        match result {
            Poll::Pending => {
                let _ =
                    self.blocked_since.compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Relaxed);
            }
            Poll::Ready(_) => self.blocked_since.store(0, Ordering::Release),
        }
    }
}

/// A socket whose writes report to a [`WriteClock`].
pub(crate) struct ClockedIo<S> {
    inner: S,
    clock: Arc<WriteClock>,
}

impl<S> ClockedIo<S> {
    pub(crate) fn new(inner: S, clock: Arc<WriteClock>) -> Self {
        Self { inner, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClockedIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClockedIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.clock.record(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.clock.record(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
