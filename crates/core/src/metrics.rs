//! Prometheus metrics: per-response counters and histograms kept in relaxed atomics on the hot
//! path, and the text exposition of everything (`Stats` included) encoded by `prometheus-client`
//! at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::body::budget::StreamBudget;
use crate::exchange::Exchange;
use crate::stats::Stats;

/// Methods with their own label value; anything else is `OTHER`.
const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"];
/// Status classes; `none` is a request that got no response (the client left first).
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Upper bounds (seconds) of the duration and time-to-first-byte histograms: sub-millisecond
/// answers up to the minutes a stream may live.
const BOUNDS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    3600.0,
];

/// A histogram of durations in atomics: one counter per bucket (the last is `+Inf`) and the sum
/// in microseconds.
#[derive(Debug)]
struct AtomicHistogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_micros: AtomicU64::new(0) }
    }
}

impl AtomicHistogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BOUNDS.iter().position(|b| s <= *b).unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// `(sum in seconds, count, per-bucket counts with f64::MAX for +Inf)`, as
    /// `prometheus-client` encodes them.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut count = 0;
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let n = b.load(Relaxed);
                count += n;
                (BOUNDS.get(i).copied().unwrap_or(f64::MAX), n)
            })
            .collect();
        (self.sum_micros.load(Relaxed) as f64 / 1e6, count, buckets)
    }
}

/// Counters and histograms of finished responses.
#[derive(Debug)]
pub struct ResponseMetrics {
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    duration: AtomicHistogram,
    ttfb: AtomicHistogram,
    bytes: AtomicU64,
    aborted: AtomicU64,
}

impl Default for ResponseMetrics {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            duration: AtomicHistogram::default(),
            ttfb: AtomicHistogram::default(),
            bytes: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
        }
    }
}

impl ResponseMetrics {
    /// Counts one finished exchange.
    pub fn observe(&self, ex: &Exchange) {
        let method = ex.method.as_ref().map_or("", http::Method::as_str);
        let m = METHODS.iter().position(|m| *m == method).unwrap_or(METHODS.len() - 1);
        let c = ex.status.map_or(CLASSES.len() - 1, |s| (s.as_u16() / 100).clamp(1, 5) as usize - 1);
        self.requests[m][c].fetch_add(1, Relaxed);
        self.duration.observe(ex.duration);
        if let Some(t) = ex.ttfb {
            self.ttfb.observe(t);
        }
        self.bytes.fetch_add(ex.bytes, Relaxed);
        if ex.aborted {
            self.aborted.fetch_add(1, Relaxed);
        }
    }
}

