//! The connection's socket: records since when a write has been blocked (stalled-reader
//! detection, `timeouts.stream_idle`), whether a request head is partly received, and how the
//! socket closes when hyper lets go of it (lingering, with an optional last answer, at once, or
//! not at all when an idle connection is parked).
//!
//! A partial write's unsent end, when small (at most [`UNSENT_MAX`]), is copied out of hyper's
//! buffers and the whole write reported done: hyper then drops the frame it came from. A client
//! that stops reading leaves one partial write behind, and its frame is a whole allocation
//! (16 KiB for a stream at its ring's floor, up to twice `bufferSize` for a grown one) of which
//! 5.3 KiB on average was still unsent (measured on 2,000 stalled streams), so the copy keeps
//! those bytes and frees the rest. The copy is written before anything else and counts as a
//! blocked write until it is gone, so a ring holds its next frame back as before.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::linger::Lingering;

/// The largest unsent end of a partial write that is copied out of hyper's buffers (see the
/// module docs): one ring floor. A larger remainder stays where it is (a copy would cost more
/// than it frees for a client that is still reading).
pub const UNSENT_MAX: usize = 16 * 1024;

/// Shared between the socket wrapper and the connection loop.
#[derive(Debug)]
pub(crate) struct SocketState {
    origin: Instant,
    /// Milliseconds since `origin` (plus one) at which the current blocked write began; 0: none.
    blocked_since: AtomicU64,
    /// The longest refused write since the last [`SocketState::take_longest_block_ms`], in ms.
    longest_block_ms: AtomicU64,
    /// A read returned end-of-file: the client closed its side, nothing is left to drain.
    eof: AtomicBool,
    /// Bytes arrived since the last request head was dispatched or the last response bytes
    /// were written: a head is partly received.
    head_pending: AtomicBool,
    /// Close at once on drop (a stalled reader or a forced shutdown): no lingering.
    abort: AtomicBool,
    /// Written before the lingering close (e.g. a `408` for a head that timed out).
    last_answer: Mutex<Option<Bytes>>,
    /// The server's count of lingering sockets (bounded by `linger::MAX_LINGERING`).
    lingering: Arc<Lingering>,
    /// Wakes the connection loop to drop the connection now (`app.closeStream`).
    cut: tokio::sync::Notify,
    /// The current route's own `stream_idle` in ms: 0 none (the server's), `u64::MAX` no limit.
    stall_limit_ms: AtomicU64,
    /// Wakes the connection loop when `stall_limit_ms` changed.
    stall_limit_changed: tokio::sync::Notify,
    /// hyper is letting go of an idle connection to park it: its shutdown leaves the socket open.
    parking: AtomicBool,
    /// A response body holds back (a frame, or a writer's refused chunk) until the blocked write
    /// completes: the write that completes it wakes the connection task once more.
    wake_on_unblock: AtomicBool,
}

impl SocketState {
    pub(crate) fn new(origin: Instant, lingering: Arc<Lingering>) -> Arc<Self> {
        Arc::new(Self {
            origin,
            blocked_since: AtomicU64::new(0),
            longest_block_ms: AtomicU64::new(0),
            eof: AtomicBool::new(false),
            head_pending: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            last_answer: Mutex::new(None),
            lingering,
            cut: tokio::sync::Notify::new(),
            stall_limit_ms: AtomicU64::new(0),
            stall_limit_changed: tokio::sync::Notify::new(),
            parking: AtomicBool::new(false),
            wake_on_unblock: AtomicBool::new(false),
        })
    }

    /// Sets the `stream_idle` of the request being answered: `None` the server's, `Some(None)`
    /// no limit, `Some(Some(d))` `d`.
    pub(crate) fn set_stall_limit(&self, limit: Option<Option<std::time::Duration>>) {
        let ms = match limit {
            None => 0,
            Some(None) => u64::MAX,
            Some(Some(d)) => (d.as_millis() as u64).clamp(1, u64::MAX - 1),
        };
        if self.stall_limit_ms.swap(ms, Ordering::AcqRel) != ms {
            self.stall_limit_changed.notify_one();
        }
    }

