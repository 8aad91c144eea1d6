//! Plain objects exchanged with JS: server options, listen result, stats, event kinds.

use catzilla_core::StatsSnapshot;
use napi_derive::napi;
use std::time::Duration;

/// Options for `new NativeServer()`. Every field is optional; defaults live in `catzilla-core`.
#[napi(object)]
#[derive(Default)]
pub struct ServerOptions {
    /// Default per-stream ring capacity in bytes.
    pub buffer_size: Option<u32>,
    /// Put each JS thread that runs handlers under Linux `SCHED_BATCH` while it serves
    /// (default `true`; see `catzilla_core::sched`).
    pub batch_scheduling: Option<bool>,
    /// Sum of all stream rings in bytes; writers wait beyond it (0: unlimited).
    pub max_stream_memory: Option<f64>,
    /// Bytes all disconnected WebSocket sessions may hold queued; past it the oldest are dropped.
    pub max_offline_memory: Option<f64>,
    /// Maximum request body bytes (413 beyond).
    pub max_body_size: Option<f64>,
    /// Maximum request head bytes (431 beyond).
    pub max_header_size: Option<u32>,
    /// Maximum request header fields (431 beyond).
    pub max_headers: Option<u32>,
    /// Maximum request-target bytes (414 beyond).
    pub max_url_length: Option<u32>,
    /// Maximum open connections (503 beyond).
    pub max_connections: Option<u32>,
    /// Request head timeout in ms (0 disables).
    pub headers_timeout: Option<u32>,
    /// Keep-alive idle timeout in ms (0 disables).
    pub keep_alive_timeout: Option<u32>,
    /// Per-chunk request body timeout in ms (0 disables).
    pub body_timeout: Option<u32>,
    /// Time in ms a response write may stay blocked by a client that stopped reading (0 disables).
    pub stream_idle_timeout: Option<u32>,
    /// Bodies with a Content-Length up to this many bytes arrive with the request.
    pub prebuffer_body: Option<u32>,
    /// Messages each topic keeps for SSE replay (0 disables history).
    pub topic_history: Option<u32>,
    /// `redis://…`: topics, history and resumes across processes through this Redis.
    pub redis_url: Option<String>,
    /// Prefix of the adapter's Redis keys and channels.
    pub redis_prefix: Option<String>,
    /// Seconds a topic's Redis stream lives after its last publish (0: forever).
    pub redis_ttl: Option<u32>,
    /// Compress responses when the client accepts it.
    pub compression: Option<bool>,
    /// Whole bodies below this many bytes stay uncompressed.
    pub compression_threshold: Option<u32>,
    /// Codings in order of preference (`br`, `gzip`).
    pub compression_encodings: Option<Vec<String>>,
    /// gzip level / brotli quality.
    pub compression_level: Option<u32>,
}

/// Where the server listens.
#[napi(object)]
pub struct ListenInfo {
    /// Bound port.
    pub port: u32,
    /// Bound IP address.
    pub address: String,
}

