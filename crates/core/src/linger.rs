//! Lingering close (as nginx does): after the server decided to close a connection whose client
//! may still be sending (a refused body, an oversized head, a WebSocket message over the limit),
//! the answer is sent, the write side shut down, and input read and discarded for a bounded time
//! before the socket closes. Closing with unread input makes the kernel send a TCP reset, which
//! can destroy the answer before the client reads it (`EPIPE` instead of `413`).

use bytes::Bytes;
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

/// Writes `answer` (if any), shuts the write side down, then reads and discards input until the
/// client closes, goes quiet for [`LINGER_IDLE`], sends [`LINGER_BYTES`], or [`LINGER_TIME`]
/// passes. Dropping the stream afterwards closes it.
pub(crate) async fn linger(mut stream: TcpStream, answer: Option<Bytes>) {
    let deadline = Instant::now() + LINGER_TIME;
    if let Some(a) = answer {
        if !matches!(tokio::time::timeout(LINGER_IDLE, stream.write_all(&a)).await, Ok(Ok(()))) {
            return;
        }
    }
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
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
