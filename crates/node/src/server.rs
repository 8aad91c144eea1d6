//! `NativeServer`: routes, listen/close, and the synchronous reply calls JS makes.

use catzilla_core::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use catzilla_core::sched::BatchPolicy;
use catzilla_core::{
    ring, Bytes, CompressionConfig, Encoding, Reply, ReplyBody, RingConfig, ServerBuilder, ServerConfig,
    ServerHandle, Stats, StreamBudget, TopicConfig, Topics,
};
use napi::bindgen_prelude::{BufferSlice, Function};
use napi::Status;
use napi_derive::napi;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch::{to_js, CoreHandler, JsArgs, JsHandler};
use crate::stream::{NativeStream, StreamEvents};
use crate::types::{ListenInfo, NativeStats, ReplyCode, RouteLimits, ServerOptions, StreamOptions};
use crate::workers::{self, Pool, Shared};

/// A Catzilla server owned by one JS `Catzilla` app: the main thread's (which listens), or a
/// worker thread's attached to it (same core, its own dispatcher).
#[napi]
pub struct NativeServer {
    /// The core server: routes of every kind and the shared state; served at `listen`. A worker's
    /// is private: its routes are only compared with the main thread's.
    pub(crate) builder: Mutex<ServerBuilder>,
    pub(crate) config: ServerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) budget: Arc<StreamBudget>,
    handler: Mutex<Option<Arc<JsHandler>>>,
    handle: Mutex<Option<Arc<ServerHandle>>>,
    /// Topics for `publish`, WebSocket subscriptions and SSE topic streams.
    pub(crate) topics: Arc<Topics>,
    pub(crate) sessions: Arc<catzilla_core::ws::Sessions>,
    /// Live streams and WebSockets (`app.streams()`).
    pub(crate) live: Arc<catzilla_core::Live>,
    /// The JS threads that run handlers (shared with the workers).
    pool: Arc<Pool>,
    /// Handler routes as `"<id> <method> <path>"`, in registration order.
    routes: Arc<Mutex<Vec<String>>>,
    /// This thread's worker index (0: the main thread).
    worker: u32,
    /// On a worker: the main thread's routes, which its own must equal.
    main_routes: Option<Arc<Mutex<Vec<String>>>>,
    /// On the main thread, once shared: the key workers attach with.
    key: Mutex<Option<u32>>,
    /// `batchScheduling`: this JS thread goes under `SCHED_BATCH` while it serves.
    batch: bool,
}

fn ms(v: Option<u32>, default: Option<Duration>) -> Option<Duration> {
    match v {
        Some(0) => None,
        Some(n) => Some(Duration::from_millis(u64::from(n))),
        None => default,
    }
}

/// The POSIX name of a bind error (what Node reports as `err.code`), for `CZ_LISTEN` messages.
fn os_code(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        AddrInUse => "EADDRINUSE",
        AddrNotAvailable => "EADDRNOTAVAIL",
        PermissionDenied => "EACCES",
        _ => "EIO",
    }
}

pub(crate) fn code_error(code: &str, msg: impl Into<String>) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("{code}: {}", msg.into()))
}

/// Content types the TypeScript layer sends on every plain reply; shared instead of copied.
fn known_value(value: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_static(match value {
        "text/plain; charset=utf-8" => "text/plain; charset=utf-8",
        "application/json" => "application/json",
        "application/octet-stream" => "application/octet-stream",
        "text/event-stream; charset=utf-8" => "text/event-stream; charset=utf-8",
        _ => return None,
    }))
}

/// Parses `name\0value\0...` into a header map; `None` if any name or value is invalid.
pub(crate) fn parse_headers(packed: &str) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    if packed.is_empty() {
        return Some(map);
    }
    let mut parts = packed.split('\0');
    while let Some(name) = parts.next() {
        let value = parts.next()?;
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = match known_value(value) {
            Some(v) => v,
            None => HeaderValue::from_str(value).ok()?,
        };
        map.append(name, value);
    }
    Some(map)
}

