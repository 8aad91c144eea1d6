//! `NativeStream`: the JS handle of one response stream; synchronous writes into the bounded ring.

use catzilla_core::{sse, CloseInfo, PackedError, RingEvents, RingWriter, WriteStatus};
use napi::bindgen_prelude::BufferSlice;
use napi_derive::napi;
use parking_lot::Mutex;
use std::sync::Arc;

use crate::dispatch::{Event, JsHandler};
use crate::server::code_error;

/// Forwards ring notifications to the JS dispatcher and keeps the close report for `closeInfo()`.
pub(crate) struct StreamEvents {
    pub(crate) id: u32,
    pub(crate) handler: Arc<JsHandler>,
    pub(crate) info: Arc<Mutex<Option<CloseInfo>>>,
}

impl RingEvents for StreamEvents {
    fn drained(&self) {
        self.handler.emit(Event::Drain { id: self.id });
    }

    fn closed(&self, info: CloseInfo) {
        *self.info.lock() = Some(info);
        self.handler.finish(self.id);
        self.handler.emit(Event::Closed { id: self.id, aborted: info.aborted });
    }
}

/// How a stream ended, as JS sees it.
#[napi(object)]
pub struct StreamCloseInfo {
    /// Body bytes handed to the socket.
    pub bytes: f64,
    /// Chunks written.
    pub chunks: f64,
    /// Milliseconds from start to close.
    pub duration: f64,
    /// `true` when the client left (or the server cut the connection) before the end.
    pub aborted: bool,
}

/// The writable end of one response stream. `write*` return a `WriteStatus` code:
/// 0 = copied and room left, 1 = copied and now full (await the drain event), 2 = closed,
/// 3 = refused, not copied: the client's socket is full; keep the chunk and write it again after
/// the drain event (a stalled client then pins the JS chunk alone, not a copy of it too).
#[napi]
pub struct NativeStream {
    pub(crate) writer: RingWriter,
    pub(crate) info: Arc<Mutex<Option<CloseInfo>>>,
}

#[napi]
impl NativeStream {
    /// Copies bytes into the ring, unless the client's socket is full (then refused, see above).
    #[napi(catch_unwind)]
    pub fn write(&self, chunk: BufferSlice) -> u32 {
        self.writer.offer(&chunk) as u32
    }

    /// Copies a string's UTF-8 bytes into the ring, unless the client's socket is full.
    #[napi(catch_unwind)]
    pub fn write_text(&self, chunk: String) -> u32 {
        self.writer.offer(chunk.as_bytes()) as u32
    }

    /// Encodes a packed batch of SSE events (see `catzilla_core::sse::encode_packed`) with the
    /// core's one SSE encoder and copies them into the ring (or refuses the batch, as `write`). Throws `CZ_SSE_FIELD` on an invalid
    /// `id`, `event` or `retry`, after the events before it were written.
    #[napi(catch_unwind)]
    pub fn write_sse(&self, packed: String) -> napi::Result<u32> {
        let mut out = Vec::with_capacity(packed.len() + 64);
        let encoded = sse::encode_packed(&packed, &mut out);
        // Refused as a whole while the client's socket is full (JS writes the batch again after
        // the drain); a batch with an invalid field is copied up to it, since it is not retried.
        let status = if encoded.is_err() { self.writer.write(&out) } else { self.writer.offer(&out) };
        match encoded {
            Ok(_) => Ok(status as u32),
            Err(PackedError::Field(e)) => Err(code_error("CZ_SSE_FIELD", e.to_string())),
            Err(e @ PackedError::Malformed) => Err(code_error("CZ_INTERNAL", e.to_string())),
        }
    }

    /// Hands buffered bytes to the socket now; JS calls it once per tick for each written stream.
    #[napi(catch_unwind)]
    pub fn flush(&self) {
        self.writer.flush();
    }

    /// Ends the stream after the buffered bytes.
    #[napi(catch_unwind)]
    pub fn end(&self) {
        self.writer.end();
    }

    /// Aborts: the connection is cut without the terminating chunk.
    #[napi(catch_unwind)]
    pub fn abort(&self) {
        self.writer.abort();
    }

    /// Bytes buffered in the ring, not yet handed to the socket.
    #[napi(getter, catch_unwind)]
    pub fn buffered(&self) -> u32 {
        self.writer.buffered() as u32
    }

    /// `true` once the stream can take no more writes.
    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.writer.is_closed()
    }

    /// The close report, once the stream is over.
    #[napi(catch_unwind)]
    pub fn close_info(&self) -> Option<StreamCloseInfo> {
        self.info.lock().map(|i| StreamCloseInfo {
            bytes: i.bytes as f64,
            chunks: i.chunks as f64,
            duration: i.duration_ms,
            aborted: i.aborted,
        })
    }
}

/// Keeps `WriteStatus` codes and the documented numbers in sync.
const _: () = {
    assert!(WriteStatus::Ready as u32 == 0);
    assert!(WriteStatus::Full as u32 == 1);
    assert!(WriteStatus::Closed as u32 == 2);
    assert!(WriteStatus::Refused as u32 == 3);
};
