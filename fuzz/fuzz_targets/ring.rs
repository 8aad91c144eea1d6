//! Streaming ring: bytes leave in write order with none lost or repeated, the budget returns to zero and `closed` fires once.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::body::ring::FLOOR;
use catzilla_core::{
    ring, CloseInfo, RingBody, RingConfig, RingEvents, RingWriter, Stats, StreamBudget, WriteStatus,
};
use http_body::Body;
use libfuzzer_sys::fuzz_target;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Bytes written to one ring per input at most.
const MAX_WRITTEN: usize = 256 * 1024;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Ring capacities (two rings share one budget, so one draining wakes the other).
    capacity: [u16; 2],
    /// Shared budget in bytes, 0 = unlimited.
    budget: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Write `n` bytes of the running counter pattern to ring `i`.
    Write(bool, u16),
    /// A write of more than one frame (a ring here never grows past its floor), which leaves in several.
    WriteHuge(bool, u8),
    Flush(bool),
    Poll(bool),
    End(bool),
    Abort(bool),
    DropBody(bool),
    DropWriter(bool),
}

#[derive(Default)]
struct Counter {
    drained: AtomicUsize,
    closed: Mutex<Vec<CloseInfo>>,
}

struct Events(Arc<Counter>);

impl RingEvents for Events {
    fn drained(&self) {
        self.0.drained.fetch_add(1, Ordering::SeqCst);
    }
    fn closed(&self, info: CloseInfo) {
        self.0.closed.lock().expect("lock").push(info);
    }
}

/// One ring and the model of what must come out of it.
struct Side {
    writer: Option<RingWriter>,
    body: Option<RingBody>,
    events: Arc<Counter>,
    /// Every byte accepted by a write, in order.
    written: Vec<u8>,
    /// Every byte handed out by the body, in order.
    received: Vec<u8>,
    /// The next byte of the running counter pattern.
    counter: u8,
    /// Non-empty writes that were accepted.
    chunks: u64,
    /// Non-empty writes answered `Full`.
    fulls: usize,
    ended: bool,
    aborted: bool,
    /// The body returned the end (`None`) or the abort error.
    finished: bool,
}

impl Side {
    fn new(capacity: u16, budget: &Arc<StreamBudget>, stats: &Arc<Stats>) -> Self {
        let events = Arc::new(Counter::default());
        let (w, b) = ring(
            RingConfig::new(usize::from(capacity % 2048)),
            Box::new(Events(events.clone())),
            stats.clone(),
            budget.clone(),
        );
        Side {
            writer: Some(w),
            body: Some(b),
            events,
            written: Vec::new(),
            received: Vec::new(),
            counter: 0,
            chunks: 0,
            fulls: 0,
            ended: false,
            aborted: false,
            finished: false,
        }
    }

    fn closed_count(&self) -> usize {
        self.events.closed.lock().expect("lock").len()
    }

    fn write(&mut self, n: usize) {
        let Some(w) = &self.writer else { return };
        if self.written.len() + n > MAX_WRITTEN {
            return; // keeps one input fast
        }
        let data: Vec<u8> = (0..n).map(|i| self.counter.wrapping_add(i as u8)).collect();
        let closed_before = self.body.is_none() || self.ended || self.aborted;
        let buffered_before = w.buffered();
        let status = w.write(&data);
        if closed_before {
            assert_eq!(status, WriteStatus::Closed, "a write after the end/abort/close was taken");
            return;
        }
        assert_ne!(status, WriteStatus::Closed, "a write to an open ring was refused");
        if n > 0 {
            self.written.extend_from_slice(&data);
            self.counter = self.counter.wrapping_add(n as u8);
            self.chunks += 1;
            assert_eq!(w.buffered(), buffered_before + n, "a write copies the whole chunk");
            if status == WriteStatus::Full {
                self.fulls += 1;
            } else {
                assert!(w.buffered() < w.capacity(), "Ready at or over capacity");
            }
        }
    }

