//! Streamed multipart for JS: `req.parts()` pulls one part head, then one chunk at a time, from
//! the core's multer-based reader; results arrive as dispatcher events.

use catzilla_core::{Bytes, PartHead, PartLimits, Parts, RequestBody};
use napi::bindgen_prelude::BufferSlice;
use napi_derive::napi;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use crate::dispatch::{Event, JsHandler};
use crate::server::NativeServer;

/// Readers by request id; a reader is out of the table while one of its reads is in flight.
#[derive(Default)]
pub(crate) struct PartsTable(Mutex<HashMap<u32, Option<Parts>>>);

impl PartsTable {
    pub(crate) fn remove(&self, id: u32) {
        self.0.lock().remove(&id);
    }

    pub(crate) fn clear(&self) {
        self.0.lock().clear();
    }
}

/// Packs a part head: `mask\0name\0filename\0contentType(\0header\0value)*`, where `mask` has one
/// `0`/`1` per optional field, so an absent field and an empty one stay distinct.
fn pack(head: &PartHead) -> String {
    let opt = |v: &Option<String>| if v.is_some() { '1' } else { '0' };
    let mut s = String::with_capacity(64);
    s.push(opt(&head.name));
    s.push(opt(&head.filename));
    s.push(opt(&head.content_type));
    for v in [&head.name, &head.filename, &head.content_type] {
        s.push('\0');
        s.push_str(v.as_deref().unwrap_or(""));
    }
    for (k, v) in &head.headers {
        s.push('\0');
        s.push_str(k);
        s.push('\0');
        s.push_str(v);
    }
    s
}

impl JsHandler {
    /// Runs one step of request `id`'s multipart reader on napi's runtime and reports it.
    fn part_step(self: &Arc<Self>, id: u32, next: bool) {
        let reader = match self.parts.0.lock().get_mut(&id) {
            Some(slot) => slot.take(),
            None => return self.emit(Event::BodyEnd { id }),
        };
        let Some(mut reader) = reader else { return }; // a read is already in flight
        let this = self.clone();
        // Called on the JS thread, outside any runtime context: spawn on napi's tokio runtime.
        napi::bindgen_prelude::spawn(async move {
            let event = if next {
                match reader.next_part().await {
                    Ok(Some(head)) => Ok(Event::PartStart { id, head: pack(&head) }),
                    Ok(None) => Ok(Event::PartsEnd { id }),
                    Err(e) => Err(e),
                }
            } else {
                match reader.chunk().await {
                    Ok(Some(chunk)) => Ok(Event::Body { id, chunk }),
                    Ok(None) => Ok(Event::BodyEnd { id }),
                    Err(e) => Err(e),
                }
            };
            match event {
                Ok(ev) => {
                    // Put the reader back only while the request is still known.
                    if let Some(slot) = this.parts.0.lock().get_mut(&id) {
                        *slot = Some(reader);
                    }
                    this.emit(ev);
                }
                Err(e) => {
                    this.parts.remove(id);
                    if let Some(r) = this.take_responder(id) {
                        let status = catzilla_core::http::StatusCode::from_u16(e.status)
                            .unwrap_or(catzilla_core::http::StatusCode::BAD_REQUEST);
                        r.send(catzilla_core::Reply::text(status, &e.message));
                    }
                    this.emit(Event::PartError { id, status: e.status, message: e.message });
                }
            }
        });
    }
}

#[napi]
impl NativeServer {
    /// Starts reading request `id`'s body as multipart with `boundary`; `prebuffered` is the
    /// body JS already received with the request, if any. `false` when the request is gone.
    #[napi(catch_unwind)]
    pub fn multipart_start(&self, id: u32, boundary: String, prebuffered: Option<BufferSlice>) -> bool {
        let Some(h) = self.handler() else { return false };
        let Some(streaming) = h.take_body(id) else { return false };
        let body = match (streaming, prebuffered) {
            (Some(s), _) => RequestBody::Streaming(s),
            (None, Some(b)) => RequestBody::Full(Bytes::copy_from_slice(&b)),
            (None, None) => RequestBody::Full(Bytes::new()),
        };
        h.parts.0.lock().insert(id, Some(Parts::new(body, &boundary, PartLimits::default())));
        true
    }

    /// Moves to the next part: a PartStart, PartsEnd or BodyError event follows.
    #[napi(catch_unwind)]
    pub fn multipart_next(&self, id: u32) {
        if let Some(h) = self.handler() {
            h.part_step(id, true);
        }
    }

    /// Reads the current part: a Body, BodyEnd or BodyError event follows.
    #[napi(catch_unwind)]
    pub fn multipart_read(&self, id: u32) {
        if let Some(h) = self.handler() {
            h.part_step(id, false);
        }
    }
}