    /// The `stream_idle` in force: the route's, else `default`.
    pub(crate) fn stall_limit(&self, default: Option<std::time::Duration>) -> Option<std::time::Duration> {
        match self.stall_limit_ms.load(Ordering::Acquire) {
            0 => default,
            u64::MAX => None,
            ms => Some(std::time::Duration::from_millis(ms)),
        }
    }

    /// Resolves when the route's `stream_idle` changed.
    pub(crate) async fn stall_limit_changed(&self) {
        self.stall_limit_changed.notified().await;
    }

    /// Drops the connection now, without lingering, even while a write to a client that does not
    /// read is pending (the response body cannot end it then: hyper is not polling it).
    pub(crate) fn cut(&self) {
        self.abort_on_close();
        self.cut.notify_one();
    }

    /// Resolves once [`SocketState::cut`] was called.
    pub(crate) async fn cut_requested(&self) {
        self.cut.notified().await;
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

    /// `true` while a socket write is refused (a cheap first check; see the next method).
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked_since.load(Ordering::Relaxed) != 0
    }

    /// `true` while the socket refuses a write hyper still holds bytes for; then asks the write that
    /// ends the block to wake the connection task, so whoever held back because of it (a ring's
    /// next frame, a producer's refused chunk) is polled again. Checked after asking, so the wake
    /// cannot be missed: either the writer sees this request, or this sees the block over.
    pub(crate) fn blocked_wake_on_unblock(&self) -> bool {
        if !self.is_blocked() {
            return false;
        }
        self.wake_on_unblock.store(true, Ordering::SeqCst);
        self.blocked_since.load(Ordering::SeqCst) != 0
    }

    /// The longest time a write stayed refused since the last call (including the one refused
    /// now), in milliseconds: how far the client fell behind.
    pub(crate) fn take_longest_block_ms(&self) -> u64 {
        self.longest_block_ms.swap(0, Ordering::AcqRel).max(self.blocked_for_ms())
    }

    /// `true` while part of a request head has arrived and not yet been dispatched.
    pub(crate) fn head_pending(&self) -> bool {
        self.head_pending.load(Ordering::Acquire)
    }

    /// A request head was parsed and dispatched.
    pub(crate) fn head_dispatched(&self) {
        self.head_pending.store(false, Ordering::Release);
    }

    /// Close without lingering: the client is not reading, or the server cuts everything.
    pub(crate) fn abort_on_close(&self) {
        self.abort.store(true, Ordering::Release);
    }

    /// Sends `answer` before the lingering close.
    pub(crate) fn answer_on_close(&self, answer: Bytes) {
        *self.last_answer.lock() = Some(answer);
    }

    /// While set, a shutdown asked by hyper keeps the socket open (see `server::conn`).
    pub(crate) fn set_parking(&self, on: bool) {
        self.parking.store(on, Ordering::Release);
    }

    /// Records a socket write's result: when a refused write began, how long the longest lasted,
    /// and the end of a block (waking the task if something held back for it).
    pub(crate) fn record_write<T>(&self, cx: &Context<'_>, result: &Poll<io::Result<T>>) {
        match result {
            Poll::Pending => {
                let _ =
                    self.blocked_since.compare_exchange(0, self.now(), Ordering::SeqCst, Ordering::Relaxed);
            }
            Poll::Ready(r) => {
                let since = self.blocked_since.swap(0, Ordering::SeqCst);
                if since != 0 {
                    self.longest_block_ms.fetch_max(self.now().saturating_sub(since), Ordering::AcqRel);
                    if self.wake_on_unblock.swap(false, Ordering::SeqCst) {
                        cx.waker().wake_by_ref();
                    }
                }
                if r.is_ok() {
                    self.head_pending.store(false, Ordering::Release);
                }
            }
        }
    }
}

