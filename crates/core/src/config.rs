//! Server configuration: limits, timeouts and buffer sizes, with documented defaults.

use std::time::Duration;

/// Timeouts applied by the core. `None` disables a timeout.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Time allowed to receive a complete request head (slowloris guard). Enforced by hyper's
    /// header-read timer, which also runs while a kept-alive connection waits for its next request.
    pub headers: Option<Duration>,
    /// Idle time allowed between requests on a kept-alive connection before it is closed.
    pub keep_alive: Option<Duration>,
    /// Time allowed between two chunks of a request body before the request fails with 408.
    pub body: Option<Duration>,
    /// Time a response write may stay blocked because the client stopped reading; past it the
    /// connection is cut (its stream's producer sees the close). Quiet streams are not affected:
    /// only a write the client does not take counts.
    pub stream_idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            headers: Some(Duration::from_secs(10)),
            keep_alive: Some(Duration::from_secs(5)),
            body: Some(Duration::from_secs(30)),
            stream_idle: Some(Duration::from_secs(60)),
        }
    }
}

/// hyper's own header-count limit, kept on its fast (stack-allocated) path.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Limits that protect the server from abusive or broken clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most; past it a new connection gets `503` and is closed.
    pub max_connections: usize,
    /// Request body bytes at most; larger bodies get `413`.
    pub max_body_size: u64,
    /// Request head bytes at most (request line plus headers); larger heads get `431`.
    pub max_header_size: usize,
    /// Request-target bytes at most; longer targets get `414`.
    pub max_url_length: usize,
    /// Request header fields at most; more get `431`. The default, 100, is hyper's; another value
    /// makes hyper allocate the header array per request instead of on the stack.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_body_size: 1024 * 1024,
            max_header_size: 16 * 1024,
            max_url_length: 8 * 1024,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// Everything the core server needs to know before it binds.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Default per-stream ring capacity in bytes: the most a ring grows to, and only for a client
    /// that took 8 MiB and kept up (every ring starts at, and a slow client stays at, 16 KiB).
    pub buffer_size: usize,
    /// Request bodies whose `Content-Length` is at most this many bytes are read whole before
    /// dispatch, so the handler receives head and body in one crossing.
    pub prebuffer_body: u64,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Limits.
    pub limits: Limits,
    /// Response compression; `None` leaves responses as they are (streams may still opt in).
    pub compression: Option<crate::compression::CompressionConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            // 512 KiB: the JS and I/O threads trade places once per ring, so a fast client's bulk
            // stream runs at about 1,200 MiB/s with 64 KiB rings and 2,200 with 512 KiB (256 MiB
            // in 16 KiB chunks from a generator, curl as the client, one core). A stalled client
            // never gets there: its ring stays at the 16 KiB floor. This departs from DESIGN.md
            // §2.3 (default 64 KiB), which predates the adaptive ring: then every stream held its
            // full size, now only clients that proved fast do.
            buffer_size: 512 * 1024,
            prebuffer_body: 64 * 1024,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            compression: None,
        }
    }
}

/// Settings of one handler route that replace the server's for its requests (`None`: the
/// server's value). A route for uploads may take 1 GiB while the rest keeps 1 MiB; an SSE route
/// may live for hours while a JSON route may not.
#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    /// Request body bytes at most (413 beyond).
    pub max_body_size: Option<u64>,
    /// Time allowed between two request body chunks (`Some(None)`: no limit).
    pub body_timeout: Option<Option<Duration>>,
    /// Time a response write may stay blocked by a client that does not read (`Some(None)`: no
    /// limit).
    pub stream_idle: Option<Option<Duration>>,
    /// Total time a streamed response may last; past it the stream is cut (its producer sees
    /// the close) and counted. `None`: unlimited.
    pub stream_lifetime: Option<Duration>,
    /// Ring capacity of this route's streams in bytes.
    pub buffer_size: Option<usize>,
    /// Compression of this route's responses (`Some(false)`: never; `Some(true)`: even when the
    /// server setting is off).
    pub compress: Option<bool>,
    /// Responses of this route in progress at most (for a streaming route, its open streams);
    /// a request beyond gets `503` with `Retry-After` before its handler runs.
    pub max_streams: Option<usize>,
}

/// A route's options and its count of responses in progress (for `max_streams`).
#[derive(Debug, Default)]
pub struct RouteSettings {
    /// The options.
    pub options: RouteOptions,
    pub(crate) active: std::sync::atomic::AtomicUsize,
}

impl RouteSettings {
    /// Settings with no response in progress.
    pub fn new(options: RouteOptions) -> Self {
        Self { options, active: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Responses of the route in progress now.
    pub fn active(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }
}