/// Encodes the server's metrics in the Prometheus text exposition format.
pub fn encode(stats: &Arc<Stats>, budget: &Arc<StreamBudget>) -> String {
    let mut registry = Registry::with_prefix("catzilla");
    registry.register_collector(Box::new(Scrape { stats: stats.clone(), budget: budget.clone() }));
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Reads every counter at scrape time.
#[derive(Debug)]
struct Scrape {
    stats: Arc<Stats>,
    budget: Arc<StreamBudget>,
}

/// Encodes one unlabelled counter (`name` gets `_total`) or gauge.
fn one(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let m = e.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(v).encode(m),
        _ => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m),
    }
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let r = &self.stats.responses;
        {
            let mut fam = e.encode_descriptor(
                "http_requests",
                "Finished HTTP requests by method and status class (none: no response, the client left).",
                None,
                Counter,
            )?;
            for (mi, m) in METHODS.iter().enumerate() {
                for (ci, c) in CLASSES.iter().enumerate() {
                    let v = r.requests[mi][ci].load(Relaxed);
                    if v > 0 {
                        let labels = [("method", *m), ("status_class", *c)];
                        ConstCounter::new(v).encode(fam.encode_family(&labels)?)?;
                    }
                }
            }
        }
        for (name, help, h) in [
            (
                "http_request_duration_seconds",
                "From the request head to the end of the response body.",
                &r.duration,
            ),
            ("http_time_to_first_byte_seconds", "From the request head to the response head.", &r.ttfb),
        ] {
            let (sum, count, buckets) = h.snapshot();
            e.encode_descriptor(name, help, None, MetricType::Histogram)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        }
        let s = self.stats.snapshot();
        let rows: [(&str, &str, MetricType, u64); 45] = [
            (
                "http_response_bytes",
                "Response body bytes handed to sockets (after compression).",
                Counter,
                r.bytes.load(Relaxed),
            ),
            (
                "http_responses_aborted",
                "Responses whose body did not complete (client left or stream cut).",
                Counter,
                r.aborted.load(Relaxed),
            ),
            ("connections", "Connections accepted.", Counter, s.connections_total),
            ("connections_active", "Connections open now.", Gauge, s.connections_active),
            (
                "connections_parked",
                "Kept-alive connections parked between requests (holding only their socket).",
                Gauge,
                s.connections_parked,
            ),
            ("http_requests_active", "Requests whose response has not finished.", Gauge, s.requests_active),
            ("streams", "Streamed responses started.", Counter, s.streams_total),
            ("streams_active", "Streamed responses in progress.", Gauge, s.streams_active),
            (
                "streams_aborted",
                "Streams ended by the client leaving or the producer aborting.",
                Counter,
                s.streams_aborted,
            ),
            ("stream_bytes", "Bytes of streamed bodies handed to sockets.", Counter, s.stream_bytes),
            (
                "stream_buffer_bytes",
                "Bytes held in stream rings now (bounded by maxStreamMemory).",
                Gauge,
                self.budget.used() as u64,
            ),
            (
                "streams_stalled_cut",
                "Connections cut because the client stopped reading for streamIdle.",
                Counter,
                s.stalled_cut,
            ),
            ("ws_connections", "WebSocket connections opened.", Counter, s.ws_total),
            ("ws_connections_active", "WebSocket connections open now.", Gauge, s.ws_active),
            ("ws_messages_received", "WebSocket messages received.", Counter, s.ws_messages_in),
            ("ws_messages_sent", "WebSocket messages written to sockets.", Counter, s.ws_messages_out),
            (
                "ws_messages_dropped",
                "WebSocket messages dropped over a socket's backpressure limit.",
                Counter,
                s.ws_dropped,
            ),
            (
                "ws_sessions_resumed",
                "WebSocket sessions resumed by a reconnecting client.",
                Counter,
                s.ws_resumed,
            ),
            (
                "ws_sessions_expired",
                "Disconnected WebSocket sessions whose resume TTL passed.",
                Counter,
                s.ws_resume_expired,
            ),
            (
                "ws_offline_dropped",
                "Messages dropped from disconnected sessions' queues (bounds or budget).",
                Counter,
                s.ws_offline_dropped,
            ),
            (
                "ws_offline_bytes",
                "Bytes queued for disconnected WebSocket sessions now.",
                Gauge,
                s.ws_offline_bytes,
            ),
            (
                "workers",
                "JS threads taking requests now (the main thread and its workers).",
                Gauge,
                s.workers,
            ),
            (
                "worker_exits",
                "Worker threads that died while the server ran (each is replaced).",
                Counter,
                s.worker_exits,
            ),
            ("redis_connected", "1 while the Redis adapter is connected, else 0.", Gauge, s.redis_connected),
            (
                "redis_published",
                "Messages published through Redis by this process.",
                Counter,
                s.redis_published,
            ),
            (
                "redis_received",
                "Topic messages received from Redis (every process's publishes).",
                Counter,
                s.redis_received,
            ),
            (
                "redis_replayed",
                "Messages replayed from Redis streams (resumes and catch-ups).",
                Counter,
                s.redis_replayed,
            ),
            ("redis_errors", "Redis connection and command failures.", Counter, s.redis_errors),
            ("redis_reconnects", "Reconnections to Redis after it was lost.", Counter, s.redis_reconnects),
            (
                "redis_gaps",
                "Resumes and catch-ups that could not be exact (a cz-gap was sent).",
                Counter,
                s.redis_gaps,
            ),
            (
                "redis_local_only",
                "Messages delivered to this process's subscribers only because Redis was unreachable.",
                Counter,
                s.redis_local_only,
            ),
            (
                "redis_sessions_stored",
                "Disconnected WebSocket sessions moved to Redis to wait for their client.",
                Counter,
                s.redis_sessions_stored,
            ),
            (
                "redis_sessions_claimed",
                "WebSocket sessions taken from Redis for a resume.",
                Counter,
                s.redis_sessions_claimed,
            ),
            (
                "ws_upgrades_rejected",
                "Upgrade requests refused (400 bad handshake, 426 not an upgrade).",
                Counter,
                s.ws_rejected,
            ),
            ("topic_publishes", "publish() calls.", Counter, s.publishes),
            (
                "topic_deliveries",
                "Messages handed to topic subscribers (WebSocket and SSE).",
                Counter,
                s.deliveries,
            ),
            (
                "topic_subscribers_active",
                "SSE clients subscribed to a topic now.",
                Gauge,
                s.subscribers_active,
            ),
            (
                "topic_subscribers_dropped",
                "SSE topic subscribers cut for falling too far behind.",
                Counter,
                s.subscribers_dropped,
            ),
            ("http_not_found", "404 answers from the router.", Counter, s.not_found),
            ("http_method_not_allowed", "405 answers from the router.", Counter, s.method_not_allowed),
            (
                "http_bad_requests",
                "400 answers and connections dropped for malformed requests.",
                Counter,
                s.bad_requests,
            ),
            ("http_handler_errors", "500 answers because a handler failed.", Counter, s.handler_errors),
            ("http_unavailable", "503 answers (overload or shutdown).", Counter, s.unavailable),
            (
                "connections_rejected",
                "Connections refused with 503 at maxConnections.",
                Counter,
                s.connections_rejected,
            ),
            (
                "http_header_timeouts",
                "Request heads not completed within headersTimeout (408).",
                Counter,
                s.header_timeouts,
            ),
        ];
        for (name, help, kind, v) in rows {
            one(&mut e, name, help, kind, v)?;
        }
        let mut fam = e.encode_descriptor(
            "limit_hits",
            "Limits hit, by kind: body_too_large 413, url_too_long 414, headers_too_large 431, body_timeout and header_timeout 408, overload and route_max_streams 503, stream_lifetime and stream_idle (streams cut).",
            None,
            Counter,
        )?;
        for (kind, v) in [
            ("body_too_large", s.body_too_large),
            ("url_too_long", s.url_too_long),
            ("headers_too_large", s.headers_too_large),
            ("body_timeout", s.timeouts.saturating_sub(s.header_timeouts)),
            ("header_timeout", s.header_timeouts),
            ("overload", s.connections_rejected),
            ("route_max_streams", s.route_full),
            ("stream_lifetime", s.streams_expired),
            ("stream_idle", s.stalled_cut),
        ] {
            ConstCounter::new(v).encode(fam.encode_family(&[("kind", kind)])?)?;
        }
        Ok(())
    }
}

