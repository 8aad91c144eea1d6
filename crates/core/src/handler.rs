//! The seam between the core server and whoever produces responses (JS through the Node binding,
//! or Rust handlers in the standalone binary).

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::body::incoming::RequestBody;
use crate::body::ring::RingBody;
use crate::config::RouteSettings;
use crate::files::FileBody;
use crate::topics::TopicBody;
use crate::ws::WsAccept;

/// One routed request, handed to [`Handler::handle`].
pub struct Request {
    /// The value registered with the matched route (a handler id).
    pub route: u32,
    /// Path parameters in path order; a bare trailing `*` is named `"*"`.
    pub params: Vec<(String, String)>,
    /// Request method.
    pub method: Method,
    /// Request target as sent.
    pub uri: Uri,
    /// HTTP version of the request.
    pub version: Version,
    /// Request headers.
    pub headers: HeaderMap,
    /// Address of the peer.
    pub remote: SocketAddr,
    /// The body, whole or streaming.
    pub body: RequestBody,
    /// A valid WebSocket upgrade request: the handler may answer [`ReplyBody::WebSocket`].
    pub websocket: bool,
    /// The route's own options (buffer size and compression of its streams), if it has any.
    pub options: Option<Arc<RouteSettings>>,
}

/// The body of a [`Reply`].
pub enum ReplyBody {
    /// A complete body, sent with `Content-Length`.
    Full(Bytes),
    /// A streamed body fed through a bounded ring.
    Stream(RingBody),
    /// A large file streamed from disk in bounded chunks (see [`crate::files::file_reply`]).
    File(FileBody),
    /// An SSE stream fed by a topic (see [`crate::Topics::subscribe_sse`]).
    Topic(TopicBody),
    /// Accept a WebSocket upgrade: the core answers `101` and runs the socket. If the request was
    /// not an upgrade, the core answers `426` and reports the socket closed (1006).
    WebSocket(WsAccept),
}

/// A response produced by a handler.
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers (hop-by-hop headers are managed by the core).
    pub headers: HeaderMap,
    /// Body.
    pub body: ReplyBody,
}

impl Reply {
    /// A complete reply.
    pub fn full(status: StatusCode, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        Self { status, headers, body: ReplyBody::Full(body.into()) }
    }

    /// Body bytes when known before sending: whole bodies and files (the range for a `206`).
    pub fn body_len(&self) -> Option<u64> {
        match &self.body {
            ReplyBody::Full(b) => Some(b.len() as u64),
            ReplyBody::File(f) => Some(f.remaining()),
            _ => None,
        }
    }

    /// A short `text/plain` reply, used for errors.
    pub fn text(status: StatusCode, message: &str) -> Self {
        let mut headers = HeaderMap::new();
        headers
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
        Self::full(status, headers, Bytes::copy_from_slice(message.as_bytes()))
    }
}

/// Completes one request. Dropping it unsent answers `500`.
pub struct Responder {
    tx: oneshot::Sender<Reply>,
}

impl Responder {
    pub(crate) fn new() -> (Self, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        (Self { tx }, rx)
    }

    /// Sends the reply. Returns `false` (and drops the reply) if the connection is already gone.
    pub fn send(self, reply: Reply) -> bool {
        self.tx.send(reply).is_ok()
    }

    /// `true` when the connection that waits for this reply is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Produces responses for routed requests.
pub trait Handler: Send + Sync + 'static {
    /// Whatever the handler needs to find a request again if it is cancelled.
    type Token: Send + 'static;

    /// Starts handling `req`; the reply goes through `responder`, now or later, from any thread.
    fn handle(&self, req: Request, responder: Responder) -> Self::Token;

    /// The client went away (or the server cut the connection) before a reply was sent.
    fn cancelled(&self, token: Self::Token) {
        let _ = token;
    }
}
