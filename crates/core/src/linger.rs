//! Lingering close (as nginx does): after the server decided to close a connection whose client
//! may still be sending (a refused body, an oversized head, a WebSocket message over the limit),
//! the answer is sent, the write side shut down, and input read and discarded for a bounded time
//! before the socket closes. Closing with unread input makes the kernel send a TCP reset, which
//! can destroy the answer before the client reads it (`EPIPE` instead of `413`).

use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest time a closing connection is kept to drain the client's input.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// Longest wait for more input before closing (a client that went quiet has read the answer).
pub const LINGER_IDLE: Duration = Duration::from_secs(2);
/// Most input discarded while lingering; a client sending more is cut.
pub const LINGER_BYTES: usize = 16 << 20;
/// Sockets one server lets linger at once; past it a closing socket is closed at once, so a
/// client opening and abandoning connections cannot pile up descriptors outside
/// `max_connections`.
pub const MAX_LINGERING: usize = 1024;

/// Sockets lingering now (one counter per server).
#[derive(Debug, Default)]
pub(crate) struct Lingering(AtomicUsize);

impl Lingering {
    /// Takes a slot; `None` when [`MAX_LINGERING`] sockets already linger.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<LingerSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_LINGERING).then_some(n + 1))
            .ok()
            .map(|_| LingerSlot(self.clone()))
    }
}

/// A lingering socket's place in the count, given back on drop.
pub(crate) struct LingerSlot(Arc<Lingering>);

impl Drop for LingerSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Writes `answer` (if any), shuts the write side down, then reads and discards input until the
/// client closes, goes quiet for [`LINGER_IDLE`], sends [`LINGER_BYTES`], or [`LINGER_TIME`]
/// passes. Dropping the stream afterwards closes it.
pub(crate) async fn linger(mut stream: TcpStream, answer: Option<Bytes>, slot: LingerSlot) {
    let _slot = slot;
    let deadline = Instant::now() + LINGER_TIME;
    if let Some(a) = answer {
        if !matches!(tokio::time::timeout(LINGER_IDLE, stream.write_all(&a)).await, Ok(Ok(()))) {
            return;
        }
    }
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || total > LINGER_BYTES {
            return;
        }
        match tokio::time::timeout(left.min(LINGER_IDLE), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => return,
        }
    }
}
