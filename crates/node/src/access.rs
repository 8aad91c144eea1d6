//! Operations for JS: the access log (the core batches every finished exchange, its own
//! 404/413/static answers included, and this sink hands each batch to one JS callback call),
//! the metrics route, and the table of live streams and WebSockets.

use catzilla_core::{AccessLog, Exchange, ExchangeSink, LiveInfo, LiveKind};
use napi::bindgen_prelude::{FnArgs, Function};
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use crate::server::{code_error, NativeServer};

/// One finished request as the access log reports it.
#[napi(object)]
pub struct ResponseInfo {
    /// Request method; `-` when the request head was never parsed (431, 408, 400, 503 at the
    /// connection limit).
    pub method: String,
    /// Request target as sent (path and query); `-` as for `method`.
    pub url: String,
    /// Client IP address.
    pub remote: String,
    /// Response status; 0 when no response was produced (the client left first).
    pub status: u32,
    /// Body bytes handed to the socket (after compression).
    pub bytes: f64,
    /// From the request head to the end of the response, in ms.
    pub duration_ms: f64,
    /// From the request head to the response head, in ms; absent without a response.
    pub ttfb_ms: Option<f64>,
    /// A streamed body.
    pub stream: bool,
    /// The body did not complete (client left, stream cut).
    pub aborted: bool,
}

impl From<Exchange> for ResponseInfo {
    fn from(ex: Exchange) -> Self {
        Self {
            method: ex.method.map_or_else(|| "-".to_owned(), |m| m.to_string()),
            url: ex.uri.map_or_else(|| "-".to_owned(), |u| u.to_string()),
            remote: ex.remote.ip().to_string(),
            status: ex.status.map_or(0, |s| u32::from(s.as_u16())),
            bytes: ex.bytes as f64,
            duration_ms: ex.duration.as_secs_f64() * 1000.0,
            ttfb_ms: ex.ttfb.map(|t| t.as_secs_f64() * 1000.0),
            stream: ex.stream,
            aborted: ex.aborted,
        }
    }
}

/// One live stream or WebSocket (`app.streams()`).
#[napi(object)]
pub struct LiveStream {
    /// Id for `closeStream`.
    pub id: f64,
    /// `stream`, `topic` or `websocket`.
    pub kind: String,
    /// Request method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Client IP address.
    pub remote: String,
    /// Start time, ms since the Unix epoch.
    pub started_at: f64,
    /// Age in ms.
    pub age_ms: f64,
    /// Bytes handed to the socket (message payload bytes for a WebSocket).
    pub bytes: f64,
    /// Chunks written by the producer (messages sent for a WebSocket).
    pub chunks: f64,
    /// Bytes buffered and not yet handed to the socket.
    pub buffered: f64,
    /// Buffer size in bytes (the ring, or a WebSocket's maxBackpressure).
    pub buffer_size: f64,
    /// The buffer's current size in bytes: a stream's ring starts at 16 KiB and grows to
    /// `bufferSize` while its client keeps up, and falls back when the client falls behind.
    pub buffer_limit: f64,
    /// Since when (ms since the Unix epoch) the producer waits for a slow client; absent when not.
    pub stalled_since: Option<f64>,
}

impl From<LiveInfo> for LiveStream {
    fn from(i: LiveInfo) -> Self {
        Self {
            id: i.id as f64,
            kind: match i.kind {
                LiveKind::Stream => "stream",
                LiveKind::Topic => "topic",
                LiveKind::WebSocket => "websocket",
            }
            .to_owned(),
            method: i.method,
            path: i.path,
            remote: i.remote.ip().to_string(),
            started_at: i.started_at as f64,
            age_ms: i.age_ms as f64,
            bytes: i.bytes as f64,
            chunks: i.chunks as f64,
            buffered: i.buffered as f64,
            buffer_size: i.capacity as f64,
            buffer_limit: i.limit as f64,
            stalled_since: i.stalled_since.map(|t| t as f64),
        }
    }
}

type Args = FnArgs<(Vec<ResponseInfo>,)>;

/// At most this many batches wait for the JS thread; beyond, batches are dropped and counted
/// (a log that cannot keep up must not grow the process).
const MAX_QUEUED_BATCHES: usize = 256;

/// Weak: a pending log batch never keeps the process alive on its own.
type LogFn = ThreadsafeFunction<Vec<Exchange>, (), Args, Status, false, true, MAX_QUEUED_BATCHES>;

struct JsSink(LogFn);

impl ExchangeSink for JsSink {
    fn deliver(&self, batch: Vec<Exchange>) -> bool {
        self.0.call(batch, ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
    }
}

#[napi]
impl NativeServer {
    /// Calls `callback` with batches of finished exchanges (every response, including those the
    /// core answers itself). Set before `listen`.
    #[napi(catch_unwind)]
    pub fn on_responses(
        &self,
        #[napi(ts_arg_type = "(infos: ResponseInfo[]) => void")] callback: Function<Args, ()>,
    ) -> napi::Result<()> {
        let tsfn: LogFn = callback
            .build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .max_queue_size::<MAX_QUEUED_BATCHES>()
            .build_callback(|ctx: ThreadsafeCallContext<Vec<Exchange>>| {
                Ok(FnArgs::from((ctx.value.into_iter().map(ResponseInfo::from).collect(),)))
            })?;
        self.builder.lock().access_log(AccessLog::new(JsSink(tsfn)));
        Ok(())
    }

    /// Serves the Prometheus metrics at `path` in Rust; with `authorization`, only requests
    /// carrying exactly that `Authorization` header value (others get 401). Set before `listen`.
    #[napi(catch_unwind)]
    pub fn metrics_route(&self, path: String, authorization: Option<String>) -> napi::Result<()> {
        self.builder.lock().metrics(&path, authorization).map_err(|e| code_error("CZ_ROUTE", e.to_string()))
    }

    /// Every live stream and WebSocket now, oldest first (reads atomics; never waits on a stream).
    #[napi(catch_unwind)]
    pub fn streams(&self) -> Vec<LiveStream> {
        self.live.list().into_iter().map(LiveStream::from).collect()
    }

    /// Cuts live stream `id` (a WebSocket gets a 1001 close); `false` when it is not live.
    #[napi(catch_unwind)]
    pub fn close_stream(&self, id: f64) -> bool {
        id >= 0.0 && id.fract() == 0.0 && self.live.close(id as u64)
    }

    /// The Prometheus text exposition of this server's metrics now.
    #[napi(catch_unwind)]
    pub fn metrics_text(&self) -> String {
        catzilla_core::metrics::encode(&self.stats, &self.budget)
    }
}