#[napi]
impl NativeServer {
    /// Creates a server; nothing is bound until `listen`.
    #[napi(constructor, catch_unwind)]
    pub fn new(options: Option<ServerOptions>) -> Self {
        let o = options.unwrap_or_default();
        let mut c = ServerConfig::default();
        if let Some(v) = o.buffer_size {
            c.buffer_size = v.max(1) as usize;
        }
        if let Some(v) = o.max_body_size {
            c.limits.max_body_size = v.max(0.0) as u64;
        }
        if let Some(v) = o.max_header_size {
            c.limits.max_header_size = v as usize;
        }
        if let Some(v) = o.max_headers {
            c.limits.max_headers = (v as usize).max(1);
        }
        if let Some(v) = o.max_url_length {
            c.limits.max_url_length = v as usize;
        }
        if let Some(v) = o.max_connections {
            c.limits.max_connections = v as usize;
        }
        if let Some(v) = o.prebuffer_body {
            c.prebuffer_body = u64::from(v);
        }
        c.timeouts.headers = ms(o.headers_timeout, c.timeouts.headers);
        c.timeouts.keep_alive = ms(o.keep_alive_timeout, c.timeouts.keep_alive);
        c.timeouts.body = ms(o.body_timeout, c.timeouts.body);
        c.timeouts.stream_idle = ms(o.stream_idle_timeout, c.timeouts.stream_idle);
        if o.compression == Some(true) {
            let mut cc = CompressionConfig::default();
            if let Some(t) = o.compression_threshold {
                cc.threshold = t as usize;
            }
            if let Some(list) = &o.compression_encodings {
                cc.encodings = list.iter().filter_map(|e| Encoding::from_token(e)).collect();
            }
            cc.level = o.compression_level;
            c.compression = Some(cc);
        }
        let mut topic_config = TopicConfig::default();
        if let Some(n) = o.topic_history {
            topic_config.history = n as usize;
        }
        let history = topic_config.history;
        let mut builder =
            ServerBuilder::new(c.clone(), topic_config, o.max_stream_memory.unwrap_or(0.0).max(0.0) as usize);
        if let Some(url) = o.redis_url {
            let prefix = o.redis_prefix.unwrap_or_else(|| "catzilla".to_owned());
            let ttl = match o.redis_ttl {
                Some(0) => None,
                Some(s) => Some(Duration::from_secs(u64::from(s))),
                None => Some(Duration::from_secs(86_400)),
            };
            builder.redis(catzilla_core::cluster::RedisConfig { url, prefix, history, ttl });
        }
        if let Some(bytes) = o.max_offline_memory {
            builder.sessions().set_budget(bytes.max(0.0) as usize);
        }
        Self {
            config: c,
            stats: builder.stats().clone(),
            budget: builder.budget().clone(),
            topics: builder.topics().clone(),
            sessions: builder.sessions().clone(),
            live: builder.live().clone(),
            builder: Mutex::new(builder),
            handler: Mutex::new(None),
            handle: Mutex::new(None),
            pool: Arc::default(),
            routes: Arc::default(),
            worker: 0,
            main_routes: None,
            key: Mutex::new(None),
            batch: o.batch_scheduling.unwrap_or(true),
        }
    }

    /// A worker thread's server attached to the listening server shared under `key` (see
    /// `share`): same listener, topics, sessions and stats; its dispatcher joins the pool at
    /// `join`. Throws `CZ_WORKER` when that server is closed.
    #[napi(factory, catch_unwind)]
    pub fn attach(key: u32, worker: u32) -> napi::Result<Self> {
        let s = workers::lookup(key).ok_or_else(|| code_error("CZ_WORKER", "the main server is closed"))?;
        let builder = ServerBuilder::new(s.config.clone(), TopicConfig::default(), 0);
        Ok(Self {
            builder: Mutex::new(builder),
            config: s.config,
            stats: s.stats,
            budget: s.budget,
            handler: Mutex::new(None),
            handle: Mutex::new(None),
            topics: s.topics,
            sessions: s.sessions,
            live: s.live,
            pool: s.pool,
            routes: Arc::default(),
            worker,
            main_routes: Some(s.routes),
            key: Mutex::new(None),
            batch: s.batch,
        })
    }