    fn poll(&mut self) {
        let Some(body) = &mut self.body else { return };
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let data = frame.into_data().expect("only data frames").into_bytes();
                // At most the ring's limit, which stays at the floor here: rings grow only after
                // their client took GROW_MIN_BYTES, far more than MAX_WRITTEN.
                assert!(!data.is_empty() && data.len() <= FLOOR, "frame of {} bytes", data.len());
                assert!(!self.finished, "data after the end");
                let at = self.received.len();
                assert!(
                    self.written.get(at..at + data.len()) == Some(&data[..]),
                    "bytes out of order, lost or repeated (frame of {} after {at} of {} written)",
                    data.len(),
                    self.written.len()
                );
                self.received.extend_from_slice(&data);
            }
            Poll::Ready(Some(Err(_))) => {
                assert!(self.aborted, "an error frame without abort");
                assert_eq!(
                    self.received.len(),
                    self.written.len(),
                    "abort before everything written was sent"
                );
                self.finished = true;
            }
            Poll::Ready(None) => {
                assert!(self.ended && !self.aborted, "end of body without end()");
                assert_eq!(self.received.len(), self.written.len(), "end before everything written was sent");
                self.finished = true;
            }
            Poll::Pending => {
                assert_eq!(self.received.len(), self.written.len(), "Pending with bytes still buffered");
            }
        }
    }

    fn drop_body(&mut self) {
        let Some(body) = self.body.take() else { return };
        assert_eq!(self.closed_count(), 0, "closed before the body was dropped");
        drop(body);
        let closed = self.events.closed.lock().expect("lock");
        assert_eq!(closed.len(), 1, "closed fires exactly once when the body goes");
        let info = closed[0];
        assert_eq!(info.bytes, self.received.len() as u64, "{info:?}");
        assert_eq!(info.chunks, self.chunks, "{info:?}");
        let complete = self.ended && !self.aborted && self.received.len() == self.written.len();
        assert_eq!(info.aborted, !complete, "{info:?}");
    }
}

fuzz_target!(|input: Input| {
    let budget = StreamBudget::new(usize::from(input.budget));
    let stats = Arc::new(Stats::default());
    let mut sides =
        [Side::new(input.capacity[0], &budget, &stats), Side::new(input.capacity[1], &budget, &stats)];
    for op in input.ops.iter().take(256) {
        match *op {
            Op::Write(i, n) => sides[usize::from(i)].write(usize::from(n % 4096)),
            Op::WriteHuge(i, k) => {
                let k = usize::from(k % 4);
                sides[usize::from(i)].write(2 * FLOOR * k + 1 + k * 7);
            }
            Op::Flush(i) => {
                if let Some(w) = &sides[usize::from(i)].writer {
                    w.flush();
                }
            }
            Op::Poll(i) => sides[usize::from(i)].poll(),
            Op::End(i) => {
                let side = &mut sides[usize::from(i)];
                if let Some(w) = &side.writer {
                    w.end();
                    side.ended |= !side.aborted;
                }
            }
            Op::Abort(i) => {
                let side = &mut sides[usize::from(i)];
                if let Some(w) = &side.writer {
                    w.abort();
                    side.aborted |= !side.ended;
                }
            }
            Op::DropBody(i) => sides[usize::from(i)].drop_body(),
            Op::DropWriter(i) => sides[usize::from(i)].writer = None,
        }
        // The budget counts exactly the bytes still buffered in live rings.
        let buffered: usize =
            sides.iter().filter(|s| s.body.is_some()).map(|s| s.written.len() - s.received.len()).sum();
        assert_eq!(budget.used(), buffered, "budget out of step with the rings");
        for s in &sides {
            // `drained` answers a `Full`: never more often than the writer was told to wait.
            assert!(s.events.drained.load(Ordering::SeqCst) <= s.fulls, "drained without a Full");
        }
    }
    for side in &mut sides {
        side.writer = None;
        // A body that saw the writer end or abort hands out the rest, then finishes.
        if side.body.is_some() && (side.ended || side.aborted) {
            // Frames are at least FLOOR bytes (or what is left): a ring hands out frames of up
            // to its limit, never less than the floor.
            for _ in 0..(side.written.len() - side.received.len()) / FLOOR + 3 {
                side.poll();
            }
            assert!(side.finished, "an ended/aborted body never finished");
        }
        side.drop_body();
        assert_eq!(side.closed_count(), 1);
    }
    assert_eq!(budget.used(), 0, "bytes left counted in the budget once every ring is gone");
    let snap = stats.snapshot();
    assert_eq!((snap.streams_total, snap.streams_active), (2, 0), "{snap:?}");
    let sent: usize = sides.iter().map(|s| s.received.len()).sum();
    assert_eq!(snap.stream_bytes, sent as u64, "{snap:?}");
});
