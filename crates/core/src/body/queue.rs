//! A ring's contents in order: writes copied into one growing buffer, owned chunks shared.
//!
//! Copied writes (everything from JS; SSE events, NDJSON rows, short text) coalesce into one
//! buffer, so a burst leaves in one frame. A chunk a Rust producer hands over as [`Bytes`] it owns
//! is queued as it is: no copy on the way in, none on the way out, and a stalled client pins the
//! producer's own buffer instead of a copy of it. A shared chunk after copied bytes closes the
//! copied run into a segment of its own, so the order is kept.
//!
//! JS Buffers are never shared this way: the binding copies them. Held by reference, their bytes
//! could be freed under the socket (a worker thread's exit, a transferred `ArrayBuffer`, a grown
//! `WebAssembly.Memory`) or change while queued.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;

use super::segments::Segments;

/// What a ring holds, not yet handed to the socket.
#[derive(Default)]
pub(crate) struct Queue {
    /// Closed segments, sent before `tail`.
    segments: VecDeque<Bytes>,
    /// Bytes in `segments`.
    queued: usize,
    /// Copied writes since the last shared chunk.
    tail: BytesMut,
}

impl Queue {
    /// Bytes held.
    pub(crate) fn len(&self) -> usize {
        self.queued + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `data` to the end; a new allocation is sized to `limit` (at least what it must
    /// hold), not BytesMut's doubling: the allocation is what a stalled client pins.
    pub(crate) fn copy(&mut self, data: &[u8], limit: usize) {
        let len = self.tail.len();
        if self.tail.capacity() - len < data.len() && !self.tail.try_reclaim(data.len()) {
            reallocate(&mut self.tail, limit.max(len + data.len()));
        }
        self.tail.extend_from_slice(data);
    }

    /// Queues `chunk` without a copy.
    pub(crate) fn share(&mut self, chunk: Bytes) {
        if !self.tail.is_empty() {
            let run = self.tail.split().freeze();
            self.queued += run.len();
            self.segments.push_back(run);
        }
        self.queued += chunk.len();
        self.segments.push_back(chunk);
    }

    /// The next frame: queued segments up to `batch` bytes (a longer one is cut there, without
    /// a copy; hyper writes a frame's segments with one vectored write, so 64 KiB of 16 KiB chunks
    /// leave in one syscall instead of four), or else at most `max_frame` copied bytes. Copied
    /// bytes that fill most of their allocation are handed over without a copy (the tail starts a
    /// fresh one); otherwise a slice is copied out, so a frame hyper holds for a slow socket does
    /// not pin the tail's whole allocation while the tail allocates a second one.
    pub(crate) fn frame(&mut self, max_frame: usize, batch: usize) -> Option<Segments> {
        if !self.segments.is_empty() {
            let mut out = Segments::default();
            while let Some(front) = self.segments.front_mut() {
                let room = batch.max(1) - out.remaining();
                if room == 0 {
                    break;
                }
                let part = if front.len() <= room {
                    self.segments.pop_front().unwrap_or_default()
                } else {
                    front.split_to(room)
                };
                self.queued -= part.len();
                out.push(part);
            }
            return Some(out);
        }
        let len = self.tail.len();
        if len == 0 {
            return None;
        }
        if len <= max_frame && len * 4 >= self.tail.capacity() * 3 {
            return Some(self.tail.split().freeze().into());
        }
        let take = len.min(max_frame);
        let frame = Bytes::copy_from_slice(&self.tail[..take]);
        self.tail.advance(take);
        Some(frame.into())
    }

    /// Gives back the tail's spare allocation beyond `floor` (the bytes it holds stay).
    pub(crate) fn shrink(&mut self, floor: usize) {
        let keep = self.tail.len().max(floor);
        if self.tail.capacity() >= 2 * keep {
            reallocate(&mut self.tail, keep);
        }
    }

    /// Lets go of the tail's allocation when it holds nothing. A frame handed over whole
    /// ([`Queue::frame`]) shares that allocation with the tail, which keeps it to reuse once the
    /// socket has written the frame; a ring whose socket is blocked lets go instead, so the
    /// allocation is freed as soon as the socket layer drops the frame (it copies a small unsent
    /// end out, see `socket.rs`).
    pub(crate) fn release_if_empty(&mut self) {
        if self.tail.is_empty() && self.segments.is_empty() {
            self.tail = BytesMut::new();
        }
    }

    /// Drops everything; returns how many bytes that was.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.len();
        *self = Self::default();
        n
    }

    /// The tail's allocation (for tests of the shrink).
    #[cfg(test)]
    pub(crate) fn tail_capacity(&self) -> usize {
        self.tail.capacity()
    }
}

/// Moves `buf`'s bytes into a fresh allocation of exactly `capacity` bytes (at least its length).
fn reallocate(buf: &mut BytesMut, capacity: usize) {
    let mut fresh = BytesMut::with_capacity(capacity.max(buf.len()));
    fresh.extend_from_slice(buf);
    *buf = fresh;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut Queue, max_frame: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(f) = q.frame(max_frame, max_frame) {
            out.extend_from_slice(&f.into_bytes());
        }
        out
    }

    #[test]
    fn copied_and_shared_chunks_leave_in_the_order_they_were_written() {
        let mut q = Queue::default();
        q.copy(b"ab", 64);
        q.copy(b"cd", 64);
        q.share(Bytes::from_static(b"EFGH"));
        q.copy(b"ij", 64);
        q.share(Bytes::from_static(b"KL"));
        q.share(Bytes::from_static(b"MN"));
        assert_eq!(q.len(), 14);
        assert_eq!(drain(&mut q, 3), b"abcdEFGHijKLMN");
        assert!(q.is_empty());
    }

    #[test]
    fn a_shared_chunk_is_handed_over_without_a_copy() {
        let chunk = Bytes::from(vec![7u8; 20_000]);
        let ptr = chunk.as_ptr();
        let mut q = Queue::default();
        q.share(chunk);
        let frame = q.frame(1024, 16 * 1024).expect("frame");
        assert_eq!(frame.remaining(), 16 * 1024, "cut at the batch size");
        assert_eq!(frame.chunk().as_ptr(), ptr, "without a copy");
        let rest = q.frame(1024, 16 * 1024).expect("frame");
        assert_eq!(rest.remaining(), 20_000 - 16 * 1024);
        assert_eq!(rest.chunk().as_ptr(), ptr.wrapping_add(16 * 1024));
        assert!(q.is_empty());
    }

    #[test]
    fn shared_chunks_leave_together_up_to_the_batch_size() {
        let mut q = Queue::default();
        for _ in 0..6 {
            q.share(Bytes::from(vec![1u8; 16 * 1024]));
        }
        q.copy(b"tail", 64);
        let first = q.frame(1024, 64 * 1024).expect("frame");
        assert_eq!((first.count(), first.remaining()), (4, 64 * 1024), "four 16 KiB chunks in one frame");
        let second = q.frame(1024, 64 * 1024).expect("frame");
        assert_eq!(second.count(), 2);
        assert_eq!(
            &q.frame(1024, 64 * 1024).expect("frame").into_bytes()[..],
            b"tail",
            "copied bytes come after"
        );
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn clear_drops_both_kinds_and_reports_the_bytes() {
        let mut q = Queue::default();
        q.copy(b"abc", 16);
        q.share(Bytes::from_static(b"defg"));
        q.copy(b"h", 16);
        assert_eq!(q.clear(), 8);
        assert!(q.frame(16, 16).is_none());
    }
}