/// Counters, as `app.stats()` reports them.
#[napi(object)]
pub struct NativeStats {
    /// Connections accepted since start.
    pub connections_total: f64,
    /// Connections open now.
    pub connections_active: f64,
    /// Of those, kept-alive connections parked between requests (holding only their socket).
    pub connections_parked: f64,
    /// Connections refused because `maxConnections` was reached.
    pub connections_rejected: f64,
    /// Requests routed since start.
    pub requests_total: f64,
    /// Requests in flight.
    pub requests_active: f64,
    /// Streams started since start.
    pub streams_total: f64,
    /// Streams in progress.
    pub streams_active: f64,
    /// Streams cut short (client left, producer aborted, shutdown).
    pub streams_aborted: f64,
    /// Streamed body bytes handed to sockets.
    pub stream_bytes: f64,
    /// Bytes buffered in all stream rings now.
    pub stream_memory: f64,
    /// The `maxStreamMemory` budget (`Infinity` when unlimited).
    pub stream_memory_limit: f64,
    /// JS threads taking requests now (the main thread and its workers, see `serve`).
    pub workers: u32,
    /// Worker threads that exited while the server ran (each is replaced).
    pub worker_exits: f64,
    /// 404 answers.
    pub not_found: f64,
    /// 405 answers.
    pub method_not_allowed: f64,
    /// 408 answers.
    pub timeouts: f64,
    /// 413 answers.
    pub body_too_large: f64,
    /// 414 answers.
    pub url_too_long: f64,
    /// 431 answers.
    pub headers_too_large: f64,
    /// 400 answers.
    pub bad_requests: f64,
    /// 503 answers.
    pub unavailable: f64,
    /// 500 answers caused by handlers.
    pub handler_errors: f64,
    /// WebSockets opened since start.
    pub ws_total: f64,
    /// WebSockets open now.
    pub ws_active: f64,
    /// WebSocket messages received.
    pub ws_messages_in: f64,
    /// WebSocket messages written.
    pub ws_messages_out: f64,
    /// WebSocket messages dropped by backpressure limits.
    pub ws_dropped: f64,
    /// Upgrade requests refused (400 bad handshake, 426 not an upgrade).
    pub ws_rejected: f64,
    /// WebSocket sessions resumed by a reconnecting client.
    pub ws_resumed: f64,
    /// Disconnected WebSocket sessions whose resume TTL passed.
    pub ws_resume_expired: f64,
    /// `1` while the Redis adapter is connected, else `0`.
    pub redis_connected: f64,
    /// Messages published through Redis by this process.
    pub redis_published: f64,
    /// Topic messages received from Redis (every process's publishes).
    pub redis_received: f64,
    /// Messages replayed from Redis streams (resumes and catch-ups).
    pub redis_replayed: f64,
    /// Redis connection and command failures.
    pub redis_errors: f64,
    /// Reconnections to Redis after it was lost.
    pub redis_reconnects: f64,
    /// Resumes and catch-ups that could not be exact (a `cz-gap` was sent).
    pub redis_gaps: f64,
    /// Messages delivered to this process's subscribers only because Redis was unreachable.
    pub redis_local_only: f64,
    /// Disconnected WebSocket sessions this process moved to Redis to wait for their client.
    pub redis_sessions_stored: f64,
    /// WebSocket sessions this process took from Redis for a resume (left by any process).
    pub redis_sessions_claimed: f64,
    /// Messages dropped from disconnected sessions' queues (bounds or `maxOfflineMemory`).
    pub ws_offline_dropped: f64,
    /// Bytes queued for disconnected WebSocket sessions now.
    pub ws_offline_bytes: f64,
    /// `publish` calls.
    pub publishes: f64,
    /// Messages handed to topic subscribers.
    pub deliveries: f64,
    /// SSE topic subscribers now.
    pub subscribers_active: f64,
    /// SSE topic subscribers cut for falling too far behind.
    pub subscribers_dropped: f64,
    /// Connections cut because the client stopped reading for `timeouts.streamIdle`.
    pub stalled_cut: f64,
    /// Request heads not completed within `timeouts.headers` (answered 408; also in `timeouts`).
    pub header_timeouts: f64,
    /// Streams cut at their route's `streamLifetime`.
    pub streams_expired: f64,
    /// Requests answered 503 because their route was at `maxStreams`.
    pub route_full: f64,
}

