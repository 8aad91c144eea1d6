//! One request and its response as the access log and the metrics see them, completed when the
//! response body is gone (sent, cut, or never built because the client left).

use http::{Method, StatusCode, Uri};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A finished request/response: every response the server produced, including the ones the core
/// answers itself (404, 405, 413, 414, 400, 503, static files, WebSocket upgrades).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Request method; `None` when the request head was never parsed (a `431`, a `408` for a
    /// partial head, a `400` for garbage, a `503` at the connection limit).
    pub method: Option<Method>,
    /// Request target as sent; `None` as for `method`.
    pub uri: Option<Uri>,
    /// Address of the peer.
    pub remote: SocketAddr,
    /// Response status; `None` when no response was produced (the client left first).
    pub status: Option<StatusCode>,
    /// Body bytes handed to the socket (after compression).
    pub bytes: u64,
    /// From the request head to the end of the response.
    pub duration: Duration,
    /// From the request head to the response head being handed to the connection.
    pub ttfb: Option<Duration>,
    /// A streamed body (generator, writer, SSE, topic).
    pub stream: bool,
    /// The body did not complete: the client left or the stream was cut.
    pub aborted: bool,
}

/// An [`Exchange`] being filled in while the response is sent.
#[derive(Debug)]
pub(crate) struct Tracker {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) remote: SocketAddr,
    pub(crate) started: Instant,
    pub(crate) status: Option<StatusCode>,
    pub(crate) head_at: Option<Instant>,
    pub(crate) bytes: u64,
    pub(crate) stream: bool,
    pub(crate) complete: bool,
}

impl Tracker {
    /// Starts tracking a request whose head just arrived.
    pub(crate) fn new(method: Method, uri: Uri, remote: SocketAddr) -> Self {
        Self {
            method,
            uri,
            remote,
            started: Instant::now(),
            status: None,
            head_at: None,
            bytes: 0,
            stream: false,
            complete: false,
        }
    }

    /// The exchange as it ended now. A `HEAD` answer has no body to complete, so it never counts
    /// as aborted once its head was sent.
    pub(crate) fn finish(self) -> Exchange {
        let now = Instant::now();
        let head_only = self.method == Method::HEAD && self.status.is_some();
        Exchange {
            aborted: !(self.complete || head_only),
            method: Some(self.method),
            uri: Some(self.uri),
            remote: self.remote,
            status: self.status,
            bytes: self.bytes,
            duration: now.saturating_duration_since(self.started),
            ttfb: self.head_at.map(|t| t.saturating_duration_since(self.started)),
            stream: self.stream,
        }
    }
}

impl Exchange {
    /// An answer given at the connection level, before any request head was parsed.
    pub(crate) fn unparsed(remote: SocketAddr, status: http::StatusCode, started: Instant) -> Self {
        let duration = started.elapsed();
        Exchange {
            method: None,
            uri: None,
            remote,
            status: Some(status),
            bytes: 0,
            duration,
            ttfb: Some(duration),
            stream: false,
            aborted: false,
        }
    }
}
