//! Frame data made of one or more byte segments, so shared chunks leave in one `writev`.
//!
//! hyper flushes once its write buffer holds `max_buf_size` bytes, and that setting is also the
//! request-head limit (16 KiB by default). With one [`Bytes`] per frame, a stream of shared 16 KiB
//! chunks (see `RingWriter::write_shared`) would cost one syscall per chunk: measured, 17 % less
//! throughput than copying them into 32 KiB frames. A [`Segments`] frame hands hyper several
//! chunks at once; hyper writes them with one vectored write and copies none of them.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::IoSlice;

/// One frame's bytes: a first segment and any that follow it, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Segments {
    /// Empty only when the whole frame is.
    first: Bytes,
    rest: VecDeque<Bytes>,
    remaining: usize,
}

impl Segments {
    /// Appends a segment (empty ones are skipped).
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.remaining += bytes.len();
        if self.first.is_empty() {
            self.first = bytes;
        } else {
            self.rest.push_back(bytes);
        }
    }

    /// How many segments the frame holds.
    pub fn count(&self) -> usize {
        if self.first.is_empty() {
            0
        } else {
            1 + self.rest.len()
        }
    }

    /// The bytes as one [`Bytes`]: free for a single segment, a copy for several.
    pub fn into_bytes(mut self) -> Bytes {
        if self.rest.is_empty() {
            return self.first;
        }
        let n = self.remaining;
        self.copy_to_bytes(n)
    }

    /// The segments, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.first).filter(|b| !b.is_empty()).chain(self.rest.iter())
    }
}

impl From<Bytes> for Segments {
    fn from(bytes: Bytes) -> Self {
        let remaining = bytes.len();
        Self { first: bytes, rest: VecDeque::new(), remaining }
    }
}

impl Buf for Segments {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        &self.first
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of a frame");
        self.remaining -= cnt;
        while cnt > 0 {
            if cnt < self.first.len() {
                self.first.advance(cnt);
                return;
            }
            cnt -= self.first.len();
            self.first = self.rest.pop_front().unwrap_or_default();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, seg) in dst.iter_mut().zip(self.iter()) {
            *slot = IoSlice::new(seg);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(parts: &[&'static [u8]]) -> Segments {
        let mut s = Segments::default();
        for p in parts {
            s.push(Bytes::from_static(p));
        }
        s
    }

    #[test]
    fn advancing_across_segments_keeps_the_order_and_the_count() {
        let mut s = frame(&[b"abc", b"", b"de", b"fghi"]);
        assert_eq!(s.count(), 3, "the empty segment is skipped");
        assert_eq!(s.remaining(), 9);
        s.advance(2);
        assert_eq!(s.chunk(), b"c");
        s.advance(1);
        assert_eq!(s.chunk(), b"de");
        s.advance(3);
        assert_eq!(s.chunk(), b"ghi");
        assert_eq!(s.remaining(), 3);
        s.advance(3);
        assert_eq!(s.remaining(), 0);
        assert_eq!(s.chunk(), b"");
    }

    #[test]
    fn a_vectored_write_sees_every_segment_and_stops_at_the_slots_it_has() {
        let s = frame(&[b"ab", b"cd", b"ef"]);
        let mut slots = [IoSlice::new(&[]); 2];
        assert_eq!(s.chunks_vectored(&mut slots), 2);
        assert_eq!((&*slots[0], &*slots[1]), (&b"ab"[..], &b"cd"[..]));
        let mut all = [IoSlice::new(&[]); 8];
        assert_eq!(s.chunks_vectored(&mut all), 3);
    }

    #[test]
    fn into_bytes_is_free_for_one_segment_and_joins_several() {
        let one = Bytes::from(vec![1u8; 100]);
        let ptr = one.as_ptr();
        assert_eq!(Segments::from(one).into_bytes().as_ptr(), ptr);
        assert_eq!(&frame(&[b"ab", b"cd"]).into_bytes()[..], b"abcd");
        assert!(Segments::default().into_bytes().is_empty());
    }
}