impl From<StatsSnapshot> for NativeStats {
    fn from(s: StatsSnapshot) -> Self {
        Self {
            connections_total: s.connections_total as f64,
            connections_active: s.connections_active as f64,
            connections_parked: s.connections_parked as f64,
            connections_rejected: s.connections_rejected as f64,
            requests_total: s.requests_total as f64,
            requests_active: s.requests_active as f64,
            streams_total: s.streams_total as f64,
            streams_active: s.streams_active as f64,
            streams_aborted: s.streams_aborted as f64,
            stream_bytes: s.stream_bytes as f64,
            stream_memory: 0.0,
            stream_memory_limit: f64::INFINITY,
            workers: s.workers as u32,
            worker_exits: s.worker_exits as f64,
            not_found: s.not_found as f64,
            method_not_allowed: s.method_not_allowed as f64,
            timeouts: s.timeouts as f64,
            body_too_large: s.body_too_large as f64,
            url_too_long: s.url_too_long as f64,
            headers_too_large: s.headers_too_large as f64,
            bad_requests: s.bad_requests as f64,
            unavailable: s.unavailable as f64,
            handler_errors: s.handler_errors as f64,
            ws_total: s.ws_total as f64,
            ws_active: s.ws_active as f64,
            ws_messages_in: s.ws_messages_in as f64,
            ws_messages_out: s.ws_messages_out as f64,
            ws_dropped: s.ws_dropped as f64,
            ws_rejected: s.ws_rejected as f64,
            ws_resumed: s.ws_resumed as f64,
            ws_resume_expired: s.ws_resume_expired as f64,
            redis_connected: s.redis_connected as f64,
            redis_published: s.redis_published as f64,
            redis_received: s.redis_received as f64,
            redis_replayed: s.redis_replayed as f64,
            redis_errors: s.redis_errors as f64,
            redis_reconnects: s.redis_reconnects as f64,
            redis_gaps: s.redis_gaps as f64,
            redis_local_only: s.redis_local_only as f64,
            redis_sessions_stored: s.redis_sessions_stored as f64,
            redis_sessions_claimed: s.redis_sessions_claimed as f64,
            ws_offline_dropped: s.ws_offline_dropped as f64,
            ws_offline_bytes: s.ws_offline_bytes as f64,
            publishes: s.publishes as f64,
            deliveries: s.deliveries as f64,
            subscribers_active: s.subscribers_active as f64,
            subscribers_dropped: s.subscribers_dropped as f64,
            stalled_cut: s.stalled_cut as f64,
            header_timeouts: s.header_timeouts as f64,
            streams_expired: s.streams_expired as f64,
            route_full: s.route_full as f64,
        }
    }
}

/// Kinds of events delivered to the JS dispatcher (first argument).
#[napi]
pub enum EventKind {
    /// A routed request: `(kind, id, route, head, body?)`.
    Request = 0,
    /// The client left before the reply: `(kind, id)`.
    Cancel = 1,
    /// A full stream ring drained: `(kind, id)`.
    Drain = 2,
    /// A stream closed: `(kind, id, aborted ? 1 : 0)`.
    Closed = 3,
    /// A request body chunk: `(kind, id, 0, undefined, chunk)`.
    Body = 4,
    /// The request body ended: `(kind, id)`.
    BodyEnd = 5,
    /// The request body failed: `(kind, id, status, message)`.
    BodyError = 6,
    /// A WebSocket is open: `(kind, wsId)`.
    WsOpen = 7,
    /// A WebSocket message: `(kind, wsId, 0, text)` or `(kind, wsId, 1, null, data)`.
    WsMessage = 8,
    /// A WebSocket's queue fell under half its limit: `(kind, wsId)`.
    WsDrain = 9,
    /// A WebSocket closed: `(kind, wsId, code, reason)`.
    WsClose = 10,
    /// A multipart part begins: `(kind, id)`; its head is `multipartHead(id)`.
    PartStart = 11,
    /// No more multipart parts: `(kind, id)`.
    PartsEnd = 12,
    /// A WebSocket's connection ended and its session waits for a resume: `(kind, wsId, code, reason)`.
    WsOffline = 13,
    /// A disconnected WebSocket session was not resumed within its TTL: `(kind, wsId)`.
    WsExpired = 14,
    /// A disconnected WebSocket session that waited in Redis was resumed elsewhere: `(kind, wsId)`.
    WsMoved = 15,
}

/// Options of one WebSocket route (`app.ws(path, behaviour)`).
#[napi(object)]
#[derive(Default)]
pub struct WsOptions {
    /// Largest accepted message in bytes (1009 beyond).
    pub max_payload: Option<f64>,
    /// Idle time in ms before the socket is closed (a ping goes out half-way); 0 disables.
    pub idle_timeout: Option<u32>,
    /// Outbound bytes a socket may queue before sends are dropped.
    pub max_backpressure: Option<f64>,
    /// Close (1008) instead of dropping once over `maxBackpressure`.
    pub close_on_backpressure_limit: Option<bool>,
    /// permessage-deflate when the client offers it; absent: never negotiated.
    pub compression: Option<WsCompression>,
    /// Session resume after an unexpected disconnect; absent: sockets end with their connection.
    pub resume: Option<WsResume>,
}

