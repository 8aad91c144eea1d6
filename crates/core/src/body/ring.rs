//! The bounded per-stream ring: synchronous writes from the producer, one coalesced frame per poll.
//!
//! A producer (JS through the binding, or a Rust task) copies chunks in with [`RingWriter::write`]
//! and calls [`RingWriter::flush`] once per batch (the binding does it once per JS tick). Writes do
//! not wake the socket task by themselves unless the ring fills, so a burst of small writes leaves
//! in one frame; and hyper polls [`RingBody`], which hands over *everything* buffered as one frame,
//! so small writes that piled up while the socket was busy leave in a single socket write too. When the ring is full
//! the writer is told so and waits; [`RingEvents::drained`] fires once the ring falls below its
//! low-water mark, and [`RingEvents::closed`] fires exactly once when the stream ends or the
//! client goes away, so a waiting producer is always woken.
//!
//! The ring is adaptive: it starts at [`FLOOR`] bytes and stays there until its client has taken
//! [`GROW_MIN_BYTES`] (more than the kernel's socket buffers hide: until they are full, a client
//! that stopped reading still looks fast). Once the client has also kept up for [`GROW_AFTER`]
//! (taking at least 8 times the current size, with no write refused by the socket), the ring grows
//! to its configured capacity, or doubles if the client ever fell behind. As soon as the socket
//! refuses a write (a slow or stalled client) it falls back to the floor and gives its spare
//! allocation back, keeping only the bytes it already holds; from there it doubles after each
//! further `GROW_AFTER` of keeping up. A fast client thus gets the full buffer after its first few
//! MiB (few producer wake-ups per byte: a 16 KiB ring halves the throughput of a JS generator
//! against 64 KiB), and a client that stalls within them (on loopback a client that never reads
//! takes 2–4 MiB first) pins one floor, not a grown ring.
//!
//! While the socket refuses a write (bytes hyper holds, or the small unsent end the socket layer
//! copied out of hyper's frame, see `socket.rs`), the ring neither hands hyper another frame
//! (hyper would take frames until it holds `max_buf_size`) nor copies what
//! [`RingWriter::offer`] brings ([`WriteStatus::Refused`]: the producer keeps its chunk and offers
//! it again after `drained`), and an empty ring lets go of the allocation it shared with the last
//! frame; the write that ends the block wakes the connection task. A stalled client thus pins the
//! unsent end of the last socket write and the producer's own chunk, not two more copies; a
//! client that keeps up never meets a refused write, so the ring still refills while hyper sends.
//! This departs from DESIGN.md §2.3 ("streaming writes … copy into a bounded ring"): a write may
//! now be refused and the chunk held by JS until the drain. The awaited Promise still settles on
//! drain or close, and a stalled client costs one chunk less (measured: 64–95 → 46–56 KiB each).

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::budget::StreamBudget;
use super::queue::Queue;
use super::segments::Segments;
use crate::live::{Closer, Live, LiveGuard, LiveKind, LiveRequest, Probe};
use crate::socket::SocketState;
use crate::stats::Stats;
use std::sync::OnceLock;

/// The size a ring starts at and falls back to while its socket is blocked: one typical chunk
/// (Node's own stream high-water mark is 16 KiB). Below the configured capacity it is the capacity.
pub const FLOOR: usize = 16 * 1024;

/// The most a compressed stream's ring grows to (see [`RingBody::compressed`]).
pub const COMPRESSED_CAPACITY: usize = 64 * 1024;

/// The largest frame a compressed stream's ring hands over: what is compressed in one poll.
pub const COMPRESSED_FRAME: usize = 32 * 1024;

/// How long, in milliseconds, a socket write must stay refused before the ring falls back to its
/// floor: a fast client frees its socket buffer within a millisecond, a slow or stalled one does not.
pub const STALLED_MS: u64 = 2;

/// How long a ring's client must keep up (every socket write accepted, and at least 8 times the
/// ring's size taken) before the ring grows, once past [`GROW_MIN_BYTES`]: to its capacity if the
/// client never fell behind, else doubled.
pub const GROW_AFTER: Duration = Duration::from_millis(10);

/// Bytes a client must have taken before its ring grows past the floor at all: more than the
/// kernel's socket buffers hide (Linux's send buffer grows to 4 MiB by default, `tcp_wmem`, and
/// the client's receive window adds to it). Until those buffers are full, a client that has
/// stopped reading still looks fast: on loopback 1,000 such clients each took 2–4 MiB and their
/// rings had grown to 64 KiB and stayed full (155 KiB per stalled stream in all). A fast client
/// takes 8 MiB within milliseconds; a stream that ends before it loses little, since the floor
/// costs throughput per byte (more producer wake-ups), not per stream.
pub const GROW_MIN_BYTES: u64 = 8 * 1024 * 1024;

/// Chunks of at least this many bytes are worth sharing rather than copying (see
/// [`RingWriter::write_shared`]): below it a copy costs less than another segment in the frame,
/// and small writes coalesce into fewer frames when copied.
pub const SHARE_MIN: usize = 8 * 1024;

/// What a producer learns from a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    /// The chunk was copied and the ring still has room.
    Ready = 0,
    /// The chunk was copied and the ring is now full: wait for `drained` (or `closed`).
    Full = 1,
    /// The stream is closed (client gone, ended or aborted): nothing was copied.
    Closed = 2,
    /// Nothing was copied: the socket refuses writes and hyper still holds unsent bytes, so a copy
    /// now would only pin one more buffer for a client that is not reading. Keep the chunk and
    /// offer it again after `drained` (or drop it on `closed`). Only [`RingWriter::offer`] says so.
    Refused = 3,
}