    /// Shares this listening server with worker threads; returns the key for `attach`.
    #[napi(catch_unwind)]
    pub fn share(&self) -> napi::Result<u32> {
        if self.main_routes.is_some() || self.handle.lock().is_none() {
            return Err(code_error("CZ_WORKER", "only a listening main server can be shared"));
        }
        let mut key = self.key.lock();
        if let Some(k) = *key {
            return Ok(k);
        }
        let k = workers::register(Shared {
            config: self.config.clone(),
            stats: self.stats.clone(),
            budget: self.budget.clone(),
            topics: self.topics.clone(),
            sessions: self.sessions.clone(),
            live: self.live.clone(),
            pool: self.pool.clone(),
            routes: self.routes.clone(),
            batch: self.batch,
        });
        *key = Some(k);
        Ok(k)
    }

    /// On a worker: starts taking requests (its dispatcher joins the pool). Throws
    /// `CZ_WORKER_ROUTES` when its routes differ from the main thread's (request routes are
    /// matched by id, so both must declare the same routes in the same order).
    #[napi(catch_unwind)]
    pub fn join(&self) -> napi::Result<()> {
        let main = self.main_routes.as_ref().ok_or_else(|| code_error("CZ_WORKER", "not a worker server"))?;
        let (mine, theirs) = (self.routes.lock().clone(), main.lock().clone());
        if mine != theirs {
            let at =
                mine.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(mine.len().min(theirs.len()));
            let show = |v: &[String]| v.get(at).map_or("nothing".to_owned(), |r| format!("{r:?}"));
            return Err(code_error(
                "CZ_WORKER_ROUTES",
                format!(
                    "worker {} declares {} route(s), the main thread {}; route {at}: {} here, {} there",
                    self.worker,
                    mine.len(),
                    theirs.len(),
                    show(&mine),
                    show(&theirs)
                ),
            ));
        }
        let handler = self.handler.lock().clone().ok_or_else(|| code_error("CZ_WORKER", "no dispatcher"))?;
        if self.pool.join(handler.clone()) {
            self.count_workers();
            Ok(())
        } else {
            handler.release();
            Err(code_error("CZ_WORKER", "the main server is closed"))
        }
    }

    /// On the main thread: worker `worker`'s thread is gone. Its unanswered requests get `503`,
    /// its WebSockets a `1011` close; the other threads' connections are untouched.
    #[napi(catch_unwind)]
    pub fn worker_exited(&self, worker: u32) {
        if let Some(h) = self.pool.leave(worker) {
            h.abandon();
            self.stats.worker_exited();
        }
        self.count_workers();
    }

    /// Threads taking requests now (the main thread included).
    #[napi(catch_unwind)]
    pub fn workers(&self) -> u32 {
        self.pool.len() as u32
    }

    /// Publishes the pool's size in the stats and metrics.
    fn count_workers(&self) {
        self.stats.set_workers(self.pool.len() as u64);
    }

    /// Makes route `routeId` answer every path no other route matches (the app's not-found handler).
    #[napi(catch_unwind)]
    pub fn set_not_found(&self, route_id: u32) {
        self.routes.lock().push(format!("{route_id} not-found"));
        self.builder.lock().not_found(route_id);
    }

    /// Adds a route; `method` `"ALL"` matches every method; `options` replace the server's
    /// limits for its requests. Throws `CZ_ROUTE` on a bad pattern.
    #[napi(catch_unwind)]
    pub fn route(
        &self,
        method: String,
        path: String,
        route_id: u32,
        options: Option<RouteLimits>,
    ) -> napi::Result<()> {
        let method = match method.to_ascii_uppercase().as_str() {
            "ALL" => None,
            m => Some(Method::from_bytes(m.as_bytes()).map_err(|e| code_error("CZ_ROUTE", e.to_string()))?),
        };
        let entry = format!("{route_id} {} {path}", method.as_ref().map_or("ALL", Method::as_str));
        let mut b = self.builder.lock();
        let added = match options {
            Some(o) => b.route_with(method, &path, route_id, o.into()),
            None => b.route(method, &path, route_id),
        };
        added.map_err(|e| code_error("CZ_ROUTE", e.to_string()))?;
        drop(b);
        self.routes.lock().push(entry);
        Ok(())
    }

