//! Process-wide counters, updated with relaxed atomics on the hot path and read by `stats()`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one server.
#[derive(Debug, Default)]
pub struct Stats {
    connections_total: AtomicU64,
    connections_active: AtomicU64,
    connections_parked: AtomicU64,
    connections_rejected: AtomicU64,
    requests_total: AtomicU64,
    requests_active: AtomicU64,
    streams_total: AtomicU64,
    streams_active: AtomicU64,
    streams_aborted: AtomicU64,
    stream_bytes: AtomicU64,
    status_not_found: AtomicU64,
    status_method_not_allowed: AtomicU64,
    status_timeout: AtomicU64,
    status_body_too_large: AtomicU64,
    status_url_too_long: AtomicU64,
    status_headers_too_large: AtomicU64,
    status_bad_request: AtomicU64,
    status_unavailable: AtomicU64,
    status_handler_error: AtomicU64,
    ws_total: AtomicU64,
    ws_active: AtomicU64,
    ws_messages_in: AtomicU64,
    ws_messages_out: AtomicU64,
    ws_dropped: AtomicU64,
    ws_rejected: AtomicU64,
    ws_resumed: AtomicU64,
    ws_resume_expired: AtomicU64,
    ws_offline_dropped: AtomicU64,
    ws_offline_bytes: AtomicU64,
    publishes: AtomicU64,
    deliveries: AtomicU64,
    subscribers_active: AtomicU64,
    subscribers_dropped: AtomicU64,
    stalled_cut: AtomicU64,
    header_timeouts: AtomicU64,
    streams_expired: AtomicU64,
    route_full: AtomicU64,
    redis_connected: AtomicU64,
    workers: AtomicU64,
    worker_exits: AtomicU64,
    redis_published: AtomicU64,
    redis_received: AtomicU64,
    redis_replayed: AtomicU64,
    redis_errors: AtomicU64,
    redis_reconnects: AtomicU64,
    redis_gaps: AtomicU64,
    redis_local_only: AtomicU64,
    redis_sessions_stored: AtomicU64,
    redis_sessions_claimed: AtomicU64,
    /// Counters and histograms of finished responses (Prometheus metrics).
    pub responses: crate::metrics::ResponseMetrics,
}