/// How a stream ended, reported once through [`RingEvents::closed`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloseInfo {
    /// Body bytes handed to hyper for the socket.
    pub bytes: u64,
    /// Chunks written by the producer.
    pub chunks: u64,
    /// Milliseconds from the ring's creation to its close.
    pub duration_ms: f64,
    /// `true` when the client went away (or the server cut the connection) before the end.
    pub aborted: bool,
}

/// Notifications from the ring to its producer. Called from tokio threads, outside the lock.
pub trait RingEvents: Send + Sync + 'static {
    /// The ring fell below its low-water mark after the producer was told it was full.
    fn drained(&self);
    /// The stream is over; called exactly once.
    fn closed(&self, info: CloseInfo);
}

struct State {
    /// What is held, in order: copied writes and shared chunks.
    buf: Queue,
    /// The current size limit: between `min(FLOOR, capacity)` and `capacity`.
    limit: usize,
    /// Bytes the client took since the limit last changed, with no refused socket write.
    taken: u64,
    /// When the limit last changed (or the client last fell behind).
    since: Instant,
    /// Set once the ring grew or its client fell behind: from then on it doubles.
    doubling: bool,
    /// The stream is compressed: its limit and frames stay small (see [`RingBody::compressed`]).
    compressed: bool,
    ended: bool,
    aborted: bool,
    /// Set once hyper had a chance to flush before the abort error.
    abort_flushed: bool,
    closed: bool,
    writer_blocked: bool,
    /// The writer's last chunk was refused (`offer`): it waits for the socket, not for room.
    refused: bool,
    waker: Option<Waker>,
    bytes: u64,
    chunks: u64,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    capacity: usize,
    floor: usize,
    created: Instant,
    events: Box<dyn RingEvents>,
    stats: Arc<Stats>,
    budget: Arc<StreamBudget>,
    /// What `app.streams()` reads: bytes, chunks, buffered, stalled since.
    probe: Arc<Probe>,
    /// The connection the stream is written to: whether its socket is blocked drives the limit.
    socket: OnceLock<Arc<SocketState>>,
}

impl Shared {
    /// `true` when a socket write of the connection stayed refused for [`STALLED_MS`] or more
    /// since the last check (or is now).
    fn socket_blocked(&self) -> bool {
        self.socket.get().is_some_and(|s| s.take_longest_block_ms() >= STALLED_MS)
    }

    /// `true` while the connection's socket refuses a write hyper holds bytes for; the write that
    /// ends the block then wakes the connection task (see `SocketState::blocked_wake_on_unblock`).
    fn held_back(&self) -> bool {
        self.socket.get().is_some_and(|s| s.blocked_wake_on_unblock())
    }

    /// Falls back to the floor and returns the spare allocation: the bytes held stay.
    fn shrink(&self, st: &mut State) {
        st.taken = 0;
        st.since = Instant::now();
        st.doubling = true;
        if st.limit == self.floor {
            return;
        }
        st.limit = self.floor;
        st.buf.shrink(self.floor);
        self.probe.limit.store(st.limit as u64, Relaxed);
    }

    /// The most this ring's limit grows to: its capacity, capped for a compressed stream.
    fn grows_to(&self, st: &State) -> usize {
        if st.compressed {
            self.capacity.min(COMPRESSED_CAPACITY)
        } else {
            self.capacity
        }
    }

    /// Counts `n` bytes taken by the client and adapts the limit: back to the floor if the
    /// socket refused a write; grown once the client took `GROW_MIN_BYTES` and kept up for
    /// `GROW_AFTER` (to the capacity if it never fell behind, else doubled).
    fn adapt(&self, st: &mut State, n: usize) {
        if self.socket_blocked() {
            return self.shrink(st);
        }
        let capacity = self.grows_to(st);
        if st.limit >= capacity {
            return;
        }
        st.taken += n as u64;
        if st.bytes >= GROW_MIN_BYTES && st.taken >= 8 * st.limit as u64 && st.since.elapsed() >= GROW_AFTER {
            st.taken = 0;
            st.since = Instant::now();
            // A client that took GROW_MIN_BYTES and never fell behind has shown it is fast: its
            // ring goes straight to the capacity (doubling from the floor cost ~15 % of a 256 MiB
            // stream's throughput on top of the gate). One that fell behind once doubles.
            st.limit = if st.doubling { (st.limit * 2).min(capacity) } else { capacity };
            st.doubling = true;
            self.probe.limit.store(st.limit as u64, Relaxed);
        }
    }
}

/// How a ring is set up.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// Capacity in bytes: the most the writer may buffer before it is told to wait. The ring
    /// starts smaller and grows to it while the client keeps up (see the module docs).
    pub capacity: usize,
    /// Bytes to send after this much idle time (e.g. an SSE `:` comment), so quiet streams are
    /// not cut by idle timeouts on the path. Sent only between frames, never inside one.
    pub heartbeat: Option<(Duration, Bytes)>,
    /// Compression of this stream: `None` follows the server setting, `Some(false)` never
    /// compresses, `Some(true)` compresses even when the server setting is off.
    pub compress: Option<bool>,
}

impl RingConfig {
    /// A ring of at most `capacity` bytes without heartbeat.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, heartbeat: None, compress: None }
    }
}

