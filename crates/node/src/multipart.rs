//! Streamed multipart for JS: `req.parts()` pulls one part head, then one chunk at a time, from
//! the core's multer-based reader; results arrive as dispatcher events. JS names only the
//! request: the boundary and any prebuffered body stay in Rust.

use catzilla_core::{PartHead, PartLimits, Parts};
use napi_derive::napi;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use crate::dispatch::{Event, JsHandler};
use crate::server::NativeServer;

/// A request's multipart reader and the head of the part it is on.
struct Slot {
    /// Out of the slot while one of its reads is in flight.
    reader: Option<Parts>,
    /// The head of the part that just started, until JS takes it.
    head: Option<PartHead>,
}

/// Readers by request id.
#[derive(Default)]
pub(crate) struct PartsTable(Mutex<HashMap<u32, Slot>>);

impl PartsTable {
    pub(crate) fn remove(&self, id: u32) {
        self.0.lock().remove(&id);
    }

    pub(crate) fn clear(&self) {
        self.0.lock().clear();
    }
}

/// The head of one multipart part, as JS sees it.
#[napi(object)]
pub struct PartInfo {
    /// `name` from `Content-Disposition`.
    pub name: Option<String>,
    /// `filename` from `Content-Disposition` (file uploads).
    pub filename: Option<String>,
    /// The part's `Content-Type`.
    pub content_type: Option<String>,
    /// The part's headers as `[name, value]` pairs, names lower-case, in order.
    pub headers: Vec<Vec<String>>,
}

impl From<PartHead> for PartInfo {
    fn from(h: PartHead) -> Self {
        Self {
            name: h.name,
            filename: h.filename,
            content_type: h.content_type,
            headers: h.headers.into_iter().map(|(k, v)| vec![k, v]).collect(),
        }
    }
}

/// Outcome of `multipartStart`.
#[napi]
pub enum PartsStart {
    /// The reader is ready: ask for the first part.
    Started = 0,
    /// The request is not `multipart/form-data` with a boundary (415).
    NotMultipart = 1,
    /// The request is gone or its body is being read.
    Gone = 2,
}

impl JsHandler {
    /// Runs one step of request `id`'s multipart reader on napi's runtime and reports it.
    fn part_step(self: &Arc<Self>, id: u32, next: bool) {
        let reader = match self.parts.0.lock().get_mut(&id) {
            Some(slot) => slot.reader.take(),
            None => return self.emit(Event::BodyEnd { id }),
        };
        let Some(mut reader) = reader else { return }; // a read is already in flight
        let this = self.clone();
        // Called on the JS thread, outside any runtime context: spawn on napi's tokio runtime.
        napi::bindgen_prelude::spawn(async move {
            let event = if next {
                match reader.next_part().await {
                    Ok(Some(head)) => Ok((Event::PartStart { id }, Some(head))),
                    Ok(None) => Ok((Event::PartsEnd { id }, None)),
                    Err(e) => Err(e),
                }
            } else {
                match reader.chunk().await {
                    Ok(Some(chunk)) => Ok((Event::Body { id, chunk }, None)),
                    Ok(None) => Ok((Event::BodyEnd { id }, None)),
                    Err(e) => Err(e),
                }
            };
            match event {
                Ok((ev, head)) => {
                    // Put the reader back only while the request is still known.
                    if let Some(slot) = this.parts.0.lock().get_mut(&id) {
                        slot.reader = Some(reader);
                        if head.is_some() {
                            slot.head = head;
                        }
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
    /// Starts reading request `id`'s body as multipart, with the boundary of its
    /// `Content-Type` and whatever body Rust holds for it (streamed or prebuffered).
    #[napi(catch_unwind)]
    pub fn multipart_start(&self, id: u32) -> PartsStart {
        let Some(h) = self.handler() else { return PartsStart::Gone };
        let Some(content_type) = h.content_type(id) else { return PartsStart::Gone };
        let Some(boundary) = Parts::boundary(&content_type) else { return PartsStart::NotMultipart };
        let Some(body) = h.take_body(id) else { return PartsStart::Gone };
        let reader = Parts::new(body, &boundary, PartLimits::default());
        h.parts.0.lock().insert(id, Slot { reader: Some(reader), head: None });
        PartsStart::Started
    }

    /// The head of the part a `PartStart` event announced (taken: `null` the second time).
    #[napi(catch_unwind)]
    pub fn multipart_head(&self, id: u32) -> Option<PartInfo> {
        let h = self.handler()?;
        let head = h.parts.0.lock().get_mut(&id)?.head.take();
        head.map(PartInfo::from)
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