/// The `Content-Type` of the exposition `prometheus-client` writes (OpenMetrics text, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Answers a scrape of a metrics route: `401` without the configured `Authorization`, else the
/// exposition.
pub(crate) fn reply(
    route: &crate::builder::MetricsRoute,
    headers: &http::HeaderMap,
    stats: &Arc<Stats>,
    budget: &Arc<StreamBudget>,
) -> http::Response<crate::response::ResponseBody> {
    use http::{header, HeaderValue, StatusCode};
    if let Some(expected) = &route.authorization {
        let given = headers.get(header::AUTHORIZATION).map_or(&[][..], HeaderValue::as_bytes);
        if !constant_time_eq(given, expected.as_bytes()) {
            let mut res = crate::response::error(StatusCode::UNAUTHORIZED, "Unauthorized");
            let scheme = if expected.starts_with("Basic ") { "Basic realm=\"metrics\"" } else { "Bearer" };
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
            return res;
        }
    }
    let mut h = http::HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    crate::response::build(crate::handler::Reply::full(StatusCode::OK, h, encode(stats, budget)), None)
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_follow_prometheus_conventions() {
        let stats = Arc::new(Stats::default());
        let ex = crate::exchange::Tracker::new(
            http::Method::POST,
            http::Uri::from_static("/x"),
            std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        );
        let mut ex = ex.finish();
        ex.status = Some(http::StatusCode::CREATED);
        ex.duration = Duration::from_millis(3);
        ex.ttfb = Some(Duration::from_millis(1));
        stats.responses.observe(&ex);
        let text = encode(&stats, &StreamBudget::new(0));
        assert!(
            text.contains("catzilla_http_requests_total{method=\"POST\",status_class=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE catzilla_http_request_duration_seconds histogram"), "{text}");
        assert!(text.contains("catzilla_http_request_duration_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("catzilla_http_request_duration_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("catzilla_limit_hits_total{kind=\"body_too_large\"} 0"), "{text}");
        assert!(text.contains("# TYPE catzilla_streams_active gauge"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn authorization_is_compared_whole() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abcd", b"Bearer abc"));
        assert!(!constant_time_eq(b"", b"Bearer abc"));
    }
}