struct Heartbeat {
    every: Duration,
    bytes: Bytes,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The producer's handle. Cheap to clone.
#[derive(Clone)]
pub struct RingWriter {
    shared: Arc<Shared>,
}

/// The consumer side, an [`http_body::Body`] for hyper. Dropping it closes the stream.
pub struct RingBody {
    shared: Arc<Shared>,
    heartbeat: Option<Heartbeat>,
    compress: Option<bool>,
    /// Keeps the stream listed in `app.streams()` while the body lives.
    _live: Option<LiveGuard>,
}

impl RingBody {
    /// The stream's compression override (see [`RingConfig::compress`]).
    pub fn compress(&self) -> Option<bool> {
        self.compress
    }

    /// Marks the stream compressed: its ring grows to [`COMPRESSED_CAPACITY`] at most and hands
    /// hyper frames of [`COMPRESSED_FRAME`] at most, as every ring did before rings grew to
    /// 512 KiB. Its client's speed is counted in bytes before compression, so a client that
    /// stopped reading looks several times faster than it is (8 MiB of text may be under 1 MiB
    /// on the wire, less than the kernel's buffers hide) and a large ring would fill for it; and
    /// each frame is compressed in one poll. Measured (128 MiB of text through gzip, curl):
    /// ~370 MiB/s with the ring kept at its floor, ~480 with these caps; the compressor, not the
    /// ring, bounds such a stream.
    pub(crate) fn compressed(&self) {
        let mut st = self.shared.state.lock();
        st.compressed = true;
        self.shared.probe.capacity.store(self.shared.grows_to(&st) as u64, Relaxed);
    }

    /// Lists this stream in `live` until it ends; closing it there aborts the stream and cuts
    /// its connection `socket`.
    pub(crate) fn go_live(&mut self, live: &Arc<Live>, req: LiveRequest, socket: Weak<SocketState>) {
        let closer = Box::new(RingCloser { ring: Arc::downgrade(&self.shared), socket });
        self._live = Some(live.register(LiveKind::Stream, req, self.shared.probe.clone(), closer));
    }

    /// Ties the ring's size to the connection's socket: blocked writes shrink it to the floor.
    pub(crate) fn watch(&self, socket: &Arc<SocketState>) {
        let _ = self.shared.socket.set(socket.clone());
    }
}

impl RingBody {
    /// Cuts the stream after `lifetime` (a route's `stream_lifetime`): the producer sees the close
    /// and the connection `socket` is dropped; counted in stats.
    pub(crate) fn expire_after(&self, lifetime: Duration, socket: Weak<SocketState>, stats: Arc<Stats>) {
        let closer = RingCloser { ring: Arc::downgrade(&self.shared), socket };
        tokio::spawn(async move {
            tokio::time::sleep(lifetime).await;
            // Still running (the ring is alive and not closed): end it.
            let open = closer.ring.upgrade().is_some_and(|s| !s.state.lock().closed);
            if open {
                stats.stream_expired();
                closer.close();
            }
        });
    }
}

/// Ends a stream from outside: the producer is told it closed (aborted) and the connection is
/// dropped at once, even if its client stopped reading (then hyper is not polling the body).
struct RingCloser {
    ring: Weak<Shared>,
    socket: Weak<SocketState>,
}

impl Closer for RingCloser {
    fn close(&self) {
        if let Some(shared) = self.ring.upgrade() {
            RingWriter { shared }.abort();
        }
        if let Some(socket) = self.socket.upgrade() {
            socket.cut();
        }
    }
}

/// Error yielded by [`RingBody`] when the producer aborts: hyper then cuts the connection without
/// the terminating chunk, so the client sees a truncated body rather than a spliced response.
#[derive(Debug)]
pub struct StreamAborted;

impl std::fmt::Display for StreamAborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stream aborted by its producer")
    }
}

impl std::error::Error for StreamAborted {}

/// Creates a ring (capacity at least 1 byte) and returns both ends. `budget` is shared by every
/// ring of a server and bounds their sum.
pub fn ring(
    config: RingConfig,
    events: Box<dyn RingEvents>,
    stats: Arc<Stats>,
    budget: Arc<StreamBudget>,
) -> (RingWriter, RingBody) {
    let capacity = config.capacity.max(1);
    stats.stream_opened();
    let probe = Arc::new(Probe::default());
    probe.capacity.store(capacity as u64, Relaxed);
    probe.limit.store(capacity.min(FLOOR) as u64, Relaxed);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: Queue::default(),
            limit: capacity.min(FLOOR),
            taken: 0,
            since: Instant::now(),
            doubling: false,
            compressed: false,
            ended: false,
            aborted: false,
            abort_flushed: false,
            closed: false,
            writer_blocked: false,
            refused: false,
            waker: None,
            bytes: 0,
            chunks: 0,
        }),
        capacity,
        floor: capacity.min(FLOOR),
        created: Instant::now(),
        events,
        stats,
        budget,
        probe,
        socket: OnceLock::new(),
    });
    let heartbeat = config.heartbeat.map(|(every, bytes)| Heartbeat { every, bytes, sleep: None });
    (
        RingWriter { shared: shared.clone() },
        RingBody { shared, heartbeat, compress: config.compress, _live: None },
    )
}

/// Called by the budget when bytes were released: unblocks this ring's writer if it has room.
pub(crate) fn budget_available(shared: &Arc<Shared>) {
    let mut st = shared.state.lock();
    if !st.writer_blocked || st.closed || st.buf.len() >= st.limit {
        return;
    }
    if shared.budget.is_exhausted() {
        drop(st);
        shared.budget.wait(shared);
        return;
    }
    st.writer_blocked = false;
    st.refused = false;
    drop(st);
    shared.probe.unstalled();
    shared.events.drained();
}

impl RingWriter {
    /// Copies `data` into the ring. A chunk larger than the free space is still taken whole (the
    /// ring overshoots by at most one chunk) and the writer is told to wait.
    pub fn write(&self, data: &[u8]) -> WriteStatus {
        self.put(data.len(), |buf, limit| buf.copy(data, limit))
    }

