//! JS Buffers the core holds without a copy, released in batches on the JS thread.
//!
//! A [`Buffer`] is a reference into the JS heap; dropped on another thread, napi-rs sends it back
//! to the JS thread with one threadsafe-function call per Buffer, which halved a bulk stream's
//! throughput (16 KiB chunks: ~500 MiB/s against ~1,100 copied). Here a Buffer the socket is
//! done with goes into its stream's [`Yard`] instead, and the JS thread releases the whole yard
//! on its next write or flush of that stream (and when the stream closes): one lock per batch.

use bytes::Bytes;
use napi::bindgen_prelude::Buffer;
use parking_lot::Mutex;
use std::sync::Arc;

/// Buffers sent and waiting for the JS thread; `None` once the stream closed, after which a
/// Buffer goes back through napi-rs's own path (at most the few frames hyper still held).
pub(crate) struct Yard(Mutex<Option<Vec<Buffer>>>);

impl Yard {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Some(Vec::new()))))
    }

    /// Wraps `buf` as [`Bytes`] that return it to this yard when dropped.
    pub(crate) fn hold(self: &Arc<Self>, buf: Buffer) -> Bytes {
        Bytes::from_owner(Held { buf: Some(buf), yard: self.clone() })
    }

    /// Releases the Buffers waiting here. Call on the JS thread only.
    pub(crate) fn release(&self) {
        let done = match self.0.lock().as_mut() {
            Some(v) if !v.is_empty() => std::mem::take(v),
            _ => return,
        };
        drop(done);
    }

    /// Releases what waits and sends later Buffers straight back. Call on the JS thread only.
    pub(crate) fn close(&self) {
        let done = self.0.lock().take();
        drop(done);
    }
}

/// One held Buffer, the owner behind its [`Bytes`].
struct Held {
    buf: Option<Buffer>,
    yard: Arc<Yard>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or_default()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else { return };
        let mut yard = self.yard.0.lock();
        match yard.as_mut() {
            Some(waiting) => waiting.push(buf),
            None => {
                drop(yard);
                drop(buf);
            }
        }
    }
}
