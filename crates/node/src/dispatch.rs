//! The JS dispatcher: one ThreadsafeFunction per server, the table of pending requests, and the
//! `catzilla_core::Handler` implementation that feeds them.

use bytes::Bytes;
use catzilla_core::http::HeaderMap;
use catzilla_core::sched::BatchPolicy;
use catzilla_core::{
    Handler, Message, Request, RequestBody, Responder, RingWriter, RouteSettings, StreamingBody,
};
use napi::bindgen_prelude::{Buffer, FnArgs};
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::multipart::PartsTable;
use crate::types::EventKind;
use crate::workers::{resuming_socket, Pool, SocketOwners};
use crate::ws::SocketTable;

/// One event for the JS dispatcher.
pub(crate) enum Event {
    Request { id: u32, route: u32, head: String, body: Option<Bytes> },
    Cancel { id: u32 },
    Drain { id: u32 },
    Closed { id: u32, aborted: bool },
    Body { id: u32, chunk: Bytes },
    BodyEnd { id: u32 },
    BodyError { id: u32, status: u16, message: &'static str },
    PartStart { id: u32 },
    PartsEnd { id: u32 },
    PartError { id: u32, status: u16, message: String },
    WsOpen { id: u32 },
    WsMessage { id: u32, message: Message },
    WsDrain { id: u32 },
    WsClose { id: u32, code: u16, reason: String },
    WsOffline { id: u32, code: u16, reason: String },
    WsExpired { id: u32 },
    WsMoved { id: u32 },
}

/// Arguments of the JS dispatcher: `(kind, id, num, text?, data?)`.
pub(crate) type JsArgs = FnArgs<(u32, u32, f64, Option<String>, Option<Buffer>)>;

/// The single long-lived dispatcher function.
/// It returns `true` only for a WebSocket message whose handling JS deferred (an async hook).
pub(crate) type Dispatcher = ThreadsafeFunction<Event, Option<bool>, JsArgs, Status, false>;

/// Converts an event into the dispatcher's arguments; runs on the JS thread.
pub(crate) fn to_js(ctx: ThreadsafeCallContext<Event>) -> napi::Result<JsArgs> {
    let buf = |b: Bytes| Some(Buffer::from(Vec::from(b)));
    Ok(FnArgs::from(match ctx.value {
        Event::Request { id, route, head, body } => {
            (EventKind::Request as u32, id, route as f64, Some(head), body.and_then(buf))
        }
        Event::Cancel { id } => (EventKind::Cancel as u32, id, 0.0, None, None),
        Event::Drain { id } => (EventKind::Drain as u32, id, 0.0, None, None),
        Event::Closed { id, aborted } => {
            (EventKind::Closed as u32, id, f64::from(u8::from(aborted)), None, None)
        }
        Event::Body { id, chunk } => (EventKind::Body as u32, id, 0.0, None, buf(chunk)),
        Event::BodyEnd { id } => (EventKind::BodyEnd as u32, id, 0.0, None, None),
        Event::BodyError { id, status, message } => {
            (EventKind::BodyError as u32, id, f64::from(status), Some(message.to_owned()), None)
        }
        Event::PartStart { id } => (EventKind::PartStart as u32, id, 0.0, None, None),
        Event::PartsEnd { id } => (EventKind::PartsEnd as u32, id, 0.0, None, None),
        Event::PartError { id, status, message } => {
            (EventKind::BodyError as u32, id, f64::from(status), Some(message), None)
        }
        Event::WsOpen { id } => (EventKind::WsOpen as u32, id, 0.0, None, None),
        Event::WsMessage { id, message: Message::Text(t) } => {
            (EventKind::WsMessage as u32, id, 0.0, Some(t.as_str().to_owned()), None)
        }
        Event::WsMessage { id, message } => {
            (EventKind::WsMessage as u32, id, 1.0, None, buf(message.into_data()))
        }
        Event::WsDrain { id } => (EventKind::WsDrain as u32, id, 0.0, None, None),
        Event::WsClose { id, code, reason } => {
            (EventKind::WsClose as u32, id, f64::from(code), Some(reason), None)
        }
        Event::WsOffline { id, code, reason } => {
            (EventKind::WsOffline as u32, id, f64::from(code), Some(reason), None)
        }
        Event::WsExpired { id } => (EventKind::WsExpired as u32, id, 0.0, None, None),
        Event::WsMoved { id } => (EventKind::WsMoved as u32, id, 0.0, None, None),
    }))
}

/// A request waiting for its reply.
struct Pending {
    responder: Option<Responder>,
    /// The request's headers, kept in Rust so replies that depend on them (files: Range and
    /// If-*; SSE topics: Last-Event-ID) read them here instead of a round trip through JS.
    headers: HeaderMap,
    body: Option<StreamingBody>,
    /// A multipart body that arrived whole with the request, kept (a reference, not a copy) so
    /// `req.parts()` can parse it in Rust without JS sending it back.
    prebuffered: Option<Bytes>,
    /// The route's own options (its streams' buffer size and compression).
    options: Option<Arc<RouteSettings>>,
    /// A body read is in flight (the body is temporarily out of the table).
    reading: bool,
}

/// The dispatcher of one JS thread (the main thread or one worker), shared between the core
/// (which calls `handle`) and that thread's JS-facing methods.
pub(crate) struct JsHandler {
    /// The worker index of its thread (0: the main thread).
    pub(crate) worker: u32,
    dispatcher: Mutex<Option<Arc<Dispatcher>>>,
    pending: Mutex<HashMap<u32, Pending>>,
    next_id: AtomicU32,
    /// Requests handed to this thread and not answered yet (the pool's load measure).
    outstanding: AtomicUsize,
    /// Open WebSockets of this thread by id.
    pub(crate) sockets: SocketTable,
    /// Socket ids and owners shared by every thread of the server.
    pub(crate) owners: Arc<SocketOwners>,
    /// Multipart readers by request id.
    pub(crate) parts: PartsTable,
    /// The writers of this thread's open response streams, by request id, so they can be
    /// aborted when the thread dies (its JS handles would never end them).
    streams: Mutex<HashMap<u32, RingWriter>>,
    /// The thread's `SCHED_BATCH` policy while it serves; restored at `release`.
    policy: Mutex<Option<BatchPolicy>>,
}

impl JsHandler {
    pub(crate) fn new(
        dispatcher: Dispatcher,
        worker: u32,
        owners: Arc<SocketOwners>,
        policy: Option<BatchPolicy>,
    ) -> Self {
        Self {
            worker,
            dispatcher: Mutex::new(Some(Arc::new(dispatcher))),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            outstanding: AtomicUsize::new(0),
            sockets: SocketTable::default(),
            owners,
            parts: PartsTable::default(),
            streams: Mutex::new(HashMap::new()),
            policy: Mutex::new(policy),
        }
    }