    /// Copies `data` into the ring like [`write`](Self::write), unless the socket is refusing a
    /// write hyper still holds bytes for: then nothing is copied and [`WriteStatus::Refused`] tells
    /// the producer to keep the chunk until `drained`. A producer whose chunks would otherwise be
    /// garbage after the copy (JS) thus pins one buffer, its own, per stalled client instead of a
    /// copy on top of it; a client that keeps up never meets a refused write. Empty chunks are
    /// never refused.
    pub fn offer(&self, data: &[u8]) -> WriteStatus {
        if !data.is_empty() && self.shared.socket.get().is_some_and(|s| s.is_blocked()) {
            let mut st = self.shared.state.lock();
            if st.closed || st.ended || st.aborted {
                return WriteStatus::Closed;
            }
            // Asked under the lock, as `poll_frame` does: a block that ends meanwhile wakes the
            // connection task, whose `poll_frame` then sees `refused` (it waits for this lock)
            // and fires `drained`. Asked before the lock, the wake could come and go first.
            if self.shared.held_back() {
                st.writer_blocked = true;
                st.refused = true;
                // At the floor only: a grown ring's client that is briefly behind keeps its
                // allocation for the next write (a fresh one of up to `bufferSize` per refusal
                // would cost a bulk stream), and a grown ring's frame is rarely freed early.
                if st.limit == self.shared.floor {
                    st.buf.release_if_empty();
                }
                self.shared.probe.stalled();
                return WriteStatus::Refused;
            }
        }
        self.write(data)
    }

    /// Queues `chunk` without copying it: the ring holds it (and counts its bytes against the
    /// ring's size and the budget, as [`write`](Self::write) does) until the socket took it.
    /// `Bytes` are immutable and own their memory, so this is safe for any Rust producer; worth it
    /// from [`SHARE_MIN`] bytes (small ones coalesce better copied). The Node binding copies JS
    /// Buffers instead (see `queue.rs`).
    pub fn write_shared(&self, chunk: Bytes) -> WriteStatus {
        self.put(chunk.len(), |buf, _| buf.share(chunk))
    }

    fn put(&self, n: usize, add: impl FnOnce(&mut Queue, usize)) -> WriteStatus {
        let mut st = self.shared.state.lock();
        if st.closed || st.ended || st.aborted {
            return WriteStatus::Closed;
        }
        if self.shared.socket_blocked() {
            self.shared.shrink(&mut st);
        }
        if n == 0 {
            return if st.buf.len() >= st.limit { WriteStatus::Full } else { WriteStatus::Ready };
        }
        let limit = st.limit;
        add(&mut st.buf, limit);
        st.chunks += 1;
        let probe = &self.shared.probe;
        probe.chunks.store(st.chunks, Relaxed);
        probe.buffered.store(st.buf.len() as u64, Relaxed);
        let within_budget = self.shared.budget.acquire(n);
        if st.buf.len() < st.limit && within_budget {
            return WriteStatus::Ready;
        }
        st.writer_blocked = true;
        probe.stalled();
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        if !within_budget {
            self.shared.budget.wait(&self.shared);
        }
        WriteStatus::Full
    }