/// Offline queue bounds of a WebSocket route (`resume`).
#[napi(object)]
#[derive(Default)]
pub struct WsResume {
    /// Milliseconds a disconnected session waits for its client.
    pub ttl: Option<f64>,
    /// Messages queued for a disconnected client at most (oldest dropped first).
    pub max_messages: Option<u32>,
    /// Bytes queued for a disconnected client at most (oldest dropped first).
    pub max_bytes: Option<f64>,
}

/// An accepted upgrade.
#[napi(object)]
pub struct WsAccepted {
    /// The socket id (0: the client is gone). A resumed session keeps its socket's id.
    pub id: u32,
    /// The session id the client reconnects with (routes with `resume`).
    pub session: Option<String>,
    /// `true` when this connection resumed a disconnected session.
    pub recovered: bool,
}

/// permessage-deflate settings of a WebSocket route (defaults in `DeflateConfig`).
#[napi(object)]
#[derive(Default)]
pub struct WsCompression {
    /// Keep the compression window between messages (a compressor and decompressor per socket).
    pub context_takeover: Option<bool>,
    /// Messages shorter than this many bytes go uncompressed.
    pub threshold: Option<u32>,
    /// zlib level, 1–9.
    pub level: Option<u32>,
    /// Largest window (2^bits bytes, 9–15) the server compresses with when it keeps context.
    pub server_max_window_bits: Option<u32>,
    /// Window (8–15) asked of clients that support `client_max_window_bits`, with context.
    pub client_max_window_bits: Option<u32>,
}

/// Options of one route that replace the server's (`app.get(path, options, handler)`); times in
/// ms, where 0 means no limit.
#[napi(object)]
#[derive(Default)]
pub struct RouteLimits {
    /// Request body bytes at most (413 beyond).
    pub max_body_size: Option<f64>,
    /// Time between request body chunks (408 beyond); 0: none.
    pub body_timeout: Option<u32>,
    /// Time a write may stay blocked by a client that does not read; 0: none.
    pub stream_idle_timeout: Option<u32>,
    /// Total time a stream may last; 0 or absent: unlimited.
    pub stream_lifetime: Option<u32>,
    /// Ring capacity of the route's streams in bytes.
    pub buffer_size: Option<u32>,
    /// Compression of the route's responses.
    pub compress: Option<bool>,
    /// Responses in progress at most (503 beyond).
    pub max_streams: Option<u32>,
}

impl From<RouteLimits> for catzilla_core::RouteOptions {
    fn from(o: RouteLimits) -> Self {
        let ms = |v: u32| (v > 0).then(|| Duration::from_millis(u64::from(v)));
        Self {
            max_body_size: o.max_body_size.map(|v| v as u64),
            body_timeout: o.body_timeout.map(ms),
            stream_idle: o.stream_idle_timeout.map(ms),
            stream_lifetime: o.stream_lifetime.and_then(ms),
            buffer_size: o.buffer_size.filter(|&n| n > 0).map(|n| n as usize),
            compress: o.compress,
            max_streams: o.max_streams.map(|n| n as usize),
        }
    }
}

/// Options of one response stream (`startStream`).
#[napi(object)]
#[derive(Default)]
pub struct StreamOptions {
    /// Ring capacity in bytes; absent or 0: the server's `bufferSize`.
    pub buffer_size: Option<u32>,
    /// An SSE comment heartbeat after this many ms of silence; absent or 0: none.
    pub sse_heartbeat_ms: Option<u32>,
    /// Overrides the server's compression for this stream; absent: follow it.
    pub compress: Option<bool>,
}

/// Outcome codes of the synchronous reply calls.
#[napi]
pub enum ReplyCode {
    /// The reply was handed to the connection.
    Ok = 0,
    /// The request is unknown or its client is gone; nothing was sent.
    Gone = 1,
    /// A header name or value was invalid; nothing was sent and the request is still pending.
    BadHeader = 2,
}