/// The connection's TCP stream as hyper sees it; reports to a [`SocketState`] and, when dropped,
/// hands the stream to a lingering close unless the client already closed or the state says to
/// abort.
pub(crate) struct ConnIo {
    inner: Option<TcpStream>,
    state: Arc<SocketState>,
    /// Bytes read by an earlier hyper connection and not parsed: read again before the socket.
    replay: Bytes,
    /// The copied unsent end of a partial write (see the module docs): written before anything
    /// else; its allocation is given back once it is written.
    unsent: BytesMut,
}

impl ConnIo {
    pub(crate) fn new(inner: TcpStream, state: Arc<SocketState>) -> Self {
        Self { inner: Some(inner), state, replay: Bytes::new(), unsent: BytesMut::new() }
    }

    /// Makes `bytes` (left unparsed by the hyper connection that let go of this socket) the next
    /// ones read.
    pub(crate) fn replay(&mut self, bytes: Bytes) {
        debug_assert!(self.replay.is_empty());
        self.replay = bytes;
    }

    /// Resolves when the socket has input (or end-of-file, or an error) to read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match &self.inner {
            Some(s) => s.readable().await,
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.inner.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Writes the copied unsent bytes: `Ready(Ok)` once none are left, `Pending` (recorded as a
    /// blocked write, the task woken when the socket has room) while the socket refuses them.
    fn poll_unsent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.unsent.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while !self.unsent.is_empty() {
            let r = match self.inner.as_mut() {
                Some(s) => Pin::new(s).poll_write(cx, &self.unsent),
                None => return Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            };
            self.state.record_write(cx, &r);
            let e = match ready!(r) {
                Ok(0) => io::ErrorKind::WriteZero.into(),
                Ok(n) => {
                    self.unsent.advance(n);
                    continue;
                }
                Err(e) => e,
            };
            // The connection fails: nothing is left to send, not even on a lingering close.
            self.unsent = BytesMut::new();
            return Poll::Ready(Err(e));
        }
        // Written: give the allocation back.
        self.unsent = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// After a vectored write of `bufs` that took `n` bytes: copies a small unsent end out (and
    /// tries it at once, which registers the wake-up if the socket is full) and reports all of
    /// `bufs` written. Returns the count to report to hyper.
    fn keep_unsent(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>], n: usize) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let rest = total - n;
        if n == 0 || rest == 0 || rest > UNSENT_MAX {
            return Ok(n);
        }
        debug_assert!(self.unsent.is_empty());
        let mut unsent = BytesMut::with_capacity(rest);
        let mut skip = n;
        for b in bufs {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            unsent.put_slice(&b[skip..]);
            skip = 0;
        }
        self.unsent = unsent;
        match self.poll_unsent(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(total),
        }
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else { return };
        let st = &self.state;
        let mut answer = st.last_answer.lock().take();
        // Bytes hyper counts as written go out before any last answer.
        if !self.unsent.is_empty() {
            let mut out = std::mem::take(&mut self.unsent);
            if let Some(a) = answer.take() {
                out.extend_from_slice(&a);
            }
            answer = Some(out.freeze());
        }
        if st.abort.load(Ordering::Acquire) || (answer.is_none() && st.eof.load(Ordering::Acquire)) {
            return;
        }
        // Over the cap (or outside a runtime) the socket is simply closed.
        if let (Ok(rt), Some(slot)) = (tokio::runtime::Handle::try_current(), st.lingering.enter()) {
            rt.spawn(crate::linger::linger(stream, answer, slot));
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() && buf.remaining() > 0 {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay.split_to(n));
            this.state.head_pending.store(true, Ordering::Release);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let want = buf.remaining() > 0;
        let r = match this.stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Poll::Ready(Ok(())) = r {
            if buf.filled().len() > before {
                this.state.head_pending.store(true, Ordering::Release);
            } else if want {
                this.state.eof.store(true, Ordering::Release);
            }
        }
        r
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_unsent(cx))?;
        let r = match this.stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.state.record_write(cx, &r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_unsent(cx))?;
        let r = match this.stream() {
            Ok(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.state.record_write(cx, &r);
        match r {
            Poll::Ready(Ok(n)) => Poll::Ready(this.keep_unsent(cx, bufs, n)),
            r => r,
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_unsent(cx))?;
        match this.stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_unsent(cx))?;
        if this.state.parking.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        match this.stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// A served socket and its client (which reads nothing until told to).
    async fn pair() -> (ConnIo, Arc<SocketState>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let state = SocketState::new(Instant::now(), Arc::new(Lingering::default()));
        (ConnIo::new(server, state.clone()), state, client)
    }

    /// One vectored write; `None` when the socket refused it (still pending after 100 ms).
    async fn write(io: &mut ConnIo, bufs: &[&[u8]]) -> Option<usize> {
        let slices: Vec<io::IoSlice<'_>> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
        let w = poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, &slices));
        tokio::time::timeout(Duration::from_millis(100), w).await.ok().map(|r| r.expect("write"))
    }

    /// Writes chunked-encoding frames of 16 KiB (as hyper hands over a ring at its floor), each
    /// with its own content, until one is refused while an unsent end is held; returns the bytes
    /// reported written, in order.
    async fn fill_until_an_end_is_kept(io: &mut ConnIo, client: &mut TcpStream) -> Vec<u8> {
        let mut sent = Vec::new();
        for i in 0u32..20_000 {
            let head = format!("{i:x}\r\n");
            let data = vec![(i % 251) as u8; 16 * 1024];
            let parts: [&[u8]; 3] = [head.as_bytes(), &data, b"\r\n"];
            match write(io, &parts).await {
                Some(n) => {
                    let total: usize = parts.iter().map(|p| p.len()).sum();
                    assert_eq!(n, total, "a partial write of a floor frame is reported whole");
                    parts.iter().for_each(|p| sent.extend_from_slice(p));
                }
                None if !io.unsent.is_empty() => return sent,
                None => {
                    // Refused at a frame boundary (rare): let the client take some and go on;
                    // only the frames written from here on are checked.
                    let mut buf = vec![0u8; 100_000];
                    let _ = client.read(&mut buf).await.expect("read");
                    sent.clear();
                }
            }
        }
        panic!("no write ever left an unsent end");
    }

    #[tokio::test]
    async fn a_small_unsent_end_is_copied_out_written_first_and_counts_as_a_blocked_write() {
        let (mut io, state, mut client) = pair().await;
        let sent = fill_until_an_end_is_kept(&mut io, &mut client).await;
        assert!(state.is_blocked(), "the socket refuses writes while the copy waits");
        assert!(io.unsent.len() <= UNSENT_MAX && io.unsent.capacity() <= UNSENT_MAX);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.expect("read");
            got
        });
        poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await.expect("flushed and shut down");
        assert!(io.unsent.is_empty() && io.unsent.capacity() == 0, "the copy's allocation is given back");
        assert!(!state.is_blocked());
        let got = reader.await.expect("reader");
        assert!(got.len() >= sent.len());
        assert_eq!(
            &got[got.len() - sent.len()..],
            &sent[..],
            "every byte reported written arrived, in order"
        );
    }

    #[tokio::test]
    async fn an_unsent_end_left_when_the_connection_drops_goes_out_before_the_last_answer() {
        let (mut io, state, mut client) = pair().await;
        let sent = fill_until_an_end_is_kept(&mut io, &mut client).await;
        state.answer_on_close(Bytes::from_static(b"LAST"));
        drop(io);
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got))
            .await
            .expect("the lingering close ends")
            .expect("read");
        let want = [&sent[..], b"LAST"].concat();
        assert!(got.len() >= want.len());
        assert_eq!(&got[got.len() - want.len()..], &want[..]);
    }

    #[tokio::test]
    async fn a_large_unsent_end_stays_with_the_caller() {
        let (mut io, _state, _client) = pair().await;
        // More than loopback's socket buffers take at once.
        let big = vec![7u8; 64 << 20];
        let n = write(&mut io, &[&big]).await.expect("the socket takes some");
        assert!(n < big.len(), "a partial write, reported as one");
        assert!(io.unsent.is_empty());
    }
}
