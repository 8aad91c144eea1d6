//! WebSockets: per-route settings, the callbacks a route implements, and the modules that run a
//! connection — the handshake, the socket handle with its bounded outbound queue, the frame
//! decoder and encoder, permessage-deflate, and the reader/writer pair over a hyper upgrade.

mod conn;
pub mod decode;
pub mod deflate;
mod encode;
mod handshake;
pub mod resume;
mod socket;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use conn::abandon;
pub use conn::run;
pub use deflate::DeflateConfig;
pub use encode::Outgoing;
pub(crate) use handshake::extensions;
pub use handshake::{accept_key, extension_offers, is_upgrade_request};
pub use resume::{ResumeConfig, Sessions};
pub use socket::WsSocket;
pub use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Per-route WebSocket settings.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Largest message (and frame) accepted from a client; larger ones close the socket with 1009.
    pub max_payload: usize,
    /// Silence allowed before the socket is closed with 1001; a ping is sent half-way through, so
    /// a live client that answers pings is never cut. `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// Outbound bytes a socket may have queued; past it `send` answers `Dropped`.
    pub max_backpressure: usize,
    /// Close the socket (1008) instead of dropping messages once it is over `max_backpressure`.
    pub close_on_backpressure_limit: bool,
    /// permessage-deflate, when the client offers it; `None` (the default) never negotiates it.
    pub compression: Option<DeflateConfig>,
    /// Session resume after an unexpected disconnect; `None` (the default) ends a socket with
    /// its connection.
    pub resume: Option<ResumeConfig>,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_payload: 1 << 20,
            idle_timeout: Some(Duration::from_secs(120)),
            max_backpressure: 1 << 20,
            close_on_backpressure_limit: false,
            compression: None,
            resume: None,
        }
    }
}

/// What happened to one outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued for the socket with the queue under `max_backpressure`.
    Sent = 0,
    /// Queued, but the queue is now over `max_backpressure`: wait for `drain` before sending more.
    Queued = 1,
    /// Not queued: the socket is closed, closing, or was already over its limit.
    Dropped = 2,
}

/// Callbacks of one WebSocket route. They run on tokio worker threads and must not block.
pub trait WsEvents: Send + Sync + 'static {
    /// The handshake completed; the socket can send and receive.
    fn open(&self, socket: &WsSocket);
    /// A text or binary message arrived. The implementation must call
    /// [`WsSocket::consumed`] with the message length once it has processed it: the reader stops
    /// reading while too many bytes are unconsumed, so a slow consumer slows the client down
    /// instead of growing a queue.
    fn message(&self, socket: &WsSocket, message: Message);
    /// The outbound queue fell back under half of `max_backpressure` after a `Queued` send.
    fn drain(&self, socket: &WsSocket);
    /// The socket is gone. Fires exactly once per connection, with the peer's close code (1005
    /// when it sent none, 1006 when the connection just dropped) or the code the server closed
    /// with.
    fn close(&self, socket: &WsSocket, code: u16, reason: &str);
    /// Like [`WsEvents::close`], for a connection whose session now waits for its client to
    /// resume (routes with `resume`). By default it is reported as a close.
    fn disconnected(&self, socket: &WsSocket, code: u16, reason: &str) {
        self.close(socket, code, reason);
    }
    /// A disconnected session was not resumed within its TTL; its socket is now gone for good.
    fn expired(&self, _socket: &WsSocket) {}
    /// A disconnected session that waited in Redis was resumed on another connection, possibly
    /// of another process; its socket here is gone for good, without `expired`.
    fn moved(&self, _socket: &WsSocket) {}
}

/// The payload length used for backpressure accounting.
pub(crate) fn message_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) | Message::Frame(_) => 0,
    }
}

/// What a handler answers to accept an upgrade.
pub struct WsAccept {
    /// The socket handle (already known to the handler, so it can send before `open`).
    pub socket: WsSocket,
    /// The route's callbacks.
    pub events: Arc<dyn WsEvents>,
}

/// Closes a socket from outside (the dashboard): a 1001 close after what is queued.
pub(super) struct WsCloser(pub(super) WsSocket);

impl crate::live::Closer for WsCloser {
    fn close(&self) {
        self.0.close(1001, "closed by the server");
    }
}