/// A consistent-enough copy of [`Stats`] for reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections open now.
    pub connections_active: u64,
    /// Of those, kept-alive connections parked between requests (holding only their socket).
    pub connections_parked: u64,
    /// Connections refused with 503 because `max_connections` was reached.
    pub connections_rejected: u64,
    /// Requests routed since start.
    pub requests_total: u64,
    /// Requests whose response has not finished yet (an open WebSocket counts until it closes).
    pub requests_active: u64,
    /// Streamed responses started since start.
    pub streams_total: u64,
    /// Streamed responses in progress.
    pub streams_active: u64,
    /// Streams that ended because the client left or the producer aborted.
    pub streams_aborted: u64,
    /// Bytes of streamed bodies handed to the socket writer.
    pub stream_bytes: u64,
    /// 404 answers.
    pub not_found: u64,
    /// 405 answers.
    pub method_not_allowed: u64,
    /// 408 answers (slow request heads and bodies).
    pub timeouts: u64,
    /// 413 answers.
    pub body_too_large: u64,
    /// 414 answers.
    pub url_too_long: u64,
    /// 431 answers (written by hyper, counted from the connection error).
    pub headers_too_large: u64,
    /// 400 answers and connections dropped for malformed requests.
    pub bad_requests: u64,
    /// 503 answers (overload or shutdown).
    pub unavailable: u64,
    /// 500 answers because a handler failed.
    pub handler_errors: u64,
    /// WebSocket connections opened since start.
    pub ws_total: u64,
    /// WebSocket connections open now.
    pub ws_active: u64,
    /// WebSocket messages received.
    pub ws_messages_in: u64,
    /// WebSocket messages written to sockets.
    pub ws_messages_out: u64,
    /// WebSocket messages dropped because a socket was over its backpressure limit.
    pub ws_dropped: u64,
    /// Upgrade requests refused (bad handshake: 400, not an upgrade: 426).
    pub ws_rejected: u64,
    /// WebSocket sessions resumed by a reconnecting client.
    pub ws_resumed: u64,
    /// Disconnected WebSocket sessions that expired (TTL) without a resume.
    pub ws_resume_expired: u64,
    /// Messages dropped from the queues of disconnected sessions (bounds or the global budget).
    pub ws_offline_dropped: u64,
    /// Bytes queued for disconnected sessions now (bounded by `maxOfflineMemory`).
    pub ws_offline_bytes: u64,
    /// `publish` calls.
    pub publishes: u64,
    /// Messages handed to topic subscribers (WebSocket and SSE).
    pub deliveries: u64,
    /// SSE clients subscribed to a topic now.
    pub subscribers_active: u64,
    /// SSE topic subscribers cut because they fell more than their limit behind.
    pub subscribers_dropped: u64,
    /// Connections cut because the client stopped reading a response for `stream_idle`.
    pub stalled_cut: u64,
    /// Request heads not completed within `timeouts.headers` (answered `408`, also in `timeouts`).
    pub header_timeouts: u64,
    /// Streams cut at their route's `stream_lifetime`.
    pub streams_expired: u64,
    /// Requests answered `503` because their route was at `max_streams` (also in `unavailable`).
    pub route_full: u64,
    /// `1` while the Redis adapter is connected, else `0`.
    pub redis_connected: u64,
    /// JS threads taking requests now (the binding's worker pool; 0 outside Node).
    pub workers: u64,
    /// Worker threads that died while the server ran (each is replaced).
    pub worker_exits: u64,
    /// Messages published through Redis by this process.
    pub redis_published: u64,
    /// Topic messages received from Redis (every process's publishes).
    pub redis_received: u64,
    /// Messages replayed from Redis streams (resumes and catch-ups).
    pub redis_replayed: u64,
    /// Redis connection and command failures.
    pub redis_errors: u64,
    /// Reconnections to Redis after it was lost.
    pub redis_reconnects: u64,
    /// Resumes and catch-ups that could not be exact (a `cz-gap` was sent).
    pub redis_gaps: u64,
    /// Messages delivered to this process's subscribers only because Redis was unreachable.
    pub redis_local_only: u64,
    /// Disconnected WebSocket sessions this process moved to Redis to wait for their client.
    pub redis_sessions_stored: u64,
    /// WebSocket sessions this process took from Redis for a resume (left by any process).
    pub redis_sessions_claimed: u64,
}

/// Status counters that [`Stats::count_status`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 400.
    BadRequest,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408: a request body too slow.
    Timeout,
    /// 408: a request head not completed in time.
    HeaderTimeout,
    /// 413.
    BodyTooLarge,
    /// 414.
    UrlTooLong,
    /// 431.
    HeadersTooLarge,
    /// 503.
    Unavailable,
    /// 500 from a handler.
    HandlerError,
}