    /// Installs the dispatcher `(kind, id, num, text?, data?) => true | undefined` (`true`: a
    /// WebSocket message deferred by an async hook). Call once, before `listen`.
    #[napi(catch_unwind)]
    pub fn set_dispatcher(
        &self,
        #[napi(
            ts_arg_type = "(kind: number, id: number, num: number, text: string | null, data: Buffer | null) => true | undefined"
        )]
        callback: Function<JsArgs, Option<bool>>,
    ) -> napi::Result<()> {
        let tsfn = callback.build_threadsafe_function().callee_handled::<false>().build_callback(to_js)?;
        // Called on the JS thread, just before it starts serving: from here until the handler is
        // released, that thread's wake-ups no longer preempt the I/O thread (core `sched`).
        let policy = if self.batch { BatchPolicy::enter() } else { None };
        *self.handler.lock() =
            Some(Arc::new(JsHandler::new(tsfn, self.worker, self.pool.sockets.clone(), policy)));
        Ok(())
    }

    /// Binds and starts serving. Throws `CZ_LISTEN` when the address cannot be bound.
    #[napi(catch_unwind)]
    pub async fn listen(&self, host: String, port: u32) -> napi::Result<ListenInfo> {
        if self.main_routes.is_some() {
            return Err(code_error("CZ_LISTEN", "a worker's server does not listen (it joins the main one)"));
        }
        let handler = self.handler.lock().clone().ok_or_else(|| code_error("CZ_LISTEN", "no dispatcher"))?;
        match self.bind(handler, &host, port).await {
            Ok(info) => Ok(info),
            Err(e) => {
                // Release the dispatcher, or its ThreadsafeFunction would keep the process alive.
                self.pool.leave(0);
                if let Some(h) = self.handler.lock().take() {
                    h.release();
                }
                Err(e)
            }
        }
    }

    async fn bind(&self, handler: Arc<JsHandler>, host: &str, port: u32) -> napi::Result<ListenInfo> {
        let ip: std::net::IpAddr =
            host.parse().map_err(|_| code_error("CZ_LISTEN", format!("invalid host {host:?}")))?;
        let port =
            u16::try_from(port).map_err(|_| code_error("CZ_LISTEN", format!("invalid port {port}")))?;
        let addr = SocketAddr::new(ip, port);
        // Serve a snapshot of the routes, so no lock is held across the bind.
        let builder = self.builder.lock().clone();
        if !self.pool.join(handler) {
            return Err(code_error("CZ_LISTEN", "the server is closed"));
        }
        self.count_workers();
        let core = CoreHandler { pool: self.pool.clone(), sessions: self.sessions.clone() };
        let handle = builder
            .serve(addr, Arc::new(core))
            .await
            .map_err(|e| code_error("CZ_LISTEN", format!("{} {addr}: {e}", os_code(&e))))?;
        let local = handle.local_addr();
        *self.handle.lock() = Some(Arc::new(handle));
        Ok(ListenInfo { port: u32::from(local.port()), address: local.ip().to_string() })
    }

    /// Graceful close: stop accepting, let responses finish up to `timeoutMs` (workers keep
    /// answering meanwhile), then cut. On a worker: it stops taking requests.
    #[napi(catch_unwind)]
    pub async fn close(&self, timeout_ms: u32) -> napi::Result<()> {
        if self.main_routes.is_some() {
            if let Some(h) = self.handler.lock().take() {
                self.pool.leave(self.worker);
                self.count_workers();
                h.release();
            }
            return Ok(());
        }
        if let Some(k) = self.key.lock().take() {
            workers::unregister(k);
        }
        let handle = self.handle.lock().take();
        if let Some(h) = handle {
            h.close(Duration::from_millis(u64::from(timeout_ms))).await;
        }
        self.sessions.clear();
        for h in self.pool.drain() {
            h.release();
        }
        self.count_workers();
        if let Some(h) = self.handler.lock().take() {
            h.release();
        }
        Ok(())
    }

    pub(crate) fn handler(&self) -> Option<Arc<JsHandler>> {
        self.handler.lock().clone()
    }

    /// Completes request `id` with a whole body. Returns a `ReplyCode`.
    #[napi(catch_unwind)]
    pub fn reply(&self, id: u32, status: u32, headers: String, body: Option<BufferSlice>) -> u32 {
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::copy_from_slice(&b));
        self.send(id, status, &headers, bytes)
    }

    /// Completes request `id` with a string body (UTF-8). Returns a `ReplyCode`.
    #[napi(catch_unwind)]
    pub fn reply_text(&self, id: u32, status: u32, headers: String, body: String) -> u32 {
        self.send(id, status, &headers, Bytes::from(body))
    }

    fn send(&self, id: u32, status: u32, headers: &str, body: Bytes) -> u32 {
        let Some(h) = self.handler() else { return ReplyCode::Gone as u32 };
        let (Some(headers), Ok(status)) = (parse_headers(headers), StatusCode::from_u16(status as u16))
        else {
            return ReplyCode::BadHeader as u32;
        };
        let Some(responder) = h.take_final(id) else { return ReplyCode::Gone as u32 };
        if responder.send(Reply::full(status, headers, body)) {
            ReplyCode::Ok as u32
        } else {
            ReplyCode::Gone as u32
        }
    }

    /// Answers request `id` with a stream: sends the head (`headers` packed as `name\0value\0…`)
    /// and returns the writer of the stream's bounded ring. Returns `null` when the client is
    /// gone; throws `CZ_BAD_HEADER` for invalid headers (the request stays pending).
    #[napi(catch_unwind)]
    pub fn start_stream(
        &self,
        id: u32,
        status: u32,
        headers: String,
        options: StreamOptions,
    ) -> napi::Result<Option<NativeStream>> {
        let Some(h) = self.handler() else { return Ok(None) };
        let (Some(headers), Ok(status)) = (parse_headers(&headers), StatusCode::from_u16(status as u16))
        else {
            return Err(code_error("CZ_BAD_HEADER", "invalid status or header"));
        };
        let Some((responder, route)) = h.take_responder_with_options(id) else { return Ok(None) };
        // The stream's own option, else its route's, else the server's.
        let route = route.as_ref().map(|r| &r.options);
        let size = match options.buffer_size {
            Some(n) if n > 0 => n as usize,
            _ => route.and_then(|r| r.buffer_size).unwrap_or(self.config.buffer_size),
        };
        let compress = options.compress.or(route.and_then(|r| r.compress));
        let info = Arc::new(Mutex::new(None));
        let events = StreamEvents { id, handler: h.clone(), info: info.clone() };
        let heartbeat = options.sse_heartbeat_ms.filter(|&ms| ms > 0).map(|ms| {
            (Duration::from_millis(u64::from(ms)), Bytes::from_static(catzilla_core::sse::HEARTBEAT))
        });
        let config = RingConfig { capacity: size, heartbeat, compress };
        let (writer, body) = ring(config, Box::new(events), self.stats.clone(), self.budget.clone());
        // Known before the body can close (its close event forgets it).
        h.stream_started(id, writer.clone());
        if responder.send(Reply { status, headers, body: ReplyBody::Stream(body) }) {
            Ok(Some(NativeStream { writer, info }))
        } else {
            h.finish(id);
            Ok(None)
        }
    }

    /// Requests the next chunk of request `id`'s body; it arrives as a Body/BodyEnd/BodyError event.
    #[napi(catch_unwind)]
    pub fn read_body(&self, id: u32) {
        if let Some(h) = self.handler() {
            h.read_body(id);
        }
    }

    /// Counts a handler failure (a 500 or an aborted stream) in `stats().handlerErrors`.
    #[napi(catch_unwind)]
    pub fn count_handler_error(&self) {
        self.stats.count(catzilla_core::Rejection::HandlerError);
    }

    /// The server's counters.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> NativeStats {
        let mut s: NativeStats = self.stats.snapshot().into();
        s.stream_memory = self.budget.used() as f64;
        if self.budget.limit() != usize::MAX {
            s.stream_memory_limit = self.budget.limit() as f64;
        }
        s
    }
}