    /// Remembers the writer of request `id`'s stream until the stream closes.
    pub(crate) fn stream_started(&self, id: u32, writer: RingWriter) {
        self.streams.lock().insert(id, writer);
    }

    /// Requests waiting for this thread's reply.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts a responder leaving the table (answered, or its request forgotten).
    fn settled(&self, responder: Option<Responder>) -> Option<Responder> {
        if responder.is_some() {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
        responder
    }

    /// Sends one event to JS. Silently dropped once the server is closed.
    pub(crate) fn emit(&self, event: Event) {
        let d = self.dispatcher.lock().clone();
        if let Some(d) = d {
            d.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Sends one event and runs `then` on the JS thread once the dispatcher has returned (at once if
    /// the server is already closed).
    /// Emits `event`, then calls `then` on the JS thread with `true` when JS deferred its
    /// handling (returned `true`).
    pub(crate) fn emit_then(&self, event: Event, then: impl FnOnce(bool) + Send + 'static) {
        let d = self.dispatcher.lock().clone();
        let Some(d) = d else { return then(false) };
        // If the call cannot be queued the server is closing; the socket is about to go too.
        let _ = d.call_with_return_value(event, ThreadsafeFunctionCallMode::NonBlocking, move |ret, _| {
            then(matches!(ret, Ok(Some(true))));
            Ok(())
        });
    }

    /// Releases the dispatcher so the process may exit once the server is closed.
    pub(crate) fn release(&self) {
        self.dispatcher.lock().take();
        self.pending.lock().clear();
        self.outstanding.store(0, Ordering::Relaxed);
        self.sockets.clear();
        self.parts.clear();
        self.streams.lock().clear();
        self.policy.lock().take();
    }

    /// The thread of this dispatcher is gone (a worker that crashed or was stopped): its
    /// unanswered requests get `503`, its WebSockets a `1011` close, its streams are cut, and its
    /// events are dropped from now on (then as `release`).
    pub(crate) fn abandon(&self) {
        self.dispatcher.lock().take();
        let pending: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
        for r in pending.into_iter().filter_map(|p| p.responder) {
            let status = catzilla_core::http::StatusCode::SERVICE_UNAVAILABLE;
            r.send(catzilla_core::Reply::text(status, "worker exited"));
        }
        for s in self.sockets.drain() {
            s.close(1011, "worker exited");
        }
        // Cut, not ended: the client must not take a half-produced body for a whole one.
        for (_, w) in self.streams.lock().drain() {
            w.abort();
        }
        self.release();
    }

    /// Takes the responder of a pending request (the request stays known for body reads).
    pub(crate) fn take_responder(&self, id: u32) -> Option<Responder> {
        let r = self.pending.lock().get_mut(&id).and_then(|p| p.responder.take());
        self.settled(r)
    }

    /// Takes the responder with the route's options (for a stream).
    pub(crate) fn take_responder_with_options(
        &self,
        id: u32,
    ) -> Option<(Responder, Option<Arc<RouteSettings>>)> {
        let mut table = self.pending.lock();
        let p = table.get_mut(&id)?;
        let responder = self.settled(p.responder.take())?;
        // The request stays known for as long as the stream runs (its body may still be read):
        // from now on it keeps only what a stream can still ask for (`req.parts()` reads the
        // `Content-Type`), copied, so it no longer holds hyper's read buffer (`detach`).
        p.headers = catzilla_core::detach::headers(&p.headers, &[catzilla_core::http::header::CONTENT_TYPE]);
        Some((responder, p.options.clone()))
    }

    /// Takes the responder and forgets the request in one step (a whole-body reply).
    pub(crate) fn take_final(&self, id: u32) -> Option<Responder> {
        self.parts.remove(id);
        let r = self.pending.lock().remove(&id).and_then(|p| p.responder);
        self.settled(r)
    }

    /// Takes the responder and the request headers and forgets the request (a reply that depends
    /// on the request head, decided in Rust).
    pub(crate) fn take_final_with_head(&self, id: u32) -> Option<(Responder, HeaderMap)> {
        self.parts.remove(id);
        let p = self.pending.lock().remove(&id)?;
        Some((self.settled(p.responder)?, p.headers))
    }

    /// Forgets a request: its unread body is discarded.
    pub(crate) fn finish(&self, id: u32) {
        self.parts.remove(id);
        self.streams.lock().remove(&id);
        let r = self.pending.lock().remove(&id).and_then(|p| p.responder);
        self.settled(r);
    }

    /// Takes the body of a pending request for a multipart reader: streamed, prebuffered, or
    /// empty when already read. `None` when the request is unknown or a read is in flight.
    pub(crate) fn take_body(&self, id: u32) -> Option<RequestBody> {
        let mut table = self.pending.lock();
        let p = table.get_mut(&id)?;
        if p.reading {
            return None;
        }
        Some(match (p.body.take(), p.prebuffered.take()) {
            (Some(s), _) => RequestBody::Streaming(s),
            (None, Some(b)) => RequestBody::Full(b),
            (None, None) => RequestBody::Full(Bytes::new()),
        })
    }

    /// The `Content-Type` of a pending request (`Some("")` when it has none).
    pub(crate) fn content_type(&self, id: u32) -> Option<String> {
        let table = self.pending.lock();
        let p = table.get(&id)?;
        let ct = p.headers.get(catzilla_core::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        Some(ct.unwrap_or("").to_owned())
    }

    /// Reads the next body chunk of request `id` and reports it as a `Body`, `BodyEnd` or
    /// `BodyError` event. At most one read per request is in flight.
    pub(crate) fn read_body(self: &Arc<Self>, id: u32) {
        let body = {
            let mut table = self.pending.lock();
            match table.get_mut(&id) {
                Some(p) if !p.reading => match p.body.take() {
                    Some(b) => {
                        p.reading = true;
                        Some(b)
                    }
                    None => None,
                },
                Some(_) => return,
                None => None,
            }
        };
        let Some(mut body) = body else {
            self.emit(Event::BodyEnd { id });
            return;
        };
        let this = self.clone();
        // Called on the JS thread, outside any runtime context: spawn on napi's tokio runtime.
        napi::bindgen_prelude::spawn(async move {
            let result = body.next_chunk().await;
            let failed = result.is_err();
            if let Some(p) = this.pending.lock().get_mut(&id) {
                p.reading = false;
                if !failed {
                    p.body = Some(body);
                }
            }
            match result {
                Ok(Some(chunk)) => this.emit(Event::Body { id, chunk }),
                Ok(None) => this.emit(Event::BodyEnd { id }),
                Err(e) => {
                    // Answer for the handler if it has not replied yet: 413/408/400.
                    if let Some(r) = this.take_responder(id) {
                        let status = catzilla_core::http::StatusCode::from_u16(e.status())
                            .unwrap_or(catzilla_core::http::StatusCode::BAD_REQUEST);
                        r.send(catzilla_core::Reply::text(status, e.message()));
                    }
                    this.emit(Event::BodyError { id, status: e.status(), message: e.message() });
                }
            }
        });
    }
}

/// Packs the request head into one string: `method\0target\0ip\0version\0nparams\0(k\0v\0)*(h\0v\0)*`.
fn pack_head(req: &Request) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(req.method.as_str());
    s.push('\0');
    s.push_str(req.uri.path_and_query().map_or("/", |p| p.as_str()));
    s.push('\0');
    let _ = write!(s, "{}", req.remote.ip());
    s.push('\0');
    s.push_str(match req.version {
        catzilla_core::http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    });
    s.push('\0');
    let _ = write!(s, "{}", req.params.len());
    for (k, v) in &req.params {
        s.push('\0');
        s.push_str(k);
        s.push('\0');
        s.push_str(v);
    }
    for (name, value) in &req.headers {
        s.push('\0');
        s.push_str(name.as_str());
        s.push('\0');
        match value.to_str() {
            Ok(v) => s.push_str(v),
            Err(_) => s.push_str(&String::from_utf8_lossy(value.as_bytes())),
        }
    }
    s
}

/// `true` for a `multipart/form-data` request with a boundary (the only prebuffered body Rust
/// reads again), by the core's own rule.
fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(catzilla_core::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| catzilla_core::Parts::boundary(ct).is_some())
}

/// What the core calls for handler routes (static directories never get here): every request
/// goes to the JS thread the pool picks.
pub(crate) struct CoreHandler {
    pub(crate) pool: Arc<Pool>,
    pub(crate) sessions: Arc<catzilla_core::ws::Sessions>,
}

impl Handler for CoreHandler {
    type Token = Option<(Arc<JsHandler>, u32)>;

    fn handle(&self, req: Request, responder: Responder) -> Self::Token {
        let resuming = if req.websocket { resuming_socket(&self.sessions, req.uri.query()) } else { None };
        let Some(h) = self.pool.pick(resuming) else {
            // Every worker is gone (all crashed at once, or the server is closing).
            responder.send(catzilla_core::Reply::text(
                catzilla_core::http::StatusCode::SERVICE_UNAVAILABLE,
                "no worker available",
            ));
            return None;
        };
        let mut id = h.next_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = h.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let head = pack_head(&req);
        let route = req.route;
        let (body, streaming) = match req.body {
            RequestBody::Full(b) => (if b.is_empty() { None } else { Some(b) }, None),
            RequestBody::Streaming(s) => (None, Some(s)),
        };
        let prebuffered = body.as_ref().filter(|_| is_multipart(&req.headers)).cloned();
        let pending = Pending {
            responder: Some(responder),
            headers: req.headers,
            body: streaming,
            prebuffered,
            options: req.options,
            reading: false,
        };
        h.outstanding.fetch_add(1, Ordering::Relaxed);
        h.pending.lock().insert(id, pending);
        h.emit(Event::Request { id, route, head, body });
        Some((h, id))
    }

    fn cancelled(&self, token: Self::Token) {
        if let Some((h, id)) = token {
            h.finish(id);
            h.emit(Event::Cancel { id });
        }
    }
}