impl Stats {
    pub(crate) fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Relaxed);
        self.connections_active.fetch_add(1, Relaxed);
    }
    /// A connection idled past `PARK_AFTER` and was parked (`on`), or woke up (`!on`).
    pub(crate) fn connection_parked(&self, on: bool) {
        if on {
            self.connections_parked.fetch_add(1, Relaxed);
        } else {
            self.connections_parked.fetch_sub(1, Relaxed);
        }
    }
    pub(crate) fn connection_closed(&self) {
        self.connections_active.fetch_sub(1, Relaxed);
    }
    pub(crate) fn connection_rejected(&self) {
        self.connections_rejected.fetch_add(1, Relaxed);
        self.status_unavailable.fetch_add(1, Relaxed);
    }
    pub(crate) fn request_started(&self) {
        self.requests_total.fetch_add(1, Relaxed);
        self.requests_active.fetch_add(1, Relaxed);
    }
    pub(crate) fn request_finished(&self) {
        self.requests_active.fetch_sub(1, Relaxed);
    }
    pub(crate) fn stream_opened(&self) {
        self.streams_total.fetch_add(1, Relaxed);
        self.streams_active.fetch_add(1, Relaxed);
    }
    pub(crate) fn stream_closed(&self, aborted: bool) {
        self.streams_active.fetch_sub(1, Relaxed);
        if aborted {
            self.streams_aborted.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn add_stream_bytes(&self, n: u64) {
        self.stream_bytes.fetch_add(n, Relaxed);
    }

    pub(crate) fn ws_opened(&self) {
        self.ws_total.fetch_add(1, Relaxed);
        self.ws_active.fetch_add(1, Relaxed);
    }
    pub(crate) fn ws_closed(&self) {
        self.ws_active.fetch_sub(1, Relaxed);
    }
    pub(crate) fn ws_in(&self) {
        self.ws_messages_in.fetch_add(1, Relaxed);
    }
    pub(crate) fn ws_out(&self, n: u64) {
        self.ws_messages_out.fetch_add(n, Relaxed);
    }
    pub(crate) fn ws_dropped(&self) {
        self.ws_dropped.fetch_add(1, Relaxed);
    }
    pub(crate) fn ws_rejected(&self) {
        self.ws_rejected.fetch_add(1, Relaxed);
    }
    pub(crate) fn ws_resumed(&self) {
        self.ws_resumed.fetch_add(1, Relaxed);
    }
    pub(crate) fn ws_resume_expired(&self) {
        self.ws_resume_expired.fetch_add(1, Relaxed);
    }
    pub(crate) fn ws_offline_dropped(&self, n: u64) {
        self.ws_offline_dropped.fetch_add(n, Relaxed);
    }
    /// Adds `n` bytes queued offline; returns the new total.
    pub(crate) fn offline_charge(&self, n: u64) -> u64 {
        self.ws_offline_bytes.fetch_add(n, Relaxed) + n
    }
    pub(crate) fn offline_release(&self, n: u64) {
        self.ws_offline_bytes.fetch_sub(n, Relaxed);
    }
    /// Bytes queued offline now.
    pub(crate) fn offline_bytes(&self) -> u64 {
        self.ws_offline_bytes.load(Relaxed)
    }
    /// Records how many JS threads take requests (set by the Node binding's worker pool).
    pub fn set_workers(&self, n: u64) {
        self.workers.store(n, Relaxed);
    }
    /// Counts a worker thread that died while the server ran.
    pub fn worker_exited(&self) {
        self.worker_exits.fetch_add(1, Relaxed);
    }
    pub(crate) fn set_redis_connected(&self, up: bool) {
        self.redis_connected.store(u64::from(up), Relaxed);
    }
    /// `true` while the Redis adapter is connected.
    pub(crate) fn redis_connected(&self) -> bool {
        self.redis_connected.load(Relaxed) == 1
    }
    pub(crate) fn redis_published(&self, n: u64) {
        self.redis_published.fetch_add(n, Relaxed);
    }
    pub(crate) fn redis_received(&self) {
        self.redis_received.fetch_add(1, Relaxed);
    }
    pub(crate) fn redis_replayed(&self, n: u64) {
        self.redis_replayed.fetch_add(n, Relaxed);
    }
    pub(crate) fn redis_error(&self) {
        self.redis_errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn redis_reconnected(&self) {
        self.redis_reconnects.fetch_add(1, Relaxed);
    }
    pub(crate) fn redis_gap(&self) {
        self.redis_gaps.fetch_add(1, Relaxed);
    }
    pub(crate) fn redis_local_only(&self) {
        self.redis_local_only.fetch_add(1, Relaxed);
    }
    pub(crate) fn redis_session_stored(&self) {
        self.redis_sessions_stored.fetch_add(1, Relaxed);
    }
    pub(crate) fn redis_session_claimed(&self) {
        self.redis_sessions_claimed.fetch_add(1, Relaxed);
    }
    pub(crate) fn published(&self, deliveries: u64) {
        self.publishes.fetch_add(1, Relaxed);
        self.deliveries.fetch_add(deliveries, Relaxed);
    }
    pub(crate) fn subscriber_added(&self) {
        self.subscribers_active.fetch_add(1, Relaxed);
    }
    pub(crate) fn subscriber_removed(&self, dropped: bool) {
        self.subscribers_active.fetch_sub(1, Relaxed);
        if dropped {
            self.subscribers_dropped.fetch_add(1, Relaxed);
        }
    }

    /// A stream reached its route's `stream_lifetime` and was cut.
    pub(crate) fn stream_expired(&self) {
        self.streams_expired.fetch_add(1, Relaxed);
    }

    /// A request got 503 because its route was at `max_streams` (also counted as unavailable).
    pub(crate) fn route_full(&self) {
        self.route_full.fetch_add(1, Relaxed);
    }

    pub(crate) fn stalled(&self) {
        self.stalled_cut.fetch_add(1, Relaxed);
    }

    /// Counts one rejected or failed request.
    pub fn count(&self, what: Rejection) {
        let c = match what {
            Rejection::BadRequest => &self.status_bad_request,
            Rejection::NotFound => &self.status_not_found,
            Rejection::MethodNotAllowed => &self.status_method_not_allowed,
            Rejection::Timeout => &self.status_timeout,
            Rejection::HeaderTimeout => {
                self.header_timeouts.fetch_add(1, Relaxed);
                &self.status_timeout
            }
            Rejection::BodyTooLarge => &self.status_body_too_large,
            Rejection::UrlTooLong => &self.status_url_too_long,
            Rejection::HeadersTooLarge => &self.status_headers_too_large,
            Rejection::Unavailable => &self.status_unavailable,
            Rejection::HandlerError => &self.status_handler_error,
        };
        c.fetch_add(1, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_total: self.connections_total.load(Relaxed),
            connections_active: self.connections_active.load(Relaxed),
            connections_parked: self.connections_parked.load(Relaxed),
            connections_rejected: self.connections_rejected.load(Relaxed),
            requests_total: self.requests_total.load(Relaxed),
            requests_active: self.requests_active.load(Relaxed),
            streams_total: self.streams_total.load(Relaxed),
            streams_active: self.streams_active.load(Relaxed),
            streams_aborted: self.streams_aborted.load(Relaxed),
            stream_bytes: self.stream_bytes.load(Relaxed),
            not_found: self.status_not_found.load(Relaxed),
            method_not_allowed: self.status_method_not_allowed.load(Relaxed),
            timeouts: self.status_timeout.load(Relaxed),
            body_too_large: self.status_body_too_large.load(Relaxed),
            url_too_long: self.status_url_too_long.load(Relaxed),
            headers_too_large: self.status_headers_too_large.load(Relaxed),
            bad_requests: self.status_bad_request.load(Relaxed),
            unavailable: self.status_unavailable.load(Relaxed),
            handler_errors: self.status_handler_error.load(Relaxed),
            ws_total: self.ws_total.load(Relaxed),
            ws_active: self.ws_active.load(Relaxed),
            ws_messages_in: self.ws_messages_in.load(Relaxed),
            ws_messages_out: self.ws_messages_out.load(Relaxed),
            ws_dropped: self.ws_dropped.load(Relaxed),
            ws_rejected: self.ws_rejected.load(Relaxed),
            ws_resumed: self.ws_resumed.load(Relaxed),
            ws_resume_expired: self.ws_resume_expired.load(Relaxed),
            ws_offline_dropped: self.ws_offline_dropped.load(Relaxed),
            ws_offline_bytes: self.ws_offline_bytes.load(Relaxed),
            publishes: self.publishes.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            subscribers_active: self.subscribers_active.load(Relaxed),
            subscribers_dropped: self.subscribers_dropped.load(Relaxed),
            stalled_cut: self.stalled_cut.load(Relaxed),
            header_timeouts: self.header_timeouts.load(Relaxed),
            streams_expired: self.streams_expired.load(Relaxed),
            route_full: self.route_full.load(Relaxed),
            redis_connected: self.redis_connected.load(Relaxed),
            workers: self.workers.load(Relaxed),
            worker_exits: self.worker_exits.load(Relaxed),
            redis_published: self.redis_published.load(Relaxed),
            redis_received: self.redis_received.load(Relaxed),
            redis_replayed: self.redis_replayed.load(Relaxed),
            redis_errors: self.redis_errors.load(Relaxed),
            redis_reconnects: self.redis_reconnects.load(Relaxed),
            redis_gaps: self.redis_gaps.load(Relaxed),
            redis_local_only: self.redis_local_only.load(Relaxed),
            redis_sessions_stored: self.redis_sessions_stored.load(Relaxed),
            redis_sessions_claimed: self.redis_sessions_claimed.load(Relaxed),
        }
    }
}