    /// Hands the buffered bytes to the socket task now (wakes it if it is waiting for data).
    pub fn flush(&self) {
        let mut st = self.shared.state.lock();
        if st.buf.is_empty() {
            return;
        }
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ends the stream: the buffered bytes are sent, then the terminating chunk.
    pub fn end(&self) {
        self.finish(false);
    }

    /// Aborts the stream: bytes already written are sent, then the connection is cut without the
    /// terminating chunk.
    pub fn abort(&self) {
        self.finish(true);
    }

    fn finish(&self, abort: bool) {
        let mut st = self.shared.state.lock();
        if st.ended || st.aborted {
            return;
        }
        if abort {
            st.aborted = true;
        } else {
            st.ended = true;
        }
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Bytes buffered and not yet handed to the socket writer.
    pub fn buffered(&self) -> usize {
        self.shared.state.lock().buf.len()
    }

    /// `true` once the client is gone or the stream ended.
    pub fn is_closed(&self) -> bool {
        let st = self.shared.state.lock();
        st.closed || st.ended || st.aborted
    }

    /// The ring's configured capacity in bytes (the most it grows to).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The ring's current limit in bytes (it adapts between the floor and the capacity).
    pub fn limit(&self) -> usize {
        self.shared.state.lock().limit
    }
}

impl Body for RingBody {
    type Data = Segments;
    type Error = StreamAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Segments>, StreamAborted>>> {
        let this = self.get_mut();
        let shared = &this.shared;
        let mut st = shared.state.lock();
        // While the socket refuses a write, hyper still holds bytes: another frame would only pin
        // more memory for a client that is not reading (hyper takes frames until it holds
        // `max_buf_size`). The write that ends the block wakes this task again.
        let held_back = (!st.buf.is_empty() || st.refused) && !st.aborted && shared.held_back();
        if !st.buf.is_empty() && !held_back {
            // At the floor (every new or slow client) at most 16 KiB per frame, so what hyper
            // holds for a slow socket stays small and what is still in the ring stays counted
            // against the budget. A ring that grew (its client took 8 MiB and
            // kept up) hands over all it holds, its limit plus the last chunk's overshoot: one
            // socket write per ring instead of one per 32 KiB as before (measured, 256 MiB in
            // 16 KiB chunks from a generator, curl as the client, 512 KiB rings: CPU per GiB 61–64
            // ticks with 32 KiB frames, 42–49 with whole rings). Shared chunks leave in frames of
            // up to the limit: several per vectored write for a fast client. Compressed streams
            // keep their frames small (see `RingBody::compressed`).
            let (max_frame, batch) = if st.compressed {
                let frame = st.limit.clamp(FLOOR, COMPRESSED_FRAME);
                (frame, frame)
            } else if st.limit > FLOOR {
                // Twice the limit at most: a chunk far larger than the ring (a 100 MiB Buffer)
                // leaves in pieces, and what is not yet handed over stays counted in the ring.
                (st.buf.len().min(2 * st.limit), st.limit)
            } else {
                (FLOOR, FLOOR)
            };
            let data = st.buf.frame(max_frame, batch).unwrap_or_default();
            let n = data.remaining();
            st.bytes += n as u64;
            shared.probe.bytes.store(st.bytes, Relaxed);
            shared.probe.buffered.store(st.buf.len() as u64, Relaxed);
            shared.adapt(&mut st, n);
            let unblock = st.writer_blocked && st.buf.len() < st.limit / 2;
            drop(st);
            shared.budget.release(n);
            shared.stats.add_stream_bytes(n as u64);
            if unblock {
                // Unblocks only if the shared budget has room too; otherwise parks on the budget.
                budget_available(shared);
            }
            if let Some(hb) = &mut this.heartbeat {
                if let Some(sleep) = &mut hb.sleep {
                    sleep.as_mut().reset(tokio::time::Instant::now() + hb.every);
                }
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if held_back {
            st.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if st.refused && !st.closed {
            // A producer refused while the socket was blocked (`offer`) waits on an empty ring:
            // the block is over, so it may write again.
            st.refused = false;
            drop(st);
            budget_available(shared);
            st = shared.state.lock();
        }
        if st.aborted {
            if !st.abort_flushed {
                // Return Pending once so hyper flushes the frames it holds before the cut.
                st.abort_flushed = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Everything written before the abort has been sent; now cut without the last chunk.
            return Poll::Ready(Some(Err(StreamAborted)));
        }
        if st.ended {
            return Poll::Ready(None);
        }
        st.waker = Some(cx.waker().clone());
        drop(st);
        if let Some(hb) = &mut this.heartbeat {
            // Created lazily: the ring may be built outside a runtime (on the JS thread).
            let every = hb.every;
            let sleep = hb.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            if sleep.as_mut().poll(cx).is_ready() {
                sleep.as_mut().reset(tokio::time::Instant::now() + every);
                let bytes = hb.bytes.clone();
                let mut st = this.shared.state.lock();
                st.bytes += bytes.len() as u64;
                this.shared.probe.bytes.store(st.bytes, Relaxed);
                drop(st);
                this.shared.stats.add_stream_bytes(bytes.len() as u64);
                return Poll::Ready(Some(Ok(Frame::data(bytes.into()))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        // Never claim the end up front: hyper would then write `content-length: 0` for HEAD and
        // HTTP/1.0, while a streamed GET is chunked (1.1) or close-delimited (1.0).
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for RingBody {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        let aborted = !(st.ended && st.buf.is_empty()) || st.aborted;
        st.closed = true;
        let unsent = st.buf.clear();
        let info = CloseInfo {
            bytes: st.bytes,
            chunks: st.chunks,
            duration_ms: self.shared.created.elapsed().as_secs_f64() * 1000.0,
            aborted,
        };
        drop(st);
        self.shared.budget.release(unsent);
        self.shared.stats.stream_closed(aborted);
        self.shared.events.closed(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counter {
        drained: AtomicUsize,
        closed: Mutex<Vec<CloseInfo>>,
    }

    struct Ev(Arc<Counter>);
    impl RingEvents for Ev {
        fn drained(&self) {
            self.0.drained.fetch_add(1, Ordering::SeqCst);
        }
        fn closed(&self, info: CloseInfo) {
            self.0.closed.lock().push(info);
        }
    }

    fn make(cap: usize) -> (RingWriter, RingBody, Arc<Counter>) {
        let c = Arc::new(Counter::default());
        let (w, b) = ring(
            RingConfig::new(cap),
            Box::new(Ev(c.clone())),
            Arc::new(Stats::default()),
            StreamBudget::new(0),
        );
        (w, b, c)
    }

    #[tokio::test]
    async fn writes_report_full_at_capacity_and_coalesce_into_one_frame() {
        let (w, mut b, c) = make(10);
        assert_eq!(w.write(b"abcd"), WriteStatus::Ready);
        assert_eq!(w.write(b"efgh"), WriteStatus::Ready);
        assert_eq!(w.write(b"ijkl"), WriteStatus::Full);
        assert_eq!(w.buffered(), 12);
        let frame = b.frame().await.unwrap().unwrap().into_data().unwrap().into_bytes();
        assert_eq!(&frame[..], b"abcdefghijkl");
        assert_eq!(c.drained.load(Ordering::SeqCst), 1);
        assert_eq!(w.buffered(), 0);
    }

    /// Drains one frame and writes the next chunk, `times` times.
    async fn keep_up(w: &RingWriter, b: &mut RingBody, chunk: &[u8], times: usize) {
        for _ in 0..times {
            b.frame().await.unwrap().unwrap();
            w.write(chunk);
        }
    }

    /// A client that keeps up from the start: past `GROW_MIN_BYTES` and `GROW_AFTER`, so the
    /// ring has grown (to its capacity, or the compressed cap).
    async fn grow(w: &RingWriter, b: &mut RingBody, chunk: &[u8]) {
        w.write(chunk);
        tokio::time::sleep(GROW_AFTER).await;
        keep_up(w, b, chunk, GROW_MIN_BYTES as usize / chunk.len()).await;
    }

    #[tokio::test]
    async fn a_ring_grows_to_its_capacity_only_after_its_client_took_grow_min_bytes() {
        let (w, mut b, _) = make(128 * 1024);
        let chunk = vec![7u8; 16 * 1024];
        assert_eq!(w.limit(), FLOOR);
        assert_eq!(w.write(&chunk), WriteStatus::Full, "one chunk fills the floor");
        // However long it keeps up, a client that took less than GROW_MIN_BYTES may be one whose
        // kernel buffers are still filling: the ring stays at the floor.
        tokio::time::sleep(GROW_AFTER).await;
        keep_up(&w, &mut b, &chunk, GROW_MIN_BYTES as usize / chunk.len() - 1).await;
        assert_eq!(w.limit(), FLOOR);
        b.frame().await.unwrap().unwrap();
        assert_eq!(w.limit(), 128 * 1024, "past GROW_MIN_BYTES, straight to the capacity");
        assert_eq!(w.write(&chunk), WriteStatus::Ready, "room for a second chunk now");
        assert_eq!(w.capacity(), 128 * 1024);
    }

    #[tokio::test]
    async fn after_a_fallback_a_ring_doubles_once_its_client_kept_up_for_grow_after() {
        let (w, mut b, _) = make(128 * 1024);
        let chunk = vec![7u8; 16 * 1024];
        grow(&w, &mut b, &chunk).await;
        assert_eq!(w.limit(), 128 * 1024);
        // The client falls behind: the shrink a refused socket write triggers.
        w.shared.shrink(&mut w.shared.state.lock());
        assert_eq!(w.limit(), FLOOR);
        // Eight times the floor taken quickly is not enough: the client must keep up for a while.
        keep_up(&w, &mut b, &chunk, 16).await;
        assert_eq!(w.limit(), FLOOR);
        tokio::time::sleep(GROW_AFTER).await;
        b.frame().await.unwrap().unwrap();
        assert_eq!(w.limit(), 2 * FLOOR, "doubled, not straight to the capacity");
    }

    /// A trickling reader fell behind once its kernel buffers were full (~4 MiB), then took a
    /// burst quickly past GROW_MIN_BYTES: its ring jumped from 16 to 256 KiB in one step (seen on
    /// Node 22 and 24 in `adaptive-buffer.spec.ts`). A client that ever fell behind doubles.
    #[tokio::test]
    async fn regression_a_client_that_fell_behind_before_grow_min_bytes_doubles_instead_of_jumping() {
        let (w, mut b, _) = make(256 * 1024);
        let chunk = vec![7u8; 16 * 1024];
        w.write(&chunk);
        keep_up(&w, &mut b, &chunk, 4).await;
        // The shrink a refused socket write triggers, while the ring is still at its floor.
        w.shared.shrink(&mut w.shared.state.lock());
        tokio::time::sleep(GROW_AFTER).await;
        keep_up(&w, &mut b, &chunk, GROW_MIN_BYTES as usize / chunk.len()).await;
        assert_eq!(w.limit(), 2 * FLOOR);
    }

    /// The fuzz target `ring` found its own drain loop assuming 32 KiB frames: a ring at
    /// its floor hands out FLOOR-sized ones, and still delivers everything, in order, then ends.
    #[tokio::test]
    async fn regression_a_ring_at_its_floor_drains_a_backlog_in_floor_sized_frames_then_ends() {
        let (w, mut b, _) = make(64 * 1024);
        let data: Vec<u8> = (0..5 * FLOOR + 100).map(|i| i as u8).collect();
        w.write(&data);
        w.end();
        let mut got = Vec::new();
        while let Some(frame) = b.frame().await {
            let frame = frame.unwrap().into_data().unwrap().into_bytes();
            assert!(frame.len() <= FLOOR, "frame of {}", frame.len());
            got.extend_from_slice(&frame);
        }
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn a_frame_that_would_pin_a_mostly_empty_allocation_is_copied_out() {
        let (w, mut b, _) = make(64 * 1024);
        w.write(&[1u8; 1000]);
        let frame = b.frame().await.unwrap().unwrap().into_data().unwrap().into_bytes();
        assert_eq!(frame.len(), 1000);
        // The ring kept its 16 KiB allocation and reuses it; the frame holds only its bytes.
        w.write(&[2u8; 1000]);
        let st = w.shared.state.lock();
        assert!(st.buf.tail_capacity() >= FLOOR - 1000, "capacity {}", st.buf.tail_capacity());
    }

    #[tokio::test]
    async fn drained_fires_only_after_the_writer_was_told_full() {
        let (w, mut b, c) = make(100);
        w.write(b"abc");
        b.frame().await.unwrap().unwrap();
        assert_eq!(c.drained.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn end_delivers_buffered_bytes_then_finishes() {
        let (w, b, c) = make(100);
        w.write(b"hello ");
        w.write(b"world");
        w.end();
        assert_eq!(w.write(b"late"), WriteStatus::Closed);
        let body = b.collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello world");
        let closed = c.closed.lock();
        assert_eq!(closed.len(), 1);
        assert!(!closed[0].aborted);
        assert_eq!(closed[0].bytes, 11);
        assert_eq!(closed[0].chunks, 2);
    }

    #[tokio::test]
    async fn dropping_the_body_early_closes_as_aborted_and_rejects_writes() {
        let (w, b, c) = make(100);
        w.write(b"x");
        drop(b);
        assert_eq!(w.write(b"y"), WriteStatus::Closed);
        assert!(w.is_closed());
        assert!(c.closed.lock()[0].aborted);
    }

    #[tokio::test]
    async fn abort_sends_what_was_written_then_yields_an_error_frame() {
        let (w, mut b, _c) = make(100);
        w.write(b"partial");
        w.abort();
        assert_eq!(&b.frame().await.unwrap().unwrap().into_data().unwrap().into_bytes()[..], b"partial");
        assert!(b.frame().await.unwrap().is_err());
        let (w, mut b, _c) = make(100);
        w.abort();
        assert!(b.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_pending_poll_is_woken_by_flush() {
        let (w, mut b, _c) = make(100);
        let task =
            tokio::spawn(async move { b.frame().await.unwrap().unwrap().into_data().unwrap().into_bytes() });
        tokio::task::yield_now().await;
        w.write(b"wa");
        w.write(b"ke");
        w.flush();
        assert_eq!(&task.await.unwrap()[..], b"wake");
    }

    #[tokio::test]
    async fn the_shared_budget_blocks_writers_and_wakes_them_when_any_ring_drains() {
        let budget = StreamBudget::new(100);
        let stats = Arc::new(Stats::default());
        let (c1, c2) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
        let (w1, mut b1) =
            ring(RingConfig::new(1000), Box::new(Ev(c1.clone())), stats.clone(), budget.clone());
        let (w2, _b2) = ring(RingConfig::new(1000), Box::new(Ev(c2.clone())), stats, budget.clone());
        assert_eq!(w1.write(&[0; 60]), WriteStatus::Ready);
        assert_eq!(
            w2.write(&[0; 60]),
            WriteStatus::Full,
            "over the shared budget although its own ring is empty"
        );
        assert_eq!(budget.used(), 120);
        b1.frame().await.unwrap().unwrap();
        assert_eq!(budget.used(), 60);
        assert_eq!(c2.drained.load(Ordering::SeqCst), 1, "draining ring 1 wakes the writer of ring 2");
        assert_eq!(w2.write(&[0; 10]), WriteStatus::Ready);
    }

    /// Counts wake-ups of the task that polls the body (hyper's connection task).
    struct Wakes(AtomicUsize);
    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A ring tied to a connection socket, as the connection loop ties them, with the waker of
    /// the task that polls the body and a count of its wake-ups.
    struct Watched {
        w: RingWriter,
        b: RingBody,
        c: Arc<Counter>,
        socket: Arc<SocketState>,
        wakes: Arc<Wakes>,
        waker: Waker,
    }

    impl Watched {
        fn new(cap: usize) -> Self {
            let (w, b, c) = make(cap);
            let socket = SocketState::new(Instant::now(), Arc::default());
            b.watch(&socket);
            let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
            let waker = Waker::from(wakes.clone());
            Self { w, b, c, socket, wakes, waker }
        }

        /// A socket write hyper tried, refused (`None`) or taking `Some(n)` bytes.
        fn socket_write(&self, taken: Option<usize>) {
            let cx = Context::from_waker(&self.waker);
            match taken {
                None => self.socket.record_write::<usize>(&cx, &Poll::Pending),
                Some(n) => self.socket.record_write(&cx, &Poll::Ready(Ok::<usize, io::Error>(n))),
            }
        }

        fn poll_body(&mut self) -> Poll<Option<Result<Frame<Segments>, StreamAborted>>> {
            Pin::new(&mut self.b).poll_frame(&mut Context::from_waker(&self.waker))
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::SeqCst)
        }

        fn drained(&self) -> usize {
            self.c.drained.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn offer_refuses_without_a_copy_while_the_socket_is_blocked_and_holds_the_next_frame_back() {
        let mut r = Watched::new(64 * 1024);
        assert_eq!(r.w.offer(&[1; 1000]), WriteStatus::Ready, "a socket that takes writes: copied");
        r.socket_write(None);
        assert_eq!(r.w.offer(&[2; 1000]), WriteStatus::Refused, "hyper holds unsent bytes");
        assert_eq!(r.w.buffered(), 1000, "nothing copied");
        assert_eq!(r.w.write(&[3; 10]), WriteStatus::Ready, "write() always copies");
        assert_eq!(r.w.offer(&[]), WriteStatus::Ready, "an empty chunk is not refused");
        assert!(r.poll_body().is_pending(), "no frame for hyper while its write is refused");
        assert_eq!(r.drained(), 0);
        // The write that ends the block wakes the connection task once.
        r.socket_write(Some(10));
        assert_eq!(r.wakes(), 1);
        let frame = match r.poll_body() {
            Poll::Ready(Some(Ok(f))) => f.into_data().unwrap().into_bytes(),
            other => panic!("expected a frame, got {:?}", other.map(|f| f.map(|f| f.map(|f| f.is_data())))),
        };
        assert_eq!(frame.len(), 1010);
        assert_eq!(r.drained(), 1, "the refused writer may offer again");
        assert_eq!(r.w.offer(&[2; 1000]), WriteStatus::Ready);
    }

    #[test]
    fn a_refused_writer_lets_go_of_the_allocation_an_empty_ring_shares_with_the_frame_hyper_holds() {
        let mut r = Watched::new(64 * 1024);
        assert_eq!(r.w.offer(&[1; FLOOR]), WriteStatus::Full, "a floor's worth fills the new ring");
        let frame = match r.poll_body() {
            Poll::Ready(Some(Ok(f))) => f.into_data().unwrap().into_bytes(),
            other => panic!("expected a frame, got {:?}", other.map(|f| f.map(|f| f.map(|f| f.is_data())))),
        };
        assert_eq!(frame.len(), FLOOR);
        // Handed over without a copy: the ring keeps a share of the allocation to reuse it.
        let frame = frame.try_into_mut().expect_err("shared with the ring");
        r.socket_write(None);
        assert_eq!(r.w.offer(&[2; 100]), WriteStatus::Refused);
        // Now the frame is the allocation's only owner: when the socket layer drops it (it copies
        // a small unsent end out), the memory is freed, not kept for a client that is not reading.
        assert!(frame.try_into_mut().is_ok(), "the ring let go");
    }

    #[test]
    fn a_writer_refused_on_an_empty_ring_is_drained_once_the_socket_takes_what_hyper_held() {
        let mut r = Watched::new(64 * 1024);
        r.socket_write(None);
        assert_eq!(r.w.offer(&[1; 100]), WriteStatus::Refused);
        assert_eq!(r.w.buffered(), 0);
        assert!(r.poll_body().is_pending());
        assert_eq!(r.drained(), 0, "still blocked");
        // A short write still ends this refusal: the next refused write starts a new one.
        r.socket_write(Some(1));
        assert_eq!(r.wakes(), 1, "the end of the block wakes the task");
        assert!(r.poll_body().is_pending(), "nothing to send yet");
        assert_eq!(r.drained(), 1, "the writer is told to offer again");
        assert!(r.poll_body().is_pending());
        assert_eq!(r.drained(), 1, "told once");
        assert_eq!(r.w.offer(&[1; 100]), WriteStatus::Ready);
        r.w.end();
        assert!(matches!(r.poll_body(), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(r.poll_body(), Poll::Ready(None)));
    }

    #[test]
    fn a_block_nobody_held_back_for_ends_without_a_wake() {
        let r = Watched::new(1024);
        r.socket_write(None);
        r.socket_write(Some(1));
        assert_eq!(r.wakes(), 0, "no extra poll of the connection");
    }

    #[tokio::test]
    async fn dropping_a_ring_returns_its_bytes_to_the_budget() {
        let budget = StreamBudget::new(0);
        let (w, b) = ring(
            RingConfig::new(100),
            Box::new(Ev(Arc::default())),
            Arc::new(Stats::default()),
            budget.clone(),
        );
        w.write(&[1; 50]);
        assert_eq!(budget.used(), 50);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_ring_sends_its_heartbeat_between_frames() {
        let config = RingConfig {
            capacity: 100,
            heartbeat: Some((Duration::from_secs(15), Bytes::from_static(b":\n\n"))),
            compress: None,
        };
        let (w, mut b) =
            ring(config, Box::new(Ev(Arc::default())), Arc::new(Stats::default()), StreamBudget::new(0));
        w.write(b"data: 1\n\n");
        w.flush();
        assert_eq!(&b.frame().await.unwrap().unwrap().into_data().unwrap().into_bytes()[..], b"data: 1\n\n");
        let hb = b.frame().await.unwrap().unwrap().into_data().unwrap().into_bytes();
        assert_eq!(&hb[..], b":\n\n");
    }

    #[tokio::test]
    async fn a_large_backlog_leaves_in_frames_of_at_most_the_rings_limit_in_order() {
        let (w, mut b, _c) = make(128 * 1024);
        let data: Vec<u8> = (0..(5 * FLOOR + 100)).map(|i| (i % 251) as u8).collect();
        w.write(&data);
        w.end();
        let mut got = Vec::new();
        while let Some(frame) = b.frame().await {
            let bytes = frame.unwrap().into_data().unwrap().into_bytes();
            assert!(bytes.len() <= w.limit(), "frame of {} at a limit of {}", bytes.len(), w.limit());
            got.extend_from_slice(&bytes);
        }
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn a_compressed_streams_ring_grows_to_64_kib_at_most_and_leaves_in_32_kib_frames() {
        let (w, mut b, _) = make(512 * 1024);
        b.compressed();
        let chunk = vec![7u8; 16 * 1024];
        grow(&w, &mut b, &chunk).await;
        assert_eq!(w.limit(), COMPRESSED_CAPACITY, "grown, but to 64 KiB only");
        while w.write(&chunk) == WriteStatus::Ready {}
        let frame = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame.remaining(), COMPRESSED_FRAME);
    }

    /// A grown ring hands hyper everything it holds in one frame (one socket write per ring, not
    /// one per 32 KiB): the bulk-stream CPU this saves is measured in the frame rule's comment.
    #[tokio::test]
    async fn a_grown_ring_hands_over_all_it_holds_in_one_frame() {
        let (w, mut b, _c) = make(256 * 1024);
        let chunk = vec![7u8; 16 * 1024];
        grow(&w, &mut b, &chunk).await;
        assert_eq!(w.limit(), 256 * 1024, "grown to the capacity");
        let mut status = WriteStatus::Ready;
        while status == WriteStatus::Ready {
            status = w.write(&chunk);
        }
        let held = w.buffered();
        assert!(held >= 256 * 1024, "filled to the limit: {held}");
        let frame = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame.remaining(), held, "all of it in one frame");
        // A chunk far larger than the ring leaves in frames of twice the limit, and the rest
        // stays buffered (counted) until then.
        let huge = vec![9u8; 8 * 256 * 1024];
        assert_eq!(w.write(&huge), WriteStatus::Full);
        let frame = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame.remaining(), 2 * 256 * 1024);
        assert_eq!(w.buffered(), 6 * 256 * 1024);
    }

    #[test]
    fn an_oversized_chunk_is_taken_whole_and_reports_full() {
        let (w, _b, _c) = make(4);
        assert_eq!(w.write(b"0123456789"), WriteStatus::Full);
        assert_eq!(w.buffered(), 10);
    }
}
